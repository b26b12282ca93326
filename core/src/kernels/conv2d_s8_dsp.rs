//! 2-D convolution, int8, CHW, with the Cortex-M4 DSP extension (ARMv7E-M: `thumbv7em-*` only,
//! `cfg(denoiserep_dsp)` from `core/build.rs`).
//!
//! Same result as [`super::conv2d_s8::reference`], bit for bit, on every input the reference
//! accepts: the same accumulator modulo 2^32 (integer additions in another order), then the same
//! requantization and clamp (`quant::requantize_fast`, equal to [`crate::quant::requantize`] on
//! every input, with each channel's constants made once per pixel pair; `RequantizerRight`
//! where it applies). Design (as CMSIS-NN's
//! `arm_convolve_s8` + `arm_nn_mat_mult_kernel_s8_s16`, written afresh for the CHW layout):
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
//!   weight load per channel, two `SXTB16`, and 8 `SMLAD` (16 MACs), 37 instructions per two
//!   groups with the loop test. An odd last channel runs the same loop with its row twice (the second result is
//!   dropped).
//! - **K tail**: the `K mod 4` taps past the last whole group sit in one more group, in the same
//!   order, whose padded taps are zeroed after each im2col. [`pairs`] runs that group in the
//!   assembly too (the weight bytes past `K` are the next row's and meet zeros) for every
//!   channel pair whose padded reads stay inside the weights; the rest (the last pair when `K
//!   mod 4 ≠ 0, an odd last channel) add the tail in Rust.
//! - **Requantization**: [`pairs`] uses `quant::RequantizerRight` (one `SMLAL`, every channel
//!   with `m ≥ 0` and `shift ∈ [−31, −1]`) and `SSAT` for a full int8 range; otherwise
//!   `quant::requantize_fast`. An odd last pixel pairs with the one before it (rewriting its
//!   outputs with the same values); only a 1-pixel layer runs a pixel twice.
//! - 1×1 layers run `conv1x1_s8_dsp.rs` first (4 pixels × 1 channel) when the scratch is its
//!   size; this kernel takes them otherwise.
//!
//! Scratch: `4·⌈K/4⌉` words for `K = ci·kh·kw` (2·K i16 values, the last group padded) —
//! [`scratch_words`]. With less, the caller runs the reference instead.
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

use super::linear_s8_dsp::{sxtab16, sxtab16_ror8};
use super::params::PerChannelQuant;
use super::{tap_range, ConvGeometry};
use crate::quant::{activation_range, requantize_fast, OutputRange, Requantizer, RequantizerRight};
use crate::tensor::{Activation, I32Data, I8Data};

/// Scratch words the DSP kernel needs for patches of `per_out = ci·kh·kw` taps: `4·⌈K/4⌉`
/// (two pixels' patches of i16, two values per word, the last group padded to 4 taps).
pub(crate) const fn scratch_words(per_out: usize) -> usize {
    match super::conv2d_s8::scratch_words_for_patch(per_out) {
        Some(words) => words,
        None => usize::MAX, // never: `per_out` is a checked product of slice lengths
    }
}

/// Halfword step from tap `j` to tap `j + 1` in the scratch, by `j mod 4`: taps `0, 1, 2, 3` of a
/// group sit at halfwords `0, 2, 1, 3` of the pixel's two words, the next group 8 halfwords on.
const STEP: [usize; 4] = [2, usize::MAX, 2, 5];

/// One pixel's patch being written, tap after tap.
struct Patch<'a> {
    /// The scratch as halfwords.
    buf: &'a mut [u16],
    /// Halfword of the next tap.
    at: usize,
    /// Index of the next tap.
    j: usize,
}

impl Patch<'_> {
    /// Appends tap value `v` (in `[−255, 255]`).
    #[inline(always)]
    fn push(&mut self, v: i32) {
        if let Some(d) = self.buf.get_mut(self.at) {
            *d = v as u16;
        }
        self.at = self.at.wrapping_add(STEP[self.j % 4]);
        self.j += 1;
    }

    /// Appends `n` zero taps (padding).
    #[inline(always)]
    fn zeros(&mut self, n: usize) {
        for _ in 0..n {
            self.push(0);
        }
    }
}

