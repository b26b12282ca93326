//! f32 → int8 (TFLite's QUANTIZE).

use crate::error::{Error, Result};
use crate::quant::quantize;
use crate::tensor::QuantParams;

/// `output[i] = clamp(round(input[i] / s) + zp, −128, 127)` with `(s, zp) = q`: one f32 division,
/// `libm::roundf` (half away from zero), then the zero point and the clamp
/// ([`crate::quant::quantize`]). This is TFLite's `AffineQuantize`
/// (`TfLiteRound(val / static_cast<float>(scale)) + zero_point`); where TFLite's float → int32
/// conversion is undefined (NaN, beyond ±2³¹) this saturates (NaN → `zp`).
///
/// `Err(KernelBadArguments)` if the lengths differ.
pub fn quantize_s8(q: QuantParams, input: &[f32], output: &mut [i8]) -> Result<()> {
    if input.len() != output.len() {
        return Err(Error::KernelBadArguments);
    }
    for (o, &x) in output.iter_mut().zip(input) {
        *o = quantize(x, q);
    }
    Ok(())
}
