//! Depthwise 3×3 convolution, int8, CHW, strides 1 or 2, on planes up to [`MAX_PADDED_W`]
//! padded columns, with the Cortex-M4 DSP extension (ARMv7E-M: `thumbv7em-*` only,
//! `cfg(denoiserep_dsp)`): the "strip" kernel. Its i16 buffer is the caller's scratch
//! (`RING_WORDS` = 140 words, 560 B, from the arena: `ops::depthwise_conv2d::scratch_bytes`).
//!
//! Same result as [`super::depthwise_conv2d_s8_reference`], bit for bit, on every input: per
//! output `acc = bias[c] + Σ_{ky,kx} W[c][ky][kx] · (x[c][iy][ix] − zp_in)` over the taps inside
//! the input (padded taps add 0), then `quant::requantize(acc, m[c], shift[c], zp_out, act_min,
//! act_max)`. A channel whose constants are outside the fast domain below is left to the caller
//! (`depthwise_conv2d_s8_dsp::run`: the word kernel or the Conv2d loop on its plane alone).
//!
//! Design (per channel, `h × w` plane, padded row `Wp = pad_left + w + pad_right`):
//!
//! - **Widened rows.** Each input row is widened once to i16 `x − zp_in` (`∈ [−255, 255]`)
//!   at column `pad_left` of a zero-bordered row (the padding stays 0 for the whole call), so
//!   every output is 9 taps with no border logic; a padded row is a row of zeros. Widening: per
//!   4 input bytes one load, two `SXTAB16` (`− zp_in` added while widening), `PKHBT`, `PKHTB`
//!   and two or four stores.
//! - **Ring** (any plane up to [`MAX_PADDED_W`]): rows of a fixed pitch `PITCH` = 56
//!   halfwords, row `iy` in slot `iy mod 3` and, when `iy mod 3 < 2`, also in slot
//!   `iy mod 3 + 3`: the three rows `iy0 … iy0 + 2` of an output row are then slots
//!   `s, s + 1, s + 2` (`s = iy0 mod 3`), so the assembly addresses all three from one pointer
//!   with immediate offsets (112, 224 bytes). The full blocks of a row, then the last 4
//!   outputs again when 2 or 3 are left (or, for rows of fewer than 4 outputs, a block into a
//!   spare word of which the first `ow` bytes are copied out), or the last one alone.
//! - **Flat** (stride 1, `Wp ∈ 5..=10`, when the plane fits the scratch: ds-cnn's 25×5,
//!   mobilenet's 6×6 and 3×3): the whole padded plane at pitch `Wp`, and the blocks run over
//!   the flat output positions `f = oy·Wp + ox` in one loop (the `Wp − ow` positions per row
//!   past the row are computed and dropped) into a byte buffer after the plane; each row's
//!   `ow` bytes are copied out. No per-row work but the copy.
//! - **Small planes** (rows of 2 or 3 outputs, strides 1–2, when the padded plane and 7
//!   halfwords fit the scratch: mobilenet's 6×6 at stride 2 and 3×3): the whole padded plane
//!   at pitch `Wp` as on the flat path, widened by one assembly loop over all rows
//!   ([`widen_plane`]: exactly `w` halfwords per row, 4-byte chunks then a pair and/or a byte),
//!   then one 3-lane block per output row ([`small_row`]: the window's three rows from one
//!   pointer stepped by the pitch, per kernel row 2 weight loads, 4 loads, 3 `SMLAD` and 3
//!   `SMLABB`/`SMLATB`; 62 instructions with the requantization), its word stored whole while
//!   4 bytes fit the channel's output (the byte past the row belongs to a later row, which
//!   overwrites it), else byte by byte. No wasted lanes on 3-output rows, no per-row setup and
//!   no copy-out; its own non-inlined channel loop ([`small_run`]).
//! - **MACs, four outputs per block.** The weights are doubled (`2k ∈ [−256, 254]` fits i16)
//!   and packed per kernel row as `wa = (2k0, 2k1)`, `wb = (2k2, ·)` (only the bottom half of
//!   `wb` is read; [`constants`] packs all six words in 19 instructions); the accumulators start
//!   at `2 · bias`, so the block computes `2 · acc` (exact: the fast domain has
//!   `|bias| ≤ 2^29`, `|Σ| ≤ 9 · 128 · 255`, so `|2 · acc| < 2^31`). Outputs `ox … ox + 3`
//!   at stride 1, per kernel row (pairs `Pj = (x_j, x_{j+1})`, halfword loads at any column):
//!   `a0 += SMLAD(P0, wa) + x2·2k2`, `a1 += SMLAD(P1, wa) + x3·2k2`,
//!   `a2 += SMLAD(P2, wa) + x4·2k2`, `a3 += SMLAD(P3, wa) + x5·2k2` from the five loads
//!   `P0 … P4` (`SMLABB`/`SMLATB` for the third tap): 2 weight loads + 5 loads + 8 MACs per
//!   kernel row, 46 instructions per block with the bias. At stride 2 the same count from the
//!   aligned pairs `P0, P2, P4, P6, P8`. A single output: 6 instructions per kernel row.
//! - **Requantization**, per output 4 instructions, exact on the fast domain (`m ≥ 0`,
//!   `shift ∈ [−20, −1]`, `|bias| ≤ 2^29`): `SRDHM(acc, m) = ⌊(acc·m + 2^30) / 2^31⌋ =
//!   ⌊(2acc·m + 2^31) / 2^32⌋`, which `SMMLAR` computes from `2acc` while adding
//!   `c = 2^(e−1) + zp_out · 2^e` (`e = −shift`); then `RoundingDivideByPOT(v, e) + zp_out =
//!   (v + c − [v < 0]) >> e` (round half away from zero; `|v + c| < 2^31`), where `[v < 0]`
//!   may be taken as `[acc < 0]` (for `m ≥ 0` they differ only when `v = 0`, and then both
//!   round to 0); then `SSAT #8`. The activation clamp of four outputs at once: packed into a
//!   word (3 `BFI`), `max` with `lo` and `min` with `hi` bytewise (`SSUB8` + `SEL` each),
//!   one store. `min(max(ssat8(u), lo), hi) = min(max(u, lo), hi)` for `lo, hi ∈ [−128, 127]`,
//!   which is `OutputRange::finish` (`u = v + zp_out` cannot saturate here).
//!
//! Instruction budget: 79 per block of 4 outputs (46 MACs + 29 requantization + 4 loop), i.e.
//! ≈ 20 per output, plus the widening (≈ 2.75 per input element with its duplicate) and the
//! per-row (ring) or per-channel (flat) setup: 5.5 (25×5 flat) to 2.8 (48×48) instructions per
//! MAC measured, CMSIS-NN's `arm_depthwise_conv_3x3_s8` 8.3–9.0.
//!
//! The only `unsafe`: the `asm!` blocks, whose reads stay inside the ring or flat plane
//! (proved at each block) and the per-channel constants, and whose writes stay inside the
//! output row or the scratch.

use super::params::PerChannelQuant;
use super::ConvGeometry;
use crate::quant::activation_range;
use crate::tensor::{Activation, I32Data, I8Data};

