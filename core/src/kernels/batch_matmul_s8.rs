//! Batched matrix product, int8 (TFLite-Micro's BATCH_MATMUL arithmetic, per-tensor
//! quantization).

use super::batch_matmul_f32::per_batch;
use super::params::{BatchMatMulParams, BatchMatMulS8Params};
use crate::error::{Error, Result};
use crate::quant::requantize;

/// `acc[b][i][j] = Σ_k (a[b][i][k] − a_zp) · (B[b][k][j] − b_zp)` in i32, with `B` as in
/// [`crate::kernels::batch_matmul_f32`] (`b` transposed when `p.adj_y`), and
/// `output[b][i][j] = clamp(MBQM(acc, q.multiplier, q.shift) + out_zp, −128, 127)`:
/// TFLite-Micro's `reference_ops::BatchMatMul<int8_t, int32_t>` (no fused activation, so the
/// clamp is the int8 range), with `alpha` folded into `q.multiplier`
/// ([`crate::quant::batch_matmul_s8_params`]).
///
/// The accumulator is exact when the loader's bound holds (`k · max|a − a_zp| · max|b − b_zp|`
/// inside `i32::MAX >> max(shift, 0)`); additions wrap rather than panic otherwise.
///
/// `Err(KernelBadArguments)` if a size overflows or a slice length does not match `p`.
pub fn batch_matmul_s8(
    p: &BatchMatMulParams,
    q: &BatchMatMulS8Params,
    a: &[i8],
    b: &[i8],
    output: &mut [i8],
) -> Result<()> {
    let [mk, kn, mn] = per_batch(p).ok_or(Error::KernelBadArguments)?;
    let total = |per: usize| p.batches.checked_mul(per);
    if Some(a.len()) != total(mk) || Some(b.len()) != total(kn) || Some(output.len()) != total(mn) {
        return Err(Error::KernelBadArguments);
    }
    let (m, k, n) = (p.m, p.k, p.n);
    let finish = |acc: i32| requantize(acc, q.multiplier, q.shift, q.out_zp, -128, 127);
    if m == 0 || n == 0 || k == 0 {
        output.fill(finish(0));
        return Ok(());
    }
    let batches = a
        .chunks_exact(mk)
        .zip(b.chunks_exact(kn))
        .zip(output.chunks_exact_mut(mn));
    let term = |x: i8, y: i8| (i32::from(x) - q.a_zp).wrapping_mul(i32::from(y) - q.b_zp);
    for ((a, b), y) in batches {
        for (a_row, y_row) in a.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
            for (j, o) in y_row.iter_mut().enumerate() {
                let mut acc = 0i32;
                if p.adj_y {
                    let b_row = b.get(j * k..(j + 1) * k).unwrap_or(&[]);
                    for (&x, &y) in a_row.iter().zip(b_row) {
                        acc = acc.wrapping_add(term(x, y));
                    }
                } else {
                    for (&x, &y) in a_row.iter().zip(b.iter().skip(j).step_by(n)) {
                        acc = acc.wrapping_add(term(x, y));
                    }
                }
                *o = finish(acc);
            }
        }
    }
    Ok(())
}
