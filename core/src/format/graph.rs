//! Wire types of format v3 (v2 plus payload pads, `super::align`): the model info, the tensor
//! table and the ops, borrowed from the file.
//!
//! The same types describe a model when decoding (borrowed from the file bytes, which may live in
//! flash) and when encoding (borrowed from an exporter's buffers). Activations are batch-1,
//! row-major; the convolution ops read a rank-3 tensor as `[C][H][W]`, the token ops (LayerNorm,
//! Linear, BatchMatMul, …) read `[N][D]` as N tokens of D features and `[H][N][d]` as H heads. Layouts of weights: Linear `[out][in]`, Conv2d
//! `[out][in][kh][kw]`, DepthwiseConv2d `[c][kh][kw]`. Each op kind has a stable wire tag
//! ([`OpKind::tag`]); a decoder meeting an unknown tag reports
//! [`crate::Error::DecodeUnknownOpKind`], so later kinds get new tags without changing these.

use serde::{Deserialize, Serialize};

use crate::kernels::params::Window;
use crate::tensor::{Activation, DType, F32Data, I32Data, I8Data, Shape};

/// Most inputs an op may have.
pub const MAX_OP_INPUTS: usize = 4;

/// Model-level description, stored first in the body.
///
/// Wire order is field order (postcard struct = fields back to back).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo<'a> {
    /// Human-readable model name (UTF-8).
    pub name: &'a str,
    /// Id of the input tensor: the core writes the normalized (for int8: quantized) input there.
    pub input: u16,
    /// Id of the logits tensor (the model's main output).
    pub logits: u16,
    /// Id of the embedding tensor (the features used for retrieval; may equal `logits`).
    pub embedding: u16,
    /// Normalization mean: 1 value (all elements) or one per index of the input's dim 0
    /// (channels of a `[C][H][W]` input). The core feeds `(x − μ) / σ` to the graph.
    #[serde(borrow)]
    pub input_mean: F32Data<'a>,
    /// Normalization standard deviation, same length as `input_mean`, finite and > 0.
    #[serde(borrow)]
    pub input_std: F32Data<'a>,
}

/// One entry of the tensor table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TensorDesc<'a> {
    /// Shape (rank 1..=4).
    pub shape: Shape,
    /// Element type (int8 with its quantization).
    pub dtype: DType,
    /// Constant tensors only: the values, little-endian, `numel · element size` bytes. A
    /// constant is never written by an op; the core copies it into the arena before the first op.
    #[serde(borrow)]
    pub data: Option<&'a [u8]>,
}

/// Weights and bias of a Linear, Conv2d or DepthwiseConv2d, typed by precision.
///
/// Wire: postcard enum tag `0` = F32, `1` = S8, then the fields.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Weights<'a> {
    /// f32 weights and biases (input and output tensors are f32).
    F32 {
        /// Weights (layout per op).
        #[serde(borrow)]
        weights: F32Data<'a>,
        /// One bias per output channel.
        #[serde(borrow)]
        bias: F32Data<'a>,
    },
    /// int8 (TFLite-Micro arithmetic): symmetric per-output-channel weights, int32 biases with
    /// scale `s_in · s_w[o]`, per-channel requantization. Input and output tensors are int8.
    S8 {
        /// Weights (layout per op), zero point 0.
        #[serde(borrow)]
        weights: I8Data<'a>,
        /// One int32 bias per output channel.
        #[serde(borrow)]
        bias: I32Data<'a>,
        /// One Q0.31 multiplier per output channel (see [`crate::quantize_multiplier`]).
        #[serde(borrow)]
        multiplier: I32Data<'a>,
        /// One shift in `[−31, 30]` per output channel.
        #[serde(borrow)]
        shift: I8Data<'a>,
    },
}

/// Fully connected on the last dim: `y[r][o] = act(Σ_i W[o][i] · x[r][i] + b[o])` for every row
/// `r` of the leading dims. Output shape: the input's with the last dim replaced by `out`
/// (= bias length).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Linear<'a> {
    /// Fused activation.
    pub activation: Activation,
    /// `[out][in]` weights and `[out]` biases.
    #[serde(borrow)]
    pub weights: Weights<'a>,
}

