//! 32-bit fixed-point arithmetic of gemmlowp (`fixedpoint/fixedpoint.h`), as TFLite's int8
//! Softmax uses it, bit for bit.
//!
//! A value in format `Qm.n` (`m` integer bits, `n = 31 − m` fractional bits) is an `i32` raw
//! `r` meaning `r / 2^n`. gemmlowp encodes `m` in a C++ template type; here the functions take
//! raw `i32`s and document the formats, with the integer bits as a plain argument where they
//! vary.
//!
//! Overflow: gemmlowp's scalar `+`, `−` and `<<` are plain C++ `int32_t` operations; in the
//! ranges TFLite's softmax uses them they never overflow. Here they wrap (two's complement), so
//! every function is total and never panics, and in TFLite's ranges the results are the same.

use crate::quant::{rounding_divide_by_pot, saturating_rounding_doubling_high_mul};

/// gemmlowp `RoundingHalfSum`: `(a + b) / 2` rounded to nearest, ties away from zero (computed
/// in i64, so it never overflows).
#[inline]
pub fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = i64::from(a) + i64::from(b);
    let sign = if sum >= 0 { 1 } else { -1 };
    // |sum + sign| / 2 ≤ 2^31, and the only value that could reach it, 2^31, needs a = b = 2^31−1:
    // (2^32 − 2 + 1) / 2 = 2^31 − 1 (truncating), so the result always fits.
    ((sum + sign) / 2) as i32
}

/// gemmlowp `SaturatingRoundingMultiplyByPOT<exponent>`: for `exponent > 0`, `x · 2^exponent`
/// saturated to `[i32::MIN, i32::MAX]` (values with `|x| > 2^(31 − exponent) − 1` saturate);
/// for `exponent < 0`, [`rounding_divide_by_pot`] by `−exponent`; `x` itself for 0.
/// `exponent` is clamped to `[−31, 31]`.
#[inline]
pub fn saturating_rounding_multiply_by_pot(x: i32, exponent: i32) -> i32 {
    let e = exponent.clamp(-31, 31);
    match e {
        0 => x,
        e if e < 0 => rounding_divide_by_pot(x, -e),
        e => {
            let threshold: i32 = ((1i64 << (31 - e)) - 1) as i32;
            if x > threshold {
                i32::MAX
            } else if x < -threshold {
                i32::MIN
            } else {
                x << e
            }
        }
    }
}

/// gemmlowp `Rescale<dst_bits>` of a value with `src_bits` integer bits: changes the format from
/// `Q(src_bits)` to `Q(dst_bits)`, i.e. [`saturating_rounding_multiply_by_pot`] by
/// `src_bits − dst_bits` (rounding when bits are dropped, saturating when the value does not fit).
#[inline]
pub fn rescale(x: i32, src_bits: i32, dst_bits: i32) -> i32 {
    saturating_rounding_multiply_by_pot(x, src_bits.saturating_sub(dst_bits))
}

/// `1.0` in format `Q(integer_bits)`: `2^(31 − integer_bits)`, or `i32::MAX` for Q0.31, which
/// cannot represent 1 (gemmlowp `FixedPoint::One`). `integer_bits` is clamped to `0..=30`.
#[inline]
pub const fn one(integer_bits: u32) -> i32 {
    if integer_bits == 0 {
        i32::MAX
    } else {
        let ib = if integer_bits > 30 { 30 } else { integer_bits };
        1 << (31 - ib)
    }
}

/// Fixed-point product: gemmlowp `operator*` on `FixedPoint`s. The integer bits add up
/// (`Qa × Qb → Q(a+b)`); the raw result is [`saturating_rounding_doubling_high_mul`].
#[inline]
pub fn mul(a: i32, b: i32) -> i32 {
    saturating_rounding_doubling_high_mul(a, b)
}

/// `exp(−1/8)` in Q0.31 (gemmlowp's constant).
const EXP_MINUS_ONE_EIGHTH: i32 = 1_895_147_668;
/// `1/3` in Q0.31.
const ONE_THIRD: i32 = 715_827_883;

