//! Kernel arguments: small plain structs (dims, windows, quantization), never wire types.
//!
//! The interpreter (`ops/`) builds them from a decoded op and its tensors' shapes; kernels check
//! that their slices match them (O(1)) and never read a model file themselves. Activations are
//! CHW (batch 1): a conv input is `[c][h][w]`, a Linear input is `[rows][in_features]` (any
//! leading dims flattened into `rows`).

use crate::tensor::{Activation, I32Data, I8Data, QuantParams};

/// A 2-D sliding window over an `h × w` plane: kernel `kh × kw`, strides `sh, sw`, and zero
/// padding on each side (asymmetric allowed: TF "same" at stride 2 pads bottom/right more).
///
/// Output size per dimension: `(in + pad_before + pad_after − k) / s + 1` (floor); a window that
/// does not fit, a zero kernel or stride, or a pad `≥ k` on any side is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Rows of zeros above the input.
    pub pad_top: usize,
    /// Rows of zeros below the input.
    pub pad_bottom: usize,
    /// Columns of zeros left of the input.
    pub pad_left: usize,
    /// Columns of zeros right of the input.
    pub pad_right: usize,
}

impl Window {
    /// A `k × k` window with stride `s` and padding `p` on every side.
    pub const fn square(k: usize, s: usize, p: usize) -> Self {
        Self {
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            pad_top: p,
            pad_bottom: p,
            pad_left: p,
            pad_right: p,
        }
    }

    /// `(out_h, out_w)` for an `h × w` input, or `None` when the window is invalid (see the type
    /// docs) or a size overflows.
    pub fn out_dims(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        if self.pad_top >= self.kh
            || self.pad_bottom >= self.kh
            || self.pad_left >= self.kw
            || self.pad_right >= self.kw
        {
            return None;
        }
        let oh = out_dim(h, self.kh, self.sh, self.pad_top, self.pad_bottom)?;
        let ow = out_dim(w, self.kw, self.sw, self.pad_left, self.pad_right)?;
        Some((oh, ow))
    }
}

/// `(input + before + after − kernel) / stride + 1`, or `None` if the window does not fit or a
/// parameter is zero.
#[inline]
pub fn out_dim(
    input: usize,
    kernel: usize,
    stride: usize,
    before: usize,
    after: usize,
) -> Option<usize> {
    if kernel == 0 || stride == 0 || input == 0 {
        return None;
    }
    let span = input
        .checked_add(before)?
        .checked_add(after)?
        .checked_sub(kernel)?;
    Some(span / stride + 1)
}

/// Fully connected on the last dim: input `[rows][in_features]`, weights `[out][in]`,
/// output `[rows][out_features]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearParams {
    /// Product of the leading dims (1 for a vector).
    pub rows: usize,
    /// Input features (last input dim).
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// Fused activation.
    pub activation: Activation,
}

/// 2-D convolution: input `[in_channels][h][w]`, weights `[out][in][kh][kw]`,
/// output `[out_channels][oh][ow]` with `(oh, ow) = window.out_dims(h, w)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvParams {
    /// Input channels.
    pub in_channels: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel, stride, padding.
    pub window: Window,
    /// Fused activation.
    pub activation: Activation,
}

/// Depthwise 2-D convolution, depth multiplier 1: input `[c][h][w]`, weights `[c][kh][kw]`,
/// output `[c][oh][ow]`; channel `c` of the output reads only channel `c` of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseParams {
    /// Channels (in = out).
    pub channels: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel, stride, padding.
    pub window: Window,
    /// Fused activation.
    pub activation: Activation,
}

/// Pooling (max or average) over windows of a `[c][h][w]` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolParams {
    /// Channels.
    pub channels: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window, stride, padding (padded taps are skipped, never counted).
    pub window: Window,
}

/// Per-output-channel requantization of an int8 Linear/Conv/Depthwise (TFLite-Micro):
/// `y[o] = clamp(MultiplyByQuantizedMultiplier(acc[o], multiplier[o], shift[o]) + zp_out)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerChannelQuant<'a> {
    /// Zero point of the input tensor (`acc = Σ w · (x − input_zp) + bias`).
    pub input_zp: i8,
    /// Quantization of the output tensor.
    pub output: QuantParams,
    /// One Q0.31 multiplier per output channel.
    pub multiplier: I32Data<'a>,
    /// One shift in `[−31, 30]` per output channel.
    pub shift: I8Data<'a>,
}

impl PerChannelQuant<'_> {
    /// True when the bias (`bias_len` entries), the multipliers and the shifts each have one
    /// entry per output channel (`n`): the check every int8 Linear, Conv2d and depthwise entry
    /// point shares.
    #[inline]
    pub(crate) fn fits(&self, bias_len: usize, n: usize) -> bool {
        bias_len == n && self.multiplier.len() == n && self.shift.len() == n
    }
}

