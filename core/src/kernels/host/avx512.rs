//! x86_64 with AVX-512F + BW + VL + VNNI (detected at run time, `x86::has_avx512`): Conv2d
//! micro-kernels that use the 32 vector registers of AVX-512VL and, for int8, `vpdpbusd`.
//!
//! The vectors stay 256 bits wide (YMM0–YMM31): on Zen 4 a 512-bit operation takes both 256-bit
//! halves of a unit, so the win is the register file and VNNI, not the width. And f32 could not
//! use 16 lanes anyway: a 16-wide register would hold two terms per lane of the documented order.
//!
//! - f32 3×3 at stride 1 ("same" columns) or 2, ≥ 8 channels: [`super::pixels_f32`], 16 output
//!   pixels per ZMM register, no im2col copy.
//! - f32 otherwise: the AVX2 micro-kernel of `x86.rs` (`vmulps` then `vaddps`, lane `l` of a register is
//!   lane `l` of the documented order, the `vhaddps` tree) with a `4 × 4` register block: 16
//!   accumulators, 4 pixel chunks, one weight chunk and a product in 22 registers. Loads per
//!   8 taps: 4 + 4 for 16 multiply-adds (the `4 × 2` AVX2 block loads 6 for 8).
//! - int8: im2col rows of `u = x + 128` (u8; padding `zp_in + 128`), and
//!   `vpdpbusd acc, u, w`: 4 adjacent taps `u[4m..4m+4] · w[4m..4m+4]` (u8 × s8, exact in i32:
//!   `|Σ| ≤ 4·255·128`) added to i32 lane `m` without saturation, 32 taps per instruction
//!   (the AVX2 kernel does 16 with `vpmovsxbw` + `vpmaddwd` + `vpaddd`). The weights are read as
//!   stored, no widening. `4 × 4` block: 16 accumulators. The caller subtracts
//!   `(zp_in + 128)·Σ_j w[j]` from the bias ([`im2col::S8Dots`]), so every output is the
//!   reference's wrapping i32 sum, then the reference's requantization: bit-exact.
//! - int8 Linear ([`linear_s8_avx512`]): the same `vpdpbusd` on `u = x + 128` (made per 32-byte
//!   chunk, `vpxor`), 8 rows per pass; the `(zp_in + 128)·Σ_j W[o][j]` correction comes from a
//!   second `vpdpbusd` of the weights with ones, skipped when `zp_in = −128`. Against the AVX2
//!   kernel (`vpmovsxbw` + `vpmaddwd` + `vpaddd` per 16 inputs and row) it halves a 784 → 256
//!   layer on an Intel Xeon (`docs/kernels.md`).

use core::arch::x86_64::{
    __m128i, __m256i, _mm256_castsi256_si128, _mm256_dpbusd_epi32, _mm256_extracti128_si256,
    _mm256_hadd_epi32, _mm256_loadu_si256, _mm256_maskz_loadu_epi8, _mm256_set1_epi8,
    _mm256_setzero_si256, _mm256_xor_si256, _mm_add_epi32, _mm_storeu_si128,
};
use core::arch::x86_64::{
    __m256, __m512, _mm256_castpd_ps, _mm256_castps_pd, _mm256_loadu_ps, _mm512_add_ps,
    _mm512_broadcast_f64x4, _mm512_castpd256_pd512, _mm512_castpd512_pd256, _mm512_castpd_ps,
    _mm512_castps_pd, _mm512_extractf64x4_pd, _mm512_insertf64x4, _mm512_mul_ps, _mm512_setzero_ps,
    _mm_cvtss_f32, _mm_storeu_ps,
};

use super::{blocked, im2col, single, x86};
use crate::kernels::params::PerChannelQuant;
use crate::kernels::{ConvGeometry, LANES};
use crate::quant::activation_range;
use crate::tensor::{Activation, F32Data, I32Data, I8Data};

/// Output pixels per micro-tile (f32 and int8): 4 filters × 4 pixels = 16 accumulators.
const MP: usize = 4;

