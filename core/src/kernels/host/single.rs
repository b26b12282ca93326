//! Conv2d whose filters have few taps (`ci·kh·kw ≤ MAX_TAPS`: first layers on one- or
//! three-channel images, 1×1 convolutions over ≤ 64 channels, every channel of a
//! DepthwiseConv2d, which runs as a 1 → 1-channel Conv2d), vectorized across output pixels
//! instead of taps (host only).
//!
//! A filter this short cannot fill the 8-wide dot products of [`super::im2col`] without mostly
//! zero lanes and a horizontal sum per output. Here a tile of `np` output pixels (`np` a multiple
//! of [`PX`]) is unrolled tap-major and group-major into a stack buffer: group `g` of [`PX`]
//! pixels holds, for each tap `j = (i·kh + ky)·kw + kx` in turn, the [`PX`] values of that tap
//! (0 for a padded tap), so that one group's taps are one contiguous block.
//!
//! - **f32**: each group keeps the 8 lanes of the documented order as 8 vectors of [`PX`]
//!   pixels: `lane[j mod 8][px] += w[j] · col[j][px]` in increasing `j` (a product rounded, then
//!   an add; no FMA), then the fixed tree of [`crate::kernels::lanes_sum`] applied lane-wise to
//!   the 8 vectors (the same adds, in the same order, as the tree per pixel), then the bias.
//!   Padded taps add `w · 0.0`, the same bits as skipping them for finite weights (see
//!   [`super::im2col`]; the caller checked the weights).
//! - **int8**: the tile holds `x − zp_in` (padding 0) as `i16`, taps in pairs interleaved per
//!   pixel (`col[g][j/2][px][j mod 2]`, a zero tap past an odd `ci·kh·kw`), so that one pair of
//!   taps of [`PX`] pixels is a `vpmaddwd` against the broadcast weight pair:
//!   `acc[px] += w[j]·x_j[px] + w[j+1]·x_{j+1}[px]`, exact (`|w·x + w·x| ≤ 2·128·255`) in
//!   wrapping i32 like the reference. [`FILTERS`] filters share each load of the tile. Then the
//!   kernel's requantization ([`S8Dots::requant`], the reference's bits) per filter row.
//!
//! Plain Rust over fixed arrays, so it compiles to SSE2/NEON, or AVX2 when `x86.rs` (or
//! `avx512.rs`) instantiates it inside a target-feature function.

use super::im2col::S8Dots;
use super::requant::RowQuant;
use crate::kernels::params::PerChannelQuant;
use crate::kernels::{activate_f32, tap_range, ConvGeometry, LANES};
use crate::quant::activation_range;
use crate::tensor::{Activation, F32Data, I32Data, I8Data};

/// Output pixels per vector group.
pub(super) const PX: usize = 8;
/// Most taps (`ci·kh·kw`) handled here; longer filters go to [`super::im2col`].
pub(super) const MAX_TAPS: usize = 64;
/// Capacity of the tile, in elements (16 KiB of f32, 8 KiB of i16).
const COL: usize = 4096;
/// int8 filters per pass over a group (they share its loads).
const FILTERS: usize = 4;
/// Most pixels per int8 tile (the accumulator rows of [`FILTERS`] filters: 8 KiB).
const ACC_PX: usize = 512;

/// The weight pairs of one filter, packed as `vpmaddwd` reads them: `w[2m]` in the low 16 bits
/// of element `m`, `w[2m + 1]` in the high 16 bits (zeros past its taps).
pub(super) type Pairs = [i32; MAX_TAPS / 2];

/// The weight pair of taps `a` and `b` (int8 bytes) as `vpmaddwd` reads an i32 lane: `a` in the
/// low 16 bits, `b` in the high 16 bits (both sign-extended).
#[inline(always)]
pub(super) fn pack_pair(a: u8, b: u8) -> i32 {
    (i32::from(a as i8) & 0xffff) | (i32::from(b as i8) << 16)
}

/// `out[f][px] = Σ_m w[f][2m]·x[m][px][0] + w[f][2m + 1]·x[m][px][1]` over the tap pairs `m` of
/// one group `blk` (`[pairs][PX][2]` i16), exact wrapping i32: what `vpmaddwd` computes, in
/// plain Rust (the default of [`S8Dots::pair_dots`]).
#[inline(always)]
pub(super) fn pair_dots_portable<const F: usize>(blk: &[i16], wp: &[Pairs; F]) -> [[i32; PX]; F] {
    let mut a = [[0i32; PX]; F];
    for (m, xp) in blk.chunks_exact(2 * PX).enumerate() {
        for f in 0..F {
            let w = wp[f][m % (MAX_TAPS / 2)];
            let (w0, w1) = (i32::from(w as i16), w >> 16);
            for px in 0..PX {
                let d = i32::from(xp[2 * px]) * w0 + i32::from(xp[2 * px + 1]) * w1;
                a[f][px] = a[f][px].wrapping_add(d);
            }
        }
    }
    a
}

