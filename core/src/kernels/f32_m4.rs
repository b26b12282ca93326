//! f32 dot products on the Cortex-M4F (FPv4-SP; `thumbv7em-*` only, `cfg(denoiserep_dsp)` from
//! `core/build.rs`): the inner loops of Linear, Conv2d and DepthwiseConv2d f32 on the device.
//!
//! Same bits as the reference loops, on every input: each output's terms `t_j = w_j · x_j` go
//! into lane `j mod 8` in increasing `j` (8 accumulator registers per output, starting at
//! `+0.0`), then the fixed tree `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`, then the
//! bias (`kernels` module docs). Every product is rounded before it is added: `VMUL.F32` then
//! `VADD.F32`, never `VFMA`. (`VMLA.F32` would be bit-identical — the ARMv7-M ARM defines it as
//! `FPAdd(S[d], FPMul(S[n], S[m]))`, each rounded, with the same FPSCR controls — but the
//! Cortex-M4 TRM gives it 3 cycles against 1 + 1 for `VMUL` + `VADD`, so it would only look
//! better in QEMU's instruction count.) FPSCR is never changed: round to nearest, no flush to
//! zero, no default NaN, as on the host (NaN payloads may still differ from x86; the tests
//! compare NaN as NaN).
//!
//! Design:
//!
//! - [`dot2`]: two weight rows (two output channels) per pass over the input: per 8 inputs one
//!   `VLDMIA` of the inputs (the input is `&[f32]`, so 4-aligned), per row 8 weights, 8 `VMUL`,
//!   8 `VADD` into the row's 8 lane registers (`s0–s7`, `s8–s15`). Weights live in the model
//!   file, whose bytes are not aligned: aligned rows take one `VLDMIA` per 8 weights (37
//!   instructions per 16 MACs with the loop test, 2.31 per MAC); unaligned ones take 8 `LDR`
//!   (ARMv7-M allows unaligned `LDR`, never unaligned `VLDR`/`VLDM`) and 4 two-register
//!   `VMOV`s (59 per 16 MACs, 3.69 per MAC). [`dot1`]: the same for an odd last row.
//! - The fixed tree inside the assembly when the length is a multiple of 8; otherwise the lanes
//!   come out, and the 1–7 terms past the last whole 8 (lanes `0..n mod 8`) and the tree are
//!   added in Rust. The bias and the activation in Rust, once per output ([`dot_rows`]).
//! - Linear with `in_features` a multiple of 8: [`linear_pairs`], all output pairs of a row in
//!   one assembly loop with the trees, the bias, the activation (ReLU from the sign bit, `BIC`)
//!   and the stores, two steps of 8 per loop test; unaligned weights go through a 32-byte
//!   bounce buffer on the stack (8 `LDR`, one `STMIA`, one `VLDMIA` per 8: 54 instructions per
//!   16 MACs instead of 59). Other Linear: [`dot_rows`] on each input row.
//! - Conv2d with arena scratch (any `K = ci·kh·kw`, [`im2col_pairs`]): the im2col patches of
//!   two output pixels in the scratch, then [`dot_pair`]: per weight row, per 8 taps the 8
//!   weights once and each pixel's 8 patch values, 8 `VMUL`, 8 `VADD` into that pixel's lanes
//!   (37 instructions per 16 MACs aligned, 48 unaligned), all output channels in one assembly
//!   loop, the sums stored straight into the output; bias and activation per channel plane
//!   after. `K` not a multiple of 8: the weights are copied into the scratch as zero-padded rows.
//! - Conv2d without scratch, `K ≤` [`PATCH`] (72 floats, 288 bytes of stack): per output pixel
//!   an im2col patch in weight order `j` on the stack, then [`dot_rows`] over the output
//!   channels. In both, a zero in place of a padded tap adds `w · 0.0 = ±0.0` to its lane, the
//!   same bits as skipping it for finite `w` (module docs of `kernels`), so a layer with padding
//!   and a non-finite weight runs the reference loop, as does a longer filter without scratch.
//! - Conv2d with one input channel and a 3×3 filter (the first layer of an image CNN) and every
//!   channel of a 3×3 DepthwiseConv2d: the 9 weights stay in `s0–s8`, each output pixel is 3
//!   `VLDMIA` of 3 taps, 9 `VMUL`, 9 `VADD` (lane 0 gets `t0 + t8`, the tree, the bias) and
//!   the activation, straight from the input plane ([`conv3x3_pixels`]); a padded row of taps
//!   reads [`ZERO_ROW`], a pixel with a padded column a zero-padded 9-float patch.
//!
//! Stack: the patch paths' frames are never inlined into each other; the scratch path keeps its
//! patches in the arena, so only the calls without scratch (the depthwise op's non-3×3 filters)
//! use the 72-float stack patch, and narrow 3×3 planes a 3 × [`STRIP`]-float strip.
//!
//! The only `unsafe` is the `asm!` blocks, whose reads are bounds-checked before they run (see
//! their SAFETY notes), and a byte view of the padded weights ([`f32_bytes`]).

use core::arch::asm;

use super::params::{ConvParams, DepthwiseParams, LinearParams};
use super::{activate_f32, conv_geometry, lanes_sum, tap_range, ConvGeometry, LANES};
use crate::error::{Error, Result};
use crate::tensor::{Activation, F32Data};

/// `asm!` with every FPU register `s0–s31` declared clobbered (`out("sN") _`): the loops that
/// use the whole register file (lanes, inputs, weights) go through it, so no block can forget one.
macro_rules! asm_all_s {
    ($($body:tt)*) => {
        asm!(
            $($body)*
            out("s0") _,
            out("s1") _,
            out("s2") _,
            out("s3") _,
            out("s4") _,
            out("s5") _,
            out("s6") _,
            out("s7") _,
            out("s8") _,
            out("s9") _,
            out("s10") _,
            out("s11") _,
            out("s12") _,
            out("s13") _,
            out("s14") _,
            out("s15") _,
            out("s16") _,
            out("s17") _,
            out("s18") _,
            out("s19") _,
            out("s20") _,
            out("s21") _,
            out("s22") _,
            out("s23") _,
            out("s24") _,
            out("s25") _,
            out("s26") _,
            out("s27") _,
            out("s28") _,
            out("s29") _,
            out("s30") _,
            out("s31") _,
        )
    };
}

/// One step of 8 terms for one row into lanes `$a0..$a7` (`s` register names): the inputs are in
/// `s16–s23`, the 8 weights in `s24–s31` (loaded by the caller's `$load`).
macro_rules! mul_add8 {
    ($a0:literal, $a1:literal, $a2:literal, $a3:literal, $a4:literal, $a5:literal, $a6:literal, $a7:literal) => {
        concat!(
            "vmul.f32 s24, s24, s16\n",
            "vmul.f32 s25, s25, s17\n",
            "vmul.f32 s26, s26, s18\n",
            "vmul.f32 s27, s27, s19\n",
            "vmul.f32 s28, s28, s20\n",
            "vmul.f32 s29, s29, s21\n",
            "vmul.f32 s30, s30, s22\n",
            "vmul.f32 s31, s31, s23\n",
            "vadd.f32 ",
            $a0,
            ", ",
            $a0,
            ", s24\n",
            "vadd.f32 ",
            $a1,
            ", ",
            $a1,
            ", s25\n",
            "vadd.f32 ",
            $a2,
            ", ",
            $a2,
            ", s26\n",
            "vadd.f32 ",
            $a3,
            ", ",
            $a3,
            ", s27\n",
            "vadd.f32 ",
            $a4,
            ", ",
            $a4,
            ", s28\n",
            "vadd.f32 ",
            $a5,
            ", ",
            $a5,
            ", s29\n",
            "vadd.f32 ",
            $a6,
            ", ",
            $a6,
            ", s30\n",
            "vadd.f32 ",
            $a7,
            ", ",
            $a7,
            ", s31\n",
        )
    };
}

/// 8 weights from an aligned row pointer `$w` (advanced by 32) into `s24–s31`.
macro_rules! load_w_aligned {
    ($w:literal) => {
        // The temporaries of `load_w_unaligned` are unused here (an assembler comment names
        // them, so both variants share one operand list).
        concat!("vldmia ", $w, "!, {{s24-s31}} @ {t0} {t1} {t2} {t3}\n")
    };
}

/// 8 weights from an unaligned row pointer `$w` (advanced by 32) into `s24–s31`: 8 `LDR`, 4
/// `VMOV`.
macro_rules! load_w_unaligned {
    ($w:literal) => {
        concat!(
            "ldr {t0}, [",
            $w,
            "], #4\n",
            "ldr {t1}, [",
            $w,
            "], #4\n",
            "ldr {t2}, [",
            $w,
            "], #4\n",
            "ldr {t3}, [",
            $w,
            "], #4\n",
            "vmov s24, s25, {t0}, {t1}\n",
            "vmov s26, s27, {t2}, {t3}\n",
            "ldr {t0}, [",
            $w,
            "], #4\n",
            "ldr {t1}, [",
            $w,
            "], #4\n",
            "ldr {t2}, [",
            $w,
            "], #4\n",
            "ldr {t3}, [",
            $w,
            "], #4\n",
            "vmov s28, s29, {t0}, {t1}\n",
            "vmov s30, s31, {t2}, {t3}\n",
        )
    };
}

/// Lanes out: row 0's 8 lanes to `acc[0..8]`, row 1's to `acc[8..16]`.
macro_rules! store_lanes2 {
    () => {
        "vstmia {acc}, {{s0-s15}}\n"
    };
}

/// The fixed tree of each row (`((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`), row 0's sum
/// to `acc[0]`, row 1's to `acc[1]`.
macro_rules! store_sums2 {
    () => {
        concat!(
            "vadd.f32 s0, s0, s1\n",
            "vadd.f32 s2, s2, s3\n",
            "vadd.f32 s4, s4, s5\n",
            "vadd.f32 s6, s6, s7\n",
            "vadd.f32 s0, s0, s2\n",
            "vadd.f32 s4, s4, s6\n",
            "vadd.f32 s0, s0, s4\n",
            "vadd.f32 s8, s8, s9\n",
            "vadd.f32 s10, s10, s11\n",
            "vadd.f32 s12, s12, s13\n",
            "vadd.f32 s14, s14, s15\n",
            "vadd.f32 s8, s8, s10\n",
            "vadd.f32 s12, s12, s14\n",
            "vadd.f32 s8, s8, s12\n",
            "vstr s0, [{acc}]\n",
            "vstr s8, [{acc}, #4]\n",
        )
    };
}

/// Lanes out, one row: `acc[0..8]`.
macro_rules! store_lanes1 {
    () => {
        "vstmia {acc}, {{s0-s7}}\n"
    };
}

/// The fixed tree, one row: `acc[0]`.
macro_rules! store_sums1 {
    () => {
        concat!(
            "vadd.f32 s0, s0, s1\n",
            "vadd.f32 s2, s2, s3\n",
            "vadd.f32 s4, s4, s5\n",
            "vadd.f32 s6, s6, s7\n",
            "vadd.f32 s0, s0, s2\n",
            "vadd.f32 s4, s4, s6\n",
            "vadd.f32 s0, s0, s4\n",
            "vstr s0, [{acc}]\n",
        )
    };
}

/// `+0.0` for the lanes' start.
static ZEROS: [f32; 2 * LANES] = [0.0; 2 * LANES];

/// The two-row loop: `$load` is [`load_w_aligned`] or [`load_w_unaligned`], `$store` is
/// [`store_lanes2`] or [`store_sums2`].
macro_rules! dot2_loop {
    ($load:ident, $store:ident, $x:ident, $w0:ident, $w1:ident, $end:ident, $acc:ident) => {
        asm_all_s!(
            "vldmia {z}, {{s0-s15}}",
            "2:",
            "vldmia {x}!, {{s16-s23}}",
            $load!("{w0}"),
            mul_add8!("s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"),
            $load!("{w1}"),
            mul_add8!("s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15"),
            "cmp {x}, {end}",
            "bne 2b",
            $store!(),
            x = inout(reg) $x => _,
            w0 = inout(reg) $w0 => _,
            w1 = inout(reg) $w1 => _,
            end = in(reg) $end,
            acc = in(reg) $acc,
            z = in(reg) ZEROS.as_ptr(),
            t0 = out(reg) _,
            t1 = out(reg) _,
            t2 = out(reg) _,
            t3 = out(reg) _,
            options(nostack),
        )
    };
}

/// The one-row loop (`$store`: [`store_lanes1`] or [`store_sums1`]).
macro_rules! dot1_loop {
    ($load:ident, $store:ident, $x:ident, $w0:ident, $end:ident, $acc:ident) => {
        asm_all_s!(
            "vldmia {z}, {{s0-s7}}",
            "2:",
            "vldmia {x}!, {{s16-s23}}",
            $load!("{w0}"),
            mul_add8!("s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"),
            "cmp {x}, {end}",
            "bne 2b",
            $store!(),
            x = inout(reg) $x => _,
            w0 = inout(reg) $w0 => _,
            end = in(reg) $end,
            acc = in(reg) $acc,
            z = in(reg) ZEROS.as_ptr(),
            t0 = out(reg) _,
            t1 = out(reg) _,
            t2 = out(reg) _,
            t3 = out(reg) _,
            options(nostack),
        )
    };
}

