//! Conv2d with one input channel (every channel of a DepthwiseConv2d, which runs as a
//! 1 → 1-channel Conv2d, and first layers on one-channel images), vectorized across output
//! pixels instead of taps (host only).
//!
//! With one input channel a filter has only `taps = kh·kw` terms (9 for 3×3), too few to fill
//! the 8-wide dot product of [`super::im2col`] without mostly zero lanes. Here a tile of `np`
//! output pixels (`np` a multiple of [`PX`]) is unrolled tap-major into a stack buffer,
//! `col[j][k]` = tap `j = ky·kw + kx` of pixel `p0 + k` (0 for a padded tap), and each group of
//! [`PX`] pixels keeps the 8 lanes of the documented order as 8 arrays of [`PX`] values:
//! `lane[j mod 8][px] += w[j] · col[j][px]` in increasing `j` (a product rounded, then an add;
//! no FMA), then the fixed tree per pixel, then the bias. Padded taps add `w · 0.0`, the same
//! bits as skipping them for finite weights (see [`super::im2col`]; the caller checked the
//! weights). int8: `col` holds `x − zp_in` (padding 0), exact i32 sums, the reference's
//! [`requantize`].
//!
//! Plain Rust over fixed arrays, so it compiles to SSE2/NEON, or AVX2 when `x86.rs`
//! instantiates it inside an AVX2 function.

use crate::kernels::params::PerChannelQuant;
use crate::kernels::{activate_f32, lanes_sum, tap_range, ConvGeometry, LANES};
use crate::quant::{activation_range, requantize};
use crate::tensor::{Activation, F32Data, I32Data, I8Data};

/// Output pixels per vector group.
const PX: usize = 8;
/// Most taps handled here (a 7×9 kernel); larger filters go to [`super::im2col`].
pub(super) const MAX_TAPS: usize = 64;
/// Capacity of the tap-major tile, in elements (16 KiB of f32, 8 KiB of i16).
const COL: usize = 4096;

/// Writes `col[j·np + k]` = `f(input[iy][ix])` for tap `j` of output pixel `p0 + k`, `k < np`,
/// or `zero` where the tap is padding (and for the pixels past the plane's end).
#[inline(always)]
fn im2col_taps<T: Copy, U: Copy>(
    g: &ConvGeometry,
    plane: &[T],
    (p0, np): (usize, usize),
    col: &mut [U],
    zero: U,
    f: impl Fn(T) -> U,
) {
    let (kh, kw, ow) = (g.win.kh, g.win.kw, g.ow.max(1));
    let out_plane = g.oh * g.ow;
    let mut k = 0;
    while k < np {
        let p = p0 + k;
        if p >= out_plane {
            for j in 0..kh * kw {
                if let Some(c) = col.get_mut(j * np + k..j * np + np) {
                    c.fill(zero);
                }
            }
            break;
        }
        // One run of pixels of output row `oy`: columns ox0 .. ox0 + run.
        let (oy, ox0) = (p / ow, p % ow);
        let run = (ow - ox0).min(np - k);
        let (ky_lo, ky_hi, y0) = tap_range(oy, g.win.sh, g.win.pad_top, kh, g.h);
        for ky in 0..kh {
            let row = if ky >= ky_lo && ky < ky_hi {
                let iy = (y0 + ky as isize) as usize;
                plane.get(iy * g.w..(iy + 1) * g.w).unwrap_or(&[])
            } else {
                &[]
            };
            for kx in 0..kw {
                let j = ky * kw + kx;
                let Some(dst) = col.get_mut(j * np + k..j * np + k + run) else {
                    continue;
                };
                let start = kx as isize - g.win.pad_left as isize;
                for (r, d) in dst.iter_mut().enumerate() {
                    let ix = start + ((ox0 + r) * g.win.sw) as isize;
                    *d = if ix < 0 {
                        zero
                    } else {
                        row.get(ix as usize).map_or(zero, |&v| f(v))
                    };
                }
            }
        }
        k += run;
    }
}

/// Pixels per tile for `taps` taps: a multiple of [`PX`], at least [`PX`] (`taps ≤ MAX_TAPS`).
#[inline(always)]
fn tile_pixels(taps: usize) -> usize {
    let n = COL / taps.max(1);
    (n - n % PX).max(PX)
}

