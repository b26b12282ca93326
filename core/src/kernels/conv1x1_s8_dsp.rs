//! 1×1 (pointwise) 2-D convolution, int8, CHW, with the Cortex-M4 DSP extension (ARMv7E-M:
//! `thumbv7em-*` only, `cfg(denoiserep_dsp)` from `core/build.rs`).
//!
//! A 1×1 convolution is a matrix product: `acc[o][p] = bias[o] + Σ_{i<K} W[o][i] · (x[i][q(p)] −
//! zp_in)` for `K = ci` input channels, output pixel `p = oy·ow + ox` reading input position
//! `q(p) = (oy·sh)·w + ox·sw` (a 1×1 window has no padding: a pad is below the kernel side).
//! Same result as [`super::conv2d_s8::reference`], bit for bit, on every input the reference
//! accepts: the same accumulator modulo 2^32 (the same integer terms in another order), then the
//! same requantization and clamp (`quant::RequantizerRight` where it applies — every channel with
//! a multiplier `≥ 0` and a shift `≤ −1` —, `quant::requantize_fast` otherwise; both equal
//! [`crate::quant::requantize`] on every input).
//!
//! Design (a 4-pixel block, one output channel per pass; CMSIS-NN's `arm_nn_mat_mult_kernel_s8_s16`
//! idea, written for the CHW layout):
//!
//! - **Gather 4 pixels** (`P0..P3`, consecutive in raster order; the last block repeats its last
//!   pixel) into the scratch, widened to i16 with the input offset applied, channels in groups
//!   of 4: group `g` is 8 words, pixel `j`'s two at `8g + 2j`: `(x[4g], x[4g+2])` and
//!   `(x[4g+1], x[4g+3])` (low halfword first, `x[i]` = channel `i` of that pixel minus
//!   `zp_in`), the pairs `SXTB16` makes of a weight word `w0 w1 w2 w3`. Channels past `K` in the
//!   last group are 0. At stride 1 (4 adjacent input bytes per channel) a whole group is 4 `LDR`,
//!   8 `SXTAB16` (offset added), 8 `PKHBT`/`PKHTB` and 8 stores, ≈ 1.8 instructions per value.
//!   When `oh·ow` is not a multiple of 4, the last block is moved back to end at the last pixel
//!   (rewriting up to 3 outputs with the same values); only a layer of fewer than 4 pixels runs
//!   a partial block.
//! - **1 output channel × 4 pixels per pass** ([`mac1x4`], assembly): per group one (unaligned)
//!   weight load, two `SXTB16`, then per pixel one `LDRD` and two `SMLAD`: 15 instructions for 16
//!   MACs, 32 per two groups with the loop test (≈ 0.94 per MAC; the 2×2 kernel of
//!   `conv2d_s8_dsp` needs 37 per 32). The `K mod 4` tail is one more group: the scratch pads
//!   it with zeros, so the weight bytes past `K` (the next row's) add nothing; only the very
//!   last row, whose padded group would read past the weights, adds its tail in Rust.
//! - **Requantization** of the 4 accumulators of a channel with constants made once per channel
//!   and block (`RequantizerRight`: `ASR`, `ADDS`/`ADC`, `SMLAL`, `ASR`), then `+ zp_out` and the
//!   clamp.
//!
//! Scratch: `8·⌈K/4⌉` words ([`scratch_words`]); the planner sizes it so for every 1×1 layer
//! (`ops::conv2d`). With less, the caller runs `conv2d_s8_dsp` (2 pixels) or the reference.
//!
//! The operands stay exact as in `conv2d_s8_dsp`: `x − zp_in ∈ [−255, 255]`, `w ∈ [−128, 127]`,
//! `SMLAD` adds modulo 2^32 (setting only the sticky Q flag, which nothing reads).
//!
//! Budget per output of a 64→64 layer: 64 (MACs) + 8 (requantization and store) + ≈ 14
//! (per-channel setup and loop over 4 pixels) + ≈ 2 (the gather over 64 channels)
//! instructions; measured 88.4 (707 560 per call on 64→64 @25×5 in QEMU, CMSIS-NN 1 068 960).

use core::arch::asm;

use super::linear_s8_dsp::{sxtab16, sxtab16_ror8};
use super::params::PerChannelQuant;
use super::ConvGeometry;
use crate::quant::{activation_range, requantize_fast, OutputRange, Requantizer, RequantizerRight};
use crate::tensor::{Activation, I32Data, I8Data};

/// Pixels per block.
const P: usize = 4;

