//! x86_64: CPU detection without std (`cpuid` + `xgetbv`), AVX2 Linear kernels written with
//! intrinsics, and the blocked Conv2d bodies compiled a second time with AVX2 enabled.
//!
//! f32: one `vmulps` then one `vaddps` per 8 terms (never `vfmadd`; Rust never contracts
//! `a * b + c` and nothing here enables `fma`), lane `l` of a YMM accumulator is lane `l` of the
//! documented order, so every product is rounded before it is added and the bits are the
//! reference's. Weights are little-endian bytes at any address: loads are unaligned.

use core::arch::x86_64::{
    __cpuid, __cpuid_count, __m128i, __m256, __m256i, _mm256_add_epi32, _mm256_add_ps,
    _mm256_castsi256_si128, _mm256_cvtepi8_epi16, _mm256_extracti128_si256, _mm256_hadd_epi32,
    _mm256_loadu_ps, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_mul_ps, _mm256_set1_epi16,
    _mm256_set1_epi32, _mm256_setzero_ps, _mm256_setzero_si256, _mm256_storeu_ps,
    _mm256_storeu_si256, _mm256_sub_epi16, _mm_add_epi32, _mm_cvtsi128_si32, _mm_loadu_si128,
    _mm_shuffle_epi32, _mm_storeu_si128, _xgetbv, CpuidResult,
};
use core::arch::x86_64::{
    __m128, _mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_hadd_ps, _mm_add_ps,
    _mm_cvtss_f32, _mm_storeu_ps,
};
use core::sync::atomic::{AtomicU8, Ordering};

use super::{blocked, im2col, pixels_s8, requant, single};
use crate::kernels::params::PerChannelQuant;
use crate::kernels::{activate_f32, lanes_sum, ConvGeometry, LANES};
use crate::quant::activation_range;
use crate::tensor::{Activation, F32Data, I32Data, I8Data, QuantParams};

/// Bit set in [`FEATURES`] once detection has run.
const DETECTED: u8 = 0x80;
/// AVX2 is supported by the CPU and its YMM state is enabled by the OS.
const AVX2: u8 = 0x01;
/// AVX-512F, BW, VL and VNNI are supported and the OS saves the opmask and ZMM state.
const AVX512: u8 = 0x02;

/// Cached result of [`detect`]: 0 = not yet detected.
static FEATURES: AtomicU8 = AtomicU8::new(0);

/// The detected feature bits (detected once, then cached).
#[inline]
fn features() -> u8 {
    let mut f = FEATURES.load(Ordering::Relaxed);
    if f == 0 {
        f = detect() | DETECTED;
        FEATURES.store(f, Ordering::Relaxed);
    }
    f
}

/// True when the AVX2 kernels may run on this CPU.
#[inline]
pub(super) fn has_avx2() -> bool {
    cfg!(target_feature = "avx2") || features() & AVX2 != 0
}

/// True when the AVX-512 kernels (AVX-512F + BW + VL + VNNI) may run on this CPU.
#[inline]
pub(super) fn has_avx512() -> bool {
    features() & AVX512 != 0
}

fn cpuid(leaf: u32, sub_leaf: u32) -> CpuidResult {
    if sub_leaf == 0 {
        // SAFETY: `cpuid` exists on every x86_64 CPU.
        #[allow(unused_unsafe)]
        unsafe {
            __cpuid(leaf)
        }
    } else {
        // SAFETY: as above.
        #[allow(unused_unsafe)]
        unsafe {
            __cpuid_count(leaf, sub_leaf)
        }
    }
}

/// `XCR0`, the OS-enabled register state.
#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    _xgetbv(0)
}

/// AVX2 needs: CPUID.1:ECX.OSXSAVE[27] and AVX[28], XCR0 bits 1 and 2 (SSE and YMM state saved by
/// the OS), and CPUID.(7,0):EBX.AVX2[5].
fn detect() -> u8 {
    if cpuid(0, 0).eax < 7 {
        return 0;
    }
    let ecx1 = cpuid(1, 0).ecx;
    if ecx1 & (1 << 27) == 0 || ecx1 & (1 << 28) == 0 {
        return 0;
    }
    // SAFETY: OSXSAVE (checked above) means the OS has enabled `xgetbv`.
    let xcr0 = unsafe { xcr0() };
    if xcr0 & 0b110 != 0b110 {
        return 0;
    }
    let leaf7 = cpuid(7, 0);
    if leaf7.ebx & (1 << 5) == 0 {
        return 0;
    }
    // AVX-512: CPUID.(7,0):EBX.AVX512F[16], BW[30], VL[31], ECX.AVX512_VNNI[11], and XCR0 bits
    // 5–7 (opmask, upper halves of ZMM0–15, ZMM16–31).
    let ebx_512 = (1 << 16) | (1 << 30) | (1 << 31);
    if leaf7.ebx & ebx_512 == ebx_512 && leaf7.ecx & (1 << 11) != 0 && xcr0 & 0xe0 == 0xe0 {
        AVX2 | AVX512
    } else {
        AVX2
    }
}

