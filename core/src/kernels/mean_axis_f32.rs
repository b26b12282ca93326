//! Mean over one axis, f32.

use super::params::AxisDims;
use super::sum_f32_terms;
use crate::error::{Error, Result};

/// `output[o][i] = (Σ_j input[o][j][i]) / n`: `input` `[p.outer][p.len][p.inner]`, `output`
/// `[p.outer][p.inner]`, `n = p.len as f32`. The sum runs over `j` in the 8-lane order of the
/// module docs, then one f32 division (as [`crate::kernels::global_avg_pool_f32`]: a mean over
/// the last axis of a `[C][H·W]` tensor gives the same bits). NaNs propagate; never panics.
///
/// `Err(KernelBadArguments)` if `p.len == 0`, a size overflows, or a slice length does not match.
pub fn mean_axis_f32(p: &AxisDims, input: &[f32], output: &mut [f32]) -> Result<()> {
    let bad = Error::KernelBadArguments;
    let out_len = p.outer.checked_mul(p.inner).ok_or(bad)?;
    if p.len == 0 || p.numel() != Some(input.len()) || output.len() != out_len {
        return Err(bad);
    }
    let row = p.len * p.inner; // ≤ numel, no overflow
    if row == 0 {
        return Ok(());
    }
    let count = p.len as f32;
    for (x, y) in input
        .chunks_exact(row)
        .zip(output.chunks_exact_mut(p.inner))
    {
        for (i, o) in y.iter_mut().enumerate() {
            *o = sum_f32_terms(x.iter().skip(i).step_by(p.inner).copied()) / count;
        }
    }
    Ok(())
}
