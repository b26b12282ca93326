//! 2-D convolution, int8 (TFLite-Micro arithmetic), CHW.

use super::params::{ConvParams, PerChannelQuant};
use super::{conv_geometry, tap_range, ConvGeometry};
use crate::error::{Error, Result};
use crate::quant::{activation_range, requantize};
use crate::tensor::{Activation, I32Data, I8Data};

/// `acc[o][oy][ox] = bias[o] + Σ_{i,ky,kx} W[o][i][ky][kx] · (input[i][iy][ix] − q.input_zp)`,
/// `output[o][oy][ox] = clamp(MBQM(acc, q.multiplier[o], q.shift[o]) + zp_out, act_min, act_max)`
/// (TFLite-Micro's `ConvPerChannel`; MBQM = `MultiplyByQuantizedMultiplier`, the clamp range
/// from `activation_range(p.activation, q.output)`), with `iy = oy·sh + ky − pad_top`,
/// `ix = ox·sw + kx − pad_left`. Padded taps contribute 0 (they read `input_zp`, as in TFLite).
/// Shapes as [`super::conv2d_f32`]: `input` `[in][h][w]`, `weights` `[out][in][kh][kw]`,
/// `bias`, `q.multiplier`, `q.shift` `[out]`, `output` `[out][oh][ow]`.
///
/// The i32 accumulator is exact when the loader's overflow bound holds (see
/// `docs/quantization.md`); additions wrap rather than panic if a caller bypasses it, so the
/// result does not depend on the order of the terms.
pub fn conv2d_s8(
    p: &ConvParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) -> Result<()> {
    conv2d_s8_with_scratch(p, q, input, weights, bias, output, &mut [])
}

/// Words of scratch [`conv2d_s8_with_scratch`] uses for `p` on the Cortex-M4 DSP path:
/// `K = ci·kh·kw` rounded up to a multiple of 4 (two output pixels' patches as i16, two per
/// word, the last group of 4 taps padded; `4·⌈K/4⌉·4` bytes), or 0 if the product overflows. The engine requests this much on every target (the host kernels
/// ignore it), so the arena the host reports is the arena the device needs.
pub fn conv2d_s8_scratch_words(p: &ConvParams) -> usize {
    p.in_channels
        .checked_mul(p.window.kh)
        .and_then(|n| n.checked_mul(p.window.kw))
        .and_then(|k| scratch_words_for_conv(k, p.window.kh, p.window.kw))
        .unwrap_or(0)
}

/// The scratch words of a convolution whose patches have `per_out = ci·kh·kw` taps:
/// `per_out` rounded up to a multiple of 4 (`None` on overflow).
pub(crate) const fn scratch_words_for_patch(per_out: usize) -> Option<usize> {
    per_out.checked_next_multiple_of(4)
}

/// The scratch words of a `kh × kw` convolution with `per_out = ci·kh·kw` taps: twice
/// [`scratch_words_for_patch`] for a 1×1 kernel (the pointwise DSP kernel gathers 4 pixels,
/// `conv1x1_s8_dsp.rs`), [`scratch_words_for_patch`] otherwise (`None` on overflow).
pub(crate) const fn scratch_words_for_conv(per_out: usize, kh: usize, kw: usize) -> Option<usize> {
    match scratch_words_for_patch(per_out) {
        Some(words) if kh == 1 && kw == 1 => words.checked_mul(2),
        other => other,
    }
}

/// The Cortex-M4 DSP kernels on checked arguments: the 1×1 kernel when it applies (a 1×1
/// window and its scratch), else the general one when its scratch is there; `false` (nothing
/// written) when neither ran.
#[cfg(denoiserep_dsp)]
#[allow(clippy::too_many_arguments)]
fn run_dsp(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
    scratch: &mut [u32],
) -> bool {
    if super::conv1x1_s8_dsp::run(g, act, q, input, weights, bias, output, scratch) {
        return true;
    }
    if scratch.len() >= super::conv2d_s8_dsp::scratch_words(g.per_out) {
        super::conv2d_s8_dsp::run(g, act, q, input, weights, bias, output, scratch);
        return true;
    }
    false
}

/// [`conv2d_s8`] with a scratch buffer, the engine's entry point. On `thumbv7em-*`
/// (`cfg(denoiserep_dsp)`) the DSP kernel (`conv2d_s8_dsp.rs`) runs when `scratch` holds at
/// least [`conv2d_s8_scratch_words`]`(p)` words, the reference loop otherwise; the host runs its
/// fast path and other targets the reference, both ignoring `scratch`. Same bits on every path.
pub fn conv2d_s8_with_scratch(
    p: &ConvParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
    scratch: &mut [u32],
) -> Result<()> {
    let g = checked(p, q, input.len(), output.len(), weights.len(), bias.len())?;
    #[cfg(denoiserep_dsp)]
    if run_dsp(&g, p.activation, q, input, weights, bias, output, scratch) {
        return Ok(());
    }
    let _ = scratch;
    compute(&g, p.activation, q, input, weights, bias, output);
    Ok(())
}

