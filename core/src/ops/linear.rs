//! Linear on the last dim: input `[…][in]`, weights `[out][in]`, output `[…][out]`.

use super::{expect_shape, weights, In, Out};
use crate::error::{Error, Result};
use crate::format::graph::Linear;
use crate::format::graph::Weights;
use crate::kernels::params::LinearParams;
use crate::kernels::{linear_f32, linear_s8_scratch_words, linear_s8_with_scratch};
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

/// Bytes of scratch the op requests while it runs: for int8 weights the widened input row of the
/// Cortex-M4 DSP kernel, `2·⌊in/4⌋` words for rows of `in = weights / out_features` inputs
/// (`kernels::linear_s8_scratch_words`), on every target, so that the arena the host reports is
/// the one the device needs (the host kernels ignore it); 0 for f32 weights.
pub(super) fn scratch_bytes(p: &Linear<'_>) -> usize {
    match &p.weights {
        Weights::S8 { weights, bias, .. } if !bias.is_empty() => {
            linear_s8_scratch_words(weights.len() / bias.len()).saturating_mul(4)
        }
        _ => 0,
    }
}

/// Runs the op; `scratch` is the arena's [`scratch_bytes`] for it (4-aligned).
pub(super) fn eval(
    p: &Linear<'_>,
    input: &In<'_>,
    output: Out<'_>,
    scratch: &mut [u8],
) -> Result<()> {
    let lp = params(p, &input.info);
    let scratch = crate::arena::u32s_mut(scratch)?;
    weights::eval(
        &p.weights,
        input,
        output,
        |x, w, b, y| linear_f32(&lp, x, w, b, y),
        |q, x, w, b, y| linear_s8_with_scratch(&lp, q, x, w, b, y, scratch),
    )
}
