//! 2-D convolution, int8, CHW, with the Cortex-M4 DSP extension (ARMv7E-M: `thumbv7em-*` only,
//! `cfg(denoiserep_dsp)` from `core/build.rs`).
//!
//! Same result as [`super::conv2d_s8::reference`], bit for bit, on every input the reference
//! accepts: the same accumulator modulo 2^32 (integer additions in another order), then the same
//! [`requantize`] and clamp. Design (as CMSIS-NN's `arm_convolve_s8` +
//! `arm_nn_mat_mult_kernel_s8_s16`, written afresh for the CHW layout):
//!
//! - **im2col of two output pixels** (`A` = pixel `p`, `B` = pixel `p + 1` in raster order, or
//!   `p` again for an odd last pixel) into the caller's scratch, widened to i16 with the input
//!   offset applied: tap `j = (i·kh + ky)·kw + kx` of a patch (the flat weight index of
//!   `[out][in][kh][kw]`) holds `x[i][iy][ix] − input_zp`, or 0 for a padded tap (which then
//!   adds nothing, as in the reference).
//! - **Pair order matching the weights' widening**: a weight word `w0 w1 w2 w3` (taps `4g..4g+4`)
//!   widens to `(w0, w2)` (`SXTB16`) and `(w1, w3)` (`SXTB16 … ROR #8`), so group `g` of the
//!   scratch is four words `[A(x0, x2), A(x1, x3), B(x0, x2), B(x1, x3)]` (low halfword first):
//!   CMSIS's `read_and_pad_reordered` + `arm_s8_to_s16_unordered_with_offset`, with both pixels
//!   interleaved so one `LDRD` pair fetches a group of both.
//! - **2 output channels × 2 pixels per pass** ([`mac2x2`], assembly): per group one unaligned
//!   weight load per channel, two `SXTB16`, and 8 `SMLAD` (16 MACs), 20 instructions with the
//!   loop test. An odd last channel runs the same loop with its row twice (the second result is
//!   dropped).
//! - **K tail**: the `K mod 4` taps past the last group sit after the groups, one word per tap
//!   (`A` low halfword, `B` high), and are added in Rust.
//!
//! Scratch: exactly `K = ci·kh·kw` words (`4·⌊K/4⌋` group words + `K mod 4` tail words), i.e. 2·K
//! i16 values — [`scratch_words`]. With less, the caller runs the reference instead.
//!
//! Why not fold the offset into the bias (`bias − zp_in·Σw`): padded taps would then need the
//! zero point instead of 0, and the weight sums would have to be stored or recomputed; adding
//! the offset while filling the scratch is free. The operands stay exact: `x − zp_in ∈ [−255,
//! 255]` and `w ∈ [−128, 127]` fit i16, every product fits i32, and `SMLAD` adds modulo 2^32
//! like the reference's `wrapping_add` (it only sets the sticky Q flag, which nothing reads).
//!
//! The only `unsafe` is the `asm!` loop of [`mac2x2`], whose reads are bounds-checked before it
//! runs (see its SAFETY note). Unaligned `LDR` is fine on ARMv7-M (the weights in a flash
//! partition are not aligned); `LDRD` needs word alignment, which a `&[u32]` scratch has.

use core::arch::asm;

use super::params::PerChannelQuant;
use super::{tap_range, ConvGeometry};
use crate::quant::{activation_range, requantize};
use crate::tensor::{Activation, I32Data, I8Data};

/// Scratch words the DSP kernel needs for patches of `per_out = ci·kh·kw` taps: `per_out`
/// (two pixels' patches of i16, two values per word).
pub(crate) const fn scratch_words(per_out: usize) -> usize {
    per_out
}

/// Two low halfwords packed: `lo | hi << 16` (each truncated to 16 bits; both are in
/// `[−255, 255]`).
#[inline(always)]
fn pack(lo: i32, hi: i32) -> u32 {
    u32::from(lo as u16) | (u32::from(hi as u16) << 16)
}