/// gemmlowp `exp_on_interval_between_negative_one_quarter_and_0_excl`: `exp(a)` for `a` in
/// `[−1/4, 0)`, input and output Q0.31.
///
/// A 4th-order Taylor expansion around `−1/8`: with `x = a + 1/8`,
/// `exp(a) = e^(−1/8) · (1 + x + x²/2 + x³/6 + x⁴/24)`, evaluated as
/// `c + c · (x + ((x⁴/4 + x³) · 1/3 + x²) / 2)` with every product a rounding doubling high
/// multiply and every `/2^k` a rounding shift.
pub fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    let x = a.wrapping_add(1 << 28);
    let x2 = mul(x, x);
    let x3 = mul(x2, x);
    let x4 = mul(x2, x2);
    let x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2);
    let poly = saturating_rounding_multiply_by_pot(
        mul(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2),
        -1,
    );
    EXP_MINUS_ONE_EIGHTH.wrapping_add(mul(EXP_MINUS_ONE_EIGHTH, x.wrapping_add(poly)))
}

/// `exp(−2^k)` in Q0.31 for `k = −2, −1, …, 4` (gemmlowp's barrel-shifter constants).
const EXP_OF_MINUS_POWERS_OF_TWO: [(i32, i32); 7] = [
    (-2, 1_672_461_947), // exp(−1/4)
    (-1, 1_302_514_674), // exp(−1/2)
    (0, 790_015_084),    // exp(−1)
    (1, 290_630_308),    // exp(−2)
    (2, 39_332_535),     // exp(−4)
    (3, 720_401),        // exp(−8)
    (4, 242),            // exp(−16)
];

/// gemmlowp `exp_on_negative_values`: `exp(a)` for `a ≤ 0` given in `Q(integer_bits)` (TFLite's
/// softmax uses Q5.26), result in Q0.31 (`exp(0)` gives `i32::MAX`).
///
/// Steps: `r = (a mod 1/4) − 1/4 ∈ [−1/4, 0)` (bitwise, on the raw value), `exp(r)` by
/// [`exp_on_interval_between_negative_one_quarter_and_0_excl`], then for each bit `2^k` of
/// `r − a` (`k = −2 … 4`, only those with `k < integer_bits`) one multiply by `exp(−2^k)`. For
/// `integer_bits > 5`, inputs below −32 give 0. `integer_bits` is clamped to `0..=29` (the
/// formats in which 1/4 is representable).
pub fn exp_on_negative_values(a: i32, integer_bits: u32) -> i32 {
    let ib = integer_bits.min(29) as i32;
    let frac = 31 - ib;
    let one_quarter: i32 = 1 << (frac - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(rescale(
        a_mod_quarter_minus_one_quarter,
        ib,
        0,
    ));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    for &(k, multiplier) in &EXP_OF_MINUS_POWERS_OF_TWO {
        if ib > k && remainder & (1 << (frac + k)) != 0 {
            result = mul(result, multiplier);
        }
    }
    if ib > 5 {
        let clamp = -(1i32 << (36 - ib)); // −32 in Q(ib)
        if a < clamp {
            result = 0;
        }
    }
    if a == 0 {
        result = one(0);
    }
    result
}

/// `48/17` in Q2.29.
const FORTY_EIGHT_OVER_SEVENTEEN: i32 = 1_515_870_810;
/// `−32/17` in Q2.29.
const MINUS_THIRTY_TWO_OVER_SEVENTEEN: i32 = -1_010_580_540;

/// gemmlowp `one_over_one_plus_x_for_x_in_0_1`: `1 / (1 + a)` for `a` in `[0, 1)`, input and
/// output Q0.31.
///
/// Newton–Raphson on `d = (1 + a)/2 ∈ [1/2, 1)` (rounded half sum): start from
/// `x₀ = 48/17 − 32/17 · d` (Q2.29), three steps `x ← x + x · (1 − d · x)`, result `x / 2`.
pub fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    let half_denominator = rounding_half_sum(a, one(0));
    let mut x = FORTY_EIGHT_OVER_SEVENTEEN
        .wrapping_add(mul(half_denominator, MINUS_THIRTY_TWO_OVER_SEVENTEEN));
    for _ in 0..3 {
        let half_denominator_times_x = mul(half_denominator, x); // Q0 × Q2 → Q2
        let one_minus = one(2).wrapping_sub(half_denominator_times_x);
        // Q2 × Q2 → Q4, rescaled to Q2.
        x = x.wrapping_add(rescale(mul(x, one_minus), 4, 2));
    }
    // x / 2 exactly: Q2 → Q1 by relabelling, then Q1 → Q0.
    rescale(x, 1, 0)
}

