//! Reference kernels, one per file, named `<op>_<dtype>` (CMSIS-NN style).
//!
//! Kernels trust nothing: each checks that its slices match its parameters and returns
//! [`Error::KernelBadArguments`](crate::Error::KernelBadArguments) otherwise (O(1) checks; the
//! engine has already validated everything at load time, so it never sees that error).
//!
//! # f32 summation order (fixed, host and device)
//!
//! Every f32 reduction (dot products of Linear, Conv2d, DepthwiseConv2d and BatchMatMul, sums of
//! GlobalAvgPool, MeanAxis, Softmax and LayerNorm's mean and variance) uses the same order: the terms `t_j`, `j = 0, 1, …, n−1` in the kernel's
//! documented reduction order, are added into 8 lanes, `lane[j mod 8] += t_j` in increasing `j`
//! (lanes start at `+0.0`), and the lanes are combined in the fixed tree
//! `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`. A bias is added after the tree. An
//! 8-wide SIMD or unrolled implementation reproduces this bit for bit. No `mul_add` anywhere:
//! every product is rounded to f32 before it is added.
//!
//! For a convolution the index `j` of a tap is the flat index of its weight within the output
//! channel's filter, padded or not: `j = (i·kh + ky)·kw + kx` for Conv2d (`[out][in][kh][kw]`
//! weights), `j = ky·kw + kx` for DepthwiseConv2d (`[c][kh][kw]`). A tap that falls in the zero
//! padding is skipped but keeps its `j`, so the taps that remain do not move to other lanes:
//! the result equals an im2col sum with explicit `w · 0.0` terms whenever the weights are finite
//! (a lane never holds −0.0, so adding ±0.0 leaves it unchanged).
//!
//! # Host fast paths
//!
//! On x86_64 and aarch64, Linear and Conv2d (and DepthwiseConv2d, one channel at a time through
//! the Conv2d code) run blocked kernels that compute several outputs at once (AVX2 on x86_64
//! when the CPU has it, detected once at run time; otherwise portable code the compiler
//! vectorizes). They keep each output's f32 order above, so they give the same bits as the
//! one-output-at-a-time loops that every other target (the Cortex-M) runs.
//! [`kernel_path`] says which one is in use; cargo feature `portable-kernels` forces the
//! portable one.
//!
//! # Cortex-M4 DSP path
//!
//! On `thumbv7em-*` (ARMv7E-M, `cfg(denoiserep_dsp)` set by `core/build.rs`) int8 Linear runs
//! `linear_s8_dsp.rs` (`SXTAB16` / `SXTB16` / `SMLAD`, four channels per pass) and int8 Conv2d
//! `conv2d_s8_dsp.rs` (im2col of two pixels into the caller's scratch, 2 channels × 2 pixels
//! per `SMLAD` pass; through [`conv2d_s8_with_scratch`], the reference loop without enough
//! scratch), exact integer arithmetic with the reference's requantization, so the same bits;
//! [`linear_s8_reference`] and [`conv2d_s8_reference`] stay available there as the oracles the
//! firmware's `kernel-check` binary compares them with.
//! int8 depthwise 3×3 runs `depthwise_conv2d_s8_strip.rs` there (strides 1–2, rows widened
//! into an i16 buffer in the arena scratch, four outputs per `SMLAD` block) or, for wider
//! planes and other strides, `depthwise_conv2d_s8_dsp.rs` (one word per kernel row);
//! [`depthwise_conv2d_s8_reference`] is their oracle.
//!
//! On the hard-float `thumbv7em-*eabihf` (Cortex-M4F/M7, `cfg(denoiserep_fpu)`), f32 Linear,
//! Conv2d and DepthwiseConv2d run `f32_m4.rs`: `VLDM`/`VMUL`/`VADD` loops that keep the f32
//! order above lane for lane (an im2col patch on the stack for Conv2d, a weights-in-registers
//! loop for 3×3 filters on one input channel), so the same bits as the reference loops, which
//! stay available as `kernel-check`'s oracles. The soft-float `thumbv7em-none-eabi` keeps the
//! reference loops for f32.

