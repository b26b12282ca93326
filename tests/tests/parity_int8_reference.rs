//! The int8 path (exporter's quantization + the core's kernels) against an independent,
//! straightforward reference of the TFLite-Micro formula in i64 arithmetic, written here from
//! the spec (`../shared/FACTS.md` §5, `docs/quantization.md`) without using any of the core's
//! arithmetic: on random models and inputs, logits and embeddings must be bit-identical.
//!
//! The reference reads the quantized parameters, shapes and tensor ids from the model file (the
//! core's `Model` only parses it here) and computes every op of the graph with plain loops.

use denoiserep_core::format::graph::{Op, Weights};
use denoiserep_core::{Activation, DType, Model, QuantParams, TensorData, WindowSpec};
use denoiserep_tests::{random_samples, RandomModel};
use denoiserep_trainer::export::{calibrate, lower, to_int8, RangeMethod};
use denoiserep_trainer::rng::Rng;

const I32_MIN: i64 = i32::MIN as i64;
const I32_MAX: i64 = i32::MAX as i64;

/// gemmlowp SaturatingRoundingDoublingHighMul on i32 values held in i64.
fn srdhm(a: i64, b: i64) -> i64 {
    if a == I32_MIN && b == I32_MIN {
        return I32_MAX;
    }
    let ab = a * b;
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    (ab + nudge) / (1i64 << 31) // Rust's `/` truncates toward zero, like C++.
}

/// gemmlowp RoundingDivideByPOT.
fn rdivpot(x: i64, e: i64) -> i64 {
    let mask = (1i64 << e) - 1;
    let rem = x & mask;
    let threshold = (mask >> 1) + i64::from(x < 0);
    (x >> e) + i64::from(rem > threshold)
}

/// tflite MultiplyByQuantizedMultiplier; the left-shifted value must fit in i32 (the loader
/// guarantees it; asserted so a violation is visible).
fn mbqm(x: i64, m: i64, shift: i64) -> i64 {
    let shifted = x << shift.max(0);
    assert!(
        (I32_MIN..=I32_MAX).contains(&shifted),
        "accumulator {x} << {shift} leaves int32"
    );
    rdivpot(srdhm(shifted, m), (-shift).max(0))
}

fn requant(acc: i64, m: i64, shift: i64, out: QuantParams, act: Activation) -> i8 {
    assert!(
        (I32_MIN..=I32_MAX).contains(&acc),
        "accumulator {acc} leaves int32"
    );
    let (lo, hi) = act_range(out, act);
    (mbqm(acc, m, shift) + i64::from(out.zero_point)).clamp(lo, hi) as i8
}

/// The int8 output range of an activation on a tensor quantized by `q` (the spec's clamp:
/// ReLU `[max(−128, zp), 127]`, ReLU6 also `≤ zp + round(6 / scale)`).
fn act_range(q: QuantParams, act: Activation) -> (i64, i64) {
    let zp = i64::from(q.zero_point);
    match act {
        Activation::None => (-128, 127),
        Activation::Relu => (zp.max(-128), 127),
        Activation::Relu6 => (
            zp.max(-128),
            (zp + (6.0 / f64::from(q.scale)).round() as i64).min(127),
        ),
    }
}

/// A tensor of the reference: its dims and int8 values with their quantization.
#[derive(Clone)]
struct T {
    dims: Vec<usize>,
    v: Vec<i8>,
    q: QuantParams,
}

fn chw(dims: &[usize]) -> (usize, usize, usize) {
    match *dims {
        [c, h, w] => (c, h, w),
        _ => panic!("expected a C×H×W tensor, got {dims:?}"),
    }
}

/// The quantized parameters of an int8 weighted op, as plain vectors.
struct Params {
    w: Vec<i8>,
    b: Vec<i64>,
    m: Vec<i64>,
    shift: Vec<i64>,
}

fn params(w: &Weights<'_>) -> Params {
    match w {
        Weights::S8 {
            weights,
            bias,
            multiplier,
            shift,
        } => Params {
            w: weights.iter().collect(),
            b: bias.iter().map(i64::from).collect(),
            m: multiplier.iter().map(i64::from).collect(),
            shift: shift.iter().map(i64::from).collect(),
        },
        Weights::F32 { .. } => panic!("f32 weights in an int8 model"),
    }
}

/// The input coordinate of output `o` and tap `k` along one axis (`None` in the padding).
fn tap(o: usize, k: usize, stride: u16, pad_before: u16, n: usize) -> Option<usize> {
    let i = (o * usize::from(stride) + k).checked_sub(usize::from(pad_before))?;
    (i < n).then_some(i)
}