/// The input taps of an unpadded patch in order (`i`, `ky`, `kx`): `kw` consecutive values per
/// row, `kh` rows `w` apart per channel, channels `h·w` apart.
struct Cursor {
    /// Index of the next tap in the input.
    at: usize,
    /// Taps left in the current row, rows left in the current channel.
    left: usize,
    rows: usize,
    kw: usize,
    kh: usize,
    /// `w − kw`: from past a row's last tap to the next row's first.
    row_skip: usize,
    /// `h·w − kh·w`: from past a channel's last row to the next channel's first.
    plane_skip: usize,
}

impl Cursor {
    /// The next tap's input value (0 past the end of `input`, which a checked geometry never
    /// reaches).
    #[inline(always)]
    fn next(&mut self, input: &[i8]) -> i32 {
        if self.left == 0 {
            self.left = self.kw;
            self.at += self.row_skip;
            self.rows -= 1;
            if self.rows == 0 {
                self.rows = self.kh;
                self.at += self.plane_skip;
            }
        }
        self.left -= 1;
        let v = input.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        i32::from(v)
    }
}

/// The halfword of tap `j` of pixel `A` (`B` is 4 halfwords on) in the scratch.
#[inline(always)]
fn tap_at(j: usize) -> usize {
    let r = j % 4;
    8 * (j / 4) + ((r & 1) << 1) + (r >> 1)
}

