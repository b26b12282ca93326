//! Host fast paths of Linear and Conv2d (x86_64 and aarch64 only; the Cortex-M build keeps the
//! one-output-at-a-time reference loops, except int8 Linear on thumbv7em, which runs the DSP
//! kernel of `linear_s8_dsp.rs`).
//!
//! Conv2d (and DepthwiseConv2d, which runs one channel at a time as a 1 → 1-channel Conv2d):
//! - filters of at most 64 taps (`ci·kh·kw`: one input channel, first layers on 1–7 channels,
//!   1×1 over ≤ 64 channels; [`single`]): vectorized across 8 output pixels, a tap-major im2col
//!   tile per group of 8 pixels (f32: 8 lane vectors per filter and the tree as vector adds;
//!   int8: tap pairs and `vpmaddwd`, 4 filters per pass);
//! - int8 at stride 1, windows larger than 1×1, on x86_64 (`pixels_s8`): output pixels in the
//!   lanes, the padded input widened once with channels paired per pixel (`pixels`), one
//!   32-byte load per tap pair and 8 pixels, `vpmaddwd` (AVX2) or `vpdpwssd` (AVX-512 VNNI);
//! - f32 3×3 with ≥ 8 input channels on x86_64 (`pixels_f32`), at stride 1 with
//!   `pad_left + pad_right = 2` and, on AVX-512, at stride 2: output pixels in the lanes (16 per
//!   ZMM register on AVX-512, 3 filters per pass; 8 per YMM register on AVX2, one filter, up to
//!   16 channels), the input in zero-padded bands of rows (4 phase planes at stride 2), one load
//!   per tap, 8 lane registers per filter (the documented order per pixel, no im2col copy);
//! - otherwise ([`im2col`]): im2col tiles of output pixels in a 16 KiB stack buffer, shared by
//!   all output channels, and a register-blocked micro-kernel (AVX-512VL + VNNI, `avx512`: 4
//!   filters × 4 pixels of 8-lane f32 accumulators, two filters per 512-bit register, 4 × 4
//!   `vpdpbusd` accumulators for int8 over `x + 128` rows; AVX2: 4 × 2 f32, 4 × 2 `vpmaddwd`
//!   for int8; portable Rust otherwise);
//! - shapes whose im2col row does not fit the buffer: the blocked loops of [`blocked`].
//!
//! Same results as the reference loops, bit for bit: f32 keeps the fixed 8-lane order of
//! [`crate::kernels`] (blocking only changes which outputs are computed together, never the order
//! of one output's sum), and int8 is exact integer arithmetic in any order. See
//! [`KernelPath`] for the variants and `docs/kernels.md` for the measurements.

#[cfg(target_arch = "x86_64")]
mod add;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod blocked;
mod im2col;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod pixels;
#[cfg(target_arch = "x86_64")]
mod pixels_f32;
#[cfg(target_arch = "x86_64")]
mod pixels_s8;
mod requant;
mod single;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::params::{LinearParams, PerChannelQuant};
use super::{ConvGeometry, KernelPath};
use crate::quant::{activation_range, requantize};
use crate::tensor::{Activation, F32Data, I32Data, I8Data, QuantParams};
use core::sync::atomic::{AtomicU8, Ordering};

/// Rows per block of the portable f32 Linear kernel: 4 rows × 8 f32 lanes fit the 16 SSE2 /
/// 32 NEON registers with the shared input chunk.
const PORTABLE_ROWS: usize = 4;

/// The highest path [`path`] may return (`0` = portable, `1` = AVX2, `2` = AVX-512), set by
/// [`limit`].
static LIMIT: AtomicU8 = AtomicU8::new(u8::MAX);

/// Rank of a path in the order `Portable < Avx2 < Avx512`.
const fn rank(path: KernelPath) -> u8 {
    match path {
        KernelPath::Avx512 => 2,
        KernelPath::Avx2 => 1,
        _ => 0,
    }
}

/// [`crate::kernels::limit_kernel_path`].
pub(super) fn limit(max: KernelPath) {
    LIMIT.store(rank(max), Ordering::Relaxed);
}

/// The fastest path this CPU supports, up to the [`limit`] (cargo feature `portable-kernels`
/// forces [`KernelPath::Portable`]).
#[inline]
pub(super) fn path() -> KernelPath {
    #[cfg(all(target_arch = "x86_64", not(feature = "portable-kernels")))]
    {
        let max = LIMIT.load(Ordering::Relaxed);
        if max >= 2 && x86::has_avx512() {
            return KernelPath::Avx512;
        }
        if max >= 1 && x86::has_avx2() {
            return KernelPath::Avx2;
        }
    }
    KernelPath::Portable
}