/// int8 elementwise Add with broadcasting-free equal shapes, exactly TFLite's ADD:
/// `x1' = (x1 − zp1) << left_shift`, `x2' = (x2 − zp2) << left_shift`,
/// `s1 = MBQM(x1', m1, sh1)`, `s2 = MBQM(x2', m2, sh2)`,
/// `y = clamp(MBQM(s1 + s2, m_out, sh_out) + zp_out, act_min, act_max)`
/// (MBQM = [`crate::quant::multiply_by_quantized_multiplier`]; TFLite uses `left_shift = 20`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddS8Params {
    /// Zero point of input 1.
    pub input1_zp: i32,
    /// Zero point of input 2.
    pub input2_zp: i32,
    /// Zero point of the output.
    pub output_zp: i32,
    /// Left shift applied to both inputs (20 in TFLite).
    pub left_shift: i32,
    /// Input 1 multiplier and shift.
    pub input1_multiplier: i32,
    /// Input 1 shift.
    pub input1_shift: i32,
    /// Input 2 multiplier.
    pub input2_multiplier: i32,
    /// Input 2 shift.
    pub input2_shift: i32,
    /// Output multiplier.
    pub output_multiplier: i32,
    /// Output shift.
    pub output_shift: i32,
    /// Lower clamp (fused activation).
    pub act_min: i32,
    /// Upper clamp (fused activation).
    pub act_max: i32,
}

/// int8 Softmax over the last dim, exactly TFLite's: output scale `1/256`, zero point `−128`.
/// `input_multiplier`, `input_left_shift` and `diff_min` come from
/// `PreprocessSoftmaxScaling(beta, input_scale, 5)` and `CalculateInputRadius(5, left_shift, 31)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftmaxS8Params {
    /// Product of the leading dims.
    pub rows: usize,
    /// Length of the last dim.
    pub depth: usize,
    /// Q0.31 multiplier of `beta · input_scale · 2^(31 − 5)`.
    pub input_multiplier: i32,
    /// Its left shift.
    pub input_left_shift: i32,
    /// Differences `x − max` below this give probability 0 (negative).
    pub diff_min: i32,
}

/// A tensor viewed around one axis as `[outer][len][inner]`: `outer` = product of the dims
/// before the axis, `len` = the axis' length, `inner` = product of the dims after it (1 for the
/// last axis). Used by MeanAxis and Slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisDims {
    /// Product of the dims before the axis (1 for axis 0).
    pub outer: usize,
    /// Length of the axis.
    pub len: usize,
    /// Product of the dims after the axis (1 for the last axis).
    pub inner: usize,
}

impl AxisDims {
    /// `outer · len · inner`, or `None` on overflow.
    pub fn numel(&self) -> Option<usize> {
        self.outer.checked_mul(self.len)?.checked_mul(self.inner)
    }
}

/// Batched matrix product: `a [batches][m][k]`, `b [batches][k][n]` (with `adj_y`:
/// `[batches][n][k]`, used transposed), output `[batches][m][n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMatMulParams {
    /// Number of independent products (1 for rank-2 operands).
    pub batches: usize,
    /// Rows of `a` and of the output.
    pub m: usize,
    /// Inner (accumulation) dimension.
    pub k: usize,
    /// Columns of the output.
    pub n: usize,
    /// `b` is stored `[n][k]` per batch (used as its transpose).
    pub adj_y: bool,
}

/// int8 requantization of a BatchMatMul (TFLite's BATCH_MATMUL, per tensor):
/// `y = clamp(MBQM(Σ_k (a − a_zp)·(b − b_zp), multiplier, shift) + out_zp, −128, 127)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMatMulS8Params {
    /// Zero point of `a`.
    pub a_zp: i32,
    /// Zero point of `b`.
    pub b_zp: i32,
    /// Zero point of the output.
    pub out_zp: i32,
    /// Q0.31 multiplier of `alpha · s_a · s_b / s_out` (see
    /// [`crate::quant::batch_matmul_s8_params`]).
    pub multiplier: i32,
    /// Its shift, in `[−31, 30]`.
    pub shift: i32,
}

/// int8 mean over one axis, TFLite-Micro's `QuantizedMeanOrSum` (mean): with `n` the axis length,
/// `y = clamp(MBQM(Σ_j q_j − input_zp · n, multiplier, shift) + output_zp, −128, 127)`, where
/// `(multiplier, shift)` already include the `1/n` (see [`crate::quant::mean_s8_params`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeanS8Params {
    /// Zero point of the input.
    pub input_zp: i32,
    /// Zero point of the output.
    pub output_zp: i32,
    /// Multiplier of `s_in / (s_out · n)` (may be below `2^30`: TFLite divides it by `n`).
    pub multiplier: i32,
    /// Its shift, in `[−31, 30]`.
    pub shift: i32,
}
