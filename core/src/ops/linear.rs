//! Linear on the last dim: input `[…][in]`, weights `[out][in]`, output `[…][out]`.

use super::{expect_shape, weights, In, Out};
use crate::error::{Error, Result};
use crate::format::graph::Linear;
use crate::kernels::params::LinearParams;
use crate::kernels::{linear_f32, linear_s8};
use crate::tensor::TensorInfo;

fn params(p: &Linear<'_>, input: &TensorInfo) -> LinearParams {
    LinearParams {
        rows: input.shape.rows(),
        in_features: input.shape.last(),
        out_features: weights::out_channels(&p.weights),
        activation: p.activation,
    }
}

pub(super) fn prepare(
    index: u16,
    p: &Linear<'_>,
    input: &TensorInfo,
    output: &TensorInfo,
) -> Result<()> {
    let lp = params(p, input);
    if lp.out_features == 0 {
        return Err(Error::OpBadParam { op: index });
    }
    weights::check(
        index,
        &p.weights,
        lp.out_features,
        lp.in_features,
        input,
        output,
    )?;
    let mut dims = [0usize; crate::tensor::MAX_RANK];
    let rank = input.shape.rank();
    for (d, &v) in dims.iter_mut().zip(input.shape.dims()) {
        *d = v as usize;
    }
    if let Some(last) = dims.get_mut(rank.wrapping_sub(1)) {
        *last = lp.out_features;
    }
    expect_shape(index, output, dims.get(..rank).unwrap_or(&[]))
}

pub(super) fn eval(p: &Linear<'_>, input: &In<'_>, output: Out<'_>) -> Result<()> {
    let lp = params(p, &input.info);
    weights::eval(
        &p.weights,
        input,
        output,
        |x, w, b, y| linear_f32(&lp, x, w, b, y),
        |q, x, w, b, y| linear_s8(&lp, q, x, w, b, y),
    )
}