/// # Safety
/// The CPU must support AVX-512F, BW, VL and VNNI ([`x86::has_avx512`]).
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn conv2d_f32_avx512(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) {
    if single::conv2d_f32(g, act, input, weights, bias, output)
        || super::pixels_f32::conv2d_f32_avx512(g, act, input, weights, bias, output)
    {
        return;
    }
    if !im2col::conv2d_f32::<Avx512, MP>(g, act, input, weights, bias, output) {
        blocked::conv2d_f32(g, act, input, weights, bias, output)
    }
}

/// # Safety
/// The CPU must support AVX-512F, BW, VL and VNNI ([`x86::has_avx512`]).
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn conv2d_s8_avx512(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) {
    if single::conv2d_s8::<Vnni>(g, act, q, input, weights, bias, output)
        || super::pixels_s8::conv2d_s8_vnni(g, act, q, input, weights, bias, output)
    {
        return;
    }
    if !im2col::conv2d_s8::<Vnni, MP>(g, act, q, input, weights, bias, output) {
        blocked::conv2d_s8(g, act, q, input, weights, bias, output)
    }
}

/// Rows per block of the VNNI int8 Linear kernel: 8 dot and 8 weight-sum accumulators, the
/// input chunk, the ones and one weight chunk in 19 of the 32 registers.
const LINEAR_ROWS: usize = 8;

/// `Σ_j W[r][j]·u[j]` and, when `SUMS`, `Σ_j W[r][j]` for the `R` int8 rows of `block`
/// (`[R][n_in]`, `n_in = x.len()`), `u = x + 128` (u8), wrapping i32: 32 inputs per
/// `vpdpbusd`; the last `n_in mod 32` through masked loads (bytes past the end are neither read
/// nor counted: the masked weight bytes are 0). Integer sums are exact in any order.
///
/// # Safety
/// The CPU must support AVX-512VL, BW and VNNI; `block.len() >= R · x.len()`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn linear_dots_vnni<const R: usize, const SUMS: bool>(
    block: &[u8],
    x: &[i8],
) -> ([i32; R], [i32; R]) {
    const STEP: usize = 32;
    let n_in = x.len();
    if block.len() < R * n_in {
        return ([0; R], [0; R]);
    }
    let full = n_in / STEP;
    let (wp, xp) = (block.as_ptr(), x.as_ptr());
    let flip = _mm256_set1_epi8(i8::MIN);
    let ones = _mm256_set1_epi8(1);
    let mut acc = [_mm256_setzero_si256(); R];
    let mut sums = [_mm256_setzero_si256(); R];
    let mut step = |u: __m256i, w: [__m256i; R]| {
        for r in 0..R {
            acc[r] = _mm256_dpbusd_epi32(acc[r], u, w[r]);
            if SUMS {
                sums[r] = _mm256_dpbusd_epi32(sums[r], ones, w[r]);
            }
        }
    };
    for k in 0..full {
        // SAFETY: 32k + 32 ≤ n_in, and r·n_in + 32k + 32 ≤ R·n_in ≤ block.len().
        let u = _mm256_xor_si256(_mm256_loadu_si256(xp.add(STEP * k).cast()), flip);
        step(
            u,
            core::array::from_fn(|r| _mm256_loadu_si256(wp.add(r * n_in + STEP * k).cast())),
        );
    }
    let rest = n_in - STEP * full;
    if rest != 0 {
        let mask = (1u32 << rest) - 1;
        // SAFETY: the masked loads touch only the `rest` bytes that lie inside `x` and each row.
        let u = _mm256_xor_si256(
            _mm256_maskz_loadu_epi8(mask, xp.add(STEP * full).cast()),
            flip,
        );
        step(
            u,
            core::array::from_fn(|r| {
                _mm256_maskz_loadu_epi8(mask, wp.add(r * n_in + STEP * full).cast())
            }),
        );
    }
    (hsums(&acc), if SUMS { hsums(&sums) } else { [0; R] })
}