/// Both patches at once for a kernel 3 taps wide at horizontal stride `S` (1 or 2), when `B` is
/// the pixel right of `A` on the same output row and neither has a padded tap (the interior of a
/// 3×3 convolution): per kernel row `(i, ky)` one unaligned 32-bit load of the input bytes
/// `r0 r1 r2 r3` (and `r4` for stride 2) — `A`'s taps are `r0 r1 r2`, `B`'s `r1 r2 r3` at stride
/// 1 and `r2 r3 r4` at stride 2 — widened with the input offset `off = −zp_in` (both halfwords)
/// by two `SXTAB16`, then six halfword stores at [`tap_at`]`(j..j + 3)` (`B` 4 halfwords on),
/// four rows per step with constant offsets. About 2 instructions per tap value, against ≈ 17
/// for the generic walks. Returns `false` (writing nothing) when the case does not apply.
#[inline(never)]
fn im2col_pair_k3<const S: usize>(
    g: &ConvGeometry,
    input: &[i8],
    off: u32,
    (ay, ax): (usize, usize),
    (by, bx): (usize, usize),
    buf: &mut [u16],
) -> bool {
    let ConvGeometry {
        ci,
        h,
        w,
        win,
        per_out,
        ..
    } = *g;
    if win.kw != 3 || win.sw != S || by != ay || bx != ax + 1 || ci == 0 || win.kh == 0 {
        return false;
    }
    let kh = win.kh;
    let (ky_lo, ky_hi, y0) = tap_range(ay, win.sh, win.pad_top, kh, h);
    let (kx_lo, kx_hi, x0) = tap_range(ax, S, win.pad_left, 3, w);
    // `A` unpadded: every row and column of its window inside; `B`'s window is `S` columns on.
    if ky_lo != 0 || ky_hi != kh || kx_lo != 0 || kx_hi != 3 || y0 < 0 || x0 < 0 {
        return false;
    }
    let (y0, x0) = (y0 as usize, x0 as usize);
    // Bytes read per row: 4, or 5 at stride 2 (`B`'s window ends there).
    let span = 3 + S;
    if !(S == 1 || S == 2) || x0 + span > w {
        return false;
    }
    let hw = h * w;
    let first = y0 * w + x0;
    // The last kernel row's bytes end here; every other row's end before it.
    let last_end = first + (ci - 1) * hw + (kh - 1) * w + span;
    if last_end > input.len() || buf.len() < 8 * per_out.div_ceil(4) || per_out != 3 * kh * ci {
        return false; // impossible for a checked geometry
    }
    let base = input.as_ptr();
    let out = buf.as_mut_ptr();
    // Kernel rows in patch order: `(i, ky)`, `w` apart within a channel, then on to the next
    // channel's first row.
    let plane_step = hw - (kh - 1) * w;
    let (mut at, mut ky) = (first, 0usize);
    let mut load_row = || {
        // SAFETY: every row start is `first + i·hw + ky·w` with `i < ci`, `ky < kh` (the walk
        // below visits exactly `ci·kh` rows), so its `span` bytes end at or before `last_end ≤
        // input.len()`; unaligned reads are what `read_unaligned` is for (one `LDR` on ARMv7-M).
        let t = u32::from_le(unsafe { core::ptr::read_unaligned(base.add(at).cast::<u32>()) });
        // `r4 − zp_in` (stride 2 only), in the low halfword.
        let r4 = if S == 2 {
            // SAFETY: as above, `at + 4 < at + span ≤ input.len()`.
            sxtab16(off, u32::from(unsafe { *base.add(at + 4) } as u8))
        } else {
            0
        };
        ky += 1;
        if ky == kh {
            ky = 0;
            at += plane_step;
        } else {
            at += w;
        }
        (sxtab16(off, t), sxtab16_ror8(off, t), r4)
    };
    // One kernel row's taps `j, j + 1, j + 2` at the halfwords `$h0, $h1, $h2` (their
    // [`tap_at`]) of `$dst`: `A` gets `r0 r1 r2`, `B` (4 halfwords on) `r1 r2 r3` at stride 1
    // and `r2 r3 r4` at stride 2.
    macro_rules! store_row {
        ($dst:expr, $row:expr, $h0:expr, $h1:expr, $h2:expr) => {{
            let (e, o, r4): (u32, u32, u32) = $row;
            let (r0, r1, r2, r3) = (e as u16, o as u16, (e >> 16) as u16, (o >> 16) as u16);
            let (b0, b1, b2) = if S == 2 {
                (r2, r3, r4 as u16)
            } else {
                (r1, r2, r3)
            };
            // SAFETY: the caller's `$dst + $hk + 4` is below `8·⌈per_out/4⌉ ≤ buf.len()`:
            // `tap_at(j') + 4 ≤ 8·⌊j'/4⌋ + 7` for every tap `j' < per_out` (checked above).
            unsafe {
                *$dst.add($h0) = r0;
                *$dst.add($h0 + 4) = b0;
                *$dst.add($h1) = r1;
                *$dst.add($h1 + 4) = b1;
                *$dst.add($h2) = r2;
                *$dst.add($h2 + 4) = b2;
            }
        }};
    }
    let rows = ci * kh;
    // Four rows (12 taps, 3 groups, 24 halfwords) per step: the taps' halfwords are constants.
    for block in 0..rows / 4 {
        // SAFETY: `24·block + 24 ≤ 8·(3·rows/4) ≤ 8·⌈per_out/4⌉ ≤ buf.len()` (pointer arithmetic
        // inside `buf`).
        let dst = unsafe { out.add(24 * block) };
        store_row!(dst, load_row(), 0, 2, 1);
        store_row!(dst, load_row(), 3, 8, 10);
        store_row!(dst, load_row(), 9, 11, 16);
        store_row!(dst, load_row(), 18, 17, 19);
    }
    // The 0–3 rows left, taps from `j = 12·⌊rows/4⌋` on.
    let mut j = 12 * (rows / 4);
    for _ in 0..rows % 4 {
        store_row!(out, load_row(), tap_at(j), tap_at(j + 1), tap_at(j + 2));
        j += 3;
    }
    true
}