/// Kernel, stride and padding of a 2-D window on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// `[kh, kw]`.
    pub kernel: [u16; 2],
    /// `[sh, sw]`.
    pub stride: [u16; 2],
    /// `[top, bottom, left, right]` zero padding, each below the kernel size on its axis.
    pub padding: [u16; 4],
}

impl WindowSpec {
    /// The kernel-side view.
    pub fn window(&self) -> Window {
        let [kh, kw] = self.kernel.map(usize::from);
        let [sh, sw] = self.stride.map(usize::from);
        let [pad_top, pad_bottom, pad_left, pad_right] = self.padding.map(usize::from);
        Window {
            kh,
            kw,
            sh,
            sw,
            pad_top,
            pad_bottom,
            pad_left,
            pad_right,
        }
    }
}

/// 2-D convolution, input `[Ci][H][W]`, weights `[Co][Ci][kh][kw]`, output `[Co][Ho][Wo]`:
/// `y[o][oy][ox] = act(Σ_{i,ky,kx} W[o][i][ky][kx] · x[i][oy·sh + ky − pt][ox·sw + kx − pl] + b[o])`
/// (taps outside the input read 0; int8: they read the input zero point).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Conv2d<'a> {
    /// Kernel, stride, padding.
    pub window: WindowSpec,
    /// Fused activation.
    pub activation: Activation,
    /// Weights and biases.
    #[serde(borrow)]
    pub weights: Weights<'a>,
}

/// Depthwise 2-D convolution (depth multiplier 1), weights `[C][kh][kw]`:
/// `y[c][oy][ox] = act(Σ_{ky,kx} W[c][ky][kx] · x[c][oy·sh + ky − pt][ox·sw + kx − pl] + b[c])`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DepthwiseConv2d<'a> {
    /// Kernel, stride, padding.
    pub window: WindowSpec,
    /// Fused activation.
    pub activation: Activation,
    /// Weights and biases.
    #[serde(borrow)]
    pub weights: Weights<'a>,
}

/// Max or average pooling over windows of a `[C][H][W]` input (padded taps are skipped; the
/// average divides by the number of in-bounds taps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool2d {
    /// Kernel, stride, padding.
    pub window: WindowSpec,
}

/// Elementwise `y = act(a + b)` of two tensors of the same shape (int8: TFLite's ADD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Add {
    /// Fused activation.
    pub activation: Activation,
}

/// Softmax over the last dim: `y_i = exp(β·(x_i − max)) / Σ_j exp(β·(x_j − max))`. int8 output:
/// scale 1/256, zero point −128 (TFLite).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Softmax {
    /// β, finite and > 0.
    pub beta: f32,
}

/// A standalone activation (`y = act(x)`), elementwise; runs in place when it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Act {
    /// The activation.
    pub activation: Activation,
}

/// Layer normalization over the last dim, f32 only: inputs `x [.., D]`, `gamma [D]`, `beta [D]`;
/// per row `μ = Σx / D`, `σ² = Σ(x − μ)² / D`, `y = (x − μ) / sqrt(σ² + eps) · γ + β` (exact
/// order: [`crate::kernels::layer_norm_f32`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerNorm {
    /// Added to the variance before the square root; finite and > 0.
    pub eps: f32,
}

/// Batched matrix product `y[b] = alpha · a[b] × b[b]`: `a [B, M, K]`, `b [B, K, N]` (or
/// `[B, N, K]` used transposed when `adj_y`), `y [B, M, N]`; rank 2 means `B = 1`. int8: TFLite's
/// BATCH_MATMUL with `alpha` folded into the requantization multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatchMatMul {
    /// `b` is stored `[B, N, K]` and used transposed (attention scores `Q · Kᵀ`).
    pub adj_y: bool,
    /// Scale of the product (`1/√d_head` for attention scores); finite and > 0.
    pub alpha: f32,
}

/// A permutation of the axes of a rank-`len` tensor (rank ≤ 4).
///
/// Wire: a postcard sequence of `u8` (varint length, then one byte per axis). The decoder
/// accepts up to 4 entries; whether they permute `0..rank` is checked against the input tensor
/// (`OpBadParam`).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Perm {
    axes: [u8; crate::tensor::MAX_RANK],
    len: u8,
}

