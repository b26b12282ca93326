//! Requantization of a row of int32 accumulators (host only): the portable loop through
//! [`requantize_fast`], and on x86_64 8 lanes at a time with AVX2 (also inlined into the
//! AVX-512 kernels, which keep 256-bit vectors), bit-exact with
//! [`Requantizer::apply`] + [`OutputRange::finish`] on every input.
//!
//! The conv tile is `channels × pixels`, so a row is the `np` pixels of one output channel:
//! the per-channel constants are broadcast, the lanes are pixels, and the bytes go out with
//! one 8-byte store per 8 outputs.
//!
//! Per 8 outputs (`x` = accumulator, constants of `(multiplier, shift)`, see [`Requantizer`]):
//!
//! 1. `a = x << left` (`vpslld` by a register count, `left = clamp(shift, 0, 31)`, wrapping);
//! 2. `t = a·m + 2^30` in i64: `vpmuldq` on the even lanes, and on the odd lanes after a
//!    `vpsrlq 32`; `vpaddq` of `2^30`;
//! 3. `v = bits 31..62 of t` (`vpsrlq 31` for the even lanes, `vpsllq 1` puts the odd lanes'
//!    bits in their high dword, `vpblendd`): this is `2·hi(t) + bit 31 of lo(t)` wrapped to
//!    i32, i.e. [`Requantizer::apply`]'s `v` except when the doubling saturates. That happens
//!    only for `a = m = i32::MIN` (`t = 2^62 + 2^30`), where the wrapped value is `i32::MIN`;
//!    no other `t` gives `i32::MIN` (every other product has `t ≥ −2^62 + 2^31 + 2^30`, so
//!    `v ≥ −2^31 + 1`, and `t < 2^62`), so `v == i32::MIN` is replaced by `i32::MAX`
//!    (`vpcmpeqd` + `vpxor`);
//! 4. `RoundingDivideByPOT(v, right)`: `(v >> right) + [rem > thr]` with `rem = v & mask`,
//!    `thr = half + [v < 0]` (`vpsrad 31` gives −1 for a negative `v`, so
//!    `thr = half − (v >> 31)`), and `[rem > thr]` = `−vpcmpgtd(rem, thr)` (both in
//!    `[0, 2^31)`: a signed compare is exact);
//! 5. [`OutputRange::finish`]: `clamp(sat(v + zp), lo, hi)` equals
//!    `min(max(v, lo − zp), hi − zp) + zp` for `|zp| ≤ 128` and `lo, hi ∈ [−128, 127]`: where
//!    `v + zp` does not overflow, the clamp is translated by `zp`; where it saturates to
//!    `i32::MAX` (`v > 2^31 − 129`) both give `hi`, and to `i32::MIN` both give `min(lo, hi)`;
//!    `lo > hi` gives `hi` on both sides. `zp` here is an int8 zero point, so `lo − zp` and
//!    `hi − zp` are exact;
//! 6. pack to bytes (`vpackssdw`, `vpacksswb`: the values are already in `[−128, 127]`).
//!
//! About 20 instructions per 8 outputs, against about 15 per output for the scalar form.

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::{
    __m128i, __m256i, _mm256_add_epi32, _mm256_add_epi64, _mm256_and_si256, _mm256_blend_epi32,
    _mm256_castsi256_si128, _mm256_cmpeq_epi32, _mm256_cmpgt_epi32, _mm256_cvtepi8_epi32,
    _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_max_epi32, _mm256_min_epi32,
    _mm256_mul_epi32, _mm256_packs_epi16, _mm256_packs_epi32, _mm256_set1_epi32,
    _mm256_set1_epi64x, _mm256_setzero_si256, _mm256_sll_epi32, _mm256_slli_epi64,
    _mm256_sllv_epi32, _mm256_sra_epi32, _mm256_srai_epi32, _mm256_srav_epi32, _mm256_srli_epi32,
    _mm256_srli_epi64, _mm256_sub_epi32, _mm256_xor_si256, _mm_cvtsi32_si128, _mm_loadl_epi64,
    _mm_storel_epi64, _mm_unpacklo_epi32,
};

