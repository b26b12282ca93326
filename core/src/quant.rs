//! int8 arithmetic, exactly as TensorFlow Lite Micro does it (see `docs/quantization.md`).
//!
//! Every int8 kernel requantizes its int32 accumulator through the single function
//! [`requantize`]; exporters compute the per-channel `(multiplier, shift)` pairs they store in a
//! model file with [`quantize_multiplier`]. Both follow `QuantizeMultiplier` and
//! `MultiplyByQuantizedMultiplier` of tflite-micro / gemmlowp bit for bit.

use crate::tensor::QuantParams;

/// Smallest valid nonzero requantization multiplier (`2^30`, i.e. 0.5 in Q0.31).
pub const MULTIPLIER_MIN: i32 = 1 << 30;
/// Smallest valid requantization shift (a right shift by 31).
pub const SHIFT_MIN: i32 = -31;
/// Largest valid requantization shift (a left shift by 30).
pub const SHIFT_MAX: i32 = 30;

/// Splits a real multiplier into a Q0.31 fixed-point multiplier and a power-of-two exponent,
/// `real ≈ multiplier · 2^(shift − 31)`, as tflite's `QuantizeMultiplier`:
///
/// - `real == 0` → `(0, 0)`;
/// - `(q, shift) = frexp(real)` with `q ∈ [0.5, 1)`; `q_fixed = round(q · 2^31)` (ties away
///   from zero); if `q_fixed == 2^31` then `q_fixed /= 2`, `shift += 1`;
/// - `shift < −31` → `(0, 0)` (flush tiny multipliers to zero);
/// - `shift > 30` → `(2^31 − 1, 30)` (saturate, as tflite's single-rounding build does), so the
///   result is always accepted by [`requantize`] and by the model loader.
///
/// For a nonzero result, `multiplier ∈ [2^30, 2^31 − 1]` (negative `real` gives the negated range).
/// Non-finite `real` gives `(0, 0)`. Per channel `c` of an int8 layer the real multiplier is
/// `(s_in as f64) · (s_w[c] as f64) / (s_out as f64)`.
pub fn quantize_multiplier(real: f64) -> (i32, i32) {
    if real == 0.0 || !real.is_finite() {
        return (0, 0);
    }
    let (q, mut shift) = libm::frexp(real);
    let mut q_fixed = libm::round(q * (1i64 << 31) as f64) as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < SHIFT_MIN {
        return (0, 0);
    }
    if shift > SHIFT_MAX {
        return (if real > 0.0 { i32::MAX } else { -i32::MAX }, SHIFT_MAX);
    }
    // |q| < 1 so |q_fixed| ≤ 2^31; the +2^31 case was halved above; −2^31 fits in i32.
    (q_fixed as i32, shift)
}

/// gemmlowp `SaturatingRoundingDoublingHighMul`: `round(a · b / 2^31)` with ties away from zero,
/// saturating the single overflowing case `a == b == i32::MIN` to `i32::MAX`.
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // Truncating division, as C++ does; the quotient fits in i32 because |ab| < 2^62.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp `RoundingDivideByPOT`: `x / 2^exponent` rounded to nearest, ties away from zero.
/// `exponent` is clamped to `0..=31`.
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let e = exponent.clamp(0, 31) as u32;
    let mask: i32 = ((1i64 << e) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> e) + i32::from(remainder > threshold)
}

/// tflite `MultiplyByQuantizedMultiplier(x, multiplier, shift)`:
/// `RoundingDivideByPOT(SRDHM(x · 2^max(shift, 0), multiplier), max(−shift, 0))`,
/// i.e. `x · multiplier · 2^(shift − 31)` rounded (twice, as tflite does).
///
/// Valid ranges (what [`quantize_multiplier`] produces and the loader checks):
/// `multiplier ∈ {0} ∪ [2^30, 2^31 − 1]`, `shift ∈ [−31, 30]`. The left shift wraps in two's
/// complement like tflite's `x * (1 << shift)` on common targets; the model loader rejects layers
/// whose accumulator could make that matter only for `shift > 0` by bounding `|acc|`
/// (see `docs/quantization.md`). Outside the valid ranges the result is unspecified but the
/// function never panics.
#[inline]
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.clamp(0, 31) as u32;
    let right = if shift < 0 { -(shift.max(-31)) } else { 0 };
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x.wrapping_shl(left), multiplier),
        right,
    )
}

/// The one requantization step every int8 kernel uses:
/// `clamp(MultiplyByQuantizedMultiplier(acc, multiplier, shift) + zp_out, act_min, act_max)`,
/// then into `[−128, 127]`. Total: `act_min > act_max` gives `act_max`, never a panic.
#[inline]
pub fn requantize(
    acc: i32,
    multiplier: i32,
    shift: i32,
    zp_out: i32,
    act_min: i32,
    act_max: i32,
) -> i8 {
    let v = multiply_by_quantized_multiplier(acc, multiplier, shift).saturating_add(zp_out);
    v.max(act_min).min(act_max).clamp(-128, 127) as i8
}

/// [`multiply_by_quantized_multiplier`] with its per-channel constants computed once, in a form
/// that costs few instructions per output (the Cortex-M4 DSP kernels use it; a channel of a
/// depthwise convolution requantizes `oh · ow` outputs with the same constants). Equal to
/// [`multiply_by_quantized_multiplier`]`(x, multiplier, shift)` for **every** `x`, `multiplier`
/// and `shift` (checked against it on edge cases and millions of random triples on the host, and
/// on the device by the firmware's `kernel-check`):
///
/// - left shift `x << left`, `left = clamp(shift, 0, 31)`, wrapping, as the oracle;
/// - `SaturatingRoundingDoublingHighMul(a, m)` = `⌊(a·m + 2^30) / 2^31⌋`: for `a·m ≥ 0` that is the
///   oracle's `(a·m + 2^30) / 2^31`; for `a·m < 0` the oracle truncates `(a·m + 1 − 2^30) / 2^31`
///   toward zero, which is `⌊(a·m + 1 − 2^30 + 2^31 − 1) / 2^31⌋`, the same expression. With
///   `t = a·m + 2^30` (i64, one `SMLAL`), the result is `2·hi(t) + bit 31 of lo(t)`; the doubling
///   saturates (`QADD`) exactly in the one overflowing case `a = m = i32::MIN` (`hi = 2^30`,
///   giving `i32::MAX`, as the oracle); every other product has `hi ∈ [−2^30, 2^30 − 1]`;
/// - `RoundingDivideByPOT(v, right)`, `right = clamp(−shift, 0, 31)`:
///   `(v >> right) + [rem > thr]` with `rem = v & mask`, `mask = 2^right − 1`,
///   `thr = (mask >> 1) + [v < 0]`, and `[rem > thr]` as the sign bit of `thr − rem` (both in
///   `[0, 2^31)`, no overflow): no branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requantizer {
    multiplier: i32,
    left: u32,
    right: u32,
    mask: i32,
    half: i32,
}

