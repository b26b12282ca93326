//! Depthwise 2-D convolution (depth multiplier 1), int8 (TFLite-Micro arithmetic), CHW.

use super::params::{DepthwiseParams, PerChannelQuant};
use super::{conv2d_s8, depthwise_geometry, ConvGeometry};
use crate::error::{Error, Result};
use crate::tensor::{Activation, I32Data, I8Data};

/// TFLite-Micro's reference `DepthwiseConvPerChannel` with depth multiplier 1:
/// `acc[c][oy][ox] = bias[c] + Σ_{ky,kx} W[c][ky][kx] · (input[c][iy][ix] − q.input_zp)`,
/// `output[c][oy][ox] = clamp(MBQM(acc, q.multiplier[c], q.shift[c]) + zp_out, act_min,
/// act_max)` (MBQM = `MultiplyByQuantizedMultiplier`, the clamp range from
/// `activation_range(p.activation, q.output)`), `iy = oy·sh + ky − pad_top`,
/// `ix = ox·sw + kx − pad_left`; padded taps are skipped (they would read `input_zp` and add 0).
/// Shapes: `input` `[c][h][w]`, `weights` `[c][kh][kw]`, `bias`, `q.multiplier`, `q.shift`
/// `[c]`, `output` `[c][oh][ow]` with `(oh, ow) = p.window.out_dims(h, w)`.
///
/// TFLite adds the bias after the taps; the i32 sum wraps here (never panics) and is exact
/// whenever TFLite's is defined, so the order makes no difference. Each channel runs as a
/// 1 → 1-channel [`super::conv2d_s8`] with that channel's bias and requantization, except on
/// ARMv7E-M, where 3×3 windows run the DSP kernel (`depthwise_conv2d_s8_dsp.rs`, same bits).
///
/// `Err(KernelBadArguments)` if a slice length does not match `p` or the window is invalid.
/// Without scratch: [`depthwise_conv2d_s8_with_scratch`] with none (on ARMv7E-M the strip
/// kernel then does not run).
pub fn depthwise_conv2d_s8(
    p: &DepthwiseParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) -> Result<()> {
    depthwise_conv2d_s8_with_scratch(p, q, input, weights, bias, output, &mut [])
}

/// Words per ring row of the Cortex-M4 strip kernel (`depthwise_conv2d_s8_strip.rs`): 56
/// halfwords, a fixed pitch its assembly addresses with immediate offsets.
pub(crate) const STRIP_PITCH_HALFWORDS: usize = 56;
/// Ring rows of the strip kernel: three input rows and duplicates of two.
pub(crate) const STRIP_SLOTS: usize = 5;
/// Widest padded input row (`pad_left + w + pad_right`) the strip kernel takes (one column
/// past it is read).
#[cfg_attr(not(denoiserep_dsp), allow(dead_code))]
pub(crate) const STRIP_MAX_PADDED_W: usize = STRIP_PITCH_HALFWORDS - 1;

/// The scratch words [`depthwise_conv2d_s8_with_scratch`] uses for a layer with window `win`:
/// the strip kernel's i16 ring (`5 × 56` halfwords = 140 words, 560 B) for 3×3 windows with
/// strides 1–2, else 0. The same on every target (the arena planner sizes it from the model,
/// and the host reports the arena the device needs); only ARMv7E-M uses it. Planes whose
/// padded rows exceed [`STRIP_MAX_PADDED_W`] still get it (unused).
pub const fn depthwise_conv2d_s8_scratch_words(win: &super::params::Window) -> usize {
    if win.kh == 3 && win.kw == 3 && (win.sh == 1 || win.sh == 2) && (win.sw == 1 || win.sw == 2) {
        STRIP_SLOTS * STRIP_PITCH_HALFWORDS / 2
    } else {
        0
    }
}

/// [`depthwise_conv2d_s8`] with a scratch buffer, the engine's entry point. On ARMv7E-M
/// (`cfg(denoiserep_dsp)`) 3×3 windows run the DSP kernels (`depthwise_conv2d_s8_dsp.rs`:
/// the strip kernel when `scratch` holds [`depthwise_conv2d_s8_scratch_words`] words, else the
/// word kernel on planes ≥ 4 wide), other layers the per-channel Conv2d path; other targets
/// ignore `scratch`. Same bits on every path.
pub fn depthwise_conv2d_s8_with_scratch(
    p: &DepthwiseParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
    scratch: &mut [u32],
) -> Result<()> {
    #[cfg(denoiserep_dsp)]
    let run: RunFn = |g, act, q, input, weights, bias, output, scratch| {
        if super::depthwise_conv2d_s8_dsp::supports(g) {
            super::depthwise_conv2d_s8_dsp::run(g, act, q, input, weights, bias, output, scratch);
        } else {
            per_channel(g, act, q, input, weights, bias, output, conv2d_s8::compute);
        }
    };
    #[cfg(not(denoiserep_dsp))]
    let run: RunFn = |g, act, q, input, weights, bias, output, _| {
        per_channel(g, act, q, input, weights, bias, output, conv2d_s8::compute);
    };
    checked(p, q, input, weights, bias, output, scratch, run)
}

