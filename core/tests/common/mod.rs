//! Test and demo support: owned model descriptions that borrow into the core's `Layer`s, a tiny
//! deterministic RNG, and a post-training int8 quantizer (per-channel symmetric weights, per-tensor
//! asymmetric activations calibrated by running the f32 kernels) — the same arithmetic an exporter
//! uses, kept here so tests and the demo can build int8 models without the trainer.
#![allow(dead_code)]

use denoiserep_core::kernels::params::{
    ConvParams, LinearParams, PerChannelQuant, PoolParams, Window,
};
use denoiserep_core::kernels::{self, Chw};
use denoiserep_core::{
    encode, encoded_len, quantize_multiplier, Activation, Conv2dF32, Conv2dS8, F32Data, I32Data,
    I8Data, Layer, LinearF32, LinearS8, MaxPool2d, Metadata, Precision, QuantParams,
};

/// Little-endian bytes of f32 values.
pub fn le_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes of i32 values.
pub fn le_i32(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Bytes of i8 values.
pub fn bytes_i8(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}

/// Kernel parameters of a model-file Linear layer (one row).
pub fn linear_params(in_features: u32, out_features: u32, activation: Activation) -> LinearParams {
    LinearParams {
        rows: 1,
        in_features: in_features as usize,
        out_features: out_features as usize,
        activation,
    }
}

/// Kernel parameters of a model-file (square) Conv2d layer on input `d`.
pub fn conv_params(
    d: Chw,
    out_channels: u16,
    (k, s, p): (u16, u16, u16),
    activation: Activation,
) -> ConvParams {
    ConvParams {
        in_channels: d.c,
        h: d.h,
        w: d.w,
        out_channels: out_channels as usize,
        window: Window::square(k as usize, s as usize, p as usize),
        activation,
    }
}

/// Kernel parameters of a model-file MaxPool2d layer on input `d`.
pub fn pool_params(d: Chw, m: MaxPool2d) -> PoolParams {
    PoolParams {
        channels: d.c,
        h: d.h,
        w: d.w,
        window: Window::square(m.kernel as usize, m.stride as usize, 0),
    }
}

/// The requantization of an int8 layer whose input zero point is `input_zp`.
pub fn per_channel_quant<'a>(
    input_zp: i8,
    output: QuantParams,
    multiplier: I32Data<'a>,
    shift: I8Data<'a>,
) -> PerChannelQuant<'a> {
    PerChannelQuant {
        input_zp,
        output,
        multiplier,
        shift,
    }
}

/// Output dims of a Window on input `d` with `c` output channels.
pub fn out_chw(c: usize, d: Chw, win: Window) -> Chw {
    let (h, w) = win.out_dims(d.h, d.w).unwrap();
    Chw { c, h, w }
}

/// SplitMix64: small, seeded, deterministic.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    pub fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next_u64() as i8).collect()
    }
}

/// A layer whose tensors are owned byte vectors.
#[derive(Debug, Clone)]
pub enum OwnedLayer {
    LinearF32 {
        in_f: u32,
        out_f: u32,
        act: Activation,
        w: Vec<u8>,
        b: Vec<u8>,
    },
    LinearS8 {
        in_f: u32,
        out_f: u32,
        act: Activation,
        w: Vec<u8>,
        b: Vec<u8>,
        m: Vec<u8>,
        s: Vec<u8>,
        out: QuantParams,
    },
    Conv2dF32 {
        ci: u16,
        co: u16,
        k: u16,
        stride: u16,
        pad: u16,
        act: Activation,
        w: Vec<u8>,
        b: Vec<u8>,
    },
    Conv2dS8 {
        ci: u16,
        co: u16,
        k: u16,
        stride: u16,
        pad: u16,
        act: Activation,
        w: Vec<u8>,
        b: Vec<u8>,
        m: Vec<u8>,
        s: Vec<u8>,
        out: QuantParams,
    },
    Relu,
    MaxPool2d {
        k: u16,
        stride: u16,
    },
    GlobalAvgPool,
    Flatten,
}