/// Halfwords per ring row.
const PITCH: usize = super::depthwise_conv2d_s8::STRIP_PITCH_HALFWORDS;
/// Bytes per ring row: the immediate offsets of kernel rows 1 and 2 in the assembly (112, 224)
/// and of the duplicate slot (3 · 112 = 336).
const PITCH_B: usize = 2 * PITCH;
const _: () = assert!(PITCH_B == 112);
/// Ring rows: slots 0, 1, 2 and the duplicates of 0 and 1.
const SLOTS: usize = super::depthwise_conv2d_s8::STRIP_SLOTS;
const _: () = assert!(SLOTS == 5);
/// Widest padded row (`pad_left + w + pad_right`): one more column is read past it (a zero).
pub(crate) const MAX_PADDED_W: usize = super::depthwise_conv2d_s8::STRIP_MAX_PADDED_W;
const _: () = assert!(MAX_PADDED_W < PITCH);
/// Scratch words of the ring.
pub(crate) const RING_WORDS: usize = SLOTS * PITCH / 2;

/// Largest `|bias|` of a fast channel.
const BIAS_MAX: i32 = 1 << 29;
/// Largest right shift `e = −shift` of a fast channel (`|zp_out · 2^e| ≤ 2^27`).
const RIGHT_MAX: i32 = 20;

/// Words of the per-channel constants: six weight words, `2·bias`, `m`, `c`, `e`, `lo4`,
/// `hi4`, the end of the blocks being run (an address, written per run), and a word the
/// partial block of a row narrower than 4 outputs is written to.
const K_WORDS: usize = 14;
/// Index of the block end in the constants.
const K_END: usize = 12;
/// Index of the partial block's output word.
const K_OUT: usize = 13;

/// The ring: `SLOTS × PITCH` halfwords of the caller's (word-aligned) scratch.
struct Ring<'a>(&'a mut [i16]);

/// True when [`run`] handles `g`: a 3×3 kernel (one channel), strides 1 or 2, the padded row at most [`MAX_PADDED_W`] wide.
pub(crate) fn supports(g: &ConvGeometry) -> bool {
    let win = g.win;
    g.ci == 1
        && win.kh == 3
        && win.kw == 3
        && (win.sw == 1 || win.sw == 2)
        && (win.sh == 1 || win.sh == 2)
        && win.pad_left <= 2
        && win.pad_right <= 2
        && g.w <= MAX_PADDED_W - 4
        && win.pad_left + g.w + win.pad_right <= MAX_PADDED_W
}

/// True for a channel in the fast domain (`|bias| ≤ 2^29`, `m ≥ 0`, `shift ∈ [−20, −1]`):
/// [`run`] computes it; the caller runs the others.
#[inline(always)]
pub(crate) fn fast(bias: i32, m: i32, shift: i32) -> bool {
    (-BIAS_MAX..=BIAS_MAX).contains(&bias) && m >= 0 && (-RIGHT_MAX..=-1).contains(&shift)
}

/// The per-call part of the constants: `zp_out`, and the clamp bounds `lo`, `hi` in all four
/// bytes.
type Range = (i32, u32, u32);

/// The per-channel constants of a fast channel (see the module doc), `None` outside the fast
/// domain or if `k` is not 9 bytes. `range = (zp_out, lo4, hi4)`. The doubled weights come
/// from assembly (3 loads, 4 `SXTB16`, 6 packs, 6 `SADD16`): `wa` words `(2k0, 2k1)`,
/// `(2k3, 2k4)`, `(2k6, 2k7)` and `wb` words with `2k2`, `2k5`, `2k8` in their bottom halfword
/// (every kernel reads only that half of `wb`; the top halves hold the doubled sign extension
/// of `k2` and `k8`, −2 or 0, and `2k7`).
#[inline(always)]
fn constants(k: &[u8], bias: i32, m: i32, shift: i32, range: Range) -> Option<[u32; K_WORDS]> {
    if !fast(bias, m, shift) {
        return None;
    }
    let k = <&[u8; 9]>::try_from(k).ok()?;
    let e = -shift;
    let (zp, lo4, hi4) = range;
    let c = (1i32 << (e - 1)) + zp * (1i32 << e);
    let (w0, w1, w2, w3, w4, w5): (u32, u32, u32, u32, u32, u32);
    // SAFETY: reads the 9 bytes of `k` (two unaligned words and a byte; ARMv7-M allows
    // unaligned LDR). Registers: the operands only; flags (SADD16 sets GE).
    unsafe {
        core::arch::asm!(
            "ldr {x}, [{kp}]",
            "ldr {y}, [{kp}, #4]",
            "ldrsb {w5}, [{kp}, #8]",
            "sxtb16 {e}, {x}",
            "sxtb16 {x}, {x}, ror #8",
            "pkhbt {w0}, {e}, {x}, lsl #16",
            "asr {w1}, {e}, #16",
            "asr {x}, {x}, #16",
            "sxtb16 {e}, {y}",
            "sxtb16 {w3}, {y}, ror #8",
            "pkhbt {w2}, {x}, {e}, lsl #16",
            "pkhtb {w4}, {w3}, {e}, asr #16",
            "sadd16 {w0}, {w0}, {w0}",
            "sadd16 {w1}, {w1}, {w1}",
            "sadd16 {w2}, {w2}, {w2}",
            "sadd16 {w3}, {w3}, {w3}",
            "sadd16 {w4}, {w4}, {w4}",
            "sadd16 {w5}, {w5}, {w5}",
            kp = in(reg) k.as_ptr(),
            x = out(reg) _,
            y = out(reg) _,
            e = out(reg) _,
            w0 = out(reg) w0,
            w1 = out(reg) w1,
            w2 = out(reg) w2,
            w3 = out(reg) w3,
            w4 = out(reg) w4,
            w5 = out(reg) w5,
            options(pure, readonly, nostack),
        );
    }
    Some([
        w0,
        w1,
        w2,
        w3,
        w4,
        w5,
        (2 * bias) as u32,
        m as u32,
        c as u32,
        e as u32,
        lo4,
        hi4,
        0,
        0,
    ])
}