/// Scratch words for `K = ci` input channels: 4 pixels × `⌈K/4⌉` groups × 2 words (`None` on
/// overflow).
pub(crate) const fn scratch_words(k: usize) -> Option<usize> {
    match k.checked_next_multiple_of(4) {
        Some(k4) => k4.checked_mul(2),
        None => None,
    }
}

/// `PKHBT r, lo, hi, LSL #16`: the low halfwords of `lo` and `hi`.
#[inline(always)]
fn pack_lo(lo: u32, hi: u32) -> u32 {
    (lo & 0xFFFF) | (hi << 16)
}

/// `PKHTB r, hi, lo, ASR #16`: the high halfwords of `lo` and `hi`.
#[inline(always)]
fn pack_hi(lo: u32, hi: u32) -> u32 {
    (hi & 0xFFFF_0000) | (lo >> 16)
}

/// Fills the scratch for the block of input positions `at[0..4]` (see the module docs); `off` is
/// `−zp_in` in both halfwords. `scratch.len() ≥ 8·⌈K/4⌉` (checked by the caller).
#[inline(never)]
fn gather(input: &[i8], hw: usize, k: usize, at: &[usize; P], off: u32, scratch: &mut [u32]) {
    let whole = k / 4;
    let a0 = at[0];
    let mut g0 = 0;
    // Stride 1: the 4 pixels are adjacent input bytes of every channel.
    let adjacent = at[1] == a0 + 1 && at[2] == a0 + 2 && at[3] == a0 + 3;
    // The last whole group's last channel ends at `(4·whole − 1)·hw + a0 + 4`.
    if adjacent && whole > 0 && (4 * whole - 1) * hw + a0 + 4 <= input.len() {
        let base = input.as_ptr();
        let load = |i: usize| -> u32 {
            // SAFETY: `i < 4·whole`, so `i·hw + a0 + 4 ≤ input.len()` (checked above); an
            // unaligned read is one `LDR` on ARMv7-M.
            u32::from_le(unsafe { core::ptr::read_unaligned(base.add(i * hw + a0).cast::<u32>()) })
        };
        for (g, dst) in scratch.chunks_exact_mut(8).take(whole).enumerate() {
            let i = 4 * g;
            let (c0, c1, c2, c3) = (load(i), load(i + 1), load(i + 2), load(i + 3));
            // `e` = (pixel 0, pixel 2), `o` = (pixel 1, pixel 3) of one channel, offset added.
            let (e0, o0) = (sxtab16(off, c0), sxtab16_ror8(off, c0));
            let (e1, o1) = (sxtab16(off, c1), sxtab16_ror8(off, c1));
            let (e2, o2) = (sxtab16(off, c2), sxtab16_ror8(off, c2));
            let (e3, o3) = (sxtab16(off, c3), sxtab16_ror8(off, c3));
            if let Some(d) = dst.get_mut(..8) {
                d[0] = pack_lo(e0, e2);
                d[1] = pack_lo(e1, e3);
                d[2] = pack_lo(o0, o2);
                d[3] = pack_lo(o1, o3);
                d[4] = pack_hi(e0, e2);
                d[5] = pack_hi(e1, e3);
                d[6] = pack_hi(o0, o2);
                d[7] = pack_hi(o1, o3);
            }
        }
        g0 = whole;
    }
    // The other groups (all of them when the fast path does not apply), value by value; channels
    // past `K` are 0.
    let zp = i32::from((off as u16) as i16);
    let x = |i: usize, a: usize| -> u32 {
        if i < k {
            let v = input.get(i * hw + a).copied().unwrap_or(0);
            (i32::from(v) + zp) as u16 as u32
        } else {
            0
        }
    };
    for (g, dst) in scratch
        .chunks_exact_mut(8)
        .enumerate()
        .skip(g0)
        .take(k.div_ceil(4) - g0)
    {
        let i = 4 * g;
        for (j, &a) in at.iter().enumerate() {
            if let Some([d0, d1]) = dst.get_mut(2 * j..2 * j + 2) {
                *d0 = x(i, a) | (x(i + 2, a) << 16);
                *d1 = x(i + 1, a) | (x(i + 3, a) << 16);
            }
        }
    }
}

