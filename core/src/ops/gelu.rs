//! GELU, f32, elementwise (`y = 0.5·x·(1 + erf(x/√2))`, see the kernel for the exact order), same
//! shape; it runs in place on the output buffer, like a standalone activation. int8 models use a
//! lookup table instead ([`super::lut`]).

use super::{Out, ValuesMut};
use crate::error::{Error, Result};
use crate::kernels::gelu_f32;
use crate::tensor::{DType, TensorInfo};

pub(super) fn prepare(index: u16, input: &TensorInfo, output: &TensorInfo) -> Result<()> {
    if input.dtype != DType::F32 || output.dtype != DType::F32 {
        return Err(Error::OpUnsupportedDType { op: index });
    }
    if input.shape != output.shape {
        return Err(Error::ShapeMismatch { op: index });
    }
    Ok(())
}

pub(super) fn eval_in_place(output: Out<'_>) -> Result<()> {
    match output.values {
        ValuesMut::F32(y) => {
            gelu_f32(y);
            Ok(())
        }
        ValuesMut::I8(_) => Err(Error::KernelBadArguments),
    }
}
