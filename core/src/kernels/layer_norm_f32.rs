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
        let r = libm::sqrtf(var + eps);
        for ((o, &g), &b) in y.iter_mut().zip(gamma).zip(beta) {
            *o = *o / r * g + b;
        }
    }
    Ok(())
}