impl Requantizer {
    /// The constants of `(multiplier, shift)`; any `shift` (clamped as the oracle does).
    #[inline(always)]
    pub fn new(multiplier: i32, shift: i32) -> Self {
        let left = clamp_0_31(shift);
        let right = clamp_0_31(shift.saturating_neg());
        let mask = ((1u32 << right) - 1) as i32;
        Self {
            multiplier,
            left,
            right,
            mask,
            half: mask >> 1,
        }
    }

    /// `MultiplyByQuantizedMultiplier(x, multiplier, shift)`, bit for bit.
    #[inline(always)]
    pub fn apply(&self, x: i32) -> i32 {
        // `left ≤ 31`: a plain shift (wraps like the oracle's `wrapping_shl`).
        let a = x << (self.left & 31);
        let t = i64::from(a) * i64::from(self.multiplier) + (1 << 30);
        let hi = (t >> 32) as i32;
        let lo = t as u32;
        let v = hi.saturating_add(hi) | (lo >> 31) as i32;
        let rem = v & self.mask;
        let thr = self.half + ((v as u32) >> 31) as i32;
        (v >> (self.right & 31)) + ((thr.wrapping_sub(rem) as u32) >> 31) as i32
    }
}

/// [`multiply_by_quantized_multiplier`] for a channel with a right shift (`shift ∈ [−31, −1]`)
/// and a multiplier `m ≥ 0` (every layer the exporters make: real multipliers below 0.5), in one
/// `SMLAL` and a shift: equal to the oracle for **every** `x` (checked on the host on edge
/// cases and millions of random triples, and on the device by `kernel-check`). [`Self::new`]
/// gives `None` for the other `(multiplier, shift)` pairs; use [`Requantizer`] there.
///
/// Why it is exact, with `r = −shift ∈ [1, 31]`: the oracle is `RDBPOT(v, r)` with `v =
/// SRDHM(x, m) = ⌊(x·m + 2^30) / 2^31⌋` (no saturation: `m ≠ i32::MIN`; see [`Requantizer`]),
/// and `RDBPOT(v, r) = ⌊(v + 2^(r−1) − [v < 0]) / 2^r⌋` (ties away from zero). For integers `c`,
/// `⌊(⌊t / 2^31⌋ + c) / 2^r⌋ = ⌊(t + c·2^31) / 2^(31+r)⌋`, so the result is
/// `⌊T / 2^(31+r)⌋ = (T >> 32) >> (r − 1)` with the 64-bit
/// `T = x·m + 2^30 + 2^(30+r) − [v < 0]·2^31` (`|T| < 2^63`). For `m ≥ 0`, `v < 0` implies
/// `x < 0`, and `x < 0` with `v ≥ 0` gives `v = 0`, where both choices of the correction give
/// `⌊(2^(r−1) − {0, 1}) / 2^r⌋ = 0`: so `[x < 0]` replaces `[v < 0]`, i.e.
/// `T = x·m + base + (x >> 31)·2^31` with the per-channel `base = 2^30 + 2^(30+r)`.
/// On the Cortex-M4: `ASR`, a 64-bit add (`ADDS`/`ADC`), `SMLAL`, `ASR`: about 5 instructions
/// per output instead of ≈ 12 for [`Requantizer::apply`]. The result lies in `[−2^30 − 1,
/// 2^30 + 1]`, so adding a zero point cannot overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequantizerRight {
    multiplier: i32,
    /// `base = 2^30 + 2^(30+r)` as two words: low, high.
    base_lo: u32,
    base_hi: u32,
    /// `r − 1 ∈ [0, 30]`.
    shift: u32,
}

impl RequantizerRight {
    /// The constants of `(multiplier, shift)` when `multiplier ≥ 0` and `shift ∈ [−31, −1]`
    /// (every valid right shift: the loader's range); `None` otherwise.
    #[inline(always)]
    pub fn new(multiplier: i32, shift: i32) -> Option<Self> {
        // `shift + 31 ∈ [0, 30]`, one compare as unsigned.
        if multiplier < 0 || (shift.wrapping_add(31) as u32) > 30 {
            return None;
        }
        // `r = −shift ∈ [1, 31]`, `sh = r − 1 = !shift ∈ [0, 30]` (one `MVN`).
        let sh = !shift as u32;
        // `2^(30+r) = 2^(31+sh)`: high word `2^(sh−1)` (0 for `sh = 0`), low word `2^31` for
        // `sh = 0` (0 otherwise); `t = 2^sh` gives both.
        let t = 1u32 << (sh & 31);
        Some(Self {
            multiplier,
            base_lo: 0x4000_0000 | (t << 31),
            base_hi: t >> 1,
            shift: sh,
        })
    }