/// Rows per block of the f32 Linear kernel: 8 rows × 8 lanes = 8 YMM accumulators, enough
/// independent additions to hide the adder latency, and one input load shared by 8 rows.
const F32_ROWS: usize = 8;
/// Rows per block of the int8 Linear kernel: 8 accumulators, the widened input and a weight
/// chunk in 10 of the 16 YMM registers; the input's `vpmovsxbw` is shared by 8 rows (with 4 the
/// 784 → 256 layer took 7.5 µs against 6.9 µs on the Intel Xeon of `docs/kernels.md`).
const S8_ROWS: usize = 8;

/// The 8-lane dot products of the `R` rows of `block` (`[R][n_in]` little-endian f32, unaligned)
/// with `x`, `n_in = x.len()`: lane `l` of row `r` is `Σ_{j ≡ l mod 8} W[r][j]·x[j]` in increasing
/// `j` (one `vmulps` then one `vaddps`: the product is rounded first), then the fixed tree.
///
/// # Safety
/// AVX2 must be available and `block.len() >= R · 4 · x.len()`.
#[target_feature(enable = "avx2")]
unsafe fn dots_f32<const R: usize>(block: &[u8], x: &[f32]) -> [f32; R] {
    let n_in = x.len();
    let row_bytes = 4 * n_in;
    let full = n_in / LANES;
    let (wp, xp) = (block.as_ptr(), x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); R];
    for c in 0..full {
        // SAFETY: 8·c + 8 ≤ n_in, and r·row_bytes + 32·c + 32 ≤ R·row_bytes ≤ block.len().
        let xv = _mm256_loadu_ps(xp.add(LANES * c));
        for (r, a) in acc.iter_mut().enumerate() {
            let wv = _mm256_loadu_ps(wp.add(r * row_bytes + 4 * LANES * c).cast::<f32>());
            *a = _mm256_add_ps(*a, _mm256_mul_ps(wv, xv));
        }
    }
    let mut lanes = [[0.0f32; LANES]; R];
    for (l, a) in lanes.iter_mut().zip(acc) {
        _mm256_storeu_ps(l.as_mut_ptr(), a);
    }
    // The last n_in mod 8 terms go to lanes 0, 1, … in order.
    let x_rest = x.get(LANES * full..).unwrap_or(&[]);
    for (r, l) in lanes.iter_mut().enumerate() {
        let start = r * row_bytes + 4 * LANES * full;
        let w_rest = block.get(start..r * row_bytes + row_bytes).unwrap_or(&[]);
        for ((lane, wb), &xv) in l.iter_mut().zip(w_rest.chunks_exact(4)).zip(x_rest) {
            *lane += f32::from_le_bytes([wb[0], wb[1], wb[2], wb[3]]) * xv;
        }
    }
    lanes.map(|l| lanes_sum(&l))
}

/// One input row `x` of [`crate::kernels::linear_f32`]: `out[o] = act(dot(W[o], x) + bias[o])`.
///
/// # Safety
/// The CPU must support AVX2 ([`has_avx2`]).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn linear_f32_avx2(
    act: Activation,
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    x: &[f32],
    out: &mut [f32],
) {
    let row_bytes = 4 * x.len();
    if row_bytes == 0 {
        return;
    }
    let mut bias = bias.iter();
    let mut w_blocks = weights.as_bytes().chunks_exact(F32_ROWS * row_bytes);
    let mut out_blocks = out.chunks_exact_mut(F32_ROWS);
    for (wb, ob) in (&mut w_blocks).zip(&mut out_blocks) {
        for ((o, s), b) in ob
            .iter_mut()
            .zip(dots_f32::<F32_ROWS>(wb, x))
            .zip(&mut bias)
        {
            *o = activate_f32(s + b, act);
        }
    }
    let rest = w_blocks.remainder().chunks_exact(row_bytes);
    for ((o, wr), b) in out_blocks.into_remainder().iter_mut().zip(rest).zip(bias) {
        let [s] = dots_f32::<1>(wr, x);
        *o = activate_f32(s + b, act);
    }
}