/// True when `path` can run the AVX2 kernels here: [`KernelPath::Avx2`], and
/// [`KernelPath::Avx512`] for the kernels it has no own version of (a path the CPU lacks is
/// replaced by the portable one).
#[cfg(target_arch = "x86_64")]
#[inline]
fn use_avx2(path: KernelPath) -> bool {
    (path == KernelPath::Avx2 || path == KernelPath::Avx512) && x86::has_avx2()
}

/// True when `path` is [`KernelPath::Avx512`] and the CPU has its features.
#[cfg(target_arch = "x86_64")]
#[inline]
fn use_avx512(path: KernelPath) -> bool {
    path == KernelPath::Avx512 && x86::has_avx512()
}

/// [`super::linear_f32`] after its checks: each of the `rows` input rows through the blocked
/// kernel (weights `[out][in]` blocked over output features; rows are independent).
pub(super) fn linear_f32(
    path: KernelPath,
    p: &LinearParams,
    x: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    out: &mut [f32],
) {
    if path == KernelPath::Reference {
        return super::linear_f32::reference(p, x, weights, bias, out);
    }
    if p.in_features == 0 || p.out_features == 0 {
        return;
    }
    let rows = x
        .chunks_exact(p.in_features)
        .zip(out.chunks_exact_mut(p.out_features));
    for (xr, yr) in rows {
        #[cfg(target_arch = "x86_64")]
        if use_avx2(path) {
            // SAFETY: `use_avx2` checked that the CPU supports AVX2.
            unsafe { x86::linear_f32_avx2(p.activation, weights, bias, xr, yr) };
            continue;
        }
        blocked::linear_f32::<PORTABLE_ROWS>(p.activation, weights, bias, xr, yr)
    }
}

/// [`super::linear_s8`] after its checks: AVX-512 VNNI or AVX2 on x86_64 (detected at run
/// time), NEON on aarch64 (every aarch64 CPU has it), else the reference loop.
pub(super) fn linear_s8(
    path: KernelPath,
    p: &LinearParams,
    q: &PerChannelQuant<'_>,
    x: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    out: &mut [i8],
) {
    let fast = path != KernelPath::Reference && p.in_features != 0 && p.out_features != 0;
    let rows = x
        .chunks_exact(p.in_features.max(1))
        .zip(out.chunks_exact_mut(p.out_features.max(1)));
    #[cfg(target_arch = "x86_64")]
    if fast && use_avx2(path) {
        let vnni = use_avx512(path);
        for (xr, yr) in rows {
            if vnni {
                // SAFETY: `use_avx512` checked that the CPU supports AVX-512 and VNNI.
                unsafe { avx512::linear_s8_avx512(p.activation, q, weights, bias, xr, yr) };
                continue;
            }
            // SAFETY: `use_avx2` checked that the CPU supports AVX2.
            unsafe { x86::linear_s8_avx2(p.activation, q, weights, bias, xr, yr) };
        }
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if fast {
        for (xr, yr) in rows {
            neon::linear_s8_neon(p.activation, q, weights, bias, xr, yr);
        }
        return;
    }
    // Portable x86_64: the reference loop (a blocked version was not faster, see `blocked`).
    let _ = (fast, rows);
    super::linear_s8::reference(p, q, x, weights, bias, out)
}

/// What every int8 Linear kernel shares, for one input row of `n_in` values: the weight rows
/// (`[n_out][n_in]`) in blocks of `R` through `dots` (their exact wrapping sums
/// `Σ_j W[o][j]·(x[j] − zp_in)`), the last `n_out mod R` one at a time through `dot`, then
/// `out[o] = requantize(bias[o] + dot_o)` with the reference's per-channel requantization:
/// `block(o0, dots, out)` for a block of outputs `o0..o0 + R` when it can (a vector form, `true`),
/// else one output at a time.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn linear_s8_rows<const R: usize>(
    act: Activation,
    q: &PerChannelQuant<'_>,
    (weights, bias): (I8Data<'_>, I32Data<'_>),
    n_in: usize,
    out: &mut [i8],
    mut dots: impl FnMut(&[u8]) -> [i32; R],
    mut dot: impl FnMut(&[u8]) -> i32,
    mut block: impl FnMut(usize, &[i32; R], &mut [i8]) -> bool,
) {
    if n_in == 0 {
        return;
    }
    let zp_out = i32::from(q.output.zero_point);
    let (act_min, act_max) = activation_range(act, q.output);
    let finish = |o: usize, y: &mut i8, dot: i32| {
        if let (Some(bias), Some(m), Some(shift)) =
            (bias.get(o), q.multiplier.get(o), q.shift.get(o))
        {
            let acc = bias.wrapping_add(dot);
            *y = requantize(acc, m, i32::from(shift), zp_out, act_min, act_max);
        }
    };
    let mut w_blocks = weights.as_bytes().chunks_exact(R * n_in);
    let mut out_blocks = out.chunks_exact_mut(R);
    let mut o0 = 0;
    for (wb, ob) in (&mut w_blocks).zip(&mut out_blocks) {
        let d = dots(wb);
        if !block(o0, &d, ob) {
            for (k, (y, &dk)) in ob.iter_mut().zip(&d).enumerate() {
                finish(o0 + k, y, dk);
            }
        }
        o0 += R;
    }
    let rest = w_blocks.remainder().chunks_exact(n_in);
    for (k, (y, wr)) in out_blocks.into_remainder().iter_mut().zip(rest).enumerate() {
        finish(o0 + k, y, dot(wr));
    }
}

