//! Batched matrix product, f32 (attention scores `Q·Kᵀ` and the weighted sum `P·V`).

use super::params::BatchMatMulParams;
use super::{dot_f32_slices, sum_f32_terms};
use crate::error::{Error, Result};

/// `output[b][i][j] = alpha · Σ_k a[b][i][k] · B[b][k][j]` with `B[b][k][j] = b[b][k][j]`, or
/// `b[b][j][k]` when `p.adj_y`: `a` `[batches][m][k]`, `b` `[batches][k][n]` (`adj_y`:
/// `[batches][n][k]`), `output` `[batches][m][n]`, row-major.
///
/// The sum runs over `k` in the 8-lane order of the module docs (term `k` into lane `k mod 8`,
/// each product rounded before it is added), then one f32 product with `alpha` (exact for
/// `alpha = 1`). Outputs are computed one at a time in row-major order; the output must not
/// alias an input. NaNs propagate; never panics.
///
/// `Err(KernelBadArguments)` if a size overflows or a slice length does not match `p`.
pub fn batch_matmul_f32(
    p: &BatchMatMulParams,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    output: &mut [f32],
) -> Result<()> {
    let [mk, kn, mn] = per_batch(p).ok_or(Error::KernelBadArguments)?;
    let total = |per: usize| p.batches.checked_mul(per);
    if Some(a.len()) != total(mk) || Some(b.len()) != total(kn) || Some(output.len()) != total(mn) {
        return Err(Error::KernelBadArguments);
    }
    let (m, k, n) = (p.m, p.k, p.n);
    if m == 0 || n == 0 || k == 0 {
        output.fill(0.0);
        return Ok(());
    }
    let batches = a
        .chunks_exact(mk)
        .zip(b.chunks_exact(kn))
        .zip(output.chunks_exact_mut(mn));
    for ((a, b), y) in batches {
        for (a_row, y_row) in a.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
            for (j, o) in y_row.iter_mut().enumerate() {
                let s = if p.adj_y {
                    let b_row = b.get(j * k..(j + 1) * k).unwrap_or(&[]);
                    dot_f32_slices(a_row, b_row)
                } else {
                    let b_col = b.iter().skip(j).step_by(n);
                    sum_f32_terms(a_row.iter().zip(b_col).map(|(&x, &y)| x * y))
                };
                *o = alpha * s;
            }
        }
    }
    Ok(())
}

/// Per-batch element counts `[m·k, k·n, m·n]` of `a`, `b` and the output, or `None` on
/// overflow.
pub(crate) fn per_batch(p: &BatchMatMulParams) -> Option<[usize; 3]> {
    Some([
        p.m.checked_mul(p.k)?,
        p.k.checked_mul(p.n)?,
        p.m.checked_mul(p.n)?,
    ])
}
