//! Depthwise 3×3 convolution, int8, CHW, with the Cortex-M4 DSP extension (ARMv7E-M:
//! `thumbv7em-*` only, `cfg(denoiserep_dsp)` from `core/build.rs`).
//!
//! Same result as [`super::depthwise_conv2d_s8_reference`], bit for bit, on every input it
//! accepts: per output `acc = bias[c] + Σ_{ky,kx} W[c][ky][kx] · (x[c][iy][ix] − zp_in)` over the
//! taps inside the input (padded taps add exactly 0), modulo 2^32 like the reference's
//! `wrapping_add`, then the reference's requantization ([`requantize_fast`], equal to
//! `quant::requantize` on every input). Runs when `kh = kw = 3` and `w ≥ 4` (any stride, any
//! valid padding, any `h`); everything else goes to the reference loop.
//!
//! Design, for CHW (each channel its own `h × w` plane; CMSIS-NN's NHWC kernel does 4 channels
//! at a time instead):
//!
//! - **One word per kernel row.** For an output pixel whose window starts at input column
//!   `ix0 = ox·sw − pad_left`, one unaligned 32-bit load at column `L = clamp(ix0, 0, w − 4)`
//!   (always inside the row, as `w ≥ 4`) holds every in-bounds tap of that kernel row: the taps
//!   are columns `ix0 … ix0 + 2` clipped to `[0, w)`, and `L ≤ max(ix0, 0)`,
//!   `min(ix0 + 2, w − 1) ≤ L + 3`. Two `SXTAB16` widen bytes 0,2 and 1,3 to i16 pairs with
//!   `−zp_in` added while widening (`x − zp_in ∈ [−255, 255]` fits); two `SMLAD` multiply them
//!   by the kernel row's weights placed at byte `j ↦ W[ky][j − d]` (0 outside `0..3`), with
//!   `d = ix0 − L ∈ [−2, 3]`. A byte whose weight is 0 (a padded tap, or a column of the word
//!   outside the window) adds exactly 0, so the sum is the reference's. Per kernel row: 1 load,
//!   2 `SXTAB16`, 2 `SMLAD` for 3 MACs.
//! - **Placements.** The weights of the six placements `d = −2 … 3` are packed once per channel
//!   (`[d][ky]` → two words, the i16 pairs for bytes 0,2 and 1,3). A kernel row outside the input
//!   (top / bottom padding) uses zero weights on row 0's data, so every output runs the same
//!   three-row code.
//! - **Two outputs per word at stride 1.** Inside the row (`0 ≤ ix0`, `ix0 + 4 ≤ w`), outputs
//!   `ox` and `ox + 1` read the same word, with placements `d = 0` and `d = 1`: per kernel row
//!   1 load, 2 `SXTAB16`, 4 `SMLAD` for 6 MACs.
//! - **Requantization** per channel constants ([`Requantizer`], [`OutputRange`]): ≈ 15
//!   instructions per output, no branch.
//!
//! The only `unsafe`: the DSP instructions (`asm!`, register-only, in `linear_s8_dsp.rs`) and
//! the unaligned word loads, each inside one input row (see [`word_at`]).

use super::linear_s8_dsp::{smlad, sxtab16, sxtab16_ror8};
use super::params::PerChannelQuant;
use super::ConvGeometry;
use crate::quant::{activation_range, requantize_fast, OutputRange, Requantizer};
use crate::tensor::{Activation, I32Data, I8Data};

/// Placements `d = ix0 − L`, `d ∈ [−2, 3]`, stored at `d + 2`.
const PLACEMENTS: usize = 6;

/// Weights of one kernel row in one placement: the i16 pairs for bytes 0,2 and 1,3 of the word.
type RowWeights = [u32; 2];
/// The three kernel rows of one placement.
type Placement = [RowWeights; 3];

/// True when [`run`] handles `g`: a 3×3 kernel over planes at least 4 wide (one channel).
pub(crate) fn supports(g: &ConvGeometry) -> bool {
    g.ci == 1 && g.win.kh == 3 && g.win.kw == 3 && g.w >= 4
}

/// Two i16 weights `lo`, `hi` in one word.
#[inline(always)]
fn pair(lo: i8, hi: i8) -> u32 {
    u32::from(lo as i16 as u16) | (u32::from(hi as i16 as u16) << 16)
}

/// The kernel row `k` placed at offset `d` in a word: byte `j` gets `k[j − d]` (0 outside).
#[inline(always)]
fn place(k: [i8; 3], d: isize) -> RowWeights {
    let at = |j: isize| match j - d {
        t @ 0..=2 => k[t as usize],
        _ => 0,
    };
    [pair(at(0), at(2)), pair(at(1), at(3))]
}

/// The 4 bytes of `row` at `l` as a little-endian word (one unaligned `LDR`); 0 if they are not
/// inside `row` (never for the callers' `l ≤ row.len() − 4`).
#[inline(always)]
fn word_at(row: &[i8], l: usize) -> u32 {
    match row.get(l..l + 4) {
        // SAFETY: the 4 bytes at `l` are inside `row` (checked by the `get`); ARMv7-M allows
        // unaligned `LDR`.
        Some(b) => unsafe { b.as_ptr().cast::<u32>().read_unaligned() },
        None => 0,
    }
}

/// `acc + Σ_ky` of one output whose three kernel rows read `rows[ky]` at column `l` with
/// weights `p[ky]`.
#[inline(always)]
fn one(rows: &[&[i8]; 3], l: usize, p: &Placement, off: u32, acc: i32) -> i32 {
    let mut acc = acc;
    for (row, wk) in rows.iter().zip(p) {
        let x = word_at(row, l);
        acc = smlad(sxtab16(off, x), wk[0], acc);
        acc = smlad(sxtab16_ror8(off, x), wk[1], acc);
    }
    acc
}