/// For each lane `l < 8`: `a_l = Σ_{k < x.len()/8} w0[8k + l] · x[8k + l]` in increasing `k`
/// from `+0.0`, and `b_l` the same for `w1` (`w0`, `w1`: little-endian f32 rows of at least
/// `4 · x.len()` bytes, any alignment). Only the whole 8s of `x` are read. With `sums`, writes
/// the trees `acc[0] = tree(a)`, `acc[1] = tree(b)`; otherwise the lanes, `acc = [a, b]`.
/// Nothing is written when `x` has fewer than 8 values or `acc` is shorter than that.
#[inline(never)]
fn dot2(x: &[f32], w0: &[u8], w1: &[u8], sums: bool, acc: &mut [f32]) {
    let n8 = x.len() / LANES * LANES;
    let need = if sums { 2 } else { 2 * LANES };
    if n8 == 0 || w0.len() < 4 * n8 || w1.len() < 4 * n8 || acc.len() < need {
        return; // nothing to do, or impossible for [`dot_rows`]'s arguments
    }
    let x_ptr = x.as_ptr();
    let end = x_ptr.wrapping_add(n8);
    let (p0, p1) = (w0.as_ptr(), w1.as_ptr());
    let acc_ptr = acc.as_mut_ptr();
    // SAFETY: reads the first n8 ≥ 8 floats of `x` (4-aligned, as every `&[f32]`), the first
    // 4·n8 bytes of `w0` and `w1`, all checked above, and the 16 of `ZEROS`; writes the first 2
    // (`sums`) or 16 floats of `acc`, checked above. The loop stops when `x` reaches `end`, after n8/8 ≥ 1 steps of 8.
    // `VLDMIA` needs 4-aligned addresses: the weights take it only when both row pointers are
    // 4-aligned, otherwise unaligned `LDR`s (allowed on ARMv7-M: CCR.UNALIGN_TRP is 0 out of
    // reset). Every register written is declared: the operands and `s0–s31` (the compiler
    // saves the callee-saved `s16–s31` in the prologue). Flags: `cmp`. FPSCR is
    // not touched.
    unsafe {
        match ((p0 as usize | p1 as usize).is_multiple_of(4), sums) {
            (true, true) => dot2_loop!(load_w_aligned, store_sums2, x_ptr, p0, p1, end, acc_ptr),
            (true, false) => {
                dot2_loop!(load_w_aligned, store_lanes2, x_ptr, p0, p1, end, acc_ptr)
            }
            (false, true) => {
                dot2_loop!(load_w_unaligned, store_sums2, x_ptr, p0, p1, end, acc_ptr)
            }
            (false, false) => {
                dot2_loop!(load_w_unaligned, store_lanes2, x_ptr, p0, p1, end, acc_ptr)
            }
        }
    }
}

/// [`dot2`] for one row (`acc[0] = tree(a)`, or the lanes in `acc[0..8]`).
#[inline(never)]
fn dot1(x: &[f32], w0: &[u8], sums: bool, acc: &mut [f32]) {
    let n8 = x.len() / LANES * LANES;
    let need = if sums { 1 } else { LANES };
    if n8 == 0 || w0.len() < 4 * n8 || acc.len() < need {
        return;
    }
    let x_ptr = x.as_ptr();
    let end = x_ptr.wrapping_add(n8);
    let p0 = w0.as_ptr();
    let acc_ptr = acc.as_mut_ptr();
    // SAFETY: as in [`dot2`], for one row (1 or 8 floats of `acc`, checked above).
    unsafe {
        match ((p0 as usize).is_multiple_of(4), sums) {
            (true, true) => dot1_loop!(load_w_aligned, store_sums1, x_ptr, p0, end, acc_ptr),
            (true, false) => dot1_loop!(load_w_aligned, store_lanes1, x_ptr, p0, end, acc_ptr),
            (false, true) => dot1_loop!(load_w_unaligned, store_sums1, x_ptr, p0, end, acc_ptr),
            (false, false) => {
                dot1_loop!(load_w_unaligned, store_lanes1, x_ptr, p0, end, acc_ptr)
            }
        }
    }
}

/// Weight `j` of a little-endian f32 row (0.0 past its end: never for [`dot_rows`]'s callers).
#[inline(always)]
fn weight(row: &[u8], j: usize) -> f32 {
    match row.get(4 * j..4 * j + 4) {
        Some(&[a, b, c, d]) => f32::from_le_bytes([a, b, c, d]),
        _ => 0.0,
    }
}

/// The tail terms `j = n8..x.len()` into lanes `0..x.len() − n8`.
#[inline(always)]
fn tail(x: &[f32], n8: usize, row: &[u8], lanes: &mut [f32; LANES]) {
    for (l, (j, &xv)) in lanes.iter_mut().zip(x.iter().enumerate().skip(n8)) {
        *l += weight(row, j) * xv;
    }
}

/// For each of the `rows` weight rows `W[o]` (`n = x.len()` little-endian f32 each, row `o` at
/// byte `4·n·o` of `weights`, any alignment): `out(o, dot(W[o], x))`, `dot` in the 8-lane order
/// with the fixed tree (no bias). Two rows per pass ([`dot2`]), an odd last row alone
/// ([`dot1`]). Rows past the end of `weights` are not visited.
#[inline]
pub(crate) fn dot_rows(x: &[f32], weights: &[u8], rows: usize, mut out: impl FnMut(usize, f32)) {
    let n = x.len();
    if n == 0 {
        return;
    }
    let n8 = n / LANES * LANES;
    let whole = n8 == n; // no tail: the trees come out of the assembly
    let mut pairs = weights.chunks_exact(8 * n).take(rows / 2);
    let mut o = 0;
    for pair in &mut pairs {
        let (w0, w1) = pair.split_at(4 * n);
        let [s0, s1] = if whole {
            let mut sums = [0.0f32; 2];
            dot2(x, w0, w1, true, &mut sums);
            sums
        } else {
            pair_with_tail(x, w0, w1)
        };
        out(o, s0);
        out(o + 1, s1);
        o += 2;
    }
    if rows % 2 == 1 {
        if let Some(w0) = weights.get(4 * n * o..4 * n * (o + 1)) {
            let s0 = if whole {
                let mut sum = [0.0f32; 1];
                dot1(x, w0, true, &mut sum);
                sum[0]
            } else {
                row_with_tail(x, w0)
            };
            out(o, s0);
        }
    }
}

/// The two sums of [`dot_rows`] when `x.len()` is not a multiple of 8: the lanes of the whole
/// 8s from [`dot2`], the 1–7 tail terms in Rust, the trees. Never inlined, so its lane arrays
/// are not in the caller's frame.
#[inline(never)]
fn pair_with_tail(x: &[f32], w0: &[u8], w1: &[u8]) -> [f32; 2] {
    let n8 = x.len() / LANES * LANES;
    let mut acc = [0.0f32; 2 * LANES];
    dot2(x, w0, w1, false, &mut acc);
    let (a, b) = acc.split_at_mut(LANES);
    let (Ok(a), Ok(b)) = (
        <&mut [f32; LANES]>::try_from(a),
        <&mut [f32; LANES]>::try_from(b),
    ) else {
        return [0.0; 2]; // never: 16 = 8 + 8
    };
    tail(x, n8, w0, a);
    tail(x, n8, w1, b);
    [lanes_sum(a), lanes_sum(b)]
}

/// [`pair_with_tail`] for one row.
#[inline(never)]
fn row_with_tail(x: &[f32], w0: &[u8]) -> f32 {
    let n8 = x.len() / LANES * LANES;
    let mut a = [0.0f32; LANES];
    dot1(x, w0, false, &mut a);
    tail(x, n8, w0, &mut a);
    lanes_sum(&a)
}

/// 8 weights from the aligned row pointer `$w` (advanced by 32) into `s24–s31` (an assembler
/// comment names `{t0}`, `{t1}`, which not every activation uses).
macro_rules! lw_aligned {
    ($w:literal) => {
        concat!("vldmia ", $w, "!, {{s24-s31}} @ {t0} {t1}\n")
    };
}

/// The first step of 8 terms of one row: lanes `$a0..$a7` = `w · x` (inputs `s16–s23`,
/// weights `s24–s31`).
macro_rules! first_mul8 {
    ($a0:literal, $a1:literal, $a2:literal, $a3:literal, $a4:literal, $a5:literal, $a6:literal, $a7:literal) => {
        concat!(
            "vmul.f32 ",
            $a0,
            ", s24, s16\n",
            "vmul.f32 ",
            $a1,
            ", s25, s17\n",
            "vmul.f32 ",
            $a2,
            ", s26, s18\n",
            "vmul.f32 ",
            $a3,
            ", s27, s19\n",
            "vmul.f32 ",
            $a4,
            ", s28, s20\n",
            "vmul.f32 ",
            $a5,
            ", s29, s21\n",
            "vmul.f32 ",
            $a6,
            ", s30, s22\n",
            "vmul.f32 ",
            $a7,
            ", s31, s23\n",
        )
    };
}

/// `canon` of the two sums `s0`, `s1` (`+ 0.0`: `−0.0` becomes `+0.0`, `s4` = `+0.0`), then
/// `s0`, `s1` to `out[0..2]` (`out` advanced by 8): no activation.
macro_rules! act_none2 {
    () => {
        concat!(
            "movs {t0}, #0\n",
            "vmov s4, {t0}\n",
            "vadd.f32 s0, s0, s4\n",
            "vadd.f32 s1, s1, s4\n",
            "vstmia {out}!, {{s0-s1}}\n",
        )
    };
}

/// ReLU of the two sums `s0`, `s1` into `out[0..2]` (`out` advanced by 8). Neither a NaN (one
/// `VCMP` of the two: unordered sets V): the bit pattern with its sign bit set (`x < 0`, or
/// `−0.0`, which `canon` would make `+0.0`) becomes `+0.0`, any other stays (`BIC x, x, x ASR
/// #31`), stored from the core registers. A NaN among them: [`relu2_nan`].
macro_rules! act_relu2 {
    () => {
        concat!(
            "vcmp.f32 s0, s1\n",
            "vmrs APSR_nzcv, fpscr\n",
            "bvs 7f\n",
            "vmov {t0}, {t1}, s0, s1\n",
            "bic {t0}, {t0}, {t0}, asr #31\n",
            "bic {t1}, {t1}, {t1}, asr #31\n",
            "strd {t0}, {t1}, [{out}], #8\n",
        )
    };
}

/// The out-of-line part of [`act_relu2`] (label 7, back to 6): `canon` of `s0`, `s1`, then
/// `x < 0 → +0.0` for each (a NaN stays), as [`activate_f32`], and the store.
macro_rules! relu2_nan {
    () => {
        concat!(
            "7:\n",
            "movs {t0}, #0\n",
            "vmov s4, {t0}\n",
            "vadd.f32 s0, s0, s4\n",
            "vadd.f32 s1, s1, s4\n",
            "vcmp.f32 s0, #0\nvmrs APSR_nzcv, fpscr\nit mi\nvmovmi.f32 s0, s4\n",
            "vcmp.f32 s1, #0\nvmrs APSR_nzcv, fpscr\nit mi\nvmovmi.f32 s1, s4\n",
            "vstmia {out}!, {{s0-s1}}\n",
            "b 6b\n",
        )
    };
}

/// ReLU6 of `s0`, `s1` after `canon` (`s4` = `+0.0`, `s5` = `6.0`), as [`activate_f32`], into
/// `out[0..2]` (`out` advanced by 8).
macro_rules! act_relu6_2 {
    () => {
        concat!(
            "movs {t0}, #0\n",
            "vmov s4, {t0}\n",
            "vadd.f32 s0, s0, s4\n",
            "vadd.f32 s1, s1, s4\n",
            "vmov.f32 s5, #6.0\n",
            "vcmp.f32 s0, #0\nvmrs APSR_nzcv, fpscr\nit mi\nvmovmi.f32 s0, s4\n",
            "vcmp.f32 s1, #0\nvmrs APSR_nzcv, fpscr\nit mi\nvmovmi.f32 s1, s4\n",
            "vcmp.f32 s0, s5\nvmrs APSR_nzcv, fpscr\nit gt\nvmovgt.f32 s0, s5\n",
            "vcmp.f32 s1, s5\nvmrs APSR_nzcv, fpscr\nit gt\nvmovgt.f32 s1, s5\n",
            "vstmia {out}!, {{s0-s1}}\n",
        )
    };
}

/// The first step of 8 inputs of a row pair in [`linear_pairs_loop`] and
/// [`linear_pairs_bounce_loop`]: one `VLDMIA` of the inputs, then per row its 8 weights (`$lw`:
/// [`lw_aligned`] or [`lw_bounce`]) and 8 `VMUL` into its lanes (row 0 `s0–s7`, row 1 `s8–s15`).
macro_rules! pair_first8 {
    ($lw:ident) => {
        concat!(
            "vldmia {xp}!, {{s16-s23}}\n",
            $lw!("{w0}"),
            first_mul8!("s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"),
            $lw!("{w1}"),
            first_mul8!("s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15"),
        )
    };
}