/// [`conv2d_s8`] forced onto the pixel-at-a-time reference loop on every target: the oracle the
/// firmware's `kernel-check` binary compares the Cortex-M4 DSP kernel with.
#[doc(hidden)]
pub fn conv2d_s8_reference(
    p: &ConvParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) -> Result<()> {
    let g = checked(p, q, input.len(), output.len(), weights.len(), bias.len())?;
    reference(&g, p.activation, q, input, weights, bias, output);
    Ok(())
}

/// [`conv2d_s8`] on the DSP path with `scratch` (the reference loop when `scratch` is shorter
/// than [`conv2d_s8_scratch_words`]): public (hidden) so the firmware's `kernel-check` binary can
/// compare it with [`conv2d_s8_reference`] in QEMU.
#[cfg(denoiserep_dsp)]
#[doc(hidden)]
pub fn conv2d_s8_dsp(
    p: &ConvParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
    scratch: &mut [u32],
) -> Result<()> {
    let g = checked(p, q, input.len(), output.len(), weights.len(), bias.len())?;
    if !run_dsp(&g, p.activation, q, input, weights, bias, output, scratch) {
        reference(&g, p.activation, q, input, weights, bias, output);
    }
    Ok(())
}

/// The one check every int8 Conv2d entry point shares: the geometry ([`conv_geometry`]) and
/// `bias`, `q.multiplier`, `q.shift` of `out_channels` entries; `KernelBadArguments` otherwise.
fn checked(
    p: &ConvParams,
    q: &PerChannelQuant<'_>,
    input_len: usize,
    output_len: usize,
    weights_len: usize,
    bias_len: usize,
) -> Result<ConvGeometry> {
    let g = conv_geometry(p, input_len, output_len, weights_len)?;
    let co = p.out_channels;
    if !q.fits(bias_len, co) {
        return Err(Error::KernelBadArguments);
    }
    Ok(g)
}

/// The host fast path (or [`reference`] elsewhere); arguments as checked by [`conv2d_s8`] (the
/// depthwise kernel calls it once per channel).
#[inline]
pub(crate) fn compute(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    super::host::conv2d_s8(super::host::path(), g, act, q, input, weights, bias, output);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    reference(g, act, q, input, weights, bias, output);
}

/// The pixel-at-a-time loop the device runs (and the host tests compare the fast paths with);
/// arguments as checked by [`conv2d_s8`].
pub(crate) fn reference(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) {
    let ConvGeometry {
        ci,
        h,
        w,
        win,
        oh,
        ow,
        per_out,
    } = *g;
    let (kh, kw) = (win.kh, win.kw);
    let zp_in = i32::from(q.input_zp);
    let zp_out = i32::from(q.output.zero_point);
    let (act_min, act_max) = activation_range(act, q.output);
    let wb = weights.as_bytes();
    let per_channel = bias.iter().zip(q.multiplier.iter()).zip(q.shift.iter());
    let mut out_iter = output.iter_mut();
    for (o, ((bias, multiplier), shift)) in per_channel.enumerate() {
        let w_o = &wb[o * per_out..(o + 1) * per_out];
        for oy in 0..oh {
            let (ky_lo, ky_hi, y0) = tap_range(oy, win.sh, win.pad_top, kh, h);
            for ox in 0..ow {
                let (kx_lo, kx_hi, x0) = tap_range(ox, win.sw, win.pad_left, kw, w);
                let mut acc = bias;
                for i in 0..ci {
                    let plane = &input[i * h * w..(i + 1) * h * w];
                    for ky in ky_lo..ky_hi {
                        let iy = (y0 + ky as isize) as usize;
                        let row = &plane[iy * w..(iy + 1) * w];
                        let w_row = &w_o[(i * kh + ky) * kw..(i * kh + ky + 1) * kw];
                        for kx in kx_lo..kx_hi {
                            let x = i32::from(row[(x0 + kx as isize) as usize]);
                            acc = acc.wrapping_add(i32::from(w_row[kx] as i8) * (x - zp_in));
                        }
                    }
                }
                if let Some(out) = out_iter.next() {
                    *out = requantize(acc, multiplier, i32::from(shift), zp_out, act_min, act_max);
                }
            }
        }
    }
}