#[cfg(denoiserep_dsp)]
mod conv1x1_s8_dsp;
mod conv2d_f32;
mod conv2d_s8;
#[cfg(denoiserep_dsp)]
mod conv2d_s8_dsp;
mod depthwise_conv2d_f32;
mod depthwise_conv2d_s8;
#[cfg(denoiserep_dsp)]
mod depthwise_conv2d_s8_dsp;
#[cfg(denoiserep_dsp)]
mod depthwise_conv2d_s8_strip;
#[cfg(denoiserep_fpu)]
mod f32_m4;
mod global_avg_pool_f32;
mod global_avg_pool_s8;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod host;
mod linear_f32;
mod linear_s8;
#[cfg(denoiserep_dsp)]
mod linear_s8_dsp;
mod maxpool2d_f32;
mod maxpool2d_s8;
pub mod params;
#[cfg(denoiserep_fpu)]
mod quantize_m4;
mod relu_f32;
mod relu_s8;

#[cfg(any(feature = "ops-conv", denoiserep_fpu))]
pub(crate) use conv2d_f32::scratch_words_for_f32_patch;
pub use conv2d_f32::{conv2d_f32, conv2d_f32_scratch_words, conv2d_f32_with_scratch};
#[cfg(denoiserep_dsp)]
pub use conv2d_s8::conv2d_s8_dsp;
#[cfg(feature = "ops-conv")]
pub(crate) use conv2d_s8::scratch_words_for_conv;
pub use conv2d_s8::{
    conv2d_s8, conv2d_s8_reference, conv2d_s8_scratch_words, conv2d_s8_with_scratch,
};
pub use depthwise_conv2d_f32::depthwise_conv2d_f32;
#[cfg(denoiserep_dsp)]
pub use depthwise_conv2d_s8::depthwise_conv2d_s8_dsp;
pub use depthwise_conv2d_s8::{
    depthwise_conv2d_s8, depthwise_conv2d_s8_reference, depthwise_conv2d_s8_scratch_words,
    depthwise_conv2d_s8_with_scratch,
};
#[cfg(denoiserep_fpu)]
pub use f32_m4::{
    conv2d_f32_m4, depthwise_conv2d_f32_m4, linear_f32_m4, linear_f32_reference, PATCH as F32_PATCH,
};
pub use global_avg_pool_f32::global_avg_pool_f32;
pub use global_avg_pool_s8::{global_avg_pool_s8, MAX_POOL_COUNT};
pub use linear_f32::linear_f32;
pub use linear_s8::{
    linear_s8, linear_s8_reference, linear_s8_scratch_words, linear_s8_with_scratch,
};
#[cfg(denoiserep_dsp)]
pub use linear_s8_dsp::linear_s8_dsp;
pub use maxpool2d_f32::maxpool2d_f32;
pub use maxpool2d_s8::maxpool2d_s8;
pub use relu_f32::relu_f32;
pub use relu_s8::relu_s8;

use crate::error::{Error, Result};
use crate::tensor::{Activation, F32Data};
use params::{ConvParams, DepthwiseParams, PoolParams, Window};

/// Which implementation of Linear and Conv2d this build and CPU run (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPath {
    /// One output at a time, the loops in each kernel's file (Cortex-M and other targets).
    Reference,
    /// Blocked kernels in plain Rust, vectorized by the compiler for the build's baseline
    /// (SSE2 on x86_64, NEON on aarch64).
    Portable,
    /// The blocked kernels compiled for AVX2 (x86_64, detected at run time).
    Avx2,
    /// x86_64 with AVX-512F, BW, VL and VNNI (detected at run time): Conv2d micro-kernels with
    /// 32 vector registers and, for int8, `vpdpbusd`; int8 Linear with `vpdpbusd`; everything else as
    /// [`KernelPath::Avx2`].
    Avx512,
    /// ARMv7E-M (`thumbv7em-*`, Cortex-M4/M7): int8 Linear, Conv2d and depthwise 3×3 through
    /// the DSP extension (`SXTAB16`, `SMLAD`; `linear_s8_dsp.rs`, `conv2d_s8_dsp.rs`,
    /// `depthwise_conv2d_s8_dsp.rs`); with the FPU (`*eabihf`) also f32 Linear, Conv2d and
    /// DepthwiseConv2d (`f32_m4.rs`); everything else the reference loops.
    Dsp,
}

