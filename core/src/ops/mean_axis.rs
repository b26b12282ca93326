//! MeanAxis: the mean over one axis (`[N, D] → [D]` pools the tokens of a ViT); output = the
//! input's dims without `axis`, or with it set to 1. f32: 8-lane sum, one division. int8:
//! TFLite-Micro's MEAN (`QuantizedMeanOrSum`, any output quantization), its parameters recomputed
//! from the two scales at every run. (The older [`Op::Mean`](crate::format::graph::Op::Mean)
//! pools `[C][H][W]` over H × W and keeps its own int8 rounding.)

use super::{axis_dims, expect_axis_shape, In, Out, Values, ValuesMut};
use crate::error::{Error, Result};
use crate::format::graph::MeanAxis;
use crate::kernels::{mean_axis_f32, mean_axis_s8};
use crate::quant::mean_s8_params;
use crate::tensor::{DType, TensorInfo};

pub(super) fn prepare(
    index: u16,
    p: &MeanAxis,
    input: &TensorInfo,
    output: &TensorInfo,
) -> Result<()> {
    let d = axis_dims(index, input, p.axis)?;
    match (input.dtype, output.dtype) {
        (DType::F32, DType::F32) => {}
        (DType::I8(qi), DType::I8(qo)) => {
            let q = mean_s8_params(qi, qo, d.len).ok_or(Error::OpBadMultiplier { op: index })?;
            // |Σ q − zp·n| ≤ n · max|q − zp|, inside i32::MAX >> shift when it shifts left.
            let span = i64::from((-128 - q.input_zp).abs().max((127 - q.input_zp).abs()));
            let bound = i64::try_from(d.len).ok().and_then(|n| n.checked_mul(span));
            let limit = i64::from(i32::MAX >> q.shift.max(0));
            if bound.is_none_or(|v| v > limit) {
                return Err(Error::OpAccumulatorOverflow { op: index });
            }
        }
        _ => return Err(Error::OpUnsupportedDType { op: index }),
    }
    expect_axis_shape(index, input, usize::from(p.axis), 1, output)
}

pub(super) fn eval(p: &MeanAxis, input: &In<'_>, output: Out<'_>) -> Result<()> {
    let d = axis_dims(0, &input.info, p.axis).map_err(|_| Error::KernelBadArguments)?;
    match (input.values, output.values) {
        (Values::F32(x), ValuesMut::F32(y)) => mean_axis_f32(&d, x, y),
        (Values::I8(x), ValuesMut::I8(y)) => {
            let (DType::I8(qi), DType::I8(qo)) = (input.info.dtype, output.info.dtype) else {
                return Err(Error::KernelBadArguments);
            };
            let q = mean_s8_params(qi, qo, d.len).ok_or(Error::KernelBadArguments)?;
            mean_axis_s8(&d, &q, x, y)
        }
        _ => Err(Error::KernelBadArguments),
    }
}
