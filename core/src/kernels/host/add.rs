//! int8 Add (equal shapes) on x86_64 with AVX2, 8 elements per step: TFLite-Micro's ADD
//! (`crate::kernels::add_s8`, double-rounding build) bit for bit, for **any** parameters.
//!
//! Per lane, as `add_s8_one`: `x_k' = (x_k − zp_k) << ls` (`vpmovsxbd`, `vpsubd`, `vpslld`,
//! wrapping, `ls = clamp(left_shift, 0, 31)`), `s_k = RDBP(SRDHM(x_k', m_k), r_k)` with
//! `r_k = clamp(−shift_k, 0, 31)` ([`requant::mul_rdbp`], exact for every i32, see
//! `requant.rs`), `raw = s_1 + s_2` (wrapping), `y = RDBP(SRDHM(raw, m_out), r_out) + zp_out`
//! (wrapping, `vpaddd`, as the reference's `wrapping_add`), then `max(act_min)`, `min(act_max)`,
//! `max(−128)`, `min(127)` in that order, and the low bytes.
//!
//! About 45 instructions per 8 elements (three multiply-and-round steps of ~12). From
//! [`GATHER_MIN`] elements on, the two input rescalings come from 256-entry tables built by the
//! same code (`s_k` depends on one int8 value): two `vpgatherdd` and the output step per 8
//! elements. resnet8's three Adds (12 544, 6 272, 3 136 elements) on an Intel Xeon: 14.5, 7.4,
//! 3.8 µs → 9.5, 4.9, 2.7 µs (`model_paths`, AVX2 path).

use core::arch::x86_64::{
    __m128i, __m256i, _mm256_add_epi32, _mm256_cvtepi8_epi32, _mm256_cvtepu8_epi32,
    _mm256_i32gather_epi32, _mm256_max_epi32, _mm256_min_epi32, _mm256_set1_epi32,
    _mm256_sll_epi32, _mm256_storeu_si256, _mm256_sub_epi32, _mm_cvtsi32_si128, _mm_loadl_epi64,
};

use super::requant::{mul_rdbp, store8};
use crate::kernels::params::AddS8Params;

/// Tensors at least this long read the input rescalings from two 256-entry tables (built by
/// the same vector code, 64 steps) with `vpgatherdd`.
const GATHER_MIN: usize = 256;

/// The constants of one `RDBP(SRDHM(·, multiplier), clamp(−shift, 0, 31))`.
#[derive(Clone, Copy)]
struct Scale {
    m: __m256i,
    right: __m128i,
    mask: __m256i,
    half: __m256i,
}

