//! Prepare: validate a decoded model completely and plan its arena.
//!
//! Everything that can be wrong with a model file is found here, once, so that running it cannot
//! fail except for a wrong input length or a small arena. Checks: metadata (shape, normalization,
//! input quantization, embedding index, classes), and per layer: precision of the incoming tensor,
//! shape chaining, parameters, exact tensor lengths, finite f32 weights, int8 multiplier/shift
//! ranges, and that no int32 accumulator can overflow for any int8 input.
//!
//! # Arena layout
//!
//! ```text
//! arena (caller's &mut [u8], any alignment)
//! ├ 0..3 bytes of alignment slack
//! ├ embedding region   copy of the embedding layer's output (absent if it is the last layer)
//! └ work region        activations, alternating between its two ends:
//!     tensor 0 (normalized input) at the low end, layer 0's output at the high end, layer 1's
//!     output at the low end again, …; in-place layers (ReLU, Flatten) stay where they are.
//! ```
//!
//! Every tensor size is rounded up to 4 bytes, so the work region is
//! `max over layers (in_bytes + out_bytes)` (and at least the input tensor): the smallest size
//! for which one layer's input and output never overlap. No current kernel needs scratch.

use heapless::Vec;

use crate::arena::{align_up, ARENA_ALIGN};
use crate::error::{Error, Result};
use crate::format::Body;
use crate::kernels::{window_out_dim, MAX_POOL_COUNT};
use crate::layer::{Conv2dF32, Conv2dS8, Layer, LinearF32, LinearS8};
use crate::metadata::Metadata;
use crate::quant::multiplier_is_valid;
use crate::tensor::{DType, F32Data, I32Data, I8Data, Precision, Shape};

/// Shape and element type of an activation tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TensorInfo {
    /// Shape.
    pub shape: Shape,
    /// Element type (with quantization for int8).
    pub dtype: DType,
}

impl TensorInfo {
    /// Size in bytes, or `None` on overflow.
    pub fn bytes(&self) -> Option<usize> {
        self.shape.numel()?.checked_mul(self.dtype.size())
    }
}

/// Where a tensor lives in the work region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Low,
    High,
}

impl End {
    fn other(self) -> End {
        match self {
            End::Low => End::High,
            End::High => End::Low,
        }
    }
}

/// A validated layer with its input and output tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedLayer<'a> {
    /// The layer as stored in the file.
    pub layer: Layer<'a>,
    /// The tensor it reads.
    pub input: TensorInfo,
    /// The tensor it writes.
    pub output: TensorInfo,
    pub(crate) input_end: End,
    pub(crate) output_end: End,
    pub(crate) input_bytes: usize,
    pub(crate) output_bytes: usize,
}

/// Result of prepare.
pub(crate) struct Plan<'a, const N: usize> {
    pub metadata: Metadata<'a>,
    pub input: TensorInfo,
    pub input_bytes: usize,
    pub layers: Vec<PlannedLayer<'a>, N>,
    pub embedding_bytes: usize,
    pub work_bytes: usize,
    pub arena_bytes: usize,
}