/// Writes the tile of the `np` output pixels `p0 ..`: tap `j` of pixel `p0 + k` goes to
/// `col[(k / PX)·group + (j / P)·PX·P + (k mod PX)·P + j mod P]` as `f(x)`, or `zero` where the
/// tap is padding (and for the pixels past the plane's end). `group` is the elements per group
/// (`taps` rounded up to `P`, times [`PX`]); the slots of a tap past `taps` (odd `taps`,
/// `P = 2`) are left as they are (the caller zeroes them once).
///
/// It works on segments: the pixels of one group that lie in one output row, so that a tap's
/// values are one run of an input row (stride `sw`) and one run of the tile (stride `P`). A
/// 1×1 window at stride 1 without padding reads pixel `p` of every input plane (the output
/// plane is the input plane), so its segments are whole groups.
#[inline(always)]
fn im2col_taps<T: Copy, U: Copy, const P: usize>(
    g: &ConvGeometry,
    input: &[T],
    (p0, np): (usize, usize),
    group: usize,
    col: &mut [U],
    zero: U,
    f: impl Fn(T) -> U,
) {
    let win = &g.win;
    let (kh, kw, ow, sw) = (win.kh, win.kw, g.ow.max(1), win.sw);
    let (plane_len, out_plane) = (g.h * g.w, g.oh * g.ow);
    let pointwise = kh == 1
        && kw == 1
        && win.sh == 1
        && sw == 1
        && win.pad_top + win.pad_bottom + win.pad_left + win.pad_right == 0;
    if pointwise {
        for gi in 0..np / PX {
            let p = p0 + gi * PX;
            let n = out_plane.saturating_sub(p).min(PX);
            for (i, plane) in input.chunks_exact(plane_len.max(1)).take(g.ci).enumerate() {
                let at = gi * group + (i / P) * PX * P + i % P;
                let src = plane.get(p..p + n).unwrap_or(&[]);
                let Some(dst) = col.get_mut(at..at + P * (PX - 1) + 1) else {
                    continue;
                };
                if let (1, Ok(src), Ok(dst)) = (
                    P,
                    <&[T; PX]>::try_from(src),
                    <&mut [U; PX]>::try_from(&mut *dst),
                ) {
                    *dst = src.map(&f);
                    continue;
                }
                for (r, d) in dst.iter_mut().step_by(P).enumerate() {
                    *d = src.get(r).map_or(zero, |&v| f(v));
                }
            }
        }
        return;
    }
    let mut k = 0;
    while k < np {
        let (gi, off) = (k / PX, k % PX);
        let p = p0 + k;
        // Pixels `k .. k + seg` share group `gi` and output row `oy`.
        let (oy, ox0) = (p / ow, p % ow);
        let seg = (PX - off).min(np - k);
        let real = if p < out_plane { seg.min(ow - ox0) } else { 0 };
        let seg = if real == 0 { seg } else { real };
        let (ky_lo, ky_hi, y0) = tap_range(oy, win.sh, win.pad_top, kh, g.h);
        let mut j = 0;
        for i in 0..g.ci {
            let plane = input.get(i * plane_len..(i + 1) * plane_len).unwrap_or(&[]);
            for ky in 0..kh {
                let row = if real > 0 && ky >= ky_lo && ky < ky_hi {
                    let iy = (y0 + ky as isize) as usize;
                    plane.get(iy * g.w..(iy + 1) * g.w).unwrap_or(&[])
                } else {
                    &[]
                };
                for kx in 0..kw {
                    let at = gi * group + (j / P) * PX * P + off * P + j % P;
                    j += 1;
                    let Some(dst) = col.get_mut(at..at + P * (seg - 1) + 1) else {
                        continue;
                    };
                    // Input column of the segment's first pixel; pixel r reads `ix0 + r·sw`.
                    let ix0 = (ox0 * sw + kx) as isize - win.pad_left as isize;
                    if ix0 >= 0 && (ix0 as usize) + (seg - 1) * sw < row.len() {
                        let src = row.get(ix0 as usize..).unwrap_or(&[]);
                        if seg == PX
                            && match sw {
                                1 => copy_group::<_, _, P, 1>(dst, src, &f),
                                2 => copy_group::<_, _, P, 2>(dst, src, &f),
                                _ => false,
                            }
                        {
                            continue;
                        }
                        if P == 1 && sw == 1 {
                            for (d, &v) in dst.iter_mut().zip(src) {
                                *d = f(v);
                            }
                        } else {
                            for (d, &v) in dst.iter_mut().step_by(P).zip(src.iter().step_by(sw)) {
                                *d = f(v);
                            }
                        }
                        continue;
                    }
                    for (r, d) in dst.iter_mut().step_by(P).enumerate() {
                        let ix = ix0 + (r * sw) as isize;
                        *d = if ix < 0 {
                            zero
                        } else {
                            row.get(ix as usize).map_or(zero, |&v| f(v))
                        };
                    }
                }
            }
        }
        k += seg;
    }
}

