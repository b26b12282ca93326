//! Layer normalization over the last dim, f32.

use super::{dot_f32_slices, sum_f32};
use crate::error::{Error, Result};

/// Layer normalization of each of the `rows` rows of `depth` values: `input` and `output`
/// `[rows][depth]`, `gamma` and `beta` `[depth]`, `D = depth as f32`.
///
/// Order, per row `x` (fixed, host and device; every operation rounded to f32, no fused
/// multiply-add):
/// 1. `s = Σ_j x_j` in the 8-lane order of the module docs ([`sum_f32`]); `μ = s / D`;
/// 2. `d_j = x_j − μ`, written to `output`;
/// 3. `q = Σ_j d_j · d_j` in the 8-lane order (each product rounded, then added); `σ² = q / D`;
/// 4. `r = libm::sqrtf(σ² + eps)`;
/// 5. `y_j = (d_j / r) · γ_j + β_j` (a division, a product, a sum).
///
/// With the `fast-math` feature, steps 4–5 are `r = rsqrt(σ² + eps)` (micromath's inverse square
/// root refined by two Newton steps, [`super::fast_math::rsqrt`]: relative error ≤ 5·10⁻⁶) and
/// `y_j = (d_j · r) · γ_j + β_j`: no square root and no division.
///
/// This is PyTorch's `LayerNorm` (biased variance) with a fixed summation order. The output
/// must not alias the input (it is the scratch of step 2). NaNs propagate; never panics.
///
/// `Err(KernelBadArguments)` if `depth == 0`, `rows · depth` overflows or differs from either
/// slice length, or `gamma` / `beta` do not hold `depth` values.
pub fn layer_norm_f32(
    rows: usize,
    depth: usize,
    eps: f32,
    input: &[f32],
    gamma: &[f32],
    beta: &[f32],
    output: &mut [f32],
) -> Result<()> {
    let n = rows.checked_mul(depth).ok_or(Error::KernelBadArguments)?;
    if depth == 0
        || input.len() != n
        || output.len() != n
        || gamma.len() != depth
        || beta.len() != depth
    {
        return Err(Error::KernelBadArguments);
    }
    let d = depth as f32;
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        let mean = sum_f32(x) / d;
        for (o, &v) in y.iter_mut().zip(x) {
            *o = v - mean;
        }
        let var = dot_f32_slices(y, y) / d;
        scale_shift(y, var + eps, gamma, beta);
    }
    Ok(())
}

/// Steps 4–5: `r = sqrtf(v)`, `y_j = (d_j / r) · γ_j + β_j`.
#[cfg(not(feature = "fast-math"))]
#[inline]
fn scale_shift(y: &mut [f32], v: f32, gamma: &[f32], beta: &[f32]) {
    let r = libm::sqrtf(v);
    for ((o, &g), &b) in y.iter_mut().zip(gamma).zip(beta) {
        *o = *o / r * g + b;
    }
}

/// Steps 4–5, `fast-math`: `r = rsqrt(v)`, `y_j = (d_j · r) · γ_j + β_j`.
#[cfg(feature = "fast-math")]
#[inline]
fn scale_shift(y: &mut [f32], v: f32, gamma: &[f32], beta: &[f32]) {
    let r = super::fast_math::rsqrt(v);
    for ((o, &g), &b) in y.iter_mut().zip(gamma).zip(beta) {
        *o = *o * r * g + b;
    }
}

#[cfg(all(test, feature = "fast-math"))]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    /// The default path (libm sqrt, division), in the documented order.
    fn layer_norm_libm(eps: f32, x: &[f32], gamma: &[f32], beta: &[f32]) -> Vec<f32> {
        let d = x.len() as f32;
        let mean = sum_f32(x) / d;
        let c: Vec<f32> = x.iter().map(|&v| v - mean).collect();
        let r = libm::sqrtf(dot_f32_slices(&c, &c) / d + eps);
        c.iter()
            .zip(gamma.iter().zip(beta))
            .map(|(&v, (&g, &b))| v / r * g + b)
            .collect()
    }

    #[test]
    fn fast_layer_norm_is_within_2e_5_of_libm() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |scale: f32| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
        };
        let depth = 64;
        let gamma: Vec<f32> = (0..depth).map(|_| 1.0 + next(1.0)).collect();
        let beta: Vec<f32> = (0..depth).map(|_| next(0.5)).collect();
        let mut worst = 0.0f32;
        for row in 0..300 {
            // Rows from tiny to large spreads (variance 1e-8 … 1e4), some with an offset.
            let spread = libm::powf(10.0, -4.0 + 6.0 * row as f32 / 300.0);
            let offset = if row % 3 == 0 { next(20.0) } else { 0.0 };
            let x: Vec<f32> = (0..depth).map(|_| offset + next(spread)).collect();
            let mut y = std::vec![0.0f32; depth];
            layer_norm_f32(1, depth, 1e-5, &x, &gamma, &beta, &mut y).unwrap();
            for (a, b) in y.iter().zip(layer_norm_libm(1e-5, &x, &gamma, &beta)) {
                worst = worst.max((a - b).abs());
            }
        }
        std::println!("layer_norm fast-math: max |fast − libm| = {worst:e}");
        assert!(worst <= 2e-5, "max |fast − libm| = {worst}");
    }
}
