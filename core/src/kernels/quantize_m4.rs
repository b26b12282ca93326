//! The int8 model's input step on the Cortex-M4F (`cfg(denoiserep_fpu)`): normalize and quantize
//! a channel plane without a call to `libm::roundf`.
//!
//! `out[i] = clamp(roundf(((x[i] − mean) / std) / scale) + zp, −128, 127)` ([`quantize`] of the
//! normalized value, ties away from zero, NaN → `zp`), bit for bit, in 12 instructions per value
//! (the `roundf` call and the clamps cost 33).
//!
//! The rounding uses the fixed-point `VCVT`: `h = VCVT.S16.F32(r, #1)` is `trunc(2·r)` computed
//! exactly (the ARMv7-M ARM's `FPToFixed`: the real value `r·2^1` rounded toward zero, saturated
//! to `[−2^15, 2^15 − 1]`, NaN → 0, sign-extended to 32 bits). Then
//! `round_half_away(r) = (h + 1 + (h < 0 ? −1 : 0)) >> 1` (arithmetic shift), because for
//! `h = trunc(2r) ≥ 0`, `r ∈ [h/2, (h+1)/2)` and `(h + 1) >> 1` is `⌊r⌋ + 1` exactly when the
//! fraction is `≥ 0.5`; for `h < 0` symmetrically `h >> 1`. Adding `2·zp` before the shift adds
//! `zp` after it, and `SSAT #8, … ASR #1` shifts and clamps in one instruction. Saturating `h` to
//! 16 bits cannot change the clamped result: `|2r| ≥ 2^15` means `|round(r)| ≥ 2^14`, far past
//! the int8 range for any `zp`. The divisions are the same `VDIV.F32` the reference runs, so `r`
//! has the same bits.
//!
//! [`quantize`]: crate::quant::quantize

use core::arch::asm;

/// `out[i] = quantize((x[i] − mean) / std, (scale, zp))` for `i < min(x.len(), out.len())`.
///
/// Never inlined: the callee-saved `s16–s19` its assembly declares are saved in this
/// function's own prologue, not in the (large, long-lived) frame of its caller, which is on
/// the stack while the whole model runs.
#[inline(never)]
pub(crate) fn normalize_quantize(
    x: &[f32],
    mean: f32,
    std: f32,
    scale: f32,
    zp: i8,
    out: &mut [i8],
) {
    let n = x.len().min(out.len());
    if n == 0 {
        return;
    }
    // 1 + 2·zp: the `+ 1` of the half-away rounding and `zp` doubled, added before `>> 1`.
    let c = 1 + 2 * i32::from(zp);
    // SAFETY: reads `n` f32 of `x` (`VLDMIA` of one 4-aligned `f32` each) and writes `n` bytes of
    // `out`, `n ≤` both lengths and `n ≥ 1` (checked above), the loop counting `n` down to 0.
    // Every register written is declared: the operands and `s16–s19` (callee-saved: the
    // compiler saves them in the prologue; `s` registers are named operands on
    // `thumbv7em-none-eabihf`, whose default features include the FPU). FPSCR is only read by the
    // arithmetic (round to nearest for `VSUB`/`VDIV`; `VCVT` to fixed point always rounds
    // toward zero). Flags: `subs`.
    unsafe {
        asm!(
            "vmov s17, {mean}",
            "vmov s18, {std}",
            "vmov s19, {scale}",
            "2:",
            "vldmia {x}!, {{s16}}",
            "vsub.f32 s16, s16, s17",
            "vdiv.f32 s16, s16, s18",
            "vdiv.f32 s16, s16, s19",
            "vcvt.s16.f32 s16, s16, #1",
            "vmov {t}, s16",
            "add.w {t}, {t}, {t}, asr #31",
            "add {t}, {t}, {c}",
            "ssat {t}, #8, {t}, asr #1",
            "strb {t}, [{o}], #1",
            "subs {n}, {n}, #1",
            "bne 2b",
            x = inout(reg) x.as_ptr() => _,
            o = inout(reg) out.as_mut_ptr() => _,
            n = inout(reg) n => _,
            c = in(reg) c,
            t = out(reg) _,
            mean = in(reg) mean.to_bits(),
            std = in(reg) std.to_bits(),
            scale = in(reg) scale.to_bits(),
            out("s16") _,
            out("s17") _,
            out("s18") _,
            out("s19") _,
            options(nostack),
        );
    }
}