use crate::kernels::params::PerChannelQuant;
use crate::quant::{requantize_fast, OutputRange, Requantizer};
#[cfg(target_arch = "x86_64")]
use crate::tensor::I32Data;

/// The requantization of one output channel: `(multiplier, shift)` and the output range of
/// [`crate::quant::requantize`] (`zp_out` is an int8 zero point).
#[derive(Debug, Clone, Copy)]
pub(super) struct RowQuant {
    /// Q0.31 multiplier.
    pub multiplier: i32,
    /// Power-of-two exponent (clamped as the oracle does).
    pub shift: i32,
    /// Output zero point.
    pub zp_out: i8,
    /// Activation range (clamped into `[−128, 127]` as [`OutputRange`]).
    pub act_min: i32,
    /// See `act_min`.
    pub act_max: i32,
}

impl RowQuant {
    /// Output channel `o` of a layer's per-channel quantization `q` with the activation range
    /// `act_min ..= act_max` (0 for a channel `q` does not have; the caller checked lengths).
    #[inline(always)]
    pub(super) fn of(q: &PerChannelQuant<'_>, o: usize, (act_min, act_max): (i32, i32)) -> Self {
        Self {
            multiplier: q.multiplier.get(o).unwrap_or(0),
            shift: i32::from(q.shift.get(o).unwrap_or(0)),
            zp_out: q.output.zero_point,
            act_min,
            act_max,
        }
    }
}

/// `out[k] = requantize_fast(acc[k], …)` for `k < min(acc.len(), out.len())`, one at a time.
#[inline(always)]
pub(super) fn row_portable(acc: &[i32], out: &mut [i8], q: &RowQuant) {
    let r = Requantizer::new(q.multiplier, q.shift);
    let range = OutputRange::new(i32::from(q.zp_out), q.act_min, q.act_max);
    for (y, &a) in out.iter_mut().zip(acc) {
        *y = requantize_fast(a, &r, &range);
    }
}

/// The constants of a [`RowQuant`] in every lane (see the module docs for the steps).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct Rq8 {
    /// `left` in the low 64 bits (a `vpslld` count, `≤ 31`).
    left: __m128i,
    /// `right` likewise (a `vpsrad` count, `≤ 31`).
    right: __m128i,
    multiplier: __m256i,
    mask: __m256i,
    half: __m256i,
    /// `lo − zp`, `hi − zp`, `zp`.
    lo: __m256i,
    hi: __m256i,
    zp: __m256i,
}

#[cfg(target_arch = "x86_64")]
impl Rq8 {
    /// The constants of `q`: those of [`Requantizer::new`] and [`OutputRange::new`].
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn new(q: &RowQuant) -> Self {
        let left = q.shift.clamp(0, 31);
        let right = q.shift.saturating_neg().clamp(0, 31);
        let mask = ((1u32 << right) - 1) as i32;
        let zp = i32::from(q.zp_out);
        Self {
            left: _mm_cvtsi32_si128(left),
            right: _mm_cvtsi32_si128(right),
            multiplier: _mm256_set1_epi32(q.multiplier),
            mask: _mm256_set1_epi32(mask),
            half: _mm256_set1_epi32(mask >> 1),
            lo: _mm256_set1_epi32(q.act_min.clamp(-128, 127) - zp),
            hi: _mm256_set1_epi32(q.act_max.clamp(-128, 127) - zp),
            zp: _mm256_set1_epi32(zp),
        }
    }

    /// `MultiplyByQuantizedMultiplier(x, multiplier, shift)` of each lane, bit for bit
    /// ([`Requantizer::apply`]).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn apply(&self, x: __m256i) -> __m256i {
        mul_rdbp(
            _mm256_sll_epi32(x, self.left),
            self.multiplier,
            self.right,
            self.mask,
            self.half,
        )
    }

    /// [`Self::apply`] then [`OutputRange::finish`], as i32 lanes in `[−128, 127]`.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn requantize(&self, x: __m256i) -> __m256i {
        let v = self.apply(x);
        let v = _mm256_min_epi32(_mm256_max_epi32(v, self.lo), self.hi);
        _mm256_add_epi32(v, self.zp)
    }
}

