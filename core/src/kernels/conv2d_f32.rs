//! 2-D convolution, f32, CHW.

use super::params::ConvParams;
use super::{activate_f32, conv_geometry, lanes_sum, tap_range, ConvGeometry, LANES};
use crate::error::{Error, Result};
use crate::tensor::{Activation, F32Data};

/// `output[o][oy][ox] = act(Σ_{i,ky,kx} W[o][i][ky][kx] · input[i][iy][ix] + bias[o])` with
/// `iy = oy·sh + ky − pad_top`, `ix = ox·sw + kx − pad_left`; taps outside the input are zero
/// padding. Shapes (`p.window` = `kh × kw`, strides `sh, sw`, padding top/bottom/left/right):
/// `input` `[in][h][w]`, `weights` `[out][in][kh][kw]`, `bias` `[out]`, `output` `[out][oh][ow]`
/// with `(oh, ow) = p.window.out_dims(h, w)`, i.e. `oh = (h + pad_top + pad_bottom − kh)/sh + 1`.
///
/// Reduction order: `j = (i·kh + ky)·kw + kx`, the weight's flat index within output channel `o`,
/// in the 8-lane order of the module docs (`lane[j mod 8]`, then the fixed tree, then `+ bias`).
/// Padded taps are skipped but keep their `j` (the other taps stay in their lanes); with finite
/// weights this is bit-identical to adding `w · 0.0` (a lane never holds −0.0, so adding ±0.0
/// leaves it unchanged), so an im2col implementation with explicit zeros gives the same bits.
///
/// `Err(KernelBadArguments)` if a slice length does not match `p` or the window is invalid.
pub fn conv2d_f32(
    p: &ConvParams,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) -> Result<()> {
    conv2d_f32_with_scratch(p, input, weights, bias, output, &mut [])
}

/// Floats of scratch [`conv2d_f32_with_scratch`] uses for `p` on the Cortex-M4F path, with
/// `K = ci·kh·kw` taps and `K8` = `K` rounded up to a multiple of 8: two output pixels' im2col
/// patches of `K8` floats each and 16 zeros, `2·K8 + 16`; when `K` is not a multiple of 8 or
/// the weights are small (`out_channels·K8 ≤` [`SMALL_WEIGHTS`]), also the weights copied into
/// rows of `K8` floats (zero-padded, 4-aligned), `+ out_channels·K8`. 0 if that overflows. The engine requests this much on every target (the host kernels ignore it), so
/// the arena the host reports is the arena the device needs.
pub fn conv2d_f32_scratch_words(p: &ConvParams) -> usize {
    p.in_channels
        .checked_mul(p.window.kh)
        .and_then(|n| n.checked_mul(p.window.kw))
        .and_then(|k| scratch_words_for_f32_patch(k, p.out_channels))
        .unwrap_or(0)
}

/// Largest `out_channels·K8` whose weights the Cortex-M4F convolution copies into its scratch
/// even when `K` is a multiple of 8 (8 KiB): the weights in the model file need not be
/// 4-aligned, and an unaligned row costs 8 `LDR` + 4 `VMOV` per 8 weights instead of one
/// `VLDMIA`; on a short filter (pointwise layers with 8–64 input channels) that is most of
/// the loop. The copy is `co·K` words once per layer.
pub(crate) const SMALL_WEIGHTS: usize = 2048;

/// The scratch floats of an f32 convolution with `out_channels` filters of `per_out =
/// ci·kh·kw` taps (see [`conv2d_f32_scratch_words`]; `None` on overflow).
pub(crate) const fn scratch_words_for_f32_patch(
    per_out: usize,
    out_channels: usize,
) -> Option<usize> {
    let Some(k8) = per_out.checked_next_multiple_of(super::LANES) else {
        return None;
    };
    let Some(w) = k8.checked_mul(out_channels) else {
        return None;
    };
    let weights = if k8 == per_out && w > SMALL_WEIGHTS {
        0
    } else {
        w
    };
    match k8.checked_mul(2) {
        Some(n) => match n.checked_add(2 * super::LANES) {
            Some(n) => n.checked_add(weights),
            None => None,
        },
        None => None,
    }
}

/// [`conv2d_f32`] with a scratch buffer, the engine's entry point. On the Cortex-M4F
/// (`cfg(denoiserep_fpu)`) the fast path (`f32_m4.rs`) takes its im2col patches from `scratch`
/// when it holds at least [`conv2d_f32_scratch_words`]`(p)` floats (any filter length), from
/// the stack for filters of at most `F32_PATCH` taps otherwise, else the reference loop; the
/// host runs its fast path and other targets the reference, both ignoring `scratch`. Same bits
/// on every path.
pub fn conv2d_f32_with_scratch(
    p: &ConvParams,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
    scratch: &mut [f32],
) -> Result<()> {
    let g = conv_geometry(p, input.len(), output.len(), weights.len())?;
    if !weights.is_whole() || bias.len() != p.out_channels {
        return Err(Error::KernelBadArguments);
    }
    compute(&g, p.activation, input, weights, bias, output, scratch);
    Ok(())
}

/// The host fast path where it applies, the Cortex-M4F one (`f32_m4.rs`, with `scratch`) on
/// the device, else [`reference`]; arguments as checked by [`conv2d_f32`] (the depthwise kernel
/// calls it once per channel, without scratch).
#[inline]
pub(crate) fn compute(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
    scratch: &mut [f32],
) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if super::host::conv2d_f32(super::host::path(), g, act, input, weights, bias, output) {
        return;
    }
    #[cfg(denoiserep_fpu)]
    super::f32_m4::conv2d(g, act, input, weights, bias, output, scratch);
    #[cfg(not(denoiserep_fpu))]
    {
        let _ = scratch;
        reference(g, act, input, weights, bias, output);
    }
}

/// The pixel-at-a-time loop the device runs (the host falls back to it for non-finite weights,
/// and its tests compare the fast paths with it); arguments as checked by [`conv2d_f32`].
pub(crate) fn reference(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
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
    let wb = weights.as_bytes();
    let mut out_iter = output.iter_mut();
    for (o, b) in bias.iter().enumerate() {
        let w_o = &wb[o * per_out * 4..(o + 1) * per_out * 4];
        for oy in 0..oh {
            let (ky_lo, ky_hi, y0) = tap_range(oy, win.sh, win.pad_top, kh, h);
            for ox in 0..ow {
                let (kx_lo, kx_hi, x0) = tap_range(ox, win.sw, win.pad_left, kw, w);
                let mut lanes = [0.0f32; LANES];
                for i in 0..ci {
                    let plane = &input[i * h * w..(i + 1) * h * w];
                    for ky in ky_lo..ky_hi {
                        let iy = (y0 + ky as isize) as usize;
                        let row = &plane[iy * w..(iy + 1) * w];
                        for kx in kx_lo..kx_hi {
                            let ix = (x0 + kx as isize) as usize;
                            let j = (i * kh + ky) * kw + kx;
                            let wv = f32::from_le_bytes([
                                w_o[4 * j],
                                w_o[4 * j + 1],
                                w_o[4 * j + 2],
                                w_o[4 * j + 3],
                            ]);
                            lanes[j % LANES] += wv * row[ix];
                        }
                    }
                }
                if let Some(out) = out_iter.next() {
                    *out = activate_f32(lanes_sum(&lanes) + b, act);
                }
            }
        }
    }
}
