//! A standalone activation `y = act(x)` (ReLU, ReLU6, identity), elementwise, same shape and
//! dtype; it runs in place on the output buffer (which holds the input's values, either because
//! the planner gave it the input's bytes or because the interpreter copied them).

use super::{same_dtype, Out, ValuesMut};
use crate::error::{Error, Result};
use crate::format::graph::Act;
use crate::kernels::{activation_f32, clamp_s8};
use crate::quant::activation_range;
use crate::tensor::{DType, TensorInfo};

pub(super) fn prepare(index: u16, input: &TensorInfo, output: &TensorInfo) -> Result<()> {
    same_dtype(index, input, output)?;
    if input.shape != output.shape {
        return Err(Error::ShapeMismatch { op: index });
    }
    Ok(())
}

pub(super) fn eval_in_place(p: &Act, output: Out<'_>) -> Result<()> {
    match (output.values, output.info.dtype) {
        (ValuesMut::F32(y), _) => {
            activation_f32(y, p.activation);
            Ok(())
        }
        (ValuesMut::I8(y), DType::I8(q)) => {
            let (lo, hi) = activation_range(p.activation, q);
            clamp_s8(y, lo, hi);
            Ok(())
        }
        _ => Err(Error::KernelBadArguments),
    }
}
