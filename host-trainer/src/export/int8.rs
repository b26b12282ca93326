//! int8 post-training quantization (TFLite-Micro conventions, `docs/quantization.md` §9).
//!
//! * Weights: per output channel `c`, symmetric, `s_w[c] = max_j |w[c][j]| / 127` (f32; a channel
//!   of zeros gets `s_w = 1`), `q = clamp(round(w / s_w[c]), −127, 127)` (f32 division, ties away
//!   from zero). A depthwise conv's channel is its own `kh·kw` taps.
//! * Activations: per tensor, asymmetric, from the calibrated range widened to include 0
//!   ([`activation_quant`]) for the model input and the output of every op that requantizes
//!   (Linear, Conv2d, DepthwiseConv2d, Add); pooling, Mean, Reshape and standalone activations keep
//!   their input's quantization (as TFLite requires of them).
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
use denoiserep_core::{quantize_multiplier, DType, QuantParams};

use crate::export::calibrate::Ranges;
use crate::export::file::{
    i32_bytes, i8_bytes, shape, ModelFile, OwnedNode, OwnedOp, OwnedTensor, OwnedWeights,
};
use crate::export::float::{skeleton, structural};
use crate::export::lower::{CoreGraph, CoreOp};

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

fn range_quant(range: Option<&Option<(f32, f32)>>, what: &str) -> Result<QuantParams> {
    match range.copied().flatten() {
        Some((lo, hi)) if lo.is_finite() && hi.is_finite() => Ok(activation_quant(lo, hi)),
        Some((lo, hi)) => bail!("calibration: {what} has a non-finite range [{lo}, {hi}]"),
        None => bail!("calibration: no range for {what} (a bug)"),
    }
}

/// The int8 model file of the lowered graph `g`, quantized with the calibrated `ranges` (one
/// per core tensor, from [`crate::export::calibrate::calibrate`] on the f32 model of `g`).
pub fn to_int8(g: &CoreGraph, ranges: &Ranges) -> Result<ModelFile> {
    let n = g.shapes.len();
    let mut quant: Vec<Option<QuantParams>> = vec![None; n];
    quant[0] = Some(range_quant(ranges.first(), "the model input")?);
    let mut nodes = Vec::with_capacity(g.nodes.len());
    for node in &g.nodes {
        let source = &node.source;
        let input = node.inputs[0] as usize;
        let q_in =
            quant[input].ok_or_else(|| anyhow::anyhow!("{source}: input not quantized (a bug)"))?;
        let out = node.output as usize;
        let q_out = if node.op.requantizes() {
            range_quant(ranges.get(out), &format!("the output of {source}"))?
        } else {
            q_in
        };
        quant[out] = Some(q_out);
        let weighted = |weight: &[f32], bias: &[f32], channels: usize| -> Result<OwnedWeights> {
            let (wq, s_w) = quantize_weights(weight, channels);
            let b = quantize_bias(bias, q_in.scale, &s_w, source)?;
            let (multiplier, shift) = multipliers(q_in.scale, &s_w, q_out.scale);
            Ok(OwnedWeights::S8 {
                weights: i8_bytes(&wq),
                bias: i32_bytes(&b),
                multiplier: i32_bytes(&multiplier),
                shift: i8_bytes(&shift),
            })
        };
        let op = match &node.op {
            CoreOp::Linear {
                activation,
                out_features,
                weight,
                bias,
            } => OwnedOp::Linear {
                activation: *activation,
                weights: weighted(weight, bias, *out_features)?,
            },
            CoreOp::Conv2d {
                window,
                activation,
                out_channels,
                weight,
                bias,
            } => OwnedOp::Conv2d {
                window: *window,
                activation: *activation,
                weights: weighted(weight, bias, *out_channels)?,
            },
            CoreOp::DepthwiseConv2d {
                window,
                activation,
                weight,
                bias,
            } => OwnedOp::DepthwiseConv2d {
                window: *window,
                activation: *activation,
                weights: weighted(weight, bias, bias.len())?,
            },
            op => structural(op),
        };
        nodes.push(OwnedNode {
            op,
            inputs: node.inputs.clone(),
            output: node.output,
            source: source.clone(),
        });
    }
    let tensors = g
        .shapes
        .iter()
        .zip(&quant)
        .enumerate()
        .map(|(i, (dims, q))| {
            let q = q.ok_or_else(|| anyhow::anyhow!("tensor {i} is never written (a bug)"))?;
            Ok(OwnedTensor {
                shape: shape(dims, &format!("tensor {i}"))?,
                dtype: DType::I8(q),
                data: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(skeleton(g, tensors, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