impl OwnedLayer {
    pub fn linear_f32(in_f: usize, out_f: usize, act: Activation, w: &[f32], b: &[f32]) -> Self {
        OwnedLayer::LinearF32 {
            in_f: in_f as u32,
            out_f: out_f as u32,
            act,
            w: le_f32(w),
            b: le_f32(b),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_f32(
        ci: usize,
        co: usize,
        k: usize,
        stride: usize,
        pad: usize,
        act: Activation,
        w: &[f32],
        b: &[f32],
    ) -> Self {
        OwnedLayer::Conv2dF32 {
            ci: ci as u16,
            co: co as u16,
            k: k as u16,
            stride: stride as u16,
            pad: pad as u16,
            act,
            w: le_f32(w),
            b: le_f32(b),
        }
    }

    pub fn layer(&self) -> Layer<'_> {
        match self {
            OwnedLayer::LinearF32 {
                in_f,
                out_f,
                act,
                w,
                b,
            } => Layer::LinearF32(LinearF32 {
                in_features: *in_f,
                out_features: *out_f,
                activation: *act,
                weights: F32Data::from_le_bytes(w),
                bias: F32Data::from_le_bytes(b),
            }),
            OwnedLayer::LinearS8 {
                in_f,
                out_f,
                act,
                w,
                b,
                m,
                s,
                out,
            } => Layer::LinearS8(LinearS8 {
                in_features: *in_f,
                out_features: *out_f,
                activation: *act,
                weights: I8Data::from_le_bytes(w),
                bias: I32Data::from_le_bytes(b),
                multiplier: I32Data::from_le_bytes(m),
                shift: I8Data::from_le_bytes(s),
                output: *out,
            }),
            OwnedLayer::Conv2dF32 {
                ci,
                co,
                k,
                stride,
                pad,
                act,
                w,
                b,
            } => Layer::Conv2dF32(Conv2dF32 {
                in_channels: *ci,
                out_channels: *co,
                kernel: *k,
                stride: *stride,
                padding: *pad,
                activation: *act,
                weights: F32Data::from_le_bytes(w),
                bias: F32Data::from_le_bytes(b),
            }),
            OwnedLayer::Conv2dS8 {
                ci,
                co,
                k,
                stride,
                pad,
                act,
                w,
                b,
                m,
                s,
                out,
            } => Layer::Conv2dS8(Conv2dS8 {
                in_channels: *ci,
                out_channels: *co,
                kernel: *k,
                stride: *stride,
                padding: *pad,
                activation: *act,
                weights: I8Data::from_le_bytes(w),
                bias: I32Data::from_le_bytes(b),
                multiplier: I32Data::from_le_bytes(m),
                shift: I8Data::from_le_bytes(s),
                output: *out,
            }),
            OwnedLayer::Relu => Layer::Relu,
            OwnedLayer::MaxPool2d { k, stride } => Layer::MaxPool2d(MaxPool2d {
                kernel: *k,
                stride: *stride,
            }),
            OwnedLayer::GlobalAvgPool => Layer::GlobalAvgPool,
            OwnedLayer::Flatten => Layer::Flatten,
        }
    }
}

/// A model whose metadata and layers are owned.
#[derive(Debug, Clone)]
pub struct OwnedModel {
    pub name: String,
    pub input_shape: [u16; 3],
    pub num_classes: u32,
    pub embedding_layer: u16,
    pub mean: Vec<u8>,
    pub std: Vec<u8>,
    pub precision: Precision,
    pub input_quant: Option<QuantParams>,
    pub layers: Vec<OwnedLayer>,
}

impl OwnedModel {
    pub fn metadata(&self) -> Metadata<'_> {
        Metadata {
            name: &self.name,
            input_shape: self.input_shape,
            num_classes: self.num_classes,
            embedding_layer: self.embedding_layer,
            input_mean: F32Data::from_le_bytes(&self.mean),
            input_std: F32Data::from_le_bytes(&self.std),
            precision: self.precision,
            input_quant: self.input_quant,
        }
    }

    pub fn layers(&self) -> Vec<Layer<'_>> {
        self.layers.iter().map(OwnedLayer::layer).collect()
    }

    /// Encodes the model file (validated by `encode`).
    pub fn encode(&self) -> Result<Vec<u8>, denoiserep_core::Error> {
        let (meta, layers) = (self.metadata(), self.layers());
        let mut out = vec![0u8; encoded_len(&meta, &layers)?];
        let n = encode(&meta, &layers, &mut out)?;
        assert_eq!(n, out.len(), "encoded_len must be exact");
        Ok(out)
    }

    pub fn mean_f32(&self) -> Vec<f32> {
        F32Data::from_le_bytes(&self.mean).iter().collect()
    }

    pub fn std_f32(&self) -> Vec<f32> {
        F32Data::from_le_bytes(&self.std).iter().collect()
    }
}

