//! Elementwise Add, int8, exactly TFLite-Micro's ADD (reference `integer_ops::AddFunc`); the
//! Cortex-M4 DSP loop is in `add_s8_dsp.rs`.

use super::params::AddS8Params;
use crate::error::{Error, Result};
use crate::quant::{rounding_divide_by_pot, saturating_rounding_doubling_high_mul};

/// TFLite `MultiplyByQuantizedMultiplierSmallerThanOneExp` (double-rounding build):
/// `RoundingDivideByPOT(SRDHM(x, multiplier), −shift)`. For the `shift ≤ 0` that
/// [`crate::quant::add_s8_params`] produces this equals
/// [`crate::quant::multiply_by_quantized_multiplier`]; a positive shift is treated as 0.
#[inline]
fn mul_by_multiplier_smaller_than_one(x: i32, multiplier: i32, shift: i32) -> i32 {
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x, multiplier),
        0i32.saturating_sub(shift),
    )
}

/// One output element: `clamp(M_out(M1((x1 − zp1)·2^ls) + M2((x2 − zp2)·2^ls)) + zp_out)`
/// (see [`AddS8Params`]).
#[inline]
pub(crate) fn add_s8_one(p: &AddS8Params, x1: i8, x2: i8) -> i8 {
    let ls = p.left_shift.clamp(0, 31) as u32;
    // TFLite: `(x + offset) * (1 << left_shift)`; |x − zp| ≤ 255 so with left_shift = 20 nothing
    // overflows. Out-of-contract parameters wrap instead of panicking.
    let shifted1 = i32::from(x1).wrapping_sub(p.input1_zp).wrapping_shl(ls);
    let shifted2 = i32::from(x2).wrapping_sub(p.input2_zp).wrapping_shl(ls);
    let scaled1 = mul_by_multiplier_smaller_than_one(shifted1, p.input1_multiplier, p.input1_shift);
    let scaled2 = mul_by_multiplier_smaller_than_one(shifted2, p.input2_multiplier, p.input2_shift);
    let raw_sum = scaled1.wrapping_add(scaled2);
    let raw_output =
        mul_by_multiplier_smaller_than_one(raw_sum, p.output_multiplier, p.output_shift)
            .wrapping_add(p.output_zp);
    raw_output.max(p.act_min).min(p.act_max).clamp(-128, 127) as i8
}