/// One group (4 channels) of [`mac1x4`]: one weight word widened to `(w0, w2)`, `(w1, w3)`, then
/// per pixel its two words (`LDRD`) and two `SMLAD`.
macro_rules! group1x4 {
    () => {
        concat!(
            "ldr {k1}, [{w}], #4\n",
            "sxtb16 {k0}, {k1}\n",
            "sxtb16 {k1}, {k1}, ror #8\n",
            "ldrd {xe}, {xo}, [{b}], #8\n",
            "smlad {a0}, {k0}, {xe}, {a0}\n",
            "smlad {a0}, {k1}, {xo}, {a0}\n",
            "ldrd {xe}, {xo}, [{b}], #8\n",
            "smlad {a1}, {k0}, {xe}, {a1}\n",
            "smlad {a1}, {k1}, {xo}, {a1}\n",
            "ldrd {xe}, {xo}, [{b}], #8\n",
            "smlad {a2}, {k0}, {xe}, {a2}\n",
            "smlad {a2}, {k1}, {xo}, {a2}\n",
            "ldrd {xe}, {xo}, [{b}], #8\n",
            "smlad {a3}, {k0}, {xe}, {a3}\n",
            "smlad {a3}, {k1}, {xo}, {a3}\n",
        )
    };
}

/// `acc[j] + Σ_{t < 4G} row[t] · patch_j[t]` for the 4 pixels of the scratch (module docs),
/// `G = groups.len() / 8` groups, `row` at least `4G` bytes.
///
/// Hand-written loop ([`group1x4`]): two groups per iteration, 32 instructions for 32 MACs with
/// the loop test; an odd count enters the loop at its second group. 11 registers: the two
/// pointers, the end, 4 accumulators, 2 widened weights, 2 data words.
#[inline(always)]
fn mac1x4(groups: &[u32], row: &[u8], acc: [i32; P]) -> [i32; P] {
    let g = groups.len() / 8;
    if g == 0 || row.len() < 4 * g {
        return acc; // impossible for [`run`]'s arguments; keeps the reads below in bounds
    }
    let b = groups.as_ptr();
    // SAFETY: the first 8·g words of `groups` and the first 4·g ≤ row.len() bytes of `row`
    // (checked above); `g ≥ 1`.
    unsafe { mac1x4_at(b, b.wrapping_add(8 * g), (g % 2) as u32, row.as_ptr(), acc) }
}

/// [`mac1x4`] on raw pointers, the loop's bounds precomputed (the channel loop of
/// [`channels`] hoists them): `acc[j] + Σ_t row[t]·x_j[t]` over the `g` groups from `b` to
/// `end = b + 8g` words, `odd = g mod 2`.
///
/// # Safety
/// `g ≥ 1`; `b` word-aligned and readable for `8g` words; `row` readable for `4g` bytes.
#[inline(always)]
unsafe fn mac1x4_at(
    b: *const u32,
    end: *const u32,
    odd: u32,
    row: *const u8,
    acc: [i32; P],
) -> [i32; P] {
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    // SAFETY: the caller's contract: reads the 8·g words from `b` (32 bytes per group,
    // word-aligned, so `LDRD` is allowed) and the 4·g bytes from `row`: an odd `g` runs one
    // group first (entering at `3:`), then both counts run pairs of groups until the scratch
    // pointer reaches `end = b + 8g` (`g ≥ 1`, so the loop test is first made after at least
    // one group, and `end − b` is a multiple of the 64 bytes a pair reads after the entry).
    // Unaligned `LDR` is allowed on ARMv7-M (CCR.UNALIGN_TRP is 0 out of reset). Registers:
    // only the operands (`k0` carries `odd` in, then is scratch); flags: `cmp`.
    unsafe {
        asm!(
            "cmp {k0}, #0",
            "bne 3f",
            "2:",
            group1x4!(),
            "3:",
            group1x4!(),
            "cmp {b}, {end}",
            "bne 2b",
            b = inout(reg) b => _,
            w = inout(reg) row => _,
            end = in(reg) end,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            a3 = inout(reg) a3,
            k0 = inout(reg) odd => _,
            k1 = out(reg) _,
            xe = out(reg) _,
            xo = out(reg) _,
            options(readonly, nostack),
        );
    }
    [a0, a1, a2, a3]
}

/// A layer's constants for [`channels`].
struct Layer<'a> {
    /// `K`, and `4·⌈K/4⌉` (the bytes [`mac1x4`] reads per row).
    k: usize,
    k_padded: usize,
    /// Output pixels per channel.
    ohw: usize,
    weights: &'a [u8],
    bias: I32Data<'a>,
    q: &'a PerChannelQuant<'a>,
    range: OutputRange,
}