/// Conv2d (`depthwise`: one input channel per output channel) in i64 arithmetic.
fn conv(
    x: &T,
    win: &WindowSpec,
    act: Activation,
    p: &Params,
    out_dims: &[usize],
    out_q: QuantParams,
    depthwise: bool,
) -> Vec<i8> {
    let (ci, h, w) = chw(&x.dims);
    let (co, oh, ow) = chw(out_dims);
    let [kh, kw] = win.kernel.map(usize::from);
    let zp = i64::from(x.q.zero_point);
    let mut out = Vec::with_capacity(co * oh * ow);
    for o in 0..co {
        let channels = if depthwise { o..o + 1 } else { 0..ci };
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = p.b[o];
                for i in channels.clone() {
                    for ky in 0..kh {
                        let Some(iy) = tap(oy, ky, win.stride[0], win.padding[0], h) else {
                            continue; // zero padding: x − zp = 0
                        };
                        for kx in 0..kw {
                            let Some(ix) = tap(ox, kx, win.stride[1], win.padding[2], w) else {
                                continue;
                            };
                            let wi = if depthwise {
                                (o * kh + ky) * kw + kx
                            } else {
                                ((o * ci + i) * kh + ky) * kw + kx
                            };
                            let xv = i64::from(x.v[(i * h + iy) * w + ix]);
                            acc += i64::from(p.w[wi]) * (xv - zp);
                        }
                    }
                }
                out.push(requant(acc, p.m[o], p.shift[o], out_q, act));
            }
        }
    }
    out
}

/// Runs the int8 model on one raw input; returns (logits, embedding) as int8. Reads the
/// quantized parameters, shapes and tensor ids from the model (the core only parses the file
/// here) and computes every op with plain loops.
fn reference(bytes: &[u8], x: &[f32]) -> (Vec<i8>, Vec<i8>) {
    let model = Model::from_bytes(bytes).expect("decodes");
    let info = model.info();
    let quant = |id: u16| match model.tensor(id).expect("tensor").dtype {
        DType::I8(q) => q,
        DType::F32 => panic!("tensor {id} is f32 in an int8 model"),
    };
    let dims = |id: u16| -> Vec<usize> {
        let shape = model.tensor(id).expect("tensor").shape;
        shape.dims().iter().map(|&d| d as usize).collect()
    };
    let q_in = quant(info.input);
    let in_dims = dims(info.input);
    let mean: Vec<f32> = info.input_mean.iter().collect();
    let std: Vec<f32> = info.input_std.iter().collect();
    let per = x.len() / mean.len();
    let v = x
        .iter()
        .enumerate()
        .map(|(i, &xv)| {
            let xn = (xv - mean[i / per]) / std[i / per];
            let r = (xn / q_in.scale).round() as i64 + i64::from(q_in.zero_point);
            r.clamp(-128, 127) as i8
        })
        .collect();
    let mut t: Vec<Option<T>> = vec![None; model.tensor_count()];
    t[usize::from(info.input)] = Some(T {
        dims: in_dims,
        v,
        q: q_in,
    });
    for node in model.nodes() {
        let node = node.expect("node decodes");
        let x = t[usize::from(node.inputs.ids()[0])]
            .clone()
            .expect("input computed earlier");
        let (out_dims, out_q) = (dims(node.output), quant(node.output));
        let zp = i64::from(x.q.zero_point);
        let v = match &node.op {
            Op::Linear(l) => {
                let p = params(&l.weights);
                let n_in = *x.dims.last().unwrap();
                let n_out = p.b.len();
                let mut out = Vec::new();
                for row in x.v.chunks(n_in) {
                    for o in 0..n_out {
                        let mut acc = p.b[o];
                        for (i, &xv) in row.iter().enumerate() {
                            acc += i64::from(p.w[o * n_in + i]) * (i64::from(xv) - zp);
                        }
                        out.push(requant(acc, p.m[o], p.shift[o], out_q, l.activation));
                    }
                }
                out
            }
            Op::Conv2d(c) => conv(
                &x,
                &c.window,
                c.activation,
                &params(&c.weights),
                &out_dims,
                out_q,
                false,
            ),
            Op::DepthwiseConv2d(c) => conv(
                &x,
                &c.window,
                c.activation,
                &params(&c.weights),
                &out_dims,
                out_q,
                true,
            ),
            Op::MaxPool2d(pool) => {
                assert_eq!(out_q, x.q, "max pooling keeps the quantization");
                let (_, h, w) = chw(&x.dims);
                let (c, oh, ow) = chw(&out_dims);
                let win = pool.window;
                let [kh, kw] = win.kernel.map(usize::from);
                let mut out = Vec::with_capacity(c * oh * ow);
                for ch in 0..c {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut best = i8::MIN;
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = tap(oy, ky, win.stride[0], win.padding[0], h);
                                    let ix = tap(ox, kx, win.stride[1], win.padding[2], w);
                                    if let (Some(iy), Some(ix)) = (iy, ix) {
                                        best = best.max(x.v[(ch * h + iy) * w + ix]);
                                    }
                                }
                            }
                            out.push(best);
                        }
                    }
                }
                out
            }
            Op::Reshape => {
                assert_eq!(out_q, x.q, "reshape keeps the quantization");
                x.v.clone()
            }
            Op::Activation(a) => {
                assert_eq!(out_q, x.q, "an activation keeps the quantization");
                let (lo, hi) = act_range(x.q, a.activation);
                x.v.iter()
                    .map(|&q| i64::from(q).clamp(lo, hi) as i8)
                    .collect()
            }
            other => panic!("the reference has no {:?}", other.kind()),
        };
        assert_eq!(v.len(), out_dims.iter().product::<usize>());
        t[usize::from(node.output)] = Some(T {
            dims: out_dims,
            v,
            q: out_q,
        });
    }
    let get = |id: u16| t[usize::from(id)].as_ref().expect("computed").v.clone();
    (get(info.logits), get(info.embedding))
}