impl Perm {
    /// The permutation with these entries, or `None` for more than 4.
    pub fn new(axes: &[u8]) -> Option<Self> {
        let mut out = [0u8; crate::tensor::MAX_RANK];
        out.get_mut(..axes.len())?.copy_from_slice(axes);
        Some(Self {
            axes: out,
            len: axes.len() as u8,
        })
    }

    /// The entries: output axis `i` is input axis `axes()[i]`.
    pub fn axes(&self) -> &[u8] {
        self.axes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl core::fmt::Debug for Perm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.axes()).finish()
    }
}

impl Serialize for Perm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.axes())
    }
}

impl<'de> Deserialize<'de> for Perm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        let v = heapless::Vec::<u8, { crate::tensor::MAX_RANK }>::deserialize(d)?;
        Perm::new(&v).ok_or_else(|| serde::de::Error::custom("perm"))
    }
}

/// Axis permutation: `y[i_0, …, i_{r−1}] = x[j]` with `j[perm[k]] = i_k`, i.e. output dim `k` is
/// input dim `perm[k]`. Any dtype; int8 keeps the quantization. Rank ≤ 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transpose {
    /// `perm[k]` = the input axis that becomes output axis `k`; a permutation of `0..rank`.
    pub perm: Perm,
}

/// Concatenation of 2..=4 inputs along `axis` (same rank, equal dims except `axis`, one dtype;
/// int8: every input has the output's quantization).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concat {
    /// The axis, `< rank`.
    pub axis: u8,
}

/// Mean over one axis: `y[o][i] = Σ_j x[o][j][i] / n` with `n` the length of `axis` (`o` the
/// leading, `i` the trailing index). Output: the input's dims without `axis`, or with it set to 1.
/// int8: TFLite's MEAN (any output quantization).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeanAxis {
    /// The axis, `< rank`.
    pub axis: u8,
}

/// Rows `start .. start + len` along `axis`: `y[o][j][i] = x[o][start + j][i]`. Output: the
/// input's dims with `axis` set to `len`, or (for `len == 1` and rank > 1) without `axis`. Any
/// dtype; int8 keeps the quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slice {
    /// The axis, `< rank`.
    pub axis: u8,
    /// First index taken along `axis`.
    pub start: u32,
    /// Number of indices taken, ≥ 1, with `start + len ≤` the axis' length.
    pub len: u32,
}

