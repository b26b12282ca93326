//! Host fast paths of Linear and Conv2d (x86_64 and aarch64 only; the Cortex-M build keeps the
//! one-output-at-a-time reference loops, which are what the device benchmark measures).
//!
//! Same results as the reference loops, bit for bit: f32 keeps the fixed 8-lane order of
//! [`crate::kernels`] (blocking only changes which outputs are computed together, never the order
//! of one output's sum), and int8 is exact integer arithmetic in any order. See
//! [`KernelPath`] for the variants and `docs/kernels.md` for the measurements.

mod blocked;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::{Chw, ConvGeometry, KernelPath};
use crate::layer::{Conv2dF32, Conv2dS8, LinearF32, LinearS8};
use crate::tensor::QuantParams;

/// Rows per block of the portable f32 Linear kernel: 4 rows × 8 f32 lanes fit the 16 SSE2 /
/// 32 NEON registers with the shared input chunk.
const PORTABLE_ROWS: usize = 4;

/// The fastest path this CPU supports (cargo feature `portable-kernels` forces
/// [`KernelPath::Portable`]).
#[inline]
pub(super) fn path() -> KernelPath {
    #[cfg(all(target_arch = "x86_64", not(feature = "portable-kernels")))]
    if x86::has_avx2() {
        return KernelPath::Avx2;
    }
    KernelPath::Portable
}

/// True when `path` can run here (a path the CPU lacks is replaced by the portable one).
#[inline]
fn use_avx2(path: KernelPath) -> bool {
    #[cfg(target_arch = "x86_64")]
    return path == KernelPath::Avx2 && x86::has_avx2();
    #[cfg(not(target_arch = "x86_64"))]
    return {
        let _ = path;
        false
    };
}

/// [`super::linear_f32`] after its checks.
pub(super) fn linear_f32(path: KernelPath, layer: &LinearF32<'_>, x: &[f32], out: &mut [f32]) {
    if path == KernelPath::Reference {
        return super::linear_f32::reference(layer, x, out);
    }
    #[cfg(target_arch = "x86_64")]
    if use_avx2(path) {
        // SAFETY: `use_avx2` checked that the CPU supports AVX2.
        return unsafe { x86::linear_f32_avx2(layer, x, out) };
    }
    blocked::linear_f32::<PORTABLE_ROWS>(layer, x, out)
}

/// [`super::linear_s8`] after its checks.
pub(super) fn linear_s8(
    path: KernelPath,
    layer: &LinearS8<'_>,
    x: &[i8],
    zp_in: i8,
    out: &mut [i8],
) {
    #[cfg(target_arch = "x86_64")]
    if use_avx2(path) {
        // SAFETY: `use_avx2` checked that the CPU supports AVX2.
        return unsafe { x86::linear_s8_avx2(layer, x, zp_in, out) };
    }
    // Portable: the reference loop (a blocked version was not faster, see `blocked`).
    super::linear_s8::reference(layer, x, zp_in, out)
}

/// [`super::conv2d_f32`] after its checks. Returns `false` (and writes nothing) when some weight
/// is not finite: padding is then computed by skipping taps, as the reference loop does, because
/// `inf · 0.0` would differ (see `blocked`).
pub(super) fn conv2d_f32(
    path: KernelPath,
    layer: &Conv2dF32<'_>,
    g: &ConvGeometry,
    input: &[f32],
    dims: Chw,
    output: &mut [f32],
) -> bool {
    if path == KernelPath::Reference || !layer.weights.iter().all(f32::is_finite) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    if use_avx2(path) {
        // SAFETY: `use_avx2` checked that the CPU supports AVX2.
        unsafe { x86::conv2d_f32_avx2(layer, g, input, dims, output) };
        return true;
    }
    blocked::conv2d_f32(layer, g, input, dims, output);
    true
}

/// [`super::conv2d_s8`] after its checks.
pub(super) fn conv2d_s8(
    path: KernelPath,
    layer: &Conv2dS8<'_>,
    g: &ConvGeometry,
    input: &[i8],
    dims: Chw,
    zp_in: i8,
    output: &mut [i8],
) {
    if path == KernelPath::Reference {
        return super::conv2d_s8::reference(layer, g, input, dims, zp_in, output);
    }
    #[cfg(target_arch = "x86_64")]
    if use_avx2(path) {
        // SAFETY: `use_avx2` checked that the CPU supports AVX2.
        return unsafe { x86::conv2d_s8_avx2(layer, g, input, dims, zp_in, output) };
    }
    blocked::conv2d_s8(layer, g, input, dims, zp_in, output)
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