/// Wrapping sum of the 8 i32 lanes of `v`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// `Σ_i W[r][i] · (x[i] − zp_in)` for the `R` int8 rows of `block` (`[R][n_in]`), wrapping i32:
/// 16 inputs per step, widened to i16 (`x − zp_in ∈ [−255, 255]`), `vpmaddwd` into i32 pairs
/// (`|w·x + w·x| ≤ 65 280`, exact). Integer sums are exact in any order.
///
/// # Safety
/// AVX2 must be available and `block.len() >= R · x.len()`.
#[target_feature(enable = "avx2")]
unsafe fn dots_s8<const R: usize>(block: &[u8], x: &[i8], zp_in: i8) -> [i32; R] {
    const STEP: usize = 16;
    let n_in = x.len();
    let full = n_in / STEP;
    let (wp, xp) = (block.as_ptr(), x.as_ptr());
    let zp = _mm256_set1_epi16(i16::from(zp_in));
    let mut acc = [_mm256_setzero_si256(); R];
    for c in 0..full {
        // SAFETY: 16·c + 16 ≤ n_in, and r·n_in + 16·c + 16 ≤ R·n_in ≤ block.len().
        let xv = _mm_loadu_si128(xp.add(STEP * c).cast::<__m128i>());
        let xv = _mm256_sub_epi16(_mm256_cvtepi8_epi16(xv), zp);
        for (r, a) in acc.iter_mut().enumerate() {
            let wv = _mm_loadu_si128(wp.add(r * n_in + STEP * c).cast::<__m128i>());
            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(_mm256_cvtepi8_epi16(wv), xv));
        }
    }
    let x_rest = x.get(STEP * full..).unwrap_or(&[]);
    let zp = i32::from(zp_in);
    let mut sums = [0i32; R];
    for (r, (sum, a)) in sums.iter_mut().zip(acc).enumerate() {
        *sum = hsum_epi32(a);
        let w_rest = block
            .get(r * n_in + STEP * full..(r + 1) * n_in)
            .unwrap_or(&[]);
        for (&w, &xv) in w_rest.iter().zip(x_rest) {
            *sum = sum.wrapping_add(i32::from(w as i8) * (i32::from(xv) - zp));
        }
    }
    sums
}

/// One input row `x` of [`crate::kernels::linear_s8`]: [`dots_s8`] on blocks of [`S8_ROWS`] rows.
///
/// # Safety
/// The CPU must support AVX2 ([`has_avx2`]).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn linear_s8_avx2(
    act: Activation,
    q: &PerChannelQuant<'_>,
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    x: &[i8],
    out: &mut [i8],
) {
    let zp = q.input_zp;
    let (act_min, act_max) = activation_range(act, q.output);
    let range = requant::Range8::new(q.output.zero_point, act_min, act_max);
    // SAFETY (the three closures): the caller guarantees AVX2.
    let dots = |w: &[u8]| unsafe { dots_s8::<S8_ROWS>(w, x, zp) };
    let dot = |w: &[u8]| unsafe { dots_s8::<1>(w, x, zp)[0] };
    let block = |o0, d: &[i32; S8_ROWS], y: &mut [i8]| unsafe {
        requant::channels8_at(o0, d, bias, q, &range, y)
    };
    super::linear_s8_rows(act, q, (weights, bias), x.len(), out, dots, dot, block)
}

/// # Safety
/// The CPU must support AVX2 ([`has_avx2`]).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn conv2d_f32_avx2(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) {
    if super::pixels_f32::conv2d_f32_avx2(g, act, input, weights, bias, output)
        || single::conv2d_f32(g, act, input, weights, bias, output)
    {
        return;
    }
    if !im2col::conv2d_f32::<Avx2, { im2col::MP }>(g, act, input, weights, bias, output) {
        blocked::conv2d_f32(g, act, input, weights, bias, output)
    }
}

