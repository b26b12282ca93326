//! Depthwise 2-D convolution (depth multiplier 1): input `[C][H][W]`, weights `[C][kh][kw]`,
//! output `[C][Ho][Wo]`; output channel `c` reads only input channel `c`.

use super::{expect_shape, weights, window_geometry, In, Out};
use crate::error::{Error, Result};
use crate::format::graph::DepthwiseConv2d;
use crate::kernels::params::DepthwiseParams;
use crate::kernels::{depthwise_conv2d_f32, depthwise_conv2d_s8};
use crate::tensor::TensorInfo;

fn params(
    index: u16,
    p: &DepthwiseConv2d<'_>,
    input: &TensorInfo,
) -> Result<(DepthwiseParams, usize, usize)> {
    let (window, [c, h, w, oh, ow]) = window_geometry(index, &p.window, input)?;
    let dp = DepthwiseParams {
        channels: c,
        h,
        w,
        window,
        activation: p.activation,
    };
    Ok((dp, oh, ow))
}

pub(super) fn prepare(
    index: u16,
    p: &DepthwiseConv2d<'_>,
    input: &TensorInfo,
    output: &TensorInfo,
) -> Result<()> {
    let (dp, oh, ow) = params(index, p, input)?;
    if weights::out_channels(&p.weights) != dp.channels {
        return Err(Error::OpBadTensorLength { op: index });
    }
    let per_out = dp
        .window
        .kh
        .checked_mul(dp.window.kw)
        .ok_or(Error::ModelSizeOverflow)?;
    weights::check(index, &p.weights, dp.channels, per_out, input, output)?;
    expect_shape(index, output, &[dp.channels, oh, ow])
}

pub(super) fn eval(p: &DepthwiseConv2d<'_>, input: &In<'_>, output: Out<'_>) -> Result<()> {
    let (dp, _, _) = params(0, p, &input.info).map_err(|_| Error::KernelBadArguments)?;
    weights::eval(
        &p.weights,
        input,
        output,
        |x, w, b, y| depthwise_conv2d_f32(&dp, x, w, b, y),
        |q, x, w, b, y| depthwise_conv2d_s8(&dp, q, x, w, b, y),
    )
}
