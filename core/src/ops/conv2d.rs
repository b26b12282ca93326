//! 2-D convolution: input `[Ci][H][W]`, weights `[Co][Ci][kh][kw]`, output `[Co][Ho][Wo]`.

use super::{expect_shape, weights, window_geometry, In, Out};
use crate::error::{Error, Result};
use crate::format::graph::Conv2d;
use crate::format::graph::Weights;
use crate::kernels::params::ConvParams;
use crate::kernels::{
    conv2d_f32_with_scratch, conv2d_s8_with_scratch, scratch_words_for_conv,
    scratch_words_for_f32_patch,
};
use crate::tensor::TensorInfo;

fn params(index: u16, p: &Conv2d<'_>, input: &TensorInfo) -> Result<(ConvParams, usize, usize)> {
    let (window, [c, h, w, oh, ow]) = window_geometry(index, &p.window, input)?;
    let cp = ConvParams {
        in_channels: c,
        h,
        w,
        out_channels: weights::out_channels(&p.weights),
        window,
        activation: p.activation,
    };
    Ok((cp, oh, ow))
}

pub(super) fn prepare(
    index: u16,
    p: &Conv2d<'_>,
    input: &TensorInfo,
    output: &TensorInfo,
) -> Result<()> {
    let (cp, oh, ow) = params(index, p, input)?;
    if cp.out_channels == 0 {
        return Err(Error::OpBadParam { op: index });
    }
    let per_out = cp
        .in_channels
        .checked_mul(cp.window.kh)
        .and_then(|n| n.checked_mul(cp.window.kw))
        .ok_or(Error::ModelSizeOverflow)?;
    weights::check(index, &p.weights, cp.out_channels, per_out, input, output)?;
    expect_shape(index, output, &[cp.out_channels, oh, ow])
}

/// Bytes of scratch the op requests while it runs, for patches of `K = weights /
/// out_channels` taps: for int8 weights the im2col buffer of the Cortex-M4 DSP kernels,
/// `4·⌈K/4⌉` words, `8·⌈K/4⌉` for a 1×1 kernel (`kernels::conv2d_s8_scratch_words`); for f32 weights the two im2col
/// patches and 16 zeros of the Cortex-M4F kernel, `2·K8 + 16` floats (`K8` = `K` rounded up to
/// a multiple of 8), plus the weights padded to rows of `K8` when `K8 ≠ K`
/// (`kernels::conv2d_f32_scratch_words`). On every target, so that the arena the host reports
/// is the one the device needs (the host kernels ignore it).
pub(super) fn scratch_bytes(p: &Conv2d<'_>) -> usize {
    let words = match &p.weights {
        Weights::S8 { weights, bias, .. } if !bias.is_empty() => {
            let win = p.window.window();
            scratch_words_for_conv(weights.len() / bias.len(), win.kh, win.kw)
        }
        Weights::F32 { weights, bias } if !bias.is_empty() => {
            scratch_words_for_f32_patch(weights.len() / bias.len(), bias.len())
        }
        _ => None,
    };
    words.and_then(|w| w.checked_mul(4)).unwrap_or(0)
}

/// Runs the op; `scratch` is the arena's [`scratch_bytes`] for it (4-aligned).
pub(super) fn eval(
    p: &Conv2d<'_>,
    input: &In<'_>,
    output: Out<'_>,
    scratch: &mut [u8],
) -> Result<()> {
    let (cp, _, _) = params(0, p, &input.info).map_err(|_| Error::KernelBadArguments)?;
    match &p.weights {
        Weights::F32 { .. } => {
            let scratch = crate::arena::f32s_mut(scratch)?;
            weights::eval(
                &p.weights,
                input,
                output,
                |x, w, b, y| conv2d_f32_with_scratch(&cp, x, w, b, y, scratch),
                |_, _, _, _, _| Err(Error::KernelBadArguments),
            )
        }
        Weights::S8 { .. } => {
            let scratch = crate::arena::u32s_mut(scratch)?;
            weights::eval(
                &p.weights,
                input,
                output,
                |_, _, _, _| Err(Error::KernelBadArguments),
                |q, x, w, b, y| conv2d_s8_with_scratch(&cp, q, x, w, b, y, scratch),
            )
        }
    }
}