/// Widens the `w ≥ 4` input bytes at `s` into halfwords at `d` (and at `d + 336` bytes, the
/// duplicate slot, when `DUP`): `x − zp_in`, `off` = `−zp_in` in both halfwords. `⌊w / 4⌋`
/// chunks of 4 bytes (one load, two `SXTAB16`, `PKHBT`, `PKHTB`, two or four stores), then, if
/// `w mod 4 ≠ 0`, the chunk of the last 4 bytes again (it rewrites equal values).
///
/// # Safety
/// `w ≥ 4`; `s` readable for `w` bytes; `d` (and `d + 336` with `DUP`) writable for `2w` bytes.
#[inline(always)]
unsafe fn widen_row<const DUP: bool>(s: *const i8, d: *mut i16, w: usize, off: u32) {
    let (n, back) = (w / 4, (4 - w % 4) % 4);
    // SAFETY: the caller's contract: the chunks read bytes `0 … 4n ≤ w` and `w − 4 … w`, and
    // write halfwords `0 … 4n` and `w − 4 … w` (after the loop `s` is `4n` bytes on and `d`
    // `4n` halfwords on; stepping back `back = 4 − w mod 4` makes them `w − 4`). Unaligned
    // LDR/STR are allowed on ARMv7-M. Registers: the operands only; flags.
    unsafe {
        // One chunk: load 4 bytes, widen, interleave, then `$dup` (the duplicate slot's two
        // stores, or nothing) and the two stores at `d`.
        macro_rules! widen_asm {
            ($($dup:literal,)*) => {
                core::arch::asm!(
                    "2:",
                    "ldr {x}, [{s}], #4",
                    "sxtab16 {e}, {off}, {x}",
                    "sxtab16 {x}, {off}, {x}, ror #8",
                    "pkhbt {t}, {e}, {x}, lsl #16",
                    "pkhtb {x}, {x}, {e}, asr #16",
                    $($dup,)*
                    "str {x}, [{d}, #4]",
                    "str {t}, [{d}], #8",
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    // The last `w mod 4` bytes: the chunk of the row's last 4 bytes again.
                    "cmp {back}, #0",
                    "beq 3f",
                    "sub {s}, {s}, {back}",
                    "sub {d}, {d}, {back}, lsl #1",
                    "ldr {x}, [{s}], #4",
                    "sxtab16 {e}, {off}, {x}",
                    "sxtab16 {x}, {off}, {x}, ror #8",
                    "pkhbt {t}, {e}, {x}, lsl #16",
                    "pkhtb {x}, {x}, {e}, asr #16",
                    $($dup,)*
                    "str {x}, [{d}, #4]",
                    "str {t}, [{d}], #8",
                    "3:",
                    s = inout(reg) s => _,
                    d = inout(reg) d => _,
                    n = inout(reg) n => _,
                    back = in(reg) back,
                    off = in(reg) off,
                    x = out(reg) _,
                    e = out(reg) _,
                    t = out(reg) _,
                    options(nostack),
                )
            };
        }
        if DUP {
            widen_asm!("str {t}, [{d}, #336]", "str {x}, [{d}, #340]",);
        } else {
            widen_asm!();
        }
    }
}

/// Widens input row `src` (`w` bytes) into ring row `slot` at column `pl` (and into
/// `slot + 3` when `slot < 2`): `x − zp_in` as i16 (`off` = `−zp_in` in both halfwords,
/// `zp = zp_in`): [`widen_row`] for rows of 4 or more bytes, shorter rows one by one.
#[inline(always)]
fn widen(ring: &mut Ring<'_>, slot: usize, pl: usize, src: &[i8], off: u32, zp: i16) {
    let w = src.len();
    let base = slot * PITCH + pl;
    // `supports`: `pl + w ≤ MAX_PADDED_W < PITCH`; `slot ≤ 2`.
    if slot > 2 || pl + w > PITCH || ring.0.len() < SLOTS * PITCH {
        return;
    }
    let dup = slot < 2;
    if w >= 4 {
        let d = ring.0.as_mut_ptr().wrapping_add(base);
        // SAFETY: `src` is `w ≥ 4` bytes; the halfwords `base … base + w ≤ (slot + 1)·PITCH`
        // are in the ring (slot ≤ 2 of 5, `SLOTS·PITCH` halfwords checked above), and with
        // `dup` (slot ≤ 1) the same 3 slots (336 bytes) further, in slot ≤ 4.
        unsafe {
            if dup {
                widen_row::<true>(src.as_ptr(), d, w, off);
            } else {
                widen_row::<false>(src.as_ptr(), d, w, off);
            }
        }
        return;
    }
    for (j, &x) in src.iter().enumerate() {
        let v = i16::from(x) - zp;
        if let Some(r) = ring.0.get_mut(base + j) {
            *r = v;
        }
        if dup {
            if let Some(r) = ring.0.get_mut(base + 3 * PITCH + j) {
                *r = v;
            }
        }
    }
}

/// Zeros ring row `slot` (and `slot + 3` when `slot < 2`) at columns `pl … pl + w`: a padded
/// input row.
#[inline(always)]
fn zero(ring: &mut Ring<'_>, slot: usize, pl: usize, w: usize) {
    let base = slot * PITCH + pl;
    if let Some(r) = ring.0.get_mut(base..base + w) {
        r.fill(0);
    }
    if slot < 2 {
        if let Some(r) = ring.0.get_mut(base + 3 * PITCH..base + 3 * PITCH + w) {
            r.fill(0);
        }
    }
}

/// The full four-output blocks of one output row: the MAC lines (`$mac`, kernel rows 0, 1, 2
/// from ring address `rp`, the window's top-left), then the requantization and the store of
/// the four outputs at `y`; `rp += $step` bytes, `y += 4`, until `y` reaches `k[K_END]`.
macro_rules! blocks {
    ($rp:expr, $y:expr, $k:expr, $step:literal, $macs:expr, $($rows:tt)*) => {
        core::arch::asm!(
            "2:",
            // The accumulators start at 2·bias (the first MACs add it).
            "ldr {t}, [{kp}, #24]",
            $macs,
            // Requantization: m, c, e.
            "ldr {wa}, [{kp}, #28]",
            "ldr {wb}, [{kp}, #32]",
            "ldr {x}, [{kp}, #36]",
            "smmlar {t}, {a0}, {wa}, {wb}",
            "sub {a0}, {t}, {a0}, lsr #31",
            "asr {a0}, {a0}, {x}",
            "ssat {a0}, #8, {a0}",
            "smmlar {t}, {a1}, {wa}, {wb}",
            "sub {a1}, {t}, {a1}, lsr #31",
            "asr {a1}, {a1}, {x}",
            "ssat {a1}, #8, {a1}",
            "smmlar {t}, {a2}, {wa}, {wb}",
            "sub {a2}, {t}, {a2}, lsr #31",
            "asr {a2}, {a2}, {x}",
            "ssat {a2}, #8, {a2}",
            "smmlar {t}, {a3}, {wa}, {wb}",
            "sub {a3}, {t}, {a3}, lsr #31",
            "asr {a3}, {a3}, {x}",
            "ssat {a3}, #8, {a3}",
            "bfi {a0}, {a1}, #8, #8",
            "bfi {a0}, {a2}, #16, #8",
            "bfi {a0}, {a3}, #24, #8",
            "ldr {t}, [{kp}, #40]",
            "ssub8 {x}, {a0}, {t}",
            "sel {a0}, {a0}, {t}",
            "ldr {t}, [{kp}, #44]",
            "ssub8 {x}, {t}, {a0}",
            "sel {a0}, {a0}, {t}",
            "str {a0}, [{y}], #4",
            concat!("add {rp}, {rp}, #", $step),
            "ldr {t}, [{kp}, #48]",
            "cmp {y}, {t}",
            "bne 2b",
            kp = in(reg) $k,
            rp = inout(reg) $rp => _,
            y = inout(reg) $y => _,
            a0 = out(reg) _,
            a1 = out(reg) _,
            a2 = out(reg) _,
            a3 = out(reg) _,
            x = out(reg) _,
            wa = out(reg) _,
            wb = out(reg) _,
            t = out(reg) _,
            $($rows)*
            options(nostack),
        )
    };
}

