//! Depthwise 2-D convolution (depth multiplier 1): input `[C][H][W]`, weights `[C][kh][kw]`,
//! output `[C][Ho][Wo]`; output channel `c` reads only input channel `c`.

use super::{
    expect_shape, per_channel_quant, weights, window_geometry, In, Out, Values, ValuesMut,
};
use crate::error::{Error, Result};
use crate::format::graph::{DepthwiseConv2d, Weights};
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
    match (&p.weights, input.values, output.values) {
        (Weights::F32 { weights, bias }, Values::F32(x), ValuesMut::F32(y)) => {
            depthwise_conv2d_f32(&dp, x, *weights, *bias, y)
        }
        (
            Weights::S8 {
                weights,
                bias,
                multiplier,
                shift,
            },
            Values::I8(x),
            ValuesMut::I8(y),
        ) => {
            let q = per_channel_quant(&input.info, &output.info, *multiplier, *shift)?;
            depthwise_conv2d_s8(&dp, &q, x, *weights, *bias, y)
        }
        _ => Err(Error::KernelBadArguments),
    }
}