/// The other `n/8 − 1` steps of a row pair, two per loop test (the caller branches to `42` for
/// an odd count), then the fixed trees: row 0's sum in `s0`, row 1's in `s1`. `$lw` as in
/// [`pair_first8`].
macro_rules! pair_steps {
    ($lw:ident) => {
        concat!(
            "cmp {xp}, {end}\n",
            "beq 5f\n",
            "4:\n",
            "vldmia {xp}!, {{s16-s23}}\n",
            $lw!("{w0}"),
            mul_add8!("s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"),
            $lw!("{w1}"),
            mul_add8!("s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15"),
            "42:\n",
            "vldmia {xp}!, {{s16-s23}}\n",
            $lw!("{w0}"),
            mul_add8!("s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"),
            $lw!("{w1}"),
            mul_add8!("s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15"),
            "cmp {xp}, {end}\n",
            "bne 4b\n",
            "5:\n",
            "vadd.f32 s0, s0, s1\n",
            "vadd.f32 s2, s2, s3\n",
            "vadd.f32 s4, s4, s5\n",
            "vadd.f32 s6, s6, s7\n",
            "vadd.f32 s0, s0, s2\n",
            "vadd.f32 s4, s4, s6\n",
            "vadd.f32 s0, s0, s4\n",
            "vadd.f32 s8, s8, s9\n",
            "vadd.f32 s10, s10, s11\n",
            "vadd.f32 s12, s12, s13\n",
            "vadd.f32 s14, s14, s15\n",
            "vadd.f32 s8, s8, s10\n",
            "vadd.f32 s12, s12, s14\n",
            "vadd.f32 s1, s8, s12\n",
        )
    };
}

/// The loop of [`linear_pairs`] for 4-aligned weights ([`lw_aligned`]); `$act` the activation
/// and store of `s0` and `s1` ([`act_none2`], [`act_relu2`], [`act_relu6_2`]), `$cold` its
/// out-of-line part (label 7, `""` if none).
macro_rules! linear_pairs_loop {
    ($act:expr, $cold:expr, $end:ident, $n4:ident, $w:ident, $pairs:ident, $out:ident, $bias:ident) => {
        asm_all_s!(
            "3:",
            "sub {xp}, {end}, {n4}",
            "add {w1}, {w0}, {n4}",
            // The first 8 terms: the products are the lanes.
            pair_first8!(lw_aligned),
            // The other n/8 − 1 steps of 8, two per loop test: an odd count enters at the
            // second (n/8 even: bit 5 of 4n clear), none skips the loop.
            "tst {n4}, #32",
            "beq 42f",
            pair_steps!(lw_aligned),
            // + bias (unaligned bytes), then the activation and the store.
            "ldr {t0}, [{bias}], #4",
            "ldr {t1}, [{bias}], #4",
            "vmov s2, s3, {t0}, {t1}",
            "vadd.f32 s0, s0, s2",
            "vadd.f32 s1, s1, s3",
            $act,
            "6:",
            // {w1} ran to the end of row 1: the next pair's row 0.
            "mov {w0}, {w1}",
            "subs {pairs}, {pairs}, #1",
            "bne 3b",
            "b 9f",
            $cold,
            "9:",
            xp = out(reg) _,
            end = in(reg) $end,
            n4 = in(reg) $n4,
            w0 = inout(reg) $w => _,
            w1 = out(reg) _,
            pairs = inout(reg) $pairs => _,
            out = inout(reg) $out => _,
            bias = inout(reg) $bias => _,
            t0 = out(reg) _,
            t1 = out(reg) _,
            options(nostack),
        )
    };
}

/// 8 weights from the unaligned row pointer `$w` (advanced by 32) into `s24–s31` through the
/// 32-byte bounce buffer at `sp`: 8 `LDR` into `r0–r3`, `r8–r11`, one `STMIA`, one `VLDMIA`
/// (10 instructions against 12 with `VMOV`s).
macro_rules! lw_bounce {
    ($w:literal) => {
        concat!(
            "ldr r0, [",
            $w,
            "], #4\n",
            "ldr r1, [",
            $w,
            "], #4\n",
            "ldr r2, [",
            $w,
            "], #4\n",
            "ldr r3, [",
            $w,
            "], #4\n",
            "ldr r8, [",
            $w,
            "], #4\n",
            "ldr r9, [",
            $w,
            "], #4\n",
            "ldr r10, [",
            $w,
            "], #4\n",
            "ldr r11, [",
            $w,
            "], #4\n",
            "stmia sp, {{r0-r3, r8-r11}}\n",
            "vldmia sp, {{s24-s31}}\n",
        )
    };
}

/// [`act_none2`] in [`linear_pairs_bounce_loop`]: the output pointer at `[sp, #40]`.
macro_rules! bounce_none2 {
    () => {
        concat!(
            "movs r1, #0\n",
            "vmov s4, r1\n",
            "vadd.f32 s0, s0, s4\n",
            "vadd.f32 s1, s1, s4\n",
            "ldr r0, [sp, #40]\n",
            "vstmia r0!, {{s0-s1}}\n",
            "str r0, [sp, #40]\n",
        )
    };
}

/// [`act_relu2`] in [`linear_pairs_bounce_loop`]; a NaN: [`bounce_relu2_nan`].
macro_rules! bounce_relu2 {
    () => {
        concat!(
            "vcmp.f32 s0, s1\n",
            "vmrs APSR_nzcv, fpscr\n",
            "bvs 7f\n",
            "vmov r1, r2, s0, s1\n",
            "bic r1, r1, r1, asr #31\n",
            "bic r2, r2, r2, asr #31\n",
            "ldr r0, [sp, #40]\n",
            "strd r1, r2, [r0], #8\n",
            "str r0, [sp, #40]\n",
        )
    };
}

/// [`relu2_nan`] in [`linear_pairs_bounce_loop`].
macro_rules! bounce_relu2_nan {
    () => {
        concat!(
            "7:\n",
            "movs r1, #0\n",
            "vmov s4, r1\n",
            "vadd.f32 s0, s0, s4\n",
            "vadd.f32 s1, s1, s4\n",
            "vcmp.f32 s0, #0\nvmrs APSR_nzcv, fpscr\nit mi\nvmovmi.f32 s0, s4\n",
            "vcmp.f32 s1, #0\nvmrs APSR_nzcv, fpscr\nit mi\nvmovmi.f32 s1, s4\n",
            "ldr r0, [sp, #40]\n",
            "vstmia r0!, {{s0-s1}}\n",
            "str r0, [sp, #40]\n",
            "b 6b\n",
        )
    };
}

/// [`act_relu6_2`] in [`linear_pairs_bounce_loop`].
macro_rules! bounce_relu6_2 {
    () => {
        concat!(
            "movs r1, #0\n",
            "vmov s4, r1\n",
            "vadd.f32 s0, s0, s4\n",
            "vadd.f32 s1, s1, s4\n",
            "vmov.f32 s5, #6.0\n",
            "vcmp.f32 s0, #0\nvmrs APSR_nzcv, fpscr\nit mi\nvmovmi.f32 s0, s4\n",
            "vcmp.f32 s1, #0\nvmrs APSR_nzcv, fpscr\nit mi\nvmovmi.f32 s1, s4\n",
            "vcmp.f32 s0, s5\nvmrs APSR_nzcv, fpscr\nit gt\nvmovgt.f32 s0, s5\n",
            "vcmp.f32 s1, s5\nvmrs APSR_nzcv, fpscr\nit gt\nvmovgt.f32 s1, s5\n",
            "ldr r0, [sp, #40]\n",
            "vstmia r0!, {{s0-s1}}\n",
            "str r0, [sp, #40]\n",
        )
    };
}

/// The loop of [`linear_pairs`] for unaligned weights: as [`linear_pairs_loop`], the weights
/// through [`lw_bounce`]. The asm's 48-byte stack frame holds the bounce buffer
/// (`[sp, #0..32]`) and the per-pair state that has no register left: `4n`, the pairs left,
/// the output and the bias pointers (`[sp, #32..48]`, from `{args}`). `$act`: [`bounce_none2`],
/// [`bounce_relu2`] or [`bounce_relu6_2`], `$cold` its out-of-line part (label 7, or `""`).
macro_rules! linear_pairs_bounce_loop {
    ($act:expr, $cold:expr, $end:ident, $w:ident, $args:ident) => {
        asm_all_s!(
            "sub sp, sp, #48",
            "ldmia {args}, {{r0-r3}}",
            "strd r0, r1, [sp, #32]",
            "strd r2, r3, [sp, #40]",
            "3:",
            "ldr r0, [sp, #32]",
            "sub {xp}, {end}, r0",
            "add {w1}, {w0}, r0",
            // Z: n/8 even (bit 5 of 4n clear); no instruction up to `beq 42f` sets flags.
            "tst r0, #32",
            // The first 8 terms: the products are the lanes.
            pair_first8!(lw_bounce),
            // The other n/8 − 1 steps of 8, two per loop test: an odd count enters at the
            // second, none skips the loop.
            "beq 42f",
            pair_steps!(lw_bounce),
            // + bias (unaligned bytes), then the activation and the store.
            "ldr r0, [sp, #44]",
            "ldr r1, [r0], #4",
            "ldr r2, [r0], #4",
            "str r0, [sp, #44]",
            "vmov s2, s3, r1, r2",
            "vadd.f32 s0, s0, s2",
            "vadd.f32 s1, s1, s3",
            $act,
            "6:",
            // {w1} ran to the end of row 1: the next pair's row 0.
            "mov {w0}, {w1}",
            "ldr r0, [sp, #36]",
            "subs r0, r0, #1",
            "str r0, [sp, #36]",
            "bne 3b",
            "b 9f",
            $cold,
            "9:",
            "add sp, sp, #48",
            xp = out(reg) _,
            end = in(reg) $end,
            w0 = inout(reg) $w => _,
            w1 = out(reg) _,
            args = in(reg) $args,
            out("r0") _,
            out("r1") _,
            out("r2") _,
            out("r3") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
        )
    };
}

/// The first `2·pairs` outputs of one Linear row with `x.len()` a positive multiple of 8, the
/// rows, the bias and the activation in one assembly loop: for `o < 2·pairs`,
/// `out[o] = act(canon(dot'(W[o], x) + bias[o]))`, `W[o]` = `x.len()` little-endian f32 at byte
/// `4·n·o` of `w` (any alignment), `bias[o]` the little-endian f32 at byte `4·o` of `bias`,
/// `canon(v)` = `v + 0.0`. `dot'` is the 8-lane order with each lane starting at its first
/// product (no `+0.0 +`): it differs from the reference's `dot` at most in the sign of a zero
/// (`−0.0` where `dot` is `+0.0`), so `dot' + bias` differs from `dot + bias` at most by a
/// `−0.0` where the reference has `+0.0` (which is never `−0.0`: `dot` is not), and `canon`
/// makes it `+0.0`: `out[o]` is the reference's `act(dot + bias)` bit for bit. ReLU needs no
/// `canon`: it maps the sign bit to `+0.0` directly ([`act_relu2`]).
///
/// Per 8 inputs and two rows: one `VLDMIA` of the inputs, the weights (`VLDMIA`, or per row 8
/// `LDR`, one `STMIA` to a bounce buffer on the stack and one `VLDMIA` when unaligned,
/// [`lw_bounce`]), 16 `VMUL`, 16 `VADD` (the first 8 inputs: none), a loop test every other
/// step: 36 instructions per 16 MACs aligned (2.25 per MAC), 54 unaligned (3.38); per pair 29
/// more with ReLU aligned (trees, bias, ReLU, store, the pair loop), 37 unaligned (the pair
/// state on the stack). Does nothing unless every slice is long enough.
#[inline(never)]
fn linear_pairs(x: &[f32], w: &[u8], bias: &[u8], pairs: usize, act: Activation, out: &mut [f32]) {
    let n = x.len();
    if n == 0
        || !n.is_multiple_of(LANES)
        || pairs == 0
        || w.len() / 8 / n < pairs
        || bias.len() / 8 < pairs
        || out.len() / 2 < pairs
    {
        return;
    }
    let end = x.as_ptr().wrapping_add(n);
    let n4 = 4 * n;
    let (wp, bp, op) = (w.as_ptr(), bias.as_ptr(), out.as_mut_ptr());
    // SAFETY: per pair, reads the n floats of `x` (4-aligned, `&[f32]`; from `end − 4n` to
    // `end` in steps of 8, n/8 ≥ 1 steps), the two rows `w[8n·i..8n·(i + 1)]` (row pointers
    // run on: row 2i + 1 ends where row 2i + 2 starts; `8n·pairs ≤ w.len()` checked above),
    // 8 bytes of `bias` (`8·pairs ≤ bias.len()`), and writes `out[2i]`, `out[2i + 1]`
    // (`2·pairs ≤ out.len()`, 4-aligned, as `STRD` and `VSTMIA` need). `VLDMIA` of the weights
    // only when `w` is 4-aligned (every row then is: rows are 4n bytes apart), otherwise
    // unaligned `LDR`s (allowed on ARMv7-M: CCR.UNALIGN_TRP is 0 out of reset); that loop also
    // reads the 4 words of `args` and uses 48 bytes of stack below `sp` (`sub sp` first, `add sp`
    // last, 8-byte alignment kept; no `nostack`), its own frame: the bounce buffer and the
    // pair state. Every register written is declared: the operands, `r0–r3` and `r8–r11` in
    // the unaligned loop, and `s0–s31` (the compiler saves the callee-saved `s16–s31`, `r8–r11`).
    // Flags: `cmp`, `movs`, `subs`, `tst`, `vmrs APSR_nzcv` (the FPSCR flags, read only).
    unsafe {
        if (wp as usize).is_multiple_of(4) {
            match act {
                Activation::None => {
                    linear_pairs_loop!(act_none2!(), "", end, n4, wp, pairs, op, bp)
                }
                Activation::Relu => {
                    linear_pairs_loop!(act_relu2!(), relu2_nan!(), end, n4, wp, pairs, op, bp)
                }
                Activation::Relu6 => {
                    linear_pairs_loop!(act_relu6_2!(), "", end, n4, wp, pairs, op, bp)
                }
            }
        } else {
            // The per-pair state of the unaligned loop, which keeps it on its stack frame.
            let args = [n4, pairs, op as usize, bp as usize];
            let ap = args.as_ptr();
            match act {
                Activation::None => linear_pairs_bounce_loop!(bounce_none2!(), "", end, wp, ap),
                Activation::Relu => {
                    linear_pairs_bounce_loop!(bounce_relu2!(), bounce_relu2_nan!(), end, wp, ap)
                }
                Activation::Relu6 => {
                    linear_pairs_bounce_loop!(bounce_relu6_2!(), "", end, wp, ap)
                }
            }
        }
    }
}

