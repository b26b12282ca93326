//! TFLite int8 quantization → the core's: activations' `(scale, zero point)`, weights' per-channel
//! scales, and the requantization `(multiplier, shift)` pairs computed as TFLite-Micro computes
//! them in its kernels' Prepare.

use anyhow::{anyhow, bail, Result};
use denoiserep_core::{quantize_multiplier, Activation, QuantParams};
use denoiserep_tflite_schema::tflite::{ActivationFunctionType, TensorType};

use super::reader::TensorMeta;

/// The quantization of an int8 activation tensor (one scale, one zero point in `[−128, 127]`).
pub fn activation_quant(ctx: &str, t: &TensorMeta<'_>) -> Result<QuantParams> {
    if t.ty != TensorType::Int8 {
        bail!(
            "{ctx}: {} is {:?}; only int8 activations are supported (uint8, int16, float and \
             hybrid models are not)",
            t.describe(),
            t.ty
        );
    }
    let q = t
        .quant(1)
        .map_err(|e| anyhow!("{ctx}: {e} (per-tensor activation quantization expected)"))?
        .ok_or_else(|| anyhow!("{ctx}: {} has no quantization", t.describe()))?;
    let (Some(&scale), Some(&zp)) = (q.scales.first(), q.zero_points.first()) else {
        bail!("{ctx}: {} has no scale or zero point", t.describe());
    };
    let zero_point = i8::try_from(zp)
        .map_err(|_| anyhow!("{ctx}: {} has zero point {zp} outside int8", t.describe()))?;
    let q = QuantParams { scale, zero_point };
    if !q.is_valid() {
        bail!(
            "{ctx}: {} has scale {scale} (must be finite and > 0)",
            t.describe()
        );
    }
    Ok(q)
}

/// The per-output-channel scales of symmetric int8 weights with `channels` channels along
/// `dim`: a per-tensor scale is replicated, per-channel scales are taken as is (TFLite-Micro's
/// `PopulateConvolutionQuantizationParams` broadcasts the same way). Every zero point must be 0.
/// Returns the scales and whether the tensor was per-channel.
pub fn weight_scales(
    ctx: &str,
    t: &TensorMeta<'_>,
    dim: usize,
    channels: usize,
) -> Result<(Vec<f32>, bool)> {
    if t.ty != TensorType::Int8 {
        bail!(
            "{ctx}: weights {} are {:?}; only int8 weights are supported",
            t.describe(),
            t.ty
        );
    }
    let q = t
        .quant(channels)?
        .ok_or_else(|| anyhow!("{ctx}: weights {} have no quantization", t.describe()))?;
    if q.zero_points.iter().any(|&z| z != 0) {
        bail!(
            "{ctx}: weights {} have a nonzero zero point; TFLite int8 weights are symmetric \
             (zero point 0)",
            t.describe()
        );
    }
    let per_channel = q.scales.len() > 1;
    let scales = match q.scales.len() {
        1 => vec![q.scales[0]; channels],
        n if n == channels => {
            if usize::try_from(q.dim).ok() != Some(dim) {
                bail!(
                    "{ctx}: weights {} are quantized along dim {}; dim {dim} expected",
                    t.describe(),
                    q.dim
                );
            }
            q.scales
        }
        n => bail!(
            "{ctx}: weights {} have {n} scales for {channels} output channels",
            t.describe()
        ),
    };
    if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        bail!(
            "{ctx}: weights {} have scale {s} (must be finite and > 0)",
            t.describe()
        );
    }
    Ok((scales, per_channel))
}

/// How TFLite-Micro forms the real multiplier `s_in · s_w / s_out` of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductPrecision {
    /// `(double)s_in · (double)s_w / (double)s_out`: CONV_2D and DEPTHWISE_CONV_2D
    /// (`PopulateConvolutionQuantizationParams`) and per-channel FULLY_CONNECTED.
    Double,
    /// `(double)(s_in · s_w) / (double)s_out`, the product rounded to float first:
    /// per-tensor FULLY_CONNECTED (`GetQuantizedConvolutionMultipler`).
    FloatProduct,
}

