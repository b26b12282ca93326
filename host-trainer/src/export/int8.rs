//! int8 post-training quantization (TFLite-Micro conventions, `docs/quantization.md` §9).
//!
//! * Weights: per output channel `c`, symmetric, `s_w[c] = max_j |w[c][j]| / 127` (f32; a channel
//!   of zeros gets `s_w = 1`), `q = clamp(round(w / s_w[c]), −127, 127)` (f32 division, ties away
//!   from zero). A depthwise conv's channel is its own `kh·kw` taps.
//! * Activations: per tensor, asymmetric, from the calibrated range widened to include 0
//!   ([`activation_quant`]) for the model input and the output of every op that requantizes
//!   (Linear, Conv2d, DepthwiseConv2d, Add, BatchMatMul, MeanAxis, GELU's table, LayerNorm's
//!   Quantize); pooling, Mean, Reshape, Transpose, Slice and standalone activations keep their
//!   input's quantization (as TFLite requires of them), a Concat's inputs and output share one
//!   (its range covers all of them, constants included), an int8 Softmax writes TFLite's fixed
//!   `(1/256, −128)`. Constants added to a tensor (position embeddings) get their own range
//!   (their values); constants concatenated (the class token) are quantized with the Concat's.
//! * The ViT's f32-only ops: LayerNorm runs as `Dequantize → LayerNorm (f32, γ and β f32) →
//!   Quantize`; GELU becomes a `Lut` of `quantize(gelu(dequantize(q)))` ([`gelu_table`]).
//! * Bias: int32 `round(b / (s_in · s_w[c]))` in f64 from the f32 scales; a bias that does not fit
//!   in int32 is refused, naming the op and channel.
//! * Requantization: `(M[c], shift[c]) = quantize_multiplier((f64)s_in · (f64)s_w[c] / (f64)s_out)`
//!   (the core's function, tflite's `QuantizeMultiplier`). Add derives its multipliers from the
//!   three scales in the core itself (TFLite's ADD Prepare).
//! * A fused ReLU / ReLU6 becomes the output clamp (`activation_range`).
//!
//! The encoded model is then loaded by the core, which refuses any op whose int32 accumulator
//! could overflow for some input (the error names the op in trainer terms).

use anyhow::{bail, Result};
use denoiserep_core::kernels::gelu_f32_one;
use denoiserep_core::quant::{dequantize, quantize};
use denoiserep_core::{quantize_multiplier, DType, QuantParams};

use crate::export::calibrate::Ranges;
use crate::export::file::{
    f32_bytes, i32_bytes, i8_bytes, shape, ModelFile, OwnedNode, OwnedOp, OwnedTensor, OwnedWeights,
};
use crate::export::float::{skeleton, structural};
use crate::export::lower::{CoreGraph, CoreOp, QuantRule};

/// Per-tensor asymmetric quantization of the real range `[min, max]`, as tflite's
/// `ChooseQuantizationParams` (in f64): the range is widened to `[min(min, 0), max(max, 0)]`,
/// `scale = (hi − lo) / 255`; the zero point is `−128 − lo/scale` or `127 − hi/scale`, whichever
/// has the smaller rounding error, rounded (ties away from zero) and clamped to `[−128, 127]`, so
/// real 0 is exactly representable. A range of exactly `[0, 0]` gets `scale = 1, zero_point = 0`.
pub fn activation_quant(min: f32, max: f32) -> QuantParams {
    let lo = f64::from(min.min(0.0));
    let hi = f64::from(max.max(0.0));
    if hi <= lo {
        return QuantParams {
            scale: 1.0,
            zero_point: 0,
        };
    }
    let scale = (hi - lo) / 255.0;
    let (from_min, from_max) = (-128.0 - lo / scale, 127.0 - hi / scale);
    let (err_min, err_max) = (128.0 + (lo / scale).abs(), 127.0 + (hi / scale).abs());
    let zp = if err_min < err_max {
        from_min
    } else {
        from_max
    };
    QuantParams {
        scale: scale as f32,
        zero_point: zp.round().clamp(-128.0, 127.0) as i8,
    }
}

