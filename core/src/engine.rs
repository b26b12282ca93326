//! The engine: a validated model ([`Model::from_bytes`]) and its evaluation ([`Model::run`]).
//!
//! Prepare/eval split as in tflite-micro: `from_bytes` decodes and checks everything and plans the
//! arena; `run` only dispatches to kernels. The model borrows the file bytes (which may live in
//! flash) and the caller owns the arena; both must outlive the returned outputs.

use heapless::Vec;

use crate::arena::{aligned, f32s_mut, i8s_mut};
use crate::error::{Error, Result};
use crate::format::{Body, MAX_LAYERS};
use crate::kernels::params::{ConvParams, LinearParams, PerChannelQuant, PoolParams, Window};
use crate::kernels::{self, Chw};
use crate::layer::{Layer, LayerKind, MaxPool2d};
use crate::metadata::Metadata;
use crate::plan::{prepare, End, PlannedLayer, TensorInfo};
use crate::tensor::{
    Activation, DType, I32Data, I8Data, QuantParams, Shape, TensorData, TensorView,
};

/// A validated model, ready to run. Borrows the model file bytes.
///
/// `N` is the number of layer slots held inline (default [`MAX_LAYERS`]); each slot is about
/// 125 bytes on a 32-bit target, so firmware running small models can use e.g.
/// `Model::<'_, 16>::from_bytes_with_capacity(bytes)` to keep the `Model` value small.
#[derive(Debug, Clone)]
pub struct Model<'a, const N: usize = MAX_LAYERS> {
    metadata: Metadata<'a>,
    input: TensorInfo,
    input_bytes: usize,
    layers: Vec<PlannedLayer<'a>, N>,
    embedding_bytes: usize,
    work_bytes: usize,
    arena_bytes: usize,
}

/// What [`Model::run`] returns: the logits (last layer's output) and the embedding (the output of
/// `metadata().embedding_layer`), both borrowed from the arena.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outputs<'r> {
    /// Output of the last layer (`num_classes` values).
    pub logits: TensorView<'r>,
    /// Output of the embedding layer.
    pub embedding: TensorView<'r>,
}

impl<'a> Model<'a> {
    /// Decodes and validates a model file (see `docs/model-format.md`) and plans its arena.
    /// Zero-copy: the model borrows `bytes`. Every check happens here; see [`Error`] for what is
    /// rejected. Room for [`MAX_LAYERS`] layers.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        Self::from_bytes_with_capacity(bytes)
    }
}

impl<'a, const N: usize> Model<'a, N> {
    /// [`Model::from_bytes`] with room for `N` layers: a model with more layers is rejected with
    /// [`Error::DecodeTooManyLayers`]. `N` above [`MAX_LAYERS`] gains nothing (the format limit).
    pub fn from_bytes_with_capacity(bytes: &'a [u8]) -> Result<Self> {
        let plan = prepare::<N>(Body::read(bytes)?)?;
        Ok(Self {
            metadata: plan.metadata,
            input: plan.input,
            input_bytes: plan.input_bytes,
            layers: plan.layers,
            embedding_bytes: plan.embedding_bytes,
            work_bytes: plan.work_bytes,
            arena_bytes: plan.arena_bytes,
        })
    }

