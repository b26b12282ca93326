//! The int8 path (exporter's quantization + the core's kernels) against an independent,
//! straightforward reference of the TFLite-Micro formula in i64 arithmetic, written here from
//! the spec (`../shared/FACTS.md` §5, `docs/quantization.md`) without using any of the core's
//! arithmetic: on random models and inputs, logits and embeddings must be bit-identical.
//!
//! The reference reads the quantized parameters from the model file (`denoiserep_core::decode`
//! only parses bytes) and computes every layer with plain loops.

use denoiserep_core::{decode, Activation, Layer, Model, QuantParams, TensorData};
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
    let zp = i64::from(out.zero_point);
    let lo = match act {
        Activation::Relu => zp.max(-128),
        Activation::None => -128,
    };
    (mbqm(acc, m, shift) + zp).clamp(lo, 127) as i8
}

/// A tensor of the reference: CHW (or flat, h = w = 1) int8 values with their zero point.
struct T {
    c: usize,
    h: usize,
    w: usize,
    v: Vec<i8>,
    zp: i64,
}

/// Runs the decoded int8 model on one raw input; returns (logits, embedding) as int8.
fn reference(bytes: &[u8], x: &[f32]) -> (Vec<i8>, Vec<i8>) {
    let d = decode(bytes).expect("decodes");
    let m = d.metadata;
    let q_in = m.input_quant.expect("int8 model");
    let [c, h, w] = m.input_shape.map(usize::from);
    let mean: Vec<f32> = m.input_mean.iter().collect();
    let std: Vec<f32> = m.input_std.iter().collect();
    let mut v = Vec::with_capacity(x.len());
    for (i, &xv) in x.iter().enumerate() {
        let ch = i / (h * w);
        let xn = (xv - mean[ch]) / std[ch];
        let r = (xn / q_in.scale).round() as i64 + i64::from(q_in.zero_point);
        v.push(r.clamp(-128, 127) as i8);
    }
    let mut t = T {
        c,
        h,
        w,
        v,
        zp: i64::from(q_in.zero_point),
    };
    let mut embedding = Vec::new();
    for (index, layer) in d.layers.iter().enumerate() {
        t = match *layer {
            Layer::LinearS8(l) => {
                let (n_in, n_out) = (l.in_features as usize, l.out_features as usize);
                assert_eq!(n_in, t.v.len());
                let wts: Vec<i8> = l.weights.iter().collect();
                let mut out = Vec::with_capacity(n_out);
                for o in 0..n_out {
                    let mut acc = i64::from(l.bias.get(o).unwrap());
                    for i in 0..n_in {
                        acc += i64::from(wts[o * n_in + i]) * (i64::from(t.v[i]) - t.zp);
                    }
                    out.push(requant(
                        acc,
                        i64::from(l.multiplier.get(o).unwrap()),
                        i64::from(l.shift.get(o).unwrap()),
                        l.output,
                        l.activation,
                    ));
                }
                T {
                    c: n_out,
                    h: 1,
                    w: 1,
                    v: out,
                    zp: i64::from(l.output.zero_point),
                }
            }
            Layer::Conv2dS8(l) => {
                let (ci, co, k, s, p) = (
                    usize::from(l.in_channels),
                    usize::from(l.out_channels),
                    usize::from(l.kernel) as i64,
                    usize::from(l.stride) as i64,
                    usize::from(l.padding) as i64,
                );
                assert_eq!(ci, t.c);
                let oh = ((t.h as i64 + 2 * p - k) / s + 1) as usize;
                let ow = ((t.w as i64 + 2 * p - k) / s + 1) as usize;
                let wts: Vec<i8> = l.weights.iter().collect();
                let mut out = Vec::with_capacity(co * oh * ow);
                for o in 0..co {
                    for oy in 0..oh as i64 {
                        for ox in 0..ow as i64 {
                            let mut acc = i64::from(l.bias.get(o).unwrap());
                            for i in 0..ci {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        let (iy, ix) = (oy * s + ky - p, ox * s + kx - p);
                                        if iy < 0 || ix < 0 || iy >= t.h as i64 || ix >= t.w as i64
                                        {
                                            continue; // zero padding: x − zp = 0
                                        }
                                        let xv = t.v[(i * t.h + iy as usize) * t.w + ix as usize];
                                        let wv = wts[((o * ci + i) * k as usize + ky as usize)
                                            * k as usize
                                            + kx as usize];
                                        acc += i64::from(wv) * (i64::from(xv) - t.zp);
                                    }
                                }
                            }
                            out.push(requant(
                                acc,
                                i64::from(l.multiplier.get(o).unwrap()),
                                i64::from(l.shift.get(o).unwrap()),
                                l.output,
                                l.activation,
                            ));
                        }
                    }
                }
                T {
                    c: co,
                    h: oh,
                    w: ow,
                    v: out,
                    zp: i64::from(l.output.zero_point),
                }
            }
            Layer::MaxPool2d(mp) => {
                let (k, s) = (usize::from(mp.kernel), usize::from(mp.stride));
                let (oh, ow) = ((t.h - k) / s + 1, (t.w - k) / s + 1);
                let mut out = Vec::with_capacity(t.c * oh * ow);
                for ch in 0..t.c {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut best = i8::MIN;
                            for ky in 0..k {
                                for kx in 0..k {
                                    best =
                                        best.max(t.v[(ch * t.h + oy * s + ky) * t.w + ox * s + kx]);
                                }
                            }
                            out.push(best);
                        }
                    }
                }
                T {
                    c: t.c,
                    h: oh,
                    w: ow,
                    v: out,
                    zp: t.zp,
                }
            }
            Layer::Relu => {
                let zp = t.zp;
                T {
                    v: t.v.iter().map(|&q| i64::from(q).max(zp) as i8).collect(),
                    ..t
                }
            }
            Layer::Flatten => T {
                c: t.v.len(),
                h: 1,
                w: 1,
                ..t
            },
            other => panic!("reference has no {other:?}"),
        };
        if index == usize::from(m.embedding_layer) {
            embedding = t.v.clone();
        }
    }
    (t.v, embedding)
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
    let lowering = lower(&model);
    let ranges = calibrate(&model, &lowering, &calib, method, false).unwrap();
    let file = to_int8(&model, &lowering, &ranges).unwrap();
    let bytes = file.encode().unwrap();
    let core = Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; core.arena_size()];
    // Inputs partly outside the calibrated range: the input quantization saturates too.
    let inputs = random_samples(&mut rng, 12, len, -0.5, 1.5);
    let mut positive_shifts = 0;
    for l in core.layers() {
        if let Layer::LinearS8(l) = l.layer {
            positive_shifts += l.shift.iter().filter(|&s| s > 0).count();
        }
        if let Layer::Conv2dS8(l) = l.layer {
            positive_shifts += l.shift.iter().filter(|&s| s > 0).count();
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