/// `dst[r·P] = f(src[r·SW])` for the [`PX`] pixels `r` of a whole segment, with lengths known
/// at compile time, so that the copy is unrolled without bounds checks (as iterator steps it
/// was over half of a 1×1 stride-2 int8 layer). `false` (nothing written) when a slice is short.
#[inline(always)]
fn copy_group<T: Copy, U: Copy, const P: usize, const SW: usize>(
    dst: &mut [U],
    src: &[T],
    f: &impl Fn(T) -> U,
) -> bool {
    let (Some(d), Some(s)) = (
        dst.get_mut(..P * (PX - 1) + 1),
        src.get(..SW * (PX - 1) + 1),
    ) else {
        return false;
    };
    for r in 0..PX {
        d[r * P] = f(s[r * SW]);
    }
    true
}

/// Pixels per tile for `elems` tile elements per pixel: a multiple of [`PX`], at least [`PX`]
/// (`elems ≤ MAX_TAPS + 1`).
#[inline(always)]
fn tile_pixels(elems: usize) -> usize {
    let n = COL / elems.max(1);
    (n - n % PX).max(PX)
}

/// `a + b` pixel by pixel.
#[inline(always)]
fn add_px(a: [f32; PX], b: [f32; PX]) -> [f32; PX] {
    core::array::from_fn(|px| a[px] + b[px])
}

/// The fixed tree of [`crate::kernels::lanes_sum`] for each of the [`PX`] pixels at once, as
/// whole-vector adds (written per pixel, the compiler reassembled some lanes one by one).
#[inline(always)]
fn lanes_sum_px(acc: &[[f32; PX]; LANES]) -> [f32; PX] {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = *acc;
    add_px(
        add_px(add_px(a0, a1), add_px(a2, a3)),
        add_px(add_px(a4, a5), add_px(a6, a7)),
    )
}

/// `y = activate_f32(y, act)` over a row, with the match outside the loop (so that it
/// vectorizes; a select per pixel inside the group loop came out as scalar code).
#[inline(always)]
fn activate_row(row: &mut [f32], act: Activation) {
    let each = |row: &mut [f32], a: Activation| {
        for y in row {
            *y = activate_f32(*y, a);
        }
    };
    match act {
        Activation::None => {}
        Activation::Relu => each(row, Activation::Relu),
        Activation::Relu6 => each(row, Activation::Relu6),
    }
}

/// [`crate::kernels::conv2d_f32`] after its checks when `ci·kh·kw ≤ MAX_TAPS` and every weight
/// is finite: `output[o][p] = act(tree(lanes_j(W[o][j] · col[j][p])) + bias[o])`. Returns
/// `false` (writing nothing) for another shape.
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
    if taps > MAX_TAPS {
        return false;
    }
    let plane = g.oh * g.ow;
    if taps == 0 || plane == 0 {
        return true;
    }
    let tile = tile_pixels(taps);
    let group = taps * PX;
    let mut col = [0.0f32; COL];
    let mut wv = [0.0f32; MAX_TAPS];
    let mut p0 = 0;
    while p0 < plane {
        let np_real = tile.min(plane - p0);
        let np = np_real.div_ceil(PX) * PX;
        im2col_taps::<_, _, 1>(g, input, (p0, np), group, &mut col, 0.0, |v| v);
        for (o, b) in bias.iter().enumerate() {
            let w_o = weights.slice(o * taps, taps);
            for (d, v) in wv.iter_mut().zip(w_o.iter().flat_map(|w| w.iter())) {
                *d = v;
            }
            let Some(out_o) = output.get_mut(o * plane + p0..o * plane + p0 + np_real) else {
                continue;
            };
            let (w_full, w_rest) = wv[..taps].split_at(taps - taps % LANES);
            for (blk, out_g) in col.chunks_exact(group).zip(out_o.chunks_mut(PX)) {
                let mut acc = [[0.0f32; PX]; LANES];
                let mut chunks = blk.chunks_exact(LANES * PX);
                for (xc, wc) in (&mut chunks).zip(w_full.chunks_exact(LANES)) {
                    for l in 0..LANES {
                        let w = wc[l];
                        for px in 0..PX {
                            acc[l][px] += w * xc[l * PX + px];
                        }
                    }
                }
                let x_rest = chunks.remainder();
                for (l, lane) in acc.iter_mut().enumerate() {
                    let (Some(&w), Some(x)) = (w_rest.get(l), x_rest.get(l * PX..(l + 1) * PX))
                    else {
                        break;
                    };
                    for px in 0..PX {
                        lane[px] += w * x[px];
                    }
                }
                let y = add_px(lanes_sum_px(&acc), [b; PX]);
                if let Ok(out_g) = <&mut [f32; PX]>::try_from(&mut *out_g) {
                    *out_g = y;
                } else {
                    let n = out_g.len();
                    out_g.copy_from_slice(&y[..n]);
                }
            }
            activate_row(out_o, act);
        }
        p0 += np_real;
    }
    true
}