fn int8_values(data: TensorData<'_>) -> Vec<i8> {
    match data {
        TensorData::I8 { values, .. } => values.to_vec(),
        TensorData::F32(_) => panic!("an int8 model returned f32"),
    }
}

/// One random case: builds, calibrates, quantizes, then compares core and reference.
fn check_case(seed: u64) -> (usize, usize) {
    let mut rng = Rng::new(seed);
    let pick =
        |rng: &mut Rng, lo: usize, hi: usize| lo + (rng.next_u64() % (hi - lo + 1) as u64) as usize;
    let conv_blocks = pick(&mut rng, 0, 2);
    let side = pick(&mut rng, 4, 9).max(1 << conv_blocks);
    let spec = RandomModel {
        input_shape: [pick(&mut rng, 1, 3), side, pick(&mut rng, side.min(6), 9)],
        conv: (0..conv_blocks).map(|_| pick(&mut rng, 1, 6)).collect(),
        hidden: (0..pick(&mut rng, usize::from(conv_blocks == 0), 2))
            .map(|_| pick(&mut rng, 1, 24))
            .collect(),
        classes: pick(&mut rng, 2, 7),
        weight_scale: [0.3, 1.0, 4.0][pick(&mut rng, 0, 2)],
        bias_scale: [0.0, 0.1, 2.0][pick(&mut rng, 0, 2)],
    };
    let model = spec.build(&mut rng);
    let len: usize = spec.input_shape.iter().product();
    let calib = random_samples(&mut rng, 24, len, 0.0, 1.0);
    // Percentile calibration on some cases narrows ranges: larger multipliers (shift > 0) and
    // saturating outputs.
    let method = match rng.next_u64() % 3 {
        0 => RangeMethod::MinMax,
        1 => RangeMethod::Percentile(99.0),
        _ => RangeMethod::Percentile(75.0),
    };
    let graph = lower(&model).unwrap();
    let ranges = calibrate(&graph, &calib, method, false).unwrap();
    let file = to_int8(&graph, &ranges).unwrap();
    let bytes = file.encode().unwrap();
    let core = Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; core.arena_size()];
    // Inputs partly outside the calibrated range: the input quantization saturates too.
    let inputs = random_samples(&mut rng, 12, len, -0.5, 1.5);
    let mut positive_shifts = 0;
    for node in core.nodes() {
        let weights = match node.unwrap().op {
            Op::Linear(l) => l.weights,
            Op::Conv2d(c) => c.weights,
            Op::DepthwiseConv2d(c) => c.weights,
            _ => continue,
        };
        if let Weights::S8 { shift, .. } = weights {
            positive_shifts += shift.iter().filter(|&s| s > 0).count();
        }
    }
    let mut saturated = 0;
    for x in inputs.chunks(len) {
        let out = core.run(x, &mut arena).unwrap();
        let (logits, embedding) = (
            int8_values(out.logits.data),
            int8_values(out.embedding.data),
        );
        let (ref_logits, ref_embedding) = reference(&bytes, x);
        assert_eq!(
            logits,
            ref_logits,
            "seed {seed}: logits differ ({spec:?})",
            spec = spec.conv
        );
        assert_eq!(embedding, ref_embedding, "seed {seed}: embedding differs");
        saturated += logits.iter().filter(|&&q| q == 127 || q == -128).count();
    }
    (positive_shifts, saturated)
}

#[test]
fn int8_core_is_bit_identical_to_an_i64_reference_on_random_models() {
    let (mut shifts, mut saturated) = (0, 0);
    for seed in 0..40 {
        let (s, t) = check_case(seed);
        shifts += s;
        saturated += t;
    }
    // The cases exercise left shifts (multiplier > 1) and saturation, not only the easy path.
    assert!(shifts > 0, "no case had a positive shift");
    assert!(saturated > 0, "no case saturated its logits");
}