/// # Safety
/// The CPU must support AVX2 ([`has_avx2`]).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn conv2d_s8_avx2(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) {
    if single::conv2d_s8::<Avx2>(g, act, q, input, weights, bias, output)
        || pixels_s8::conv2d_s8_avx2(g, act, q, input, weights, bias, output)
    {
        return;
    }
    if !im2col::conv2d_s8::<Avx2, { im2col::MP_S8 }>(g, act, q, input, weights, bias, output) {
        blocked::conv2d_s8(g, act, q, input, weights, bias, output)
    }
}

/// # Safety
/// The CPU must support AVX2 ([`has_avx2`]).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn normalize_quantize_avx2(
    x: &[f32],
    mean: f32,
    std: f32,
    q: QuantParams,
    out: &mut [i8],
) {
    blocked::normalize_quantize(x, mean, std, q, out)
}

/// The AVX2 micro-kernels of [`super::im2col`].
pub(super) struct Avx2;

impl im2col::F32Dots for Avx2 {
    #[inline(always)]
    unsafe fn dots<const C: usize, const P: usize>(
        w: &[&[u8]; C],
        tail: Option<&[[f32; LANES]; C]>,
        cols: &[&[f32]; P],
        full: usize,
    ) -> [[f32; P]; C] {
        conv_dots_f32::<C, P>(w, tail, cols, full)
    }
}

impl im2col::S8Dots for Avx2 {
    type Col = i16;
    const STEP: usize = im2col::S8_STEP;
    const U8_OFFSET: bool = false;
    const WIDE: u8 = im2col::WIDE_SUB_ZP;
    #[inline(always)]
    fn col(x: i8, zp: i8) -> i16 {
        i16::from(x) - i16::from(zp)
    }
    #[inline(always)]
    fn pad(_zp: i8) -> i16 {
        0
    }
    const WIDE_I16: bool = true;
    #[inline(always)]
    fn widened(v: i16, _zp: i8) -> i16 {
        v
    }
    type Wide = im2col::WideBuf;
    #[inline(always)]
    fn wide() -> Self::Wide {
        im2col::WideBuf::new()
    }
    #[inline(always)]
    unsafe fn dots<const C: usize, const P: usize>(
        w: &[&[u8]; C],
        tail: Option<&[[i8; im2col::S8_TAIL]; C]>,
        cols: &[&[i16]; P],
        full: usize,
    ) -> [[i32; P]; C] {
        conv_dots_s8::<C, P>(w, tail, cols, full)
    }
    #[inline(always)]
    unsafe fn dots_i16<const C: usize, const P: usize>(
        w: &[&[i16]; C],
        cols: &[&[i16]; P],
        full: usize,
    ) -> [[i32; P]; C] {
        conv_dots_i16::<C, P>(w, cols, full)
    }
    #[inline(always)]
    unsafe fn pair_dots<const F: usize>(
        blk: &[i16],
        wp: &[single::Pairs; F],
    ) -> [[i32; single::PX]; F] {
        pair_dots_avx2(blk, wp)
    }
    #[inline(always)]
    unsafe fn requant(acc: &[i32], out: &mut [i8], q: &super::requant::RowQuant) {
        super::requant::row_avx2(acc, out, q)
    }
}

/// [`im2col::S8Dots::pair_dots`]: per tap pair, one load of the group's 8 pixels (16 i16) and,
/// per filter, `vpmaddwd` with the broadcast weight pair and `vpaddd` (exact: see
/// [`single::pair_dots_portable`]).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn pair_dots_avx2<const F: usize>(
    blk: &[i16],
    wp: &[single::Pairs; F],
) -> [[i32; single::PX]; F] {
    const _: () = assert!(single::PX == 8);
    let mut acc = [_mm256_setzero_si256(); F];
    let pairs = (blk.len() / 16).min(single::MAX_TAPS / 2);
    let x = blk.as_ptr();
    for m in 0..pairs {
        // SAFETY: 16·(m + 1) ≤ blk.len().
        let xv = _mm256_loadu_si256(x.add(16 * m).cast::<__m256i>());
        for (a, w) in acc.iter_mut().zip(wp) {
            let wv = _mm256_set1_epi32(w[m]);
            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(xv, wv));
        }
    }
    acc.map(|a| {
        let mut out = [0i32; 8];
        // SAFETY: `out` holds 8 i32.
        _mm256_storeu_si256(out.as_mut_ptr().cast::<__m256i>(), a);
        out
    })
}