/// Symmetric per-channel quantization of `w` (`channels` rows of equal length): the int8 weights
/// and the per-channel scales (see the module doc).
pub fn quantize_weights(w: &[f32], channels: usize) -> (Vec<i8>, Vec<f32>) {
    let per = w.len() / channels.max(1);
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(channels);
    for row in w.chunks(per.max(1)) {
        let max_abs = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if max_abs > 0.0 { max_abs / 127.0 } else { 1.0 };
        q.extend(
            row.iter()
                .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8),
        );
        scales.push(scale);
    }
    (q, scales)
}

/// int32 biases `round(b[c] / (s_in · s_w[c]))` (f64), refusing values outside int32.
fn quantize_bias(b: &[f32], s_in: f32, s_w: &[f32], source: &str) -> Result<Vec<i32>> {
    b.iter()
        .zip(s_w)
        .enumerate()
        .map(|(c, (&b, &sw))| {
            let scale = f64::from(s_in) * f64::from(sw);
            let q = (f64::from(b) / scale).round();
            if !(q >= f64::from(i32::MIN) && q <= f64::from(i32::MAX)) {
                bail!(
                    "cannot export {source}: the bias of output channel {c} ({b}) is {q:e} steps of \
                     s_in·s_w = {scale:e}, beyond int32; the layer's input range or weights are too \
                     small for its bias"
                );
            }
            Ok(q as i32)
        })
        .collect()
}

/// Per-channel `(multiplier, shift)` from `(f64)s_in · (f64)s_w[c] / (f64)s_out`.
fn multipliers(s_in: f32, s_w: &[f32], s_out: f32) -> (Vec<i32>, Vec<i8>) {
    s_w.iter()
        .map(|&sw| {
            let (m, shift) =
                quantize_multiplier(f64::from(s_in) * f64::from(sw) / f64::from(s_out));
            // quantize_multiplier returns shift ∈ [−31, 30].
            (m, shift as i8)
        })
        .unzip()
}

/// Union-find over tensor ids: tensors that must share one quantization.
struct Groups(Vec<usize>);

impl Groups {
    fn find(&mut self, mut t: usize) -> usize {
        while self.0[t] != t {
            self.0[t] = self.0[self.0[t]];
            t = self.0[t];
        }
        t
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        // The lower id (the earlier tensor) stays the root.
        let (lo, hi) = (a.min(b), a.max(b));
        self.0[hi] = lo;
    }
}

/// `[min, max]` of `v` (`None` when empty).
fn min_max(v: &[f32]) -> Option<(f32, f32)> {
    v.iter().fold(None, |r, &x| {
        Some(match r {
            None => (x, x),
            Some((a, b)) => (a.min(x), b.max(x)),
        })
    })
}