/// One op's kind and parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op<'a> {
    /// [`Linear`], 1 input.
    Linear(Linear<'a>),
    /// [`Conv2d`], 1 input.
    Conv2d(Conv2d<'a>),
    /// [`DepthwiseConv2d`], 1 input.
    DepthwiseConv2d(DepthwiseConv2d<'a>),
    /// [`Add`], 2 inputs.
    Add(Add),
    /// Max pooling, 1 input, same dtype (and quantization) in and out.
    MaxPool2d(Pool2d),
    /// Average pooling, 1 input, same dtype (and quantization) in and out.
    AvgPool2d(Pool2d),
    /// Mean over H × W of a `[C][H][W]` input (global average pool), output `C` values (any
    /// shape with `C` elements), same quantization in and out.
    Mean,
    /// Same values, new shape (equal element count, same dtype): an alias, no data moves.
    Reshape,
    /// [`Softmax`], 1 input.
    Softmax(Softmax),
    /// [`Act`], 1 input, same shape and dtype.
    Activation(Act),
    /// [`LayerNorm`], 3 inputs (`x`, `gamma`, `beta`), f32.
    LayerNorm(LayerNorm),
    /// GELU, 1 input, f32, same shape: `y = 0.5·x·(1 + erf(x/√2))` (exact order:
    /// [`crate::kernels::gelu_f32`]); runs in place when it can. int8 models use [`Op::Lut`].
    Gelu,
    /// Table lookup, 2 inputs: int8 `x` and a `[256]` int8 table with the output's quantization;
    /// `y = table[x + 128]`, same shape (int8 GELU and any other elementwise int8 function).
    Lut,
    /// [`BatchMatMul`], 2 inputs (`a`, `b`).
    BatchMatMul(BatchMatMul),
    /// [`Transpose`], 1 input.
    Transpose(Transpose),
    /// f32 → int8 with the output's quantization (TFLite QUANTIZE), 1 input, same shape.
    Quantize,
    /// int8 → f32 with the input's quantization (TFLite DEQUANTIZE), 1 input, same shape.
    Dequantize,
    /// [`Concat`], 2..=4 inputs.
    Concat(Concat),
    /// [`MeanAxis`], 1 input.
    MeanAxis(MeanAxis),
    /// [`Slice`], 1 input.
    Slice(Slice),
}

/// The kind of an op, without its data. `tag` is its wire tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum OpKind {
    /// [`Op::Linear`], tag 1.
    Linear,
    /// [`Op::Conv2d`], tag 2.
    Conv2d,
    /// [`Op::DepthwiseConv2d`], tag 3.
    DepthwiseConv2d,
    /// [`Op::Add`], tag 4.
    Add,
    /// [`Op::MaxPool2d`], tag 5.
    MaxPool2d,
    /// [`Op::AvgPool2d`], tag 6.
    AvgPool2d,
    /// [`Op::Mean`], tag 7.
    Mean,
    /// [`Op::Reshape`], tag 8.
    Reshape,
    /// [`Op::Softmax`], tag 9.
    Softmax,
    /// [`Op::Activation`], tag 10.
    Activation,
    /// [`Op::LayerNorm`], tag 11.
    LayerNorm,
    /// [`Op::Gelu`], tag 12.
    Gelu,
    /// [`Op::Lut`], tag 13.
    Lut,
    /// [`Op::BatchMatMul`], tag 14.
    BatchMatMul,
    /// [`Op::Transpose`], tag 15.
    Transpose,
    /// [`Op::Quantize`], tag 16.
    Quantize,
    /// [`Op::Dequantize`], tag 17.
    Dequantize,
    /// [`Op::Concat`], tag 18.
    Concat,
    /// [`Op::MeanAxis`], tag 19.
    MeanAxis,
    /// [`Op::Slice`], tag 20.
    Slice,
}

impl OpKind {
    /// Every kind this build knows, in tag order.
    pub const ALL: [OpKind; 20] = [
        OpKind::Linear,
        OpKind::Conv2d,
        OpKind::DepthwiseConv2d,
        OpKind::Add,
        OpKind::MaxPool2d,
        OpKind::AvgPool2d,
        OpKind::Mean,
        OpKind::Reshape,
        OpKind::Softmax,
        OpKind::Activation,
        OpKind::LayerNorm,
        OpKind::Gelu,
        OpKind::Lut,
        OpKind::BatchMatMul,
        OpKind::Transpose,
        OpKind::Quantize,
        OpKind::Dequantize,
        OpKind::Concat,
        OpKind::MeanAxis,
        OpKind::Slice,
    ];

    /// The wire tag (postcard varint) that precedes the op. Tag 0 is never used.
    pub const fn tag(self) -> u32 {
        match self {
            OpKind::Linear => 1,
            OpKind::Conv2d => 2,
            OpKind::DepthwiseConv2d => 3,
            OpKind::Add => 4,
            OpKind::MaxPool2d => 5,
            OpKind::AvgPool2d => 6,
            OpKind::Mean => 7,
            OpKind::Reshape => 8,
            OpKind::Softmax => 9,
            OpKind::Activation => 10,
            OpKind::LayerNorm => 11,
            OpKind::Gelu => 12,
            OpKind::Lut => 13,
            OpKind::BatchMatMul => 14,
            OpKind::Transpose => 15,
            OpKind::Quantize => 16,
            OpKind::Dequantize => 17,
            OpKind::Concat => 18,
            OpKind::MeanAxis => 19,
            OpKind::Slice => 20,
        }
    }

    /// The kind with wire tag `tag`, if this build knows it.
    pub fn from_tag(tag: u32) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|k| k.tag() == tag)
    }

    /// A short lowercase name such as `"depthwise_conv2d"` (the file in `ops/`).
    pub const fn name(self) -> &'static str {
        match self {
            OpKind::Linear => "linear",
            OpKind::Conv2d => "conv2d",
            OpKind::DepthwiseConv2d => "depthwise_conv2d",
            OpKind::Add => "add",
            OpKind::MaxPool2d => "max_pool2d",
            OpKind::AvgPool2d => "avg_pool2d",
            OpKind::Mean => "mean",
            OpKind::Reshape => "reshape",
            OpKind::Softmax => "softmax",
            OpKind::Activation => "activation",
            OpKind::LayerNorm => "layer_norm",
            OpKind::Gelu => "gelu",
            OpKind::Lut => "lut",
            OpKind::BatchMatMul => "batch_matmul",
            OpKind::Transpose => "transpose",
            OpKind::Quantize => "quantize",
            OpKind::Dequantize => "dequantize",
            OpKind::Concat => "concat",
            OpKind::MeanAxis => "mean_axis",
            OpKind::Slice => "slice",
        }
    }

    /// The numbers of inputs an op of this kind takes (`2..=4` for Concat, one number for every
    /// other kind).
    pub const fn arity(self) -> core::ops::RangeInclusive<usize> {
        match self {
            OpKind::Add | OpKind::Lut | OpKind::BatchMatMul => 2..=2,
            OpKind::LayerNorm => 3..=3,
            OpKind::Concat => 2..=MAX_OP_INPUTS,
            _ => 1..=1,
        }
    }
}