/// [`im2col::F32Dots::dots`] with one YMM accumulator per (filter, pixel) pair: lane `l` of the
/// register is lane `l` of the documented order; `vmulps` then `vaddps` (no FMA).
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn conv_dots_f32<const C: usize, const P: usize>(
    w: &[&[u8]; C],
    tail: Option<&[[f32; LANES]; C]>,
    cols: &[&[f32]; P],
    full: usize,
) -> [[f32; P]; C] {
    if !im2col::f32_dots_fit(w, tail.is_some(), cols, full) {
        return [[0.0; P]; C];
    }
    let n = LANES * full;
    let mut wp = [core::ptr::null::<f32>(); C];
    for c in 0..C {
        wp[c] = w[c].as_ptr().cast::<f32>();
    }
    let mut xp = [core::ptr::null::<f32>(); P];
    for p in 0..P {
        xp[p] = cols[p].as_ptr();
    }
    let mut acc = [[_mm256_setzero_ps(); P]; C];
    let mut x = [_mm256_setzero_ps(); P];
    for k in 0..full {
        // SAFETY: 8k + 8 ≤ n ≤ every length checked above (weights in f32 units).
        for p in 0..P {
            x[p] = _mm256_loadu_ps(xp[p].add(LANES * k));
        }
        for c in 0..C {
            let wv = _mm256_loadu_ps(wp[c].add(LANES * k));
            for p in 0..P {
                acc[c][p] = _mm256_add_ps(acc[c][p], _mm256_mul_ps(wv, x[p]));
            }
        }
    }
    if let Some(t) = tail {
        // SAFETY: n + 8 ≤ need ≤ cols[p].len().
        for p in 0..P {
            x[p] = _mm256_loadu_ps(xp[p].add(n));
        }
        for c in 0..C {
            let wv = _mm256_loadu_ps(t[c].as_ptr());
            for p in 0..P {
                acc[c][p] = _mm256_add_ps(acc[c][p], _mm256_mul_ps(wv, x[p]));
            }
        }
    }
    // The fixed tree of 4 accumulators at once: `hadd` adds neighbouring lanes (`l0 + l1`,
    // `l2 + l3` in the first step, then their sums), and the two 128-bit halves hold the
    // `(l0..l3)` and `(l4..l7)` subtrees, so each sum is `((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))`.
    // Every index below is a compile-time constant once the loops over `C` and `P` unroll, so the
    // accumulators stay in registers (a run-time index would put them in memory).
    let mut out = [[0.0f32; P]; C];
    if P.is_multiple_of(4) {
        for c in 0..C {
            for p in (0..P).step_by(4) {
                let s = tree4_ps(acc[c][p], acc[c][p + 1], acc[c][p + 2], acc[c][p + 3]);
                _mm_storeu_ps(out[c].as_mut_ptr().add(p), s);
            }
        }
    } else if P == 2 && C.is_multiple_of(2) {
        for c in (0..C).step_by(2) {
            let s = tree4_ps(acc[c][0], acc[c][1], acc[c + 1][0], acc[c + 1][1]);
            let mut v = [0.0f32; 4];
            _mm_storeu_ps(v.as_mut_ptr(), s);
            out[c][0] = v[0];
            out[c][1] = v[1];
            out[c + 1][0] = v[2];
            out[c + 1][1] = v[3];
        }
    } else {
        for c in 0..C {
            for p in 0..P {
                let a = acc[c][p];
                let s = tree4_ps(a, a, a, a);
                out[c][p] = _mm_cvtss_f32(s);
            }
        }
    }
    out
}

/// The fixed tree `((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))` of `a`, `b`, `c`, `d`, in that order.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn tree4_ps(a: __m256, b: __m256, c: __m256, d: __m256) -> __m128 {
    let h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h))
}

