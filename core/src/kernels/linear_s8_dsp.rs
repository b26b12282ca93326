//! Fully connected layer, int8, with the Cortex-M4 DSP extension (ARMv7E-M: `thumbv7em-*` only,
//! `cfg(denoiserep_dsp)` from `core/build.rs`).
//!
//! Same result as [`super::linear_s8::reference`], bit for bit, on every input: the same
//! accumulator modulo 2^32 (integer addition in another order), then the same requantization
//! and clamp ([`requantize_fast`], equal to the reference's `quant::requantize` on every input).
//! Design:
//!
//! - the input row is widened **once** into the op's arena scratch ([`widen`]): each whole word
//!   of 4 inputs `x[4i..4i + 4]` becomes two words of i16 pairs with the input offset added,
//!   `xw[2i] = (x[4i] − zp, x[4i + 2] − zp)` and `xw[2i + 1] = (x[4i + 1] − zp, x[4i + 3] − zp)`
//!   (`SXTAB16`, `SXTAB16 … ROR #8`), `2·⌊n/4⌋` words for `n` inputs
//!   ([`super::linear_s8_scratch_words`]); the planner reserves it (`ops::linear::scratch_bytes`);
//! - four output channels per pass over the widened row ([`dot4`], assembly): per word of 4
//!   columns one `LDRD` of the widened pair, and per weight row one 32-bit load, two `SXTB16` and
//!   two `SMLAD` (4 MACs): 21 instructions for 16 MACs, four words per loop iteration (87
//!   instructions for 64 MACs with the loop test, 1.36 per MAC); 2–3 leftover channels two at a
//!   time ([`dot2`], assembly), a last single channel in Rust ([`dot1`]);
//! - the 1–3 columns past the last whole word with the reference's scalar code.
//!
//! Why widen into scratch: widening on the fly (the kernel before this one) costs a load and two
//! `SXTAB16` per word shared by 4 rows, and the offset did not fit in the 12 registers `asm!` can
//! use on Thumb, so it was reloaded from the stack every word: 51 instructions per 32 MACs. The
//! widened row costs `≈ 1.5` instructions per input once per row (784 inputs: ≈ 1.2 k
//! instructions, against ≈ 46 k saved on 784→256). Why not fold the offset into the bias
//! (`bias − zp_in·Σw`): the per-row weight sums would have to be in the model file (a format
//! change) and the loop would still load and widen the input words. The operands stay exact:
//! `x − zp_in ∈ [−255, 255]` and `w ∈ [−128, 127]` fit i16, every product fits i32, and `SMLAD`
//! adds modulo 2^32 like the reference's `wrapping_add` (it only sets the sticky Q flag on
//! overflow, which nothing reads).
//!
//! Why the loops are hand-written: LLVM at the firmware's `opt-level = "s"` kept chunk-length
//! checks and spilled registers in a Rust loop over one-instruction `asm!` helpers (≈ 2 and more
//! instructions per MAC); four channels need all 12 registers `asm!` can use on Thumb (r6, r7,
//! sp, pc are reserved), with the end pointer on the stack.
//!
//! The only `unsafe` is `asm!`: the one-instruction helpers (register-only, no memory, no stack)
//! and the two loops, whose reads are bounds-checked before they run (see their SAFETY notes).
//! Unaligned `LDR` is fine on ARMv7-M, and the weights in a flash partition are not aligned; the
//! widened row is `u32`-aligned, as `LDRD` needs.

use core::arch::asm;

use super::params::{LinearParams, PerChannelQuant};
use crate::error::Result;
use crate::quant::{activation_range, requantize_fast, OutputRange, Requantizer};
use crate::tensor::{Activation, I32Data, I8Data};