impl KernelPath {
    /// A short lowercase name: `reference`, `portable`, `avx2`, `avx512` or `dsp`.
    pub const fn name(self) -> &'static str {
        match self {
            KernelPath::Reference => "reference",
            KernelPath::Portable => "portable",
            KernelPath::Avx2 => "avx2",
            KernelPath::Avx512 => "avx512",
            KernelPath::Dsp => "dsp",
        }
    }
}

/// Caps the host kernel path at `max` for the rest of the process (x86_64 and aarch64; no effect
/// elsewhere): [`kernel_path`] then returns the fastest path the CPU supports that is not above
/// `max` in the order `Portable < Avx2 < Avx512` (`Reference` counts as `Portable`: the host never
/// dispatches the reference loops). Results are the same bits on every path; this exists to
/// measure and test a slower path on a faster CPU (the latency bench reads
/// `DENOISEREP_HOST_ISA=avx2|portable` and calls it).
pub fn limit_kernel_path(max: KernelPath) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    host::limit(max);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = max;
}

/// The Linear/Conv2d implementation this build runs on this CPU.
pub fn kernel_path() -> KernelPath {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    return host::path();
    #[cfg(denoiserep_dsp)]
    return KernelPath::Dsp;
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", denoiserep_dsp)))]
    return KernelPath::Reference;
}

/// [`maxpool2d`] for the common 2×2 window at stride 2 without padding (`oh = ⌊h/2⌋`,
/// `ow = ⌊w/2⌋`): every window lies inside the input, so `output[c][oy][ox]` folds
/// `a = in[2oy][2ox]`, `b = in[2oy][2ox+1]`, `c = in[2oy+1][2ox]`, `d = in[2oy+1][2ox+1]` in that
/// order with the same `v > max` rule (the same result bit for bit, NaN and ±0 included), over
/// fixed pairs of row slices without bounds checks in the loop, which the compiler vectorizes
/// (`maxps` / `pmaxsb` compute exactly `if v > m { v } else { m }`).
#[inline]
fn maxpool2x2<T: PartialOrd + Copy>(
    w: usize,
    ow: usize,
    input: &[T],
    output: &mut [T],
    hw: usize,
    oh: usize,
) {
    #[inline(always)]
    fn keep<T: PartialOrd + Copy>(m: T, v: T) -> T {
        if v > m {
            v
        } else {
            m
        }
    }
    if hw == 0 || ow == 0 || oh == 0 {
        return;
    }
    for (plane, out_plane) in input.chunks_exact(hw).zip(output.chunks_exact_mut(oh * ow)) {
        for (pair, out_row) in plane
            .chunks_exact(2 * w)
            .zip(out_plane.chunks_exact_mut(ow))
        {
            let (r0, r1) = pair.split_at(w);
            let (r0, r1) = (
                r0.get(..2 * ow).unwrap_or(&[]),
                r1.get(..2 * ow).unwrap_or(&[]),
            );
            for ((o, a), b) in out_row
                .iter_mut()
                .zip(r0.chunks_exact(2))
                .zip(r1.chunks_exact(2))
            {
                *o = keep(keep(keep(a[0], a[1]), b[0]), b[1]);
            }
        }
    }
}

/// The loop shared by [`maxpool2d_f32`] and [`maxpool2d_s8`]: `output[c][oy][ox]` = the maximum
/// of `input[c][oy·sh + ky − pad_top][ox·sw + kx − pad_left]` over the `kh × kw` window taps that
/// fall inside the input (padded taps are skipped, as in TFLite; every window holds at least one
/// input tap because each pad is `< k`). Taps are visited in row-major window order and replace
/// the running value only when `v > max` (the first tap wins ties; a NaN never replaces a number,
/// a NaN first tap stays). `input` is `[c][h][w]`, `output` is `[c][oh][ow]`,
/// `(oh, ow) = p.window.out_dims(h, w)`.
fn maxpool2d<T: PartialOrd + Copy>(p: &PoolParams, input: &[T], output: &mut [T]) -> Result<()> {
    let bad = Error::KernelBadArguments;
    let (h, w, win) = (p.h, p.w, p.window);
    let (oh, ow) = win.out_dims(h, w).ok_or(bad)?;
    let hw = h.checked_mul(w).ok_or(bad)?;
    if Some(input.len()) != p.channels.checked_mul(hw)
        || Some(output.len()) != p.channels.checked_mul(oh).and_then(|n| n.checked_mul(ow))
    {
        return Err(bad);
    }
    if win == Window::square(2, 2, 0) {
        maxpool2x2(w, ow, input, output, hw, oh);
        return Ok(());
    }
    maxpool2d_windows(p, input, output, (oh, ow, hw));
    Ok(())
}