/// TFLite `GetReciprocal`: for a positive `x` in `Q(x_integer_bits)`, returns
/// `(scale, num_bits_over_unit)` with `scale` in Q0.31 and
/// `1/x ≈ scale · 2^(−num_bits_over_unit)`.
///
/// `x` is normalized to `x' = x · 2^(clz(x))` in `[1, 2)` (the leading one moved to bit 31);
/// `scale = 1 / (1 + (x' − 1))` by [`one_over_one_plus_x_for_x_in_0_1`] and
/// `num_bits_over_unit = x_integer_bits − clz(x)`. For `x ≤ 0` the result is meaningless
/// (TFLite never calls it so) but no panic.
pub fn get_reciprocal(x: i32, x_integer_bits: i32) -> (i32, i32) {
    let ux = x as u32;
    let headroom_plus_one = ux.leading_zeros();
    let num_bits_over_unit = x_integer_bits.wrapping_sub(headroom_plus_one as i32);
    let shifted_sum_minus_one = ux
        .checked_shl(headroom_plus_one)
        .unwrap_or(0)
        .wrapping_sub(1 << 31) as i32;
    (
        one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one),
        num_bits_over_unit,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q31: f64 = 2_147_483_648.0;

    fn q(x: f64, integer_bits: i32) -> i32 {
        libm::round(x * (1u64 << (31 - integer_bits)) as f64) as i32
    }

    #[test]
    fn rounding_half_sum_rounds_away_from_zero() {
        assert_eq!(rounding_half_sum(1, 2), 2);
        assert_eq!(rounding_half_sum(-1, -2), -2);
        assert_eq!(rounding_half_sum(-1, 2), 1);
        assert_eq!(rounding_half_sum(i32::MAX, i32::MAX), i32::MAX);
        assert_eq!(rounding_half_sum(i32::MIN, i32::MIN), i32::MIN);
    }

    #[test]
    fn multiply_by_pot_saturates_and_rounds() {
        assert_eq!(saturating_rounding_multiply_by_pot(3, 2), 12);
        assert_eq!(saturating_rounding_multiply_by_pot(1 << 29, 2), i32::MAX);
        assert_eq!(saturating_rounding_multiply_by_pot(-(1 << 29), 2), i32::MIN);
        // 2^29 − 1 is the threshold for exponent 2: still exact.
        assert_eq!(
            saturating_rounding_multiply_by_pot((1 << 29) - 1, 2),
            i32::MAX - 3
        );
        assert_eq!(saturating_rounding_multiply_by_pot(6, -2), 2); // 1.5 → 2
        assert_eq!(saturating_rounding_multiply_by_pot(-6, -2), -2); // −1.5 → −2
        assert_eq!(saturating_rounding_multiply_by_pot(5, -2), 1); // 1.25 → 1
        assert_eq!(saturating_rounding_multiply_by_pot(7, 0), 7);
        assert_eq!(rescale(q(0.5, 0), 0, 12), q(0.5, 12));
    }

    #[test]
    fn constants_are_the_reals_they_name() {
        assert_eq!(EXP_MINUS_ONE_EIGHTH, q(libm::exp(-0.125), 0));
        assert_eq!(ONE_THIRD, q(1.0 / 3.0, 0));
        for (k, m) in EXP_OF_MINUS_POWERS_OF_TWO {
            assert_eq!(m, q(libm::exp(-libm::pow(2.0, f64::from(k))), 0), "k = {k}");
        }
        assert_eq!(FORTY_EIGHT_OVER_SEVENTEEN, q(48.0 / 17.0, 2));
        assert_eq!(MINUS_THIRTY_TWO_OVER_SEVENTEEN, q(-32.0 / 17.0, 2));
        assert_eq!(one(0), i32::MAX);
        assert_eq!(one(2), 1 << 29);
        assert_eq!(one(12), 1 << 19);
    }

    #[test]
    fn exp_on_the_quarter_interval_is_accurate() {
        let mut worst = 0.0f64;
        for i in 1..=4096 {
            let x = -0.25 * f64::from(i) / 4096.0;
            let got = f64::from(exp_on_interval_between_negative_one_quarter_and_0_excl(q(
                x, 0,
            )));
            let err = (got / Q31 - libm::exp(x)).abs();
            worst = worst.max(err);
        }
        // The truncation error of the 4th-order Taylor polynomial: |x|^5 / 120 with |x| ≤ 1/8.
        assert!(worst < 2.6e-7, "worst error {worst:e}");
    }

    #[test]
    fn exp_on_negative_values_q5_26_is_accurate() {
        assert_eq!(exp_on_negative_values(0, 5), i32::MAX);
        let mut worst = 0.0f64;
        // −31.99 … 0 in steps of about 1/1000 (and the exact multiples of 1/4 on the way).
        for i in 1..=32_000 {
            let x = -f64::from(i) / 1000.0;
            let got = f64::from(exp_on_negative_values(q(x, 5), 5)) / Q31;
            worst = worst.max((got - libm::exp(x)).abs());
        }
        assert!(worst < 2.6e-7, "worst error {worst:e}");
        // Exactly −1, −2, −16: only barrel-shifter constants and exp(−1/4) from the polynomial.
        let e1 = f64::from(exp_on_negative_values(-(1 << 26), 5)) / Q31;
        assert!((e1 - libm::exp(-1.0)).abs() < 2.6e-7, "{e1}");
        // Most negative Q5.26 input (−32): tiny but not negative.
        let e32 = exp_on_negative_values(i32::MIN, 5);
        assert!((0..=1).contains(&e32), "{e32}");
    }

    #[test]
    fn exp_clamps_below_minus_32_for_wide_formats() {
        // Q8.23: −40 is representable and below −32.
        assert_eq!(exp_on_negative_values(q(-40.0, 8), 8), 0);
        let got = f64::from(exp_on_negative_values(q(-3.0, 8), 8)) / Q31;
        assert!((got - libm::exp(-3.0)).abs() < 1e-6);
    }

    #[test]
    fn reciprocal_is_accurate() {
        let mut worst = 0.0f64;
        for i in 0..=4096 {
            let a = f64::from(i) / 4097.0;
            let got = f64::from(one_over_one_plus_x_for_x_in_0_1(q(a, 0))) / Q31;
            worst = worst.max((got - 1.0 / (1.0 + a)).abs());
        }
        assert!(worst < 4e-9, "worst error {worst:e}");
    }

    #[test]
    fn get_reciprocal_normalizes() {
        // x = 3.0 = 1.5 · 2^1 in Q12.19: scale = 1/1.5, one bit over unit, 1/3 = scale · 2^−1.
        let (scale, bits) = get_reciprocal(3 << 19, 12);
        assert_eq!(bits, 1);
        let s = f64::from(scale) / Q31;
        assert!((s / 2.0 - 1.0 / 3.0).abs() < 1e-8, "{s}");
        // x = 1.0: scale ≈ 1, no bits over unit.
        let (scale, bits) = get_reciprocal(1 << 19, 12);
        assert_eq!(bits, 0);
        assert!(scale >= i32::MAX - 8, "{scale}");
        // Out-of-contract inputs never panic.
        let _ = get_reciprocal(0, 12);
        let _ = get_reciprocal(-5, 12);
    }
}
