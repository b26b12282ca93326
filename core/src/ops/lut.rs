//! Table lookup, int8: `y = table[x + 128]` elementwise, the table a `[256]` int8 tensor (a
//! constant the exporter computed) with the output's quantization. int8 GELU, and any other
//! elementwise int8 function, is this op.

use super::{In, Out, Values, ValuesMut};
use crate::error::{Error, Result};
use crate::kernels::{lut_s8, LUT_S8_LEN};
use crate::tensor::{DType, TensorInfo};

pub(super) fn prepare(
    index: u16,
    input: &TensorInfo,
    table: &TensorInfo,
    output: &TensorInfo,
) -> Result<()> {
    match (input.dtype, table.dtype, output.dtype) {
        (DType::I8(_), DType::I8(t), DType::I8(o)) if t == o => {}
        _ => return Err(Error::OpUnsupportedDType { op: index }),
    }
    if table.shape.numel() != Some(LUT_S8_LEN) {
        return Err(Error::OpBadTensorLength { op: index });
    }
    if input.shape != output.shape {
        return Err(Error::ShapeMismatch { op: index });
    }
    Ok(())
}

pub(super) fn eval(input: &In<'_>, table: &In<'_>, output: Out<'_>) -> Result<()> {
    match (input.values, table.values, output.values) {
        (Values::I8(x), Values::I8(t), ValuesMut::I8(y)) => lut_s8(t, x, y),
        _ => Err(Error::KernelBadArguments),
    }
}