/// int8 elementwise Add of two equal-shape tensors, bit for bit TFLite-Micro's ADD
/// (`reference_integer_ops::Add`, double-rounding build) with the parameters of
/// [`crate::quant::add_s8_params`]:
///
/// `x_k' = (x_k − zp_k) · 2^left_shift`, `s_k = RDBP(SRDHM(x_k', m_k), −shift_k)`,
/// `y = clamp(RDBP(SRDHM(s_1 + s_2, m_out), −shift_out) + zp_out, act_min, act_max)`.
///
/// All three slices must have the same length (no broadcasting); `Err(KernelBadArguments)`
/// otherwise. Parameters outside what `add_s8_params` produces give unspecified values (two's
/// complement wrapping, an `act_min > act_max` clamps to `act_max`), never a panic.
///
/// On `thumbv7em-*` (`cfg(denoiserep_dsp)`) the DSP loop (`add_s8_dsp.rs`, one `SMMULR` per
/// multiplier) runs for the parameters `add_s8_params` produces; on x86_64 with AVX2 the 8-lane
/// loop of `host/add.rs` (any parameters); on other hosts, tensors of at least `TABLE_MIN_LEN`
/// elements take the per-input rescale tables; otherwise the reference loop. The same bits on
/// every path.
pub fn add_s8(p: &AddS8Params, a: &[i8], b: &[i8], output: &mut [i8]) -> Result<()> {
    if a.len() != b.len() || a.len() != output.len() {
        return Err(Error::KernelBadArguments);
    }
    #[cfg(denoiserep_dsp)]
    if super::add_s8_dsp::fits(p) {
        super::add_s8_dsp::run(p, a, b, output);
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if super::host::add_s8(p, a, b, output) {
        return Ok(());
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if a.len() >= TABLE_MIN_LEN {
        add_s8_tables(p, a, b, output);
        return Ok(());
    }
    reference(p, a, b, output);
    Ok(())
}

/// [`add_s8`] forced onto the reference loop on every target: the oracle the firmware's
/// `kernel-check` binary compares the DSP loop with.
#[doc(hidden)]
pub fn add_s8_reference(p: &AddS8Params, a: &[i8], b: &[i8], output: &mut [i8]) -> Result<()> {
    if a.len() != b.len() || a.len() != output.len() {
        return Err(Error::KernelBadArguments);
    }
    reference(p, a, b, output);
    Ok(())
}

/// The element-at-a-time loop (slices of equal length).
fn reference(p: &AddS8Params, a: &[i8], b: &[i8], output: &mut [i8]) {
    for ((o, &x1), &x2) in output.iter_mut().zip(a).zip(b) {
        *o = add_s8_one(p, x1, x2);
    }
}

/// Tensors at least this long take [`add_s8_tables`] (its tables cost 512 input rescalings).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const TABLE_MIN_LEN: usize = 1024;

/// [`add_s8`] on the host: `scaled1` depends on `x1` only and `scaled2` on `x2` only, so both are
/// computed once for each of the 256 int8 values (the same function calls as [`add_s8_one`], so
/// the same bits), and each element costs two table reads, the wrapping sum and the output
/// rescaling. Not on the device: the two tables take 2 KiB of stack.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn add_s8_tables(p: &AddS8Params, a: &[i8], b: &[i8], output: &mut [i8]) {
    let ls = p.left_shift.clamp(0, 31) as u32;
    let scaled = |x: i8, zp: i32, m: i32, shift: i32| {
        let shifted = i32::from(x).wrapping_sub(zp).wrapping_shl(ls);
        mul_by_multiplier_smaller_than_one(shifted, m, shift)
    };
    let mut t1 = [0i32; 256];
    let mut t2 = [0i32; 256];
    for v in 0..256usize {
        let x = v as u8 as i8;
        t1[v] = scaled(x, p.input1_zp, p.input1_multiplier, p.input1_shift);
        t2[v] = scaled(x, p.input2_zp, p.input2_multiplier, p.input2_shift);
    }
    for ((o, &x1), &x2) in output.iter_mut().zip(a).zip(b) {
        let raw_sum = t1[usize::from(x1 as u8)].wrapping_add(t2[usize::from(x2 as u8)]);
        let raw_output =
            mul_by_multiplier_smaller_than_one(raw_sum, p.output_multiplier, p.output_shift)
                .wrapping_add(p.output_zp);
        *o = raw_output.max(p.act_min).min(p.act_max).clamp(-128, 127) as i8;
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;
    use crate::quant::add_s8_params;
    use crate::tensor::{Activation, QuantParams};
    use std::vec::Vec;

    /// The host's table path gives [`add_s8_one`]'s result for all 65 536 input pairs, with
    /// several scale ratios, zero points and activations (raw params with unusual shifts too).
    #[test]
    fn add_s8_tables_match_the_element_loop() {
        let q = |scale: f32, zero_point: i8| QuantParams { scale, zero_point };
        let mut params: Vec<AddS8Params> = [
            (q(0.1, 0), q(0.1, 0), q(0.2, 0), Activation::None),
            (q(0.05, -7), q(0.3, 100), q(0.17, -128), Activation::Relu),
            (q(1.5, 127), q(0.001, -128), q(0.9, 3), Activation::Relu6),
            (q(0.02, 12), q(0.021, -12), q(0.011, 0), Activation::None),
        ]
        .into_iter()
        .map(|(a, b, o, act)| add_s8_params(a, b, o, act).unwrap())
        .collect();
        let mut raw = params[1];
        raw.left_shift = 40;
        raw.input1_shift = 3;
        raw.input2_shift = -40;
        raw.output_shift = 2;
        raw.input1_multiplier = i32::MIN;
        params.push(raw);
        let a: Vec<i8> = (0..65536u32).map(|v| (v & 0xff) as u8 as i8).collect();
        let b: Vec<i8> = (0..65536u32).map(|v| (v >> 8) as u8 as i8).collect();
        for (n, p) in params.iter().enumerate() {
            let mut y = std::vec![0i8; a.len()];
            add_s8(p, &a, &b, &mut y).unwrap();
            for ((&y, &x1), &x2) in y.iter().zip(&a).zip(&b) {
                assert_eq!(y, add_s8_one(p, x1, x2), "params {n}, {x1} + {x2}");
            }
        }
    }
}
