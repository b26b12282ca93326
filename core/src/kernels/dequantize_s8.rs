//! int8 → f32 (TFLite's DEQUANTIZE).

use crate::error::{Error, Result};
use crate::quant::dequantize;
use crate::tensor::QuantParams;

/// `output[i] = s · (input[i] − zp) as f32` with `(s, zp) = q`: the integer difference (exact in
/// f32), then one f32 product ([`crate::quant::dequantize`]), i.e. the exact product rounded once.
/// TFLite's `Dequantize` computes `static_cast<float>(scale * (val − zero_point))` with a float
/// scale: the same single rounding, so the same bits.
///
/// `Err(KernelBadArguments)` if the lengths differ.
pub fn dequantize_s8(q: QuantParams, input: &[i8], output: &mut [f32]) -> Result<()> {
    if input.len() != output.len() {
        return Err(Error::KernelBadArguments);
    }
    for (o, &v) in output.iter_mut().zip(input) {
        *o = dequantize(v, q);
    }
    Ok(())
}