/// The general loop of [`maxpool2d`] (any valid window), after its checks.
pub(crate) fn maxpool2d_windows<T: PartialOrd + Copy>(
    p: &PoolParams,
    input: &[T],
    output: &mut [T],
    (oh, ow, hw): (usize, usize, usize),
) {
    let (h, w, win) = (p.h, p.w, p.window);
    let mut out_iter = output.iter_mut();
    for plane in input.chunks_exact(hw) {
        for oy in 0..oh {
            let (ky_lo, ky_hi, y0) = tap_range(oy, win.sh, win.pad_top, win.kh, h);
            for ox in 0..ow {
                let (kx_lo, kx_hi, x0) = tap_range(ox, win.sw, win.pad_left, win.kw, w);
                let Some(out) = out_iter.next() else {
                    return;
                };
                if ky_lo >= ky_hi || kx_lo >= kx_hi {
                    continue; // no tap inside the input: impossible for a valid window
                }
                let (iy0, ix0) = (
                    (y0 + ky_lo as isize) as usize,
                    (x0 + kx_lo as isize) as usize,
                );
                let Some(&first) = plane.get(iy0 * w + ix0) else {
                    continue;
                };
                let mut m = first;
                for iy in iy0..iy0 + (ky_hi - ky_lo) {
                    for &v in &plane[iy * w + ix0..iy * w + ix0 + (kx_hi - kx_lo)] {
                        if v > m {
                            m = v;
                        }
                    }
                }
                *out = m;
            }
        }
    }
}

/// Number of accumulation lanes of every f32 reduction.
pub const LANES: usize = 8;

/// Combines the 8 lanes in the fixed tree `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`.
#[inline]
pub fn lanes_sum(l: &[f32; LANES]) -> f32 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// `Σ_j w[j] · x[j]` over `j < min(len)` in the 8-lane order (see the module docs).
#[inline]
pub fn dot_f32(w: F32Data<'_>, x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let wb = w.as_bytes();
    let mut w_chunks = wb.chunks_exact(4 * LANES);
    let mut x_chunks = x.chunks_exact(LANES);
    for (wc, xc) in (&mut w_chunks).zip(&mut x_chunks) {
        for ((lane, wb4), &xv) in lanes.iter_mut().zip(wc.chunks_exact(4)).zip(xc) {
            *lane += f32::from_le_bytes([wb4[0], wb4[1], wb4[2], wb4[3]]) * xv;
        }
    }
    let w_rest = F32Data::from_le_bytes(w_chunks.remainder());
    for ((lane, wv), &xv) in lanes
        .iter_mut()
        .zip(w_rest.iter())
        .zip(x_chunks.remainder())
    {
        *lane += wv * xv;
    }
    lanes_sum(&lanes)
}

/// `Σ_j x[j]` in the 8-lane order.
#[inline]
pub fn sum_f32(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(c) {
            *lane += v;
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane += v;
    }
    lanes_sum(&lanes)
}

/// `Σ_j a[j] · b[j]` over `j < min(len)` in the 8-lane order (both operands in the arena).
#[inline]
pub fn dot_f32_slices(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut a_chunks = a.chunks_exact(LANES);
    let mut b_chunks = b.chunks_exact(LANES);
    for (ac, bc) in (&mut a_chunks).zip(&mut b_chunks) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(ac).zip(bc) {
            *lane += x * y;
        }
    }
    for ((lane, &x), &y) in lanes
        .iter_mut()
        .zip(a_chunks.remainder())
        .zip(b_chunks.remainder())
    {
        *lane += x * y;
    }
    lanes_sum(&lanes)
}

/// `Σ_j t_j` of the terms `terms` yields, `j = 0, 1, …`, in the 8-lane order: for reductions
/// whose terms are not contiguous (a column of a matrix, an inner axis).
#[inline]
pub fn sum_f32_terms(terms: impl Iterator<Item = f32>) -> f32 {
    let mut lanes = [0.0f32; LANES];
    for (j, t) in terms.enumerate() {
        lanes[j % LANES] += t;
    }
    lanes_sum(&lanes)
}

