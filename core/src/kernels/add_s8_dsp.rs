//! Elementwise Add, int8, on the Cortex-M4 DSP extension (`cfg(denoiserep_dsp)`): the same bits
//! as [`super::add_s8_reference`] (TFLite-Micro's ADD) at about a third of its
//! instructions per element.
//!
//! Each of the three `MultiplyByQuantizedMultiplierSmallerThanOneExp` steps is
//! `RDBP(SRDHM(a, m), e)`, with `SRDHM(a, m) = trunc((a·m + nudge) / 2^31)` (nudge `2^30`, or
//! `1 − 2^30` when `a·m < 0`). Whenever `2a` fits in an i32,
//! `SRDHM(a, m) = SMMULR(2a, m) = ⌊(2a·m + 2^31) / 2^32⌋` exactly: for `a·m ≥ 0` both are
//! `⌊(a·m + 2^30) / 2^31⌋`; for `a·m = −k < 0`, `trunc((1 − k − 2^30) / 2^31) =
//! −⌊(k − 1 + 2^30) / 2^31⌋ = −⌈(k − 2^30) / 2^31⌉ = ⌊(2^30 − k) / 2^31⌋`. (`SRDHM`'s saturation
//! needs `a = m = i32::MIN`, impossible once `2a` fits.) So each step is one `SMMULR` and a
//! branch-free rounding shift with the constants computed once per call ([`Pot`]).
//!
//! When `2a` fits: the inputs are `a = (x − zp)·2^ls` with `|x − zp| ≤ 255` for zero points in
//! `[−128, 127]` and `ls ≤ 20`, so `|2a| < 2^29`; each scaled input is then at most
//! `2^28 + 1` in magnitude (`|m| ≤ 2^31`, and the rounding shift only shrinks it), so the sum
//! `s1 + s2` doubled is below `2^31` too. Those are exactly the parameters
//! [`crate::quant::add_s8_params`] produces (`ls = 20`, int8 zero points); any other parameters
//! take the reference loop ([`fits`]).

#[cfg(denoiserep_dsp)]
use core::arch::asm;

use super::params::AddS8Params;

