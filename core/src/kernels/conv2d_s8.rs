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
    let g = conv_geometry(p, input.len(), output.len(), weights.len())?;
    let co = p.out_channels;
    if bias.len() != co || q.multiplier.len() != co || q.shift.len() != co {
        return Err(Error::KernelBadArguments);
    }
    compute(&g, p.activation, q, input, weights, bias, output);
    Ok(())
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