impl core::fmt::Display for OpKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl Op<'_> {
    /// This op's kind.
    pub const fn kind(&self) -> OpKind {
        match self {
            Op::Linear(_) => OpKind::Linear,
            Op::Conv2d(_) => OpKind::Conv2d,
            Op::DepthwiseConv2d(_) => OpKind::DepthwiseConv2d,
            Op::Add(_) => OpKind::Add,
            Op::MaxPool2d(_) => OpKind::MaxPool2d,
            Op::AvgPool2d(_) => OpKind::AvgPool2d,
            Op::Mean => OpKind::Mean,
            Op::Reshape => OpKind::Reshape,
            Op::Softmax(_) => OpKind::Softmax,
            Op::Activation(_) => OpKind::Activation,
            Op::LayerNorm(_) => OpKind::LayerNorm,
            Op::Gelu => OpKind::Gelu,
            Op::Lut => OpKind::Lut,
            Op::BatchMatMul(_) => OpKind::BatchMatMul,
            Op::Transpose(_) => OpKind::Transpose,
            Op::Quantize => OpKind::Quantize,
            Op::Dequantize => OpKind::Dequantize,
            Op::Concat(_) => OpKind::Concat,
            Op::MeanAxis(_) => OpKind::MeanAxis,
            Op::Slice(_) => OpKind::Slice,
        }
    }
}

/// Tensor ids an op reads (1..=[`MAX_OP_INPUTS`]). Wire: a postcard sequence of u16 varints.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Inputs {
    ids: [u16; MAX_OP_INPUTS],
    len: u8,
}

impl Inputs {
    /// Inputs with these ids, or `None` for more than [`MAX_OP_INPUTS`].
    pub fn new(ids: &[u16]) -> Option<Self> {
        let mut out = [0u16; MAX_OP_INPUTS];
        out.get_mut(..ids.len())?.copy_from_slice(ids);
        Some(Self {
            ids: out,
            len: ids.len() as u8,
        })
    }

    /// The ids.
    pub fn ids(&self) -> &[u16] {
        self.ids.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl core::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.ids()).finish()
    }
}

impl Serialize for Inputs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.ids())
    }
}

/// One op of the graph: its kind and parameters, the tensors it reads and the tensor it writes.
///
/// Wire: `varint(tag) · inputs · varint(output) · params` (params absent for Mean, Reshape,
/// Gelu, Lut, Quantize and Dequantize).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node<'a> {
    /// Kind and parameters.
    pub op: Op<'a>,
    /// Ids of the tensors it reads, in the op's order.
    pub inputs: Inputs,
    /// Id of the tensor it writes.
    pub output: u16,
}
