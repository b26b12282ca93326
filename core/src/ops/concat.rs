//! Concat: 2..=4 inputs joined along `axis` (same rank, equal dims except `axis`, one dtype;
//! int8 inputs must all have the output's quantization, so no value changes: the exporter
//! quantizes a class-token constant with the output's parameters).

use super::{axis_dims, In, Out, Values, ValuesMut};
use crate::error::{Error, Result};
use crate::format::graph::{Concat, MAX_OP_INPUTS};
use crate::kernels::concat;
use crate::tensor::{DType, TensorInfo};

pub(super) fn prepare(
    index: u16,
    p: &Concat,
    inputs: &[TensorInfo],
    output: &TensorInfo,
) -> Result<()> {
    let first = inputs.first().ok_or(Error::OpBadArity { op: index })?;
    let axis = usize::from(p.axis);
    axis_dims(index, first, p.axis)?;
    for t in inputs {
        let same = match (t.dtype, output.dtype) {
            (DType::F32, DType::F32) => true,
            (DType::I8(q), DType::I8(o)) => q == o,
            _ => false,
        };
        if !same {
            return Err(Error::OpUnsupportedDType { op: index });
        }
    }
    let rank = first.shape.rank();
    let mut sum = 0usize;
    for t in inputs {
        let same_rank = t.shape.rank() == rank;
        let other_dims_equal = t
            .shape
            .dims()
            .iter()
            .zip(first.shape.dims())
            .enumerate()
            .all(|(i, (a, b))| i == axis || a == b);
        if !(same_rank && other_dims_equal) {
            return Err(Error::ShapeMismatch { op: index });
        }
        let len = t.shape.dim(axis).unwrap_or(0);
        sum = sum
            .checked_add(len)
            .ok_or(Error::ShapeMismatch { op: index })?;
    }
    let out_ok = output.shape.rank() == rank
        && output
            .shape
            .dims()
            .iter()
            .zip(first.shape.dims())
            .enumerate()
            .all(|(i, (&o, &f))| if i == axis { o as usize == sum } else { o == f });
    if !out_ok {
        return Err(Error::ShapeMismatch { op: index });
    }
    Ok(())
}

pub(super) fn eval(p: &Concat, inputs: &[In<'_>], output: Out<'_>) -> Result<()> {
    let first = inputs.first().ok_or(Error::KernelBadArguments)?;
    let outer = axis_dims(0, &first.info, p.axis)
        .map_err(|_| Error::KernelBadArguments)?
        .outer;
    match output.values {
        ValuesMut::F32(y) => {
            let mut xs: [&[f32]; MAX_OP_INPUTS] = [&[]; MAX_OP_INPUTS];
            for (x, i) in xs.iter_mut().zip(inputs) {
                let Values::F32(v) = i.values else {
                    return Err(Error::KernelBadArguments);
                };
                *x = v;
            }
            concat(outer, xs.get(..inputs.len()).unwrap_or(&[]), y)
        }
        ValuesMut::I8(y) => {
            let mut xs: [&[i8]; MAX_OP_INPUTS] = [&[]; MAX_OP_INPUTS];
            for (x, i) in xs.iter_mut().zip(inputs) {
                let Values::I8(v) = i.values else {
                    return Err(Error::KernelBadArguments);
                };
                *x = v;
            }
            concat(outer, xs.get(..inputs.len()).unwrap_or(&[]), y)
        }
    }
}