/// [`crate::kernels::conv2d_s8`] after its checks when `ci·kh·kw ≤ MAX_TAPS`: exact
/// `acc = bias[o] + Σ_j W[o][j] · (x_j − zp_in)`, then `K`'s requantization (the reference's).
/// Returns `false` (writing nothing) for another shape.
///
/// # Safety
/// The CPU must have `K`'s target features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn conv2d_s8<K: S8Dots>(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) -> bool {
    let taps = g.per_out;
    if taps > MAX_TAPS {
        return false;
    }
    let plane = g.oh * g.ow;
    if taps == 0 || plane == 0 {
        return true;
    }
    let range = activation_range(act, q.output);
    let zp = i16::from(q.input_zp);
    let pairs = taps.div_ceil(2);
    let group = 2 * pairs * PX;
    let tile = tile_pixels(2 * pairs).min(ACC_PX);
    // A tap past an odd `taps` stays 0 (its weight is 0 too).
    let mut col = [0i16; COL];
    let mut acc = [[0i32; ACC_PX]; FILTERS];
    let wb = weights.as_bytes();
    let co = bias.len();
    let mut p0 = 0;
    while p0 < plane {
        let np_real = tile.min(plane - p0);
        let np = np_real.div_ceil(PX) * PX;
        im2col_taps::<_, _, 2>(g, input, (p0, np), group, &mut col, 0, |v| {
            i16::from(v) - zp
        });
        let mut o0 = 0;
        while o0 < co {
            let nf = FILTERS.min(co - o0);
            // The weight pairs of filters o0 .. o0 + nf (zeros past `taps` and `nf`).
            let mut wp: [Pairs; FILTERS] = [[0; MAX_TAPS / 2]; FILTERS];
            for (f, w_f) in wp.iter_mut().enumerate().take(nf) {
                let o = o0 + f;
                let w_o = wb.get(o * taps..(o + 1) * taps).unwrap_or(&[]);
                for (d, pair) in w_f.iter_mut().zip(w_o.chunks(2)) {
                    let (lo, hi) = (pair.first(), pair.get(1));
                    *d = pack_pair(lo.copied().unwrap_or(0), hi.copied().unwrap_or(0));
                }
            }
            for (gi, blk) in col.chunks_exact(group).take(np / PX).enumerate() {
                if nf == FILTERS {
                    let a = K::pair_dots(blk, &wp);
                    for (acc_f, a_f) in acc.iter_mut().zip(a) {
                        if let Some(d) = acc_f.get_mut(gi * PX..gi * PX + PX) {
                            d.copy_from_slice(&a_f);
                        }
                    }
                } else {
                    for (acc_f, wp_f) in acc.iter_mut().zip(&wp).take(nf) {
                        let [a_f] = K::pair_dots(blk, core::array::from_ref(wp_f));
                        if let Some(d) = acc_f.get_mut(gi * PX..gi * PX + PX) {
                            d.copy_from_slice(&a_f);
                        }
                    }
                }
            }
            for (f, acc_f) in acc.iter_mut().enumerate().take(nf) {
                let o = o0 + f;
                let b = bias.get(o).unwrap_or(0);
                let row = acc_f.get_mut(..np_real).unwrap_or(&mut []);
                for v in row.iter_mut() {
                    *v = v.wrapping_add(b);
                }
                let rq = RowQuant::of(q, o, range);
                let Some(out) = output.get_mut(o * plane + p0..o * plane + p0 + np_real) else {
                    continue;
                };
                K::requant(row, out, &rq);
            }
            o0 += nf;
        }
        p0 += np_real;
    }
    true
}
