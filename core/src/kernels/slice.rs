//! A contiguous range along one axis, any element type (element moves only).

use super::params::AxisDims;
use crate::error::{Error, Result};

/// `output[o][j][i] = input[o][start + j][i]` for `j < len`: `input` is `[p.outer][p.len][p.inner]`,
/// `output` `[p.outer][len][p.inner]`. Exact (copies); the output must not alias the input.
///
/// `Err(KernelBadArguments)` if `len == 0`, `start + len > p.len`, a size overflows, or a slice
/// length does not match.
pub fn slice<T: Copy>(
    p: &AxisDims,
    start: usize,
    len: usize,
    input: &[T],
    output: &mut [T],
) -> Result<()> {
    let bad = Error::KernelBadArguments;
    let end = start.checked_add(len).ok_or(bad)?;
    let out_dims = AxisDims { len, ..*p };
    if len == 0 || end > p.len || p.numel() != Some(input.len()) {
        return Err(bad);
    }
    if out_dims.numel() != Some(output.len()) {
        return Err(bad);
    }
    let row = p.len * p.inner; // ≤ numel, no overflow
    let (from, take) = (start * p.inner, len * p.inner);
    if row == 0 || take == 0 {
        return Ok(());
    }
    for (x, y) in input.chunks_exact(row).zip(output.chunks_exact_mut(take)) {
        if let Some(src) = x.get(from..from + take) {
            y.copy_from_slice(src);
        }
    }
    Ok(())
}