/// The 36 MACs of a stride-1 block (the body of [`blocks!`]): per kernel row (at byte offsets
/// 0, `{r1}`, `{r2}` from `rp`: the ring's pitch, or the flat plane's) the pairs at columns
/// 0 … 4; the first row adds to `t` (2·bias).
macro_rules! s1_macs {
    () => {
        concat!(
            "ldr {wa}, [{kp}, #0]\n",
            "ldr {wb}, [{kp}, #4]\n",
            "ldr {x}, [{rp}, #0]\n",
            "smlad {a0}, {x}, {wa}, {t}\n",
            "ldr {x}, [{rp}, #2]\n",
            "smlad {a1}, {x}, {wa}, {t}\n",
            "ldr {x}, [{rp}, #4]\n",
            "smlad {a2}, {x}, {wa}, {t}\n",
            "smlabb {a0}, {x}, {wb}, {a0}\n",
            "ldr {x}, [{rp}, #6]\n",
            "smlad {a3}, {x}, {wa}, {t}\n",
            "smlabb {a1}, {x}, {wb}, {a1}\n",
            "ldr {x}, [{rp}, #8]\n",
            "smlabb {a2}, {x}, {wb}, {a2}\n",
            "smlatb {a3}, {x}, {wb}, {a3}\n",
            "ldr {wa}, [{kp}, #8]\n",
            "ldr {wb}, [{kp}, #12]\n",
            "ldr {x}, [{rp}, #{r1} + 0]\n",
            "smlad {a0}, {x}, {wa}, {a0}\n",
            "ldr {x}, [{rp}, #{r1} + 2]\n",
            "smlad {a1}, {x}, {wa}, {a1}\n",
            "ldr {x}, [{rp}, #{r1} + 4]\n",
            "smlad {a2}, {x}, {wa}, {a2}\n",
            "smlabb {a0}, {x}, {wb}, {a0}\n",
            "ldr {x}, [{rp}, #{r1} + 6]\n",
            "smlad {a3}, {x}, {wa}, {a3}\n",
            "smlabb {a1}, {x}, {wb}, {a1}\n",
            "ldr {x}, [{rp}, #{r1} + 8]\n",
            "smlabb {a2}, {x}, {wb}, {a2}\n",
            "smlatb {a3}, {x}, {wb}, {a3}\n",
            "ldr {wa}, [{kp}, #16]\n",
            "ldr {wb}, [{kp}, #20]\n",
            "ldr {x}, [{rp}, #{r2} + 0]\n",
            "smlad {a0}, {x}, {wa}, {a0}\n",
            "ldr {x}, [{rp}, #{r2} + 2]\n",
            "smlad {a1}, {x}, {wa}, {a1}\n",
            "ldr {x}, [{rp}, #{r2} + 4]\n",
            "smlad {a2}, {x}, {wa}, {a2}\n",
            "smlabb {a0}, {x}, {wb}, {a0}\n",
            "ldr {x}, [{rp}, #{r2} + 6]\n",
            "smlad {a3}, {x}, {wa}, {a3}\n",
            "smlabb {a1}, {x}, {wb}, {a1}\n",
            "ldr {x}, [{rp}, #{r2} + 8]\n",
            "smlabb {a2}, {x}, {wb}, {a2}\n",
            "smlatb {a3}, {x}, {wb}, {a3}\n",
        )
    };
}

/// The 36 MACs of a stride-2 block: per kernel row (0, `{r1}`, `{r2}`) the aligned pairs at
/// columns 0, 2, 4, 6, 8.
macro_rules! s2_macs {
    () => {
        concat!(
            "ldr {wa}, [{kp}, #0]\n",
            "ldr {wb}, [{kp}, #4]\n",
            "ldr {x}, [{rp}, #0]\n",
            "smlad {a0}, {x}, {wa}, {t}\n",
            "ldr {x}, [{rp}, #4]\n",
            "smlabb {a0}, {x}, {wb}, {a0}\n",
            "smlad {a1}, {x}, {wa}, {t}\n",
            "ldr {x}, [{rp}, #8]\n",
            "smlabb {a1}, {x}, {wb}, {a1}\n",
            "smlad {a2}, {x}, {wa}, {t}\n",
            "ldr {x}, [{rp}, #12]\n",
            "smlabb {a2}, {x}, {wb}, {a2}\n",
            "smlad {a3}, {x}, {wa}, {t}\n",
            "ldr {x}, [{rp}, #16]\n",
            "smlabb {a3}, {x}, {wb}, {a3}\n",
            "ldr {wa}, [{kp}, #8]\n",
            "ldr {wb}, [{kp}, #12]\n",
            "ldr {x}, [{rp}, #{r1} + 0]\n",
            "smlad {a0}, {x}, {wa}, {a0}\n",
            "ldr {x}, [{rp}, #{r1} + 4]\n",
            "smlabb {a0}, {x}, {wb}, {a0}\n",
            "smlad {a1}, {x}, {wa}, {a1}\n",
            "ldr {x}, [{rp}, #{r1} + 8]\n",
            "smlabb {a1}, {x}, {wb}, {a1}\n",
            "smlad {a2}, {x}, {wa}, {a2}\n",
            "ldr {x}, [{rp}, #{r1} + 12]\n",
            "smlabb {a2}, {x}, {wb}, {a2}\n",
            "smlad {a3}, {x}, {wa}, {a3}\n",
            "ldr {x}, [{rp}, #{r1} + 16]\n",
            "smlabb {a3}, {x}, {wb}, {a3}\n",
            "ldr {wa}, [{kp}, #16]\n",
            "ldr {wb}, [{kp}, #20]\n",
            "ldr {x}, [{rp}, #{r2} + 0]\n",
            "smlad {a0}, {x}, {wa}, {a0}\n",
            "ldr {x}, [{rp}, #{r2} + 4]\n",
            "smlabb {a0}, {x}, {wb}, {a0}\n",
            "smlad {a1}, {x}, {wa}, {a1}\n",
            "ldr {x}, [{rp}, #{r2} + 8]\n",
            "smlabb {a1}, {x}, {wb}, {a1}\n",
            "smlad {a2}, {x}, {wa}, {a2}\n",
            "ldr {x}, [{rp}, #{r2} + 12]\n",
            "smlabb {a2}, {x}, {wb}, {a2}\n",
            "smlad {a3}, {x}, {wa}, {a3}\n",
            "ldr {x}, [{rp}, #{r2} + 16]\n",
            "smlabb {a3}, {x}, {wb}, {a3}\n",
        )
    };
}

/// [`blocks!`] at stride 1: per kernel row the pairs at columns 0, 1, 2, 3, 4 (bytes 0 … 8);
/// `a_i += SMLAD(P_i, wa)`, the third tap from the bottom of `P_{i+2}` (`a3`: top of `P4`).
///
/// # Safety
/// `rp` is the ring's top-left of the window, `y` the first output of a row with at least
/// `blocks ≥ 1` full blocks, `k` the `K_WORDS` constants with `k[K_END] = y + 4·blocks`, and the reads
/// (columns `< PITCH` of three consecutive slots) stay inside the ring (see [`run`]).
#[inline(always)]
unsafe fn blocks_s1(rp: *const i16, y: *mut i8, k: *const u32) {
    // SAFETY: the caller's contract. Registers: the operands; flags (SSUB8 sets GE, SMLAD Q).
    unsafe {
        blocks!(rp, y, k, 8, s1_macs!(), r1 = const PITCH_B, r2 = const 2 * PITCH_B,);
    }
}