/// Writes the patch of output pixel `(oy, ox)` into `scratch` as pixel `B` (`SLOT_B`) or `A`:
/// group `g` at words `4g + 2·SLOT_B`, `4g + 2·SLOT_B + 1`, the `K mod 4` tail taps at words
/// `4·⌊K/4⌋ + t` (the `A` value in the low halfword: `A` writes the whole word, `B` only the
/// high halfword, so `A` goes first).
#[inline(always)]
fn im2col<const SLOT_B: bool>(
    g: &ConvGeometry,
    input: &[i8],
    zp_in: i32,
    oy: usize,
    ox: usize,
    scratch: &mut [u32],
) {
    let ConvGeometry { ci, h, w, win, .. } = *g;
    let (kh, kw) = (win.kh, win.kw);
    let (ky_lo, ky_hi, y0) = tap_range(oy, win.sh, win.pad_top, kh, h);
    let (kx_lo, kx_hi, x0) = tap_range(ox, win.sw, win.pad_left, kw, w);
    let groups = g.per_out / 4;
    let Some((body, tail)) = scratch.split_at_mut_checked(4 * groups) else {
        return; // the caller checked `scratch.len() ≥ per_out`
    };
    let mut out = body.chunks_exact_mut(4);
    let slot = if SLOT_B { 2 } else { 0 };
    // The taps of the group being filled, in order; `fill` of them so far.
    let mut q = [0i32; 3];
    let mut fill = 0usize;
    let mut push = |v: i32| {
        match fill {
            0 => q[0] = v,
            1 => q[1] = v,
            2 => q[2] = v,
            _ => {
                if let Some(c) = out.next() {
                    if let Some([e, o]) = c.get_mut(slot..slot + 2) {
                        *e = pack(q[0], q[2]);
                        *o = pack(q[1], v);
                    }
                }
                fill = 0;
                return;
            }
        }
        fill += 1;
    };
    let hw = h * w;
    for i in 0..ci {
        let plane = input.get(i * hw..(i + 1) * hw).unwrap_or(&[]);
        for ky in 0..kh {
            if ky < ky_lo || ky >= ky_hi {
                for _ in 0..kw {
                    push(0);
                }
                continue;
            }
            let iy = (y0 + ky as isize) as usize;
            // Taps kx_lo..kx_hi read x0 + kx, inside the row (tap_range).
            let start = (x0 + kx_lo as isize) as usize;
            let row = plane
                .get(iy * w + start..iy * w + start + (kx_hi - kx_lo))
                .unwrap_or(&[]);
            for _ in 0..kx_lo {
                push(0);
            }
            for &x in row {
                push(i32::from(x) - zp_in);
            }
            for _ in kx_hi..kw {
                push(0);
            }
        }
    }
    // The K mod 4 (= fill) tail taps.
    for (t, &v) in tail.iter_mut().zip(q.iter()).take(fill) {
        *t = if SLOT_B {
            (*t & 0xFFFF) | (u32::from(v as u16) << 16)
        } else {
            u32::from(v as u16)
        };
    }
}

/// One pass of 2 channels × 2 pixels over the whole groups of the scratch:
/// `acc = [r0·A, r0·B, r1·A, r1·B]` += `Σ_{j < 4G} W[r][j] · patch[P][j]`, where row `r0` is
/// `block[..4G]`, row `r1` is `block[n..n + 4G]` (`n = K`, or 0 to repeat row `r0`) and `G =
/// groups.len() / 4` (the scratch layout of the module docs).
///
/// Hand-written loop: per group two `LDRD` (both pixels' pairs), per channel one weight load,
/// two `SXTB16`, four `SMLAD`; 20 instructions for 16 MACs with the loop test. The 12 registers
/// `asm!` can use on Thumb hold the scratch and weight pointers, four accumulators, four
/// data words and two temporaries; `n` and the end pointer live in 8 bytes of stack the loop
/// pushes.
#[inline(never)]
fn mac2x2(groups: &[u32], block: &[u8], n: usize, acc: &mut [i32; 4]) {
    let g = groups.len() / 4;
    if g == 0 || Some(block.len()) < n.checked_add(4 * g) {
        return; // impossible for [`run`]'s arguments; keeps the reads below in bounds
    }
    let ptr = groups.as_ptr();
    let consts: [u32; 2] = [n as u32, ptr.wrapping_add(4 * g) as u32];
    let [mut a00, mut a01, mut a10, mut a11] = *acc;
    // SAFETY: reads the first 4·g words of `groups` (16 bytes per iteration, word-aligned as a
    // `&[u32]` is, so `LDRD` is allowed) and the first 4·g bytes at `block` and at `block + n`,
    // inside `block` (`n + 4g ≤ block.len()`, checked above), and `consts`; the loop stops when
    // the scratch pointer reaches `consts[1]` after `g ≥ 1` iterations. Unaligned `LDR` is
    // allowed on ARMv7-M (CCR.UNALIGN_TRP is 0 out of reset). The 8 bytes pushed below `sp` are
    // popped before the block ends. Registers: only the operands; flags: `cmp`.
    unsafe {
        asm!(
            "ldr {t}, [{k}, #4]",
            "ldr {k}, [{k}]",
            "strd {k}, {t}, [sp, #-8]!",
            "2:",
            "ldrd {xae}, {xao}, [{b}], #8",
            "ldrd {xbe}, {xbo}, [{b}], #8",
            "ldr {t}, [sp]",
            "ldr {t}, [{w}, {t}]",
            "sxtb16 {k}, {t}",
            "sxtb16 {t}, {t}, ror #8",
            "smlad {a10}, {k}, {xae}, {a10}",
            "smlad {a11}, {k}, {xbe}, {a11}",
            "smlad {a10}, {t}, {xao}, {a10}",
            "smlad {a11}, {t}, {xbo}, {a11}",
            "ldr {t}, [{w}], #4",
            "sxtb16 {k}, {t}",
            "sxtb16 {t}, {t}, ror #8",
            "smlad {a00}, {k}, {xae}, {a00}",
            "smlad {a01}, {k}, {xbe}, {a01}",
            "smlad {a00}, {t}, {xao}, {a00}",
            "smlad {a01}, {t}, {xbo}, {a01}",
            "ldr {t}, [sp, #4]",
            "cmp {b}, {t}",
            "bne 2b",
            "add sp, sp, #8",
            b = inout(reg) ptr => _,
            w = inout(reg) block.as_ptr() => _,
            k = inout(reg) consts.as_ptr() => _,
            a00 = inout(reg) a00,
            a01 = inout(reg) a01,
            a10 = inout(reg) a10,
            a11 = inout(reg) a11,
            t = out(reg) _,
            xae = out(reg) _,
            xao = out(reg) _,
            xbe = out(reg) _,
            xbo = out(reg) _,
            options(readonly),
        );
    }
    *acc = [a00, a01, a10, a11];
}

