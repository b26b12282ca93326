//! Layer descriptions: what a model file stores for each layer, borrowed from the file bytes.
//!
//! The same types describe a layer when decoding (borrowed from the file) and when encoding
//! (borrowed from the exporter's buffers). Layouts: Linear weights are `[out][in]`, Conv2d weights
//! are `[out][in][kh][kw]`, activations are CHW (batch size 1). Each layer kind has a stable wire
//! tag ([`LayerKind::tag`]); a decoder meeting an unknown tag reports
//! [`crate::Error::DecodeUnknownLayerKind`], so later kinds (LayerNorm, GELU, Softmax, attention)
//! get new tags without changing existing ones.

use serde::{Deserialize, Serialize};

use crate::tensor::{Activation, F32Data, I32Data, I8Data, QuantParams};

/// Fully connected layer, f32: `y[o] = Σ_i W[o][i] · x[i] + b[o]`, then the fused activation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearF32<'a> {
    /// Input length.
    pub in_features: u32,
    /// Output length.
    pub out_features: u32,
    /// Fused activation.
    pub activation: Activation,
    /// `out_features × in_features` weights, row-major.
    #[serde(borrow)]
    pub weights: F32Data<'a>,
    /// `out_features` biases.
    #[serde(borrow)]
    pub bias: F32Data<'a>,
}

/// Fully connected layer, int8 (TFLite-Micro arithmetic, per-output-channel weights):
/// `y[o] = requantize(Σ_i W[o][i] · (x[i] − zp_in) + b[o], M[o], shift[o]) + zp_out`, clamped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearS8<'a> {
    /// Input length.
    pub in_features: u32,
    /// Output length.
    pub out_features: u32,
    /// Fused activation (sets the output clamp).
    pub activation: Activation,
    /// `out_features × in_features` symmetric int8 weights, row-major.
    #[serde(borrow)]
    pub weights: I8Data<'a>,
    /// `out_features` int32 biases, scale `s_in · s_w[o]`, zero point 0.
    #[serde(borrow)]
    pub bias: I32Data<'a>,
    /// `out_features` Q0.31 requantization multipliers (see [`crate::quantize_multiplier`]).
    #[serde(borrow)]
    pub multiplier: I32Data<'a>,
    /// `out_features` requantization shifts in `[−31, 30]`.
    #[serde(borrow)]
    pub shift: I8Data<'a>,
    /// Quantization of the output tensor.
    pub output: QuantParams,
}

/// 2-D convolution, f32, square kernel, CHW in and out:
/// `y[o][oy][ox] = Σ_{i,ky,kx} W[o][i][ky][kx] · x[i][oy·s + ky − p][ox·s + kx − p] + b[o]`
/// (taps outside the input read 0), then the fused activation.
/// Output size: `(H + 2p − k) / s + 1` (floor) per spatial dimension.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Conv2dF32<'a> {
    /// Input channels.
    pub in_channels: u16,
    /// Output channels.
    pub out_channels: u16,
    /// Kernel size `k` (k × k).
    pub kernel: u16,
    /// Stride `s` (both dimensions).
    pub stride: u16,
    /// Zero padding `p` on every side, `p < k`.
    pub padding: u16,
    /// Fused activation.
    pub activation: Activation,
    /// `out × in × k × k` weights.
    #[serde(borrow)]
    pub weights: F32Data<'a>,
    /// `out` biases.
    #[serde(borrow)]
    pub bias: F32Data<'a>,
}

/// 2-D convolution, int8 (TFLite-Micro arithmetic, per-output-channel weights). Same geometry as
/// [`Conv2dF32`]; padded taps contribute `x − zp_in = 0`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Conv2dS8<'a> {
    /// Input channels.
    pub in_channels: u16,
    /// Output channels.
    pub out_channels: u16,
    /// Kernel size `k` (k × k).
    pub kernel: u16,
    /// Stride `s` (both dimensions).
    pub stride: u16,
    /// Zero padding `p` on every side, `p < k`.
    pub padding: u16,
    /// Fused activation (sets the output clamp).
    pub activation: Activation,
    /// `out × in × k × k` symmetric int8 weights.
    #[serde(borrow)]
    pub weights: I8Data<'a>,
    /// `out` int32 biases, scale `s_in · s_w[o]`, zero point 0.
    #[serde(borrow)]
    pub bias: I32Data<'a>,
    /// `out` Q0.31 requantization multipliers.
    #[serde(borrow)]
    pub multiplier: I32Data<'a>,
    /// `out` requantization shifts in `[−31, 30]`.
    #[serde(borrow)]
    pub shift: I8Data<'a>,
    /// Quantization of the output tensor.
    pub output: QuantParams,
}