/// The quantization of every tensor of `g` (`None` for the f32 constants of LayerNorms).
///
/// Tensors are grouped by the ops that cannot rescale: an op of [`QuantRule::SameAsInput`] puts
/// its output in its input's group, a Concat ([`QuantRule::SharedWithInputs`]) its output and
/// all its inputs in one group. A group's range is the union of the ranges of its *defining*
/// tensors: the model input, the outputs of ops that requantize ([`QuantRule::Own`]) and of
/// Concats (calibrated), and constants (their values: the class token joins the Concat's group,
/// so the patch embedding is requantized straight to the scale the class token needs). A
/// Softmax output gets TFLite's fixed `(1/256, −128)`.
fn tensor_quant(g: &CoreGraph, ranges: &Ranges) -> Result<Vec<Option<QuantParams>>> {
    let n = g.shapes.len();
    let mut groups = Groups((0..n).collect());
    let mut defining = vec![false; n];
    let mut softmax = vec![false; n];
    let mut float_const = vec![false; n];
    defining[0] = true;
    for node in &g.nodes {
        let out = usize::from(node.output);
        let ins: Vec<usize> = node.inputs.iter().map(|&t| usize::from(t)).collect();
        match node.op.quant_rule() {
            QuantRule::Own => defining[out] = true,
            QuantRule::SameAsInput => groups.union(out, ins[0]),
            QuantRule::SharedWithInputs => {
                defining[out] = true;
                for &i in &ins {
                    groups.union(out, i);
                }
            }
            QuantRule::Softmax => softmax[out] = true,
        }
        if let CoreOp::LayerNorm { .. } = node.op {
            // γ and β stay f32: the LayerNorm runs in f32 between Dequantize and Quantize.
            for &i in &ins[1..] {
                float_const[i] = true;
            }
        }
    }
    let mut range: Vec<Option<(f32, f32)>> = vec![None; n];
    let mut fixed = vec![false; n];
    for t in 0..n {
        let r = groups.find(t);
        if softmax[t] {
            fixed[r] = true;
        }
        let own = match &g.constants[t] {
            Some(_) if float_const[t] => None,
            Some(values) => min_max(values),
            None if defining[t] => match ranges.get(t).copied().flatten() {
                Some((lo, hi)) if lo.is_finite() && hi.is_finite() => Some((lo, hi)),
                Some((lo, hi)) => {
                    bail!("calibration: tensor {t} has a non-finite range [{lo}, {hi}]")
                }
                None => bail!("calibration: no range for tensor {t} (a bug)"),
            },
            None => None,
        };
        if let Some((lo, hi)) = own {
            range[r] = Some(match range[r] {
                None => (lo, hi),
                Some((a, b)) => (a.min(lo), b.max(hi)),
            });
        }
    }
    (0..n)
        .map(|t| {
            if float_const[t] {
                return Ok(None);
            }
            let r = groups.find(t);
            match (fixed[r], range[r]) {
                (true, None) => Ok(Some(SOFTMAX_OUTPUT)),
                (true, Some(_)) => bail!(
                    "tensor {t}: a softmax output shares its int8 values with a tensor of \
                     another scale (the model cannot be quantized)"
                ),
                (false, Some((lo, hi))) => Ok(Some(activation_quant(lo, hi))),
                (false, None) => bail!("tensor {t} is never written (a bug)"),
            }
        })
        .collect()
}

/// The output quantization of an int8 Softmax (TFLite's: scale 1/256, zero point −128).
pub const SOFTMAX_OUTPUT: QuantParams = QuantParams {
    scale: 1.0 / 256.0,
    zero_point: -128,
};

/// The int8 GELU table: `table[q + 128] = quantize(gelu(dequantize(q, q_in)), q_out)` for every
/// int8 `q`, with the core's own f32 GELU ([`gelu_f32_one`]: the function the f32 model
/// computes) and its `quantize` / `dequantize` (`docs/quantization.md`).
pub fn gelu_table(q_in: QuantParams, q_out: QuantParams) -> Vec<i8> {
    (-128..=127i32)
        .map(|q| quantize(gelu_f32_one(dequantize(q as i8, q_in)), q_out))
        .collect()
}

/// The int8 numbers of one weighted op (Linear, Conv2d, DepthwiseConv2d), shared by every
/// writer of int8 models (the core's format stores `(M[c], shift[c])` from [`multipliers`],
/// TFLite stores the scales and lets TFLite-Micro derive the same multipliers in its Prepare).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedWeights {
    /// `clamp(round(w / s_w[c]), −127, 127)`, in the lowered graph's (PyTorch) layout.
    pub weights: Vec<i8>,
    /// `s_w[c]` per output channel.
    pub scales: Vec<f32>,
    /// `round(b[c] / (s_in · s_w[c]))` (f64).
    pub bias: Vec<i32>,
}

/// The complete int8 quantization of a lowered graph, computed once: the quantization of every
/// core tensor (`None` for the f32 constants of LayerNorms) and the int8 weights of every
/// weighted node (`None` for the others), indexed like `g.nodes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Plan {
    pub tensors: Vec<Option<QuantParams>>,
    pub weights: Vec<Option<QuantizedWeights>>,
}