/// `SXTB16 r, x`: bytes 0 and 2 of `x`, sign-extended to the low and high halfwords.
#[inline(always)]
fn sxtb16(x: u32) -> u32 {
    let r: u32;
    // SAFETY: one register-only DSP instruction (ARMv7E-M); no memory, stack or flags.
    unsafe {
        asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `SXTB16 r, x, ROR #8`: bytes 1 and 3 of `x`, sign-extended to the low and high halfwords.
#[inline(always)]
fn sxtb16_ror8(x: u32) -> u32 {
    let r: u32;
    // SAFETY: one register-only DSP instruction (ARMv7E-M); no memory, stack or flags.
    unsafe {
        asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `SXTAB16 r, a, x`: halfword-wise `a + sext(bytes 0 and 2 of x)` (each modulo 2^16).
#[inline(always)]
pub(super) fn sxtab16(a: u32, x: u32) -> u32 {
    let r: u32;
    // SAFETY: one register-only DSP instruction (ARMv7E-M); no memory, stack or flags.
    unsafe {
        asm!("sxtab16 {r}, {a}, {x}", r = lateout(reg) r, a = in(reg) a, x = in(reg) x,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `SXTAB16 r, a, x, ROR #8`: halfword-wise `a + sext(bytes 1 and 3 of x)`.
#[inline(always)]
pub(super) fn sxtab16_ror8(a: u32, x: u32) -> u32 {
    let r: u32;
    // SAFETY: one register-only DSP instruction (ARMv7E-M); no memory, stack or flags.
    unsafe {
        asm!("sxtab16 {r}, {a}, {x}, ror #8", r = lateout(reg) r, a = in(reg) a, x = in(reg) x,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `SMLAD r, a, b, acc`: `acc + a.lo·b.lo + a.hi·b.hi` (signed halfwords), modulo 2^32.
#[inline(always)]
pub(super) fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: one register-only DSP instruction (ARMv7E-M); no memory or stack. It may set the
    // sticky Q flag (hence no `preserves_flags`); the condition flags are untouched.
    unsafe {
        asm!("smlad {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b,
             acc = in(reg) acc, options(pure, nomem, nostack));
    }
    r
}

/// 4 weights as a little-endian word (one unaligned `LDR`).
#[inline(always)]
fn word(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d] => u32::from_le_bytes([*a, *b, *c, *d]),
        _ => 0, // never: callers pass `chunks_exact(4)` items
    }
}

/// 4 input values as a little-endian word (one unaligned `LDR`).
#[inline(always)]
fn word_i8(b: &[i8]) -> u32 {
    match b {
        [a, b, c, d] => u32::from_le_bytes([*a as u8, *b as u8, *c as u8, *d as u8]),
        _ => 0, // never: callers pass `chunks_exact(4)` items
    }
}

/// Widens the whole words of `x` into `xw` (`xw.len() = 2·⌊x.len()/4⌋`): word `i` of `x`
/// becomes `xw[2i] = (x[4i] − zp, x[4i + 2] − zp)`, `xw[2i + 1] = (x[4i + 1] − zp, x[4i + 3] − zp)`
/// as i16 pairs (low halfword first), `off = −zp` in both halfwords.
fn widen(x: &[i8], off: u32, xw: &mut [u32]) {
    for (c, pair) in x.chunks_exact(4).zip(xw.chunks_exact_mut(2)) {
        let v = word_i8(c);
        if let [even, odd] = pair {
            *even = sxtab16(off, v);
            *odd = sxtab16_ror8(off, v);
        }
    }
}

/// Two channels `block = W[o..o + 2]` (`2 · n` bytes) against the widened words `xw`
/// (`2·words` of them, `4·words ≤ n`): `acc[r] += Σ_{j < 4·words} W[o + r][j] · (x[j] − zp)`. For
/// the 2–3 channels left after the passes of [`dot4`]: one assembly loop, per word one `LDRD` and
/// per channel one load, two `SXTB16`, two `SMLAD` (11 instructions for 8 MACs), two words per
/// iteration when the word count is even, in 10 registers.
#[inline(never)]
fn dot2(xw: &[u32], block: &[u8], n: usize, acc: &mut [i32; 2]) {
    let words = xw.len() / 2;
    if words == 0 || 4 * words > n || block.len() != 2 * n {
        return; // impossible for [`row`]'s arguments; keeps the reads below in bounds
    }
    let x_ptr = xw.as_ptr();
    let end = x_ptr.wrapping_add(2 * words);
    let [mut a0, mut a1] = *acc;
    // SAFETY: reads the `2·words` words of `xw` (`LDRD` on its 4-aligned `u32`s) and the first
    // 4·words bytes of rows 0 (`block`) and 1 (`block + n`), `4·words ≤ n`, inside `block` (2n
    // bytes), checked above; the loop stops when the input pointer reaches `end` after
    // `words ≥ 1` words (two per iteration when `words` is even, so the pointer meets `end`
    // exactly). Unaligned `LDR` is allowed on ARMv7-M (CCR.UNALIGN_TRP is 0 out of reset).
    // Registers: only the operands; flags: `cmp`.
    macro_rules! dot2_loop {
        ($($step:tt)*) => {
            unsafe {
                asm!(
                    "2:",
                    $($step)*
                    "cmp {x}, {end}",
                    "bne 2b",
                    x = inout(reg) x_ptr => _,
                    w0 = inout(reg) block.as_ptr() => _,
                    n = in(reg) n,
                    end = in(reg) end,
                    a0 = inout(reg) a0,
                    a1 = inout(reg) a1,
                    t = out(reg) _,
                    k = out(reg) _,
                    xe = out(reg) _,
                    xo = out(reg) _,
                    options(readonly, nostack),
                )
            }
        };
    }
    macro_rules! step2 {
        () => {
            concat!(
                "ldrd {xe}, {xo}, [{x}], #8\n",
                "ldr {t}, [{w0}, {n}]\n",
                "sxtb16 {k}, {t}\n",
                "smlad {a1}, {k}, {xe}, {a1}\n",
                "sxtb16 {t}, {t}, ror #8\n",
                "smlad {a1}, {t}, {xo}, {a1}\n",
                "ldr {t}, [{w0}], #4\n",
                "sxtb16 {k}, {t}\n",
                "smlad {a0}, {k}, {xe}, {a0}\n",
                "sxtb16 {t}, {t}, ror #8\n",
                "smlad {a0}, {t}, {xo}, {a0}\n",
            )
        };
    }
    if words.is_multiple_of(2) {
        dot2_loop!(step2!(), step2!(),);
    } else {
        dot2_loop!(step2!(),);
    }
    *acc = [a0, a1];
}

/// One word (4 columns) of four channels in assembly: the widened pair in one `LDRD`, then per
/// channel one load, two `SXTB16` and two `SMLAD`. Rows `o + 1` and `o + 3` are read at `+ n`
/// from the pointers of rows `o`, `o + 2`.
macro_rules! step4 {
    () => {
        concat!(
            "ldrd {xe}, {xo}, [{x}], #8\n",
            "ldr {t}, [{w0}, {n}]\n",
            "sxtb16 {k}, {t}\n",
            "smlad {a1}, {k}, {xe}, {a1}\n",
            "sxtb16 {t}, {t}, ror #8\n",
            "smlad {a1}, {t}, {xo}, {a1}\n",
            "ldr {t}, [{w0}], #4\n",
            "sxtb16 {k}, {t}\n",
            "smlad {a0}, {k}, {xe}, {a0}\n",
            "sxtb16 {t}, {t}, ror #8\n",
            "smlad {a0}, {t}, {xo}, {a0}\n",
            "ldr {t}, [{w2}, {n}]\n",
            "sxtb16 {k}, {t}\n",
            "smlad {a3}, {k}, {xe}, {a3}\n",
            "sxtb16 {t}, {t}, ror #8\n",
            "smlad {a3}, {t}, {xo}, {a3}\n",
            "ldr {t}, [{w2}], #4\n",
            "sxtb16 {k}, {t}\n",
            "smlad {a2}, {k}, {xe}, {a2}\n",
            "sxtb16 {t}, {t}, ror #8\n",
            "smlad {a2}, {t}, {xo}, {a2}\n",
        )
    };
}

/// The loop of [`dot4`] from `x` (widened words), `w0`, `w2` until `x` reaches `end`, advancing
/// the pointers: `$($step)*` is the body (one or four [`step4`]). The end pointer is pushed
/// (8 bytes, keeping `sp` 8-aligned) because the 12 registers are all in use.
macro_rules! dot4_loop {
    ($x:ident, $w0:ident, $w2:ident, $n:ident, $a:ident, $end:expr, $($step:tt)*) => {
        asm!(
            "str {t}, [sp, #-8]!",
            "2:",
            $($step)*
            "ldr {t}, [sp]",
            "cmp {x}, {t}",
            "bne 2b",
            "add sp, sp, #8",
            x = inout(reg) $x,
            w0 = inout(reg) $w0,
            w2 = inout(reg) $w2,
            n = in(reg) $n,
            a0 = inout(reg) $a[0],
            a1 = inout(reg) $a[1],
            a2 = inout(reg) $a[2],
            a3 = inout(reg) $a[3],
            t = inout(reg) $end => _,
            k = out(reg) _,
            xe = out(reg) _,
            xo = out(reg) _,
            options(readonly),
        )
    };
}

/// Four channels `block = W[o..o + 4]` (`4 · n` bytes, rows of `n` bytes) against the widened
/// words `xw` (`2·words`, `4·words ≤ n`): `acc[r] += Σ_{j < 4·words} W[o + r][j] · (x[j] − zp)`.
///
/// Hand-written loops ([`step4`]): per word (4 columns) one `LDRD` of the widened input, and per
/// channel one load, two `SXTB16` and two `SMLAD`; four words per iteration, so 87 instructions
/// for 64 MACs with the loop test, then the 1–3 words left one per iteration (24 for 16 MACs).
/// The 12 registers `asm!` can use on Thumb hold the two row pointers `W[o]`, `W[o + 2]` (rows
/// `o + 1`, `o + 3` are at `+ n`), `n`, the input pointer, four accumulators and four
/// temporaries; the end pointer lives in 8 bytes of stack the loop pushes.
#[inline(never)]
fn dot4(xw: &[u32], block: &[u8], n: usize, acc: &mut [i32; 4]) {
    let words = xw.len() / 2;
    if words == 0 || 4 * words > n || block.len() != 4 * n {
        return; // impossible for [`row`]'s arguments; keeps the reads below in bounds
    }
    let mut x_ptr = xw.as_ptr();
    let mut w0 = block.as_ptr();
    let mut w2 = block[2 * n..].as_ptr();
    let quads = words - words % 4;
    // SAFETY (both blocks): together they read the `2·words` words of `xw` (`LDRD` on its
    // 4-aligned `u32`s) and, for r in 0..4, the first `4·words ≤ n` bytes of row r at
    // `block + r·n` (rows 0, 1 through `w0`, rows 2, 3 through `w2 = block + 2n`), all inside
    // `block` (4n bytes), checked above; the first loop stops when `x` reaches the end of the
    // first `quads` (a multiple of 4, ≥ 4) words, the second after the `words − quads ≥ 1` words
    // left, one per iteration. Unaligned `LDR` is allowed on ARMv7-M (CCR.UNALIGN_TRP is 0 out
    // of reset and nothing here sets it). The 8 bytes pushed below `sp` are popped before each
    // block ends. Registers: only the operands; flags: `cmp`.
    if quads > 0 {
        let end = x_ptr.wrapping_add(2 * quads);
        unsafe {
            dot4_loop!(
                x_ptr,
                w0,
                w2,
                n,
                acc,
                end,
                step4!(),
                step4!(),
                step4!(),
                step4!(),
            )
        };
    }
    if words > quads {
        let end = x_ptr.wrapping_add(2 * (words - quads));
        unsafe { dot4_loop!(x_ptr, w0, w2, n, acc, end, step4!(),) };
    }
    let _ = (x_ptr, w0, w2); // the pointers past the last word: not needed
}

/// `a0 + Σ w0·(x − zp)` over the widened words `xw` (the odd last channel).
#[inline(never)]
fn dot1(xw: &[u32], w0: &[u8], a0: i32) -> i32 {
    let mut a0 = a0;
    for (pair, c0) in xw.chunks_exact(2).zip(w0.chunks_exact(4)) {
        if let [even, odd] = pair {
            let k0 = word(c0);
            a0 = smlad(sxtb16(k0), *even, a0);
            a0 = smlad(sxtb16_ror8(k0), *odd, a0);
        }
    }
    a0
}

/// [`super::linear_s8_with_scratch`] forced onto the DSP path: the same checks, then `run`
/// (the reference loop when `scratch` holds fewer than
/// [`super::linear_s8_scratch_words`]`(p.in_features)` words). Public (hidden) so the
/// firmware's `kernel-check` binary can compare it with [`super::linear_s8_reference`] in QEMU.
#[doc(hidden)]
pub fn linear_s8_dsp(
    p: &LinearParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
    scratch: &mut [u32],
) -> Result<()> {
    super::linear_s8::checked(p, q, input, weights, bias, output, |p, q, x, w, b, y| {
        run(p, q, x, w, b, y, scratch)
    })
}

/// The DSP kernel on arguments checked by [`super::linear_s8`] (any shape: 0 outputs, 1–3
/// columns, an odd number of channels are all handled here); `scratch` holds the widened row
/// (the reference loop runs if it is too short).
pub(crate) fn run(
    p: &LinearParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
    scratch: &mut [u32],
) {
    if p.out_features == 0 || p.in_features == 0 {
        return;
    }
    let Some(xw) = scratch.get_mut(..super::linear_s8_scratch_words(p.in_features)) else {
        super::linear_s8::reference(p, q, input, weights, bias, output);
        return;
    };
    let rows = input
        .chunks_exact(p.in_features)
        .zip(output.chunks_exact_mut(p.out_features));
    for (x, y) in rows {
        row(p.activation, q, x, xw, weights.as_bytes(), bias, y);
    }
}

/// [`activation_range`], not inlined: inlined, LLVM computed ReLU6's `roundf(6 / scale)`
/// (≈ 40 instructions) on every call whatever the activation.
#[inline(never)]
fn output_clamp(act: Activation, out: crate::tensor::QuantParams) -> (i32, i32) {
    activation_range(act, out)
}

/// One requantized output: multiplier `m` (little-endian bytes), shift `s` (an `i8`'s byte).
#[inline(always)]
fn finish(acc: i32, m: &[u8; 4], s: u8, range: &OutputRange) -> i8 {
    let requant = Requantizer::new(i32::from_le_bytes(*m), i32::from(s as i8));
    requantize_fast(acc, &requant, range)
}

/// One input row: `y[o] = requantize(bias[o] + Σ_i W[o][i] · (x[i] − input_zp))`, four channels
/// per pass; `xw` (`2·⌊n/4⌋` words) receives the widened row.
fn row(
    act: Activation,
    q: &PerChannelQuant<'_>,
    x: &[i8],
    xw: &mut [u32],
    weights: &[u8],
    bias: I32Data<'_>,
    y: &mut [i8],
) {
    let n = x.len();
    let zp_in = i32::from(q.input_zp);
    // −zp_in ∈ [−127, 128] in both halfwords.
    let off = u32::from((-zp_in) as u16) * 0x0001_0001;
    let zp_out = i32::from(q.output.zero_point);
    let (act_min, act_max) = output_clamp(act, q.output);
    let range = OutputRange::new(zp_out, act_min, act_max);
    let requant = |acc: i32, o: usize| {
        let m = q.multiplier.get(o).unwrap_or(0);
        let s = q.shift.get(o).unwrap_or(0);
        requantize_fast(acc, &Requantizer::new(m, i32::from(s)), &range)
    };
    let n4 = n - n % 4;
    let (x4, x_tail) = x.split_at(n4);
    widen(x4, off, xw);
    let xw: &[u32] = xw;

    let mut o = 0;
    let mut quads = weights.chunks_exact(4 * n);
    let mut outs4 = y.chunks_exact_mut(4);
    // Bias, multiplier and shift of each quad as fixed-size arrays (no index checks).
    let b16 = bias.as_bytes().chunks_exact(16);
    let m16 = q.multiplier.as_bytes().chunks_exact(16);
    let s4 = q.shift.as_bytes().chunks_exact(4);
    let le = |b: &[u8], r: usize| {
        i32::from_le_bytes([b[4 * r], b[4 * r + 1], b[4 * r + 2], b[4 * r + 3]])
    };
    let m16 = m16.map(|m| {
        let w = |r: usize| [m[4 * r], m[4 * r + 1], m[4 * r + 2], m[4 * r + 3]];
        [w(0), w(1), w(2), w(3)]
    });
    let s4 = s4.map(|s| [s[0], s[1], s[2], s[3]]);
    let quad_data = b16.zip(m16).zip(s4);
    for ((block, y4), ((b, m), s)) in (&mut quads).zip(&mut outs4).zip(quad_data) {
        let mut acc = [le(b, 0), le(b, 1), le(b, 2), le(b, 3)];
        dot4(xw, block, n, &mut acc);
        if !x_tail.is_empty() {
            for (r, a) in acc.iter_mut().enumerate() {
                if let Some(w_tail) = block.get(r * n + n4..(r + 1) * n) {
                    for (&xv, &c) in x_tail.iter().zip(w_tail) {
                        *a = a.wrapping_add(i32::from(c as i8) * (i32::from(xv) - zp_in));
                    }
                }
            }
        }
        // Unrolled: constant offsets, one unaligned `LDR` per multiplier.
        if let ([y0, y1, y2, y3], [m0, m1, m2, m3], [s0, s1, s2, s3]) = (y4, m, s) {
            *y0 = finish(acc[0], &m0, s0, &range);
            *y1 = finish(acc[1], &m1, s1, &range);
            *y2 = finish(acc[2], &m2, s2, &range);
            *y3 = finish(acc[3], &m3, s3, &range);
        }
        o += 4;
    }
    // 0–3 channels left: a pair, then one.
    let y = outs4.into_remainder();
    let weights = quads.remainder();
    let mut pairs = weights.chunks_exact(2 * n);
    let mut outs = y.chunks_exact_mut(2);
    for (w01, y01) in (&mut pairs).zip(&mut outs) {
        let mut acc = [bias.get(o).unwrap_or(0), bias.get(o + 1).unwrap_or(0)];
        dot2(xw, w01, n, &mut acc);
        let [mut a0, mut a1] = acc;
        if !x_tail.is_empty() {
            let (w0, w1) = w01.split_at(n);
            let (w0_tail, w1_tail) = (&w0[n4..], &w1[n4..]);
            for ((&xv, &c0), &c1) in x_tail.iter().zip(w0_tail).zip(w1_tail) {
                let xo = i32::from(xv) - zp_in;
                a0 = a0.wrapping_add(i32::from(c0 as i8) * xo);
                a1 = a1.wrapping_add(i32::from(c1 as i8) * xo);
            }
        }
        let m8 = q.multiplier.as_bytes().get(4 * o..4 * o + 8);
        let s2 = q.shift.as_bytes().get(o..o + 2);
        if let ([y0, y1], Some([m0, m1, m2, m3, m4, m5, m6, m7]), Some([s0, s1])) = (y01, m8, s2) {
            *y0 = finish(a0, &[*m0, *m1, *m2, *m3], *s0, &range);
            *y1 = finish(a1, &[*m4, *m5, *m6, *m7], *s1, &range);
        }
        o += 2;
    }
    // An odd last channel: one row alone.
    if let (Some(y0), Some(w0)) = (
        outs.into_remainder().first_mut(),
        pairs.remainder().get(..n),
    ) {
        let (w0_4, w0_tail) = w0.split_at(n4.min(w0.len()));
        let mut a0 = dot1(xw, w0_4, bias.get(o).unwrap_or(0));
        for (&xv, &c0) in x_tail.iter().zip(w0_tail) {
            a0 = a0.wrapping_add(i32::from(c0 as i8) * (i32::from(xv) - zp_in));
        }
        *y0 = requant(a0, o);
    }
}