/// The small CNN used by tests and the demo: 1×12×12 input →
/// conv3×3(1→4, pad 1) + ReLU → maxpool 2 → conv3×3(4→8, stride 2) → ReLU → global avg pool →
/// flatten (embedding, 8 values) → linear 8→10.
pub fn small_cnn(seed: u64) -> OwnedModel {
    let mut rng = Rng(seed);
    let layers = vec![
        OwnedLayer::conv2d_f32(
            1,
            4,
            3,
            1,
            1,
            Activation::Relu,
            &rng.vec(36, -0.6, 0.6),
            &rng.vec(4, -0.1, 0.1),
        ),
        OwnedLayer::MaxPool2d { k: 2, stride: 2 },
        OwnedLayer::conv2d_f32(
            4,
            8,
            3,
            2,
            0,
            Activation::None,
            &rng.vec(288, -0.3, 0.3),
            &rng.vec(8, -0.1, 0.1),
        ),
        OwnedLayer::Relu,
        OwnedLayer::GlobalAvgPool,
        OwnedLayer::Flatten,
        OwnedLayer::linear_f32(
            8,
            10,
            Activation::None,
            &rng.vec(80, -0.8, 0.8),
            &rng.vec(10, -0.2, 0.2),
        ),
    ];
    OwnedModel {
        name: "small-cnn".into(),
        input_shape: [1, 12, 12],
        num_classes: 10,
        embedding_layer: 5,
        mean: le_f32(&[0.5]),
        std: le_f32(&[0.25]),
        precision: Precision::F32,
        input_quant: None,
        layers,
    }
}

/// The small MLP used by tests and the demo: 16 inputs → 12 (ReLU, the embedding) → 4.
pub fn small_mlp(seed: u64) -> OwnedModel {
    let mut rng = Rng(seed);
    let layers = vec![
        OwnedLayer::Flatten,
        OwnedLayer::linear_f32(
            16,
            12,
            Activation::Relu,
            &rng.vec(192, -0.5, 0.5),
            &rng.vec(12, -0.1, 0.1),
        ),
        OwnedLayer::linear_f32(
            12,
            4,
            Activation::None,
            &rng.vec(48, -0.5, 0.5),
            &rng.vec(4, -0.1, 0.1),
        ),
    ];
    OwnedModel {
        name: "small-mlp".into(),
        input_shape: [1, 4, 4],
        num_classes: 4,
        embedding_layer: 1,
        mean: le_f32(&[0.0]),
        std: le_f32(&[1.0]),
        precision: Precision::F32,
        input_quant: None,
        layers,
    }
}

/// Runs the f32 model layer by layer with the public kernels; returns every tensor
/// (index 0 = normalized input, index i+1 = output of layer i) with its CHW dims.
pub fn f32_activations(model: &OwnedModel, input: &[f32]) -> Vec<(Vec<f32>, Chw)> {
    let [c, h, w] = model.input_shape.map(usize::from);
    let (mean, std) = (model.mean_f32(), model.std_f32());
    let x: Vec<f32> = input
        .iter()
        .enumerate()
        .map(|(i, &v)| (v - mean[i / (h * w)]) / std[i / (h * w)])
        .collect();
    let mut acts = vec![(x, Chw { c, h, w })];
    for l in &model.layers {
        let (x, d) = acts.last().cloned().unwrap();
        let (y, dy) = match l.layer() {
            Layer::LinearF32(lin) => {
                let mut y = vec![0.0; lin.out_features as usize];
                let p = linear_params(lin.in_features, lin.out_features, lin.activation);
                kernels::linear_f32(&p, &x, lin.weights, lin.bias, &mut y).unwrap();
                let n = y.len();
                (y, Chw { c: n, h: 1, w: 1 })
            }
            Layer::Conv2dF32(cv) => {
                let p = conv_params(
                    d,
                    cv.out_channels,
                    (cv.kernel, cv.stride, cv.padding),
                    cv.activation,
                );
                let dy = out_chw(p.out_channels, d, p.window);
                let mut y = vec![0.0; dy.c * dy.h * dy.w];
                kernels::conv2d_f32(&p, &x, cv.weights, cv.bias, &mut y).unwrap();
                (y, dy)
            }
            Layer::Relu => {
                let mut y = x.clone();
                kernels::relu_f32(&mut y);
                (y, d)
            }
            Layer::MaxPool2d(mp) => {
                let p = pool_params(d, mp);
                let dy = out_chw(d.c, d, p.window);
                let mut y = vec![0.0; dy.c * dy.h * dy.w];
                kernels::maxpool2d_f32(&p, &x, &mut y).unwrap();
                (y, dy)
            }
            Layer::GlobalAvgPool => {
                let mut y = vec![0.0; d.c];
                kernels::global_avg_pool_f32(&x, d, &mut y).unwrap();
                (y, Chw { c: d.c, h: 1, w: 1 })
            }
            Layer::Flatten => (x, d),
            other => panic!("not an f32 layer: {other:?}"),
        };
        acts.push((y, dy));
    }
    acts
}