/// The last row's tail when its padded group would read past the weights: the whole groups
/// by [`mac1x4`], then taps `4⌊K/4⌋..K` in Rust from the scratch's last (padded) group.
#[cold]
#[inline(never)]
fn last_row(l: &Layer<'_>, scratch: &[u32], row: &[u8], acc: [i32; P]) -> [i32; P] {
    let (k, k4) = (l.k, 4 * (l.k / 4));
    let mut acc = mac1x4(scratch.get(..2 * k4).unwrap_or(&[]), row, acc);
    let last = scratch.get(2 * k4..2 * k4 + 8).unwrap_or(&[]);
    for (t, &wt) in row.iter().enumerate().take(k).skip(k4) {
        let r = t - k4;
        let wt = i32::from(wt as i8);
        for (j, a) in acc.iter_mut().enumerate() {
            let word = last.get(2 * j + (r & 1)).copied().unwrap_or(0);
            let v = i32::from((word >> (16 * (r >> 1))) as u16 as i16);
            *a = a.wrapping_add(wt * v);
        }
    }
    acc
}

/// The output channels of the whole pixel block `p0..p0 + 4` whose patches are in `scratch`:
/// `output[o][p0 + j]` for `o` from 0 up to the last row (excluded) whose padded last group
/// would read past the weights (the last row when `K mod 4 ≠ 0`). Returns the number of
/// channels done (0 when a slice is shorter than the layer's shapes say, which a checked
/// geometry never gives). `FULL`: the clamp is the whole int8 range ([`OutputRange::is_full`]).
///
/// Raw pointers walk the per-channel data (bias, multiplier, shift, weight row, outputs), their
/// bounds checked once before the loop: with slices, LLVM kept ≈ 60 instructions of bounds
/// checks and spills per channel.
#[inline(never)]
fn channels<const FULL: bool>(
    l: &Layer<'_>,
    scratch: &[u32],
    p0: usize,
    output: &mut [i8],
) -> usize {
    let Some(groups) = scratch.get(..2 * l.k_padded) else {
        return 0;
    };
    let g = l.k_padded / 4;
    let co = l.bias.len();
    // Channels whose padded row lies inside the weights: all, or all but the last.
    let fast = if co > 0 && (co - 1) * l.k + l.k_padded > l.weights.len() {
        co - 1
    } else {
        co
    };
    if fast == 0
        || g == 0
        || l.q.multiplier.len() < fast
        || l.q.shift.len() < fast
        || output.len() < (fast - 1) * l.ohw + p0 + P
        || l.ohw < P
    {
        return 0;
    }
    let range = &l.range;
    let (bias, mult, shift) = (
        l.bias.as_bytes().as_ptr(),
        l.q.multiplier.as_bytes().as_ptr(),
        l.q.shift.as_bytes().as_ptr(),
    );
    let mut row = l.weights.as_ptr();
    // SAFETY: `p0 + P ≤ output.len()` (checked above).
    let mut ys = unsafe { output.as_mut_ptr().add(p0) };
    let b = groups.as_ptr();
    let end = b.wrapping_add(8 * g);
    let odd = (g % 2) as u32;
    for o in 0..fast {
        // SAFETY: `o < fast ≤ co = bias.len()`, `fast ≤ multiplier.len()`, `fast ≤
        // shift.len()` (checked above): 4 bytes at `4o` of the bias and multiplier bytes and
        // byte `o` of the shifts are inside them (unaligned reads: the data of a model file).
        let (b0, m, s) = unsafe {
            (
                i32::from_le(core::ptr::read_unaligned(bias.add(4 * o).cast::<i32>())),
                i32::from_le(core::ptr::read_unaligned(mult.add(4 * o).cast::<i32>())),
                i32::from(*shift.add(o).cast::<i8>()),
            )
        };
        // SAFETY: as [`mac1x4`]'s: the `g ≥ 1` groups of `groups` (`8g` words from the
        // word-aligned `b`, `end = b + 8g`, `odd = g mod 2`) and the `4g = k_padded` bytes of
        // row `o` from `row = weights + o·k`, inside the weights for `o < fast` (`o·k +
        // k_padded ≤ weights.len()`, the definition of `fast`).
        let [a0, a1, a2, a3] = unsafe { mac1x4_at(b, end, odd, row, [b0, b0, b0, b0]) };
        // Unrolled by hand (the firmware is built for size: LLVM keeps 4-step loops).
        let y = match RequantizerRight::new(m, s) {
            Some(r) if FULL => {
                let f = |a: i32| range.finish_full(r.apply(a));
                [f(a0), f(a1), f(a2), f(a3)]
            }
            Some(r) => {
                let f = |a: i32| range.finish(r.apply(a));
                [f(a0), f(a1), f(a2), f(a3)]
            }
            None => requantize4([a0, a1, a2, a3], m, s, range),
        };
        // SAFETY: `ys = output + o·ohw + p0` with `o < fast`, and `(fast − 1)·ohw + p0 + 4 ≤
        // output.len()` (checked above): 4 bytes inside `output`.
        unsafe {
            let [y0, y1, y2, y3] = y;
            *ys = y0;
            *ys.add(1) = y1;
            *ys.add(2) = y2;
            *ys.add(3) = y3;
        }
        ys = ys.wrapping_add(l.ohw);
        row = row.wrapping_add(l.k);
    }
    fast
}