impl Int8Plan {
    /// Quantizes `g` with the calibrated `ranges` (one per core tensor, from
    /// [`crate::export::calibrate::calibrate`] on the f32 model of `g`).
    pub fn new(g: &CoreGraph, ranges: &Ranges) -> Result<Self> {
        let tensors = tensor_quant(g, ranges)?;
        let mut weights = Vec::with_capacity(g.nodes.len());
        for node in &g.nodes {
            let (w, b, channels) = match &node.op {
                CoreOp::Linear {
                    out_features,
                    weight,
                    bias,
                    ..
                } => (weight, bias, *out_features),
                CoreOp::Conv2d {
                    out_channels,
                    weight,
                    bias,
                    ..
                } => (weight, bias, *out_channels),
                CoreOp::DepthwiseConv2d { weight, bias, .. } => (weight, bias, bias.len()),
                _ => {
                    weights.push(None);
                    continue;
                }
            };
            let q_in = tensors[usize::from(node.inputs[0])]
                .ok_or_else(|| anyhow::anyhow!("{}: its input is not int8 (a bug)", node.source))?;
            let (wq, scales) = quantize_weights(w, channels);
            let bias = quantize_bias(b, q_in.scale, &scales, &node.source)?;
            weights.push(Some(QuantizedWeights {
                weights: wq,
                scales,
                bias,
            }));
        }
        Ok(Self { tensors, weights })
    }

    /// The quantization of int8 tensor `t`, or an error naming `source`.
    pub fn tensor(&self, t: u16, source: &str) -> Result<QuantParams> {
        self.tensors
            .get(usize::from(t))
            .copied()
            .flatten()
            .ok_or_else(|| anyhow::anyhow!("{source}: tensor {t} is not int8 (a bug)"))
    }

    /// The int8 weights of node `index`, or an error naming `source`.
    pub fn weights(&self, index: usize, source: &str) -> Result<&QuantizedWeights> {
        self.weights
            .get(index)
            .and_then(Option::as_ref)
            .ok_or_else(|| anyhow::anyhow!("{source}: no int8 weights (a bug)"))
    }
}

/// The int8 model file of the lowered graph `g`, quantized with the calibrated `ranges` (one
/// per core tensor, from [`crate::export::calibrate::calibrate`] on the f32 model of `g`).
pub fn to_int8(g: &CoreGraph, ranges: &Ranges) -> Result<ModelFile> {
    to_int8_planned(g, &Int8Plan::new(g, ranges)?)
}

