//! Depthwise 2-D convolution (depth multiplier 1), f32, CHW.

use super::params::DepthwiseParams;
use super::{conv2d_f32, depthwise_geometry, ConvGeometry};
use crate::error::{Error, Result};
use crate::tensor::{Activation, F32Data};

/// `output[c][oy][ox] = act(Σ_{ky,kx} W[c][ky][kx] · input[c][iy][ix] + bias[c])` with
/// `iy = oy·sh + ky − pad_top`, `ix = ox·sw + kx − pad_left`; taps outside the input are zero
/// padding. Shapes: `input` `[c][h][w]`, `weights` `[c][kh][kw]`, `bias` `[c]`, `output`
/// `[c][oh][ow]` with `(oh, ow) = p.window.out_dims(h, w)`. Output channel `c` reads only input
/// channel `c`.
///
/// Reduction order: `j = ky·kw + kx` (the weight's flat index within channel `c`) in the 8-lane
/// order of the module docs, padded taps skipped but keeping their `j`: exactly the rule of
/// [`super::conv2d_f32`] for one input channel. Each channel runs as a 1 → 1-channel
/// [`super::conv2d_f32`] (host fast path included), so the bits are the conv kernel's.
///
/// `Err(KernelBadArguments)` if a slice length does not match `p` or the window is invalid.
pub fn depthwise_conv2d_f32(
    p: &DepthwiseParams,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) -> Result<()> {
    #[cfg(denoiserep_fpu)]
    if p.window.kh == 3 && p.window.kw == 3 {
        // The Cortex-M4F's 3×3 path over all channels at once (the same bits as `run`'s
        // per-channel convolutions).
        return super::f32_m4::depthwise3x3(p, input, weights, bias, output);
    }
    run(p, input, weights, bias, output, |g, a, x, w, b, y| {
        conv2d_f32::compute(g, a, x, w, b, y, &mut [])
    })
}

/// The checks of [`depthwise_conv2d_f32`], then `conv` once per channel (a 1 → 1-channel
/// convolution of that channel's plane).
pub(crate) fn run(
    p: &DepthwiseParams,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
    mut conv: impl FnMut(&ConvGeometry, Activation, &[f32], F32Data<'_>, F32Data<'_>, &mut [f32]),
) -> Result<()> {
    let g = depthwise_geometry(p, input.len(), output.len(), weights.len())?;
    if !weights.is_whole() || bias.len() != p.channels {
        return Err(Error::KernelBadArguments);
    }
    if p.channels == 0 {
        return Ok(());
    }
    let planes = input
        .chunks_exact(g.h * g.w)
        .zip(output.chunks_exact_mut(g.oh * g.ow));
    for (c, (x_c, y_c)) in planes.enumerate() {
        let (Some(w_c), Some(b_c)) = (weights.slice(c * g.per_out, g.per_out), bias.slice(c, 1))
        else {
            return Err(Error::KernelBadArguments);
        };
        conv(&g, p.activation, x_c, w_c, b_c, y_c);
    }
    Ok(())
}
