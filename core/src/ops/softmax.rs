//! Softmax over the last dim (any leading dims). f32: `y_i = exp(β(x_i − max)) / Σ_j …`;
//! int8: TFLite's fixed-point softmax, output scale exactly 1/256 and zero point −128.

use super::{In, Out, Values, ValuesMut};
use crate::error::{Error, Result};
use crate::format::graph::Softmax;
use crate::kernels::{softmax_f32, softmax_s8};
use crate::quant::softmax_s8_params;
use crate::tensor::{DType, QuantParams, TensorInfo};

/// The int8 output quantization TFLite requires.
pub(crate) const SOFTMAX_S8_OUTPUT: QuantParams = QuantParams {
    scale: 1.0 / 256.0,
    zero_point: -128,
};

pub(super) fn prepare(
    index: u16,
    p: &Softmax,
    input: &TensorInfo,
    output: &TensorInfo,
) -> Result<()> {
    if input.shape != output.shape {
        return Err(Error::ShapeMismatch { op: index });
    }
    if !(p.beta.is_finite() && p.beta > 0.0) {
        return Err(Error::OpBadParam { op: index });
    }
    match (input.dtype, output.dtype) {
        (DType::F32, DType::F32) => Ok(()),
        (DType::I8(q), DType::I8(o)) if o == SOFTMAX_S8_OUTPUT => {
            softmax_s8_params(p.beta, q.scale, input.shape.rows(), input.shape.last())
                .map(|_| ())
                .ok_or(Error::OpBadMultiplier { op: index })
        }
        _ => Err(Error::OpUnsupportedDType { op: index }),
    }
}

pub(super) fn eval(p: &Softmax, input: &In<'_>, output: Out<'_>) -> Result<()> {
    let (rows, depth) = (input.info.shape.rows(), input.info.shape.last());
    match (input.values, output.values, input.info.dtype) {
        (Values::F32(x), ValuesMut::F32(y), _) => softmax_f32(rows, depth, p.beta, x, y),
        (Values::I8(x), ValuesMut::I8(y), DType::I8(q)) => {
            let params =
                softmax_s8_params(p.beta, q.scale, rows, depth).ok_or(Error::KernelBadArguments)?;
            softmax_s8(&params, x, y)
        }
        _ => Err(Error::KernelBadArguments),
    }
}
