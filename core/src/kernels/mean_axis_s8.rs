//! Mean over one axis, int8 (TFLite-Micro's MEAN arithmetic).

use super::params::{AxisDims, MeanS8Params};
use crate::error::{Error, Result};
use crate::quant::multiply_by_quantized_multiplier;

/// `output[o][i] = clamp(MBQM(Σ_j input[o][j][i] − input_zp · n, multiplier, shift) + output_zp,
/// −128, 127)` with `n = p.len`: TFLite-Micro's `QuantizedMeanOrSum` (mean) for int8, the `1/n`
/// folded into `q.multiplier` by [`crate::quant::mean_s8_params`]. `input`
/// `[p.outer][p.len][p.inner]`, `output` `[p.outer][p.inner]`.
///
/// The sum is exact in i32 when the loader's bound holds (`n · max|q − zp| ≤ i32::MAX >>
/// max(shift, 0)`); it wraps rather than panics otherwise.
///
/// `Err(KernelBadArguments)` if `p.len == 0`, a size overflows, or a slice length does not match.
pub fn mean_axis_s8(p: &AxisDims, q: &MeanS8Params, input: &[i8], output: &mut [i8]) -> Result<()> {
    let bad = Error::KernelBadArguments;
    let out_len = p.outer.checked_mul(p.inner).ok_or(bad)?;
    if p.len == 0 || p.numel() != Some(input.len()) || output.len() != out_len {
        return Err(bad);
    }
    let row = p.len * p.inner; // ≤ numel, no overflow
    if row == 0 {
        return Ok(());
    }
    // TFLite: static_cast<int32_t>(temp_sum − input_zero_point · num_elements_in_axis), the
    // product in int64.
    let offset = i64::from(q.input_zp).wrapping_mul(p.len as i64);
    for (x, y) in input
        .chunks_exact(row)
        .zip(output.chunks_exact_mut(p.inner))
    {
        for (i, o) in y.iter_mut().enumerate() {
            let sum = x
                .iter()
                .skip(i)
                .step_by(p.inner)
                .fold(0i32, |acc, &v| acc.wrapping_add(i32::from(v)));
            let shifted = i64::from(sum).wrapping_sub(offset) as i32;
            let v = multiply_by_quantized_multiplier(shifted, q.multiplier, q.shift)
                .saturating_add(q.output_zp);
            *o = v.clamp(-128, 127) as i8;
        }
    }
    Ok(())
}
