//! Global average pooling, f32.

use super::{sum_f32, Chw};
use crate::error::{Error, Result};

/// `output[c] = (Σ_{y,x} input[c][y][x]) / (h·w)`: the sum in the 8-lane order over the plane's
/// row-major index, then one f32 division by `(h·w) as f32`.
pub fn global_avg_pool_f32(input: &[f32], dims: Chw, output: &mut [f32]) -> Result<()> {
    let hw = dims
        .h
        .checked_mul(dims.w)
        .ok_or(Error::KernelBadArguments)?;
    if hw == 0 || Some(input.len()) != dims.numel() || output.len() != dims.c {
        return Err(Error::KernelBadArguments);
    }
    let count = hw as f32;
    for (out, plane) in output.iter_mut().zip(input.chunks_exact(hw)) {
        *out = sum_f32(plane) / count;
    }
    Ok(())
}