/// Two adjacent outputs (stride 1) from the same words at column `l`: placements `p0` (`d = 0`)
/// and `p1` (`d = 1`).
#[inline(always)]
fn two(
    rows: &[&[i8]; 3],
    l: usize,
    p0: &Placement,
    p1: &Placement,
    off: u32,
    acc: i32,
) -> (i32, i32) {
    let (mut a0, mut a1) = (acc, acc);
    for ((row, w0), w1) in rows.iter().zip(p0).zip(p1) {
        let x = word_at(row, l);
        let e = sxtab16(off, x);
        let o = sxtab16_ror8(off, x);
        a0 = smlad(e, w0[0], a0);
        a0 = smlad(o, w0[1], a0);
        a1 = smlad(e, w1[0], a1);
        a1 = smlad(o, w1[1], a1);
    }
    (a0, a1)
}

/// The depthwise convolution on arguments checked by [`super::depthwise_conv2d_s8`], for a
/// geometry [`supports`] accepts (`g` is one channel's: `ci = 1`, `per_out = 9`).
pub(crate) fn run(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) {
    let (h, w, oh, ow, win) = (g.h, g.w, g.oh, g.ow, g.win);
    if !supports(g) || h == 0 || oh == 0 || ow == 0 {
        return;
    }
    let off = u32::from((-i32::from(q.input_zp)) as u16) * 0x0001_0001;
    let (act_min, act_max) = activation_range(act, q.output);
    let range = OutputRange::new(i32::from(q.output.zero_point), act_min, act_max);
    let (sh, sw) = (win.sh, win.sw);
    let (pt, pl) = (win.pad_top as isize, win.pad_left as isize);
    // Output columns whose word starts at the window (`d = 0`): `0 ≤ ox·sw − pl ≤ w − 4`.
    let ox_a = (win.pad_left.div_ceil(sw)).min(ow);
    let ox_b = ((w - 4 + win.pad_left) / sw + 1).clamp(ox_a, ow);
    let per_channel = input
        .chunks_exact(h * w)
        .zip(output.chunks_exact_mut(oh * ow))
        .zip(weights.as_bytes().chunks_exact(9))
        .zip(bias.iter().zip(q.multiplier.iter()).zip(q.shift.iter()));
    for (((plane, out), k), ((b, m), s)) in per_channel {
        let requant = Requantizer::new(m, i32::from(s));
        let k = |ky: usize| [k[3 * ky] as i8, k[3 * ky + 1] as i8, k[3 * ky + 2] as i8];
        let mut tab = [[[0u32; 2]; 3]; PLACEMENTS];
        for (d, p) in tab.iter_mut().enumerate() {
            for (ky, r) in p.iter_mut().enumerate() {
                *r = place(k(ky), d as isize - 2);
            }
        }
        let mut out_rows = out.chunks_exact_mut(ow);
        for oy in 0..oh {
            let Some(y) = out_rows.next() else { return };
            let iy0 = (oy * sh) as isize - pt;
            // Rows outside the input read row 0 with zero weights.
            let valid = |ky: isize| (0..h as isize).contains(&(iy0 + ky));
            let row = |ky: isize| {
                let iy = if valid(ky) { (iy0 + ky) as usize } else { 0 };
                plane.get(iy * w..(iy + 1) * w).unwrap_or(&[])
            };
            let rows = [row(0), row(1), row(2)];
            let masked;
            let tab = if valid(0) && valid(2) {
                &tab
            } else {
                masked = {
                    let mut t = tab;
                    for p in t.iter_mut() {
                        for (ky, r) in p.iter_mut().enumerate() {
                            if !valid(ky as isize) {
                                *r = [0, 0];
                            }
                        }
                    }
                    t
                };
                &masked
            };
            let [_, _, ref p0, ref p1, _, _] = *tab;
            // Any output: word at `L = clamp(ix0, 0, w − 4)`, placement `ix0 − L`.
            let general = |ox: usize| {
                let ix0 = (ox * sw) as isize - pl;
                let l = ix0.clamp(0, w as isize - 4);
                let d = (ix0 - l + 2) as usize;
                let p = tab.get(d).unwrap_or(&[[0; 2]; 3]);
                requantize_fast(one(&rows, l as usize, p, off, b), &requant, &range)
            };
            for (ox, yo) in y.iter_mut().enumerate().take(ox_a) {
                *yo = general(ox);
            }
            let mid = y.get_mut(ox_a..ox_b).unwrap_or(&mut []);
            let mut l = (ox_a * sw).saturating_sub(win.pad_left);
            if sw == 1 {
                let mut pairs = mid.chunks_exact_mut(2);
                for y2 in &mut pairs {
                    // Both windows inside `l .. l + 4`: needs `l + 4 ≤ w`, true for the first
                    // of the pair (`d = 0`); the second's `d = 1` reads the same word.
                    let (a0, a1) = two(&rows, l, p0, p1, off, b);
                    if let [y0, y1] = y2 {
                        *y0 = requantize_fast(a0, &requant, &range);
                        *y1 = requantize_fast(a1, &requant, &range);
                    }
                    l += 2;
                }
                if let [y0] = pairs.into_remainder() {
                    *y0 = requantize_fast(one(&rows, l, p0, off, b), &requant, &range);
                }
            } else {
                for yo in mid.iter_mut() {
                    *yo = requantize_fast(one(&rows, l, p0, off, b), &requant, &range);
                    l += sw;
                }
            }
            for (ox, yo) in y.iter_mut().enumerate().skip(ox_b) {
                *yo = general(ox);
            }
        }
    }
}
