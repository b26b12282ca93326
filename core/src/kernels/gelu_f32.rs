//! GELU (the erf form), f32, in place.

#[cfg(any(test, not(feature = "fast-math")))]
use core::f32::consts::FRAC_1_SQRT_2;

/// `gelu(x) = (0.5 · x) · (1 + libm::erff(x · FRAC_1_SQRT_2))`, evaluated exactly in this
/// order: `t = x · (1/√2 as f32)`, `e = erff(t)`, `s = 1 + e`, `h = 0.5 · x`, `y = h · s`, each
/// rounded to f32 (no fused multiply-add). PyTorch's `gelu(approximate='none')` computes
/// `x · 0.5 · (1 + erf(x · M_SQRT1_2))`, the same operations in the same order with its own
/// `erf`. NaN gives NaN, `+∞` gives `+∞`, `−∞` gives NaN (`−∞ · 0`).
///
/// With the `fast-math` feature (micromath has no erf): the tanh form
/// `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))`, written as the equal
/// `x / (1 + e^(−2·√(2/π) · (x + 0.044715 · x³)))` with micromath's exp
/// ([`super::fast_math::exp`]), in this order: `c = (x · x) · x`, `u = x + 0.044715 · c`,
/// `a = (−2·√(2/π) as f32) · u`, `e = exp(a)`, `y = x / (1 + e)`. Max abs error against the
/// default (erf) GELU: 5.1·10⁻⁴ over `[−10, 10]`, at `x ≈ 1.22` (the unit test's dense grid, held
/// to 6·10⁻⁴; the tanh form with an exact exp is 4.7·10⁻⁴ off). NaN gives NaN, `+∞` gives `+∞`, `−∞` gives NaN.
#[inline]
pub fn gelu_f32_one(x: f32) -> f32 {
    #[cfg(not(feature = "fast-math"))]
    {
        (0.5 * x) * (1.0 + libm::erff(x * FRAC_1_SQRT_2))
    }
    #[cfg(feature = "fast-math")]
    {
        let u = x + GELU_TANH_CUBIC * ((x * x) * x);
        x / (1.0 + super::fast_math::exp(GELU_TANH_SCALE * u))
    }
}

/// `0.044715`, the cubic coefficient of GELU's tanh form.
#[cfg(feature = "fast-math")]
const GELU_TANH_CUBIC: f32 = 0.044715;
/// `−2 · √(2/π)`, rounded to f32.
#[cfg(feature = "fast-math")]
const GELU_TANH_SCALE: f32 = -1.595_769_2;

/// `x[i] = gelu(x[i])` in place ([`gelu_f32_one`]).
pub fn gelu_f32(x: &mut [f32]) {
    for v in x {
        *v = gelu_f32_one(*v);
    }
}

#[cfg(all(test, feature = "fast-math"))]
mod tests {
    use super::*;
    extern crate std;

    /// The default path (erf form, libm), in the documented order.
    fn gelu_libm(x: f32) -> f32 {
        (0.5 * x) * (1.0 + libm::erff(x * FRAC_1_SQRT_2))
    }

    #[test]
    fn fast_gelu_is_within_6e_4_of_libm_on_a_dense_grid() {
        // Every 2⁻¹² over [−10, 10]: 81 921 points.
        let (mut worst, mut at) = (0.0f32, 0.0f32);
        for i in -40960..=40960 {
            let x = i as f32 / 4096.0;
            let d = (gelu_f32_one(x) - gelu_libm(x)).abs();
            if d > worst {
                (worst, at) = (d, x);
            }
        }
        std::println!("gelu fast-math: max |fast − libm| = {worst:e} at x = {at}");
        assert!(worst <= 6e-4, "max |fast − libm| = {worst} at x = {at}");
        // Far out, the identity and zero, as the erf form.
        for x in [12.0f32, 100.0, 1e20] {
            assert_eq!(gelu_f32_one(x), x);
            assert!(
                gelu_f32_one(-x).abs() <= 1e-30,
                "gelu({}) = {}",
                -x,
                gelu_f32_one(-x)
            );
        }
    }

    #[test]
    fn fast_gelu_edges() {
        assert!(gelu_f32_one(f32::NAN).is_nan());
        assert_eq!(gelu_f32_one(f32::INFINITY), f32::INFINITY);
        assert!(gelu_f32_one(f32::NEG_INFINITY).is_nan());
        assert_eq!(gelu_f32_one(0.0), 0.0);
    }
}