/// [`im2col::S8Dots::dots`]: 16 taps per step, weights widened to i16, `vpmaddwd` into i32
/// pairs (`|w·x + w·x| ≤ 2·128·255`, exact), wrapping i32 adds.
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn conv_dots_s8<const C: usize, const P: usize>(
    w: &[&[u8]; C],
    tail: Option<&[[i8; im2col::S8_TAIL]; C]>,
    cols: &[&[i16]; P],
    full: usize,
) -> [[i32; P]; C] {
    const STEP: usize = im2col::S8_STEP;
    let n = STEP * full;
    let need = n + if tail.is_some() { STEP } else { 0 };
    if w.iter().any(|r| r.len() < n) || cols.iter().any(|x| x.len() < need) {
        return [[0; P]; C];
    }
    let mut wp = [core::ptr::null::<u8>(); C];
    for c in 0..C {
        wp[c] = w[c].as_ptr();
    }
    let mut xp = [core::ptr::null::<i16>(); P];
    for p in 0..P {
        xp[p] = cols[p].as_ptr();
    }
    let mut acc = [[_mm256_setzero_si256(); P]; C];
    let mut wv = [_mm256_setzero_si256(); C];
    for k in 0..full {
        // SAFETY: 16k + 16 ≤ n ≤ every length checked above.
        for c in 0..C {
            wv[c] = _mm256_cvtepi8_epi16(_mm_loadu_si128(wp[c].add(STEP * k).cast::<__m128i>()));
        }
        for p in 0..P {
            let xv = _mm256_loadu_si256(xp[p].add(STEP * k).cast::<__m256i>());
            for c in 0..C {
                acc[c][p] = _mm256_add_epi32(acc[c][p], _mm256_madd_epi16(wv[c], xv));
            }
        }
    }
    if let Some(t) = tail {
        // SAFETY: n + 16 ≤ need ≤ cols[p].len().
        for c in 0..C {
            wv[c] = _mm256_cvtepi8_epi16(_mm_loadu_si128(t[c].as_ptr().cast::<__m128i>()));
        }
        for p in 0..P {
            let xv = _mm256_loadu_si256(xp[p].add(n).cast::<__m256i>());
            for c in 0..C {
                acc[c][p] = _mm256_add_epi32(acc[c][p], _mm256_madd_epi16(wv[c], xv));
            }
        }
    }
    // Wrapping integer adds: exact in any order.
    hsums::<C, P>(&acc)
}

/// [`im2col::S8Dots::dots_i16`]: the filters already widened to i16 (once per tile, by the
/// caller), so a step of 16 taps is `C` weight loads, `P` row loads and `C·P` `vpmaddwd` +
/// `vpaddd` (`|w·x + w·x| ≤ 2·128·255`, exact), wrapping i32 adds.
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn conv_dots_i16<const C: usize, const P: usize>(
    w: &[&[i16]; C],
    cols: &[&[i16]; P],
    full: usize,
) -> [[i32; P]; C] {
    const STEP: usize = im2col::S8_STEP;
    let n = STEP * full;
    if w.iter().any(|r| r.len() < n) || cols.iter().any(|x| x.len() < n) {
        return [[0; P]; C];
    }
    let wp: [*const i16; C] = core::array::from_fn(|c| w[c].as_ptr());
    let xp: [*const i16; P] = core::array::from_fn(|p| cols[p].as_ptr());
    let mut acc = [[_mm256_setzero_si256(); P]; C];
    let mut wv = [_mm256_setzero_si256(); C];
    for k in 0..full {
        // SAFETY: 16k + 16 ≤ n ≤ every length checked above.
        for c in 0..C {
            wv[c] = _mm256_loadu_si256(wp[c].add(STEP * k).cast::<__m256i>());
        }
        for p in 0..P {
            let xv = _mm256_loadu_si256(xp[p].add(STEP * k).cast::<__m256i>());
            for c in 0..C {
                acc[c][p] = _mm256_add_epi32(acc[c][p], _mm256_madd_epi16(wv[c], xv));
            }
        }
    }
    hsums::<C, P>(&acc)
}

/// The wrapping sums of the 8 i32 lanes of each `acc[c][p]`: four channels of one pixel at once
/// when `C = 4` ([`hsum4_epi32`]), one register at a time otherwise.
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn hsums<const C: usize, const P: usize>(acc: &[[__m256i; P]; C]) -> [[i32; P]; C] {
    let mut out = [[0i32; P]; C];
    if C == 4 {
        for p in 0..P {
            let mut s = [0i32; 4];
            let h = hsum4_epi32(acc[0][p], acc[1][p], acc[2][p], acc[3][p]);
            _mm_storeu_si128(s.as_mut_ptr().cast::<__m128i>(), h);
            for c in 0..C {
                out[c][p] = s[c];
            }
        }
        return out;
    }
    for c in 0..C {
        for p in 0..P {
            out[c][p] = hsum_epi32(acc[c][p]);
        }
    }
    out
}

/// The wrapping sums of the 8 i32 lanes of `a`, `b`, `c`, `d`, in that order.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn hsum4_epi32(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m128i {
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
}
