//! Max and average pooling over windows of a `[C][H][W]` input; same dtype and quantization in
//! and out. Padded taps are skipped (the average divides by the in-bounds count, as TFLite).

use super::{expect_shape, same_dtype, window_geometry, In, Out, Values, ValuesMut};
use crate::error::{Error, Result};
use crate::format::graph::Pool2d;
use crate::kernels::params::PoolParams;
use crate::kernels::{avg_pool2d_f32, avg_pool2d_s8, maxpool2d_f32, maxpool2d_s8, MAX_POOL_COUNT};
use crate::tensor::{DType, TensorInfo};

fn params(index: u16, p: &Pool2d, input: &TensorInfo) -> Result<(PoolParams, usize, usize)> {
    let (window, [c, h, w, oh, ow]) = window_geometry(index, &p.window, input)?;
    Ok((
        PoolParams {
            channels: c,
            h,
            w,
            window,
        },
        oh,
        ow,
    ))
}

pub(super) fn prepare(
    index: u16,
    p: &Pool2d,
    input: &TensorInfo,
    output: &TensorInfo,
) -> Result<()> {
    let (pp, oh, ow) = params(index, p, input)?;
    same_dtype(index, input, output)?;
    if let DType::I8(_) = input.dtype {
        let taps = pp.window.kh.checked_mul(pp.window.kw);
        if taps.is_none_or(|n| n > MAX_POOL_COUNT) {
            return Err(Error::OpAccumulatorOverflow { op: index });
        }
    }
    expect_shape(index, output, &[pp.channels, oh, ow])
}

pub(super) fn eval_max(p: &Pool2d, input: &In<'_>, output: Out<'_>) -> Result<()> {
    let (pp, _, _) = params(0, p, &input.info).map_err(|_| Error::KernelBadArguments)?;
    match (input.values, output.values) {
        (Values::F32(x), ValuesMut::F32(y)) => maxpool2d_f32(&pp, x, y),
        (Values::I8(x), ValuesMut::I8(y)) => maxpool2d_s8(&pp, x, y),
        _ => Err(Error::KernelBadArguments),
    }
}

pub(super) fn eval_avg(p: &Pool2d, input: &In<'_>, output: Out<'_>) -> Result<()> {
    let (pp, _, _) = params(0, p, &input.info).map_err(|_| Error::KernelBadArguments)?;
    match (input.values, output.values) {
        (Values::F32(x), ValuesMut::F32(y)) => avg_pool2d_f32(&pp, x, y),
        (Values::I8(x), ValuesMut::I8(y)) => avg_pool2d_s8(&pp, x, y),
        _ => Err(Error::KernelBadArguments),
    }
}
