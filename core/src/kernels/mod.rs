//! Reference kernels, one per file, named `<op>_<dtype>` (CMSIS-NN style).
//!
//! Kernels trust nothing: each checks that its slices match its parameters and returns
//! [`Error::KernelBadArguments`](crate::Error::KernelBadArguments) otherwise (O(1) checks; the
//! engine has already validated everything at load time, so it never sees that error).
//!
//! # f32 summation order (fixed, host and device)
//!
//! Every f32 reduction (dot products of Linear and Conv2d, sums of GlobalAvgPool) uses the same
//! order: the terms `t_j`, `j = 0, 1, …, n−1` in the kernel's documented reduction order, are added
//! into 8 lanes, `lane[j mod 8] += t_j` in increasing `j` (lanes start at `+0.0`), and the lanes
//! are combined in the fixed tree `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`. A bias is
//! added after the tree. An 8-wide SIMD or unrolled implementation reproduces this bit for bit.
//! No `mul_add` anywhere: every product is rounded to f32 before it is added.

mod conv2d_f32;
mod conv2d_s8;
mod global_avg_pool_f32;
mod global_avg_pool_s8;
mod linear_f32;
mod linear_s8;
mod maxpool2d_f32;
mod maxpool2d_s8;
mod relu_f32;
mod relu_s8;

pub use conv2d_f32::conv2d_f32;
pub use conv2d_s8::conv2d_s8;
pub use global_avg_pool_f32::global_avg_pool_f32;
pub use global_avg_pool_s8::{global_avg_pool_s8, MAX_POOL_COUNT};
pub use linear_f32::linear_f32;
pub use linear_s8::linear_s8;
pub use maxpool2d_f32::maxpool2d_f32;
pub use maxpool2d_s8::maxpool2d_s8;
pub use relu_f32::relu_f32;
pub use relu_s8::relu_s8;

use crate::tensor::{Activation, F32Data};

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

/// The f32 fused activation: identity, or ReLU `if x < 0 { 0 } else { x }` (keeps NaN and −0.0).
#[inline]
pub fn activate_f32(x: f32, a: Activation) -> f32 {
    match a {
        Activation::Relu if x < 0.0 => 0.0,
        _ => x,
    }
}

/// Output length of a convolution or pooling window along one dimension:
/// `(input + 2·padding − kernel) / stride + 1`, or `None` if the window does not fit or a
/// parameter is zero.
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

/// The input geometry a conv/pool kernel sees: `[c][h][w]`.
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

/// For output coordinate `o`, the valid kernel taps `k_lo..k_hi` along one dimension and the input
/// coordinate of tap 0 (`o·stride − padding`, may be negative).
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