/// The f32 fused activation: identity; ReLU `if x < 0 { 0 } else { x }` (keeps NaN and −0.0);
/// ReLU6 = ReLU, then `if x > 6 { 6 } else { x }`.
#[inline]
pub fn activate_f32(x: f32, a: Activation) -> f32 {
    match a {
        Activation::None => x,
        Activation::Relu if x < 0.0 => 0.0,
        Activation::Relu => x,
        Activation::Relu6 if x < 0.0 => 0.0,
        Activation::Relu6 if x > 6.0 => 6.0,
        Activation::Relu6 => x,
    }
}

/// The int8 model's input step for one channel plane:
/// `out[i] = quantize((x[i] − mean) / std, q)` (see [`crate::quant::quantize`]) for
/// `i < min(x.len(), out.len())`. Public (hidden) so the firmware's `kernel-check` binary can
/// compare the Cortex-M4F path with `quantize` in QEMU.
#[doc(hidden)]
pub fn normalize_quantize(
    x: &[f32],
    mean: f32,
    std: f32,
    q: crate::tensor::QuantParams,
    out: &mut [i8],
) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    host::normalize_quantize(host::path(), x, mean, std, q, out);
    // Cortex-M4F: the rounding by a fixed-point `VCVT` instead of a call to `libm::roundf`; the
    // same result for every f32 (`quantize_m4.rs`).
    #[cfg(all(
        denoiserep_fpu,
        not(any(target_arch = "x86_64", target_arch = "aarch64"))
    ))]
    quantize_m4::normalize_quantize(x, mean, std, q.scale, q.zero_point, out);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", denoiserep_fpu)))]
    for (o, &v) in out.iter_mut().zip(x) {
        *o = crate::quant::quantize((v - mean) / std, q);
    }
}

/// Output length of a convolution or pooling window along one dimension with the same padding on
/// both sides: `(input + 2·padding − kernel) / stride + 1`, or `None` if the window does not fit
/// or a parameter is zero (the kernels use [`Window::out_dims`]; this stays for the model
/// planner's square windows).
#[inline]
pub fn window_out_dim(input: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    if kernel == 0 || stride == 0 {
        return None;
    }
    let span = input
        .checked_add(padding.checked_mul(2)?)?
        .checked_sub(kernel)?;
    Some(span / stride + 1)
}

/// The input geometry of a global pooling kernel: `[c][h][w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chw {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Chw {
    /// `c · h · w`, or `None` on overflow.
    pub fn numel(&self) -> Option<usize> {
        self.c.checked_mul(self.h)?.checked_mul(self.w)
    }
}

/// Geometry of a convolution whose arguments were checked by [`conv_geometry`] or
/// [`depthwise_geometry`] (a depthwise one runs as `channels` convolutions of 1 → 1 channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    /// Input channels (1 for one channel of a depthwise convolution).
    pub ci: usize,
    /// Input height and width.
    pub h: usize,
    pub w: usize,
    /// Kernel, strides, padding.
    pub win: Window,
    /// Output height and width, `win.out_dims(h, w)`.
    pub oh: usize,
    pub ow: usize,
    /// Weights per output channel, `ci · kh · kw`.
    pub per_out: usize,
}

impl ConvGeometry {
    /// The checked geometry of a `ci`-channel `h × w` input under `win`, or `None` if the window
    /// is invalid or a size overflows.
    fn new(ci: usize, h: usize, w: usize, win: Window) -> Option<Self> {
        let (oh, ow) = win.out_dims(h, w)?;
        let per_out = win.kh.checked_mul(win.kw)?.checked_mul(ci)?;
        // Every index the loops form stays below these products.
        ci.checked_mul(h.checked_mul(w)?)?;
        oh.checked_mul(ow)?;
        Some(Self {
            ci,
            h,
            w,
            win,
            oh,
            ow,
            per_out,
        })
    }
}

