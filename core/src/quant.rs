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
}