    /// `MultiplyByQuantizedMultiplier(x, multiplier, shift)`, bit for bit.
    #[inline(always)]
    pub fn apply(&self, x: i32) -> i32 {
        #[cfg(denoiserep_dsp)]
        {
            let y: i32;
            // SAFETY: register-only instructions (ARMv7-M); `s`, `lo` and `y` are written
            // before every input is read, hence `out` (never sharing an input's register); the
            // flags (`ADDS`) are clobbered, which `asm!` assumes without `preserves_flags`.
            // `T = x·m + base + (x >> 31)·2^31`: `(x >> 31)·2^31` is the 64-bit `(s << 31, s)`
            // for `s = x >> 31 ∈ {0, −1}`; then `y = (T >> 32) >> (r − 1)`.
            unsafe {
                core::arch::asm!(
                    "asr {s}, {x}, #31",
                    "adds {lo}, {blo}, {s}, lsl #31",
                    "adc {y}, {bhi}, {s}",
                    "smlal {lo}, {y}, {x}, {m}",
                    "asr {y}, {y}, {sh}",
                    x = in(reg) x,
                    m = in(reg) self.multiplier,
                    blo = in(reg) self.base_lo,
                    bhi = in(reg) self.base_hi,
                    sh = in(reg) self.shift,
                    s = out(reg) _,
                    lo = out(reg) _,
                    y = out(reg) y,
                    options(pure, nomem, nostack),
                );
            }
            y
        }
        #[cfg(not(denoiserep_dsp))]
        {
            let base = (i64::from(self.base_hi) << 32) | i64::from(self.base_lo);
            let t = i64::from(x) * i64::from(self.multiplier)
                + base.wrapping_add(i64::from(x >> 31) << 31);
            ((t >> 32) as i32) >> (self.shift & 31)
        }
    }
}

/// `clamp(v, 0, 31)`: one `USAT #5` on ARMv7E-M (LLVM emits two compare-and-selects for the
/// plain clamp). [`Requantizer::new`] negates with `saturating_neg`, so `shift = i32::MIN` gives
/// the right shift 31, as the oracle.
#[inline(always)]
fn clamp_0_31(v: i32) -> u32 {
    #[cfg(denoiserep_dsp)]
    {
        let r: u32;
        // SAFETY: one register-only instruction (ARMv7E-M); it may set the sticky Q flag.
        unsafe {
            core::arch::asm!("usat {r}, #5, {v}", r = lateout(reg) r, v = in(reg) v,
                options(pure, nomem, nostack));
            // SAFETY: USAT #5 gives a value in [0, 31].
            core::hint::assert_unchecked(r <= 31);
        }
        r
    }
    #[cfg(not(denoiserep_dsp))]
    {
        v.clamp(0, 31) as u32
    }
}

/// The last step of [`requantize`] with its constants computed once: `+ zp_out` (saturating),
/// then the clamp. `clamp(clamp(v, act_min, act_max)·, −128, 127)` equals
/// `min(max(v, lo), hi)` with `lo = clamp(act_min, −128, 127)`, `hi = clamp(act_max, −128, 127)`
/// (clamping to `[−128, 127]` commutes with `max` and `min`; `act_min > act_max` gives
/// `hi`, as [`requantize`]), so two comparisons instead of four.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputRange {
    zp_out: i32,
    lo: i32,
    hi: i32,
}

impl OutputRange {
    /// The range of [`requantize`]'s `zp_out`, `act_min`, `act_max`.
    #[inline]
    pub fn new(zp_out: i32, act_min: i32, act_max: i32) -> Self {
        Self {
            zp_out,
            lo: act_min.clamp(-128, 127),
            hi: act_max.clamp(-128, 127),
        }
    }

    /// True when the clamp is the whole int8 range `[−128, 127]` (no activation, or a ReLU /
    /// ReLU6 whose range covers every int8 value): then [`Self::finish_full`] applies.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.lo == -128 && self.hi == 127
    }

    /// [`Self::finish`] for a range with [`Self::is_full`]: `clamp(v + zp_out, −128, 127)`,
    /// the saturating add and one `SSAT #8` on ARMv7E-M. (For another range the result is
    /// that of the full one.)
    #[inline(always)]
    pub fn finish_full(&self, v: i32) -> i8 {
        let v = v.saturating_add(self.zp_out);
        #[cfg(denoiserep_dsp)]
        {
            let r: i32;
            // SAFETY: one register-only instruction (ARMv7E-M); it may set the sticky Q flag.
            unsafe {
                core::arch::asm!("ssat {r}, #8, {v}", r = lateout(reg) r, v = in(reg) v,
                    options(pure, nomem, nostack));
            }
            r as i8
        }
        #[cfg(not(denoiserep_dsp))]
        {
            v.clamp(-128, 127) as i8
        }
    }

    /// `clamp(v + zp_out, …)` as [`requantize`] after its multiply.
    #[inline(always)]
    pub fn finish(&self, v: i32) -> i8 {
        let v = v.saturating_add(self.zp_out);
        let v = if v < self.lo { self.lo } else { v };
        (if v > self.hi { self.hi } else { v }) as i8
    }
}

/// [`requantize`] through [`Requantizer`] and [`OutputRange`]: the same result for every input.
#[inline(always)]
pub fn requantize_fast(acc: i32, requant: &Requantizer, range: &OutputRange) -> i8 {
    range.finish(requant.apply(acc))
}

/// The int8 output range of a layer with output quantization `out` and a fused activation, as
/// TFLite's `CalculateActivationRangeQuantized`: `[-128, 127]`; ReLU `[max(-128, zp), 127]`;
/// ReLU6 `[max(-128, zp), min(127, quantize(6))]` with `quantize(6) = zp + round(6 / scale)`
/// (f32 division, ties away from zero).
#[inline]
pub fn activation_range(activation: crate::tensor::Activation, out: QuantParams) -> (i32, i32) {
    let zp = i32::from(out.zero_point);
    match activation {
        crate::tensor::Activation::None => (-128, 127),
        crate::tensor::Activation::Relu => (zp.max(-128), 127),
        crate::tensor::Activation::Relu6 => {
            let six = (libm::roundf(6.0 / out.scale) as i32).saturating_add(zp);
            (zp.max(-128), six.min(127))
        }
    }
}

/// Quantizes a real value: `clamp(round(x / scale) + zero_point, −128, 127)` with the division in
/// f32 and `round` = ties away from zero (`libm::roundf`). NaN maps to `zero_point`.
#[inline]
pub fn quantize(x: f32, q: QuantParams) -> i8 {
    // `as i32` saturates (and maps NaN to 0), so no overflow before the clamp.
    let r = libm::roundf(x / q.scale) as i32;
    r.saturating_add(i32::from(q.zero_point)).clamp(-128, 127) as i8
}