/// `SMMULR r, a, b`: `⌊(a·b + 2^31) / 2^32⌋` (the high word of the product, rounded).
#[cfg(denoiserep_dsp)]
#[inline(always)]
fn smmulr(a: i32, b: i32) -> i32 {
    let r: i32;
    // SAFETY: one register-only DSP instruction (ARMv7E-M); no memory, stack or flags.
    unsafe {
        asm!("smmulr {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `SMMULR`'s definition in 64-bit arithmetic: the host's stand-in, so the unit tests below run
/// this loop (and check the identities it relies on) on the host; the device runs the
/// instruction (checked against the reference in QEMU by `kernel-check`).
#[cfg(not(denoiserep_dsp))]
#[inline(always)]
fn smmulr(a: i32, b: i32) -> i32 {
    ((i64::from(a) * i64::from(b) + (1 << 31)) >> 32) as i32
}

/// gemmlowp's `RoundingDivideByPOT(x, e)` with `e = clamp(exponent, 0, 31)` fixed: `x / 2^e`
/// rounded to nearest, ties away from zero, branch-free (`rem > thr` as the sign of `thr − rem`).
#[derive(Clone, Copy)]
struct Pot {
    e: u32,
    mask: i32,
    half: i32,
}

impl Pot {
    fn new(exponent: i32) -> Self {
        let e = exponent.clamp(0, 31) as u32;
        let mask = ((1u64 << e) - 1) as i32;
        Self {
            e,
            mask,
            half: mask >> 1,
        }
    }

    #[inline(always)]
    fn apply(&self, x: i32) -> i32 {
        let rem = x & self.mask;
        let thr = self.half + ((x as u32) >> 31) as i32;
        (x >> self.e) + ((thr.wrapping_sub(rem) as u32) >> 31) as i32
    }
}

/// True when the parameters are in the range where the `SMMULR` form is exact (see the module
/// doc): `left_shift ∈ [0, 20]` and both input zero points in `[−128, 127]`.
pub(crate) fn fits(p: &AddS8Params) -> bool {
    let int8 = -128..=127;
    (0..=20).contains(&p.left_shift) && int8.contains(&p.input1_zp) && int8.contains(&p.input2_zp)
}

/// `output[i] = add(a[i], b[i])` for parameters that [`fits`] accepts (equal lengths checked
/// by the caller): per element two `SMMULR` + rounding shifts for the inputs, one for the sum,
/// then the zero point and the clamp.
pub(crate) fn run(p: &AddS8Params, a: &[i8], b: &[i8], output: &mut [i8]) {
    let shift = (p.left_shift.clamp(0, 20) + 1) as u32; // `2a = (x − zp)·2^(ls + 1)`
    let (zp1, zp2) = (p.input1_zp, p.input2_zp);
    let (m1, m2, m_out) = (
        p.input1_multiplier,
        p.input2_multiplier,
        p.output_multiplier,
    );
    // The reference's exponents: `0 − shift` (saturating), clamped to 0..=31 by RDBP.
    let pot1 = Pot::new(0i32.saturating_sub(p.input1_shift));
    let pot2 = Pot::new(0i32.saturating_sub(p.input2_shift));
    let pot_out = Pot::new(0i32.saturating_sub(p.output_shift));
    // `max(act_min).min(act_max).clamp(−128, 127)` = `max(lo).min(hi)` with both bounds clamped
    // first (clamping is monotone; when `act_min > act_max` both give `clamp(act_max)`).
    let lo = p.act_min.clamp(-128, 127);
    let hi = p.act_max.clamp(-128, 127);
    for ((o, &x1), &x2) in output.iter_mut().zip(a).zip(b) {
        let s1 = pot1.apply(smmulr((i32::from(x1) - zp1) << shift, m1));
        let s2 = pot2.apply(smmulr((i32::from(x2) - zp2) << shift, m2));
        let raw = pot_out.apply(smmulr((s1 + s2) << 1, m_out));
        *o = raw.wrapping_add(p.output_zp).max(lo).min(hi) as i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::add_s8_reference;
    use crate::quant::{
        add_s8_params, rounding_divide_by_pot, saturating_rounding_doubling_high_mul,
    };
    use crate::tensor::{Activation, QuantParams};
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// Edge values for multipliers and shifted inputs.
    const EDGES: [i32; 10] = [
        i32::MIN,
        i32::MIN + 1,
        -(1 << 30),
        -3,
        -1,
        0,
        1,
        (1 << 30) - 1,
        1 << 30,
        i32::MAX,
    ];

    #[test]
    fn pot_equals_rounding_divide_by_pot_at_every_exponent_and_tie() {
        for exponent in -3..=40 {
            let pot = Pot::new(exponent);
            let e = exponent.clamp(0, 31) as u32;
            let mut xs: Vec<i32> = EDGES.to_vec();
            for k in -40i64..=40 {
                // Ties k·2^e ± 2^(e−1), their neighbours, and multiples.
                let base = k << e;
                let half = if e > 0 { 1i64 << (e - 1) } else { 0 };
                for v in [
                    base,
                    base + half,
                    base - half,
                    base + half + 1,
                    base - half - 1,
                ] {
                    if let Ok(v) = i32::try_from(v) {
                        xs.push(v);
                    }
                }
            }
            for x in xs {
                assert_eq!(
                    pot.apply(x),
                    rounding_divide_by_pot(x, exponent),
                    "x = {x}, exponent = {exponent}"
                );
            }
        }
    }

    #[test]
    fn smmulr_of_doubled_equals_srdhm_at_the_edges() {
        for a in EDGES.iter().map(|&a| a / 2) {
            for m in EDGES {
                assert_eq!(
                    smmulr(2 * a, m),
                    saturating_rounding_doubling_high_mul(a, m),
                    "a = {a}, m = {m}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn smmulr_of_doubled_equals_srdhm(a in -(1i32 << 30)..(1i32 << 30), m: i32) {
            prop_assert_eq!(smmulr(2 * a, m), saturating_rounding_doubling_high_mul(a, m));
        }

        #[test]
        fn pot_equals_rounding_divide_by_pot(x: i32, exponent in -3i32..40) {
            prop_assert_eq!(Pot::new(exponent).apply(x), rounding_divide_by_pot(x, exponent));
        }

        /// The loop equals the reference on every input pair, for parameters from random scales
        /// (the input scales' ratio decides how often the inputs' rounding shifts meet ties).
        #[test]
        fn run_equals_reference_on_every_pair(
            s in proptest::array::uniform3(-12i32..3),
            f in proptest::array::uniform3(1.0f32..2.0),
            zp in proptest::array::uniform3(any::<i8>()),
            act in 0u8..3,
        ) {
            let q = |i: usize| QuantParams {
                scale: f[i] * 2f32.powi(s[i]),
                zero_point: zp[i],
            };
            let act = [Activation::None, Activation::Relu, Activation::Relu6][act as usize];
            let Some(p) = add_s8_params(q(0), q(1), q(2), act) else {
                return Ok(());
            };
            prop_assert!(fits(&p));
            let a: Vec<i8> = (0..1 << 16).map(|i: i32| (i >> 8) as i8).collect();
            let b: Vec<i8> = (0..1 << 16).map(|i: i32| i as i8).collect();
            let mut want = vec![0i8; a.len()];
            let mut got = vec![0i8; a.len()];
            add_s8_reference(&p, &a, &b, &mut want).unwrap();
            run(&p, &a, &b, &mut got);
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn out_of_contract_parameters_do_not_fit() {
        let q = QuantParams {
            scale: 0.1,
            zero_point: 3,
        };
        let p = add_s8_params(q, q, q, Activation::None).unwrap();
        assert!(fits(&p));
        assert!(!fits(&AddS8Params {
            left_shift: 21,
            ..p
        }));
        assert!(!fits(&AddS8Params {
            input1_zp: 128,
            ..p
        }));
        assert!(!fits(&AddS8Params {
            input2_zp: -129,
            ..p
        }));
    }
}