/// Steps 2–4 of the module docs on `a` (already shifted left): `SRDHM(a, m)` then
/// `RoundingDivideByPOT(·, right)`, with `m` in every lane, `mask = 2^right − 1`,
/// `half = mask >> 1` in every lane.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn mul_rdbp(
    a: __m256i,
    m: __m256i,
    right: __m128i,
    mask: __m256i,
    half: __m256i,
) -> __m256i {
    // `vpmuldq` multiplies the sign-extended low dwords of each quadword; `m` is the same in
    // every lane, so its low dwords serve the odd lanes too.
    let v = srdhm(a, m, m);
    rounding_divide(v, _mm256_sra_epi32(v, right), mask, half)
}

/// Step 2–3 of the module docs: `SRDHM(a, m)` per lane, `m_even` holding lane `2k`'s multiplier
/// in the low dword of quadword `k`, `m_odd` lane `2k + 1`'s.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn srdhm(a: __m256i, m_even: __m256i, m_odd: __m256i) -> __m256i {
    let nudge = _mm256_set1_epi64x(1 << 30);
    let even = _mm256_add_epi64(_mm256_mul_epi32(a, m_even), nudge);
    let odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64::<32>(a), m_odd), nudge);
    let v = _mm256_blend_epi32::<0b1010_1010>(
        _mm256_srli_epi64::<31>(even),
        _mm256_slli_epi64::<1>(odd),
    );
    // The saturating case (`a = m = i32::MIN`) wrapped to `i32::MIN`: make it `i32::MAX`.
    _mm256_xor_si256(v, _mm256_cmpeq_epi32(v, _mm256_set1_epi32(i32::MIN)))
}

/// Step 4 of the module docs: `RoundingDivideByPOT(v, right)` given `shifted = v >> right`
/// (arithmetic), `mask = 2^right − 1` and `half = mask >> 1` (per lane).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn rounding_divide(v: __m256i, shifted: __m256i, mask: __m256i, half: __m256i) -> __m256i {
    let rem = _mm256_and_si256(v, mask);
    let thr = _mm256_sub_epi32(half, _mm256_srai_epi32::<31>(v));
    _mm256_sub_epi32(shifted, _mm256_cmpgt_epi32(rem, thr))
}

/// The output range of a row of channels in every lane: `lo − zp`, `hi − zp`, `zp` (step 5 of the
/// module docs; the constants of [`OutputRange::new`]).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct Range8 {
    lo: __m256i,
    hi: __m256i,
    zp: __m256i,
}

#[cfg(target_arch = "x86_64")]
impl Range8 {
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn new(zp_out: i8, act_min: i32, act_max: i32) -> Self {
        let zp = i32::from(zp_out);
        Self {
            lo: _mm256_set1_epi32(act_min.clamp(-128, 127) - zp),
            hi: _mm256_set1_epi32(act_max.clamp(-128, 127) - zp),
            zp: _mm256_set1_epi32(zp),
        }
    }
}

/// [`channels8`] for outputs `o0..o0 + 8` of a Linear layer with bias `bias` and quantization
/// `q`.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn channels8_at(
    o0: usize,
    dot: &[i32; 8],
    bias: I32Data<'_>,
    q: &PerChannelQuant<'_>,
    range: &Range8,
    out: &mut [i8],
) -> bool {
    let tensors = (
        bias.as_bytes().get(4 * o0..).unwrap_or(&[]),
        q.multiplier.as_bytes().get(4 * o0..).unwrap_or(&[]),
        q.shift.as_bytes().get(o0..).unwrap_or(&[]),
    );
    channels8(dot, tensors, range, out)
}