/// Both patches at once when neither pixel has a padded tap: row by row (`kw` taps of channel
/// `i`, kernel row `ky`), pixel `A`'s tap `j` at halfword `tap_at(j)` and `B`'s 4 halfwords on,
/// sharing the walk. Returns `false` (and writes nothing) when a patch has a padded tap, or for
/// a 1×1 kernel.
#[inline(never)]
fn im2col_pair(
    g: &ConvGeometry,
    input: &[i8],
    zp_in: i32,
    (ay, ax): (usize, usize),
    (by, bx): (usize, usize),
    buf: &mut [u16],
) -> bool {
    let ConvGeometry { ci, h, w, win, .. } = *g;
    let (kh, kw) = (win.kh, win.kw);
    if kh == 1 && kw == 1 {
        return false; // [`im2col`]'s gather in whole groups is faster there
    }
    let unpadded = |oy: usize, ox: usize| {
        let (ky_lo, ky_hi, y0) = tap_range(oy, win.sh, win.pad_top, kh, h);
        let (kx_lo, kx_hi, x0) = tap_range(ox, win.sw, win.pad_left, kw, w);
        (ky_lo == 0 && ky_hi == kh && kx_lo == 0 && kx_hi == kw)
            .then(|| (y0 as usize) * w + x0 as usize)
    };
    let (Some(a0), Some(b0)) = (unpadded(ay, ax), unpadded(by, bx)) else {
        return false;
    };
    let hw = h * w;
    let (mut at, mut j) = (0usize, 0usize);
    for i in 0..ci {
        for ky in 0..kh {
            let row = i * hw + ky * w;
            let (Some(ra), Some(rb)) = (
                input.get(row + a0..row + a0 + kw),
                input.get(row + b0..row + b0 + kw),
            ) else {
                return true; // impossible: an unpadded patch lies inside the input
            };
            for (&xa, &xb) in ra.iter().zip(rb) {
                if let Some([da, _, _, _, db]) = buf.get_mut(at..at + 5) {
                    *da = (i32::from(xa) - zp_in) as u16;
                    *db = (i32::from(xb) - zp_in) as u16;
                }
                at = at.wrapping_add(STEP[j % 4]);
                j += 1;
            }
        }
    }
    true
}

/// Writes the patch of output pixel `(oy, ox)` into the halfword view `buf` of the scratch as
/// pixel `A` (`slot` 0) or `B` (`slot` 4): tap `j` at halfword `tap_at(j) + slot`.
///
/// Not inlined: on its own it keeps its cursor and pointers in registers (inlined into [`run`],
/// LLVM spilled them at every tap).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn im2col(
    g: &ConvGeometry,
    input: &[i8],
    zp_in: i32,
    oy: usize,
    ox: usize,
    slot: usize,
    buf: &mut [u16],
) {
    let ConvGeometry { ci, h, w, win, .. } = *g;
    let (kh, kw) = (win.kh, win.kw);
    let (ky_lo, ky_hi, y0) = tap_range(oy, win.sh, win.pad_top, kh, h);
    let (kx_lo, kx_hi, x0) = tap_range(ox, win.sw, win.pad_left, kw, w);
    let hw = h * w;
    if kh == 1 && kw == 1 {
        // 1×1 (never padded: a pad is below its kernel side): tap i is input[i][iy][ix], a
        // gather at stride h·w; whole groups as two packed words each.
        let at = (y0 as usize) * w + x0 as usize;
        let mut i = 0;
        for group in buf.chunks_exact_mut(8).take(ci / 4) {
            let x =
                |d: usize| i32::from(input.get((i + d) * hw + at).copied().unwrap_or(0)) - zp_in;
            let (x0, x1, x2, x3) = (x(0), x(1), x(2), x(3));
            if let Some([e0, e1, o0, o1]) = group.get_mut(slot..slot + 4) {
                (*e0, *e1, *o0, *o1) = (x0 as u16, x2 as u16, x1 as u16, x3 as u16);
            }
            i += 4;
        }
        let mut patch = Patch {
            buf,
            at: 8 * (i / 4) + slot,
            j: i,
        };
        while i < ci {
            let v = input.get(i * hw + at).copied().unwrap_or(0);
            patch.push(i32::from(v) - zp_in);
            i += 1;
        }
        return;
    }
    if ky_lo == 0 && ky_hi == kh && kx_lo == 0 && kx_hi == kw {
        // No padded tap: walk the patch with a cursor, whole groups as four halfwords each.
        let mut cur = Cursor {
            at: (y0 as usize) * w + x0 as usize,
            left: kw,
            rows: kh,
            kw,
            kh,
            row_skip: w - kw,
            plane_skip: hw - kh * w,
        };
        let groups = g.per_out / 4;
        for group in buf.chunks_exact_mut(8).take(groups) {
            let x0 = cur.next(input) - zp_in;
            let x1 = cur.next(input) - zp_in;
            let x2 = cur.next(input) - zp_in;
            let x3 = cur.next(input) - zp_in;
            if let Some([e0, e1, o0, o1]) = group.get_mut(slot..slot + 4) {
                (*e0, *e1, *o0, *o1) = (x0 as u16, x2 as u16, x1 as u16, x3 as u16);
            }
        }
        let mut patch = Patch {
            buf,
            at: 8 * groups + slot,
            j: 4 * groups,
        };
        for _ in 0..g.per_out % 4 {
            patch.push(cur.next(input) - zp_in);
        }
        return;
    }
    let mut patch = Patch {
        buf,
        at: slot,
        j: 0,
    };
    // Taps kx_lo..kx_hi of a row read x0 + kx, inside the row (tap_range).
    let len = kx_hi - kx_lo;
    let (pad_above, pad_below) = (ky_lo * kw, (kh - ky_hi) * kw);
    let (pad_left, pad_right) = (kx_lo, kw - kx_hi);
    let first = ((y0 + ky_lo as isize) as usize) * w + (x0 + kx_lo as isize) as usize;
    for i in 0..ci {
        patch.zeros(pad_above);
        let mut at = i * hw + first;
        for _ in ky_lo..ky_hi {
            patch.zeros(pad_left);
            for &x in input.get(at..at + len).unwrap_or(&[]) {
                patch.push(i32::from(x) - zp_in);
            }
            patch.zeros(pad_right);
            at += w;
        }
        patch.zeros(pad_below);
    }
}

