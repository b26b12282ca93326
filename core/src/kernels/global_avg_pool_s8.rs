//! Global average pooling, int8 (same quantization in and out, tflite rounding).

use super::sum_s8::sum_s8;
use super::Chw;
use crate::error::{Error, Result};

/// `output[c] = clamp(round(Σ_{y,x} input[c][y][x] / (h·w)), −128, 127)` on the quantized values,
/// rounding half away from zero exactly as tflite's int8 average pool:
/// `acc > 0 ? (acc + n/2) / n : (acc − n/2) / n` with truncating division. Valid because the
/// output has the input's scale and zero point. The loader bounds `h·w` so the i32 sum is exact.
pub fn global_avg_pool_s8(input: &[i8], dims: Chw, output: &mut [i8]) -> Result<()> {
    let hw = dims
        .h
        .checked_mul(dims.w)
        .ok_or(Error::KernelBadArguments)?;
    if hw == 0 || hw > MAX_POOL_COUNT || Some(input.len()) != dims.numel() || output.len() != dims.c
    {
        return Err(Error::KernelBadArguments);
    }
    let n = hw as i32;
    for (out, plane) in output.iter_mut().zip(input.chunks_exact(hw)) {
        let acc = sum_s8(plane);
        let avg = if acc > 0 {
            (acc + n / 2) / n
        } else {
            (acc - n / 2) / n
        };
        *out = avg.clamp(-128, 127) as i8;
    }
    Ok(())
}

/// Largest `h·w` whose int8 sum cannot overflow i32 (with the ±n/2 rounding term).
pub const MAX_POOL_COUNT: usize = (i32::MAX as usize) / 129;