/// The int8 model file of `g` with the quantization `plan` ([`Int8Plan::new`]).
///
/// Tensor ids of `g` keep their meaning; the tensors the int8 form adds come after them: per
/// LayerNorm the f32 input and output between `Dequantize → LayerNorm → Quantize` (the
/// LayerNorm's tensor of `g` is the Quantize's int8 output), per GELU its 256-entry `Lut` table.
pub fn to_int8_planned(g: &CoreGraph, plan: &Int8Plan) -> Result<ModelFile> {
    let quant = &plan.tensors;
    let q_of = |t: u16, source: &str| plan.tensor(t, source);
    let mut tensors = g
        .shapes
        .iter()
        .zip(&g.constants)
        .zip(quant)
        .enumerate()
        .map(|(i, ((dims, values), q))| {
            let shape = shape(dims, &format!("tensor {i}"))?;
            Ok(match (q, values) {
                (None, values) => OwnedTensor {
                    shape,
                    dtype: DType::F32,
                    data: values.as_deref().map(f32_bytes),
                },
                (Some(q), values) => OwnedTensor {
                    shape,
                    dtype: DType::I8(*q),
                    data: values
                        .as_ref()
                        .map(|v| i8_bytes(&v.iter().map(|&x| quantize(x, *q)).collect::<Vec<_>>())),
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    fn extra(tensors: &mut Vec<OwnedTensor>, t: OwnedTensor, source: &str) -> Result<u16> {
        let id = u16::try_from(tensors.len())
            .map_err(|_| anyhow::anyhow!("{source}: more than 65535 tensors"))?;
        tensors.push(t);
        Ok(id)
    }
    let mut nodes = Vec::with_capacity(g.nodes.len());
    for (index, node) in g.nodes.iter().enumerate() {
        let source = &node.source;
        let q_in = q_of(node.inputs[0], source)?;
        let q_out = q_of(node.output, source)?;
        let weighted = || -> Result<OwnedWeights> {
            let w = plan.weights(index, source)?;
            let (multiplier, shift) = multipliers(q_in.scale, &w.scales, q_out.scale);
            Ok(OwnedWeights::S8 {
                weights: i8_bytes(&w.weights),
                bias: i32_bytes(&w.bias),
                multiplier: i32_bytes(&multiplier),
                shift: i8_bytes(&shift),
            })
        };
        let mut push = |op: OwnedOp, inputs: Vec<u16>, output: u16| {
            nodes.push(OwnedNode {
                op,
                inputs,
                output,
                source: source.clone(),
            })
        };
        let op = match &node.op {
            CoreOp::Linear { activation, .. } => OwnedOp::Linear {
                activation: *activation,
                weights: weighted()?,
            },
            CoreOp::Conv2d {
                window, activation, ..
            } => OwnedOp::Conv2d {
                window: *window,
                activation: *activation,
                weights: weighted()?,
            },
            CoreOp::DepthwiseConv2d {
                window, activation, ..
            } => OwnedOp::DepthwiseConv2d {
                window: *window,
                activation: *activation,
                weights: weighted()?,
            },
            CoreOp::LayerNorm { eps } => {
                // f32 only in the core: Dequantize → LayerNorm → Quantize.
                let x = node.inputs[0];
                let f32_tensor = |t: u16| OwnedTensor {
                    shape: tensors[usize::from(t)].shape,
                    dtype: DType::F32,
                    data: None,
                };
                let (xf, yf) = (f32_tensor(x), f32_tensor(node.output));
                let xf = extra(&mut tensors, xf, source)?;
                let yf = extra(&mut tensors, yf, source)?;
                push(OwnedOp::Dequantize, vec![x], xf);
                let mut inputs = node.inputs.clone();
                inputs[0] = xf;
                push(OwnedOp::LayerNorm { eps: *eps }, inputs, yf);
                push(OwnedOp::Quantize, vec![yf], node.output);
                continue;
            }
            CoreOp::Gelu => {
                let table = OwnedTensor {
                    shape: shape(&[256], source)?,
                    dtype: DType::I8(q_out),
                    data: Some(i8_bytes(&gelu_table(q_in, q_out))),
                };
                let table = extra(&mut tensors, table, source)?;
                push(OwnedOp::Lut, vec![node.inputs[0], table], node.output);
                continue;
            }
            op => structural(op),
        };
        push(op, node.inputs.clone(), node.output);
    }
    Ok(skeleton(g, tensors, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use denoiserep_core::Activation;

    #[test]
    fn activation_quant_represents_zero_and_covers_the_range() {
        // ReLU output [0, 6]: zero point −128, scale 6/255.
        let q = activation_quant(0.0, 6.0);
        assert_eq!(q.zero_point, -128);
        assert!((q.scale - 6.0 / 255.0).abs() < 1e-9);
        // Range not containing 0 is widened to include it.
        let q = activation_quant(2.0, 5.1);
        assert_eq!(q.zero_point, -128);
        assert!((q.scale - 0.02).abs() < 1e-7);
        let q = activation_quant(-5.1, -2.0);
        assert_eq!(q.zero_point, 127);
        // Symmetric-ish range: zero point near the middle, and both ends representable.
        let q = activation_quant(-1.0, 3.0);
        let lo = q.scale * (-128 - i32::from(q.zero_point)) as f32;
        let hi = q.scale * (127 - i32::from(q.zero_point)) as f32;
        assert!(lo <= -1.0 + q.scale && hi >= 3.0 - q.scale, "{lo} {hi}");
        assert_eq!(q.zero_point, -64); // −128 + 1/(4/255) = −64.25 → −64
        assert_eq!(
            activation_quant(0.0, 0.0),
            QuantParams {
                scale: 1.0,
                zero_point: 0
            }
        );
    }

    #[test]
    fn weights_are_symmetric_per_channel() {
        let w = [0.5f32, -1.0, 0.25, 0.0, 0.0, 0.0, 3.0, 1.5, -0.03];
        let (q, s) = quantize_weights(&w, 3);
        assert_eq!(s, vec![1.0 / 127.0, 1.0, 3.0 / 127.0]);
        assert_eq!(&q[..3], &[64, -127, 32]); // 63.5 → 64 (ties away from zero)
        assert_eq!(&q[3..6], &[0, 0, 0]);
        assert_eq!(&q[6..], &[127, 64, -1]); // 63.5 → 64, −1.27 → −1
    }

    #[test]
    fn bias_rounds_and_refuses_int32_overflow() {
        let b = quantize_bias(&[1.0, -0.5], 0.5, &[0.25, 0.1], "x").unwrap();
        assert_eq!(b, vec![8, -10]);
        let e = quantize_bias(&[1e6], 1e-4, &[1e-4], "arch layer 1 Linear(2→1)").unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("arch layer 1 Linear(2→1)") && msg.contains("channel 0"),
            "{msg}"
        );
    }

    #[test]
    fn multipliers_use_the_f64_product_of_f32_scales() {
        let (m, s) = multipliers(0.5, &[0.25, 0.75], 0.125);
        // 0.5·0.25/0.125 = 1 → (2^30, 1); 0.5·0.75/0.125 = 3 → (0.75·2^31, 2).
        assert_eq!(m, vec![1 << 30, 1_610_612_736]);
        assert_eq!(s, vec![1, 2]);
    }

    /// The GELU table against an independent f64 evaluation: `x = s_in·(q − zp_in)`,
    /// `gelu(x) = x/2·(1 + erf(x/√2))` (tch's f64 `erf`), `clamp(round(gelu/s_out) + zp_out)`.
    /// f32 rounding may move a value sitting on a rounding boundary by one step, at most once per
    /// table here.
    #[test]
    fn gelu_table_is_quantized_gelu_of_the_dequantized_input() {
        use tch::{Device, Kind, Tensor};
        let q = |scale: f32, zero_point: i8| QuantParams { scale, zero_point };
        for (q_in, q_out) in [
            (q(0.045, 18), q(0.02, -119)),
            (q(0.02, 0), q(0.015, -100)),
            (q(0.1, -20), q(0.05, -128)),
        ] {
            let table = gelu_table(q_in, q_out);
            assert_eq!(table.len(), 256);
            let x: Vec<f64> = (-128..=127)
                .map(|v: i32| f64::from(q_in.scale) * f64::from(v - i32::from(q_in.zero_point)))
                .collect();
            let xt = Tensor::from_slice(&x).to_kind(Kind::Double);
            let g = &xt * 0.5 * ((&xt / std::f64::consts::SQRT_2).erf() + 1.0);
            let g = Vec::<f64>::try_from(&g.to_device(Device::Cpu)).unwrap();
            let mut off = 0;
            for (i, (&t, &g)) in table.iter().zip(&g).enumerate() {
                let r = g / f64::from(q_out.scale);
                let want = (r.round() + f64::from(q_out.zero_point)).clamp(-128.0, 127.0) as i32;
                let d = (i32::from(t) - want).abs();
                assert!(
                    d <= 1,
                    "q = {}: table {t}, gelu {g} → {want}",
                    i as i32 - 128
                );
                off += usize::from(d == 1);
            }
            assert!(off <= 1, "{off} entries one step off");
            // GELU rises for x > 0.
            assert!(table[255] > table[128]);
        }
    }

    /// Quantization groups: a Concat's inputs (the class token constant included) share one
    /// quantization whose range covers them all; a Reshape, Transpose or Slice keeps its input's;
    /// an Add's constant gets its own; LayerNorm's γ, β stay f32; a Softmax output is (1/256,
    /// −128).
    #[test]
    fn tensor_quant_groups_follow_the_ops() {
        use crate::export::lower::CoreNode;
        let node = |op: CoreOp, inputs: Vec<u16>, output: u16| CoreNode {
            name: String::new(),
            op,
            inputs,
            output,
            source: format!("op {output}"),
        };
        let none = Activation::None;
        // 0 input [2, 2] → 1 Linear → 2 Transpose → 4 Concat(3 constant, 2) → 6 Add(4, 5
        // constant) → 9 LayerNorm(6, 7, 8) → 10 Softmax → 11 Slice.
        let g = CoreGraph {
            name: "t".into(),
            shapes: vec![
                vec![2, 2],
                vec![2, 2],
                vec![2, 2],
                vec![1, 2],
                vec![3, 2],
                vec![3, 2],
                vec![3, 2],
                vec![2],
                vec![2],
                vec![3, 2],
                vec![3, 2],
                vec![2],
            ],
            constants: vec![
                None,
                None,
                None,
                Some(vec![-4.0, 0.5]),
                None,
                Some(vec![0.25; 6]),
                None,
                Some(vec![1.0; 2]),
                Some(vec![0.0; 2]),
                None,
                None,
                None,
            ],
            nodes: vec![
                node(
                    CoreOp::Linear {
                        activation: none,
                        out_features: 2,
                        weight: vec![1.0; 4],
                        bias: vec![0.0; 2],
                    },
                    vec![0],
                    1,
                ),
                node(CoreOp::Transpose { perm: vec![1, 0] }, vec![1], 2),
                node(CoreOp::Concat { axis: 0 }, vec![3, 2], 4),
                node(CoreOp::Add { activation: none }, vec![4, 5], 6),
                node(CoreOp::LayerNorm { eps: 1e-6 }, vec![6, 7, 8], 9),
                node(CoreOp::Softmax { beta: 1.0 }, vec![9], 10),
                node(
                    CoreOp::Slice {
                        axis: 0,
                        start: 0,
                        len: 1,
                    },
                    vec![10],
                    11,
                ),
            ],
            logits: 11,
            embedding: 9,
            mean: vec![0.0],
            std: vec![1.0],
        };
        let mut ranges: Ranges = vec![None; 12];
        ranges[0] = Some((-1.0, 1.0));
        ranges[1] = Some((-2.0, 2.0));
        ranges[2] = Some((-2.0, 2.0));
        ranges[4] = Some((-3.0, 2.5));
        ranges[6] = Some((-5.0, 5.0));
        ranges[9] = Some((-1.5, 1.5));
        let q = tensor_quant(&g, &ranges).unwrap();
        let concat = activation_quant(-4.0, 2.5);
        // The Linear requantizes straight to the Concat's scale, which covers the class token.
        assert_eq!([q[1], q[2], q[3], q[4]], [Some(concat); 4]);
        assert_eq!(q[0], Some(activation_quant(-1.0, 1.0)));
        assert_eq!(q[5], Some(activation_quant(0.0, 0.25)));
        assert_eq!(q[6], Some(activation_quant(-5.0, 5.0)));
        assert_eq!((q[7], q[8]), (None, None));
        assert_eq!(q[9], Some(activation_quant(-1.5, 1.5)));
        assert_eq!((q[10], q[11]), (Some(SOFTMAX_OUTPUT), Some(SOFTMAX_OUTPUT)));
        // The int8 file: LayerNorm as Dequantize → LayerNorm → Quantize on two new f32 tensors.
        let file = to_int8(&g, &ranges).unwrap();
        let ops: Vec<String> = file.nodes.iter().map(|n| format!("{:?}", n.op)).collect();
        assert_eq!(file.tensors.len(), 14);
        assert!(ops[4].starts_with("Dequantize") && ops[6].starts_with("Quantize"));
        assert_eq!(file.nodes[4].inputs, [6]);
        assert_eq!(file.nodes[5].inputs, [12, 7, 8]);
        assert_eq!(file.nodes[6].inputs, [13]);
        assert_eq!(file.tensors[12].dtype, DType::F32);
        // The class token stored int8 with the Concat's quantization: −4 → −128.
        let cls = file.tensors[3].data.as_ref().unwrap();
        assert_eq!(cls[0] as i8, quantize(-4.0, concat));
        assert_eq!(cls[0] as i8, -128);
    }
}