/// Checks what [`conv2d_f32`] and [`conv2d_s8`] share: a valid window,
/// `input_len == in·h·w`, `output_len == out·oh·ow`, `weights_len == out·in·kh·kw` (all without
/// overflow). `Err(KernelBadArguments)` otherwise.
pub(crate) fn conv_geometry(
    p: &ConvParams,
    input_len: usize,
    output_len: usize,
    weights_len: usize,
) -> Result<ConvGeometry> {
    let bad = Error::KernelBadArguments;
    let g = ConvGeometry::new(p.in_channels, p.h, p.w, p.window).ok_or(bad)?;
    let co = p.out_channels;
    // `h·w` and `oh·ow` do not overflow (checked by `ConvGeometry::new`).
    if Some(input_len) != p.in_channels.checked_mul(p.h * p.w)
        || Some(output_len) != co.checked_mul(g.oh * g.ow)
        || Some(weights_len) != co.checked_mul(g.per_out)
    {
        return Err(bad);
    }
    Ok(g)
}

/// Checks what [`depthwise_conv2d_f32`] and [`depthwise_conv2d_s8`] share: a valid window,
/// `input_len == c·h·w`, `output_len == c·oh·ow`, `weights_len == c·kh·kw`. Returns the geometry
/// of one channel (`ci = 1`, `per_out = kh·kw`).
pub(crate) fn depthwise_geometry(
    p: &DepthwiseParams,
    input_len: usize,
    output_len: usize,
    weights_len: usize,
) -> Result<ConvGeometry> {
    let bad = Error::KernelBadArguments;
    let g = ConvGeometry::new(1, p.h, p.w, p.window).ok_or(bad)?;
    let c = p.channels;
    if Some(input_len) != c.checked_mul(p.h * p.w)
        || Some(output_len) != c.checked_mul(g.oh * g.ow)
        || Some(weights_len) != c.checked_mul(g.per_out)
    {
        return Err(bad);
    }
    Ok(g)
}