/// The wrapping lane sums of each register of `v` (4 at a time with [`hsum4_epi32`]).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn hsums<const R: usize>(v: &[__m256i; R]) -> [i32; R] {
    let mut out = [0i32; R];
    let mut r = 0;
    while r + 4 <= R {
        let s = hsum4_epi32(v[r], v[r + 1], v[r + 2], v[r + 3]);
        _mm_storeu_si128(out.as_mut_ptr().add(r).cast::<__m128i>(), s);
        r += 4;
    }
    while r < R {
        out[r] = x86::hsum_epi32(v[r]);
        r += 1;
    }
    out
}

/// One input row `x` of [`crate::kernels::linear_s8`] with `vpdpbusd`:
/// `Σ_j W[o][j]·(x[j] − zp_in) = Σ_j W[o][j]·u[j] − (zp_in + 128)·Σ_j W[o][j]` with
/// `u = x + 128` (the weight sums are skipped when `zp_in = −128`, the usual zero point after a
/// ReLU), in wrapping i32 like the reference; then the reference's requantization.
///
/// # Safety
/// The CPU must support AVX-512F, BW, VL and VNNI ([`x86::has_avx512`]).
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn linear_s8_avx512(
    act: Activation,
    q: &PerChannelQuant<'_>,
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    x: &[i8],
    out: &mut [i8],
) {
    let k = i32::from(q.input_zp) + 128;
    let exact = |(d, s): (i32, i32)| d.wrapping_sub(s.wrapping_mul(k));
    let dots = |w: &[u8]| -> [i32; LINEAR_ROWS] {
        // SAFETY: the caller guarantees AVX-512 and VNNI.
        let (d, s) = unsafe {
            if k == 0 {
                linear_dots_vnni::<LINEAR_ROWS, false>(w, x)
            } else {
                linear_dots_vnni::<LINEAR_ROWS, true>(w, x)
            }
        };
        core::array::from_fn(|r| exact((d[r], s[r])))
    };
    // SAFETY: as above.
    let dot = |w: &[u8]| unsafe {
        let ([d], [s]) = linear_dots_vnni::<1, true>(w, x);
        exact((d, s))
    };
    let (act_min, act_max) = activation_range(act, q.output);
    let range = super::requant::Range8::new(q.output.zero_point, act_min, act_max);
    // SAFETY: as above (AVX2 is part of it).
    let block = |o0, d: &[i32; LINEAR_ROWS], y: &mut [i8]| unsafe {
        super::requant::channels8_at(o0, d, bias, q, &range, y)
    };
    super::linear_s8_rows(act, q, (weights, bias), x.len(), out, dots, dot, block)
}

/// The f32 micro-kernel of `x86.rs`, inlined into AVX-512VL code (32 registers).
pub(super) struct Avx512;

impl im2col::F32Dots for Avx512 {
    #[inline(always)]
    unsafe fn dots<const C: usize, const P: usize>(
        w: &[&[u8]; C],
        tail: Option<&[[f32; LANES]; C]>,
        cols: &[&[f32]; P],
        full: usize,
    ) -> [[f32; P]; C] {
        if C.is_multiple_of(2) {
            dots_f32_zmm::<C, P>(w, tail, cols, full)
        } else {
            x86::conv_dots_f32::<C, P>(w, tail, cols, full)
        }
    }
}

