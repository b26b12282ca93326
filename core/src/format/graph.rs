//! Wire types of format v2: the model info, the tensor table and the ops, borrowed from the file.
//!
//! The same types describe a model when decoding (borrowed from the file bytes, which may live in
//! flash) and when encoding (borrowed from an exporter's buffers). Activations are batch-1,
//! row-major; a rank-3 tensor is `[C][H][W]`. Layouts of weights: Linear `[out][in]`, Conv2d
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
}

impl OpKind {
    /// Every kind this build knows, in tag order.
    pub const ALL: [OpKind; 10] = [
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
        }
    }

    /// Number of inputs an op of this kind takes.
    pub const fn arity(self) -> usize {
        match self {
            OpKind::Add => 2,
            _ => 1,
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
/// Wire: `varint(tag) · inputs · varint(output) · params` (params absent for Mean and Reshape).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node<'a> {
    /// Kind and parameters.
    pub op: Op<'a>,
    /// Ids of the tensors it reads, in the op's order.
    pub inputs: Inputs,
    /// Id of the tensor it writes.
    pub output: u16,
}