/// The reference's requantization of 8 **channels** at once (a Linear layer's outputs `o0..o0+8`:
/// lane `l` is channel `o0 + l`, with its own bias, multiplier and shift, read from the
/// little-endian bytes of the layer's tensors): `out[l] = requantize(bias[l] + dot[l], m[l],
/// shift[l], …)`, bit for bit, with per-lane shifts (`vpsllvd`, `vpsravd`) where [`Rq8`]
/// broadcasts one channel's constants. Returns `false` (nothing written) when a slice holds
/// fewer than 8 channels.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn channels8(
    dot: &[i32; 8],
    (bias, multiplier, shift): (&[u8], &[u8], &[u8]),
    range: &Range8,
    out: &mut [i8],
) -> bool {
    let (Some(bias), Some(multiplier), Some(shift)) =
        (bias.get(..32), multiplier.get(..32), shift.get(..8))
    else {
        return false;
    };
    if out.len() < 8 {
        return false;
    }
    // SAFETY: 32, 32 and 8 bytes were checked above; `dot` holds 8 i32; `out` 8 bytes.
    let x = _mm256_add_epi32(
        _mm256_loadu_si256(dot.as_ptr().cast::<__m256i>()),
        _mm256_loadu_si256(bias.as_ptr().cast::<__m256i>()),
    );
    let m = _mm256_loadu_si256(multiplier.as_ptr().cast::<__m256i>());
    let shift = _mm256_cvtepi8_epi32(_mm_loadl_epi64(shift.as_ptr().cast::<__m128i>()));
    let zero = _mm256_setzero_si256();
    let max = _mm256_set1_epi32(31);
    let left = _mm256_min_epi32(_mm256_max_epi32(shift, zero), max);
    let right = _mm256_min_epi32(_mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero), max);
    let one = _mm256_set1_epi32(1);
    let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
    let half = _mm256_srli_epi32::<1>(mask);
    let v = srdhm(_mm256_sllv_epi32(x, left), m, _mm256_srli_epi64::<32>(m));
    let v = rounding_divide(v, _mm256_srav_epi32(v, right), mask, half);
    let v = _mm256_min_epi32(_mm256_max_epi32(v, range.lo), range.hi);
    store8(_mm256_add_epi32(v, range.zp), out.as_mut_ptr());
    true
}

/// The low byte of each of the 8 i32 lanes of `v` (each in `[−128, 127]`), in order.
///
/// # Safety
/// The CPU must support AVX2; `out` must be valid for 8 bytes of writes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn store8(v: __m256i, out: *mut i8) {
    // Per 128-bit half: [v0..v3, v0..v3] as i16, then [v0..v3] ×4 as i8.
    let w = _mm256_packs_epi32(v, v);
    let b = _mm256_packs_epi16(w, w);
    let lo = _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256::<1>(b));
    _mm_storel_epi64(out.cast::<__m128i>(), lo);
}

/// [`row_portable`] 8 outputs at a time (the last `len mod 8` through a zero-padded copy).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn row_avx2(acc: &[i32], out: &mut [i8], q: &RowQuant) {
    let n = acc.len().min(out.len());
    let k = Rq8::new(q);
    let (ap, op) = (acc.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 ≤ n ≤ both lengths.
        let x = _mm256_loadu_si256(ap.add(i).cast::<__m256i>());
        store8(k.requantize(x), op.add(i));
        i += 8;
    }
    if i < n {
        let mut a = [0i32; 8];
        let mut y = [0i8; 8];
        for (d, &s) in a.iter_mut().zip(acc.get(i..n).unwrap_or(&[])) {
            *d = s;
        }
        // SAFETY: both buffers hold 8 elements.
        let x = _mm256_loadu_si256(a.as_ptr().cast::<__m256i>());
        store8(k.requantize(x), y.as_mut_ptr());
        for (d, &s) in out.get_mut(i..n).unwrap_or(&mut []).iter_mut().zip(&y) {
            *d = s;
        }
    }
}