/// Validates and plans `body` into at most `N` layer slots (`DecodeTooManyLayers` beyond).
pub(crate) fn prepare<const N: usize>(body: Body<'_>) -> Result<Plan<'_, N>> {
    let meta = body.metadata;
    if body.layer_count() > N {
        return Err(Error::DecodeTooManyLayers);
    }
    let input = check_metadata(&meta, body.layer_count())?;
    let input_bytes = tensor_bytes(&input)?;
    let mut work = input_bytes;
    let mut layers = Vec::new();
    let mut current = input;
    let mut end = End::Low;
    for (i, layer) in body.layers().enumerate() {
        let layer = layer?;
        let index = i as u16; // i < MAX_LAYERS ≤ u16::MAX (checked by Body::read)
        let output = check_layer(&layer, &current, index)?;
        let in_place = matches!(layer, Layer::Relu | Layer::Flatten);
        let (in_b, out_b) = (tensor_bytes(&current)?, tensor_bytes(&output)?);
        let need = if in_place {
            in_b
        } else {
            in_b.checked_add(out_b).ok_or(Error::ModelSizeOverflow)?
        };
        work = work.max(need);
        let output_end = if in_place { end } else { end.other() };
        let planned = PlannedLayer {
            layer,
            input: current,
            output,
            input_end: end,
            output_end,
            input_bytes: in_b,
            output_bytes: out_b,
        };
        layers
            .push(planned)
            .map_err(|_| Error::DecodeTooManyLayers)?;
        current = output;
        end = output_end;
    }
    if current.shape.numel() != Some(meta.num_classes as usize) {
        return Err(Error::ModelBadNumClasses);
    }
    let last = layers.len() - 1; // nonempty: checked in check_metadata
    let emb = usize::from(meta.embedding_layer);
    let embedding_bytes = match layers.get(emb) {
        Some(_) if emb == last => 0,
        Some(l) => l.output_bytes,
        None => return Err(Error::ModelBadEmbeddingLayer),
    };
    let arena_bytes = (ARENA_ALIGN - 1)
        .checked_add(embedding_bytes)
        .and_then(|n| n.checked_add(work))
        .ok_or(Error::ModelSizeOverflow)?;
    Ok(Plan {
        metadata: meta,
        input,
        input_bytes,
        layers,
        embedding_bytes,
        work_bytes: work,
        arena_bytes,
    })
}

/// Tensor size rounded up to the arena alignment.
fn tensor_bytes(t: &TensorInfo) -> Result<usize> {
    t.bytes().and_then(align_up).ok_or(Error::ModelSizeOverflow)
}

fn check_metadata(meta: &Metadata<'_>, n_layers: usize) -> Result<TensorInfo> {
    if n_layers == 0 {
        return Err(Error::ModelNoLayers);
    }
    let [c, h, w] = meta.input_shape.map(usize::from);
    if c == 0 || h == 0 || w == 0 {
        return Err(Error::ModelBadInputShape);
    }
    let norm_ok = |d: &F32Data<'_>, positive: bool| {
        d.is_whole() && d.len() == c && d.iter().all(|v| v.is_finite() && (!positive || v > 0.0))
    };
    if !norm_ok(&meta.input_mean, false) || !norm_ok(&meta.input_std, true) {
        return Err(Error::ModelBadNormalization);
    }
    let dtype = match (meta.precision, meta.input_quant) {
        (Precision::F32, None) => DType::F32,
        (Precision::Int8, Some(q)) if q.is_valid() => DType::I8(q),
        _ => return Err(Error::ModelBadInputQuant),
    };
    if usize::from(meta.embedding_layer) >= n_layers {
        return Err(Error::ModelBadEmbeddingLayer);
    }
    Ok(TensorInfo {
        shape: Shape::Chw { c, h, w },
        dtype,
    })
}

