//! Transpose: permutes the axes of a rank ≤ 4 tensor (output dim `k` = input dim `perm[k]`), any
//! dtype, same quantization in and out. The output never shares bytes with its input (the
//! planner keeps an op's inputs live while its output is written).

use super::{same_dtype, In, Out, Values, ValuesMut};
use crate::error::{Error, Result};
use crate::format::graph::Transpose;
use crate::kernels::transpose;
use crate::tensor::{TensorInfo, MAX_RANK};

/// Input dims and the permutation as `usize`s (`rank` entries used), or `OpBadParam` when
/// `perm` is not a permutation of `0..rank`.
fn geometry(
    index: u16,
    p: &Transpose,
    input: &TensorInfo,
) -> Result<([usize; MAX_RANK], [usize; MAX_RANK], usize)> {
    let rank = input.shape.rank();
    let axes = p.perm.axes();
    let mut dims = [0usize; MAX_RANK];
    let mut perm = [0usize; MAX_RANK];
    let mut seen = [false; MAX_RANK];
    if axes.len() != rank {
        return Err(Error::OpBadParam { op: index });
    }
    for ((d, &v), (q, &a)) in dims
        .iter_mut()
        .zip(input.shape.dims())
        .zip(perm.iter_mut().zip(axes))
    {
        *d = v as usize;
        *q = usize::from(a);
        match seen.get_mut(*q) {
            Some(s) if *q < rank && !*s => *s = true,
            _ => return Err(Error::OpBadParam { op: index }),
        }
    }
    Ok((dims, perm, rank))
}

pub(super) fn prepare(
    index: u16,
    p: &Transpose,
    input: &TensorInfo,
    output: &TensorInfo,
) -> Result<()> {
    same_dtype(index, input, output)?;
    let (dims, perm, rank) = geometry(index, p, input)?;
    let mut out = [0usize; MAX_RANK];
    for (o, &a) in out.iter_mut().zip(perm.iter().take(rank)) {
        *o = dims.get(a).copied().unwrap_or(0);
    }
    super::expect_shape(index, output, out.get(..rank).unwrap_or(&[]))
}

pub(super) fn eval(p: &Transpose, input: &In<'_>, output: Out<'_>) -> Result<()> {
    let (dims, perm, rank) = geometry(0, p, &input.info).map_err(|_| Error::KernelBadArguments)?;
    let (dims, perm) = (
        dims.get(..rank).unwrap_or(&[]),
        perm.get(..rank).unwrap_or(&[]),
    );
    match (input.values, output.values) {
        (Values::F32(x), ValuesMut::F32(y)) => transpose(dims, perm, x, y),
        (Values::I8(x), ValuesMut::I8(y)) => transpose(dims, perm, x, y),
        _ => Err(Error::KernelBadArguments),
    }
}
