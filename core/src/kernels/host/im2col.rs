//! Conv2d as im2col tiles and a register-blocked dot-product micro-kernel (host only).
//!
//! The host has no arena scratch to spare, so a *tile* of `np` output pixels (flat index
//! `p = oy·ow + ox` of one output plane) is unrolled into a fixed stack buffer `col`
//! (`[np][stride]`, `stride = per_out` rounded up to the micro-kernel's chunk): row `k` holds the
//! `per_out = ci·kh·kw` taps of pixel `p0 + k` in the documented order
//! `j = (i·kh + ky)·kw + kx`, with an explicit zero for every tap in the padding and for
//! `j ≥ per_out`. The tile is then shared by all output channels: [`MC`] channels × [`MP`] pixels
//! at a time, each (channel, pixel) pair in its own accumulator.
//!
//! - f32: the accumulator of a pair is exactly the 8 lanes of the documented order: chunk `k`
//!   adds `w[8k + l] · col[8k + l]` to lane `l` (one rounded product, then one add; never an FMA),
//!   in increasing `k`, then the fixed tree, then the bias. A padded tap adds `w · 0.0 = ±0.0`,
//!   which leaves a lane unchanged because a lane is never −0.0 (lanes start at +0.0, and `a + b`
//!   is −0.0 only when both are −0.0): the same bits as skipping it, *for finite weights*. With
//!   an infinite or NaN weight, `w · 0.0` is NaN where the reference skips the tap, so the caller
//!   only comes here when every weight is finite (otherwise the reference loop runs). The
//!   `j ≥ per_out` tail adds `0.0 · 0.0 = +0.0`. Inputs may hold anything: every real tap is the
//!   reference's product added to the reference's lane in the reference's order, so infinities
//!   and NaNs come out the same (NaN payloads are not part of the contract).
//! - int8: `col` holds `x − zp_in` as i16 (`∈ [−255, 255]`, padding 0, exactly what a padded tap
//!   reading `zp_in` contributes), the dot product is exact i32 arithmetic (wrapping, as the
//!   reference), then the reference's requantization (through `quant::requantize_fast`, equal to
//!   `quant::requantize` for every input), a channel row of the tile at a time
//!   ([`S8Dots::requant`]: 8 lanes at a time on x86, see `requant.rs`).
//!
//! A shape whose `stride` exceeds the buffer returns `false`, and the caller runs the blocked
//! kernel instead. The micro-kernels are behind [`F32Dots`] / [`S8Dots`]: portable Rust here,
//! AVX2 intrinsics in `x86.rs`.

use super::requant::{row_portable, RowQuant};
use crate::kernels::params::{PerChannelQuant, Window};
use crate::kernels::{activate_f32, tap_range, ConvGeometry, LANES};
use crate::quant::activation_range;
use crate::tensor::{Activation, F32Data, I32Data, I8Data};

/// Capacity of the f32 im2col tile, in elements (16 KiB on the stack).
pub(super) const COL_F32: usize = 4096;
/// Capacity of the int8 (i16) im2col tile, in elements (16 KiB on the stack).
pub(super) const COL_I16: usize = 8192;
/// Output channels per micro-tile.
pub(super) const MC: usize = 4;
/// Output pixels per f32 micro-tile with 16 vector registers (AVX2, portable): `MC × MP = 8` YMM
/// accumulators, 2 for the pixels' taps, one weight chunk and one product fit the 16 registers of
/// AVX2 (4 × 3 = 12 accumulators did not: the compiler spilled accumulators to the stack in the
/// inner loop). With AVX-512VL's 32 registers the micro-tile is `MC × 4` (`x86.rs`).
pub(super) const MP: usize = 2;
/// Output pixels per int8 micro-tile with 16 registers (4 more registers hold the widened
/// weights).
pub(super) const MP_S8: usize = 2;
/// Most pixels of an int8 tile (its accumulators are kept for the vectorized requantization).
pub(super) const ACC: usize = 256;
/// Taps per int8 chunk of the `vpmaddwd` kernels (16 i16 pairs).
pub(super) const S8_STEP: usize = 16;
/// Most `i16` taps of one filter row widened once per tile for a kernel with
/// [`S8Dots::WIDE_I16`] (`MC` rows: 8 KiB on the stack); longer rows keep the `i8` filters.
pub(super) const W_I16: usize = 1024;
/// Most input values widened once per call to `x − zp` (`i16`) for a kernel with
/// [`S8Dots::WIDE_I16`] (32 KiB on the stack); larger inputs are widened tap by tap in im2col.
pub(super) const X_I16: usize = 16384;
/// Length of [`S8Dots::Wide`] for a kernel with [`S8Dots::WIDE_I16`]: the widened input, then
/// `MC` filter rows.
pub(super) const WIDE_LEN: usize = X_I16 + MC * W_I16;
/// [`S8Dots::Wide`] of the kernels with [`S8Dots::WIDE_I16`], on a cache-line boundary (the
/// filter rows at `X_I16` then are too, so a 16-tap load never straddles two lines).
#[repr(C, align(64))]
pub(super) struct WideBuf(pub(super) [i16; WIDE_LEN]);

impl WideBuf {
    /// All zeros.
    #[inline(always)]
    pub(super) const fn new() -> Self {
        Self([0; WIDE_LEN])
    }
}

impl AsMut<[i16]> for WideBuf {
    #[inline(always)]
    fn as_mut(&mut self) -> &mut [i16] {
        &mut self.0
    }
}

/// Longest int8 chunk of any kernel (`vpdpbusd`: 32 u8 × s8 products per YMM register); the
/// zero-padded tail chunk of a filter is always this long, a kernel reads its first `STEP` bytes.
pub(super) const S8_TAIL: usize = 32;

