//! The `fast-math` feature's scalar functions: micromath approximations, called as plain
//! functions (`micromath::F32Ext::exp(x)`, never method syntax, which resolves to std's
//! correctly rounded functions whenever std is linked, as in host tests, and would then give
//! other bits than the device). Only f32 operations and integer bit manipulation, no fused
//! multiply-add: the same bits on the host and on a Cortex-M4F.
//!
//! Accuracy (checked by the unit tests below and beside each kernel):
//! - [`exp`]: relative error ≤ 2.5·10⁻³ against `libm::expf` on `[−87, 88]` (micromath's
//!   range reduction to `2^k · e^f` with a 4-term Taylor series of `e^f`, `|f| < ln 2`).
//! - [`rsqrt`]: relative error ≤ 5·10⁻⁶ against `1 / libm::sqrtf` (micromath's bit-level seed,
//!   3.4 % off, then two Newton–Raphson steps: 1.7·10⁻³, then 4.5·10⁻⁶).

use micromath::F32Ext;

/// Largest argument [`exp`] passes to micromath: past ≈ 88.0 micromath's exponent arithmetic
/// wraps (`exp(89)` gives NaN), so larger arguments give `+∞` (true `e^x` overflows f32 at 88.72).
pub const EXP_MAX_ARG: f32 = 88.0;

/// `e^x`, micromath's approximation. NaN gives NaN (micromath alone gives `+∞`), `x > 88` gives
/// `+∞`, `x < −87.3` gives `0`, `exp(0) = 1` exactly.
#[inline]
pub fn exp(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > EXP_MAX_ARG {
        return f32::INFINITY;
    }
    F32Ext::exp(x)
}

/// `1 / √v` for `v > 0`: micromath's `invsqrt` (the bit-level seed `0x5f375a86 − bits/2`), then
/// two Newton–Raphson steps, each `y = y · (1.5 − (0.5 · v) · (y · y))` evaluated in this order.
/// NaN and `v < 0` give NaN (as `1 / libm::sqrtf`), `+∞` gives `0`; `0` and subnormal `v` give NaN (the Newton step's `y · y`
/// overflows), as the libm path's `0 / 0` does for a zero variance with `eps = 0`.
#[inline]
pub fn rsqrt(v: f32) -> f32 {
    // micromath's seed `0x5f37_5a86 − bits / 2` underflows (a panic with overflow checks, e.g.
    // debug builds; wrapping in release) for a set sign bit: negative `v` and negative NaNs.
    if v.is_nan() || v < 0.0 {
        return f32::NAN;
    }
    if v == f32::INFINITY {
        return 0.0;
    }
    let h = 0.5 * v;
    let mut y = F32Ext::invsqrt(v);
    y = y * (1.5 - h * (y * y));
    y * (1.5 - h * (y * y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_its_bound_and_handles_the_edges() {
        let mut worst = 0.0f32;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let want = libm::expf(x);
            worst = worst.max((exp(x) - want).abs() / want);
            x += 1.0 / 256.0;
        }
        assert!(worst <= 2.5e-3, "exp relative error {worst}");
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(89.0), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-1e30), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-0.0), 1.0);
    }

    #[test]
    fn rsqrt_is_within_its_bound_and_handles_the_edges() {
        let mut worst = 0.0f32;
        let mut v = 1e-12f32;
        while v < 1e12 {
            worst = worst.max((rsqrt(v) * libm::sqrtf(v) - 1.0).abs());
            v *= 1.001;
        }
        assert!(worst <= 5e-6, "rsqrt relative error {worst}");
        assert!(rsqrt(f32::NAN).is_nan());
        assert!(rsqrt(-f32::NAN).is_nan());
        assert!(rsqrt(-1.0).is_nan());
        assert!(rsqrt(f32::NEG_INFINITY).is_nan());
        assert_eq!(rsqrt(f32::INFINITY), 0.0);
        assert!(rsqrt(0.0).is_nan());
        assert_eq!(
            F32Ext::sqrt(2.0),
            1.5,
            "micromath's crude sqrt, called explicitly"
        );
    }
}