/// [`blocks!`] at stride 2: per kernel row the aligned pairs at columns 0, 2, 4, 6, 8
/// (bytes 0 … 16); `a_i += SMLAD(P_{2i}, wa)`, the third tap from the bottom of `P_{2i+2}`.
///
/// # Safety
/// As [`blocks_s1`].
#[inline(always)]
unsafe fn blocks_s2(rp: *const i16, y: *mut i8, k: *const u32) {
    // SAFETY: the caller's contract. Registers: the operands; flags (SSUB8 sets GE, SMLAD Q).
    unsafe {
        blocks!(rp, y, k, 16, s2_macs!(), r1 = const PITCH_B, r2 = const 2 * PITCH_B,);
    }
}

/// [`blocks!`] at stride 1 over a flat plane of row pitch `WP` halfwords (the flat path):
/// as [`blocks_s1`] with the kernel rows `2·WP` and `4·WP` bytes apart.
///
/// # Safety
/// As [`blocks_s1`], the reads inside the flat plane.
#[inline(always)]
unsafe fn blocks_flat(wp: usize, rp: *const i16, y: *mut i8, k: *const u32) {
    // SAFETY: the caller's contract. Registers: the operands; flags (SSUB8 sets GE, SMLAD Q).
    unsafe {
        // One variant per pitch: the row offsets are immediates.
        macro_rules! flat {
            ($p:literal) => {
                blocks!(rp, y, k, 8, s1_macs!(), r1 = const 2 * $p, r2 = const 4 * $p,)
            };
        }
        match wp {
            5 => flat!(5),
            6 => flat!(6),
            7 => flat!(7),
            8 => flat!(8),
            9 => flat!(9),
            10 => flat!(10),
            _ => {}
        }
    }
}

/// Row pitches (halfwords) of the flat path's plane: one `blocks_flat` variant each.
const FLAT_PITCHES: core::ops::RangeInclusive<usize> = 5..=10;

/// [`blocks_s1`] or [`blocks_s2`] by the column stride `sw`.
///
/// # Safety
/// As [`blocks_s1`].
#[inline(always)]
unsafe fn blocks_sw(sw: usize, rp: *const i16, y: *mut i8, k: *const u32) {
    // SAFETY: the caller's contract.
    unsafe {
        if sw == 1 {
            blocks_s1(rp, y, k);
        } else {
            blocks_s2(rp, y, k);
        }
    }
}

