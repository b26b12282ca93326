//! Slice: indices `start .. start + len` along one axis (row 0 of `[N, D]` is the class token:
//! `axis 0, start 0, len 1` → `[D]`). Output: the input's dims with `axis` set to `len`, or, for
//! `len == 1` and rank > 1, without `axis`. Any dtype, same quantization; element copies.

use super::{axis_dims, expect_axis_shape, same_dtype, In, Out, Values, ValuesMut};
use crate::error::{Error, Result};
use crate::format::graph::Slice;
use crate::kernels::slice;
use crate::tensor::TensorInfo;

pub(super) fn prepare(
    index: u16,
    p: &Slice,
    input: &TensorInfo,
    output: &TensorInfo,
) -> Result<()> {
    let d = axis_dims(index, input, p.axis)?;
    if p.len == 0 {
        return Err(Error::OpBadParam { op: index });
    }
    same_dtype(index, input, output)?;
    let (start, len) = (p.start as usize, p.len as usize);
    if start.checked_add(len).is_none_or(|end| end > d.len) {
        return Err(Error::ShapeMismatch { op: index });
    }
    expect_axis_shape(index, input, usize::from(p.axis), len, output)
}

pub(super) fn eval(p: &Slice, input: &In<'_>, output: Out<'_>) -> Result<()> {
    let d = axis_dims(0, &input.info, p.axis).map_err(|_| Error::KernelBadArguments)?;
    let (start, len) = (p.start as usize, p.len as usize);
    match (input.values, output.values) {
        (Values::F32(x), ValuesMut::F32(y)) => slice(&d, start, len, x, y),
        (Values::I8(x), ValuesMut::I8(y)) => slice(&d, start, len, x, y),
        _ => Err(Error::KernelBadArguments),
    }
}
