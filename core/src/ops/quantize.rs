//! Quantize: f32 → int8 with the output's quantization (TFLite's QUANTIZE), same shape.

use super::{In, Out, Values, ValuesMut};
use crate::error::{Error, Result};
use crate::kernels::quantize_s8;
use crate::tensor::{DType, TensorInfo};

pub(super) fn prepare(index: u16, input: &TensorInfo, output: &TensorInfo) -> Result<()> {
    if !matches!((input.dtype, output.dtype), (DType::F32, DType::I8(_))) {
        return Err(Error::OpUnsupportedDType { op: index });
    }
    if input.shape != output.shape {
        return Err(Error::ShapeMismatch { op: index });
    }
    Ok(())
}

pub(super) fn eval(input: &In<'_>, output: Out<'_>) -> Result<()> {
    match (input.values, output.values, output.info.dtype) {
        (Values::F32(x), ValuesMut::I8(y), DType::I8(q)) => quantize_s8(q, x, y),
        _ => Err(Error::KernelBadArguments),
    }
}
