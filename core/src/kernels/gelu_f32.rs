//! GELU (the erf form), f32, in place.

use core::f32::consts::FRAC_1_SQRT_2;

/// `gelu(x) = (0.5 · x) · (1 + libm::erff(x · FRAC_1_SQRT_2))`, evaluated exactly in this
/// order: `t = x · (1/√2 as f32)`, `e = erff(t)`, `s = 1 + e`, `h = 0.5 · x`, `y = h · s`, each
/// rounded to f32 (no fused multiply-add). PyTorch's `gelu(approximate='none')` computes
/// `x · 0.5 · (1 + erf(x · M_SQRT1_2))`, the same operations in the same order with its own
/// `erf`. NaN gives NaN, `+∞` gives `+∞`, `−∞` gives NaN (`−∞ · 0`).
#[inline]
pub fn gelu_f32_one(x: f32) -> f32 {
    (0.5 * x) * (1.0 + libm::erff(x * FRAC_1_SQRT_2))
}

/// `x[i] = gelu(x[i])` in place ([`gelu_f32_one`]).
pub fn gelu_f32(x: &mut [f32]) {
    for v in x {
        *v = gelu_f32_one(*v);
    }
}