/// Max pooling over `k × k` windows with stride `s`, no padding: output size `(H − k) / s + 1`.
/// Works on f32 and int8 (same quantization in and out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaxPool2d {
    /// Window size `k`.
    pub kernel: u16,
    /// Stride `s`.
    pub stride: u16,
}

/// One layer of a sequential model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Layer<'a> {
    /// Fully connected, f32.
    LinearF32(LinearF32<'a>),
    /// Fully connected, int8.
    LinearS8(LinearS8<'a>),
    /// 2-D convolution, f32.
    Conv2dF32(Conv2dF32<'a>),
    /// 2-D convolution, int8.
    Conv2dS8(Conv2dS8<'a>),
    /// `max(x, 0)` elementwise (int8: `max(q, zp)`), in place, any shape.
    Relu,
    /// Max pooling (f32 or int8).
    MaxPool2d(MaxPool2d),
    /// Mean over H × W: CHW → `C × 1 × 1` (int8: same quantization in and out, rounded as tflite).
    GlobalAvgPool,
    /// CHW → flat vector of C·H·W values (no data movement).
    Flatten,
}

/// The kind of a layer, without its data. `tag` is its wire tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum LayerKind {
    /// [`Layer::LinearF32`], tag 1.
    LinearF32,
    /// [`Layer::LinearS8`], tag 2.
    LinearS8,
    /// [`Layer::Conv2dF32`], tag 3.
    Conv2dF32,
    /// [`Layer::Conv2dS8`], tag 4.
    Conv2dS8,
    /// [`Layer::Relu`], tag 5.
    Relu,
    /// [`Layer::MaxPool2d`], tag 6.
    MaxPool2d,
    /// [`Layer::GlobalAvgPool`], tag 7.
    GlobalAvgPool,
    /// [`Layer::Flatten`], tag 8.
    Flatten,
}

impl LayerKind {
    /// Every kind this build knows, in tag order.
    pub const ALL: [LayerKind; 8] = [
        LayerKind::LinearF32,
        LayerKind::LinearS8,
        LayerKind::Conv2dF32,
        LayerKind::Conv2dS8,
        LayerKind::Relu,
        LayerKind::MaxPool2d,
        LayerKind::GlobalAvgPool,
        LayerKind::Flatten,
    ];

    /// The wire tag (postcard varint) that precedes the layer's fields. Tag 0 is never used.
    pub const fn tag(self) -> u32 {
        match self {
            LayerKind::LinearF32 => 1,
            LayerKind::LinearS8 => 2,
            LayerKind::Conv2dF32 => 3,
            LayerKind::Conv2dS8 => 4,
            LayerKind::Relu => 5,
            LayerKind::MaxPool2d => 6,
            LayerKind::GlobalAvgPool => 7,
            LayerKind::Flatten => 8,
        }
    }

    /// The kind with wire tag `tag`, if this build knows it.
    pub fn from_tag(tag: u32) -> Option<LayerKind> {
        LayerKind::ALL.into_iter().find(|k| k.tag() == tag)
    }

    /// A short name such as `"conv2d_s8"` (matches the kernel's file name).
    pub const fn name(self) -> &'static str {
        match self {
            LayerKind::LinearF32 => "linear_f32",
            LayerKind::LinearS8 => "linear_s8",
            LayerKind::Conv2dF32 => "conv2d_f32",
            LayerKind::Conv2dS8 => "conv2d_s8",
            LayerKind::Relu => "relu",
            LayerKind::MaxPool2d => "maxpool2d",
            LayerKind::GlobalAvgPool => "global_avg_pool",
            LayerKind::Flatten => "flatten",
        }
    }
}

impl core::fmt::Display for LayerKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl Layer<'_> {
    /// This layer's kind.
    pub const fn kind(&self) -> LayerKind {
        match self {
            Layer::LinearF32(_) => LayerKind::LinearF32,
            Layer::LinearS8(_) => LayerKind::LinearS8,
            Layer::Conv2dF32(_) => LayerKind::Conv2dF32,
            Layer::Conv2dS8(_) => LayerKind::Conv2dS8,
            Layer::Relu => LayerKind::Relu,
            Layer::MaxPool2d(_) => LayerKind::MaxPool2d,
            Layer::GlobalAvgPool => LayerKind::GlobalAvgPool,
            Layer::Flatten => LayerKind::Flatten,
        }
    }
}