/// Per-channel `(multiplier, shift)` of an int8 layer, as TFLite-Micro's Prepare computes them
/// (then `QuantizeMultiplier`, i.e. [`quantize_multiplier`]).
pub fn multipliers(
    s_in: f32,
    scales: &[f32],
    s_out: f32,
    precision: ProductPrecision,
) -> (Vec<i32>, Vec<i8>) {
    scales
        .iter()
        .map(|&s_w| {
            let product = match precision {
                ProductPrecision::Double => f64::from(s_in) * f64::from(s_w),
                ProductPrecision::FloatProduct => f64::from(s_in * s_w),
            };
            let (m, shift) = quantize_multiplier(product / f64::from(s_out));
            // `quantize_multiplier` keeps the shift in [−31, 30].
            (m, shift as i8)
        })
        .unzip()
}

/// The int32 biases of a layer with `channels` outputs (all zero without a bias tensor). When the
/// bias carries scales they must be `s_in · s_w[c]` within a relative 1e-3 (TFLite's converter
/// writes exactly that product; TFLite-Micro adds the bias to the accumulator as is).
pub fn biases(
    ctx: &str,
    bias: Option<&TensorMeta<'_>>,
    channels: usize,
    s_in: f32,
    w_scales: &[f32],
) -> Result<Vec<i32>> {
    let Some(t) = bias else {
        return Ok(vec![0; channels]);
    };
    if t.ty != TensorType::Int32 {
        bail!(
            "{ctx}: bias {} is {:?}; int32 biases expected",
            t.describe(),
            t.ty
        );
    }
    if t.numel() != Some(channels) {
        bail!(
            "{ctx}: bias {} has shape {:?}; {channels} values expected",
            t.describe(),
            t.shape
        );
    }
    let data = t
        .data
        .ok_or_else(|| anyhow!("{ctx}: bias {} is not a constant", t.describe()))?;
    if data.len() != 4 * channels {
        bail!(
            "{ctx}: bias {} has {} bytes; {} expected",
            t.describe(),
            data.len(),
            4 * channels
        );
    }
    if let Some(q) = t.quant(channels)? {
        let n = q.scales.len();
        if n != 0 && n != 1 && n != channels {
            bail!(
                "{ctx}: bias {} has {n} scales for {channels} channels",
                t.describe()
            );
        }
        for (c, &s_w) in w_scales.iter().enumerate() {
            let Some(&s_b) = q.scales.get(if n == 1 { 0 } else { c }) else {
                break;
            };
            let want = f64::from(s_in) * f64::from(s_w);
            if (f64::from(s_b) - want).abs() > 1e-3 * want {
                bail!(
                    "{ctx}: bias {} channel {c} has scale {s_b:e}; input scale × weight scale = \
                     {want:e} expected",
                    t.describe()
                );
            }
        }
    }
    Ok(data
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// A fused activation TFLite-Micro clamps to as the core does: NONE, RELU, RELU6.
pub fn fused_activation(ctx: &str, f: ActivationFunctionType) -> Result<Activation> {
    match f {
        ActivationFunctionType::None => Ok(Activation::None),
        ActivationFunctionType::Relu => Ok(Activation::Relu),
        ActivationFunctionType::Relu6 => Ok(Activation::Relu6),
        other => {
            bail!("{ctx}: fused activation {other:?} is not supported (NONE, RELU and RELU6 are)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_product_differs_from_double_where_tflm_does() {
        // Scales whose float product rounds: the two precisions give the multipliers TFLM's two
        // code paths give; both go through quantize_multiplier.
        let (s_in, s_w, s_out) = (0.0123457_f32, 0.00314159_f32, 0.0271828_f32);
        let d = multipliers(s_in, &[s_w], s_out, ProductPrecision::Double);
        let f = multipliers(s_in, &[s_w], s_out, ProductPrecision::FloatProduct);
        let want_d = quantize_multiplier(f64::from(s_in) * f64::from(s_w) / f64::from(s_out));
        let want_f = quantize_multiplier(f64::from(s_in * s_w) / f64::from(s_out));
        assert_eq!((d.0[0], i32::from(d.1[0])), want_d);
        assert_eq!((f.0[0], i32::from(f.1[0])), want_f);
    }
}