/// [`super::conv2d_f32`] after its checks. Returns `false` (and writes nothing) when some weight
/// is not finite: padding is then computed by skipping taps, as the reference loop does, because
/// `inf · 0.0` would differ (see `blocked`).
pub(super) fn conv2d_f32(
    path: KernelPath,
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) -> bool {
    if path == KernelPath::Reference || !all_finite(weights) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    if use_avx512(path) {
        // SAFETY: `use_avx512` checked that the CPU supports AVX-512F/BW/VL/VNNI.
        unsafe { avx512::conv2d_f32_avx512(g, act, input, weights, bias, output) };
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if use_avx2(path) {
        // SAFETY: `use_avx2` checked that the CPU supports AVX2.
        unsafe { x86::conv2d_f32_avx2(g, act, input, weights, bias, output) };
        return true;
    }
    if single::conv2d_f32(g, act, input, weights, bias, output) {
        return true;
    }
    // SAFETY: the portable micro-kernel needs no target feature.
    if !unsafe {
        im2col::conv2d_f32::<im2col::Portable, { im2col::MP }>(g, act, input, weights, bias, output)
    } {
        blocked::conv2d_f32(g, act, input, weights, bias, output);
    }
    true
}

/// True when every value of `w` is finite (exponent bits not all ones), without branches in the
/// loop so that it vectorizes (the whole filter bank is scanned on every call).
fn all_finite(w: F32Data<'_>) -> bool {
    const EXP: u32 = 0x7f80_0000;
    let mut any_bad = 0u32;
    for b in w.as_bytes().chunks_exact(4) {
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        any_bad |= u32::from(v & EXP == EXP);
    }
    any_bad == 0
}

/// [`super::conv2d_s8`] after its checks.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv2d_s8(
    path: KernelPath,
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) {
    if path == KernelPath::Reference {
        return super::conv2d_s8::reference(g, act, q, input, weights, bias, output);
    }
    #[cfg(target_arch = "x86_64")]
    if use_avx512(path) {
        // SAFETY: `use_avx512` checked that the CPU supports AVX-512F/BW/VL/VNNI.
        return unsafe { avx512::conv2d_s8_avx512(g, act, q, input, weights, bias, output) };
    }
    #[cfg(target_arch = "x86_64")]
    if use_avx2(path) {
        // SAFETY: `use_avx2` checked that the CPU supports AVX2.
        return unsafe { x86::conv2d_s8_avx2(g, act, q, input, weights, bias, output) };
    }
    // SAFETY: the portable kernel needs no target feature.
    if unsafe { single::conv2d_s8::<im2col::Portable>(g, act, q, input, weights, bias, output) } {
        return;
    }
    // SAFETY: the portable micro-kernel needs no target feature.
    if !unsafe {
        im2col::conv2d_s8::<im2col::Portable, { im2col::MP_S8 }>(
            g, act, q, input, weights, bias, output,
        )
    } {
        blocked::conv2d_s8(g, act, q, input, weights, bias, output)
    }
}

/// [`super::add_s8`] on the host (equal lengths checked by the caller): `true` when a vector path
/// ran (AVX2, also on the AVX-512 path), `false` (nothing written) otherwise.
#[cfg(target_arch = "x86_64")]
pub(super) fn add_s8(
    p: &super::params::AddS8Params,
    a: &[i8],
    b: &[i8],
    output: &mut [i8],
) -> bool {
    if use_avx2(path()) {
        // SAFETY: `use_avx2` checked that the CPU supports AVX2.
        unsafe { add::add_s8_avx2(p, a, b, output) };
        return true;
    }
    false
}

/// [`super::normalize_quantize`]: the same values through
/// [`crate::quant::quantize_vectorizable`] (no `roundf` call, so the loop vectorizes).
pub(super) fn normalize_quantize(
    path: KernelPath,
    x: &[f32],
    mean: f32,
    std: f32,
    q: QuantParams,
    out: &mut [i8],
) {
    if path == KernelPath::Reference {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = crate::quant::quantize((v - mean) / std, q);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if use_avx2(path) {
        // SAFETY: `use_avx2` checked that the CPU supports AVX2.
        return unsafe { x86::normalize_quantize_avx2(x, mean, std, q, out) };
    }
    blocked::normalize_quantize(x, mean, std, q, out)
}
