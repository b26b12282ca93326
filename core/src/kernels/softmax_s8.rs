//! Softmax over the last dim, int8 in and out, exactly TFLite-Micro's.

use super::params::SoftmaxS8Params;
use crate::error::{Error, Result};
use crate::fixedpoint::{exp_on_negative_values, get_reciprocal, mul, rescale};
use crate::quant::{rounding_divide_by_pot, saturating_rounding_doubling_high_mul};

/// Largest softmax depth for which TFLite's int8 softmax is defined for every input.
///
/// The sum of exponentials is a Q12.19 value of at most `depth` (each term `≤ 1`). TFLite shifts
/// the output by `exponent = num_bits_over_unit + 23` and aborts (`TFLITE_CHECK`) when that
/// exceeds 31, i.e. when a row's sum reaches 512; a depth of at most 511 rules that out for every
/// input, a larger one does not (all-equal logits). The kernel and
/// [`crate::quant::softmax_s8_params`] reject larger depths up front instead of failing midway
/// on some inputs.
pub const MAX_SOFTMAX_S8_DEPTH: usize = 511;

/// Integer bits of the scaled differences (Q5.26).
const DIFF_BITS: u32 = 5;
/// Integer bits of the sum of exponentials (Q12.19).
const ACCUM_BITS: i32 = 12;

/// `diff = x − max` scaled to Q5.26, TFLite's `MultiplyByQuantizedMultiplierGreaterThanOne`:
/// `SRDHM(diff · 2^left_shift, multiplier)` (the product wraps, but `diff ≥ diff_min` keeps it
/// below `31 · 2^26` in magnitude for parameters from `softmax_s8_params`).
#[inline]
fn scaled_diff(diff: i32, p: &SoftmaxS8Params) -> i32 {
    let ls = p.input_left_shift.clamp(0, 31) as u32;
    saturating_rounding_doubling_high_mul(diff.wrapping_shl(ls), p.input_multiplier)
}

/// int8 softmax over the last dim, bit for bit TFLite-Micro's (`reference_ops::Softmax` with
/// int8 output: scale `1/256`, zero point `−128`) with the parameters of
/// [`crate::quant::softmax_s8_params`]. Per row of `depth` values:
///
/// 1. `max` = the row maximum; for each `x`, `diff = x − max`;
/// 2. terms with `diff < diff_min` count as 0 and give −128; the others are scaled to Q5.26
///    (`SRDHM(diff · 2^input_left_shift, input_multiplier)`), exponentiated with gemmlowp's
///    `exp_on_negative_values` (Q0.31), rescaled to Q12.19 (rounding) and summed;
/// 3. `(scale, bits) = GetReciprocal(sum, 12)`, `exponent = bits + 23`;
/// 4. `y = clamp(RDBP(SRDHM(scale, exp(diff)), exponent) − 128, −128, 127)`.
///
/// See [`crate::fixedpoint`] for the fixed-point functions.
///
/// `Err(KernelBadArguments)` if `rows · depth` overflows or differs from either slice length,
/// `depth > ` [`MAX_SOFTMAX_S8_DEPTH`], or `diff_min > 0` (the row maximum must count). Other
/// out-of-contract parameters give unspecified values, never a panic.
pub fn softmax_s8(p: &SoftmaxS8Params, input: &[i8], output: &mut [i8]) -> Result<()> {
    let n = p
        .rows
        .checked_mul(p.depth)
        .ok_or(Error::KernelBadArguments)?;
    if input.len() != n || output.len() != n || p.depth > MAX_SOFTMAX_S8_DEPTH || p.diff_min > 0 {
        return Err(Error::KernelBadArguments);
    }
    if p.depth == 0 {
        return Ok(());
    }
    for (x, y) in input
        .chunks_exact(p.depth)
        .zip(output.chunks_exact_mut(p.depth))
    {
        let max = i32::from(x.iter().copied().max().unwrap_or(i8::MIN));
        let mut sum_of_exps = 0i32; // Q12.19
        for &v in x {
            let diff = i32::from(v) - max;
            if diff >= p.diff_min {
                let e = exp_on_negative_values(scaled_diff(diff, p), DIFF_BITS);
                sum_of_exps = sum_of_exps.wrapping_add(rescale(e, 0, ACCUM_BITS));
            }
        }
        let (shifted_scale, num_bits_over_unit) = get_reciprocal(sum_of_exps, ACCUM_BITS);
        // In 23..=31 for depth ≤ 511 (sum in [1, 512)); `rounding_divide_by_pot` clamps anyway.
        let exponent = num_bits_over_unit.saturating_add(31 - 8);
        for (o, &v) in y.iter_mut().zip(x) {
            let diff = i32::from(v) - max;
            *o = if diff >= p.diff_min {
                let e = exp_on_negative_values(scaled_diff(diff, p), DIFF_BITS);
                let unsat = rounding_divide_by_pot(mul(shifted_scale, e), exponent);
                unsat.saturating_sub(128).clamp(-128, 127) as i8
            } else {
                i8::MIN
            };
        }
    }
    Ok(())
}
