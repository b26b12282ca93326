//! int8 post-training quantization (TFLite-Micro conventions, `docs/quantization.md` §9).
//!
//! * Weights: per output channel `c`, symmetric, `s_w[c] = max_j |w[c][j]| / 127` (f32; a channel
//!   of zeros gets `s_w = 1`), `q = clamp(round(w / s_w[c]), −127, 127)` (f32 division, ties away
//!   from zero).
//! * Activations (model input and every Linear / Conv2d output): per tensor, asymmetric, from the
//!   calibrated range widened to include 0 ([`activation_quant`]).
//! * Bias: int32 `round(b / (s_in · s_w[c]))` in f64 from the f32 scales; a bias that does not fit
//!   in int32 is refused, naming the layer and channel.
//! * Requantization: `(M[c], shift[c]) = quantize_multiplier((f64)s_in · (f64)s_w[c] / (f64)s_out)`
//!   (the core's function, tflite's `QuantizeMultiplier`).
//! * A ReLU after a Linear / Conv2d is fused into its output clamp `[max(−128, zp_out), 127]`.
//!
//! The encoded model is then loaded by the core, which refuses any layer whose int32 accumulator
//! could overflow for some input (the error names the layer in trainer terms).

use anyhow::{bail, Result};
use denoiserep_core::{
    quantize_multiplier, Activation, Conv2dS8, I32Data, I8Data, Layer, LinearS8, Precision,
    QuantParams,
};

use crate::export::calibrate::Ranges;
use crate::export::file::{i32_bytes, i8_bytes, ModelFile, OwnedLayer};
use crate::export::float::{skeleton, structural, to_u16, to_u32};
use crate::export::fused::{FusedLayer, FusedModel};
use crate::export::lower::{describe_step, Lowering};

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

fn range_quant(range: Option<(f32, f32)>, what: &str) -> Result<QuantParams> {
    match range {
        Some((lo, hi)) if lo.is_finite() && hi.is_finite() => Ok(activation_quant(lo, hi)),
        Some((lo, hi)) => bail!("calibration: {what} has a non-finite range [{lo}, {hi}]"),
        None => bail!("calibration: no range for {what} (a bug)"),
    }
}

/// The int8 model file of `model`, quantized with the calibrated `ranges` (which must come from
/// [`crate::export::calibrate::calibrate`] with the same `lowering`).
pub fn to_int8(model: &FusedModel, lowering: &Lowering, ranges: &Ranges) -> Result<ModelFile> {
    let input_quant = range_quant(Some(ranges.input), "the model input")?;
    let mut cur = input_quant;
    let mut layers = Vec::with_capacity(lowering.steps.len());
    for (step, range) in lowering.steps.iter().zip(&ranges.outputs) {
        let source = describe_step(model, step);
        let activation = if step.relu {
            Activation::Relu
        } else {
            Activation::None
        };
        let (w, b, out_ch) = match &model.layers[step.layer] {
            FusedLayer::Linear {
                weight,
                bias,
                out_features,
                ..
            } => (weight, bias, *out_features),
            FusedLayer::Conv2d {
                weight,
                bias,
                out_channels,
                ..
            } => (weight, bias, *out_channels),
            other => {
                layers.push(OwnedLayer::plain(structural(other, &source)?, source));
                continue;
            }
        };
        let output = range_quant(*range, &format!("the output of {source}"))?;
        let (wq, s_w) = quantize_weights(w, out_ch);
        let bias = quantize_bias(b, cur.scale, &s_w, &source)?;
        let (multiplier, shift) = multipliers(cur.scale, &s_w, output.scale);
        let template = match model.layers[step.layer] {
            FusedLayer::Linear {
                in_features,
                out_features,
                ..
            } => Layer::LinearS8(LinearS8 {
                in_features: to_u32(in_features, &source)?,
                out_features: to_u32(out_features, &source)?,
                activation,
                weights: I8Data::default(),
                bias: I32Data::default(),
                multiplier: I32Data::default(),
                shift: I8Data::default(),
                output,
            }),
            FusedLayer::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                ..
            } => Layer::Conv2dS8(Conv2dS8 {
                in_channels: to_u16(in_channels, &source)?,
                out_channels: to_u16(out_channels, &source)?,
                kernel: to_u16(kernel, &source)?,
                stride: to_u16(stride, &source)?,
                padding: to_u16(padding, &source)?,
                activation,
                weights: I8Data::default(),
                bias: I32Data::default(),
                multiplier: I32Data::default(),
                shift: I8Data::default(),
                output,
            }),
            _ => unreachable!("matched a weighted layer above"),
        };
        layers.push(OwnedLayer {
            template,
            weights: i8_bytes(&wq),
            bias: i32_bytes(&bias),
            multiplier: i32_bytes(&multiplier),
            shift: i8_bytes(&shift),
            source,
        });
        cur = output;
    }
    skeleton(
        model,
        lowering.embedding,
        Precision::Int8,
        Some(input_quant),
        layers,
    )
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
