//! Dequantize: int8 → f32 with the input's quantization (TFLite's DEQUANTIZE), same shape.

use super::{In, Out, Values, ValuesMut};
use crate::error::{Error, Result};
use crate::kernels::dequantize_s8;
use crate::tensor::{DType, TensorInfo};

pub(super) fn prepare(index: u16, input: &TensorInfo, output: &TensorInfo) -> Result<()> {
    if !matches!((input.dtype, output.dtype), (DType::I8(_), DType::F32)) {
        return Err(Error::OpUnsupportedDType { op: index });
    }
    if input.shape != output.shape {
        return Err(Error::ShapeMismatch { op: index });
    }
    Ok(())
}

pub(super) fn eval(input: &In<'_>, output: Out<'_>) -> Result<()> {
    match (input.values, output.values, input.info.dtype) {
        (Values::I8(x), ValuesMut::F32(y), DType::I8(q)) => dequantize_s8(q, x, y),
        _ => Err(Error::KernelBadArguments),
    }
}