/// An f32 micro-kernel: for `C` filters and `P` im2col rows, the 8-lane sums of the module docs.
pub(super) trait F32Dots {
    /// `out[c][p] = tree(lanes)` where lane `l` of pair `(c, p)` is
    /// `Σ_k w[c][8k + l] · cols[p][8k + l]` over `k < full` in increasing `k`, then (when `tail`
    /// is given) `+ tail[c][l] · cols[p][8·full + l]`. `w[c]`: `4·8·full` little-endian bytes
    /// (at least), `cols[p]`: `8·full` (+ 8 with a tail) values (at least); shorter slices give
    /// zeros, never a panic.
    ///
    /// # Safety
    /// The CPU must have the implementation's target features.
    unsafe fn dots<const C: usize, const P: usize>(
        w: &[&[u8]; C],
        tail: Option<&[[f32; LANES]; C]>,
        cols: &[&[f32]; P],
        full: usize,
    ) -> [[f32; P]; C];
}

/// True when [`F32Dots::dots`]'s slices hold what it reads: `8·full` weights per filter
/// (little-endian f32 bytes) and `8·full` values per row, 8 more per row with a `tail`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn f32_dots_fit<const C: usize, const P: usize>(
    w: &[&[u8]; C],
    tail: bool,
    cols: &[&[f32]; P],
    full: usize,
) -> bool {
    let n = LANES * full;
    let need = n + if tail { LANES } else { 0 };
    w.iter().all(|r| r.len() >= 4 * n) && cols.iter().all(|x| x.len() >= need)
}

/// An int8 micro-kernel: exact `Σ_j w[c][j] · cols[p][j]` (wrapping i32) over im2col rows of
/// [`Self::Col`] values.
///
/// Two encodings of a tap `x` (input zero point `zp`): `i16` rows hold `x − zp` (padding 0) and
/// the dot product is the reference's sum directly; `u8` rows hold `x + 128` (padding
/// `zp + 128`, so that a padded tap contributes `w·(zp − zp) = 0` once corrected) and
/// [`U8_OFFSET`](Self::U8_OFFSET) is true: the caller subtracts `(zp + 128)·Σ_j w[j]`, since
/// `Σ w·(x − zp) = Σ w·(x + 128) − (zp + 128)·Σ w` exactly in wrapping i32 arithmetic (a ring).
pub(super) trait S8Dots {
    /// One im2col element.
    type Col: Copy + Into<i32>;
    /// Taps per chunk (a row's stride is `per_out` rounded up to it; at most [`S8_TAIL`]).
    const STEP: usize;
    /// True for the `x + 128` encoding (see the trait docs).
    const U8_OFFSET: bool;
    /// How [`interior`] may copy runs of taps ([`WIDE_NONE`], [`WIDE_XOR80`] when `col(x, _)`
    /// is `x ^ 0x80`, [`WIDE_SUB_ZP`] when it is `x − zp` as i16).
    const WIDE: u8;
    /// The im2col value of input `x`.
    fn col(x: i8, zp: i8) -> Self::Col;
    /// The im2col value of a padded tap (and of the zero-weight taps past `per_out`).
    fn pad(zp: i8) -> Self::Col;
    /// True when the kernel's rows are `i16` values `x − zp` and it has an `i16`-filter kernel
    /// ([`Self::dots_i16`]): the caller then widens the input once per call (when it fits
    /// [`X_I16`]; the rows are then copies of the widened input, [`WIDE_COPY16`]) and each block
    /// of filters once per tile (rows of at most [`W_I16`] taps), so that the inner loop only loads.
    const WIDE_I16: bool = false;
    /// The im2col value of an input already widened to `v = x − zp` (`i16`): `col(x, zp)`.
    fn widened(v: i16, zp: i8) -> Self::Col;
    /// The stack buffer of the widened input and filters: [`WIDE_LEN`] zeros with
    /// [`Self::WIDE_I16`], none otherwise (so that the other kernels neither clear nor carry it).
    type Wide: AsMut<[i16]>;
    /// A zeroed [`Self::Wide`].
    fn wide() -> Self::Wide;
    /// `out[c][p] = Σ_{j < STEP·full} w[c][j] · cols[p][j]`
    /// (+ `Σ_{l < STEP} tail[c][l] · cols[p][STEP·full + l]` with a tail), wrapping. Shorter
    /// slices give zeros, never a panic.
    ///
    /// # Safety
    /// The CPU must have the implementation's target features.
    unsafe fn dots<const C: usize, const P: usize>(
        w: &[&[u8]; C],
        tail: Option<&[[i8; S8_TAIL]; C]>,
        cols: &[&[Self::Col]; P],
        full: usize,
    ) -> [[i32; P]; C];
    /// `out[c][p] = Σ_{j < STEP·full} w[c][j] · cols[p][j]`, wrapping, with the filters already
    /// widened to `i16` (and zero-padded to a whole chunk). Shorter slices give zeros, never a
    /// panic. The portable loop by default.
    ///
    /// # Safety
    /// The CPU must have the implementation's target features.
    #[inline(always)]
    unsafe fn dots_i16<const C: usize, const P: usize>(
        w: &[&[i16]; C],
        cols: &[&[Self::Col]; P],
        full: usize,
    ) -> [[i32; P]; C] {
        dots_i16_portable::<Self::Col, C, P>(Self::STEP, w, cols, full)
    }
    /// [`super::single`]'s int8 group kernel: [`super::single::pair_dots_portable`] (which
    /// see), the `vpmaddwd` loop on x86.
    ///
    /// # Safety
    /// The CPU must have the implementation's target features.
    #[inline(always)]
    unsafe fn pair_dots<const F: usize>(
        blk: &[i16],
        wp: &[super::single::Pairs; F],
    ) -> [[i32; super::single::PX]; F] {
        super::single::pair_dots_portable(blk, wp)
    }
    /// `out[k] = requantize(acc[k], q…)` for `k < min(acc.len(), out.len())`, bit for bit
    /// `quant::requantize_fast` (the portable loop by default; the x86 kernels 8 lanes at a time,
    /// see [`super::requant`]).
    ///
    /// # Safety
    /// The CPU must have the implementation's target features.
    #[inline(always)]
    unsafe fn requant(acc: &[i32], out: &mut [i8], q: &RowQuant) {
        row_portable(acc, out, q)
    }
}