/// For output coordinate `o`, the valid kernel taps `k_lo..k_hi` along one dimension and the input
/// coordinate of tap 0 (`o·stride − padding`, may be negative). `padding` is the padding before
/// the input (top or left); padding after it needs no parameter, taps past the end are clipped.
#[inline]
pub(crate) fn tap_range(
    o: usize,
    stride: usize,
    padding: usize,
    kernel: usize,
    input: usize,
) -> (usize, usize, isize) {
    let start = (o * stride) as isize - padding as isize;
    let lo = if start < 0 { (-start) as usize } else { 0 };
    let end = start + kernel as isize;
    let hi = if end > input as isize {
        kernel.saturating_sub((end - input as isize) as usize)
    } else {
        kernel
    };
    (lo.min(hi), hi, start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_out_dim_floors_and_rejects() {
        assert_eq!(window_out_dim(12, 3, 1, 1), Some(12));
        assert_eq!(window_out_dim(6, 3, 2, 0), Some(2));
        assert_eq!(window_out_dim(7, 2, 2, 0), Some(3));
        assert_eq!(window_out_dim(2, 3, 1, 0), None);
        assert_eq!(window_out_dim(5, 0, 1, 0), None);
        assert_eq!(window_out_dim(5, 1, 0, 0), None);
        assert_eq!(window_out_dim(usize::MAX, 1, 1, 1), None);
    }

    #[test]
    fn tap_range_clips_to_the_input() {
        // k = 3, p = 1, input 4: output 0 starts at −1 (tap 0 is padding).
        assert_eq!(tap_range(0, 1, 1, 3, 4), (1, 3, -1));
        assert_eq!(tap_range(1, 1, 1, 3, 4), (0, 3, 0));
        // Output 3 covers 2..5: tap 2 is past the end.
        assert_eq!(tap_range(3, 1, 1, 3, 4), (0, 2, 2));
    }

    #[test]
    fn lanes_combine_in_the_documented_tree() {
        // Chosen so that a left-to-right sum differs: 1e8 + 1 − 1e8 + … loses the 1s.
        let l = [1e8, 1.0, -1e8, 1.0, 3.0, 0.5, 0.25, 0.125];
        assert_eq!(
            lanes_sum(&l),
            ((1e8f32 + 1.0) + (-1e8 + 1.0)) + ((3.0 + 0.5) + (0.25 + 0.125))
        );
        let seq = l.iter().fold(0.0f32, |a, &v| a + v);
        assert_ne!(lanes_sum(&l).to_bits(), seq.to_bits());
    }

    #[test]
    fn dot_uses_lane_j_mod_8() {
        // Term j goes to lane j % 8: lane 0 holds t0 + t8 = 0 and lane 1 keeps the 1, which a
        // left-to-right sum would lose (1e8 + 1 == 1e8 in f32).
        let w: [f32; 9] = [1e8, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1e8];
        let x = [1.0f32; 9];
        let mut bytes = [0u8; 36];
        for (c, v) in bytes.chunks_exact_mut(4).zip(w) {
            c.copy_from_slice(&v.to_le_bytes());
        }
        assert_eq!(dot_f32(F32Data::from_le_bytes(&bytes), &x), 1.0);
        assert_eq!(w.iter().fold(0.0f32, |a, v| a + v), 0.0);
        assert_eq!(sum_f32(&[1.0; 17]), 17.0);
    }
}

mod activation_f32;
mod add_f32;
mod add_s8;
// Compiled everywhere so its unit tests run on the host; only `thumbv7em-*` dispatches to it.
#[cfg_attr(not(denoiserep_dsp), allow(dead_code))]
mod add_s8_dsp;
mod avg_pool2d_f32;
mod avg_pool2d_s8;
mod clamp_s8;
mod softmax_f32;
mod softmax_s8;
mod sum_s8;

pub use activation_f32::activation_f32;
pub use add_f32::add_f32;
pub use add_s8::{add_s8, add_s8_reference};
pub use avg_pool2d_f32::avg_pool2d_f32;
pub use avg_pool2d_s8::avg_pool2d_s8;
pub use clamp_s8::clamp_s8;
pub use softmax_f32::softmax_f32;
pub use softmax_s8::{softmax_s8, MAX_SOFTMAX_S8_DEPTH};

// The token / attention kernels (a tiny Vision Transformer).
mod batch_matmul_f32;
mod batch_matmul_s8;
mod concat;
mod dequantize_s8;
#[cfg(feature = "fast-math")]
pub mod fast_math;
mod gelu_f32;
mod layer_norm_f32;
mod lut_s8;
mod mean_axis_f32;
mod mean_axis_s8;
mod quantize_s8;
mod slice;
mod transpose;

pub use batch_matmul_f32::batch_matmul_f32;
pub use batch_matmul_s8::batch_matmul_s8;
pub use concat::concat;
pub use dequantize_s8::dequantize_s8;
pub use gelu_f32::{gelu_f32, gelu_f32_one};
pub use layer_norm_f32::layer_norm_f32;
pub use lut_s8::{lut_s8, LUT_S8_LEN};
pub use mean_axis_f32::mean_axis_f32;
pub use mean_axis_s8::mean_axis_s8;
pub use quantize_s8::quantize_s8;
pub use slice::slice;
pub use transpose::transpose;

/// Checks what [`avg_pool2d_f32`] and [`avg_pool2d_s8`] share: a valid window for `h × w`,
/// `input_len == c·h·w` and `output_len == c·oh·ow` (without overflow). Returns `(oh, ow)`.
fn pool_geometry(
    p: &params::PoolParams,
    input_len: usize,
    output_len: usize,
) -> Result<(usize, usize)> {
    let (oh, ow) = p
        .window
        .out_dims(p.h, p.w)
        .ok_or(Error::KernelBadArguments)?;
    let numel = |a: usize, b: usize| p.channels.checked_mul(a)?.checked_mul(b);
    if Some(input_len) != numel(p.h, p.w) || Some(output_len) != numel(oh, ow) {
        return Err(Error::KernelBadArguments);
    }
    Ok((oh, ow))
}

/// The in-bounds input coordinates `lo..hi` of output position `o` along one dimension: the
/// window covers `o·stride − pad_before .. o·stride − pad_before + kernel`, clipped to
/// `0..input` (an empty range if nothing is in bounds; never panics).
#[inline]
fn pool_taps(
    o: usize,
    stride: usize,
    pad_before: usize,
    kernel: usize,
    input: usize,
) -> (usize, usize) {
    let start = o.saturating_mul(stride);
    let lo = start.saturating_sub(pad_before).min(input);
    let hi = start
        .saturating_add(kernel)
        .saturating_sub(pad_before)
        .min(input);
    (lo, hi.max(lo))
}