/// [`quantize`] without a call to `roundf`, in a branch-free form compilers vectorize; the same
/// result for every `x` and `q`: `r = x / scale` is the same f32 division, and
/// [`round_to_s8`] equals `clamp(roundf(r) + zp, −128, 127)` for every f32 `r` (checked over all
/// 2^32 of them by an ignored test, see `docs/kernels.md`).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(crate) fn quantize_vectorizable(x: f32, q: QuantParams) -> i8 {
    round_to_s8(x / q.scale, q.zero_point)
}

/// `clamp(roundf(r) + zp, −128, 127)` (ties away from zero; NaN → `zp`), branch-free.
///
/// Past ±512 the result saturates to −128 or 127 for every zero point, so `r` is first clamped to
/// `[−512, 512]` (NaN → 0, as `roundf(NaN) as i32 == 0`). Then `t = trunc(r)` is exact in i32,
/// the fraction `r − t` is exact in f32, and `t ± 1` when `|r − t| ≥ 0.5` is round-half-away.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn round_to_s8(r: f32, zp: i8) -> i8 {
    let c = if r.is_nan() {
        0.0
    } else {
        r.clamp(-512.0, 512.0)
    };
    // SAFETY: `c` is finite and within ±512, so it fits i32 (`as i32` would be the same value,
    // but its saturation checks keep the loop scalar).
    let t: i32 = unsafe { c.to_int_unchecked() };
    let frac = c - t as f32;
    let rounded = t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5);
    (rounded + i32::from(zp)).clamp(-128, 127) as i8
}

/// Dequantizes an int8 value: `scale · (q − zero_point)` (the subtraction is exact in i32,
/// then one f32 multiply).
#[inline]
pub fn dequantize(q: i8, p: QuantParams) -> f32 {
    p.scale * (i32::from(q) - i32::from(p.zero_point)) as f32
}

/// True when `(multiplier, shift)` is in the range the loader accepts (see
/// [`multiply_by_quantized_multiplier`]): `multiplier ∈ [2^30, 2^31 − 1]` with
/// `shift ∈ [−31, 30]`, or `(0, 0)`.
pub fn multiplier_is_valid(multiplier: i32, shift: i32) -> bool {
    (multiplier == 0 && shift == 0)
        || (multiplier >= MULTIPLIER_MIN && (SHIFT_MIN..=SHIFT_MAX).contains(&shift))
}

/// TFLite's `QuantizeMultiplier` as built by default (double rounding, no
/// `TFLITE_SINGLE_ROUNDING`): like [`quantize_multiplier`] but a shift above 30 is kept, not
/// saturated (softmax's capped multiplier `2^31 − 1` has shift 31). `real` must be finite.
fn quantize_multiplier_unsaturated(real: f64) -> (i32, i32) {
    if real == 0.0 {
        return (0, 0);
    }
    let (q, mut shift) = libm::frexp(real);
    let mut q_fixed = libm::round(q * (1i64 << 31) as f64) as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < SHIFT_MIN {
        return (0, 0);
    }
    (q_fixed as i32, shift)
}

/// TFLite `QuantizeMultiplierSmallerThanOneExp`: `real` must lie in `(0, 1)` and give a shift
/// `≤ 0` (TFLite aborts otherwise; here `None`).
fn quantize_multiplier_smaller_than_one(real: f64) -> Option<(i32, i32)> {
    // NaN fails both comparisons.
    if real.is_nan() || real <= 0.0 || real >= 1.0 {
        return None;
    }
    let (m, shift) = quantize_multiplier_unsaturated(real);
    (shift <= 0).then_some((m, shift))
}

/// The parameters of an int8 ADD (equal shapes), exactly TFLite-Micro's `CalculateOpDataAdd`
/// for int8 (see [`AddS8Params`](crate::kernels::params::AddS8Params)):
///
/// - `left_shift = 20`;
/// - `twice_max = 2 · max(s1, s2)` (max in f32, then f64);
/// - `m1 = s1 / twice_max`, `m2 = s2 / twice_max`, `m_out = twice_max / (2^20 · s_out)`, all
///   f64, each split by `QuantizeMultiplierSmallerThanOneExp` into a Q0.31 multiplier and a
///   shift `≤ 0`;
/// - `(act_min, act_max) = `[`activation_range`]`(activation, out)`.
///
/// `None` when a scale is not finite and positive, or when a real multiplier is not in `(0, 1)`
/// or rounds up to shift 1 (where TFLite's `TFLITE_CHECK`s abort), e.g. `m_out ≥ 1` when the
/// output scale is below `2 · max(s1, s2) / 2^20`.
pub fn add_s8_params(
    in1: QuantParams,
    in2: QuantParams,
    out: QuantParams,
    activation: crate::tensor::Activation,
) -> Option<crate::kernels::params::AddS8Params> {
    if !(in1.is_valid() && in2.is_valid() && out.is_valid()) {
        return None;
    }
    const LEFT_SHIFT: i32 = 20;
    let twice_max_input_scale = 2.0 * f64::from(in1.scale.max(in2.scale));
    let real_input1_multiplier = f64::from(in1.scale) / twice_max_input_scale;
    let real_input2_multiplier = f64::from(in2.scale) / twice_max_input_scale;
    let real_output_multiplier =
        twice_max_input_scale / (f64::from(1i32 << LEFT_SHIFT) * f64::from(out.scale));
    let (input1_multiplier, input1_shift) =
        quantize_multiplier_smaller_than_one(real_input1_multiplier)?;
    let (input2_multiplier, input2_shift) =
        quantize_multiplier_smaller_than_one(real_input2_multiplier)?;
    let (output_multiplier, output_shift) =
        quantize_multiplier_smaller_than_one(real_output_multiplier)?;
    let (act_min, act_max) = activation_range(activation, out);
    Some(crate::kernels::params::AddS8Params {
        input1_zp: i32::from(in1.zero_point),
        input2_zp: i32::from(in2.zero_point),
        output_zp: i32::from(out.zero_point),
        left_shift: LEFT_SHIFT,
        input1_multiplier,
        input1_shift,
        input2_multiplier,
        input2_shift,
        output_multiplier,
        output_shift,
        act_min,
        act_max,
    })
}