/// The portable micro-kernels (plain Rust over fixed arrays, vectorized by the compiler).
pub(super) struct Portable;

impl F32Dots for Portable {
    #[inline(always)]
    unsafe fn dots<const C: usize, const P: usize>(
        w: &[&[u8]; C],
        tail: Option<&[[f32; LANES]; C]>,
        cols: &[&[f32]; P],
        full: usize,
    ) -> [[f32; P]; C] {
        let n = LANES * full;
        let need = n + if tail.is_some() { LANES } else { 0 };
        if w.iter().any(|r| r.len() < 4 * n) || cols.iter().any(|x| x.len() < need) {
            return [[0.0; P]; C];
        }
        let mut acc = [[[0.0f32; LANES]; P]; C];
        for k in 0..full {
            let x: [&[f32; LANES]; P] = core::array::from_fn(|p| chunk(cols[p], k));
            for c in 0..C {
                let wv = load8(w[c], k);
                for p in 0..P {
                    for l in 0..LANES {
                        acc[c][p][l] += wv[l] * x[p][l];
                    }
                }
            }
        }
        if let Some(t) = tail {
            let x: [&[f32; LANES]; P] = core::array::from_fn(|p| chunk(cols[p], full));
            for c in 0..C {
                for p in 0..P {
                    for l in 0..LANES {
                        acc[c][p][l] += t[c][l] * x[p][l];
                    }
                }
            }
        }
        acc.map(|a| a.map(|l| crate::kernels::lanes_sum(&l)))
    }
}

impl S8Dots for Portable {
    type Col = i16;
    const STEP: usize = S8_STEP;
    const U8_OFFSET: bool = false;
    const WIDE: u8 = WIDE_SUB_ZP;
    #[inline(always)]
    fn col(x: i8, zp: i8) -> i16 {
        i16::from(x) - i16::from(zp)
    }
    #[inline(always)]
    fn pad(_zp: i8) -> i16 {
        0
    }
    const WIDE_I16: bool = true;
    #[inline(always)]
    fn widened(v: i16, _zp: i8) -> i16 {
        v
    }
    type Wide = WideBuf;
    #[inline(always)]
    fn wide() -> Self::Wide {
        WideBuf::new()
    }
    #[inline(always)]
    unsafe fn dots<const C: usize, const P: usize>(
        w: &[&[u8]; C],
        tail: Option<&[[i8; S8_TAIL]; C]>,
        cols: &[&[i16]; P],
        full: usize,
    ) -> [[i32; P]; C] {
        let n = S8_STEP * full;
        let need = n + if tail.is_some() { S8_STEP } else { 0 };
        if w.iter().any(|r| r.len() < n) || cols.iter().any(|x| x.len() < need) {
            return [[0; P]; C];
        }
        let mut acc = [[[0i32; S8_STEP]; P]; C];
        for k in 0..full {
            for c in 0..C {
                let wc = &w[c][S8_STEP * k..S8_STEP * (k + 1)];
                for p in 0..P {
                    let xc = &cols[p][S8_STEP * k..S8_STEP * (k + 1)];
                    for l in 0..S8_STEP {
                        let t = i32::from(wc[l] as i8) * i32::from(xc[l]);
                        acc[c][p][l] = acc[c][p][l].wrapping_add(t);
                    }
                }
            }
        }
        if let Some(t) = tail {
            for c in 0..C {
                for p in 0..P {
                    let xc = &cols[p][n..n + S8_STEP];
                    for l in 0..S8_STEP {
                        let v = i32::from(t[c][l]) * i32::from(xc[l]);
                        acc[c][p][l] = acc[c][p][l].wrapping_add(v);
                    }
                }
            }
        }
        acc.map(|a| a.map(|l| l.iter().fold(0i32, |s, &v| s.wrapping_add(v))))
    }
}

/// [`S8Dots::dots_i16`] in portable Rust: `S8_STEP` lanes of wrapping i32 sums per pair (the
/// compiler vectorizes the lane loop), then their wrapping sum; integer sums are exact in any
/// order.
#[inline(always)]
fn dots_i16_portable<T: Copy + Into<i32>, const C: usize, const P: usize>(
    step: usize,
    w: &[&[i16]; C],
    cols: &[&[T]; P],
    full: usize,
) -> [[i32; P]; C] {
    let n = step * full;
    if w.iter().any(|r| r.len() < n) || cols.iter().any(|x| x.len() < n) {
        return [[0; P]; C];
    }
    let mut acc = [[[0i32; S8_STEP]; P]; C];
    // `step` (a kernel's `STEP`) is a multiple of `S8_STEP`.
    for k in 0..n / S8_STEP {
        let r = S8_STEP * k..S8_STEP * (k + 1);
        for c in 0..C {
            let wv = &w[c][r.clone()];
            for p in 0..P {
                let xv = &cols[p][r.clone()];
                for l in 0..S8_STEP {
                    let t = i32::from(wv[l]).wrapping_mul(xv[l].into());
                    acc[c][p][l] = acc[c][p][l].wrapping_add(t);
                }
            }
        }
    }
    acc.map(|a| a.map(|l| l.iter().fold(0i32, |s, &v| s.wrapping_add(v))))
}