    /// Model metadata (name, input shape, classes, embedding layer, normalization, precision).
    pub fn metadata(&self) -> &Metadata<'a> {
        &self.metadata
    }

    /// The arena size [`Model::run`] needs, in bytes, for an arena of *any* alignment
    /// (it includes up to 3 bytes of alignment slack).
    pub fn arena_size(&self) -> usize {
        self.arena_bytes
    }

    /// Number of values [`Model::run`] expects: C·H·W.
    pub fn input_len(&self) -> usize {
        let [c, h, w] = self.metadata.input_shape.map(usize::from);
        c * h * w
    }

    /// The tensor the first layer reads (normalized and, for int8, quantized input).
    pub fn input_info(&self) -> TensorInfo {
        self.input
    }

    /// The validated layers, in execution order, with their input and output tensors.
    pub fn layers(&self) -> &[PlannedLayer<'a>] {
        &self.layers
    }

    /// Runs the model on one raw input (`C·H·W` values, CHW order, e.g. pixels in [0, 1]).
    ///
    /// The core normalizes `x̂ = (x − mean[c]) / std[c]` and, for int8 models, quantizes
    /// `q = clamp(round(x̂ / s) + zp, −128, 127)` itself. No allocation; the outputs borrow `arena`,
    /// which must hold at least [`Model::arena_size`] bytes.
    pub fn run<'r>(&self, input: &[f32], arena: &'r mut [u8]) -> Result<Outputs<'r>> {
        self.run_with(input, arena, |_, _| {})
    }

    /// [`Model::run`], calling `after_layer(index, kind)` right after each layer has written its
    /// output (input normalization happens before layer 0). Firmware uses it to count cycles or
    /// instructions per layer: read a counter before `run_with` and in each call.
    pub fn run_with<'r, F>(
        &self,
        input: &[f32],
        arena: &'r mut [u8],
        mut after_layer: F,
    ) -> Result<Outputs<'r>>
    where
        F: FnMut(usize, LayerKind),
    {
        if input.len() != self.input_len() {
            return Err(Error::RunBadInputLength);
        }
        let usable = self.embedding_bytes + self.work_bytes;
        let arena = aligned(arena, usable)?;
        let (emb_region, work) = arena.split_at_mut(self.embedding_bytes);
        self.write_input(input, work)?;
        let last = self.layers.len().saturating_sub(1);
        let emb_index = usize::from(self.metadata.embedding_layer);
        for (index, planned) in self.layers.iter().enumerate() {
            self.eval(planned, work)?;
            if index == emb_index && index != last {
                let src = region(work, planned.output_end, planned.output_bytes)?;
                emb_region.copy_from_slice(src);
            }
            after_layer(index, planned.layer.kind());
        }
        let last_layer = self.layers.last().ok_or(Error::ModelNoLayers)?;
        let logits_bytes = region_mut(work, last_layer.output_end, last_layer.output_bytes)?;
        let logits = view(last_layer.output, logits_bytes)?;
        let embedding = if emb_index == last {
            logits
        } else {
            let info = self
                .layers
                .get(emb_index)
                .ok_or(Error::ModelBadEmbeddingLayer)?
                .output;
            view(info, emb_region)?
        };
        Ok(Outputs { logits, embedding })
    }

    /// Normalizes (and for int8 quantizes) the raw input into the low end of the work region.
    fn write_input(&self, input: &[f32], work: &mut [u8]) -> Result<()> {
        let bytes = region_mut(work, End::Low, self.input_bytes)?;
        let [_, h, w] = self.metadata.input_shape.map(usize::from);
        let hw = h * w;
        let norm = self
            .metadata
            .input_mean
            .iter()
            .zip(self.metadata.input_std.iter());
        match self.input.dtype {
            DType::F32 => {
                let out = f32s_mut(bytes)?;
                for ((o_plane, x_plane), (mean, std)) in
                    out.chunks_mut(hw).zip(input.chunks(hw)).zip(norm)
                {
                    for (o, &x) in o_plane.iter_mut().zip(x_plane) {
                        *o = (x - mean) / std;
                    }
                }
            }
            DType::I8(q) => {
                let out = i8s_mut(bytes);
                for ((o_plane, x_plane), (mean, std)) in
                    out.chunks_mut(hw).zip(input.chunks(hw)).zip(norm)
                {
                    kernels::normalize_quantize(x_plane, mean, std, q, o_plane);
                }
            }
        }
        Ok(())
    }

    /// Runs one layer, reading and writing the work region as planned.
    fn eval(&self, p: &PlannedLayer<'a>, work: &mut [u8]) -> Result<()> {
        if p.input_end == p.output_end {
            let data = region_mut(work, p.input_end, p.input_bytes)?;
            return match (p.layer, p.input.dtype) {
                (Layer::Relu, DType::F32) => {
                    kernels::relu_f32(f32s_mut(data)?);
                    Ok(())
                }
                (Layer::Relu, DType::I8(q)) => {
                    kernels::relu_s8(i8s_mut(data), q.zero_point);
                    Ok(())
                }
                (Layer::Flatten, _) => Ok(()),
                _ => Err(Error::KernelBadArguments),
            };
        }
        let (input, output) = split_in_out(work, p)?;
        let dims = match p.input.shape {
            Shape::Chw { c, h, w } => Chw { c, h, w },
            Shape::Flat { n } => Chw { c: n, h: 1, w: 1 },
        };
        let in_n = p.input.shape.numel().ok_or(Error::ModelSizeOverflow)?;
        let out_n = p.output.shape.numel().ok_or(Error::ModelSizeOverflow)?;
        match (p.layer, p.input.dtype) {
            (Layer::LinearF32(l), DType::F32) => kernels::linear_f32(
                &linear_params(l.in_features, l.out_features, l.activation),
                f32s(input, in_n)?,
                l.weights,
                l.bias,
                f32s_n(output, out_n)?,
            ),
            (Layer::LinearS8(l), DType::I8(q)) => kernels::linear_s8(
                &linear_params(l.in_features, l.out_features, l.activation),
                &per_channel_quant(q, l.output, l.multiplier, l.shift),
                i8s(input, in_n)?,
                l.weights,
                l.bias,
                i8s_n(output, out_n)?,
            ),
            (Layer::Conv2dF32(l), DType::F32) => kernels::conv2d_f32(
                &conv_params(
                    dims,
                    l.out_channels,
                    (l.kernel, l.stride, l.padding),
                    l.activation,
                ),
                f32s(input, in_n)?,
                l.weights,
                l.bias,
                f32s_n(output, out_n)?,
            ),
            (Layer::Conv2dS8(l), DType::I8(q)) => kernels::conv2d_s8(
                &conv_params(
                    dims,
                    l.out_channels,
                    (l.kernel, l.stride, l.padding),
                    l.activation,
                ),
                &per_channel_quant(q, l.output, l.multiplier, l.shift),
                i8s(input, in_n)?,
                l.weights,
                l.bias,
                i8s_n(output, out_n)?,
            ),
            (Layer::MaxPool2d(m), DType::F32) => kernels::maxpool2d_f32(
                &pool_params(dims, m),
                f32s(input, in_n)?,
                f32s_n(output, out_n)?,
            ),
            (Layer::MaxPool2d(m), DType::I8(_)) => kernels::maxpool2d_s8(
                &pool_params(dims, m),
                i8s(input, in_n)?,
                i8s_n(output, out_n)?,
            ),
            (Layer::GlobalAvgPool, DType::F32) => {
                kernels::global_avg_pool_f32(f32s(input, in_n)?, dims, f32s_n(output, out_n)?)
            }
            (Layer::GlobalAvgPool, DType::I8(_)) => {
                kernels::global_avg_pool_s8(i8s(input, in_n)?, dims, i8s_n(output, out_n)?)
            }
            _ => Err(Error::KernelBadArguments),
        }
    }
}