/// [`im2col::F32Dots::dots`] for an even `C` with 512-bit registers: filters `2m` and `2m + 1`
/// share a ZMM register (low and high 256 bits: two weight chunks joined by `vinsertf64x4`), and
/// each pixel's 8-tap chunk is broadcast to both halves (`vbroadcastf64x4`), so one `vmulps` +
/// `vaddps` pair does two (filter, pixel) steps. Each 256-bit half is exactly the 8-lane
/// accumulator of the AVX2 kernel (lane `l` is lane `l` of the documented order, a product
/// rounded then added, no FMA), reduced by the same tree: the same bits. On this Xeon 512-bit
/// `vmulps`/`vaddps` run ≈ 1.4× the lanes per cycle of 256-bit ones (`docs/kernels.md`).
///
/// # Safety
/// The CPU must support AVX-512F and VL.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn dots_f32_zmm<const C: usize, const P: usize>(
    w: &[&[u8]; C],
    tail: Option<&[[f32; LANES]; C]>,
    cols: &[&[f32]; P],
    full: usize,
) -> [[f32; P]; C] {
    if !im2col::f32_dots_fit(w, tail.is_some(), cols, full) {
        return [[0.0; P]; C];
    }
    let n = LANES * full;
    // Two 8-float chunks as one ZMM register (`lo` in the low half).
    let join = |lo: *const f32, hi: *const f32| {
        let lo = _mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(lo)));
        _mm512_castpd_ps(_mm512_insertf64x4::<1>(
            lo,
            _mm256_castps_pd(_mm256_loadu_ps(hi)),
        ))
    };
    // One 8-float chunk in both halves.
    let both = |p: *const f32| {
        _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p))))
    };
    let wp: [*const f32; C] = core::array::from_fn(|c| w[c].as_ptr().cast::<f32>());
    let xp: [*const f32; P] = core::array::from_fn(|p| cols[p].as_ptr());
    // Row `m < C / 2` of `acc` holds filters `2m`, `2m + 1`.
    let mut acc = [[_mm512_setzero_ps(); P]; C];
    for k in 0..full {
        // SAFETY: 8k + 8 ≤ n ≤ every length checked above (weights in f32 units).
        let x: [__m512; P] = core::array::from_fn(|p| both(xp[p].add(LANES * k)));
        for m in 0..C / 2 {
            let wv = join(wp[2 * m].add(LANES * k), wp[2 * m + 1].add(LANES * k));
            for p in 0..P {
                acc[m][p] = _mm512_add_ps(acc[m][p], _mm512_mul_ps(wv, x[p]));
            }
        }
    }
    if let Some(t) = tail {
        // SAFETY: n + 8 ≤ need ≤ cols[p].len(); `t[c]` holds 8 floats.
        let x: [__m512; P] = core::array::from_fn(|p| both(xp[p].add(n)));
        for m in 0..C / 2 {
            let wv = join(t[2 * m].as_ptr(), t[2 * m + 1].as_ptr());
            for p in 0..P {
                acc[m][p] = _mm512_add_ps(acc[m][p], _mm512_mul_ps(wv, x[p]));
            }
        }
    }
    let half = |v: __m512, h: bool| -> __m256 {
        let d = _mm512_castps_pd(v);
        _mm256_castpd_ps(if h {
            _mm512_extractf64x4_pd::<1>(d)
        } else {
            _mm512_castpd512_pd256(d)
        })
    };
    let mut out = [[0.0f32; P]; C];
    for (m, a_m) in acc.iter().enumerate().take(C / 2) {
        for (c, h) in [(2 * m, false), (2 * m + 1, true)] {
            if P.is_multiple_of(4) {
                for p in (0..P).step_by(4) {
                    let s = x86::tree4_ps(
                        half(a_m[p], h),
                        half(a_m[p + 1], h),
                        half(a_m[p + 2], h),
                        half(a_m[p + 3], h),
                    );
                    _mm_storeu_ps(out[c].as_mut_ptr().add(p), s);
                }
            } else {
                for (o, &v) in out[c].iter_mut().zip(a_m) {
                    let a = half(v, h);
                    *o = _mm_cvtss_f32(x86::tree4_ps(a, a, a, a));
                }
            }
        }
    }
    out
}

/// The `vpdpbusd` int8 micro-kernel over `x + 128` rows.
pub(super) struct Vnni;

