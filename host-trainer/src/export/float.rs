//! f32 export: the fused weights as they are, the input normalization stored as metadata
//! (the core applies `(x − mean[c]) / std[c]` itself, in f32, exactly as the trainer does).

use anyhow::{bail, Result};
use denoiserep_core::{Activation, Conv2dF32, F32Data, Layer, LinearF32, MaxPool2d, Precision};

use crate::export::file::{f32_bytes, ModelFile, OwnedLayer};
use crate::export::fused::{FusedLayer, FusedModel};
use crate::export::lower::{describe_step, lower, Step};

/// The f32 model file of `model` (ReLUs fused, see [`crate::export::lower`]).
pub fn to_f32(model: &FusedModel) -> Result<ModelFile> {
    let lowering = lower(model);
    let layers = lowering
        .steps
        .iter()
        .map(|step| layer_f32(model, step))
        .collect::<Result<Vec<_>>>()?;
    skeleton(model, lowering.embedding, Precision::F32, None, layers)
}

fn layer_f32(model: &FusedModel, step: &Step) -> Result<OwnedLayer> {
    let source = describe_step(model, step);
    let activation = if step.relu {
        Activation::Relu
    } else {
        Activation::None
    };
    let (template, weight, bias) = match &model.layers[step.layer] {
        FusedLayer::Linear {
            in_features,
            out_features,
            weight,
            bias,
        } => (
            Layer::LinearF32(LinearF32 {
                in_features: to_u32(*in_features, &source)?,
                out_features: to_u32(*out_features, &source)?,
                activation,
                weights: F32Data::default(),
                bias: F32Data::default(),
            }),
            weight,
            bias,
        ),
        FusedLayer::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            weight,
            bias,
        } => (
            Layer::Conv2dF32(Conv2dF32 {
                in_channels: to_u16(*in_channels, &source)?,
                out_channels: to_u16(*out_channels, &source)?,
                kernel: to_u16(*kernel, &source)?,
                stride: to_u16(*stride, &source)?,
                padding: to_u16(*padding, &source)?,
                activation,
                weights: F32Data::default(),
                bias: F32Data::default(),
            }),
            weight,
            bias,
        ),
        other => return Ok(OwnedLayer::plain(structural(other, &source)?, source)),
    };
    Ok(OwnedLayer {
        template,
        weights: f32_bytes(weight),
        bias: f32_bytes(bias),
        multiplier: Vec::new(),
        shift: Vec::new(),
        source,
    })
}

/// The core layer of a layer without weights (the same in f32 and int8).
pub(crate) fn structural(layer: &FusedLayer, source: &str) -> Result<Layer<'static>> {
    Ok(match *layer {
        FusedLayer::Relu => Layer::Relu,
        FusedLayer::Flatten => Layer::Flatten,
        FusedLayer::MaxPool2d { kernel, stride } => Layer::MaxPool2d(MaxPool2d {
            kernel: to_u16(kernel, source)?,
            stride: to_u16(stride, source)?,
        }),
        FusedLayer::Linear { .. } | FusedLayer::Conv2d { .. } => {
            bail!("{source}: weighted layer passed as structural (a bug)")
        }
    })
}

/// The model file around `layers`: metadata from `model` (name = arch string, so a model and its
/// baseline have names of equal length).
pub(crate) fn skeleton(
    model: &FusedModel,
    embedding: usize,
    precision: Precision,
    input_quant: Option<denoiserep_core::QuantParams>,
    layers: Vec<OwnedLayer>,
) -> Result<ModelFile> {
    let shape = model.input_shape;
    let mut input_shape = [0u16; 3];
    for (dst, &d) in input_shape.iter_mut().zip(&shape) {
        *dst = to_u16(d, "the input shape")?;
    }
    Ok(ModelFile {
        name: model.arch.clone(),
        input_shape,
        num_classes: to_u32(model.num_classes, "the class count")?,
        embedding_layer: to_u16(embedding, "the embedding layer index")?,
        input_mean: f32_bytes(&model.normalization.mean),
        input_std: f32_bytes(&model.normalization.std),
        precision,
        input_quant,
        layers,
    })
}

pub(crate) fn to_u16(v: usize, what: &str) -> Result<u16> {
    u16::try_from(v)
        .map_err(|_| anyhow::anyhow!("{what}: {v} does not fit the model format (at most 65535)"))
}

pub(crate) fn to_u32(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        anyhow::anyhow!("{what}: {v} does not fit the model format (at most 4294967295)")
    })
}