/// One group (4 taps) of [`mac2x2`] in assembly: both pixels' pairs (two `LDRD`), then per
/// channel one weight word (row `r1` at `+ n`, `n` from the stack slot), two `SXTB16` and four
/// `SMLAD`.
macro_rules! group2x2 {
    () => {
        concat!(
            "ldrd {xae}, {xao}, [{b}], #8\n",
            "ldrd {xbe}, {xbo}, [{b}], #8\n",
            "ldr {t}, [sp]\n",
            "ldr {t}, [{w}, {t}]\n",
            "sxtb16 {k}, {t}\n",
            "sxtb16 {t}, {t}, ror #8\n",
            "smlad {a10}, {k}, {xae}, {a10}\n",
            "smlad {a11}, {k}, {xbe}, {a11}\n",
            "smlad {a10}, {t}, {xao}, {a10}\n",
            "smlad {a11}, {t}, {xbo}, {a11}\n",
            "ldr {t}, [{w}], #4\n",
            "sxtb16 {k}, {t}\n",
            "sxtb16 {t}, {t}, ror #8\n",
            "smlad {a00}, {k}, {xae}, {a00}\n",
            "smlad {a01}, {k}, {xbe}, {a01}\n",
            "smlad {a00}, {t}, {xao}, {a00}\n",
            "smlad {a01}, {t}, {xbo}, {a01}\n",
        )
    };
}

/// The loop of [`mac2x2`] from `$b` (scratch) and `$w` (weights), advancing both, until `$b`
/// reaches `$consts[1]`; `$consts[0]` is `n`. `$($step)*`: the body, one or two [`group2x2`].
macro_rules! mac2x2_loop {
    ($b:ident, $w:ident, $a:ident, $consts:ident, $($step:tt)*) => {
        asm!(
            "ldr {t}, [{k}, #4]",
            "ldr {k}, [{k}]",
            "strd {k}, {t}, [sp, #-8]!",
            "2:",
            $($step)*
            "ldr {t}, [sp, #4]",
            "cmp {b}, {t}",
            "bne 2b",
            "add sp, sp, #8",
            b = inout(reg) $b,
            w = inout(reg) $w,
            k = inout(reg) $consts.as_ptr() => _,
            a00 = inout(reg) $a[0],
            a01 = inout(reg) $a[1],
            a10 = inout(reg) $a[2],
            a11 = inout(reg) $a[3],
            t = out(reg) _,
            xae = out(reg) _,
            xao = out(reg) _,
            xbe = out(reg) _,
            xbo = out(reg) _,
            options(readonly),
        )
    };
}