impl im2col::S8Dots for Vnni {
    type Col = u8;
    const STEP: usize = 32;
    const U8_OFFSET: bool = true;
    const WIDE: u8 = im2col::WIDE_XOR80;
    #[inline(always)]
    fn col(x: i8, _zp: i8) -> u8 {
        (x as u8) ^ 0x80
    }
    #[inline(always)]
    fn pad(zp: i8) -> u8 {
        (zp as u8) ^ 0x80
    }
    #[inline(always)]
    fn widened(v: i16, zp: i8) -> u8 {
        Self::col(v.wrapping_add(i16::from(zp)) as i8, zp)
    }
    type Wide = [i16; 0];
    #[inline(always)]
    fn wide() -> Self::Wide {
        []
    }
    #[inline(always)]
    unsafe fn dots<const C: usize, const P: usize>(
        w: &[&[u8]; C],
        tail: Option<&[[i8; im2col::S8_TAIL]; C]>,
        cols: &[&[u8]; P],
        full: usize,
    ) -> [[i32; P]; C] {
        dots_vnni::<C, P>(w, tail, cols, full)
    }
    #[inline(always)]
    unsafe fn pair_dots<const F: usize>(
        blk: &[i16],
        wp: &[single::Pairs; F],
    ) -> [[i32; single::PX]; F] {
        x86::pair_dots_avx2(blk, wp)
    }
    #[inline(always)]
    unsafe fn requant(acc: &[i32], out: &mut [i8], q: &super::requant::RowQuant) {
        super::requant::row_avx2(acc, out, q)
    }
}

/// [`im2col::S8Dots::dots`] for [`Vnni`]: `Σ_j w[c][j] · u[p][j]` in wrapping i32, 32 taps per
/// `vpdpbusd`.
///
/// # Safety
/// The CPU must support AVX-512VL and AVX-512 VNNI.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn dots_vnni<const C: usize, const P: usize>(
    w: &[&[u8]; C],
    tail: Option<&[[i8; im2col::S8_TAIL]; C]>,
    cols: &[&[u8]; P],
    full: usize,
) -> [[i32; P]; C] {
    const STEP: usize = 32;
    let n = STEP * full;
    let need = n + if tail.is_some() { STEP } else { 0 };
    if w.iter().any(|r| r.len() < n) || cols.iter().any(|x| x.len() < need) {
        return [[0; P]; C];
    }
    let wp: [*const u8; C] = core::array::from_fn(|c| w[c].as_ptr());
    let xp: [*const u8; P] = core::array::from_fn(|p| cols[p].as_ptr());
    let mut acc = [[_mm256_setzero_si256(); P]; C];
    let mut x = [_mm256_setzero_si256(); P];
    for k in 0..full {
        // SAFETY: 32k + 32 ≤ n ≤ every length checked above.
        for p in 0..P {
            x[p] = _mm256_loadu_si256(xp[p].add(STEP * k).cast::<__m256i>());
        }
        for c in 0..C {
            let wv = _mm256_loadu_si256(wp[c].add(STEP * k).cast::<__m256i>());
            for p in 0..P {
                acc[c][p] = _mm256_dpbusd_epi32(acc[c][p], x[p], wv);
            }
        }
    }
    if let Some(t) = tail {
        // SAFETY: n + 32 ≤ need ≤ cols[p].len(); `t[c]` holds 32 bytes.
        for p in 0..P {
            x[p] = _mm256_loadu_si256(xp[p].add(n).cast::<__m256i>());
        }
        for c in 0..C {
            let wv = _mm256_loadu_si256(t[c].as_ptr().cast::<__m256i>());
            for p in 0..P {
                acc[c][p] = _mm256_dpbusd_epi32(acc[c][p], x[p], wv);
            }
        }
    }
    // Horizontal sums of 4 registers at a time (`vphaddd` twice, then the two halves; wrapping
    // integer adds, exact in any order).
    let mut out = [[0i32; P]; C];
    for c in 0..C {
        let mut p = 0;
        while p + 4 <= P {
            let s = hsum4_epi32(acc[c][p], acc[c][p + 1], acc[c][p + 2], acc[c][p + 3]);
            _mm_storeu_si128(out[c].as_mut_ptr().add(p).cast::<__m128i>(), s);
            p += 4;
        }
        while p < P {
            out[c][p] = x86::hsum_epi32(acc[c][p]);
            p += 1;
        }
    }
    out
}

/// The wrapping sums of the 8 i32 lanes of `a`, `b`, `c`, `d`, in that order.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn hsum4_epi32(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m128i {
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
}