impl Scale {
    /// As `mul_by_multiplier_smaller_than_one` in `add_s8.rs`: the exponent is
    /// `0.saturating_sub(shift)` clamped to `[0, 31]` (a positive shift gives 0).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn new(multiplier: i32, shift: i32) -> Self {
        let right = 0i32.saturating_sub(shift).clamp(0, 31);
        let mask = ((1u32 << right) - 1) as i32;
        Self {
            m: _mm256_set1_epi32(multiplier),
            right: _mm_cvtsi32_si128(right),
            mask: _mm256_set1_epi32(mask),
            half: _mm256_set1_epi32(mask >> 1),
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn apply(&self, x: __m256i) -> __m256i {
        mul_rdbp(x, self.m, self.right, self.mask, self.half)
    }
}

/// `output[k] = add_s8_one(p, a[k], b[k])` for `k < min(len)` (the caller checked equal
/// lengths).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn add_s8_avx2(p: &AddS8Params, a: &[i8], b: &[i8], output: &mut [i8]) {
    let n = a.len().min(b.len()).min(output.len());
    let ls = _mm_cvtsi32_si128(p.left_shift.clamp(0, 31));
    let zp1 = _mm256_set1_epi32(p.input1_zp);
    let zp2 = _mm256_set1_epi32(p.input2_zp);
    let s1 = Scale::new(p.input1_multiplier, p.input1_shift);
    let s2 = Scale::new(p.input2_multiplier, p.input2_shift);
    let so = Scale::new(p.output_multiplier, p.output_shift);
    let zpo = _mm256_set1_epi32(p.output_zp);
    let (amin, amax) = (_mm256_set1_epi32(p.act_min), _mm256_set1_epi32(p.act_max));
    let (lo, hi) = (_mm256_set1_epi32(-128), _mm256_set1_epi32(127));
    // `scaled_k(x) = RDBP(SRDHM((x − zp_k) << ls, m_k), r_k)` for 8 int8 values of input `k`.
    let scaled1 = |x: __m128i| {
        s1.apply(_mm256_sll_epi32(
            _mm256_sub_epi32(_mm256_cvtepi8_epi32(x), zp1),
            ls,
        ))
    };
    let scaled2 = |x: __m128i| {
        s2.apply(_mm256_sll_epi32(
            _mm256_sub_epi32(_mm256_cvtepi8_epi32(x), zp2),
            ls,
        ))
    };
    let finish = |raw: __m256i| -> __m256i {
        let y = _mm256_add_epi32(so.apply(raw), zpo);
        let y = _mm256_min_epi32(_mm256_max_epi32(y, amin), amax);
        _mm256_min_epi32(_mm256_max_epi32(y, lo), hi)
    };
    let step = |x1: __m128i, x2: __m128i| -> __m256i {
        finish(_mm256_add_epi32(scaled1(x1), scaled2(x2)))
    };
    let (ap, bp, op) = (a.as_ptr(), b.as_ptr(), output.as_mut_ptr());
    let mut i = 0;
    if n >= GATHER_MIN {
        // `scaled_k` depends on one int8 value: tabulate it for all 256 (index `x as u8`, by the
        // same vector code, so the same bits) and read 8 entries per `vpgatherdd`.
        let (mut t1, mut t2) = ([0i32; 256], [0i32; 256]);
        for k in 0..32 {
            let bytes: [u8; 8] = core::array::from_fn(|l| (8 * k + l) as u8);
            let x = _mm_loadl_epi64(bytes.as_ptr().cast::<__m128i>());
            // SAFETY: 8k + 8 ≤ 256: 32-byte stores inside each table.
            _mm256_storeu_si256(t1.as_mut_ptr().add(8 * k).cast(), scaled1(x));
            _mm256_storeu_si256(t2.as_mut_ptr().add(8 * k).cast(), scaled2(x));
        }
        while i + 8 <= n {
            // SAFETY: i + 8 ≤ n ≤ every length; the gather indices are bytes, < 256.
            let i1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(ap.add(i).cast::<__m128i>()));
            let i2 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(bp.add(i).cast::<__m128i>()));
            let raw = _mm256_add_epi32(
                _mm256_i32gather_epi32::<4>(t1.as_ptr(), i1),
                _mm256_i32gather_epi32::<4>(t2.as_ptr(), i2),
            );
            store8(finish(raw), op.add(i));
            i += 8;
        }
    }
    while i + 8 <= n {
        // SAFETY: i + 8 ≤ n ≤ every length: 8-byte loads and store in bounds.
        let x1 = _mm_loadl_epi64(ap.add(i).cast::<__m128i>());
        let x2 = _mm_loadl_epi64(bp.add(i).cast::<__m128i>());
        store8(step(x1, x2), op.add(i));
        i += 8;
    }
    if i < n {
        let (mut t1, mut t2, mut y) = ([0i8; 8], [0i8; 8], [0i8; 8]);
        for ((d1, d2), (&v1, &v2)) in t1.iter_mut().zip(&mut t2).zip(a[i..n].iter().zip(&b[i..n])) {
            *d1 = v1;
            *d2 = v2;
        }
        // SAFETY: the three buffers hold 8 bytes.
        let x1 = _mm_loadl_epi64(t1.as_ptr().cast::<__m128i>());
        let x2 = _mm_loadl_epi64(t2.as_ptr().cast::<__m128i>());
        store8(step(x1, x2), y.as_mut_ptr());
        for (d, &v) in output[i..n].iter_mut().zip(&y) {
            *d = v;
        }
    }
}