/// One output from ring address `rp` (column `ox·sw` of the window's top row) into `*y`.
#[inline(always)]
unsafe fn one(rp: *const i16, y: *mut i8, k: *const u32) {
    // SAFETY (caller): reads 4 bytes at `rp + {0, 4, 112, 116, 224, 228}` inside the ring and
    // the constants at `k`; writes the byte `y`. Registers: the operands; flags.
    unsafe {
        core::arch::asm!(
            "ldr {t}, [{kp}, #24]",
            "ldr {wa}, [{kp}]",
            "ldr {wb}, [{kp}, #4]",
            "ldr {x}, [{rp}]",
            "smlad {a0}, {x}, {wa}, {t}",
            "ldr {x}, [{rp}, #4]",
            "smlabb {a0}, {x}, {wb}, {a0}",
            "ldr {wa}, [{kp}, #8]",
            "ldr {wb}, [{kp}, #12]",
            "ldr {x}, [{rp}, #112]",
            "smlad {a0}, {x}, {wa}, {a0}",
            "ldr {x}, [{rp}, #116]",
            "smlabb {a0}, {x}, {wb}, {a0}",
            "ldr {wa}, [{kp}, #16]",
            "ldr {wb}, [{kp}, #20]",
            "ldr {x}, [{rp}, #224]",
            "smlad {a0}, {x}, {wa}, {a0}",
            "ldr {x}, [{rp}, #228]",
            "smlabb {a0}, {x}, {wb}, {a0}",
            "ldr {wa}, [{kp}, #28]",
            "ldr {wb}, [{kp}, #32]",
            "ldr {x}, [{kp}, #36]",
            "smmlar {t}, {a0}, {wa}, {wb}",
            "sub {a0}, {t}, {a0}, lsr #31",
            "asr {a0}, {a0}, {x}",
            "ssat {a0}, #8, {a0}",
            "ldr {t}, [{kp}, #40]",
            "ssub8 {x}, {a0}, {t}",
            "sel {a0}, {a0}, {t}",
            "ldr {t}, [{kp}, #44]",
            "ssub8 {x}, {t}, {a0}",
            "sel {a0}, {a0}, {t}",
            "strb {a0}, [{y}]",
            kp = in(reg) k,
            rp = in(reg) rp,
            y = in(reg) y,
            a0 = out(reg) _,
            x = out(reg) _,
            wa = out(reg) _,
            wb = out(reg) _,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// The MACs of one kernel row of a small-plane block ([`small_row`]): `$wa`/`$wb` the byte
/// offsets of the row's weights in the constants, `$acc` the accumulator the first MAC of each
/// lane adds to (`{t}` = 2·bias for kernel row 0, else the lane's own). Stride 1: lanes 0, 1,
/// 2 read columns 0–2, 1–3, 2–4: `a0 += SMLAD(P0, wa) + x2·2k2`, `a1 += SMLAD(P1, wa) +
/// x3·2k2`, `a2 += SMLAD(P2, wa) + x4·2k2` (`x2`, `x3` the halves of `P2`, `x4` from a
/// halfword load at column 4).
macro_rules! small_s1_row {
    ($wa:literal, $wb:literal, $acc0:literal, $acc1:literal, $acc2:literal) => {
        concat!(
            "ldr {wa}, [{kp}, #",
            $wa,
            "]\n",
            "ldr {wb}, [{kp}, #",
            $wb,
            "]\n",
            "ldr {x}, [{rp}]\n",
            "smlad {a0}, {x}, {wa}, ",
            $acc0,
            "\n",
            "ldr {x}, [{rp}, #2]\n",
            "smlad {a1}, {x}, {wa}, ",
            $acc1,
            "\n",
            "ldr {x}, [{rp}, #4]\n",
            "smlad {a2}, {x}, {wa}, ",
            $acc2,
            "\n",
            "smlabb {a0}, {x}, {wb}, {a0}\n",
            "smlatb {a1}, {x}, {wb}, {a1}\n",
            "ldrh {x}, [{rp}, #8]\n",
            "smlabb {a2}, {x}, {wb}, {a2}\n",
        )
    };
}

/// [`small_s1_row`] at stride 2: lanes 0, 1, 2 read columns 0–2, 2–4, 4–6:
/// `a_i += SMLAD(P_{2i}, wa) + x_{2i+2}·2k2` (the aligned pairs `P0`, `P2`, `P4`, and `x6` from a
/// halfword load).
macro_rules! small_s2_row {
    ($wa:literal, $wb:literal, $acc0:literal, $acc1:literal, $acc2:literal) => {
        concat!(
            "ldr {wa}, [{kp}, #",
            $wa,
            "]\n",
            "ldr {wb}, [{kp}, #",
            $wb,
            "]\n",
            "ldr {x}, [{rp}]\n",
            "smlad {a0}, {x}, {wa}, ",
            $acc0,
            "\n",
            "ldr {x}, [{rp}, #4]\n",
            "smlabb {a0}, {x}, {wb}, {a0}\n",
            "smlad {a1}, {x}, {wa}, ",
            $acc1,
            "\n",
            "ldr {x}, [{rp}, #8]\n",
            "smlabb {a1}, {x}, {wb}, {a1}\n",
            "smlad {a2}, {x}, {wa}, ",
            $acc2,
            "\n",
            "ldrh {x}, [{rp}, #12]\n",
            "smlabb {a2}, {x}, {wb}, {a2}\n",
        )
    };
}

/// One small-plane block: the three outputs `ox = 0, 1, 2` of an output row whose window's
/// top-left is `rp` in a plane of row pitch `pitch` bytes (`$row`: [`small_s1_row`] or
/// [`small_s2_row`]), requantized and clamped as in [`blocks!`], packed into bytes 0–2 of the
/// returned word (byte 3 is not an output).
macro_rules! small_block {
    ($row:ident, $rp:expr, $pitch:expr, $k:expr) => {{
        let packed: u32;
        core::arch::asm!(
            "ldr {t}, [{kp}, #24]",
            $row!("0", "4", "{t}", "{t}", "{t}"),
            "add {rp}, {rp}, {p}",
            $row!("8", "12", "{a0}", "{a1}", "{a2}"),
            "add {rp}, {rp}, {p}",
            $row!("16", "20", "{a0}", "{a1}", "{a2}"),
            "ldr {wa}, [{kp}, #28]",
            "ldr {wb}, [{kp}, #32]",
            "ldr {x}, [{kp}, #36]",
            "smmlar {t}, {a0}, {wa}, {wb}",
            "sub {a0}, {t}, {a0}, lsr #31",
            "asr {a0}, {a0}, {x}",
            "ssat {a0}, #8, {a0}",
            "smmlar {t}, {a1}, {wa}, {wb}",
            "sub {a1}, {t}, {a1}, lsr #31",
            "asr {a1}, {a1}, {x}",
            "ssat {a1}, #8, {a1}",
            "smmlar {t}, {a2}, {wa}, {wb}",
            "sub {a2}, {t}, {a2}, lsr #31",
            "asr {a2}, {a2}, {x}",
            "ssat {a2}, #8, {a2}",
            "bfi {a0}, {a1}, #8, #8",
            "bfi {a0}, {a2}, #16, #8",
            "ldr {t}, [{kp}, #40]",
            "ssub8 {x}, {a0}, {t}",
            "sel {a0}, {a0}, {t}",
            "ldr {t}, [{kp}, #44]",
            "ssub8 {x}, {t}, {a0}",
            "sel {a0}, {a0}, {t}",
            kp = in(reg) $k,
            rp = inout(reg) $rp => _,
            p = in(reg) $pitch,
            a0 = out(reg) packed,
            a1 = out(reg) _,
            a2 = out(reg) _,
            x = out(reg) _,
            wa = out(reg) _,
            wb = out(reg) _,
            t = out(reg) _,
            options(pure, readonly, nostack),
        );
        packed
    }};
}

/// Halfwords a small-plane block may read past the plane's last row start + 2 rows: columns
/// up to 6 (stride 2; stride 1 up to 4).
const SMALL_READ: usize = 7;

/// One small-plane block at column stride `sw` (1 or 2): the outputs `ox = 0, 1, 2` of the
/// output row whose window's top-left is `rp`, in bytes 0–2 of the result.
///
/// # Safety
/// `rp` points into a plane of row pitch `wp` halfwords in which the halfwords `rp + r·wp + j`,
/// `r ≤ 2`, `j < SMALL_READ`, are readable; `k` points to the `K_WORDS` constants.
#[inline(always)]
unsafe fn small_row(sw: usize, rp: *const i16, wp: usize, k: *const u32) -> u32 {
    let pitch = 2 * wp;
    // SAFETY: the caller's contract: the row MACs read halfwords 0 … 6 (stride 2; 0 … 4 at
    // stride 1) of three rows `pitch` bytes apart, and the constants. Registers: the operands;
    // flags (SSUB8 sets GE, SMLAD Q).
    unsafe {
        if sw == 1 {
            small_block!(small_s1_row, rp, pitch, k)
        } else {
            small_block!(small_s2_row, rp, pitch, k)
        }
    }
}

/// Widens a plane of `h` rows of `w` bytes at `s` into halfwords `x − zp_in` (`off` = `−zp_in`
/// in both halfwords), row `iy` at `d + iy·wp` halfwords (`skip` = `2·(wp − w)` bytes between
/// rows), exactly `w` halfwords per row: per row `⌊w / 4⌋` chunks of 4 bytes (as
/// [`widen_row`]), then with `R = w mod 4` one pair (`LDRH`, two `SXTAB16`, `PKHBT`) if `R ≥ 2`
/// and one byte (`LDRB`, `SXTAB16`) if `R` is odd, all in one assembly loop.
///
/// # Safety
/// `h ≥ 1`; `s` readable for `h·w` bytes; the halfwords `d + iy·wp + j`, `iy < h`, `j < w`,
/// writable.
#[inline(always)]
unsafe fn widen_plane(s: *const i8, d: *mut i16, (h, w, wp): (usize, usize, usize), off: u32) {
    let (n, skip) = (w / 4, 2 * (wp - w));
    // SAFETY: the caller's contract: each row reads its `w` bytes (`4n`, then 2 and/or 1) and
    // writes its `w` halfwords, then `d` steps over `wp − w` halfwords. Unaligned LDR/STR are
    // allowed on ARMv7-M. Registers: the operands; flags.
    unsafe {
        macro_rules! plane_asm {
            ($($tail:expr,)*) => {
                core::arch::asm!(
                    "2:",
                    "movs {c}, {n}",
                    "beq 4f",
                    "3:",
                    "ldr {x}, [{s}], #4",
                    "sxtab16 {e}, {off}, {x}",
                    "sxtab16 {x}, {off}, {x}, ror #8",
                    "pkhbt {t}, {e}, {x}, lsl #16",
                    "pkhtb {x}, {x}, {e}, asr #16",
                    "str {x}, [{d}, #4]",
                    "str {t}, [{d}], #8",
                    "subs {c}, {c}, #1",
                    "bne 3b",
                    "4:",
                    $($tail,)*
                    "add {d}, {d}, {skip}",
                    "subs {h}, {h}, #1",
                    "bne 2b",
                    s = inout(reg) s => _,
                    d = inout(reg) d => _,
                    h = inout(reg) h => _,
                    n = in(reg) n,
                    skip = in(reg) skip,
                    off = in(reg) off,
                    c = out(reg) _,
                    x = out(reg) _,
                    e = out(reg) _,
                    t = out(reg) _,
                    options(nostack),
                )
            };
        }
        macro_rules! pair {
            () => {
                concat!(
                    "ldrh {x}, [{s}], #2\n",
                    "sxtab16 {e}, {off}, {x}\n",
                    "sxtab16 {x}, {off}, {x}, ror #8\n",
                    "pkhbt {t}, {e}, {x}, lsl #16\n",
                    "str {t}, [{d}], #4\n",
                )
            };
        }
        macro_rules! byte {
            () => {
                concat!(
                    "ldrb {x}, [{s}], #1\n",
                    "sxtab16 {e}, {off}, {x}\n",
                    "strh {e}, [{d}], #2\n",
                )
            };
        }
        match w % 4 {
            0 => plane_asm!(),
            1 => plane_asm!(byte!(),),
            2 => plane_asm!(pair!(),),
            _ => plane_asm!(pair!(), byte!(),),
        }
    }
}

/// The small-plane path (see [`run`]: rows of 2 or 3 outputs, strides 1–2, the padded plane
/// and [`SMALL_READ`] halfwords inside the scratch `ring`, whose padding is 0): per channel the
/// constants, [`widen_plane`] (row `pt + iy`, column `pl` of a plane of pitch `wp`), then one
/// [`small_row`] per output row, its first `ow` bytes out (a whole word while 4 bytes fit in
/// the channel's output: the extra bytes belong to later rows, which overwrite them).
/// Returns true if some channel was outside the fast domain (left to the caller). Not inlined:
/// the ring and flat paths keep their registers.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn small_run(
    ring: &mut Ring<'_>,
    input: &[i8],
    output: &mut [i8],
    q: &PerChannelQuant<'_>,
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    range: Range,
    (h, w, oh, ow): (usize, usize, usize, usize),
    (wp, pl, pt, sh, sw): (usize, usize, usize, usize, usize),
    off: u32,
) -> bool {
    // Every row written and every block's reads inside the scratch: rows `pt + h ≤ Hp` and
    // `(oh − 1)·sh + 3 ≤ Hp` of pitch `wp`, plus `SMALL_READ` halfwords.
    let rows = (pt + h).max((oh.saturating_sub(1)) * sh + 3);
    if h == 0 || w == 0 || ow == 0 || ow > 3 || pl + w > wp || rows * wp + SMALL_READ > ring.0.len()
    {
        return false;
    }
    let mut slow = false;
    let plane_at = ring.0.as_mut_ptr().wrapping_add(pt * wp + pl);
    let base = ring.0.as_ptr();
    let planes = input
        .chunks_exact(h * w)
        .zip(output.chunks_exact_mut(oh * ow))
        .zip(weights.as_bytes().chunks_exact(9))
        .zip(bias.iter().zip(q.multiplier.iter()).zip(q.shift.iter()));
    for (((plane, out), kw), ((b, m), s)) in planes {
        let Some(k) = constants(kw, b, m, i32::from(s), range) else {
            slow = true; // the caller's
            continue;
        };
        // SAFETY: `plane` is `h·w` bytes; rows `pt … pt + h` of pitch `wp`, columns `pl … pl +
        // w ≤ wp`, are inside the scratch (checked above).
        unsafe { widen_plane(plane.as_ptr(), plane_at, (h, w, wp), off) };
        let (len, y) = (out.len(), out.as_mut_ptr());
        for oy in 0..oh {
            // SAFETY: the window's rows `oy·sh … oy·sh + 2 < rows` and the columns `<
            // SMALL_READ ≤ wp + SMALL_READ` are inside the scratch (checked above); `k` is the
            // constants.
            let v = unsafe { small_row(sw, base.wrapping_add(oy * sh * wp), wp, k.as_ptr()) };
            let o = oy * ow;
            if o + 4 <= len {
                // SAFETY: bytes `o … o + 4` of `out` (checked).
                unsafe { y.add(o).cast::<u32>().write_unaligned(v) };
            } else if let Some(d) = out.get_mut(o..) {
                for (d, b) in d.iter_mut().zip(v.to_le_bytes()) {
                    *d = b as i8;
                }
            }
        }
    }
    slow
}

/// One channel on the flat path (see [`run`]): widen the `h` rows into the plane (pitch `wp`,
/// at row `pt + iy`, column `pl`; the padding stays 0), `nb` blocks of flat outputs into the
/// bytes after the plane (`plane_hw` halfwords), then each output row's `ow` bytes out.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn flat_channel(
    ring: &mut Ring<'_>,
    plane: &[i8],
    out: &mut [i8],
    k: &mut [u32; K_WORDS],
    (h, w, ow, wp, pl): (usize, usize, usize, usize, usize),
    pt: usize,
    (plane_hw, nb): (usize, usize),
    off: u32,
    zp: i16,
) {
    if ring.0.len() < plane_hw + 2 * nb || (pt + h) * wp > plane_hw || pl + w > wp {
        return;
    }
    for (iy, src) in plane.chunks_exact(w).enumerate() {
        let base = (pt + iy) * wp + pl;
        if w >= 4 {
            let d = ring.0.as_mut_ptr().wrapping_add(base);
            // SAFETY: `src` is `w ≥ 4` bytes; halfwords `base … base + w ≤ (pt + h)·wp ≤
            // plane_hw ≤ ring.len()` (checked above). No duplicate.
            unsafe { widen_row::<false>(src.as_ptr(), d, w, off) };
        } else if let Some(d) = ring.0.get_mut(base..base + w) {
            for (d, &x) in d.iter_mut().zip(src) {
                *d = i16::from(x) - zp;
            }
        }
    }
    let (plane_part, bytes) = ring.0.split_at_mut(plane_hw);
    let y = bytes.as_mut_ptr().cast::<i8>();
    k[K_END] = y.wrapping_add(4 * nb) as usize as u32;
    if nb > 0 {
        // SAFETY: `nb ≥ 1` blocks write the `4·nb` bytes at `y` (`bytes` holds `2·(ring.len() −
        // plane_hw) ≥ 4·nb` of them, checked above) and read halfwords up to `4·(nb − 1) + 5 +
        // 2·wp < plane_hw` of the plane (`plane_hw ≥ 4·nb + 2·wp + 2`), with the load width
        // inside it; `k` is the constants. `wp ∈ FLAT_PITCHES` (checked by the caller).
        unsafe { blocks_flat(wp, plane_part.as_ptr(), y, k.as_ptr()) };
    }
    // SAFETY: the `4·nb` bytes just written, inside `bytes` (a `u32` scratch viewed as i16:
    // every byte is initialized).
    let flat = unsafe { core::slice::from_raw_parts(y.cast_const(), 4 * nb) };
    for (oy, row) in out.chunks_exact_mut(ow).enumerate() {
        if let Some(src) = flat.get(oy * wp..oy * wp + ow) {
            row.copy_from_slice(src);
        }
    }
}

/// The depthwise convolution on arguments checked by [`super::depthwise_conv2d_s8`], for a
/// geometry [`supports`] accepts (`g` is one channel's: `ci = 1`, `per_out = 9`), with
/// `scratch` of at least [`RING_WORDS`] words: every channel for which [`fast`] holds (the
/// others' outputs are left as they are, for the caller). `None` (nothing written) when `g`
/// or `scratch` does not fit, else `Some(true)` if some channel was left to the caller.
///
/// Never inlined: its locals (the ring, the per-channel constants, the small-plane call's
/// arguments: ≈ 60 bytes more since the small-plane path) must not stay in the caller's frame
/// while the caller runs the word kernel or the Conv2d loop after it (`firmware`'s 4 064-byte
/// stack bound, `tests/device.rs` `check_stack`).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub(crate) fn run(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
    scratch: &mut [u32],
) -> Option<bool> {
    let (h, w, oh, ow, win) = (g.h, g.w, g.oh, g.ow, g.win);
    let words = scratch.get_mut(..RING_WORDS)?;
    if !supports(g) || h == 0 || w == 0 || oh == 0 || ow == 0 {
        return None;
    }
    // SAFETY: every bit pattern is a valid i16, and a u32 slice is aligned for i16: the body
    // is the whole buffer, `2·RING_WORDS = SLOTS·PITCH` halfwords.
    let (_, halves, _) = unsafe { words.align_to_mut::<i16>() };
    let mut ring = Ring(halves);
    let off = u32::from((-i32::from(q.input_zp)) as u16) * 0x0001_0001;
    let zp_in = i16::from(q.input_zp);
    let (act_min, act_max) = activation_range(act, q.output);
    let b4 = |v: i32| (v.clamp(-128, 127) as u8 as u32) * 0x0101_0101;
    let range = (i32::from(q.output.zero_point), b4(act_min), b4(act_max));
    let (sh, sw, pt, pl) = (win.sh, win.sw, win.pad_top as isize, win.pad_left);
    // Padding columns (and the one past the padded row) stay 0 for the whole call.
    ring.0.fill(0);
    if ring.0.len() < SLOTS * PITCH {
        return None;
    }
    let mut slow = false;
    let (blocks, rem) = (ow / 4, ow % 4);
    // The flat path (stride 1, narrow planes): the whole padded plane, `Hp × Wp` halfwords at
    // pitch `Wp`, then blocks over the flat output positions `f = oy·Wp + ox` (the columns
    // `ox ≥ ow` are computed and dropped) into a byte buffer after the plane, copied out per
    // row. `nb` blocks read halfwords up to `4·nb + 1 + 2·Wp` (plus the load width).
    let wp = pl + w + win.pad_right;
    let hp = h + win.pad_top + win.pad_bottom;
    let flat_len = (oh - 1) * wp + ow;
    let nb = flat_len.div_ceil(4);
    let plane_hw = (hp * wp).max(4 * nb + 2 * wp + 2).next_multiple_of(2);
    let flat = sw == 1
        && sh == 1
        && FLAT_PITCHES.contains(&wp)
        && plane_hw / 2 + nb <= RING_WORDS
        && ring.0.len() >= plane_hw + 2 * nb;
    // The small-plane path (rows of 2 or 3 outputs, strides 1–2): the whole padded plane at
    // pitch `Wp` as on the flat path, one 3-lane block per output row. (Rows of one output
    // stay on the ring: its single-output block costs about half a 3-lane block.)
    if (2..=3).contains(&ow) && hp * wp + SMALL_READ <= ring.0.len() {
        let geometry = (h, w, oh, ow);
        let layout = (wp, pl, pt as usize, sh, sw);
        let (x, b) = (input, bias);
        return Some(small_run(
            &mut ring, x, output, q, weights, b, range, geometry, layout, off,
        ));
    }
    let planes = input
        .chunks_exact(h * w)
        .zip(output.chunks_exact_mut(oh * ow))
        .enumerate();
    for (c, (plane, out)) in planes {
        let (Some(b), Some(m), Some(s)) = (bias.get(c), q.multiplier.get(c), q.shift.get(c)) else {
            return Some(slow); // never: `bias`, `multiplier`, `shift` have `c` entries (checked)
        };
        let kw = weights.as_bytes().get(9 * c..9 * c + 9).unwrap_or(&[]);
        let Some(mut k) = constants(kw, b, m, i32::from(s), range) else {
            slow = true; // the caller's
            continue;
        };
        if flat {
            flat_channel(
                &mut ring,
                plane,
                out,
                &mut k,
                (h, w, ow, wp, pl),
                pt as usize,
                (plane_hw, nb),
                off,
                zp_in,
            );
            continue;
        }
        // Input rows enter the ring in order: `next` (slot `slot_next`) is the first row not
        // yet in it; the window of output row `oy` is rows `iy0 … iy0 + 2` (slot `s0` first),
        // and the next window starts `sh ≤ 2` rows lower, so no row is skipped.
        let mut next = -pt;
        let mut slot_next = (3 - pt as usize) % 3; // `pt ≤ 2`
        let mut s0 = slot_next;
        for (oy, y) in out.chunks_exact_mut(ow).enumerate() {
            let iy0 = (oy * sh) as isize - pt;
            if oy > 0 {
                s0 += sh;
                if s0 >= 3 {
                    s0 -= 3;
                }
            }
            while next < iy0 + 3 {
                if (0..h as isize).contains(&next) {
                    let r = next as usize * w;
                    let src = plane.get(r..r + w).unwrap_or(&[]);
                    widen(&mut ring, slot_next, pl, src, off, zp_in);
                } else {
                    zero(&mut ring, slot_next, pl, w);
                }
                next += 1;
                slot_next = if slot_next == 2 { 0 } else { slot_next + 1 };
            }
            let rp = ring.0.as_ptr().wrapping_add(s0 * PITCH);
            let yp = y.as_mut_ptr();
            // SAFETY (all blocks below): a block of outputs `ox … ox + 3` reads 4 bytes at
            // ring columns `ox·sw + {0 … 2·sw + 4}` of slots `s0 … s0 + 2 ≤ 4`, i.e. halfwords
            // up to `ox·sw + 4·sw + 1 < PITCH` of the slot (checked: for `ox ≤ ow − 4`, stride
            // 1 reads up to `ow + 1 = Wp − 1`, stride 2 up to `2·ow + 1 ≤ Wp`, and
            // `Wp < PITCH`; the partial block checks its own), and writes 4 bytes at `y` (in
            // the row: `ox + 4 ≤ ow`; or `k[K_OUT]`). The constants are the words of `k`.
            if blocks > 0 {
                k[K_END] = yp.wrapping_add(4 * blocks) as usize as u32;
                unsafe { blocks_sw(sw, rp, yp, k.as_ptr()) };
            }
            if rem >= 2 && blocks > 0 {
                // One block over the last 4 outputs (it rewrites 4 − rem of them, equal).
                k[K_END] = yp.wrapping_add(ow) as usize as u32;
                let rp = rp.wrapping_add((ow - 4) * sw);
                unsafe { blocks_sw(sw, rp, yp.wrapping_add(ow - 4), k.as_ptr()) };
            } else if rem >= 2 && 4 * sw + 2 <= PITCH - ow * sw {
                // `ow < 4`: one block into `k[K_OUT]` (the reads stay in the slot: `ox = 0`,
                // up to `4·sw + 1 < PITCH`), then its first `rem` bytes.
                let kp = k.as_mut_ptr();
                let out = kp.wrapping_add(K_OUT);
                // SAFETY: `kp` is `k`'s; `K_END < K_WORDS`.
                unsafe { kp.add(K_END).write(out.wrapping_add(1) as usize as u32) };
                unsafe { blocks_sw(sw, rp, out.cast(), kp) };
                let bytes = k[K_OUT].to_le_bytes();
                for (o, b) in y.iter_mut().zip(bytes) {
                    *o = b as i8;
                }
            } else {
                for ox in 4 * blocks..ow {
                    // SAFETY: reads ring columns `ox·sw … ox·sw + 3 ≤ Wp` of slots `s0 … s0 +
                    // 2` (stride 1: `ow + 2 = Wp`; stride 2: `2·ow + 1 ≤ Wp`), the words of
                    // `k`; writes `y[ox]` (`ox < ow`).
                    unsafe { one(rp.wrapping_add(ox * sw), yp.wrapping_add(ox), k.as_ptr()) };
                }
            }
        }
    }
    Some(slow)
}