/// [`depthwise_conv2d_s8`] forced onto the reference loop (one 1 → 1-channel Conv2d reference
/// per channel) on every target: the oracle the firmware's `kernel-check` binary compares the
/// Cortex-M4 DSP kernel with.
#[doc(hidden)]
pub fn depthwise_conv2d_s8_reference(
    p: &DepthwiseParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) -> Result<()> {
    checked(
        p,
        q,
        input,
        weights,
        bias,
        output,
        &mut [],
        |g, act, q, x, w, b, y, _| {
            per_channel(g, act, q, x, w, b, y, conv2d_s8::reference);
        },
    )
}

/// [`depthwise_conv2d_s8_with_scratch`] on the DSP kernels alone (3×3 windows: the strip
/// kernel with enough `scratch`, else the word kernel on planes ≥ 4 wide; other layers run the
/// reference loop, as the dispatch does). Public (hidden) so the firmware's `kernel-check`
/// binary can compare it with [`depthwise_conv2d_s8_reference`] in QEMU.
#[cfg(denoiserep_dsp)]
#[doc(hidden)]
pub fn depthwise_conv2d_s8_dsp(
    p: &DepthwiseParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
    scratch: &mut [u32],
) -> Result<()> {
    checked(
        p,
        q,
        input,
        weights,
        bias,
        output,
        scratch,
        |g, act, q, x, w, b, y, scratch| {
            if super::depthwise_conv2d_s8_dsp::supports(g) {
                super::depthwise_conv2d_s8_dsp::run(g, act, q, x, w, b, y, scratch);
            } else {
                per_channel(g, act, q, x, w, b, y, conv2d_s8::reference);
            }
        },
    )
}

/// A depthwise loop on arguments checked by [`checked`] (`g` is one channel's geometry), with
/// the caller's scratch.
type RunFn = fn(
    &ConvGeometry,
    Activation,
    &PerChannelQuant<'_>,
    &[i8],
    I8Data<'_>,
    I32Data<'_>,
    &mut [i8],
    &mut [u32],
);

/// One Conv2d loop (`conv2d_s8::compute` or `conv2d_s8::reference`).
type ConvFn =
    fn(&ConvGeometry, Activation, &PerChannelQuant<'_>, &[i8], I8Data<'_>, I32Data<'_>, &mut [i8]);

/// The one argument check every entry point shares (else `KernelBadArguments`), then `run`.
#[allow(clippy::too_many_arguments)]
fn checked(
    p: &DepthwiseParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
    scratch: &mut [u32],
    run: RunFn,
) -> Result<()> {
    let g = depthwise_geometry(p, input.len(), output.len(), weights.len())?;
    let c = p.channels;
    if !q.fits(bias.len(), c) {
        return Err(Error::KernelBadArguments);
    }
    if c == 0 {
        return Ok(());
    }
    run(&g, p.activation, q, input, weights, bias, output, scratch);
    Ok(())
}

/// Each channel as a 1 → 1-channel Conv2d (`conv`) with that channel's bias and requantization.
#[allow(clippy::too_many_arguments)]
pub(crate) fn per_channel(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
    conv: ConvFn,
) {
    let planes = input
        .chunks_exact(g.h * g.w)
        .zip(output.chunks_exact_mut(g.oh * g.ow));
    for (c, (x_c, y_c)) in planes.enumerate() {
        let (Some(w_c), Some(b_c), Some(multiplier), Some(shift)) = (
            weights.slice(c * g.per_out, g.per_out),
            bias.slice(c, 1),
            q.multiplier.slice(c, 1),
            q.shift.slice(c, 1),
        ) else {
            return;
        };
        let q_c = PerChannelQuant {
            multiplier,
            shift,
            ..*q
        };
        conv(g, act, &q_c, x_c, w_c, b_c, y_c);
    }
}