/// Integer bits of the scaled input differences of TFLite's int8 softmax (Q5.26).
pub const SOFTMAX_SCALED_DIFF_INTEGER_BITS: i32 = 5;

/// The parameters of an int8 Softmax over the last dim, exactly TFLite-Micro's
/// `CalculateSoftmaxParams` for int8 in and out:
///
/// - `PreprocessSoftmaxScaling(beta, input_scale, 5)`: the real multiplier
///   `min(beta · input_scale · 2^26, 2^31 − 1)` (f64) is split by `QuantizeMultiplierGreaterThanOne`
///   into `(input_multiplier, input_left_shift)` (`left_shift ∈ [1, 31]`; TFLite's default
///   double-rounding build does not saturate a shift of 31, and neither does this);
/// - `CalculateInputRadius(5, input_left_shift, 31)`: `radius = floor(31 · 2^26 / 2^left_shift)`
///   (f64) and `diff_min = −radius`.
///
/// `None` when `input_scale` is not finite and positive, when the real multiplier is NaN or
/// `≤ 1` (TFLite's `QuantizeMultiplierGreaterThanOne` check aborts: `beta · input_scale` must
/// exceed `2^−26`), when `depth` is 0 or above
/// [`MAX_SOFTMAX_S8_DEPTH`](crate::kernels::MAX_SOFTMAX_S8_DEPTH), or when `rows · depth`
/// overflows.
pub fn softmax_s8_params(
    beta: f32,
    input_scale: f32,
    rows: usize,
    depth: usize,
) -> Option<crate::kernels::params::SoftmaxS8Params> {
    let scale_ok = input_scale.is_finite() && input_scale > 0.0;
    if !scale_ok || depth == 0 || depth > crate::kernels::MAX_SOFTMAX_S8_DEPTH {
        return None;
    }
    rows.checked_mul(depth)?;
    let bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS;
    let max_real_multiplier = ((1i64 << 31) - 1) as f64;
    let real = f64::from(beta) * f64::from(input_scale) * f64::from(1i32 << (31 - bits));
    // std::min<double>(real, max): NaN stays NaN and fails the check below.
    let real = if max_real_multiplier < real {
        max_real_multiplier
    } else {
        real
    };
    if real.is_nan() || real <= 1.0 {
        return None;
    }
    let (input_multiplier, input_left_shift) = quantize_multiplier_unsaturated(real);
    if input_left_shift < 0 {
        return None;
    }
    // CalculateInputRadius(5, left_shift, 31).
    let max_input_rescaled = f64::from((1i32 << bits) - 1) * (1i64 << (31 - bits)) as f64
        / (1i64 << input_left_shift) as f64;
    let radius = libm::floor(max_input_rescaled) as i32;
    Some(crate::kernels::params::SoftmaxS8Params {
        rows,
        depth,
        input_multiplier,
        input_left_shift,
        diff_min: -radius,
    })
}

/// The requantization of an int8 BatchMatMul `y = alpha · a × b`: TFLite-Micro's BATCH_MATMUL
/// multiplier (`GetQuantizedConvolutionMultipler` without bias: the product `s_a · s_b` rounded
/// to f32, as TFLite computes it, then f64) times `alpha`, over `s_out`:
///
/// `real = (f64(s_a · s_b) · f64(alpha)) / f64(s_out)` (each step rounded to f64), split by
/// TFLite's `QuantizeMultiplier` (default double-rounding build: a shift above 30 is not
/// saturated, it is rejected here).
///
/// With `alpha = 1` this is bit for bit TFLite-Micro's multiplier; any other `alpha` (`1/√d` of
/// attention scores) is folded in with one more f64 rounding. `None` when a scale or `alpha` is
/// not finite and positive, `real` is not finite, or the shift is above 30. A `real` below
/// `2^−32` flushes to `(0, 0)` (every output is `out_zp`), as TFLite.
pub fn batch_matmul_s8_params(
    a: QuantParams,
    b: QuantParams,
    out: QuantParams,
    alpha: f32,
) -> Option<crate::kernels::params::BatchMatMulS8Params> {
    let alpha_ok = alpha.is_finite() && alpha > 0.0;
    if !(a.is_valid() && b.is_valid() && out.is_valid() && alpha_ok) {
        return None;
    }
    let real = f64::from(a.scale * b.scale) * f64::from(alpha) / f64::from(out.scale);
    if !real.is_finite() {
        return None;
    }
    let (multiplier, shift) = quantize_multiplier_unsaturated(real);
    if shift > SHIFT_MAX {
        return None;
    }
    Some(crate::kernels::params::BatchMatMulS8Params {
        a_zp: i32::from(a.zero_point),
        b_zp: i32::from(b.zero_point),
        out_zp: i32::from(out.zero_point),
        multiplier,
        shift,
    })
}