fn check_layer(layer: &Layer<'_>, input: &TensorInfo, layer_index: u16) -> Result<TensorInfo> {
    let shape_err = Error::ShapeMismatch { layer: layer_index };
    let want_f32 = || match input.dtype {
        DType::F32 => Ok(()),
        DType::I8(_) => Err(Error::LayerPrecisionMismatch { layer: layer_index }),
    };
    let want_i8 = || match input.dtype {
        DType::I8(q) => Ok(q.zero_point),
        DType::F32 => Err(Error::LayerPrecisionMismatch { layer: layer_index }),
    };
    let chw = || match input.shape {
        Shape::Chw { c, h, w } => Ok((c, h, w)),
        Shape::Flat { .. } => Err(shape_err),
    };
    let flat = || match input.shape {
        Shape::Flat { n } => Ok(n),
        Shape::Chw { .. } => Err(shape_err),
    };
    Ok(match layer {
        Layer::LinearF32(l) => {
            want_f32()?;
            check_linear_f32(l, flat()?, layer_index)?;
            TensorInfo {
                shape: Shape::Flat {
                    n: l.out_features as usize,
                },
                dtype: DType::F32,
            }
        }
        Layer::LinearS8(l) => {
            let zp_in = want_i8()?;
            check_linear_s8(l, flat()?, zp_in, layer_index)?;
            TensorInfo {
                shape: Shape::Flat {
                    n: l.out_features as usize,
                },
                dtype: DType::I8(l.output),
            }
        }
        Layer::Conv2dF32(l) => {
            want_f32()?;
            let (oh, ow) = check_conv_geometry(ConvGeometry::of_f32(l), chw()?, layer_index)?;
            let per_out = conv_per_out(l.in_channels, l.kernel)?;
            check_f32_params(
                l.weights,
                l.bias,
                usize::from(l.out_channels),
                per_out,
                layer_index,
            )?;
            TensorInfo {
                shape: Shape::Chw {
                    c: usize::from(l.out_channels),
                    h: oh,
                    w: ow,
                },
                dtype: DType::F32,
            }
        }
        Layer::Conv2dS8(l) => {
            let zp_in = want_i8()?;
            let (oh, ow) = check_conv_geometry(ConvGeometry::of_s8(l), chw()?, layer_index)?;
            let per_out = conv_per_out(l.in_channels, l.kernel)?;
            let q = S8Params {
                weights: l.weights,
                bias: l.bias,
                multiplier: l.multiplier,
                shift: l.shift,
                output: l.output,
            };
            check_s8_params(&q, usize::from(l.out_channels), per_out, zp_in, layer_index)?;
            TensorInfo {
                shape: Shape::Chw {
                    c: usize::from(l.out_channels),
                    h: oh,
                    w: ow,
                },
                dtype: DType::I8(l.output),
            }
        }
        Layer::Relu => *input,
        Layer::MaxPool2d(p) => {
            let (c, h, w) = chw()?;
            let (k, s) = (usize::from(p.kernel), usize::from(p.stride));
            if k == 0 || s == 0 {
                return Err(Error::LayerBadParam { layer: layer_index });
            }
            let oh = window_out_dim(h, k, s, 0).ok_or(shape_err)?;
            let ow = window_out_dim(w, k, s, 0).ok_or(shape_err)?;
            TensorInfo {
                shape: Shape::Chw { c, h: oh, w: ow },
                dtype: input.dtype,
            }
        }
        Layer::GlobalAvgPool => {
            let (c, h, w) = chw()?;
            if let DType::I8(_) = input.dtype {
                if h.checked_mul(w).is_none_or(|n| n > MAX_POOL_COUNT) {
                    return Err(Error::LayerAccumulatorOverflow { layer: layer_index });
                }
            }
            TensorInfo {
                shape: Shape::Chw { c, h: 1, w: 1 },
                dtype: input.dtype,
            }
        }
        Layer::Flatten => TensorInfo {
            shape: Shape::Flat {
                n: input.shape.numel().ok_or(Error::ModelSizeOverflow)?,
            },
            dtype: input.dtype,
        },
    })
}

fn check_linear_f32(l: &LinearF32<'_>, n_in: usize, layer: u16) -> Result<()> {
    let (i, o) = (l.in_features as usize, l.out_features as usize);
    if i == 0 || o == 0 {
        return Err(Error::LayerBadParam { layer });
    }
    if n_in != i {
        return Err(Error::ShapeMismatch { layer });
    }
    check_f32_params(l.weights, l.bias, o, i, layer)
}

fn check_linear_s8(l: &LinearS8<'_>, n_in: usize, zp_in: i8, layer: u16) -> Result<()> {
    let (i, o) = (l.in_features as usize, l.out_features as usize);
    if i == 0 || o == 0 {
        return Err(Error::LayerBadParam { layer });
    }
    if n_in != i {
        return Err(Error::ShapeMismatch { layer });
    }
    let q = S8Params {
        weights: l.weights,
        bias: l.bias,
        multiplier: l.multiplier,
        shift: l.shift,
        output: l.output,
    };
    check_s8_params(&q, o, i, zp_in, layer)
}

/// Weights per output channel of a convolution, `in_channels · k²` (checked: 65535³ overflows a
/// 32-bit `usize`).
fn conv_per_out(in_channels: u16, kernel: u16) -> Result<usize> {
    let k = usize::from(kernel);
    k.checked_mul(k)
        .and_then(|kk| kk.checked_mul(usize::from(in_channels)))
        .ok_or(Error::ModelSizeOverflow)
}