/// One pass of 2 channels × 2 pixels over the whole groups of the scratch:
/// `acc = [r0·A, r0·B, r1·A, r1·B]` += `Σ_{j < 4G} W[r][j] · patch[P][j]`, where row `r0` is
/// `block[..4G]`, row `r1` is `block[n..n + 4G]` (`n = K`, or 0 to repeat row `r0`) and `G =
/// groups.len() / 4` (the scratch layout of the module docs).
///
/// Hand-written loop ([`group2x2`]): per group two `LDRD` (both pixels' pairs), per channel one
/// weight load, two `SXTB16`, four `SMLAD`; two groups per iteration, 37 instructions for 32
/// MACs with the loop test (then one group alone if the count is odd). The 12 registers `asm!`
/// can use on Thumb hold the scratch and weight pointers, four accumulators, four data words
/// and two temporaries; `n` and the end pointer live in 8 bytes of stack the loop pushes.
#[inline(always)]
fn mac2x2(groups: &[u32], block: &[u8], n: usize, acc: &mut [i32; 4]) {
    let g = groups.len() / 4;
    if g == 0 || Some(block.len()) < n.checked_add(4 * g) {
        return; // impossible for [`run`]'s arguments; keeps the reads below in bounds
    }
    let mut b = groups.as_ptr();
    let mut w = block.as_ptr();
    let even = g - g % 2;
    // SAFETY (both blocks): together they read the first 4·g words of `groups` (16 bytes per
    // group, word-aligned as a `&[u32]` is, so `LDRD` is allowed) and the first 4·g bytes at
    // `block` and at `block + n`, inside `block` (`n + 4g ≤ block.len()`, checked above), and
    // `consts`; the loops stop when the scratch pointer reaches `consts[1]`, after `even` (≥ 2,
    // even) groups, then after 1 more. Unaligned `LDR` is allowed on ARMv7-M (CCR.UNALIGN_TRP
    // is 0 out of reset). The 8 bytes pushed below `sp` are popped before each block ends.
    // Registers: only the operands; flags: `cmp`.
    if even > 0 {
        let consts: [u32; 2] = [n as u32, b.wrapping_add(4 * even) as u32];
        unsafe { mac2x2_loop!(b, w, acc, consts, group2x2!(), group2x2!(),) };
    }
    if g > even {
        let consts: [u32; 2] = [n as u32, b.wrapping_add(4) as u32];
        unsafe { mac2x2_loop!(b, w, acc, consts, group2x2!(),) };
    }
    let _ = (b, w); // the pointers past the last group: not needed
}

/// The per-layer data [`pairs`] reads.
struct Layer<'a> {
    /// `K`, and `4·⌈K/4⌉` (the bytes [`mac2x2`] reads per row with the padded last group).
    k: usize,
    k_padded: usize,
    /// Output pixels per channel.
    ohw: usize,
    weights: &'a [u8],
    bias: I32Data<'a>,
    q: &'a PerChannelQuant<'a>,
    range: OutputRange,
}

