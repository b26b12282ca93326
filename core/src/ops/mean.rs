//! Mean over H × W of a `[C][H][W]` input (global average pool): `y[c] = Σ_{h,w} x[c][h][w] / (H·W)`.
//! The output holds `C` values in any shape (`[C]`, `[C][1][1]`, …); int8 keeps the input's
//! quantization (tflite rounding, see the kernel).

use super::{same_dtype, In, Out, Values, ValuesMut};
use crate::error::{Error, Result};
use crate::kernels::{global_avg_pool_f32, global_avg_pool_s8, Chw, MAX_POOL_COUNT};
use crate::tensor::{DType, TensorInfo};

fn dims(index: u16, input: &TensorInfo) -> Result<Chw> {
    let (c, h, w) = input
        .shape
        .as_chw()
        .ok_or(Error::ShapeMismatch { op: index })?;
    Ok(Chw { c, h, w })
}

pub(super) fn prepare(index: u16, input: &TensorInfo, output: &TensorInfo) -> Result<()> {
    let d = dims(index, input)?;
    same_dtype(index, input, output)?;
    if output.shape.numel() != Some(d.c) {
        return Err(Error::ShapeMismatch { op: index });
    }
    if let DType::I8(_) = input.dtype {
        if d.h.checked_mul(d.w).is_none_or(|n| n > MAX_POOL_COUNT) {
            return Err(Error::OpAccumulatorOverflow { op: index });
        }
    }
    Ok(())
}

pub(super) fn eval(input: &In<'_>, output: Out<'_>) -> Result<()> {
    let d = dims(0, &input.info).map_err(|_| Error::KernelBadArguments)?;
    match (input.values, output.values) {
        (Values::F32(x), ValuesMut::F32(y)) => global_avg_pool_f32(x, d, y),
        (Values::I8(x), ValuesMut::I8(y)) => global_avg_pool_s8(x, d, y),
        _ => Err(Error::KernelBadArguments),
    }
}
