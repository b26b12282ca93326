//! Portable blocked kernel bodies: plain Rust over fixed-size arrays, written so that LLVM
//! vectorizes them (SSE2/NEON as compiled, AVX2 when [`super::x86`] instantiates them inside a
//! `#[target_feature(enable = "avx2")]` function).
//!
//! - Linear f32: `R` output rows at a time share every load of the input; each row keeps its own
//!   8 f32 lanes, so the order is exactly the module order of [`crate::kernels`]: term `j` goes
//!   to lane `j mod 8`, in increasing `j`, then the fixed tree. (A blocked int8 Linear written
//!   the same way was not faster than the reference loop once inlined, so the portable path
//!   keeps the reference loop for int8 Linear; see `docs/kernels.md`.)
//! - Conv2d (any `kh × kw`, strides, asymmetric padding): 8 neighbouring output pixels of one
//!   output row at a time, each with its own 8 f32 lanes (`acc[lane][pixel]`), taps in the
//!   documented order `j = (i·kh + ky)·kw + kx`. Rows of taps above/below the input are skipped
//!   (for all 8 pixels alike) and keep their `j`, as in the reference loop. A column tap that
//!   falls in the zero padding contributes `w · 0.0`; this equals skipping it because the caller
//!   only comes here when every weight is finite (`w · 0.0 = ±0.0`) and a lane never holds −0.0
//!   (lanes start at +0.0 and `a + b` is −0.0 only when both are −0.0), so adding ±0.0 leaves it
//!   unchanged. int8 padding reads `zp_in`, i.e. contributes exactly 0, as in tflite.
//!
//! Every function here expects arguments already checked by its public kernel (lengths match the
//! layer); it never panics on mismatched slices, it just computes fewer outputs.

use crate::kernels::params::PerChannelQuant;
use crate::kernels::{activate_f32, lanes_sum, tap_range, ConvGeometry, LANES};
use crate::quant::{activation_range, quantize_vectorizable, requantize};
use crate::tensor::{Activation, F32Data, I32Data, I8Data, QuantParams};

/// Output pixels per Conv2d group.
pub(super) const PIXELS: usize = 8;

/// `R` rows of `4·n_in` weight bytes each, starting at `block`.
#[inline(always)]
fn split_rows<const R: usize>(block: &[u8], row_bytes: usize) -> [&[u8]; R] {
    core::array::from_fn(|r| block.get(r * row_bytes..(r + 1) * row_bytes).unwrap_or(&[]))
}

/// Eight little-endian f32 values.
#[inline(always)]
fn load8(b: &[u8; 4 * LANES]) -> [f32; LANES] {
    core::array::from_fn(|l| {
        f32::from_le_bytes([b[4 * l], b[4 * l + 1], b[4 * l + 2], b[4 * l + 3]])
    })
}

/// The 8-lane dot products of `R` weight rows (`[R][n_in]` little-endian f32) with `x`.
#[inline(always)]
fn dots_f32<const R: usize>(block: &[u8], x: &[f32]) -> [f32; R] {
    const CHUNK: usize = 4 * LANES;
    let rows: [&[u8]; R] = split_rows(block, 4 * x.len());
    let mut acc = [[0.0f32; LANES]; R];
    let mut x_chunks = x.chunks_exact(LANES);
    for (c, xc) in (&mut x_chunks).enumerate() {
        let Ok(xc) = <&[f32; LANES]>::try_from(xc) else {
            break;
        };
        for (lanes, row) in acc.iter_mut().zip(rows) {
            let Some(Ok(wc)) = row
                .get(CHUNK * c..CHUNK * (c + 1))
                .map(<&[u8; CHUNK]>::try_from)
            else {
                continue;
            };
            let wv = load8(wc);
            for l in 0..LANES {
                lanes[l] += wv[l] * xc[l];
            }
        }
    }
    // The last n_in mod 8 terms: term j = 8·⌊n_in/8⌋ + l goes to lane l.
    let x_rest = x_chunks.remainder();
    let done = CHUNK * (x.len() / LANES);
    for (lanes, row) in acc.iter_mut().zip(rows) {
        let w_rest = row.get(done..).unwrap_or(&[]);
        for ((lane, wb), &xv) in lanes.iter_mut().zip(w_rest.chunks_exact(4)).zip(x_rest) {
            *lane += f32::from_le_bytes([wb[0], wb[1], wb[2], wb[3]]) * xv;
        }
    }
    acc.map(|lanes| lanes_sum(&lanes))
}

/// One input row `x` of [`crate::kernels::linear_f32`] after its checks, `R` weight rows (output
/// features) at a time: `out[o] = act(dot(W[o], x) + bias[o])`.
#[inline(always)]
pub(super) fn linear_f32<const R: usize>(
    act: Activation,
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    x: &[f32],
    out: &mut [f32],
) {
    let row_bytes = 4 * x.len();
    if row_bytes == 0 {
        return;
    }
    let mut bias = bias.iter();
    let mut w_blocks = weights.as_bytes().chunks_exact(R * row_bytes);
    let mut out_blocks = out.chunks_exact_mut(R);
    for (wb, ob) in (&mut w_blocks).zip(&mut out_blocks) {
        for ((o, s), b) in ob.iter_mut().zip(dots_f32::<R>(wb, x)).zip(&mut bias) {
            *o = activate_f32(s + b, act);
        }
    }
    let rest = w_blocks.remainder().chunks_exact(row_bytes);
    for ((o, wr), b) in out_blocks.into_remainder().iter_mut().zip(rest).zip(bias) {
        let [s] = dots_f32::<1>(wr, x);
        *o = activate_f32(s + b, act);
    }
}