/// The requantization of an int8 mean over `n` values, exactly TFLite-Micro's MEAN
/// (`PrepareMeanOrSum` + `QuantizedMeanOrSum`):
///
/// - `(m, s) = QuantizeMultiplier(f64(s_in) / f64(s_out))` (double-rounding build);
/// - `k = min(⌊log2 n⌋, 32, 31 + s)`;
/// - `multiplier = (m · 2^k) / n` (i64, truncating division), `shift = s − k`.
///
/// The kernel then computes `MBQM(Σ q − zp_in · n, multiplier, shift) + zp_out`. `None` when a
/// scale is not finite and positive, `n` is 0, or a shift leaves `[−31, 30]`.
pub fn mean_s8_params(
    input: QuantParams,
    output: QuantParams,
    n: usize,
) -> Option<crate::kernels::params::MeanS8Params> {
    if !(input.is_valid() && output.is_valid()) || n == 0 {
        return None;
    }
    let n = i64::try_from(n).ok()?;
    let (m, s) = quantize_multiplier_unsaturated(f64::from(input.scale) / f64::from(output.scale));
    if s > SHIFT_MAX {
        return None;
    }
    // 63 − CountLeadingZeros(n) = ⌊log2 n⌋ for n ≥ 1.
    let k = (63 - (n as u64).leading_zeros() as i32).min(32).min(31 + s);
    let k = k.max(0) as u32;
    let multiplier = i32::try_from((i64::from(m) << k) / n).ok()?;
    let shift = s - k as i32;
    if !(SHIFT_MIN..=SHIFT_MAX).contains(&shift) {
        return None;
    }
    Some(crate::kernels::params::MeanS8Params {
        input_zp: i32::from(input.zero_point),
        output_zp: i32::from(output.zero_point),
        multiplier,
        shift,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every f32 bit pattern, three zero points (the zero point only moves the final clamp):
    /// `cargo test -p denoiserep-core --release --lib -- --ignored round_to_s8`.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    #[ignore = "exhaustive over 2^32 values: about a minute in release"]
    fn round_to_s8_equals_roundf_for_every_f32() {
        for zp in [-128i8, 0, 127] {
            for bits in 0..=u32::MAX {
                let r = f32::from_bits(bits);
                let want = (libm::roundf(r) as i32)
                    .saturating_add(i32::from(zp))
                    .clamp(-128, 127) as i8;
                assert_eq!(round_to_s8(r, zp), want, "r = {r:e} ({bits:#x}), zp = {zp}");
            }
        }
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn quantize_vectorizable_matches_quantize() {
        let scales = [1.0f32, 0.5, 0.003_921_569, 0.0125, 3.7e-5, 17.0];
        let mut specials = [
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.499_999_97,
            -0.499_999_97,
            0.500_000_06,
            127.5,
            -128.5,
            511.5,
            512.0,
            512.5,
            -512.5,
            1e30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            8_388_607.5,
            16_777_217.0,
        ];
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for zp in [-128i8, -5, 0, 3, 127] {
            for &scale in &scales {
                let q = QuantParams {
                    scale,
                    zero_point: zp,
                };
                for x in specials.iter_mut() {
                    assert_eq!(quantize_vectorizable(*x, q), quantize(*x, q), "x = {x}");
                    // Also the values a half step away, scaled back (ties after the division).
                    let y = *x * scale;
                    assert_eq!(quantize_vectorizable(y, q), quantize(y, q), "y = {y}");
                }
                for _ in 0..20_000 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let x = f32::from_bits(state as u32);
                    assert_eq!(quantize_vectorizable(x, q), quantize(x, q), "x = {x:e}");
                    // Halves and near-halves in the interesting range.
                    let h = ((state >> 32) % 2048) as f32 * 0.5 - 512.0;
                    for v in [
                        h,
                        f32::from_bits(h.to_bits() + 1),
                        f32::from_bits(h.to_bits().wrapping_sub(1)),
                    ] {
                        let x = v * scale;
                        assert_eq!(quantize_vectorizable(x, q), quantize(x, q), "x = {x:e}");
                    }
                }
            }
        }
    }

    /// Values around every boundary of the arithmetic: the extremes, powers of two and their
    /// neighbours, the SRDHM rounding ties.
    fn requant_edges() -> std::vec::Vec<i32> {
        let mut v = std::vec![
            0,
            1,
            -1,
            2,
            -2,
            3,
            -3,
            i32::MAX,
            i32::MIN,
            i32::MAX - 1,
            i32::MIN + 1
        ];
        for e in 0..31 {
            let p = 1i32 << e;
            for d in [-1, 0, 1] {
                v.push(p.wrapping_add(d));
                v.push((-p).wrapping_add(d));
                v.push((3i32.wrapping_shl(e)).wrapping_add(d));
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The DSP kernels' [`Requantizer`] / [`OutputRange`] against the oracle
    /// [`multiply_by_quantized_multiplier`] / [`requantize`]: every pair of edge values × every
    /// shift in `[−40, 40]`, then 4 million random triples (xorshift, fixed seed) with random
    /// zero points and clamps.
    #[test]
    fn requantizer_equals_multiply_by_quantized_multiplier() {
        let edges = requant_edges();
        let mut n = 0u64;
        for shift in (-40..=40).chain([i32::MIN, i32::MIN + 1, i32::MAX]) {
            for &m in &edges {
                let r = Requantizer::new(m, shift);
                for &x in &edges {
                    let want = multiply_by_quantized_multiplier(x, m, shift);
                    assert_eq!(r.apply(x), want, "x={x} m={m} shift={shift}");
                    n += 1;
                }
            }
        }
        assert!(n > 2_000_000, "{n}");
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for i in 0..4_000_000u32 {
            let r0 = next();
            let r1 = next();
            let x = match i % 4 {
                0 => r0 as i32,
                1 => (r0 as i32) >> (r1 % 32),
                2 => edges[(r0 % edges.len() as u64) as usize],
                _ => (r0 as i32) % 70_000,
            };
            let m = match (r1 >> 8) % 4 {
                0 => (r1 >> 32) as i32,
                1 => MULTIPLIER_MIN + ((r1 >> 33) as i32 & (MULTIPLIER_MIN - 1)),
                2 => edges[((r1 >> 32) % edges.len() as u64) as usize],
                _ => 0,
            };
            let shift = ((r0 >> 40) % 81) as i32 - 40;
            let zp = match (r0 >> 48) % 4 {
                0 => (r1 >> 20) as i32,
                _ => i32::from((r1 >> 20) as i8),
            };
            let (lo, hi) = match (r0 >> 56) % 4 {
                0 => (-128, 127),
                1 => (i32::from((r1 >> 44) as i8), 127),
                2 => (i32::from((r1 >> 44) as i8), i32::from((r1 >> 52) as i8)),
                _ => ((r1 >> 4) as i32, (r1 >> 36) as i32),
            };
            let q = Requantizer::new(m, shift);
            assert_eq!(
                q.apply(x),
                multiply_by_quantized_multiplier(x, m, shift),
                "x={x} m={m} shift={shift}"
            );
            assert_eq!(
                requantize_fast(x, &q, &OutputRange::new(zp, lo, hi)),
                requantize(x, m, shift, zp, lo, hi),
                "x={x} m={m} shift={shift} zp={zp} lo={lo} hi={hi}"
            );
        }
    }

    /// [`RequantizerRight`] against the oracle: `None` exactly off its domain; on it, every pair
    /// of edge values × every shift in `[−40, 40]`, then 4 million random triples.
    #[test]
    fn requantizer_right_equals_multiply_by_quantized_multiplier() {
        let edges = requant_edges();
        let mut n = 0u64;
        for shift in (-40..=40).chain([i32::MIN, i32::MIN + 1, i32::MAX]) {
            for &m in &edges {
                let r = RequantizerRight::new(m, shift);
                assert_eq!(
                    r.is_some(),
                    m >= 0 && (-31..=-1).contains(&shift),
                    "m={m} shift={shift}"
                );
                let Some(r) = r else { continue };
                for &x in &edges {
                    let want = multiply_by_quantized_multiplier(x, m, shift);
                    assert_eq!(r.apply(x), want, "x={x} m={m} shift={shift}");
                    n += 1;
                }
            }
        }
        assert!(n > 1_000_000, "{n}");
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for i in 0..4_000_000u32 {
            let (r0, r1) = (next(), next());
            let x = match i % 4 {
                0 => r0 as i32,
                1 => (r0 as i32) >> (r1 % 32),
                2 => edges[(r0 % edges.len() as u64) as usize],
                _ => (r0 as i32) % 70_000,
            };
            let m = match (r1 >> 8) % 4 {
                0 => (r1 >> 33) as i32,
                1 => MULTIPLIER_MIN + ((r1 >> 33) as i32 & (MULTIPLIER_MIN - 1)),
                2 => edges[((r1 >> 32) % edges.len() as u64) as usize].max(0),
                _ => 0,
            };
            let shift = -1 - ((r0 >> 40) % 31) as i32;
            let Some(q) = RequantizerRight::new(m, shift) else {
                panic!("m={m} shift={shift}");
            };
            assert_eq!(
                q.apply(x),
                multiply_by_quantized_multiplier(x, m, shift),
                "x={x} m={m} shift={shift}"
            );
        }
    }

    /// [`OutputRange::finish`] on every value near the clamps, every zero point's extremes and
    /// inverted ranges.
    #[test]
    fn output_range_equals_requantize_clamp() {
        let vals = requant_edges();
        let bounds = [
            i32::MIN,
            -200,
            -129,
            -128,
            -127,
            -5,
            0,
            5,
            126,
            127,
            128,
            300,
            i32::MAX,
        ];
        for &zp in &[i32::MIN, -129, -128, -3, 0, 7, 127, 128, i32::MAX] {
            for &lo in &bounds {
                for &hi in &bounds {
                    let r = OutputRange::new(zp, lo, hi);
                    for &v in vals
                        .iter()
                        .chain(&[-300, -129, -128, -127, 126, 127, 128, 250])
                    {
                        // multiplier 2^30 with shift 1 is the identity for |v| < 2^30.
                        if multiply_by_quantized_multiplier(v, 1 << 30, 1) != v {
                            continue;
                        }
                        let want = requantize(v, 1 << 30, 1, zp, lo, hi);
                        assert_eq!(r.finish(v), want, "v={v} zp={zp} lo={lo} hi={hi}");
                        if r.is_full() {
                            assert_eq!(r.finish_full(v), want, "v={v} zp={zp}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn quantize_rounds_half_away_and_clamps() {
        let q = QuantParams {
            scale: 0.5,
            zero_point: -3,
        };
        assert_eq!(quantize(0.25, q), -2); // 0.5 → 1, −3 + 1
        assert_eq!(quantize(-0.25, q), -4); // −0.5 → −1
        assert_eq!(quantize(1e9, q), 127);
        assert_eq!(quantize(f32::NEG_INFINITY, q), -128);
        assert_eq!(quantize(f32::NAN, q), -3);
    }

    #[test]
    fn dequantize_is_scale_times_offset() {
        let q = QuantParams {
            scale: 0.25,
            zero_point: 10,
        };
        assert_eq!(dequantize(14, q), 1.0);
        assert_eq!(dequantize(-128, q), -34.5);
    }

    #[test]
    fn multiplier_validity_matches_quantize_multiplier_ranges() {
        assert!(multiplier_is_valid(0, 0));
        assert!(!multiplier_is_valid(0, 1));
        assert!(multiplier_is_valid(MULTIPLIER_MIN, SHIFT_MIN));
        assert!(multiplier_is_valid(i32::MAX, SHIFT_MAX));
        assert!(!multiplier_is_valid(MULTIPLIER_MIN - 1, 0));
        assert!(!multiplier_is_valid(MULTIPLIER_MIN, SHIFT_MAX + 1));
        assert!(!multiplier_is_valid(-MULTIPLIER_MIN, 0));
    }

    #[test]
    fn relu_range_starts_at_the_zero_point() {
        use crate::tensor::Activation;
        let q = |scale: f32, zero_point: i8| QuantParams { scale, zero_point };
        assert_eq!(activation_range(Activation::None, q(0.1, 5)), (-128, 127));
        assert_eq!(activation_range(Activation::Relu, q(0.1, 5)), (5, 127));
        assert_eq!(
            activation_range(Activation::Relu, q(0.1, -128)),
            (-128, 127)
        );
        // ReLU6: zp + round(6 / s): 6 / 0.05 = 120 → −128 + 120 = −8; 6 / 0.04 = 150 clamps at 127.
        assert_eq!(
            activation_range(Activation::Relu6, q(0.05, -128)),
            (-128, -8)
        );
        assert_eq!(activation_range(Activation::Relu6, q(0.04, 3)), (3, 127));
        // 6 / 0.048 = 125.00000 in f32 → 125; 6 / 0.0235 = 255.3 → 255 − 128 = 127.
        assert_eq!(
            activation_range(Activation::Relu6, q(0.048, -128)),
            (-128, -3)
        );
    }

    #[test]
    fn add_params_follow_tflite_prepare() {
        use crate::tensor::Activation;
        let q = |scale: f32, zero_point: i8| QuantParams { scale, zero_point };
        // Equal input scales: both real multipliers are exactly 1/2 → (2^30, 0).
        let p = add_s8_params(q(0.5, -3), q(0.5, 7), q(1.0, 2), Activation::None).unwrap();
        assert_eq!((p.input1_multiplier, p.input1_shift), (1 << 30, 0));
        assert_eq!((p.input2_multiplier, p.input2_shift), (1 << 30, 0));
        // m_out = 1 / (2^20 · 1) = 2^−20 → 0.5 · 2^−19 → (2^30, −19).
        assert_eq!((p.output_multiplier, p.output_shift), (1 << 30, -19));
        assert_eq!((p.input1_zp, p.input2_zp, p.output_zp), (-3, 7, 2));
        assert_eq!((p.left_shift, p.act_min, p.act_max), (20, -128, 127));
        // s1 = 0.25, s2 = 0.5: m1 = 1/4 → (2^30, −1); ReLU clamps at the output zero point.
        let p = add_s8_params(q(0.25, 0), q(0.5, 0), q(0.75, -10), Activation::Relu).unwrap();
        assert_eq!((p.input1_multiplier, p.input1_shift), (1 << 30, -1));
        assert_eq!((p.input2_multiplier, p.input2_shift), (1 << 30, 0));
        // m_out = 1 / (2^20 · 0.75) = (4/3) · 2^−20 = (2/3) · 2^−19: round(2/3 · 2^31), shift −19.
        let m = libm::round(2.0 / 3.0 * 2_147_483_648.0) as i32;
        assert_eq!((p.output_multiplier, p.output_shift), (m, -19));
        assert_eq!((p.act_min, p.act_max), (-10, 127));
        // A non-dyadic ratio, checked against an independent frexp: s1/(2·s2).
        let (s1, s2, so) = (0.0123f32, 0.0371f32, 0.05f32);
        let p = add_s8_params(q(s1, 0), q(s2, 0), q(so, 0), Activation::None).unwrap();
        let real = f64::from(s1) / (2.0 * f64::from(s2));
        let got = f64::from(p.input1_multiplier) * libm::pow(2.0, f64::from(p.input1_shift - 31));
        assert!((got - real).abs() < real * 1e-9);
    }

    #[test]
    fn add_params_reject_what_tflite_rejects() {
        use crate::tensor::Activation;
        let q = |scale: f32, zero_point: i8| QuantParams { scale, zero_point };
        let ok = q(0.1, 0);
        assert!(add_s8_params(q(0.0, 0), ok, ok, Activation::None).is_none());
        assert!(add_s8_params(ok, q(f32::NAN, 0), ok, Activation::None).is_none());
        assert!(add_s8_params(ok, ok, q(f32::INFINITY, 0), Activation::None).is_none());
        assert!(add_s8_params(ok, ok, q(-0.1, 0), Activation::None).is_none());
        // m_out = 0.2 / (2^20 · s_out) ≥ 1 when s_out ≤ 0.2 / 2^20.
        assert!(add_s8_params(ok, ok, q(1e-7, 0), Activation::None).is_none());
        assert!(add_s8_params(ok, ok, q(1e-6, 0), Activation::None).is_some());
        // A tiny input-1 multiplier flushes to (0, 0), which TFLite accepts.
        let p = add_s8_params(q(1e-30, 0), q(1.0, 0), q(1.0, 0), Activation::None).unwrap();
        assert_eq!((p.input1_multiplier, p.input1_shift), (0, 0));
    }

    #[test]
    fn softmax_params_follow_tflite_prepare() {
        // beta · scale · 2^26 with scale = 1/16: 2^22 = 0.5 · 2^23 → (2^30, 23);
        // radius = floor(31 · 2^26 / 2^23) = 248.
        let p = softmax_s8_params(1.0, 0.0625, 3, 10).unwrap();
        assert_eq!((p.rows, p.depth), (3, 10));
        assert_eq!(
            (p.input_multiplier, p.input_left_shift, p.diff_min),
            (1 << 30, 23, -248)
        );
        // scale = 0.1: 6710886.4 = 0.8 · 2^23; radius = floor(31 · 8) = 248.
        let p = softmax_s8_params(1.0, 0.1, 1, 4).unwrap();
        let m = libm::round(f64::from(0.1f32) * 67_108_864.0 / 8_388_608.0 * 2_147_483_648.0);
        assert_eq!((p.input_multiplier, p.input_left_shift), (m as i32, 23));
        assert_eq!(p.diff_min, -248);
        // Huge beta · scale: capped at 2^31 − 1 → shift 31 (not saturated), radius 0.
        let p = softmax_s8_params(1e6, 100.0, 1, 4).unwrap();
        assert_eq!(
            (p.input_multiplier, p.input_left_shift, p.diff_min),
            (i32::MAX, 31, 0)
        );
        // scale = 3/4 · 2^−5: real = 0.75 · 2^21 → (3 · 2^29, 21), radius = 31 · 2^5 = 992.
        let p = softmax_s8_params(1.0, 0.75 / 32.0, 1, 4).unwrap();
        assert_eq!(
            (p.input_multiplier, p.input_left_shift, p.diff_min),
            (3 << 29, 21, -992)
        );
    }

    #[test]
    fn softmax_params_reject_what_tflite_rejects() {
        // beta · scale · 2^26 ≤ 1.
        assert!(softmax_s8_params(1.0, 1.0 / 67_108_864.0, 1, 4).is_none());
        assert!(softmax_s8_params(1.0, 2.0 / 67_108_864.0, 1, 4).is_some());
        assert!(softmax_s8_params(-1.0, 0.1, 1, 4).is_none());
        assert!(softmax_s8_params(f32::NAN, 0.1, 1, 4).is_none());
        assert!(softmax_s8_params(1.0, 0.0, 1, 4).is_none());
        assert!(softmax_s8_params(1.0, f32::INFINITY, 1, 4).is_none());
        assert!(softmax_s8_params(1.0, 0.1, 1, 0).is_none());
        let max = crate::kernels::MAX_SOFTMAX_S8_DEPTH;
        assert!(softmax_s8_params(1.0, 0.1, 1, max).is_some());
        assert!(softmax_s8_params(1.0, 0.1, 1, max + 1).is_none());
        assert!(softmax_s8_params(1.0, 0.1, usize::MAX, 2).is_none());
    }
}