/// The channel pairs `(o, o + 1)` of the pixel pair `(p, p + 1)` whose patches are in `groups`
/// (all `⌈K/4⌉` groups, the padded taps of the last one 0), from `o = 0` up to the first pair
/// whose second row's padded last group would read past the weights: `output[o][p]`,
/// `output[o][p + 1]`, `output[o + 1][p]`, `output[o + 1][p + 1]`. Returns the number of
/// channels done (even; 0 when a slice is shorter than the layer's shapes say, which a checked
/// geometry never gives). The weight bytes past `K` in a padded group are the next row's: they
/// meet the zero taps and add nothing. `FULL`: the clamp is the whole int8 range.
///
/// Raw pointers walk the per-channel data (bias, multiplier, shift, outputs), their bounds
/// checked once before the loop (with slices LLVM kept bounds checks and spills per pair);
/// requantization by [`RequantizerRight`] where it applies.
#[inline(never)]
fn pairs<const FULL: bool>(l: &Layer<'_>, groups: &[u32], p: usize, output: &mut [i8]) -> usize {
    let co = l.bias.len();
    let Some(last) = l.k_padded.checked_add(l.k) else {
        return 0;
    };
    // Pairs whose two padded rows lie inside the weights: all `⌊co/2⌋`, or all but the last.
    let mut n = co / 2;
    if n > 0 && (2 * n - 2) * l.k + last > l.weights.len() {
        n -= 1;
    }
    if n == 0
        || groups.len() != l.k_padded
        || l.q.multiplier.len() < 2 * n
        || l.q.shift.len() < 2 * n
        || output.len() < (2 * n - 1) * l.ohw + p + 2
    {
        return 0;
    }
    let range = &l.range;
    let (bias, mult, shift) = (
        l.bias.as_bytes().as_ptr(),
        l.q.multiplier.as_bytes().as_ptr(),
        l.q.shift.as_bytes().as_ptr(),
    );
    let y = output.as_mut_ptr();
    for i in 0..n {
        let o = 2 * i;
        // SAFETY: `o + 1 < 2n ≤ co = bias.len()`, `2n ≤ multiplier.len()`, `2n ≤
        // shift.len()` (checked above): bytes `4o..4o + 8` of the bias and multiplier bytes and
        // bytes `o, o + 1` of the shifts are inside them (unaligned: a model file's data).
        let word = |base: *const u8, c: usize| unsafe {
            i32::from_le(core::ptr::read_unaligned(base.add(4 * c).cast::<i32>()))
        };
        // SAFETY: as above.
        let sh = |c: usize| unsafe { i32::from(*shift.add(c).cast::<i8>()) };
        let (b0, b1) = (word(bias, o), word(bias, o + 1));
        let Some(block) = l.weights.get(o * l.k..o * l.k + last) else {
            return o; // impossible: `(o + 1)·k + k_padded ≤ weights.len()` for `o < 2n`
        };
        let mut acc = [b0, b0, b1, b1];
        mac2x2(groups, block, l.k, &mut acc);
        let [a00, a01, a10, a11] = acc;
        let (m0, m1) = (word(mult, o), word(mult, o + 1));
        let (s0, s1) = (sh(o), sh(o + 1));
        let [y00, y01] = requantize2(a00, a01, m0, s0, range, FULL);
        let [y10, y11] = requantize2(a10, a11, m1, s1, range, FULL);
        // SAFETY: `o·ohw + p + 1` and `(o + 1)·ohw + p + 1` are at most `(2n − 1)·ohw + p + 1 <
        // output.len()` (checked above).
        unsafe {
            let r0 = y.add(o * l.ohw + p);
            *r0 = y00;
            *r0.add(1) = y01;
            let r1 = r0.add(l.ohw);
            *r1 = y10;
            *r1.add(1) = y11;
        }
    }
    2 * n
}

/// Two outputs of one channel: `requantize(a, m, s, …)`, by [`RequantizerRight`] and (`full`)
/// [`OutputRange::finish_full`] where they apply.
#[inline(always)]
fn requantize2(a: i32, b: i32, m: i32, s: i32, range: &OutputRange, full: bool) -> [i8; 2] {
    match RequantizerRight::new(m, s) {
        Some(r) if full => [range.finish_full(r.apply(a)), range.finish_full(r.apply(b))],
        Some(r) => [range.finish(r.apply(a)), range.finish(r.apply(b))],
        None => requantize2_slow(a, b, m, s, range),
    }
}

