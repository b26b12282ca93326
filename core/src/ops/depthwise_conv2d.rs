//! Depthwise 2-D convolution (depth multiplier 1): input `[C][H][W]`, weights `[C][kh][kw]`,
//! output `[C][Ho][Wo]`; output channel `c` reads only input channel `c`.

use super::{expect_shape, weights, window_geometry, In, Out};
use crate::error::{Error, Result};
use crate::format::graph::DepthwiseConv2d;
use crate::format::graph::Weights;
use crate::kernels::params::DepthwiseParams;
use crate::kernels::{
    depthwise_conv2d_f32, depthwise_conv2d_s8_scratch_words, depthwise_conv2d_s8_with_scratch,
};
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

/// Bytes of scratch the op requests while it runs: for int8 weights the Cortex-M4 strip
/// kernel's i16 ring, `kernels::depthwise_conv2d_s8_scratch_words(window)` words (560 B for
/// 3×3 windows with strides 1–2, else 0); none for f32. On every target, so that the arena the
/// host reports is the one the device needs (the host kernels ignore it).
pub(super) fn scratch_bytes(p: &DepthwiseConv2d<'_>) -> usize {
    match &p.weights {
        Weights::S8 { .. } => depthwise_conv2d_s8_scratch_words(&p.window.window()) * 4,
        Weights::F32 { .. } => 0,
    }
}

/// Runs the op; `scratch` is the arena's [`scratch_bytes`] for it (4-aligned).
pub(super) fn eval(
    p: &DepthwiseConv2d<'_>,
    input: &In<'_>,
    output: Out<'_>,
    scratch: &mut [u8],
) -> Result<()> {
    let (dp, _, _) = params(0, p, &input.info).map_err(|_| Error::KernelBadArguments)?;
    let scratch = crate::arena::u32s_mut(scratch)?;
    weights::eval(
        &p.weights,
        input,
        output,
        |x, w, b, y| depthwise_conv2d_f32(&dp, x, w, b, y),
        |q, x, w, b, y| depthwise_conv2d_s8_with_scratch(&dp, q, x, w, b, y, scratch),
    )
}
