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
            *e = libm::expf(beta * (v - m));
        }
        let s = sum_f32(y);
        for e in y.iter_mut() {
            *e /= s;
        }
    }
    Ok(())
}