/// Kernel parameters of a model-file Linear layer (one row: the planner flattens its input).
fn linear_params(in_features: u32, out_features: u32, activation: Activation) -> LinearParams {
    LinearParams {
        rows: 1,
        in_features: in_features as usize,
        out_features: out_features as usize,
        activation,
    }
}

/// Kernel parameters of a model-file Conv2d layer: a square `k × k` window, stride `s`, padding
/// `p` on every side, over the input `dims`.
fn conv_params(
    dims: Chw,
    out_channels: u16,
    (k, s, p): (u16, u16, u16),
    activation: Activation,
) -> ConvParams {
    ConvParams {
        in_channels: dims.c,
        h: dims.h,
        w: dims.w,
        out_channels: usize::from(out_channels),
        window: Window::square(usize::from(k), usize::from(s), usize::from(p)),
        activation,
    }
}

/// Kernel parameters of a model-file MaxPool2d layer (square window, no padding).
fn pool_params(dims: Chw, m: MaxPool2d) -> PoolParams {
    PoolParams {
        channels: dims.c,
        h: dims.h,
        w: dims.w,
        window: Window::square(usize::from(m.kernel), usize::from(m.stride), 0),
    }
}

/// The requantization of an int8 layer whose input has quantization `input`.
fn per_channel_quant<'m>(
    input: QuantParams,
    output: QuantParams,
    multiplier: I32Data<'m>,
    shift: I8Data<'m>,
) -> PerChannelQuant<'m> {
    PerChannelQuant {
        input_zp: input.zero_point,
        output,
        multiplier,
        shift,
    }
}