/// Asymmetric int8 quantization covering `[min(lo, 0), max(hi, 0)]`.
pub fn choose_quant(lo: f32, hi: f32) -> QuantParams {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i8;
    QuantParams {
        scale,
        zero_point: zp,
    }
}

/// Post-training quantization of an f32 model, calibrated on `calibration` inputs.
pub fn quantize_model(model: &OwnedModel, calibration: &[Vec<f32>]) -> OwnedModel {
    let runs: Vec<_> = calibration
        .iter()
        .map(|x| f32_activations(model, x))
        .collect();
    let range = |t: usize| {
        let mut lo = f32::INFINITY;
        let mut hi = f32::NEG_INFINITY;
        for r in &runs {
            for &v in &r[t].0 {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        (lo, hi)
    };
    let input_q = {
        let (lo, hi) = range(0);
        choose_quant(lo, hi)
    };
    let mut q_in = input_q;
    let mut layers = Vec::new();
    for (i, l) in model.layers.iter().enumerate() {
        let (lo, hi) = range(i + 1);
        let out_q = choose_quant(lo, hi);
        let ql = match l {
            OwnedLayer::LinearF32 {
                in_f,
                out_f,
                act,
                w,
                b,
            } => {
                let (wq, bq, m, s) =
                    quantize_params(w, b, *out_f as usize, q_in.scale, out_q.scale);
                q_in = out_q;
                OwnedLayer::LinearS8 {
                    in_f: *in_f,
                    out_f: *out_f,
                    act: *act,
                    w: wq,
                    b: bq,
                    m,
                    s,
                    out: out_q,
                }
            }
            OwnedLayer::Conv2dF32 {
                ci,
                co,
                k,
                stride,
                pad,
                act,
                w,
                b,
            } => {
                let (wq, bq, m, s) = quantize_params(w, b, *co as usize, q_in.scale, out_q.scale);
                q_in = out_q;
                OwnedLayer::Conv2dS8 {
                    ci: *ci,
                    co: *co,
                    k: *k,
                    stride: *stride,
                    pad: *pad,
                    act: *act,
                    w: wq,
                    b: bq,
                    m,
                    s,
                    out: out_q,
                }
            }
            other => other.clone(), // same quantization in and out
        };
        layers.push(ql);
    }
    OwnedModel {
        name: format!("{}-int8", model.name),
        precision: Precision::Int8,
        input_quant: Some(input_q),
        layers,
        ..model.clone()
    }
}

/// Per-output-channel symmetric weights, int32 bias, multipliers and shifts.
fn quantize_params(
    w: &[u8],
    b: &[u8],
    n_out: usize,
    s_in: f32,
    s_out: f32,
) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let w: Vec<f32> = F32Data::from_le_bytes(w).iter().collect();
    let b: Vec<f32> = F32Data::from_le_bytes(b).iter().collect();
    let per = w.len() / n_out;
    let (mut wq, mut bq, mut mq, mut sq) = (vec![], vec![], vec![], vec![]);
    for o in 0..n_out {
        let row = &w[o * per..(o + 1) * per];
        let max = row.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let s_w = if max > 0.0 { max / 127.0 } else { 1.0 };
        wq.extend(
            row.iter()
                .map(|v| (v / s_w).round().clamp(-127.0, 127.0) as i8),
        );
        bq.push((b[o] as f64 / (s_in as f64 * s_w as f64)).round() as i32);
        let (m, s) = quantize_multiplier(s_in as f64 * s_w as f64 / s_out as f64);
        mq.push(m);
        sq.push(s as i8);
    }
    (bytes_i8(&wq), le_i32(&bq), le_i32(&mq), bytes_i8(&sq))
}
