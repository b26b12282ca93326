//! Elementwise Add of two tensors of one shape: `y = act(a + b)`; int8 exactly as TFLite's ADD
//! (parameters from [`crate::quant::add_s8_params`], recomputed from the three scales at every
//! run so the model object holds no per-op state).

use super::{In, Out, Values, ValuesMut};
use crate::error::{Error, Result};
use crate::format::graph::Add;
use crate::kernels::{add_f32, add_s8};
use crate::quant::add_s8_params;
use crate::tensor::{DType, TensorInfo};

pub(super) fn prepare(
    index: u16,
    p: &Add,
    a: &TensorInfo,
    b: &TensorInfo,
    output: &TensorInfo,
) -> Result<()> {
    if a.shape != b.shape || a.shape != output.shape {
        return Err(Error::ShapeMismatch { op: index });
    }
    match (a.dtype, b.dtype, output.dtype) {
        (DType::F32, DType::F32, DType::F32) => Ok(()),
        (DType::I8(qa), DType::I8(qb), DType::I8(qo)) => add_s8_params(qa, qb, qo, p.activation)
            .map(|_| ())
            .ok_or(Error::OpBadMultiplier { op: index }),
        _ => Err(Error::OpUnsupportedDType { op: index }),
    }
}

pub(super) fn eval(p: &Add, a: &In<'_>, b: &In<'_>, output: Out<'_>) -> Result<()> {
    match (a.values, b.values, output.values) {
        (Values::F32(x), Values::F32(y), ValuesMut::F32(out)) => add_f32(x, y, p.activation, out),
        (Values::I8(x), Values::I8(y), ValuesMut::I8(out)) => {
            let (DType::I8(qa), DType::I8(qb), DType::I8(qo)) =
                (a.info.dtype, b.info.dtype, output.info.dtype)
            else {
                return Err(Error::KernelBadArguments);
            };
            let params =
                add_s8_params(qa, qb, qo, p.activation).ok_or(Error::KernelBadArguments)?;
            add_s8(&params, x, y, out)
        }
        _ => Err(Error::KernelBadArguments),
    }
}
