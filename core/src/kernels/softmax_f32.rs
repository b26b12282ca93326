//! Softmax over the last dim, f32.

use super::sum_f32;
use crate::error::{Error, Result};

/// Softmax of each of the `rows` rows of `depth` values (input and output `[rows][depth]`).
///
/// Order, per row (fixed, host and device):
/// 1. `m` = the row maximum: `m = x_0`, replaced by `x_i` when `x_i > m` in increasing `i`;
/// 2. `e_i = libm::expf(beta · (x_i − m))` (f32 subtraction, then f32 product), written to
///    `output`;
/// 3. `s` = the sum of the `e_i` in the 8-lane order of the module docs ([`sum_f32`]);
/// 4. `y_i = e_i / s` (one f32 division each).
///
/// This is TFLite's float softmax (`exp((x − max) · beta) / Σ`) with a fixed summation order and
/// `libm` instead of the platform `exp`. NaNs propagate; never panics.
///
/// With the `fast-math` feature, step 2 uses micromath's exp ([`super::fast_math::exp`]: relative
/// error ≤ 2.5·10⁻³) and step 4 is `r = 1 / s` (one division per row), then `y_i = e_i · r`.
/// Each `y_i` is then within 10⁻³ of the default's (unit test below: 5.0·10⁻⁴ seen).
///
/// `Err(KernelBadArguments)` if `rows · depth` overflows or differs from either slice length.
pub fn softmax_f32(
    rows: usize,
    depth: usize,
    beta: f32,
    input: &[f32],
    output: &mut [f32],
) -> Result<()> {
    let n = rows.checked_mul(depth).ok_or(Error::KernelBadArguments)?;
    if input.len() != n || output.len() != n {
        return Err(Error::KernelBadArguments);
    }
    if depth == 0 {
        return Ok(());
    }
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        let mut m = x[0];
        for &v in &x[1..] {
            if v > m {
                m = v;
            }
        }
        for (e, &v) in y.iter_mut().zip(x) {
            *e = exp(beta * (v - m));
        }
        let s = sum_f32(y);
        normalize(y, s);
    }
    Ok(())
}

#[cfg(not(feature = "fast-math"))]
use libm::expf as exp;

#[cfg(feature = "fast-math")]
use super::fast_math::exp;

/// Step 4: `y_i = e_i / s`.
#[cfg(not(feature = "fast-math"))]
#[inline]
fn normalize(y: &mut [f32], s: f32) {
    for e in y {
        *e /= s;
    }
}

/// Step 4, `fast-math`: `r = 1 / s`, then `y_i = e_i · r`.
#[cfg(feature = "fast-math")]
#[inline]
fn normalize(y: &mut [f32], s: f32) {
    let r = 1.0 / s;
    for e in y {
        *e *= r;
    }
}

#[cfg(all(test, feature = "fast-math"))]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    /// The default path's result (libm), recomputed here in the documented order.
    fn softmax_libm(beta: f32, x: &[f32]) -> Vec<f32> {
        let m = x
            .iter()
            .copied()
            .fold(x[0], |m, v| if v > m { v } else { m });
        let e: Vec<f32> = x.iter().map(|&v| libm::expf(beta * (v - m))).collect();
        let s = sum_f32(&e);
        e.iter().map(|&v| v / s).collect()
    }

    #[test]
    fn fast_softmax_is_within_1e_3_of_libm() {
        // Rows of logits spread over a growing range (attention scores, classifier logits).
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut worst = 0.0f32;
        for row in 0..400 {
            let spread = 0.05 * row as f32;
            let x: Vec<f32> = (0..17)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * spread
                })
                .collect();
            let mut y = [0.0f32; 17];
            softmax_f32(1, 17, 1.0, &x, &mut y).unwrap();
            for (a, b) in y.iter().zip(softmax_libm(1.0, &x)) {
                worst = worst.max((a - b).abs());
            }
            assert!(
                (sum_f32(&y) - 1.0).abs() <= 1e-5,
                "row {row} sums to {}",
                sum_f32(&y)
            );
        }
        assert!(worst <= 1e-3, "max |fast − libm| = {worst}");
        std::println!("softmax fast-math: max |fast − libm| = {worst:e}");
    }

    #[test]
    fn fast_softmax_keeps_nan_and_infinities() {
        let mut y = [0.0f32; 3];
        softmax_f32(1, 3, 1.0, &[0.0, f32::NAN, 1.0], &mut y).unwrap();
        assert!(y[1].is_nan());
        softmax_f32(1, 3, 1.0, &[f32::NEG_INFINITY, 0.0, 0.0], &mut y).unwrap();
        assert_eq!(y, [0.0, 0.5, 0.5]);
    }
}