/// Geometry shared by the f32 and int8 convolutions.
struct ConvGeometry {
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl ConvGeometry {
    fn of_f32(l: &Conv2dF32<'_>) -> Self {
        Self {
            in_channels: l.in_channels.into(),
            out_channels: l.out_channels.into(),
            kernel: l.kernel.into(),
            stride: l.stride.into(),
            padding: l.padding.into(),
        }
    }
    fn of_s8(l: &Conv2dS8<'_>) -> Self {
        Self {
            in_channels: l.in_channels.into(),
            out_channels: l.out_channels.into(),
            kernel: l.kernel.into(),
            stride: l.stride.into(),
            padding: l.padding.into(),
        }
    }
}

fn check_conv_geometry(
    g: ConvGeometry,
    (c, h, w): (usize, usize, usize),
    layer: u16,
) -> Result<(usize, usize)> {
    if g.in_channels == 0
        || g.out_channels == 0
        || g.kernel == 0
        || g.stride == 0
        || g.padding >= g.kernel
    {
        return Err(Error::LayerBadParam { layer });
    }
    if c != g.in_channels {
        return Err(Error::ShapeMismatch { layer });
    }
    let oh =
        window_out_dim(h, g.kernel, g.stride, g.padding).ok_or(Error::ShapeMismatch { layer })?;
    let ow =
        window_out_dim(w, g.kernel, g.stride, g.padding).ok_or(Error::ShapeMismatch { layer })?;
    Ok((oh, ow))
}

/// f32 weights `[n_out][per_out]` and bias `[n_out]`: exact lengths, all finite.
fn check_f32_params(
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    n_out: usize,
    per_out: usize,
    layer: u16,
) -> Result<()> {
    let n_w = n_out.checked_mul(per_out).ok_or(Error::ModelSizeOverflow)?;
    if !weights.is_whole() || weights.len() != n_w || !bias.is_whole() || bias.len() != n_out {
        return Err(Error::LayerBadTensorLength { layer });
    }
    if !weights.iter().chain(bias.iter()).all(f32::is_finite) {
        return Err(Error::LayerNonFiniteWeight { layer });
    }
    Ok(())
}

/// The int8 tensors of a Linear or Conv2d layer.
struct S8Params<'a> {
    weights: I8Data<'a>,
    bias: I32Data<'a>,
    multiplier: I32Data<'a>,
    shift: I8Data<'a>,
    output: crate::tensor::QuantParams,
}

/// int8 weights `[n_out][per_out]`, bias/multiplier/shift `[n_out]`: exact lengths, valid
/// output quantization, multipliers in range, and for each output channel the accumulator
/// `b + Σ w·(x − zp_in)` stays inside i32 for every int8 input `x` — and, when the channel's
/// shift is positive, inside `i32::MAX >> shift` so the left shift of requantization is exact.
fn check_s8_params(
    p: &S8Params<'_>,
    n_out: usize,
    per_out: usize,
    zp_in: i8,
    layer: u16,
) -> Result<()> {
    let n_w = n_out.checked_mul(per_out).ok_or(Error::ModelSizeOverflow)?;
    if p.weights.len() != n_w
        || !p.bias.is_whole()
        || p.bias.len() != n_out
        || !p.multiplier.is_whole()
        || p.multiplier.len() != n_out
        || p.shift.len() != n_out
    {
        return Err(Error::LayerBadTensorLength { layer });
    }
    if !p.output.is_valid() {
        return Err(Error::LayerBadQuant { layer });
    }
    let d_min = -128 - i64::from(zp_in);
    let d_max = 127 - i64::from(zp_in);
    let rows = p.weights.as_bytes().chunks_exact(per_out);
    let per_channel = p.bias.iter().zip(p.multiplier.iter()).zip(p.shift.iter());
    for (row, ((bias, multiplier), shift)) in rows.zip(per_channel) {
        if !multiplier_is_valid(multiplier, i32::from(shift)) {
            return Err(Error::LayerBadMultiplier { layer });
        }
        let (mut lo, mut hi) = (i64::from(bias), i64::from(bias));
        for &w in row {
            let w = i64::from(w as i8);
            let (a, b) = (w * d_min, w * d_max);
            lo = lo.saturating_add(a.min(b));
            hi = hi.saturating_add(a.max(b));
        }
        let limit = i64::from(i32::MAX >> shift.max(0));
        if hi > limit || lo < -limit - 1 {
            return Err(Error::LayerAccumulatorOverflow { layer });
        }
    }
    Ok(())
}