/// [`requantize2`] where [`RequantizerRight`] does not apply.
#[cold]
#[inline(never)]
fn requantize2_slow(a: i32, b: i32, m: i32, s: i32, range: &OutputRange) -> [i8; 2] {
    let r = Requantizer::new(m, s);
    [requantize_fast(a, &r, range), requantize_fast(b, &r, range)]
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
    // −zp_in ∈ [−127, 128] in both halfwords (for `SXTAB16`).
    let off = u32::from((-zp_in) as u16) * 0x0001_0001;
    let zp_out = i32::from(q.output.zero_point);
    let (act_min, act_max) = activation_range(act, q.output);
    let wb = weights.as_bytes();
    let k4 = k - k % 4;
    let range = OutputRange::new(zp_out, act_min, act_max);
    // Channel `o`'s requantization constants, made once per channel and pixel pair and applied
    // to both pixels (`requantize_fast` equals `requantize` on every input).
    let requantizer = |o: usize| {
        let m = q.multiplier.get(o).unwrap_or(0);
        let s = q.shift.get(o).unwrap_or(0);
        Requantizer::new(m, i32::from(s))
    };
    let layer = Layer {
        k,
        k_padded: 4 * k.div_ceil(4),
        ohw,
        weights: wb,
        bias,
        q,
        range,
    };
    let full = range.is_full();
    let mut p = 0;
    while p < ohw {
        // An odd last pixel pairs with the one before it (whose outputs are rewritten with the
        // same values) when there are 2 pixels.
        if p + 1 == ohw && ohw >= 2 {
            p -= 1;
        }
        let pb = if p + 1 < ohw { p + 1 } else { p };
        {
            // SAFETY: u16 has no stricter alignment than u32 and every bit pattern is valid for
            // both, so the middle part is the whole slice (no head or tail).
            let (_, buf, _) = unsafe { scratch.align_to_mut::<u16>() };
            let (a, b) = ((p / g.ow, p % g.ow), (pb / g.ow, pb % g.ow));
            if !im2col_pair_k3::<1>(g, input, off, a, b, buf)
                && !im2col_pair_k3::<2>(g, input, off, a, b, buf)
                && !im2col_pair(g, input, zp_in, a, b, buf)
            {
                im2col(g, input, zp_in, a.0, a.1, 0, buf);
                im2col(g, input, zp_in, b.0, b.1, 4, buf);
            }
            // The padded taps `K..4⌈K/4⌉` of the last group are 0 for both pixels, so that
            // [`pairs`] can run the last group whole.
            for t in k..layer.k_padded {
                if let Some(h) = buf.get_mut(tap_at(t)) {
                    *h = 0;
                }
                if let Some(h) = buf.get_mut(tap_at(t) + 4) {
                    *h = 0;
                }
            }
        }
        // Channel pairs with the padded group in assembly while both rows' padded reads are
        // inside the weights (both pixels distinct), then the rest below.
        let done = match (pb == p + 1, full) {
            (true, true) => pairs::<true>(&layer, scratch, p, output),
            (true, false) => pairs::<false>(&layer, scratch, p, output),
            (false, _) => 0,
        };
        let groups = scratch.get(..k4).unwrap_or(&[]);
        // The K mod 4 tail taps of pixels A and B, from the last (padded) group.
        let mut tail = [(0i32, 0i32); 3];
        if let Some(last) = scratch.get(k4..k4 + 4) {
            for (t, v) in tail.iter_mut().enumerate().take(k % 4) {
                let word = |i: usize| last.get(i).copied().unwrap_or(0);
                let half = |at: usize| {
                    let wd = word(at / 2);
                    i32::from((if at.is_multiple_of(2) { wd } else { wd >> 16 }) as u16 as i16)
                };
                *v = (half(tap_at(t)), half(tap_at(t) + 4));
            }
        }
        let tail = tail.get(..k % 4).unwrap_or(&[]);
        let mut o = done;
        while o < co {
            let pair = o + 1 < co;
            let n = if pair { k } else { 0 };
            let Some(block) = wb.get(o * k..o * k + n + k) else {
                return; // impossible: (o + 2)·k ≤ co·k, or o·k + k for the last channel
            };
            let b0 = bias.get(o).unwrap_or(0);
            let b1 = if pair {
                bias.get(o + 1).unwrap_or(0)
            } else {
                b0
            };
            let mut acc = [b0, b0, b1, b1];
            mac2x2(groups, block, n, &mut acc);
            let [mut a00, mut a01, mut a10, mut a11] = acc;
            let w0 = block.get(k4..k).unwrap_or(&[]);
            let w1 = block.get(n + k4..n + k).unwrap_or(&[]);
            for ((&(xa, xb), &c0), &c1) in tail.iter().zip(w0).zip(w1) {
                let (c0, c1) = (i32::from(c0 as i8), i32::from(c1 as i8));
                a00 = a00.wrapping_add(c0 * xa);
                a01 = a01.wrapping_add(c0 * xb);
                a10 = a10.wrapping_add(c1 * xa);
                a11 = a11.wrapping_add(c1 * xb);
            }
            let row0 = o * ohw;
            let r0 = requantizer(o);
            if let Some(y) = output.get_mut(row0 + p) {
                *y = requantize_fast(a00, &r0, &range);
            }
            if pb != p {
                if let Some(y) = output.get_mut(row0 + pb) {
                    *y = requantize_fast(a01, &r0, &range);
                }
            }
            if pair {
                let row1 = row0 + ohw;
                let r1 = requantizer(o + 1);
                if let Some(y) = output.get_mut(row1 + p) {
                    *y = requantize_fast(a10, &r1, &range);
                }
                if pb != p {
                    if let Some(y) = output.get_mut(row1 + pb) {
                        *y = requantize_fast(a11, &r1, &range);
                    }
                }
            }
            o += 2;
        }
        p += 2;
    }
}