/// Largest `ci · kh · kw` that the f32 Conv2d gathers into its on-stack patch (4 bytes each; 72 =
/// 8 input channels of a 3×3 filter, the most that keeps the firmware's stack peak under its
/// 3 840 B limit); a larger filter runs the reference loop.
pub const PATCH: usize = 72;

/// Linear f32 on the device: for each input row, [`linear_pairs`] when `in_features` is a
/// multiple of 8 (an odd last output through [`last_output`]), else [`dot_rows`] over the output
/// channels, then `act(dot + bias[o])`. Arguments as checked by [`super::linear_f32`].
pub(crate) fn linear(
    p: &LinearParams,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) {
    let (n, co, act) = (p.in_features, p.out_features, p.activation);
    if co == 0 || n == 0 {
        return;
    }
    let wb = weights.as_bytes();
    if n.is_multiple_of(LANES) && co >= 2 {
        // Whole 8s: two rows at a time with the bias and the activation in the assembly, an
        // odd last row alone.
        let (bb, pairs) = (bias.as_bytes(), co / 2);
        if input.len() == n {
            linear_pairs(input, wb, bb, pairs, act, output);
            if co % 2 == 1 {
                last_output(input, wb, bias, co - 1, act, output);
            }
            return;
        }
        let mut ys = output.chunks_exact_mut(co);
        for x in input.chunks_exact(n) {
            let Some(y) = ys.next() else {
                return;
            };
            linear_pairs(x, wb, bb, pairs, act, y);
            if co % 2 == 1 {
                last_output(x, wb, bias, co - 1, act, y);
            }
        }
        return;
    }
    let mut xs = input.chunks_exact(n);
    let mut ys = output.chunks_exact_mut(co);
    while let (Some(x), Some(y)) = (xs.next(), ys.next()) {
        dot_rows(x, wb, co, |o, s| {
            if let (Some(out), Some(b)) = (y.get_mut(o), bias.get(o)) {
                *out = activate_f32(s + b, act);
            }
        });
    }
}

/// Output `o` of one Linear row: `y[o] = act(dot(W[o], x) + bias[o])` through [`dot_rows`]
/// (nothing if `o` is past `y`, `bias` or the weights). Never inlined: [`linear`]'s loop stays
/// small for the usual even output count.
#[inline(never)]
fn last_output(x: &[f32], wb: &[u8], bias: F32Data<'_>, o: usize, act: Activation, y: &mut [f32]) {
    let n = x.len();
    if let (Some(w_o), Some(out), Some(b)) = (wb.get(4 * n * o..), y.get_mut(o), bias.get(o)) {
        dot_rows(x, w_o, 1, |_, s| *out = activate_f32(s + b, act));
    }
}

/// Conv2d f32 on the device (the depthwise kernel calls it once per channel, without scratch).
/// The `ci·kh·kw` input taps of an output pixel are gathered into an im2col patch in weight
/// order `j`, padded taps as `0.0`: two pixels' patches in `scratch` when it holds
/// [`super::conv2d_f32_scratch_words`] floats (any filter length; [`im2col_pairs`]), else one
/// on the stack for filters of at most [`PATCH`] taps ([`im2col`]), else the reference loop. A
/// padded tap adds `w · 0.0 = ±0.0` to its lane instead of being skipped: the same bits for
/// finite `w` (a lane never holds `−0.0`, module docs), so a layer with padding and a
/// non-finite weight runs the reference loop too. A one-channel 3×3 filter runs [`conv3x3`].
/// Arguments as checked by [`super::conv2d_f32`].
pub(crate) fn conv2d(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
    scratch: &mut [f32],
) {
    let k = g.per_out;
    let win = &g.win;
    let padded = win.pad_top + win.pad_bottom + win.pad_left + win.pad_right > 0;
    if g.ci == 1 && win.kh == 3 && win.kw == 3 {
        conv3x3(g, act, input, weights, bias, output, 0);
    } else if k == 0 || (padded && weights.iter().any(|w| !w.is_finite())) {
        super::conv2d_f32::reference(g, act, input, weights, bias, output);
    } else if super::scratch_words_for_f32_patch(k, bias.len()).is_some_and(|n| scratch.len() >= n)
    {
        im2col_pairs(g, act, input, weights, bias, output, scratch);
    } else if k <= PATCH {
        im2col(g, act, input, weights, bias, output);
    } else {
        super::conv2d_f32::reference(g, act, input, weights, bias, output);
    }
}

/// The patch of output pixel `px` (flat index `oy·ow + ox`) into `patch` ([`gather_pixel`]).
#[inline(always)]
fn gather_at(g: &ConvGeometry, input: &[f32], patch: &mut [f32], px: usize) {
    if g.ow == 0 {
        return;
    }
    let (oy, ox) = (px / g.ow, px % g.ow);
    let rows = tap_range(oy, g.win.sh, g.win.pad_top, g.win.kh, g.h);
    let cols = tap_range(ox, g.win.sw, g.win.pad_left, g.win.kw, g.w);
    gather_pixel(
        input,
        patch,
        g.ci,
        g.h * g.w,
        g.w,
        g.win.kh,
        g.win.kw,
        rows,
        cols,
    );
}

/// [`conv2d`]'s scratch path (`K = ci·kh·kw > 0`, `K8` = `K` rounded up to a multiple of 8,
/// `scratch` of [`super::conv2d_f32_scratch_words`] floats: patch `A` = `scratch[0..K8]`, patch
/// `B` = `scratch[K8..2·K8]`, 16 zeros, then — when `K8 ≠ K` or `co·K8 ≤`
/// [`super::conv2d_f32::SMALL_WEIGHTS`] — the weights as `co` rows of `K8` floats,
/// zero-padded and 4-aligned). Output pixels go in pairs `(p, p + 1)` (flat index, raster
/// order): both patches are gathered (taps `K..K8` stay `0.0`), then [`dot_pair`] runs every
/// output channel over both, weight row by weight row, writing the two sums to
/// `output[o][p]`, `output[o][p + 1]`; `canon(bias)` and the activation follow per channel
/// plane. The padding adds `0.0 · 0.0 = +0.0` to lanes `K mod 8..8` after every real term:
/// the same bits up to the sign of a zero lane, which `canon(bias)` absorbs ([`dot_pair`]). A last odd pixel runs [`dot_rows`] on patch `A` alone
/// with the model's weights. Never inlined: its frame is not on the stack while the reference
/// loop runs.
#[inline(never)]
fn im2col_pairs(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
    scratch: &mut [f32],
) {
    let k = g.per_out;
    let k8 = k.next_multiple_of(LANES);
    let (ohw, co) = (g.oh * g.ow, bias.len());
    let wb = weights.as_bytes();
    if k == 0 || ohw == 0 || co == 0 || wb.len() < 4 * k * co || output.len() < co * ohw {
        return;
    }
    let padded_w = if k8 == k && co * k8 > super::conv2d_f32::SMALL_WEIGHTS {
        0
    } else {
        co * k8
    };
    let Some(scratch) = scratch.get_mut(..2 * k8 + 2 * LANES + padded_w) else {
        return;
    };
    let (patches, w_pad) = scratch.split_at_mut(2 * k8 + 2 * LANES);
    patches.fill(0.0);
    for (row, src) in w_pad.chunks_exact_mut(k8).zip(wb.chunks_exact(4 * k)) {
        let (w_row, pad) = row.split_at_mut(k);
        copy_words(src, w_row);
        pad.fill(0.0);
    }
    let pairs = ohw / 2;
    for px in (0..pairs).map(|i| 2 * i) {
        let (a, rest) = patches.split_at_mut(k8);
        gather_at(g, input, &mut a[..k], px);
        gather_at(g, input, &mut rest[..k], px + 1);
        let w = if padded_w == 0 { wb } else { f32_bytes(w_pad) };
        if let Some(out) = output.get_mut(px..) {
            dot_pair(patches, k8, w, co, out, ohw);
        }
    }
    if pairs > 0 {
        for (y, b) in output.chunks_exact_mut(ohw).zip(bias.iter()) {
            if let Some(y) = y.get_mut(..2 * pairs) {
                // canon(bias): the sums' lanes start at the first product (see [`dot_pair`]).
                bias_act(y, b + 0.0, act);
            }
        }
    }
    let a = &mut patches[..k];
    for px in 2 * pairs..ohw {
        gather_at(g, input, a, px);
        dot_rows(a, wb, co, |o, s| {
            if let (Some(out), Some(b)) = (output.get_mut(o * ohw + px), bias.get(o)) {
                *out = activate_f32(s + b, act);
            }
        });
    }
}

/// The little-endian bytes of `v` (the device is little-endian): a view, no copy.
fn f32_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: `v` is `4·v.len()` initialized bytes, borrowed for the result's lifetime; `u8`
    // has alignment 1 and every byte is a valid `u8`.
    unsafe { core::slice::from_raw_parts(v.as_ptr().cast::<u8>(), core::mem::size_of_val(v)) }
}

/// [`conv2d`]'s patch path (`0 < ci·kh·kw ≤ PATCH`, finite weights). Never inlined: its frame
/// (the patch) is not on the stack while the reference loop or [`conv3x3`] runs.
#[inline(never)]
fn im2col(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) {
    let k = g.per_out;
    let ConvGeometry {
        ci,
        h,
        w,
        win,
        oh,
        ow,
        ..
    } = *g;
    let (kh, kw, hw, ohw) = (win.kh, win.kw, h * w, oh * ow);
    let co = bias.len();
    let wb = weights.as_bytes();
    let mut buf = [0.0f32; PATCH];
    let patch = &mut buf[..k];
    for oy in 0..oh {
        let rows = tap_range(oy, win.sh, win.pad_top, kh, h);
        for ox in 0..ow {
            let cols = tap_range(ox, win.sw, win.pad_left, kw, w);
            gather_pixel(input, patch, ci, hw, w, kh, kw, rows, cols);
            let px = oy * ow + ox;
            dot_rows(patch, wb, co, |o, s| {
                if let (Some(out), Some(b)) = (output.get_mut(o * ohw + px), bias.get(o)) {
                    *out = activate_f32(s + b, act);
                }
            });
        }
    }
}

/// `y[i] = act(y[i] + b)` ([`activate_f32`]), the activation chosen once per call rather than
/// per value.
#[inline(always)]
fn bias_act(y: &mut [f32], b: f32, act: Activation) {
    match act {
        Activation::None => y.iter_mut().for_each(|v| *v += b),
        Activation::Relu => y
            .iter_mut()
            .for_each(|v| *v = activate_f32(*v + b, Activation::Relu)),
        Activation::Relu6 => y
            .iter_mut()
            .for_each(|v| *v = activate_f32(*v + b, Activation::Relu6)),
    }
}