/// [`crate::kernels::conv2d_f32`] after its checks when `g.ci == 1` and every weight is finite:
/// `output[o][p] = act(tree(lanes_j(W[o][j] · col[j][p])) + bias[o])`. Returns `false` (writing
/// nothing) for another shape.
#[inline(always)]
pub(super) fn conv2d_f32(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) -> bool {
    let taps = g.per_out;
    if g.ci != 1 || taps > MAX_TAPS {
        return false;
    }
    let plane = g.oh * g.ow;
    if taps == 0 || plane == 0 {
        return true;
    }
    let tile = tile_pixels(taps);
    let mut col = [0.0f32; COL];
    let mut wv = [0.0f32; MAX_TAPS];
    let mut p0 = 0;
    while p0 < plane {
        let np_real = tile.min(plane - p0);
        let np = np_real.div_ceil(PX) * PX;
        im2col_taps(g, input, (p0, np), &mut col, 0.0, |v| v);
        for (o, b) in bias.iter().enumerate() {
            let w_o = weights.slice(o * taps, taps);
            for (d, v) in wv.iter_mut().zip(w_o.iter().flat_map(|w| w.iter())) {
                *d = v;
            }
            let Some(out_o) = output.get_mut(o * plane + p0..o * plane + p0 + np_real) else {
                continue;
            };
            for (gi, out_g) in out_o.chunks_mut(PX).enumerate() {
                let k0 = gi * PX;
                let mut acc = [[0.0f32; PX]; LANES];
                for c in 0..taps.div_ceil(LANES) {
                    for (l, lane) in acc.iter_mut().enumerate() {
                        let j = LANES * c + l;
                        if j >= taps {
                            break;
                        }
                        let w = wv[j];
                        let Some(Ok(x)) = col
                            .get(j * np + k0..j * np + k0 + PX)
                            .map(<&[f32; PX]>::try_from)
                        else {
                            continue;
                        };
                        for px in 0..PX {
                            lane[px] += w * x[px];
                        }
                    }
                }
                for (px, y) in out_g.iter_mut().enumerate() {
                    let l: [f32; LANES] = core::array::from_fn(|lane| acc[lane][px]);
                    *y = activate_f32(lanes_sum(&l) + b, act);
                }
            }
        }
        p0 += np_real;
    }
    true
}

/// [`crate::kernels::conv2d_s8`] after its checks when `g.ci == 1` and there is one filter
/// (a depthwise channel): exact
/// `acc = bias[o] + Σ_j W[o][j] · (x_j − zp_in)`, then the reference's requantization. Returns
/// `false` (writing nothing) for another shape.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn conv2d_s8(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) -> bool {
    let taps = g.per_out;
    // Several filters: the i32 products here (`vpmulld`) lose to the `vpmaddwd` of `im2col`.
    if g.ci != 1 || taps > MAX_TAPS || bias.len() != 1 {
        return false;
    }
    let plane = g.oh * g.ow;
    if taps == 0 || plane == 0 {
        return true;
    }
    let zp_out = i32::from(q.output.zero_point);
    let (act_min, act_max) = activation_range(act, q.output);
    let zp = i16::from(q.input_zp);
    let tile = tile_pixels(taps);
    let mut col = [0i16; COL];
    let mut wv = [0i32; MAX_TAPS];
    let wb = weights.as_bytes();
    let per_channel = bias.iter().zip(q.multiplier.iter()).zip(q.shift.iter());
    let mut p0 = 0;
    while p0 < plane {
        let np_real = tile.min(plane - p0);
        let np = np_real.div_ceil(PX) * PX;
        im2col_taps(g, input, (p0, np), &mut col, 0, |v| i16::from(v) - zp);
        for (o, ((b, m), shift)) in per_channel.clone().enumerate() {
            let w_o = wb.get(o * taps..(o + 1) * taps).unwrap_or(&[]);
            for (d, &v) in wv.iter_mut().zip(w_o) {
                *d = i32::from(v as i8);
            }
            let Some(out_o) = output.get_mut(o * plane + p0..o * plane + p0 + np_real) else {
                continue;
            };
            for (gi, out_g) in out_o.chunks_mut(PX).enumerate() {
                let k0 = gi * PX;
                let mut acc = [0i32; PX];
                for (j, &w) in wv.iter().enumerate().take(taps) {
                    let Some(Ok(x)) = col
                        .get(j * np + k0..j * np + k0 + PX)
                        .map(<&[i16; PX]>::try_from)
                    else {
                        continue;
                    };
                    for px in 0..PX {
                        acc[px] = acc[px].wrapping_add(w * i32::from(x[px]));
                    }
                }
                for (y, a) in out_g.iter_mut().zip(acc) {
                    *y = requantize(
                        b.wrapping_add(a),
                        m,
                        i32::from(shift),
                        zp_out,
                        act_min,
                        act_max,
                    );
                }
            }
        }
        p0 += np_real;
    }
    true
}