/// The DSP kernel on arguments checked by [`super::conv2d_s8`] (`g` from `conv_geometry`, slices
/// of the lengths it checked) and `scratch.len() ≥ scratch_words(g.per_out)` (the caller runs
/// the reference otherwise): every output `output[o][p]` (`p = oy·ow + ox`) as the reference
/// computes it.
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
) {
    let k = g.per_out;
    let co = bias.len();
    let ohw = g.oh * g.ow;
    if k == 0 || co == 0 || ohw == 0 {
        return;
    }
    let Some(scratch) = scratch.get_mut(..scratch_words(k)) else {
        return;
    };
    let zp_in = i32::from(q.input_zp);
    let zp_out = i32::from(q.output.zero_point);
    let (act_min, act_max) = activation_range(act, q.output);
    let wb = weights.as_bytes();
    let k4 = k - k % 4;
    let requant = |acc: i32, o: usize| {
        let m = q.multiplier.get(o).unwrap_or(0);
        let s = q.shift.get(o).unwrap_or(0);
        requantize(acc, m, i32::from(s), zp_out, act_min, act_max)
    };
    let mut p = 0;
    while p < ohw {
        let pb = if p + 1 < ohw { p + 1 } else { p };
        im2col::<false>(g, input, zp_in, p / g.ow, p % g.ow, scratch);
        im2col::<true>(g, input, zp_in, pb / g.ow, pb % g.ow, scratch);
        let (groups, tail) = scratch.split_at(k4);
        let mut o = 0;
        while o < co {
            let pair = o + 1 < co;
            let n = if pair { k } else { 0 };
            let Some(block) = wb.get(o * k..o * k + n + k) else {
                return; // impossible: (o + 2)·k ≤ co·k, or o·k + k for the last channel
            };
            let b0 = bias.get(o).unwrap_or(0);
            let b1 = if pair { bias.get(o + 1).unwrap_or(0) } else { b0 };
            let mut acc = [b0, b0, b1, b1];
            mac2x2(groups, block, n, &mut acc);
            let [mut a00, mut a01, mut a10, mut a11] = acc;
            let w0 = block.get(k4..k).unwrap_or(&[]);
            let w1 = block.get(n + k4..n + k).unwrap_or(&[]);
            for ((&t, &c0), &c1) in tail.iter().zip(w0).zip(w1) {
                let (xa, xb) = (i32::from(t as u16 as i16), i32::from((t >> 16) as u16 as i16));
                let (c0, c1) = (i32::from(c0 as i8), i32::from(c1 as i8));
                a00 = a00.wrapping_add(c0 * xa);
                a01 = a01.wrapping_add(c0 * xb);
                a10 = a10.wrapping_add(c1 * xa);
                a11 = a11.wrapping_add(c1 * xb);
            }
            let row0 = o * ohw;
            if let Some(y) = output.get_mut(row0 + p) {
                *y = requant(a00, o);
            }
            if pb != p {
                if let Some(y) = output.get_mut(row0 + pb) {
                    *y = requant(a01, o);
                }
            }
            if pair {
                let row1 = row0 + ohw;
                if let Some(y) = output.get_mut(row1 + p) {
                    *y = requant(a10, o + 1);
                }
                if pb != p {
                    if let Some(y) = output.get_mut(row1 + pb) {
                        *y = requant(a11, o + 1);
                    }
                }
            }
            o += 2;
        }
        p += 2;
    }
}