/// Output channels `o0..` of the pixel block `p0..p0 + n` (`n ≤ 4`; the scratch's pixels past
/// `n` repeat the last one), one at a time: the channels [`channels`] leaves and the last,
/// partial block. `output[o][p0 + j]` for `j < n`.
#[cold]
#[inline(never)]
fn channels_slow(
    l: &Layer<'_>,
    scratch: &[u32],
    (p0, n): (usize, usize),
    o0: usize,
    output: &mut [i8],
) {
    let groups = scratch.get(..2 * l.k_padded).unwrap_or(&[]);
    for o in o0..l.bias.len() {
        let b0 = l.bias.get(o).unwrap_or(0);
        let row = l.weights.get(o * l.k..).unwrap_or(&[]);
        let acc = if row.len() >= l.k_padded {
            mac1x4(groups, row, [b0; P])
        } else {
            last_row(l, scratch, row, [b0; P])
        };
        let m = l.q.multiplier.get(o).unwrap_or(0);
        let s = i32::from(l.q.shift.get(o).unwrap_or(0));
        let y = requantize4(acc, m, s, &l.range);
        let start = o * l.ohw + p0;
        if let (Some(d), Some(y)) = (output.get_mut(start..start + n), y.get(..n)) {
            d.copy_from_slice(y);
        }
    }
}

/// The 4 outputs of a channel whose `(multiplier, shift)` [`RequantizerRight`] does not take.
#[cold]
#[inline(never)]
fn requantize4(acc: [i32; P], m: i32, s: i32, range: &OutputRange) -> [i8; P] {
    let r = Requantizer::new(m, s);
    acc.map(|a| requantize_fast(a, &r, range))
}

/// The 1×1 kernel on arguments checked by [`super::conv2d_s8`] (`g` from `conv_geometry` with
/// `kh = kw = 1`, slices of the lengths it checked). Returns `false` (writing nothing) when `g`
/// is not 1×1 or `scratch` is shorter than [`scratch_words`]`(K)`; the caller then runs another
/// kernel. Otherwise every output `output[o][p]` as the reference computes it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
    scratch: &mut [u32],
) -> bool {
    let k = g.per_out;
    if g.win.kh != 1 || g.win.kw != 1 || k != g.ci {
        return false;
    }
    let Some(scratch) = scratch_words(k).and_then(|n| scratch.get_mut(..n)) else {
        return false;
    };
    let co = bias.len();
    let ohw = g.oh * g.ow;
    if k == 0 || co == 0 || ohw == 0 {
        return true;
    }
    let hw = g.h * g.w;
    let zp_in = i32::from(q.input_zp);
    // −zp_in ∈ [−127, 128] in both halfwords (for `SXTAB16`).
    let off = u32::from((-zp_in) as u16) * 0x0001_0001;
    let (act_min, act_max) = activation_range(act, q.output);
    let layer = Layer {
        k,
        k_padded: 4 * k.div_ceil(4),
        ohw,
        weights: weights.as_bytes(),
        bias,
        q,
        range: OutputRange::new(i32::from(q.output.zero_point), act_min, act_max),
    };
    let full = layer.range.is_full();
    let mut p0 = 0;
    while p0 < ohw {
        // A last block of fewer than 4 pixels moves back to end at the last pixel (recomputing
        // up to 3 outputs of the previous block, the same values) when there are 4 pixels.
        if ohw - p0 < P && ohw >= P {
            p0 = ohw - P;
        }
        let n = (ohw - p0).min(P);
        // Input positions of the block's pixels (the last one repeated past the end).
        let mut at = [0usize; P];
        for (j, a) in at.iter_mut().enumerate() {
            let p = p0 + j.min(n - 1);
            *a = (p / g.ow) * g.win.sh * g.w + (p % g.ow) * g.win.sw;
        }
        gather(input, hw, k, &at, off, scratch);
        let done = if n < P {
            0
        } else if full {
            channels::<true>(&layer, scratch, p0, output)
        } else {
            channels::<false>(&layer, scratch, p0, output)
        };
        if done < co {
            channels_slow(&layer, scratch, (p0, n), done, output);
        }
        p0 += P;
    }
    true
}