/// One step of 8 taps of one pixel: the pixel's next 8 patch values from `$x` (advanced by 32)
/// into `s16–s23`, times the 8 weights in `s24–s31` (`w · x`, the reference's operand order),
/// added into lanes `$a0..$a7`.
macro_rules! pixel8 {
    ($x:literal, $a0:literal, $a1:literal, $a2:literal, $a3:literal, $a4:literal, $a5:literal, $a6:literal, $a7:literal) => {
        concat!(
            "vldmia ",
            $x,
            "!, {{s16-s23}}\n",
            "vmul.f32 s16, s24, s16\n",
            "vmul.f32 s17, s25, s17\n",
            "vmul.f32 s18, s26, s18\n",
            "vmul.f32 s19, s27, s19\n",
            "vmul.f32 s20, s28, s20\n",
            "vmul.f32 s21, s29, s21\n",
            "vmul.f32 s22, s30, s22\n",
            "vmul.f32 s23, s31, s23\n",
            "vadd.f32 ",
            $a0,
            ", ",
            $a0,
            ", s16\n",
            "vadd.f32 ",
            $a1,
            ", ",
            $a1,
            ", s17\n",
            "vadd.f32 ",
            $a2,
            ", ",
            $a2,
            ", s18\n",
            "vadd.f32 ",
            $a3,
            ", ",
            $a3,
            ", s19\n",
            "vadd.f32 ",
            $a4,
            ", ",
            $a4,
            ", s20\n",
            "vadd.f32 ",
            $a5,
            ", ",
            $a5,
            ", s21\n",
            "vadd.f32 ",
            $a6,
            ", ",
            $a6,
            ", s22\n",
            "vadd.f32 ",
            $a7,
            ", ",
            $a7,
            ", s23\n",
        )
    };
}

/// The first step of 8 taps of one pixel: its first 8 patch values from `$x` (advanced by 32)
/// into `s16–s23`, and lanes `$a0..$a7` = `w · x` (the 8 weights in `s24–s31`).
macro_rules! first8 {
    ($x:literal, $a0:literal, $a1:literal, $a2:literal, $a3:literal, $a4:literal, $a5:literal, $a6:literal, $a7:literal) => {
        concat!(
            "vldmia ",
            $x,
            "!, {{s16-s23}}\n",
            first_mul8!($a0, $a1, $a2, $a3, $a4, $a5, $a6, $a7),
        )
    };
}

/// 8 weights from the aligned row pointer `{w}` (advanced by 32) into `s24–s31`.
macro_rules! pair_w_aligned {
    () => {
        // `{t0}`, `{t1}` are for the unaligned variant (named in a comment so both share one
        // operand list).
        "vldmia {w}!, {{s24-s31}} @ {t0} {t1}\n"
    };
}

/// 8 weights from the unaligned row pointer `{w}` (advanced by 32) into `s24–s31`: 8 `LDR`,
/// 4 `VMOV`.
macro_rules! pair_w_unaligned {
    () => {
        concat!(
            "ldr {t0}, [{w}], #4\n",
            "ldr {t1}, [{w}], #4\n",
            "vmov s24, s25, {t0}, {t1}\n",
            "ldr {t0}, [{w}], #4\n",
            "ldr {t1}, [{w}], #4\n",
            "vmov s26, s27, {t0}, {t1}\n",
            "ldr {t0}, [{w}], #4\n",
            "ldr {t1}, [{w}], #4\n",
            "vmov s28, s29, {t0}, {t1}\n",
            "ldr {t0}, [{w}], #4\n",
            "ldr {t1}, [{w}], #4\n",
            "vmov s30, s31, {t0}, {t1}\n",
        )
    };
}