/// Chunk `k` (values `8k .. 8k + 8`) of `x`; the caller checked the length.
#[inline(always)]
fn chunk(x: &[f32], k: usize) -> &[f32; LANES] {
    const ZERO: [f32; LANES] = [0.0; LANES];
    x.get(LANES * k..LANES * (k + 1))
        .and_then(|s| s.try_into().ok())
        .unwrap_or(&ZERO)
}

/// Little-endian f32 values `8k .. 8k + 8` of `w` (zeros past its end).
#[inline(always)]
fn load8(w: &[u8], k: usize) -> [f32; LANES] {
    let b = w.get(4 * LANES * k..).unwrap_or(&[]);
    let mut v = [0.0f32; LANES];
    for (v, b) in v.iter_mut().zip(b.chunks_exact(4)) {
        *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    v
}

/// Runs of taps of a border pixel at most this long are copied by a loop of constant length.
const SHORT_RUN: usize = 8;

/// Filters whose `u8` offsets are computed once per call (see [`u8_offset`]).
const OFFSETS: usize = 256;

/// `(zp + 128)·Σ_j w[j]` (wrapping) for a kernel with [`S8Dots::U8_OFFSET`], else 0: what the
/// `x + 128` encoding adds to a filter's exact dot product.
#[inline(always)]
fn u8_offset<K: S8Dots>(w: &[u8], zp: i8) -> i32 {
    if !K::U8_OFFSET {
        return 0;
    }
    let sum = w
        .iter()
        .fold(0i32, |s, &v| s.wrapping_add(i32::from(v as i8)));
    sum.wrapping_mul(i32::from(zp) + 128)
}

/// `step` rounded up to a multiple of `n` (`None` on overflow).
#[inline(always)]
fn round_up(n: usize, step: usize) -> Option<usize> {
    n.div_ceil(step).checked_mul(step)
}

/// Pixels per tile for rows of `stride` elements in a buffer of `cap`: a multiple of `mp` when at
/// least `mp` fit, else what fits (0 when not even one row does).
#[inline(always)]
fn tile_pixels(cap: usize, stride: usize, mp: usize) -> usize {
    let n = cap / stride.max(1);
    if n >= mp {
        n - n % mp
    } else {
        n
    }
}

/// Writes the im2col rows of output pixels `p0 .. p0 + np` into `col` (`[np][stride]`): row `k`,
/// position `j = (i·kh + ky)·kw + kx`, is `f(input[i][iy][ix])` for a tap inside the input and
/// `zero` for a padded tap and for `j ≥ per_out`.
#[inline(always)]
fn im2col<T: Copy, U: Copy>(
    g: &ConvGeometry,
    input: &[T],
    (p0, np): (usize, usize),
    stride: usize,
    col: &mut [U],
    (zero, zp, wide): (U, i8, u8),
    f: impl Fn(T) -> U,
) {
    let (kh, kw, ow) = (g.win.kh, g.win.kw, g.ow.max(1));
    let plane_len = g.h * g.w;
    // 1×1, stride 1, no padding (pointwise): a transpose, read plane by plane.
    if kh == 1 && kw == 1 && g.oh == g.h && g.ow == g.w && g.win.sh == 1 && g.win.sw == 1 {
        for (i, plane) in input.chunks_exact(plane_len.max(1)).take(g.ci).enumerate() {
            let src = plane.get(p0..p0 + np).unwrap_or(&[]);
            for (dst, &v) in col.chunks_exact_mut(stride).zip(src) {
                if let Some(d) = dst.get_mut(i) {
                    *d = f(v);
                }
            }
        }
        for dst in col.chunks_exact_mut(stride).take(np) {
            if let Some(d) = dst.get_mut(g.ci..) {
                d.fill(zero);
            }
        }
        return;
    }
    // Everything an interior pixel reads and writes is checked once here, so that its taps are
    // copied without a bounds check per run of `kw` taps.
    let per_out = g.ci * kh * kw;
    let fast = input.len() >= g.ci * plane_len && col.len() >= np * stride && per_out <= stride;
    let (mut oy, mut ox) = (p0 / ow, p0 % ow);
    for dst in col.chunks_exact_mut(stride).take(np) {
        let (ky_lo, ky_hi, y0) = tap_range(oy, g.win.sh, g.win.pad_top, kh, g.h);
        let (kx_lo, kx_hi, x0) = tap_range(ox, g.win.sw, g.win.pad_left, kw, g.w);
        (ox, oy) = if ox + 1 == ow {
            (0, oy + 1)
        } else {
            (ox + 1, oy)
        };
        if fast && ky_lo == 0 && ky_hi == kh && kx_lo == 0 && kx_hi == kw {
            // Interior pixel: every tap is inside the input (`y0, x0 ≥ 0`, `y0 + kh ≤ h`,
            // `x0 + kw ≤ w`), written in order `j = 0, 1, …, per_out − 1`. The common widths
            // get a copy of constant length (a run-time length makes LLVM call `memcpy` for
            // every run of `kw` taps).
            let base = y0 as usize * g.w + x0 as usize;
            let at = (input, &mut *dst, base, plane_len, (zp, wide));
            // SAFETY: `fast` and the interior test above: see `interior`.
            unsafe {
                match kw {
                    1 => interior::<1, T, U>(g, at, &f),
                    2 => interior::<2, T, U>(g, at, &f),
                    3 => interior::<3, T, U>(g, at, &f),
                    4 => interior::<4, T, U>(g, at, &f),
                    5 => interior::<5, T, U>(g, at, &f),
                    _ => interior::<0, T, U>(g, at, &f),
                }
            }
            if let Some(d) = dst.get_mut(per_out..) {
                d.fill(zero);
            }
            continue;
        }
        dst.fill(zero);
        if kx_lo >= kx_hi {
            continue;
        }
        let ix0 = (x0 + kx_lo as isize) as usize;
        let n = kx_hi - kx_lo;
        for i in 0..g.ci {
            for ky in ky_lo..ky_hi {
                let iy = (y0 + ky as isize) as usize;
                let s = i * plane_len + iy * g.w + ix0;
                let j = (i * kh + ky) * kw + kx_lo;
                if let (Some(src), Some(d)) = (input.get(s..s + n), dst.get_mut(j..j + n)) {
                    if n <= SHORT_RUN {
                        // A loop of constant length: no `memcpy` call per short run.
                        for kx in 0..SHORT_RUN {
                            if let (Some(d), Some(&v)) = (d.get_mut(kx), src.get(kx)) {
                                *d = f(v);
                            }
                        }
                    } else {
                        for (d, &v) in d.iter_mut().zip(src) {
                            *d = f(v);
                        }
                    }
                }
            }
        }
    }
}

/// [`interior`] copies element by element (any `f`).
pub(super) const WIDE_NONE: u8 = 0;
/// [`interior`] copies runs of `kw ≤ 8` bytes 4 or 8 at a time with `f(x) = x ^ 0x80` (`T = i8`,
/// `U = u8`: the `x + 128` rows).
pub(super) const WIDE_XOR80: u8 = 1;
/// [`interior`] copies runs of `kw ≤ 8` taps 4 or 8 at a time with `f(x) = x − zp` (`T = i8`,
/// `U = i16`), with SSE2 on x86_64 (element by element elsewhere).
pub(super) const WIDE_SUB_ZP: u8 = 2;
/// [`interior`] copies runs of `kw ≤ 8` taps 4 or 8 at a time with `f(x) = x` (`T = U = i16`:
/// rows copied from an input already widened to `x − zp`).
pub(super) const WIDE_COPY16: u8 = 3;

/// The taps of one interior output pixel, `dst[j] = f(input[i·plane_len + base + ky·w + kx])`
/// for `j = (i·kh + ky)·kw + kx < per_out`, with `kw = KW` (a constant copy length) or, for
/// `KW = 0`, `g.win.kw`.
///
/// With `mode` ≠ [`WIDE_NONE`] and `1 ≤ KW ≤ 8`, a run of `KW` taps is copied as one block of
/// `n = 4` (`KW ≤ 4`) or `n = 8` values when `n` values can be read at the run's start and
/// written at `j` (checked per run; else element by element): the `n − KW` extra values land at
/// `j + KW …`, which the next run overwrites (runs are written in increasing `j`) or which lie at
/// `≥ per_out`, which the caller fills with the padding value afterwards. `mode` must match `f`
/// (see the constants; the element sizes are checked, otherwise the element loop runs).
///
/// # Safety
/// Every tap must be inside the input: `base + (kh − 1)·w + kw ≤ plane_len`, `input.len() ≥
/// ci·plane_len`, and `dst.len() ≥ per_out`.
#[inline(always)]
unsafe fn interior<const KW: usize, T: Copy, U: Copy>(
    g: &ConvGeometry,
    (input, dst, base, plane_len, (zp, mode)): (&[T], &mut [U], usize, usize, (i8, u8)),
    f: &impl Fn(T) -> U,
) {
    let kw = if KW == 0 { g.win.kw } else { KW };
    let n = if KW <= 4 { 4 } else { 8 };
    let sizes = match mode {
        WIDE_XOR80 => size_of::<T>() == 1 && size_of::<U>() == 1,
        WIDE_SUB_ZP => cfg!(target_arch = "x86_64") && size_of::<T>() == 1 && size_of::<U>() == 2,
        WIDE_COPY16 => size_of::<T>() == 2 && size_of::<U>() == 2,
        _ => false,
    };
    let wide = sizes && KW != 0 && KW <= 8;
    let (in_len, dst_len) = (input.len(), dst.len());
    let (src, out) = (input.as_ptr(), dst.as_mut_ptr());
    // Runs start at increasing input offsets `s0` and row positions `j`: when `n` values fit at
    // the start of run `r`, they fit at every earlier run. The last run starts at `last_s0`,
    // `last_j`; when it does not fit (a row whose taps fill its stride, or the input's last
    // pixel) but the one before does, all runs but the last are copied wide without a check per
    // run and the last one tap by tap.
    let kh = g.win.kh;
    let runs = g.ci * kh;
    let last_s0 = (g.ci.max(1) - 1) * plane_len + base + (kh.max(1) - 1) * g.w;
    let last_j = (runs.max(1) - 1) * kw;
    let fits = |s0: usize, j: usize| s0 + n <= in_len && j + n <= dst_len;
    let wide_runs = if !wide || runs == 0 {
        0
    } else if fits(last_s0, last_j) {
        runs
    } else if runs >= 2 {
        // Run `runs − 2`: one row up in the last plane, or the previous plane's last row.
        let prev_s0 = if kh > 1 {
            last_s0 - g.w
        } else {
            last_s0 - plane_len
        };
        if fits(prev_s0, last_j - kw) {
            runs - 1
        } else {
            0
        }
    } else {
        0
    };
    if wide_runs == runs && runs != 0 {
        let mut j = 0;
        for i in 0..g.ci {
            let mut s0 = i * plane_len + base;
            for _ in 0..kh {
                // SAFETY: every run fits (checked above for the last one, and runs are in
                // increasing order); `sizes` checked the element types of the mode.
                copy_wide(
                    mode,
                    src.add(s0).cast::<u8>(),
                    out.add(j).cast::<u8>(),
                    n,
                    zp,
                );
                s0 += g.w;
                j += kw;
            }
        }
        return;
    }
    if wide_runs != 0 {
        // `wide_runs = runs − 1`: every run of the planes before the last, then all but the
        // last run of the last plane, wide; the last run tap by tap.
        let mut j = 0;
        for i in 0..g.ci {
            let mut s0 = i * plane_len + base;
            let last = i + 1 == g.ci;
            for _ in 0..if last { kh - 1 } else { kh } {
                // SAFETY: a run before the last one, which fits (checked above for run
                // `runs − 2`; runs are in increasing order); `sizes` checked the element types.
                copy_wide(
                    mode,
                    src.add(s0).cast::<u8>(),
                    out.add(j).cast::<u8>(),
                    n,
                    zp,
                );
                s0 += g.w;
                j += kw;
            }
            if last {
                for kx in 0..kw {
                    // SAFETY: `s0 + kx` is an interior tap of plane `i` and
                    // `j + kx < per_out ≤ dst.len()` (the caller's contract).
                    *out.add(j + kx) = f(*src.add(s0 + kx));
                }
            }
        }
        return;
    }
    let mut j = 0;
    for i in 0..g.ci {
        for ky in 0..g.win.kh {
            let s0 = i * plane_len + base + ky * g.w;
            if wide && s0 + n <= in_len && j + n <= dst_len {
                // SAFETY: `n` values readable at `s0` and writable at `j` (checked just above);
                // `sizes` checked the element types of the mode.
                copy_wide(
                    mode,
                    src.add(s0).cast::<u8>(),
                    out.add(j).cast::<u8>(),
                    n,
                    zp,
                );
            } else {
                for kx in 0..kw {
                    // SAFETY: `s0 + kx < (i + 1)·plane_len ≤ input.len()` (an interior tap of
                    // plane `i`), `j < per_out ≤ dst.len()` (the caller's contract).
                    *out.add(j + kx) = f(*src.add(s0 + kx));
                }
            }
            j += kw;
        }
    }
}

/// `n ∈ {4, 8}` values from `src` (i8) to `dst`: `x ^ 0x80` as u8 ([`WIDE_XOR80`]) or `x − zp`
/// as i16 ([`WIDE_SUB_ZP`], x86_64 only); or `n` i16 values copied as they are
/// ([`WIDE_COPY16`]).
///
/// # Safety
/// `n` elements of the mode's input type readable at `src`; `n` elements of the mode's output
/// type writable at `dst`.
#[inline(always)]
unsafe fn copy_wide(mode: u8, src: *const u8, dst: *mut u8, n: usize, zp: i8) {
    match mode {
        WIDE_XOR80 => {
            if n == 4 {
                let v = src.cast::<u32>().read_unaligned() ^ 0x8080_8080;
                dst.cast::<u32>().write_unaligned(v);
            } else {
                let v = src.cast::<u64>().read_unaligned() ^ 0x8080_8080_8080_8080;
                dst.cast::<u64>().write_unaligned(v);
            }
        }
        WIDE_COPY16 => {
            if n == 4 {
                let v = src.cast::<u64>().read_unaligned();
                dst.cast::<u64>().write_unaligned(v);
            } else {
                let v = src.cast::<u128>().read_unaligned();
                dst.cast::<u128>().write_unaligned(v);
            }
        }
        #[cfg(target_arch = "x86_64")]
        WIDE_SUB_ZP => {
            use core::arch::x86_64::{
                __m128i, _mm_cvtsi32_si128, _mm_loadl_epi64, _mm_set1_epi16, _mm_srai_epi16,
                _mm_storel_epi64, _mm_storeu_si128, _mm_sub_epi16, _mm_unpacklo_epi8,
            };
            // SSE2 (every x86_64): bytes doubled then shifted right by 8 is the sign extension.
            let zpv = _mm_set1_epi16(i16::from(zp));
            if n == 4 {
                let v = _mm_cvtsi32_si128(src.cast::<i32>().read_unaligned());
                let v = _mm_sub_epi16(_mm_srai_epi16::<8>(_mm_unpacklo_epi8(v, v)), zpv);
                _mm_storel_epi64(dst.cast::<__m128i>(), v);
            } else {
                let v = _mm_loadl_epi64(src.cast::<__m128i>());
                let v = _mm_sub_epi16(_mm_srai_epi16::<8>(_mm_unpacklo_epi8(v, v)), zpv);
                _mm_storeu_si128(dst.cast::<__m128i>(), v);
            }
        }
        _ => {
            // Not a wide mode here (the callers check first): nothing to copy.
            let _ = (src, dst, n, zp);
        }
    }
}

/// [`crate::kernels::conv2d_f32`] after its checks, for weights that are all finite (see the
/// module docs): `output[o][p] = act(tree(lanes(W[o] · col[p])) + bias[o])` for every output
/// channel `o < co` and output pixel `p < oh·ow`. Returns `false` (writing nothing) when one
/// im2col row does not fit the buffer.
///
/// # Safety
/// The CPU must have `K`'s target features.
#[inline(always)]
pub(super) unsafe fn conv2d_f32<K: F32Dots, const MP: usize>(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) -> bool {
    let per_out = g.per_out;
    let plane = g.oh * g.ow;
    let Some(stride) = round_up(per_out, LANES) else {
        return false;
    };
    let tile = tile_pixels(COL_F32, stride, MP);
    if tile == 0 {
        return false;
    }
    if per_out == 0 || plane == 0 {
        return true;
    }
    let (full, rem) = (per_out / LANES, per_out % LANES);
    let wb = weights.as_bytes();
    let co = bias.len();
    let mut col = [0.0f32; COL_F32];
    let mut p0 = 0;
    while p0 < plane {
        let np = tile.min(plane - p0);
        im2col(
            g,
            input,
            (p0, np),
            stride,
            &mut col,
            (0.0, 0, WIDE_NONE),
            |v| v,
        );
        let rows = |k: usize| col.get(k * stride..(k + 1) * stride).unwrap_or(&[]);
        let mut o = 0;
        while o < co {
            let c_now = if co - o >= MC { MC } else { 1 };
            // One block of `C` filters over the tile.
            macro_rules! block {
                ($c:expr) => {{
                    const C: usize = $c;
                    let w: [&[u8]; C] = core::array::from_fn(|c| {
                        let s = 4 * (o + c) * per_out;
                        wb.get(s..s + 4 * per_out).unwrap_or(&[])
                    });
                    let tails: [[f32; LANES]; C] = core::array::from_fn(|c| {
                        load8(w[c].get(4 * LANES * full..).unwrap_or(&[]), 0)
                    });
                    let tail = if rem != 0 { Some(&tails) } else { None };
                    let b: [f32; C] = core::array::from_fn(|c| bias.get(o + c).unwrap_or(0.0));
                    let mut k = 0;
                    while k + MP <= np {
                        let cols: [&[f32]; MP] = core::array::from_fn(|p| rows(k + p));
                        let s = K::dots::<C, MP>(&w, tail, &cols, full);
                        for c in 0..C {
                            // The `MP` pixels are consecutive in the output plane: one bounds
                            // check, and the activation's match outside the pixels.
                            let at = (o + c) * plane + p0 + k;
                            if let Some(y) = output.get_mut(at..at + MP) {
                                let each = |a: Activation| s[c].map(|v| activate_f32(v + b[c], a));
                                y.copy_from_slice(&match act {
                                    Activation::None => each(Activation::None),
                                    Activation::Relu => each(Activation::Relu),
                                    Activation::Relu6 => each(Activation::Relu6),
                                });
                            }
                        }
                        k += MP;
                    }
                    let mut put = |c: usize, k: usize, s: f32| {
                        if let Some(y) = output.get_mut((o + c) * plane + p0 + k) {
                            *y = activate_f32(s + b[c], act);
                        }
                    };
                    while k < np {
                        let s = K::dots::<C, 1>(&w, tail, &[rows(k)], full);
                        for c in 0..C {
                            put(c, k, s[c][0]);
                        }
                        k += 1;
                    }
                }};
            }
            if c_now == MC {
                block!(MC);
            } else {
                block!(1);
            }
            o += c_now;
        }
        p0 += np;
    }
    true
}

/// [`crate::kernels::conv2d_s8`] after its checks: `acc = bias[o] + W[o] · col[p]` (exact, the
/// im2col rows hold `x − zp_in`), `output[o][p] = requantize(acc, …)` as the reference. Returns
/// `false` (writing nothing) when one im2col row does not fit the buffer.
///
/// # Safety
/// The CPU must have `K`'s target features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn conv2d_s8<K: S8Dots, const MP: usize>(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) -> bool {
    let per_out = g.per_out;
    let plane = g.oh * g.ow;
    let Some(stride) = round_up(per_out, K::STEP) else {
        return false;
    };
    let tile = tile_pixels(COL_I16, stride, MP);
    if tile == 0 {
        return false;
    }
    if per_out == 0 || plane == 0 {
        return true;
    }
    let (full, rem) = (per_out / K::STEP, per_out % K::STEP);
    let range = activation_range(act, q.output);
    let row_quant = |o: usize| RowQuant::of(q, o, range);
    let zp = q.input_zp;
    let wb = weights.as_bytes();
    let co = bias.len();
    let mut col = [K::pad(zp); COL_I16];
    // The accumulators of a block of `MC` channels over the tile (`≤ ACC` pixels), requantized
    // a channel row at a time.
    let mut accs = [[0i32; ACC]; MC];
    // `u8` rows: each filter's bias absorbs `−(zp + 128)·Σ_j w[o][j]`, computed once per call for
    // up to `OFFSETS` filters (per tile beyond).
    let mut offsets = [0i32; OFFSETS];
    if K::U8_OFFSET && co <= OFFSETS {
        for (o, d) in offsets.iter_mut().enumerate().take(co) {
            *d = u8_offset::<K>(wb.get(o * per_out..(o + 1) * per_out).unwrap_or(&[]), zp);
        }
    }
    // `WIDE_I16` kernels: the input widened once (`x − zp`), the rows then copied from it; and
    // the filters of a block widened once per tile into `w16` (zero-padded to `stride`).
    // The widened input carries its padding as explicit zeros (`x − zp` of a padded tap), so
    // that under the geometry `gp` (the padded size, no padding) every pixel is an interior one.
    let win = g.win;
    let (hp, wp) = (
        g.h + win.pad_top + win.pad_bottom,
        g.w + win.pad_left + win.pad_right,
    );
    let gp = ConvGeometry {
        h: hp,
        w: wp,
        win: Window {
            pad_top: 0,
            pad_bottom: 0,
            pad_left: 0,
            pad_right: 0,
            ..win
        },
        ..*g
    };
    let in_len = g.ci.saturating_mul(hp).saturating_mul(wp);
    let mut wide = K::wide();
    let wide = wide.as_mut();
    let (x16, w16) = wide.split_at_mut(X_I16.min(wide.len()));
    // Not for a 1×1 window: each input value is then read at most once per tile anyway.
    let overlap = win.kh * win.kw > 1;
    let pre_x = K::WIDE_I16
        && overlap
        && in_len <= x16.len()
        && g.w != 0
        && input.len() >= g.ci * g.h * g.w;
    if pre_x {
        let rows = input.chunks_exact(g.w).take(g.ci * g.h).enumerate();
        for (r, src) in rows {
            let (i, y) = (r / g.h, r % g.h);
            let s = (i * hp + y + win.pad_top) * wp + win.pad_left;
            for (d, &v) in x16
                .get_mut(s..s + g.w)
                .unwrap_or(&mut [])
                .iter_mut()
                .zip(src)
            {
                *d = i16::from(v) - i16::from(zp);
            }
        }
    }
    let pre_w = K::WIDE_I16 && stride <= W_I16 && w16.len() >= MC * W_I16;
    let mut p0 = 0;
    while p0 < plane {
        let np = tile.min(plane - p0).min(ACC);
        if pre_x {
            im2col(
                &gp,
                x16.get(..in_len).unwrap_or(&[]),
                (p0, np),
                stride,
                &mut col,
                (K::pad(zp), zp, WIDE_COPY16),
                |v| K::widened(v, zp),
            );
        } else {
            im2col(
                g,
                input,
                (p0, np),
                stride,
                &mut col,
                (K::pad(zp), zp, K::WIDE),
                |v| K::col(v, zp),
            );
        }
        let rows = |k: usize| col.get(k * stride..(k + 1) * stride).unwrap_or(&[]);
        let mut o = 0;
        while o < co {
            let c_now = if co - o >= MC { MC } else { 1 };
            macro_rules! block {
                ($c:expr) => {{
                    const C: usize = $c;
                    let w: [&[u8]; C] = core::array::from_fn(|c| {
                        let s = (o + c) * per_out;
                        wb.get(s..s + per_out).unwrap_or(&[])
                    });
                    let tails: [[i8; S8_TAIL]; C] = core::array::from_fn(|c| {
                        let mut t = [0i8; S8_TAIL];
                        let src = w[c].get(K::STEP * full..).unwrap_or(&[]);
                        for (t, &v) in t.iter_mut().zip(src) {
                            *t = v as i8;
                        }
                        t
                    });
                    let tail = if rem != 0 { Some(&tails) } else { None };
                    let offset: [i32; C] = core::array::from_fn(|c| match offsets.get(o + c) {
                        Some(&v) if co <= OFFSETS => v,
                        _ => u8_offset::<K>(w[c], zp),
                    });
                    let b: [i32; C] = core::array::from_fn(|c| {
                        bias.get(o + c).unwrap_or(0).wrapping_sub(offset[c])
                    });
                    let mut put = |c: usize, k: usize, dot: i32| {
                        if let Some(y) = accs.get_mut(c).and_then(|r| r.get_mut(k)) {
                            *y = b[c].wrapping_add(dot);
                        }
                    };
                    let mut k = 0;
                    if pre_w {
                        // Row `c` of `w16`: filter `o + c` as i16 (`w[c]` holds `per_out`
                        // bytes), then the zeros `w16` started with: every block of the call
                        // writes the same `per_out` positions (the taps past `per_out` hold the
                        // padding in `col`, times 0).
                        for (c, row) in w16.chunks_exact_mut(W_I16).enumerate().take(C) {
                            for (d, &v) in row.iter_mut().zip(w[c]) {
                                *d = i16::from(v as i8);
                            }
                        }
                        let w: [&[i16]; C] = core::array::from_fn(|c| {
                            w16.get(c * W_I16..c * W_I16 + stride).unwrap_or(&[])
                        });
                        let full = stride / K::STEP;
                        while k + MP <= np {
                            let cols: [&[K::Col]; MP] = core::array::from_fn(|p| rows(k + p));
                            let s = K::dots_i16::<C, MP>(&w, &cols, full);
                            for c in 0..C {
                                for p in 0..MP {
                                    put(c, k + p, s[c][p]);
                                }
                            }
                            k += MP;
                        }
                        while k < np {
                            let s = K::dots_i16::<C, 1>(&w, &[rows(k)], full);
                            for c in 0..C {
                                put(c, k, s[c][0]);
                            }
                            k += 1;
                        }
                    }
                    while k + MP <= np {
                        let cols: [&[K::Col]; MP] = core::array::from_fn(|p| rows(k + p));
                        let s = K::dots::<C, MP>(&w, tail, &cols, full);
                        for c in 0..C {
                            for p in 0..MP {
                                put(c, k + p, s[c][p]);
                            }
                        }
                        k += MP;
                    }
                    while k < np {
                        let s = K::dots::<C, 1>(&w, tail, &[rows(k)], full);
                        for c in 0..C {
                            put(c, k, s[c][0]);
                        }
                        k += 1;
                    }
                    for (c, acc) in accs.iter().enumerate().take(C) {
                        let s = (o + c) * plane + p0;
                        if let (Some(y), Some(a)) = (output.get_mut(s..s + np), acc.get(..np)) {
                            K::requant(a, y, &row_quant(o + c));
                        }
                    }
                }};
            }
            if c_now == MC {
                block!(MC);
            } else {
                block!(1);
            }
            o += c_now;
        }
        p0 += np;
    }
    true
}