/// Input values of tap column `kx` for the `PIXELS` output pixels `ox0 + px` of one input row:
/// `row[(ox0 + px)·sw + kx − pad_left]`, or `pad` where that falls outside the row (left or right
/// padding, or a pixel past the output row's end, whose value is discarded).
#[inline(always)]
fn tap_pixels<T: Copy>(row: &[T], ox0: usize, kx: usize, g: &ConvGeometry, pad: T) -> [T; PIXELS] {
    let s = g.win.sw;
    let start = (ox0 * s + kx) as isize - g.win.pad_left as isize;
    if s == 1 && start >= 0 {
        if let Some(Ok(run)) = row
            .get(start as usize..start as usize + PIXELS)
            .map(<&[T; PIXELS]>::try_from)
        {
            return *run;
        }
    }
    core::array::from_fn(|px| {
        let ix = start + (px * s) as isize;
        if ix < 0 {
            pad
        } else {
            row.get(ix as usize).copied().unwrap_or(pad)
        }
    })
}

/// [`crate::kernels::conv2d_f32`] after its checks, for weights that are all finite.
#[inline(always)]
pub(super) fn conv2d_f32(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) {
    let (h, w, kh, kw) = (g.h, g.w, g.win.kh, g.win.kw);
    let (plane_len, out_plane) = (h * w, g.oh * g.ow);
    if plane_len == 0 || out_plane == 0 || g.per_out == 0 {
        return;
    }
    let filters = weights.as_bytes().chunks_exact(4 * g.per_out);
    for ((w_o, b), out_o) in filters
        .zip(bias.iter())
        .zip(output.chunks_exact_mut(out_plane))
    {
        for (oy, out_row) in out_o.chunks_exact_mut(g.ow).enumerate() {
            let (ky_lo, ky_hi, y0) = tap_range(oy, g.win.sh, g.win.pad_top, kh, h);
            for (group, out_px) in out_row.chunks_mut(PIXELS).enumerate() {
                let ox0 = group * PIXELS;
                let mut acc = [[0.0f32; PIXELS]; LANES];
                for (i, plane) in input.chunks_exact(plane_len).take(g.ci).enumerate() {
                    for ky in ky_lo..ky_hi {
                        let iy = (y0 + ky as isize) as usize;
                        let row = plane.get(iy * w..(iy + 1) * w).unwrap_or(&[]);
                        let j0 = (i * kh + ky) * kw;
                        let taps = w_o.get(4 * j0..4 * (j0 + kw)).unwrap_or(&[]);
                        for (kx, wb) in taps.chunks_exact(4).enumerate() {
                            let wv = f32::from_le_bytes([wb[0], wb[1], wb[2], wb[3]]);
                            let xs = tap_pixels(row, ox0, kx, g, 0.0);
                            let lanes = &mut acc[(j0 + kx) % LANES];
                            for px in 0..PIXELS {
                                lanes[px] += wv * xs[px];
                            }
                        }
                    }
                }
                for (px, o) in out_px.iter_mut().enumerate() {
                    let l: [f32; LANES] = core::array::from_fn(|lane| acc[lane][px]);
                    *o = activate_f32(lanes_sum(&l) + b, act);
                }
            }
        }
    }
}

/// [`crate::kernels::conv2d_s8`] after its checks.
#[inline(always)]
pub(super) fn conv2d_s8(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) {
    let (h, w, kh, kw) = (g.h, g.w, g.win.kh, g.win.kw);
    let (plane_len, out_plane) = (h * w, g.oh * g.ow);
    if plane_len == 0 || out_plane == 0 || g.per_out == 0 {
        return;
    }
    let zp_out = i32::from(q.output.zero_point);
    let (act_min, act_max) = activation_range(act, q.output);
    let zp_in = q.input_zp;
    let zp = i32::from(zp_in);
    let per_channel = bias.iter().zip(q.multiplier.iter()).zip(q.shift.iter());
    let filters = weights.as_bytes().chunks_exact(g.per_out);
    for ((w_o, ((bias, m), shift)), out_o) in filters
        .zip(per_channel)
        .zip(output.chunks_exact_mut(out_plane))
    {
        for (oy, out_row) in out_o.chunks_exact_mut(g.ow).enumerate() {
            let (ky_lo, ky_hi, y0) = tap_range(oy, g.win.sh, g.win.pad_top, kh, h);
            for (group, out_px) in out_row.chunks_mut(PIXELS).enumerate() {
                let ox0 = group * PIXELS;
                let mut acc = [0i32; PIXELS];
                for (i, plane) in input.chunks_exact(plane_len).take(g.ci).enumerate() {
                    for ky in ky_lo..ky_hi {
                        let iy = (y0 + ky as isize) as usize;
                        let row = plane.get(iy * w..(iy + 1) * w).unwrap_or(&[]);
                        let j0 = (i * kh + ky) * kw;
                        let taps = w_o.get(j0..j0 + kw).unwrap_or(&[]);
                        for (kx, &wb) in taps.iter().enumerate() {
                            let wv = i32::from(wb as i8);
                            let xs = tap_pixels(row, ox0, kx, g, zp_in);
                            for px in 0..PIXELS {
                                acc[px] = acc[px].wrapping_add(wv * (i32::from(xs[px]) - zp));
                            }
                        }
                    }
                }
                for (o, a) in out_px.iter_mut().zip(acc) {
                    *o = requantize(
                        bias.wrapping_add(a),
                        m,
                        i32::from(shift),
                        zp_out,
                        act_min,
                        act_max,
                    );
                }
            }
        }
    }
}

/// `out[i] = quantize((x[i] − mean) / std, q)`, vectorizable.
#[inline(always)]
pub(super) fn normalize_quantize(x: &[f32], mean: f32, std: f32, q: QuantParams, out: &mut [i8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = quantize_vectorizable((v - mean) / std, q);
    }
}