/// The loop of [`dot_pair`]; `$load` is [`pair_w_aligned`] or [`pair_w_unaligned`].
macro_rules! pair_loop {
    ($load:ident, $a:ident, $b:ident, $w:ident, $rows:ident, $out:ident, $stride:ident) => {
        asm_all_s!(
            "3:",
            "mov {xa}, {a}",
            "mov {xb}, {b}",
            // The first 8 taps: the products are the lanes (no `+0.0 +`; see [`dot_pair`]).
            $load!(),
            first8!("{xa}", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"),
            first8!("{xb}", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15"),
            "cmp {xa}, {b}",
            "beq 5f",
            "4:",
            $load!(),
            pixel8!("{xa}", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"),
            pixel8!("{xb}", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15"),
            "cmp {xa}, {b}",
            "bne 4b",
            "5:",
            // The fixed tree of each pixel: ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
            "vadd.f32 s0, s0, s1",
            "vadd.f32 s2, s2, s3",
            "vadd.f32 s4, s4, s5",
            "vadd.f32 s6, s6, s7",
            "vadd.f32 s0, s0, s2",
            "vadd.f32 s4, s4, s6",
            "vadd.f32 s0, s0, s4",
            "vadd.f32 s8, s8, s9",
            "vadd.f32 s10, s10, s11",
            "vadd.f32 s12, s12, s13",
            "vadd.f32 s14, s14, s15",
            "vadd.f32 s8, s8, s10",
            "vadd.f32 s12, s12, s14",
            "vadd.f32 s8, s8, s12",
            "vstr s0, [{out}]",
            "vstr s8, [{out}, #4]",
            "add {out}, {out}, {stride}",
            "subs {rows}, {rows}, #1",
            "bne 3b",
            a = in(reg) $a,
            b = in(reg) $b,
            w = inout(reg) $w => _,
            rows = inout(reg) $rows => _,
            out = inout(reg) $out => _,
            stride = in(reg) $stride,
            xa = out(reg) _,
            xb = out(reg) _,
            t0 = out(reg) _,
            t1 = out(reg) _,
            options(nostack),
        )
    };
}

/// Two output pixels, every output channel: for each weight row `W[o]` (`k` little-endian
/// floats at byte `4·k·o` of `wb`, any alignment) and each patch `P ∈ {A, B}` (`A` =
/// `scratch[0..k]`, `B` = `scratch[k..2k]`, then 16 zeros), `dot'(W[o], P)` to `out[o·ohw]`
/// (A) and `out[o·ohw + 1]` (B): the 8-lane order (term `j` into lane `j mod 8` in increasing
/// `j`, the fixed tree; no bias), except that each lane starts at its first product instead
/// of `+0.0 + product`. That can only turn a `+0.0` lane into `−0.0`; the sum then differs
/// from the reference's `dot` only in the sign of a zero, and the reference's is never
/// `−0.0` (a lane from `+0.0` never holds `−0.0`), so `dot' + canon(bias)` (`bias + 0.0`, as
/// [`im2col_pairs`] adds it) is the reference's `dot + bias` bit for bit.
///
/// Per 8 taps: the 8 weights once (one `VLDMIA`, or 8 `LDR` + 4 `VMOV` when unaligned), per
/// pixel one `VLDMIA` of 8 patch values, 8 `VMUL`, 8 `VADD` (the first 8: no `VADD`): 37
/// instructions per 16 MACs with the loop test aligned (2.31 per MAC), 48 unaligned (3.0);
/// per row 5 fewer for the first step and 19 more (the trees, two stores, the row loop). Does
/// nothing unless `k` is a positive multiple of 8 and every slice is long enough.
#[inline(never)]
fn dot_pair(scratch: &[f32], k: usize, wb: &[u8], co: usize, out: &mut [f32], ohw: usize) {
    if k == 0
        || !k.is_multiple_of(LANES)
        || co == 0
        || ohw < 2
        || scratch.len() < 2 * k + 2 * LANES
        || wb.len() < 4 * k * co
        || out.len() < (co - 1) * ohw + 2
    {
        return;
    }
    let a = scratch.as_ptr();
    let b = a.wrapping_add(k);
    let w = wb.as_ptr();
    let rows = co;
    let o = out.as_mut_ptr();
    let stride = 4 * ohw;
    // SAFETY: reads the 2k patch floats and the 16 zeros of `scratch` (4-aligned, checked
    // above), the co·k weights `wb[0..4·k·co]` (checked above; row o starts where row o − 1
    // ended, so the pointer simply runs on), and writes `out[o·ohw]`, `out[o·ohw + 1]` for
    // o < co, the last at (co − 1)·ohw + 1 < out.len() (checked above; `&mut [f32]`, 4-aligned).
    // Each row's inner loop stops when {xa} reaches B after k/8 ≥ 1 steps. `VLDMIA` of the
    // weights needs 4-aligned rows: taken only when `wb` is 4-aligned (rows are 4k bytes
    // apart), otherwise unaligned `LDR`s (allowed on ARMv7-M: CCR.UNALIGN_TRP is 0 out of
    // reset). Every register written is declared: the operands and `s0–s31` (the compiler
    // saves the callee-saved `s16–s31` in the prologue). Flags: `cmp`, `subs`.
    // FPSCR is not touched.
    unsafe {
        if (w as usize).is_multiple_of(4) {
            pair_loop!(pair_w_aligned, a, b, w, rows, o, stride);
        } else {
            pair_loop!(pair_w_unaligned, a, b, w, rows, o, stride);
        }
    }
}

/// [`gather`] in a frame of its own (popped before the dot products run: a smaller stack peak).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn gather_pixel(
    input: &[f32],
    patch: &mut [f32],
    ci: usize,
    hw: usize,
    w: usize,
    kh: usize,
    kw: usize,
    rows: (usize, usize, isize),
    cols: (usize, usize, isize),
) {
    gather(input, patch, ci, hw, w, kh, kw, rows, cols);
}

/// The patch of one output pixel: `patch[(i·kh + ky)·kw + kx] = input[i][y0 + ky][x0 + kx]` for
/// taps inside the input (`ky_lo..ky_hi`, `kx_lo..kx_hi` from [`tap_range`]), `0.0` elsewhere.
/// An interior pixel (every tap inside) is one [`gather_block`]; a border pixel zeroes the patch
/// and copies its rows of inside taps with [`copy_row`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gather(
    input: &[f32],
    patch: &mut [f32],
    ci: usize,
    hw: usize,
    w: usize,
    kh: usize,
    kw: usize,
    (ky_lo, ky_hi, y0): (usize, usize, isize),
    (kx_lo, kx_hi, x0): (usize, usize, isize),
) {
    if ci == 0 || kw == 0 || kh == 0 || patch.len() != ci * kh * kw {
        return;
    }
    if ky_lo == 0 && ky_hi == kh && kx_lo == 0 && kx_hi == kw {
        let start = (y0 as usize) * w + x0 as usize; // both ≥ 0: every tap is inside
        if kh == 1 && kw == 1 {
            gather_column(input.get(start..).unwrap_or(&[]), patch, hw);
            return;
        }
        // The last tap read: channel ci − 1, row kh − 1, column kw − 1.
        if start + (ci - 1) * hw + (kh - 1) * w + kw <= input.len() && w >= kw && hw >= kh * w {
            // SAFETY: every read, `start + i·hw + ky·w + kx` for i < ci, ky < kh, kx < kw, is at
            // most the last tap, inside `input` (checked just above); the writes are the
            // `ci·kh·kw = patch.len()` floats of `patch`.
            unsafe { gather_block(input[start..].as_ptr(), patch, ci, kh, kw, w, hw) };
        }
        return;
    }
    patch.fill(0.0);
    let cols = kx_hi.saturating_sub(kx_lo);
    for (i, p_i) in patch.chunks_exact_mut(kh * kw).enumerate() {
        for ky in ky_lo..ky_hi {
            let src = i * hw + (y0 + ky as isize) as usize * w + (x0 + kx_lo as isize) as usize;
            if let (Some(d), Some(s)) = (
                p_i.get_mut(ky * kw + kx_lo..ky * kw + kx_lo + cols),
                input.get(src..src + cols),
            ) {
                copy_row(s, d);
            }
        }
    }
}

/// The patch of an interior pixel of a 1×1 filter: `patch[i] = src[i·hw]` for `i <
/// patch.len()` (a gather at the plane stride, 5 instructions per tap); nothing if `src` is too
/// short.
#[inline(always)]
fn gather_column(src: &[f32], patch: &mut [f32], hw: usize) {
    let n = patch.len();
    if n == 0 || hw == 0 || src.len() <= (n - 1) * hw {
        return;
    }
    // SAFETY: reads `src[i·hw]` for i < n, the last at (n − 1)·hw < src.len() (checked above);
    // writes the n ≥ 1 floats of `patch`. Flags: `subs`.
    unsafe {
        asm!(
            "2:",
            "ldr {t}, [{s}]",
            "add {s}, {s}, {step}",
            "str {t}, [{d}], #4",
            "subs {n}, {n}, #1",
            "bne 2b",
            s = inout(reg) src.as_ptr() => _,
            d = inout(reg) patch.as_mut_ptr() => _,
            n = inout(reg) n => _,
            step = in(reg) 4 * hw,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// `dst[k] = src[k]` for `k < min(len)`, a word at a time (an `LDR`/`STR` loop instead of a
/// `memcpy` call for these few floats).
#[inline(always)]
fn copy_row(src: &[f32], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    if n == 0 {
        return;
    }
    // SAFETY: reads `n ≤ src.len()` floats of `src`, writes `n ≤ dst.len()` of `dst`; `n ≥ 1`.
    // Flags: `subs`.
    unsafe {
        asm!(
            "2:",
            "ldr {t}, [{s}], #4",
            "str {t}, [{d}], #4",
            "subs {n}, {n}, #1",
            "bne 2b",
            s = inout(reg) src.as_ptr() => _,
            d = inout(reg) dst.as_mut_ptr() => _,
            n = inout(reg) n => _,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// `dst[k]` = the little-endian f32 at byte `4·k` of `src` (any alignment: unaligned `LDR`s)
/// for `k < min(src.len() / 4, dst.len())`, a word at a time.
#[inline(always)]
fn copy_words(src: &[u8], dst: &mut [f32]) {
    let n = (src.len() / 4).min(dst.len());
    if n == 0 {
        return;
    }
    // SAFETY: reads `4·n ≤ src.len()` bytes of `src` (unaligned `LDR` is allowed on ARMv7-M:
    // CCR.UNALIGN_TRP is 0 out of reset), writes `n ≤ dst.len()` floats of `dst`; `n ≥ 1`.
    // The registers written are the operands. Flags: `subs`.
    unsafe {
        asm!(
            "2:",
            "ldr {t}, [{s}], #4",
            "str {t}, [{d}], #4",
            "subs {n}, {n}, #1",
            "bne 2b",
            s = inout(reg) src.as_ptr() => _,
            d = inout(reg) dst.as_mut_ptr() => _,
            n = inout(reg) n => _,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// The patch of an interior pixel: `patch[(i·kh + ky)·kw + kx] = src[i·hw + ky·w + kx]`, one
/// assembly loop nest (a 3-wide row is one `VLDMIA` and one `VSTMIA`).
///
/// # Safety
///
/// `src[i·hw + ky·w + kx]` is readable for every `i < ci`, `ky < kh`, `kx < kw`; `ci, kh, kw ≥
/// 1`, `w ≥ kw`, `hw ≥ kh·w` and `patch.len() = ci·kh·kw`.
#[inline(never)]
unsafe fn gather_block(
    src: *const f32,
    patch: &mut [f32],
    ci: usize,
    kh: usize,
    kw: usize,
    w: usize,
    hw: usize,
) {
    let row = 4 * w;
    // From past a channel's last row to the next channel's first.
    let skip = 4 * (hw - kh * w);
    // SAFETY: the caller's contract bounds every read; the writes are the ci·kh·kw floats of
    // `patch`. Every register written is declared: the operands and `s0–s2`. Flags: `subs`,
    // `cmp`.
    unsafe {
        asm!(
            "cmp {kw}, #3",
            "beq 5f",
            // Any width: a word at a time.
            "1:",
            "mov {ky}, {kh}",
            "2:",
            "mov {k}, {kw}",
            "mov {s}, {src}",
            "3:",
            "ldr {t}, [{s}], #4",
            "str {t}, [{d}], #4",
            "subs {k}, {k}, #1",
            "bne 3b",
            "add {src}, {src}, {row}",
            "subs {ky}, {ky}, #1",
            "bne 2b",
            "add {src}, {src}, {skip}",
            "subs {ci}, {ci}, #1",
            "bne 1b",
            "b 9f",
            // 3 wide: one VLDMIA / VSTMIA per row.
            "5:",
            "mov {ky}, {kh}",
            "6:",
            "vldmia {src}, {{s0-s2}}",
            "vstmia {d}!, {{s0-s2}}",
            "add {src}, {src}, {row}",
            "subs {ky}, {ky}, #1",
            "bne 6b",
            "add {src}, {src}, {skip}",
            "subs {ci}, {ci}, #1",
            "bne 5b",
            "9:",
            src = inout(reg) src => _,
            d = inout(reg) patch.as_mut_ptr() => _,
            ci = inout(reg) ci => _,
            kh = in(reg) kh,
            kw = in(reg) kw,
            row = in(reg) row,
            skip = in(reg) skip,
            ky = out(reg) _,
            k = out(reg) _,
            s = out(reg) _,
            t = out(reg) _,
            out("s0") _,
            out("s1") _,
            out("s2") _,
            options(nostack),
        );
    }
}

/// [`super::linear_f32`] on the device's fast path (the same checks, then [`linear`]). Public
/// (hidden) so the firmware's `kernel-check` binary can compare it with
/// [`linear_f32_reference`] in QEMU.
#[doc(hidden)]
pub fn linear_f32_m4(
    p: &LinearParams,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) -> Result<()> {
    super::linear_f32::check(p, input, weights, bias, output)?;
    linear(p, input, weights, bias, output);
    Ok(())
}

/// [`super::linear_f32`]'s reference loop (the same checks), the oracle of `kernel-check`.
#[doc(hidden)]
pub fn linear_f32_reference(
    p: &LinearParams,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) -> Result<()> {
    super::linear_f32::check(p, input, weights, bias, output)?;
    super::linear_f32::reference(p, input, weights, bias, output);
    Ok(())
}

/// [`super::conv2d_f32`] through [`conv2d`] with `scratch` (`fast`) or the reference loop: the
/// same checks. Hidden, for `kernel-check`.
#[doc(hidden)]
pub fn conv2d_f32_m4(
    p: &ConvParams,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
    fast: bool,
    scratch: &mut [f32],
) -> Result<()> {
    let g = conv_geometry(p, input.len(), output.len(), weights.len())?;
    if !weights.is_whole() || bias.len() != p.out_channels {
        return Err(Error::KernelBadArguments);
    }
    if fast {
        conv2d(&g, p.activation, input, weights, bias, output, scratch);
    } else {
        super::conv2d_f32::reference(&g, p.activation, input, weights, bias, output);
    }
    Ok(())
}

/// [`super::depthwise_conv2d_f32`] through [`conv2d`] per channel (`fast`) or the reference
/// loop: the same checks. Hidden, for `kernel-check`.
#[doc(hidden)]
pub fn depthwise_conv2d_f32_m4(
    p: &DepthwiseParams,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
    fast: bool,
) -> Result<()> {
    if fast && p.window.kh == 3 && p.window.kw == 3 {
        return depthwise3x3(p, input, weights, bias, output);
    }
    super::depthwise_conv2d_f32::run(p, input, weights, bias, output, |g, a, x, w, b, y| {
        if fast {
            conv2d(g, a, x, w, b, y, &mut []);
        } else {
            super::conv2d_f32::reference(g, a, x, w, b, y);
        }
    })
}

/// ReLU of `s16` (`s10` = `+0.0`): `if s16 < 0 { 0 }`, a NaN or `−0.0` unchanged (`MI` is false
/// for unordered and equal), as [`activate_f32`].
macro_rules! relu {
    () => {
        "vcmp.f32 s16, #0\nvmrs APSR_nzcv, fpscr\nit mi\nvmovmi.f32 s16, s10\n"
    };
}

/// ReLU6 of `s16` (`s10` = `+0.0`, `s11` = `6.0`): ReLU, then `if s16 > 6 { 6 }` (`GT` is false
/// for unordered).
macro_rules! relu6 {
    () => {
        concat!(
            relu!(),
            "vcmp.f32 s16, s11\nvmrs APSR_nzcv, fpscr\nit gt\nvmovgt.f32 s16, s11\n"
        )
    };
}

/// `asm!` with the FPU registers of the 3×3 kernels declared clobbered (`out("sN") _`):
/// `s0–s11` (the 9 weights, the bias, `+0.0`, `6.0`) and `s16–s24` (a pixel's 9 taps and their
/// products). [`conv3x3_loop`] and [`conv3x3_rows_loop`] go through it, so neither can forget
/// one (`s12–s15` and `s25–s31` are not used).
macro_rules! asm_3x3_s {
    ($($body:tt)*) => {
        asm!(
            $($body)*
            out("s0") _,
            out("s1") _,
            out("s2") _,
            out("s3") _,
            out("s4") _,
            out("s5") _,
            out("s6") _,
            out("s7") _,
            out("s8") _,
            out("s9") _,
            out("s10") _,
            out("s11") _,
            out("s16") _,
            out("s17") _,
            out("s18") _,
            out("s19") _,
            out("s20") _,
            out("s21") _,
            out("s22") _,
            out("s23") _,
            out("s24") _,
        )
    };
}

/// The loop of [`conv3x3_pixels`], `$act` the activation's instructions on `s16`.
macro_rules! conv3x3_loop {
    ($rows:ident, $step:ident, $count:ident, $wb:ident, $out:ident, $act:expr) => {
        asm_3x3_s!(
            "vldmia {wp}, {{s0-s11}}",
            "2:",
            "vldmia {r0}, {{s16-s18}}",
            "vldmia {r1}, {{s19-s21}}",
            "vldmia {r2}, {{s22-s24}}",
            "add {r0}, {r0}, {step}",
            "add {r1}, {r1}, {step}",
            "add {r2}, {r2}, {step}",
            "vmul.f32 s16, s16, s0",
            "vmul.f32 s17, s17, s1",
            "vmul.f32 s18, s18, s2",
            "vmul.f32 s19, s19, s3",
            "vmul.f32 s20, s20, s4",
            "vmul.f32 s21, s21, s5",
            "vmul.f32 s22, s22, s6",
            "vmul.f32 s23, s23, s7",
            "vmul.f32 s24, s24, s8",
            "vadd.f32 s16, s16, s24",
            "vadd.f32 s16, s16, s17",
            "vadd.f32 s18, s18, s19",
            "vadd.f32 s20, s20, s21",
            "vadd.f32 s22, s22, s23",
            "vadd.f32 s16, s16, s18",
            "vadd.f32 s20, s20, s22",
            "vadd.f32 s16, s16, s20",
            "vadd.f32 s16, s16, s9",
            $act,
            "vstmia {out}!, {{s16}}",
            "subs {n}, {n}, #1",
            "bne 2b",
            r0 = inout(reg) $rows[0] => _,
            r1 = inout(reg) $rows[1] => _,
            r2 = inout(reg) $rows[2] => _,
            step = in(reg) $step,
            n = inout(reg) $count => _,
            out = inout(reg) $out.as_mut_ptr() => _,
            wp = in(reg) $wb.as_ptr(),
            options(nostack),
        )
    };
}

/// `count` output pixels of a 3×3 filter, weights stationary: `wb` = the 9 weights (flat index
/// `j = ky·3 + kx`), `canon(bias)` (`bias + 0.0`), `+0.0` and `6.0`; `rows[ky]` points at tap
/// `(ky, 0)` of the first pixel, pixels are `step` bytes apart; writes
/// `act(dot + canon(bias))` to `out[0..count]`.
///
/// Each pixel: 3 `VLDMIA` of 3 taps, 9 `VMUL`, lane 0 = `t0 + t8`, lanes 1–7 = `t1..t7`, the
/// fixed tree, `+ canon(bias)`, the activation (ReLU: 4 instructions), one `VSTMIA`: 27
/// instructions for 9 MACs with the loop, 31 with ReLU. The lanes
/// start at the first product instead of `+0.0 + t`, which can only turn a `+0.0` lane into
/// `−0.0`; a sum of such lanes differs from the reference's only in the sign of a zero, and the
/// reference's is never `−0.0` (module docs), so `sum + canon(bias)` is the reference's
/// `sum + bias` bit for bit (a zero sum: `+0.0 + b`; `b = −0.0` gives `+0.0` both ways).
///
/// # Safety
///
/// For `k < count`, `r, c < 3`: `rows[r] + k·step + 4·c` is a readable, 4-aligned f32.
#[inline(never)]
unsafe fn conv3x3_pixels(
    rows: [*const f32; 3],
    step: usize,
    count: usize,
    wb: &[f32; 12],
    act: Activation,
    out: &mut [f32],
) {
    if count == 0 || out.len() < count {
        return;
    }
    // SAFETY: the reads are the caller's contract; writes `count ≤ out.len()` floats of `out`
    // (4-aligned, `&mut [f32]`), reads the 12 of `wb`. Every register written is declared:
    // the operands, `s0–s11` and `s16–s24` (the compiler saves the callee-saved ones).
    // Flags: `subs`, `vmrs APSR_nzcv` (the FPSCR flags, read only).
    unsafe {
        match act {
            Activation::None => conv3x3_loop!(rows, step, count, wb, out, ""),
            Activation::Relu => conv3x3_loop!(rows, step, count, wb, out, relu!()),
            Activation::Relu6 => conv3x3_loop!(rows, step, count, wb, out, relu6!()),
        }
    }
}

/// Zeros that stand in for an input row above or below the plane (a padded row of taps).
static ZERO_ROW: [f32; 64] = [0.0; 64];

/// One pixel of [`conv3x3_rows`] from its 9 taps in `s16–s24` (weights `s0–s8`, `canon(bias)`
/// `s9`, `+0.0` `s10`, `6.0` `s11`): 9 `VMUL`, lane 0 = `t0 + t8`, the fixed tree, the bias,
/// `$act` on `s16`, one `VSTMIA` to `r3` (advanced).
macro_rules! px3x3 {
    ($act:expr) => {
        concat!(
            "vmul.f32 s16, s16, s0\n",
            "vmul.f32 s17, s17, s1\n",
            "vmul.f32 s18, s18, s2\n",
            "vmul.f32 s19, s19, s3\n",
            "vmul.f32 s20, s20, s4\n",
            "vmul.f32 s21, s21, s5\n",
            "vmul.f32 s22, s22, s6\n",
            "vmul.f32 s23, s23, s7\n",
            "vmul.f32 s24, s24, s8\n",
            "vadd.f32 s16, s16, s24\n",
            "vadd.f32 s16, s16, s17\n",
            "vadd.f32 s18, s18, s19\n",
            "vadd.f32 s20, s20, s21\n",
            "vadd.f32 s22, s22, s23\n",
            "vadd.f32 s16, s16, s18\n",
            "vadd.f32 s20, s20, s22\n",
            "vadd.f32 s16, s16, s20\n",
            "vadd.f32 s16, s16, s9\n",
            $act,
            "vstmia r3!, {{s16}}\n",
        )
    };
}

/// The loop of [`conv3x3_rows`]: `$head` sets `r0–r2` to the row's three rows of taps
/// (from the table at `{base}`, or `{base}`, `+ {w4}`, `+ 2·{w4}` with `{base}` then advanced by
/// `{rs}`), `$act` is the activation's instructions on `s16`.
macro_rules! conv3x3_rows_loop {
    ($pre:expr, $head:expr, $tail:expr, $base:ident, $w4:ident, $rs:ident, $rows:ident, $flags:ident, $step:ident, $wb:ident, $out:ident, $act:expr) => {
        asm_3x3_s!(
            "vldmia {n}, {{s0-s11}}",
            $pre,
            "2:",
            $head,
            "tst {f}, #2",
            "beq 3f",
            // Left pixel: column −1 is padding (`+0.0`), columns 0 and 1 from the rows; then the
            // pointers move to pixel 1's first column, `sw − 1` (`{f} >> 16` = 4·(sw − 1)).
            "vmov.f32 s16, s10",
            "vldmia r0, {{s17-s18}}",
            "vmov.f32 s19, s10",
            "vldmia r1, {{s20-s21}}",
            "vmov.f32 s22, s10",
            "vldmia r2, {{s23-s24}}",
            "add.w r0, r0, {f}, lsr #16",
            "add.w r1, r1, {f}, lsr #16",
            "add.w r2, r2, {f}, lsr #16",
            px3x3!($act),
            "3:",
            // The `mid ≥ 1` whole pixels.
            "ubfx {n}, {f}, #2, #14",
            "4:",
            "vldmia r0, {{s16-s18}}",
            "vldmia r1, {{s19-s21}}",
            "vldmia r2, {{s22-s24}}",
            "add r0, r0, {step}",
            "add r1, r1, {step}",
            "add r2, r2, {step}",
            px3x3!($act),
            "subs {n}, {n}, #1",
            "bne 4b",
            "tst {f}, #1",
            "beq 6f",
            // Right pixel: columns w − 2 and w − 1 from the rows, column w is padding.
            "vldmia r0, {{s16-s17}}",
            "vmov.f32 s18, s10",
            "vldmia r1, {{s19-s20}}",
            "vmov.f32 s21, s10",
            "vldmia r2, {{s22-s23}}",
            "vmov.f32 s24, s10",
            px3x3!($act),
            "6:",
            $tail,
            "subs {rows}, {rows}, #1",
            "bne 2b",
            base = inout(reg) $base => _,
            w4 = in(reg) $w4,
            rs = in(reg) $rs,
            rows = inout(reg) $rows => _,
            f = in(reg) $flags,
            step = in(reg) $step,
            n = inout(reg) $wb => _,
            inout("r3") $out => _,
            out("r0") _,
            out("r1") _,
            out("r2") _,
            options(nostack),
        )
    };
}

/// Row header of [`conv3x3_rows`] from a table: three row pointers and the row's output
/// pointer (`{w4}`, `{rs}` unused).
macro_rules! head_table {
    () => {
        "ldmia {base}!, {{r0-r3}} @ {w4} {rs}"
    };
}

/// Before the rows of [`conv3x3_rows`] inside the plane: `r0–r2` = `{base}`, `+ {w4}`,
/// `+ 2·{w4}`.
macro_rules! pre_plane {
    () => {
        "mov r0, {base}\nadd r1, r0, {w4}\nadd r2, r1, {w4}"
    };
}

/// After each row of [`conv3x3_rows`] inside the plane: `r0–r2` on to the next row
/// (`{rs}` = the row stride less what the row advanced them).
macro_rules! tail_plane {
    () => {
        "add r0, r0, {rs}\nadd r1, r1, {rs}\nadd r2, r2, {rs}"
    };
}

/// Rows of [`conv3x3_rows`]: from a table (`Table(tbl)`: row `r`'s three rows of taps are
/// the addresses `tbl[r][0..3]`, its output `tbl[r][3]`) or from the plane (`Plane { base,
/// rows, w4, rs }`: row `r`'s rows of taps are `base + r·rs + ky·w4` bytes, the output rows
/// one after the other from `out`).
#[derive(Clone, Copy)]
enum Rows<'a> {
    Table(&'a [[usize; 4]]),
    Plane {
        base: *const f32,
        rows: usize,
        w4: usize,
        rs: usize,
    },
}

/// Most border rows (a padded row of taps) per plane on the [`conv3x3_rows`] path (their
/// table is on the stack, 16 bytes a row).
const TABLE: usize = 4;

/// Output rows of `ow = left + mid + right` pixels of a 3×3 filter, the rows and the columns
/// in one assembly loop: each output row's three rows of taps come from `rows` (pointers at
/// input column 0: a row of the plane, or [`ZERO_ROW`] for a padded one); `flags` =
/// `4·(sw − 1) << 16 | mid << 2 | left << 1 | right` (`mid < 2^14`); pixel `k` of a row has its
/// first tap column at `k·sw − left`; the `left` pixel (first tap column −1) and the `right`
/// pixel (last tap column `w`, the plane's width) take `+0.0` for their padded column of
/// taps. Writes `act(dot + canon(bias))` row after row to `out`. The arithmetic per pixel is
/// [`conv3x3_pixels`]'s (same bits; the zeros are the padded taps of its 9-float patches).
///
/// Per pixel 31 instructions with ReLU (27 with none, 35 with ReLU6) for 9 MACs; per row 6
/// more (table: 1), and 3 (right) or 6 (left) for a padded column.
///
/// # Safety
///
/// `mid ≥ 1`; every row pointer is 4-aligned and readable for the columns its pixels read:
/// `0..=1` for a left pixel, `c..=c + 2` for a whole pixel with first column `c = k·sw −
/// left`, and `w − 2..=w − 1` for a right pixel; `ow` floats are writable at each table
/// row's output address, or rows × `ow` from `out` for the plane.
#[inline(always)]
unsafe fn conv3x3_rows(
    rows: Rows<'_>,
    flags: usize,
    step: usize,
    wb: &[f32; 12],
    act: Activation,
    out: *mut f32,
) {
    let (w, o) = (wb.as_ptr(), out);
    // SAFETY: reads the 12 floats of `wb`, the table (4 words per row) and, through the row
    // pointers, only what the caller guarantees: per row a left pixel columns 0..=1, `mid ≥ 1`
    // whole pixels `c..=c + 2` with `c` advancing by `step = 4·sw` bytes, then a right pixel
    // two columns; writes `ow` floats per row where the caller guarantees them. The row loop
    // counts `n ≥ 1` rows down to 0 (`n = 0` returns before). Every register it writes is
    // declared: `r0–r3`, the operands, `s0–s11` and `s16–s24` (the compiler saves the callee-saved
    // `s16–s24` in the prologue). Flags: `tst`, `subs`, `vmrs APSR_nzcv` (the FPSCR flags,
    // read only). No stack use.
    unsafe {
        match rows {
            Rows::Table(t) => {
                let (b, n) = (t.as_ptr(), t.len());
                if n == 0 {
                    return;
                }
                let (w4, rs) = (0usize, 0usize);
                match act {
                    Activation::None => {
                        conv3x3_rows_loop!(
                            "",
                            head_table!(),
                            "",
                            b,
                            w4,
                            rs,
                            n,
                            flags,
                            step,
                            w,
                            o,
                            ""
                        )
                    }
                    Activation::Relu => {
                        conv3x3_rows_loop!(
                            "",
                            head_table!(),
                            "",
                            b,
                            w4,
                            rs,
                            n,
                            flags,
                            step,
                            w,
                            o,
                            relu!()
                        )
                    }
                    Activation::Relu6 => {
                        conv3x3_rows_loop!(
                            "",
                            head_table!(),
                            "",
                            b,
                            w4,
                            rs,
                            n,
                            flags,
                            step,
                            w,
                            o,
                            relu6!()
                        )
                    }
                }
            }
            Rows::Plane { base, rows, w4, rs } => {
                let (b, n) = (base, rows);
                if n == 0 {
                    return;
                }
                match act {
                    Activation::None => {
                        conv3x3_rows_loop!(
                            pre_plane!(),
                            "",
                            tail_plane!(),
                            b,
                            w4,
                            rs,
                            n,
                            flags,
                            step,
                            w,
                            o,
                            ""
                        )
                    }
                    Activation::Relu => {
                        conv3x3_rows_loop!(
                            pre_plane!(),
                            "",
                            tail_plane!(),
                            b,
                            w4,
                            rs,
                            n,
                            flags,
                            step,
                            w,
                            o,
                            relu!()
                        )
                    }
                    Activation::Relu6 => {
                        conv3x3_rows_loop!(
                            pre_plane!(),
                            "",
                            tail_plane!(),
                            b,
                            w4,
                            rs,
                            n,
                            flags,
                            step,
                            w,
                            o,
                            relu6!()
                        )
                    }
                }
            }
        }
    }
}

/// How [`conv3x3_rows`] covers a plane of geometry `g` (the same for every channel of a
/// layer): `flags` and `step` (see there), and the output rows `ya..yb` whose three rows of
/// taps are inside the plane.
#[derive(Clone, Copy)]
struct Plan3x3 {
    flags: usize,
    step: usize,
    ya: usize,
    yb: usize,
    /// The other output rows (`0..ya`, `yb..oh`): `(oy, [iy; 3])`, `iy` the input row of each
    /// row of taps or `usize::MAX` for a padded one.
    border: [(usize, [usize; 3]); TABLE],
    /// How many of `border` are used.
    nb: usize,
}

/// The [`Plan3x3`] of geometry `g`, or `None` when [`conv3x3_rows`] does not apply: a left
/// padding of more than 1 column, a last pixel missing more than column `w`, a pixel missing
/// both sides, no whole pixel in a row (`mid = 0`), a row of taps longer than [`ZERO_ROW`], or
/// an empty output.
fn conv3x3_plan(g: &ConvGeometry) -> Option<Plan3x3> {
    let (h, w, oh, ow) = (g.h, g.w, g.oh, g.ow);
    let (sh, sw, pt, pl) = (g.win.sh, g.win.sw, g.win.pad_top, g.win.pad_left);
    if oh == 0 || ow == 0 || sh == 0 || sw == 0 || sw > 64 || pl > 1 || ow >= 1 << 14 {
        return None;
    }
    let left = pl == 1;
    // One past the last tap column of the last pixel.
    let end = (ow - 1) * sw + 3 - pl;
    let right = end == w + 1;
    let mid = ow - usize::from(left) - usize::from(right);
    if end > w + 1 || end > ZERO_ROW.len() || mid == 0 || (left && w < 2) {
        return None;
    }
    let flags = (4 * (sw - 1)) << 16 | mid << 2 | usize::from(left) << 1 | usize::from(right);
    // Rows ya..yb have their three rows of taps inside: oy·sh ≥ pt and oy·sh − pt + 3 ≤ h.
    let ya = pt.div_ceil(sh).min(oh);
    let yb = if h + pt >= 3 {
        ((h + pt - 3) / sh + 1).min(oh)
    } else {
        0
    }
    .max(ya);
    let mut border = [(0, [usize::MAX; 3]); TABLE];
    let mut nb = 0;
    for oy in (0..ya).chain(yb..oh) {
        let (oy_, iys) = border.get_mut(nb)?; // more than TABLE border rows: no plan
        *oy_ = oy;
        let top = (oy * sh) as isize - pt as isize;
        for (ky, iy) in iys.iter_mut().enumerate() {
            let r = top + ky as isize;
            *iy = if r >= 0 && (r as usize) < h {
                r as usize
            } else {
                usize::MAX
            };
        }
        nb += 1;
    }
    Some(Plan3x3 {
        flags,
        step: 4 * sw,
        ya,
        yb,
        border,
        nb,
    })
}

/// One plane `x` (`h × w`) of a 3×3 filter into `y` (`oh × ow`) through [`conv3x3_rows`] with
/// the layer's [`Plan3x3`]: the output rows whose three rows of taps are inside the plane in
/// one call straight from the plane, the others (a row or two above and below) from a table
/// of row pointers with [`ZERO_ROW`] for a padded row. Inlined into [`conv3x3`]: the
/// callee-saved `s16–s24` are saved once per layer.
#[inline(always)]
fn conv3x3_table(
    plan: &Plan3x3,
    g: &ConvGeometry,
    x: &[f32],
    wb: &[f32; 12],
    act: Activation,
    y: &mut [f32],
) {
    let ConvGeometry {
        h, w, win, oh, ow, ..
    } = *g;
    let (sh, pt) = (win.sh, win.pad_top);
    let Plan3x3 {
        flags,
        step,
        ya,
        yb,
        ref border,
        nb,
    } = *plan;
    if x.len() < h * w || y.len() < oh * ow || yb > oh {
        return;
    }
    let x_ptr = x.as_ptr();
    if yb > ya {
        if let Some(out) = y.get_mut(ya * ow..yb * ow) {
            let base = x_ptr.wrapping_add((ya * sh - pt) * w);
            // SAFETY: row ya + r reads input rows (ya + r)·sh − pt + ky ≤ h − 1 (< yb), each
            // `w` floats of `x` (`h·w` checked above), at the columns [`conv3x3_plan`]
            // checked to be inside `0..w`; `mid ≥ 1`; `out` holds (yb − ya)·ow floats.
            // Within a row the pointers advance by 4·(sw − 1) (a left pixel) and `step` per
            // whole pixel; `rs` takes them on to the next row's first column.
            let advanced = (flags >> 16) * ((flags >> 1) & 1) + ((flags >> 2) & 0x3FFF) * step;
            let rows = Rows::Plane {
                base,
                rows: yb - ya,
                w4: 4 * w,
                rs: (4 * w * sh).wrapping_sub(advanced),
            };
            unsafe { conv3x3_rows(rows, flags, step, wb, act, out.as_mut_ptr()) };
        }
    }
    let zero = ZERO_ROW.as_ptr() as usize;
    let y_ptr = y.as_mut_ptr();
    let mut tbl = [[0usize; 4]; TABLE];
    let mut n = 0;
    for (e, &(oy, iys)) in tbl.iter_mut().zip(border.iter().take(nb)) {
        for (p, iy) in e.iter_mut().zip(iys) {
            *p = if iy < h {
                x_ptr.wrapping_add(iy * w) as usize
            } else {
                zero
            };
        }
        if oy >= oh {
            return; // never: a plan's border rows are output rows
        }
        e[3] = y_ptr.wrapping_add(oy * ow) as usize;
        n += 1;
    }
    if let Some(t) = tbl.get(..n) {
        // SAFETY: each row pointer is the start of input row `iy < h` (`w` floats of `x`) or
        // ZERO_ROW (64 floats); the columns read are inside `0..w` ([`conv3x3_plan`]) and below
        // `end ≤ 64` for ZERO_ROW; `mid ≥ 1`; each output address is output row `oy < oh` of
        // `y` (`oh·ow` floats checked above), `ow` floats.
        unsafe { conv3x3_rows(Rows::Table(t), flags, step, wb, act, y_ptr) };
    }
}

/// One 3×3 filter over one input plane `x` (`h × w`) into one output plane `y` (`oh × ow`),
/// no activation. Each output row's run of pixels whose 3 columns of taps are inside the input
/// goes through [`conv3x3_pixels`] straight from the plane, a padded row of taps reading
/// [`ZERO_ROW`] instead; each pixel with a padded column of taps gets a zero-padded 9-float
/// patch. Zeros in place of padded taps give the same bits for finite weights (see
/// [`conv2d`]). `wb`: the 9 weights and `canon(bias)`. The fallback of [`conv3x3_table`]
/// (never inlined: its frame is not on the stack while that runs).
#[inline(never)]
fn conv3x3_plane(g: &ConvGeometry, x: &[f32], wb: &[f32; 12], act: Activation, y: &mut [f32]) {
    let ConvGeometry {
        h, w, win, oh, ow, ..
    } = *g;
    if x.len() < h * w || y.len() < oh * ow || win.kh != 3 || win.kw != 3 || win.sw == 0 {
        return;
    }
    let (sh, sw, pt, pl) = (win.sh, win.sw, win.pad_top, win.pad_left);
    // Columns whose 3 taps are inside: ox·sw ≥ pl and ox·sw − pl + 3 ≤ w.
    let a = pl.div_ceil(sw).min(ow);
    let b = if w + pl >= 3 {
        ((w + pl - 3) / sw + 1).min(ow)
    } else {
        0
    }
    .max(a);
    if (a > 0 || b < ow) && (ow - 1) * sw + 3 <= STRIP {
        conv3x3_strips(g, x, wb, act, y);
        return;
    }
    // Pixels per call with a zero row: its reads stay inside ZERO_ROW.
    let chunk = (ZERO_ROW.len() - 3) / sw + 1;
    for (oy, y_row) in y.chunks_exact_mut(ow).take(oh).enumerate() {
        let (ky_lo, ky_hi, y0) = tap_range(oy, sh, pt, 3, h);
        let mut ox = a;
        while ox < b {
            let count = (b - ox).min(chunk);
            let ix = ox * sw - pl; // ≥ 0 for ox ≥ a
            let last = ix + (count - 1) * sw + 2; // < w for ox + count ≤ b
            let mut rows = [ZERO_ROW.as_ptr(); 3];
            let mut ok = last < w;
            for (ky, r) in rows.iter_mut().enumerate().take(ky_hi).skip(ky_lo) {
                let start = (y0 + ky as isize) as usize * w; // a row inside the input
                match x.get(start + ix..start + last + 1) {
                    Some(s) => *r = s.as_ptr(),
                    None => ok = false,
                }
            }
            if let (true, Some(out)) = (ok, y_row.get_mut(ox..ox + count)) {
                // SAFETY: each row pointer is either a run of the plane `x` covering columns
                // `ix..=last`, the last tap of the last pixel (checked just above), or
                // ZERO_ROW, whose 64 floats cover `(count − 1)·sw + 3 ≤ 64` (`chunk`).
                unsafe { conv3x3_pixels(rows, 4 * sw, count, wb, act, out) };
            }
            ox += count;
        }
        for ox in (0..a).chain(b..ow) {
            let (kx_lo, kx_hi, x0) = tap_range(ox, sw, pl, 3, w);
            let mut patch = [0.0f32; 9];
            for ky in ky_lo..ky_hi {
                let start = ((y0 + ky as isize) as usize * w).wrapping_add(x0 as usize);
                for kx in kx_lo..kx_hi {
                    if let (Some(d), Some(&v)) =
                        (patch.get_mut(3 * ky + kx), x.get(start.wrapping_add(kx)))
                    {
                        *d = v;
                    }
                }
            }
            if let Some(out) = y_row.get_mut(ox..ox + 1) {
                let p = patch.as_ptr();
                // SAFETY: the three rows of the 9-float patch, one pixel.
                unsafe {
                    conv3x3_pixels(
                        [p, p.wrapping_add(3), p.wrapping_add(6)],
                        0,
                        1,
                        wb,
                        act,
                        out,
                    )
                };
            }
        }
    }
}

/// Widest zero-padded row of taps [`conv3x3_strips`] builds (floats).
const STRIP: usize = 16;

/// [`conv3x3_plane`] for a narrow plane with padded columns (the tap columns of all output
/// pixels, `(ow − 1)·sw + 3`, fit [`STRIP`]): each input row is copied once into one of three
/// zero-padded strip rows of `STRIP` floats on the stack (input row `iy` into row `iy mod 3`,
/// input column `c` at strip column `c + pad_left`; a padded row of taps reads [`ZERO_ROW`]),
/// then one [`conv3x3_pixels`] call runs a whole output row — instead of a 9-float patch and a
/// call per border pixel. The zeros are the same padded taps as the patch's (same bits).
#[inline(never)]
fn conv3x3_strips(g: &ConvGeometry, x: &[f32], wb: &[f32; 12], act: Activation, y: &mut [f32]) {
    let ConvGeometry {
        h, w, win, oh, ow, ..
    } = *g;
    let (sh, sw, pt, pl) = (win.sh, win.sw, win.pad_top, win.pad_left);
    let wp = ow.saturating_sub(1) * sw + 3;
    if ow == 0 || sw == 0 || wp > STRIP || x.len() < h * w {
        return;
    }
    // Input columns 0..cols land at strip columns pl..pl + cols (clipped to the strip's wp).
    let cols = w.min(wp.saturating_sub(pl));
    // Input row `iy` lives in strip row `iy mod 3` (each copied once per plane at stride 1:
    // consecutive output rows share two rows of taps); `held` says which input row a strip row
    // holds. Strip columns outside pl..pl + cols are never written (zeros); a row of taps
    // outside the input reads ZERO_ROW (64 ≥ STRIP zeros).
    let mut strip = [0.0f32; 3 * STRIP];
    let mut held = [usize::MAX; 3];
    for (oy, y_row) in y.chunks_exact_mut(ow).take(oh).enumerate() {
        let (ky_lo, ky_hi, y0) = tap_range(oy, sh, pt, 3, h);
        let mut rows = [ZERO_ROW.as_ptr(); 3];
        for (ky, r) in rows.iter_mut().enumerate().take(ky_hi).skip(ky_lo) {
            let iy = (y0 + ky as isize) as usize; // a row inside the input
            let slot = iy % 3;
            let Some(d) = strip.get_mut(slot * STRIP..(slot + 1) * STRIP) else {
                continue;
            };
            if held[slot] != iy {
                if let (Some(src), Some(d)) =
                    (x.get(iy * w..iy * w + cols), d.get_mut(pl..pl + cols))
                {
                    copy_row(src, d);
                }
                held[slot] = iy;
            }
            *r = d.as_ptr();
        }
        // SAFETY: pixel k < ow reads columns k·sw .. k·sw + 2 ≤ wp − 1 < STRIP ≤ 32 of each
        // row pointer: a strip row (STRIP 4-aligned floats of `strip`) or ZERO_ROW (64 floats);
        // writes ow = y_row.len() floats.
        unsafe { conv3x3_pixels(rows, 4 * sw, ow, wb, act, y_row) };
    }
}

/// `wb[0..9]` = the 9 little-endian f32 of `w` (one 3×3 filter, any alignment: unaligned
/// `LDR`s); whether all of them are finite (no exponent of all ones). 5 instructions per
/// weight. Nothing is written unless `w` holds 36 bytes.
#[inline(always)]
fn load9(w: &[u8], wb: &mut [f32; 12]) -> bool {
    if w.len() != 36 {
        return false;
    }
    let acc: u32;
    // SAFETY: reads the 36 bytes of `w` (9 `LDR`, unaligned allowed on ARMv7-M: CCR.UNALIGN_TRP
    // is 0 out of reset) and writes the first 9 of the 12 floats of `wb` (4-aligned); the
    // registers written are the operands. `acc` collects `(bits & exponent) + 2^23` per
    // weight: bit 31 is set exactly when an exponent is all ones. Flags: none.
    unsafe {
        asm!(
            "movs {acc}, #0",
            ".rept 9",
            "ldr {t}, [{w}], #4",
            "str {t}, [{d}], #4",
            "and {t}, {t}, #0x7F800000",
            "add {t}, {t}, #0x00800000",
            "orr {acc}, {acc}, {t}",
            ".endr",
            w = inout(reg) w.as_ptr() => _,
            d = inout(reg) wb.as_mut_ptr() => _,
            t = out(reg) _,
            acc = out(reg) acc,
            options(nostack),
        );
    }
    acc & 0x8000_0000 == 0
}

/// [`conv2d`] for one input channel and a 3×3 filter (the first layer of an image CNN), and
/// a 3×3 DepthwiseConv2d: per output channel `o`, input plane `o·plane` of `input` (`plane`
/// = 0: the one channel; `h·w`: depthwise) through [`conv3x3_table`] with the layer's
/// [`Plan3x3`], or [`conv3x3_plane`] where there is none (the activation inside their loops).
/// A channel with a non-finite weight runs the reference loop.
#[inline(never)]
fn conv3x3(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
    plane: usize,
) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    if ohw == 0 {
        return;
    }
    let plan = conv3x3_plan(g);
    let wbytes = weights.as_bytes();
    // The 9 weights and canon(bias) of the channel ([`load9`], below), +0.0 (ReLU's bound)
    // and 6.0 (ReLU6's).
    let mut wb = [0.0f32; 12];
    wb[11] = 6.0;
    for (o, (y, b)) in output.chunks_exact_mut(ohw).zip(bias.iter()).enumerate() {
        let (Some(w_o), Some(x)) = (
            wbytes.get(36 * o..36 * o + 36),
            input.get(o * plane..o * plane + hw),
        ) else {
            return;
        };
        if !load9(w_o, &mut wb) {
            let (Some(w_o), Some(b_o)) = (weights.slice(9 * o, 9), bias.slice(o, 1)) else {
                return;
            };
            super::conv2d_f32::reference(g, act, x, w_o, b_o, y);
            continue;
        }
        wb[9] = b + 0.0; // canon(bias): −0.0 → +0.0
        match &plan {
            Some(plan) => conv3x3_table(plan, g, x, &wb, act, y),
            None => conv3x3_plane(g, x, &wb, act, y),
        }
    }
}

/// DepthwiseConv2d f32 with a 3×3 window on the device: the checks of
/// [`super::depthwise_conv2d_f32`], then [`conv3x3`] over every channel in one call (the
/// layer's plan once, no per-channel dispatch).
pub(crate) fn depthwise3x3(
    p: &DepthwiseParams,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) -> Result<()> {
    let g = super::depthwise_geometry(p, input.len(), output.len(), weights.len())?;
    if !weights.is_whole() || bias.len() != p.channels || g.win.kh != 3 || g.win.kw != 3 {
        return Err(Error::KernelBadArguments);
    }
    conv3x3(&g, p.activation, input, weights, bias, output, g.h * g.w);
    Ok(())
}
