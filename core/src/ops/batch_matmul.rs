//! Batched matrix product: `a [B, M, K] × b [B, K, N] → [B, M, N]` (`adj_y`: `b` is `[B, N, K]`,
//! used transposed), rank 2 for `B = 1`, scaled by `alpha`. f32: 8-lane sums over `k`; int8:
//! TFLite's BATCH_MATMUL with `alpha` folded into the multiplier, recomputed from the three
//! scales at every run (like Add and Softmax, the model holds no per-op state).

use super::{expect_shape, In, Out, Values, ValuesMut};
use crate::error::{Error, Result};
use crate::format::graph::BatchMatMul;
use crate::kernels::params::BatchMatMulParams;
use crate::kernels::{batch_matmul_f32, batch_matmul_s8};
use crate::quant::batch_matmul_s8_params;
use crate::tensor::{DType, TensorInfo};

/// The product's geometry, or `ShapeMismatch` when `a` and `b` are not both rank 2 or both
/// rank 3, their batch counts differ, or their inner dims do not chain.
fn params(
    index: u16,
    p: &BatchMatMul,
    a: &TensorInfo,
    b: &TensorInfo,
) -> Result<BatchMatMulParams> {
    let bad = Error::ShapeMismatch { op: index };
    let d = |t: &TensorInfo| -> [usize; 4] {
        let mut out = [0usize; 4];
        for (o, &v) in out.iter_mut().zip(t.shape.dims()) {
            *o = v as usize;
        }
        out
    };
    let (da, db) = (d(a), d(b));
    let ([ba, m, ka], [bb, b1, b2]) = match (a.shape.rank(), b.shape.rank()) {
        (2, 2) => ([1, da[0], da[1]], [1, db[0], db[1]]),
        (3, 3) => ([da[0], da[1], da[2]], [db[0], db[1], db[2]]),
        _ => return Err(bad),
    };
    let (kb, n) = if p.adj_y { (b2, b1) } else { (b1, b2) };
    if ba != bb || ka != kb {
        return Err(bad);
    }
    Ok(BatchMatMulParams {
        batches: ba,
        m,
        k: ka,
        n,
        adj_y: p.adj_y,
    })
}

pub(super) fn prepare(
    index: u16,
    p: &BatchMatMul,
    a: &TensorInfo,
    b: &TensorInfo,
    output: &TensorInfo,
) -> Result<()> {
    if !(p.alpha.is_finite() && p.alpha > 0.0) {
        return Err(Error::OpBadParam { op: index });
    }
    let g = params(index, p, a, b)?;
    match (a.dtype, b.dtype, output.dtype) {
        (DType::F32, DType::F32, DType::F32) => {}
        (DType::I8(qa), DType::I8(qb), DType::I8(qo)) => {
            let q = batch_matmul_s8_params(qa, qb, qo, p.alpha)
                .ok_or(Error::OpBadMultiplier { op: index })?;
            // |acc| ≤ k · max|a − a_zp| · max|b − b_zp|, and inside i32::MAX >> shift when the
            // requantization shifts left (as for Linear's weights).
            let span = |zp: i32| i64::from((-128 - zp).abs().max((127 - zp).abs()));
            let bound = i64::try_from(g.k)
                .ok()
                .and_then(|k| k.checked_mul(span(q.a_zp) * span(q.b_zp)));
            let limit = i64::from(i32::MAX >> q.shift.max(0));
            if bound.is_none_or(|v| v > limit) {
                return Err(Error::OpAccumulatorOverflow { op: index });
            }
        }
        _ => return Err(Error::OpUnsupportedDType { op: index }),
    }
    if a.shape.rank() == 2 {
        expect_shape(index, output, &[g.m, g.n])
    } else {
        expect_shape(index, output, &[g.batches, g.m, g.n])
    }
}

pub(super) fn eval(p: &BatchMatMul, a: &In<'_>, b: &In<'_>, output: Out<'_>) -> Result<()> {
    let g = params(0, p, &a.info, &b.info).map_err(|_| Error::KernelBadArguments)?;
    match (a.values, b.values, output.values) {
        (Values::F32(x), Values::F32(y), ValuesMut::F32(out)) => {
            batch_matmul_f32(&g, p.alpha, x, y, out)
        }
        (Values::I8(x), Values::I8(y), ValuesMut::I8(out)) => {
            let (DType::I8(qa), DType::I8(qb), DType::I8(qo)) =
                (a.info.dtype, b.info.dtype, output.info.dtype)
            else {
                return Err(Error::KernelBadArguments);
            };
            let q = batch_matmul_s8_params(qa, qb, qo, p.alpha).ok_or(Error::KernelBadArguments)?;
            batch_matmul_s8(&g, &q, x, y, out)
        }
        _ => Err(Error::KernelBadArguments),
    }
}