/// The bytes of a tensor of `len` (aligned) bytes placed at `end` of the work region.
fn region(work: &[u8], end: End, len: usize) -> Result<&[u8]> {
    let start = match end {
        End::Low => 0,
        End::High => work.len().checked_sub(len).ok_or(Error::ArenaTooSmall)?,
    };
    work.get(start..start + len).ok_or(Error::ArenaTooSmall)
}

fn region_mut(work: &mut [u8], end: End, len: usize) -> Result<&mut [u8]> {
    let start = match end {
        End::Low => 0,
        End::High => work.len().checked_sub(len).ok_or(Error::ArenaTooSmall)?,
    };
    work.get_mut(start..start + len).ok_or(Error::ArenaTooSmall)
}

/// Splits the work region into a layer's input (read) and output (written) tensors, which sit at
/// opposite ends and never overlap (the planner sized the region for that).
fn split_in_out<'w>(
    work: &'w mut [u8],
    p: &PlannedLayer<'_>,
) -> Result<(&'w mut [u8], &'w mut [u8])> {
    let high_len = match p.input_end {
        End::High => p.input_bytes,
        End::Low => p.output_bytes,
    };
    let mid = work
        .len()
        .checked_sub(high_len)
        .ok_or(Error::ArenaTooSmall)?;
    let (lo, hi) = work.split_at_mut(mid);
    let low_len = match p.input_end {
        End::Low => p.input_bytes,
        End::High => p.output_bytes,
    };
    let lo = lo.get_mut(..low_len).ok_or(Error::ArenaTooSmall)?;
    Ok(match p.input_end {
        End::Low => (lo, hi),
        End::High => (hi, lo),
    })
}

/// The first `n` f32 values of an aligned region, read-only.
fn f32s(bytes: &mut [u8], n: usize) -> Result<&[f32]> {
    Ok(&*f32s_n(bytes, n)?)
}

fn f32s_n(bytes: &mut [u8], n: usize) -> Result<&mut [f32]> {
    f32s_mut(bytes)?.get_mut(..n).ok_or(Error::ArenaTooSmall)
}

fn i8s(bytes: &mut [u8], n: usize) -> Result<&[i8]> {
    Ok(&*i8s_n(bytes, n)?)
}

fn i8s_n(bytes: &mut [u8], n: usize) -> Result<&mut [i8]> {
    i8s_mut(bytes).get_mut(..n).ok_or(Error::ArenaTooSmall)
}

/// A read-only view of a finished tensor.
fn view(info: TensorInfo, bytes: &mut [u8]) -> Result<TensorView<'_>> {
    let n = info.shape.numel().ok_or(Error::ModelSizeOverflow)?;
    let data = match info.dtype {
        DType::F32 => TensorData::F32(f32s(bytes, n)?),
        DType::I8(quant) => TensorData::I8 {
            values: i8s(bytes, n)?,
            quant,
        },
    };
    Ok(TensorView {
        shape: info.shape,
        data,
    })
}
