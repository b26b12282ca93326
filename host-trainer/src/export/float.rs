//! f32 export: the lowered graph's weights and constants (class token, position embeddings,
//! LayerNorm `γ`, `β`) as they are, the input normalization stored in the model info (the core
//! applies `(x − mean[c]) / std[c]` itself, in f32, exactly as the trainer).

use anyhow::Result;
use denoiserep_core::DType;

use crate::export::file::{
    f32_bytes, shape, ModelFile, OwnedNode, OwnedOp, OwnedTensor, OwnedWeights,
};
use crate::export::fused::FusedModel;
use crate::export::lower::{lower, CoreGraph, CoreOp};

/// The f32 model file of `model` (activations fused, see [`crate::export::lower`]).
pub fn to_f32(model: &FusedModel) -> Result<ModelFile> {
    graph_f32(&lower(model)?)
}

/// The f32 model file of a lowered graph.
pub fn graph_f32(g: &CoreGraph) -> Result<ModelFile> {
    let tensors = g
        .shapes
        .iter()
        .zip(&g.constants)
        .enumerate()
        .map(|(i, (dims, values))| {
            Ok(OwnedTensor {
                shape: shape(dims, &format!("tensor {i}"))?,
                dtype: DType::F32,
                data: values.as_deref().map(f32_bytes),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let f32w = |weight: &[f32], bias: &[f32]| OwnedWeights::F32 {
        weights: f32_bytes(weight),
        bias: f32_bytes(bias),
    };
    let nodes = g
        .nodes
        .iter()
        .map(|n| OwnedNode {
            op: match &n.op {
                CoreOp::Linear {
                    activation,
                    weight,
                    bias,
                    ..
                } => OwnedOp::Linear {
                    activation: *activation,
                    weights: f32w(weight, bias),
                },
                CoreOp::Conv2d {
                    window,
                    activation,
                    weight,
                    bias,
                    ..
                } => OwnedOp::Conv2d {
                    window: *window,
                    activation: *activation,
                    weights: f32w(weight, bias),
                },
                CoreOp::DepthwiseConv2d {
                    window,
                    activation,
                    weight,
                    bias,
                } => OwnedOp::DepthwiseConv2d {
                    window: *window,
                    activation: *activation,
                    weights: f32w(weight, bias),
                },
                CoreOp::LayerNorm { eps } => OwnedOp::LayerNorm { eps: *eps },
                CoreOp::Gelu => OwnedOp::Gelu,
                op => structural(op),
            },
            inputs: n.inputs.clone(),
            output: n.output,
            source: n.source.clone(),
        })
        .collect();
    Ok(skeleton(g, tensors, nodes))
}

/// The core op of an op whose f32 and int8 forms are the same op (no weights, no f32-only
/// kernel).
pub(crate) fn structural(op: &CoreOp) -> OwnedOp {
    match op {
        CoreOp::Add { activation } => OwnedOp::Add {
            activation: *activation,
        },
        CoreOp::MaxPool2d { window } => OwnedOp::MaxPool2d { window: *window },
        CoreOp::AvgPool2d { window } => OwnedOp::AvgPool2d { window: *window },
        CoreOp::Mean => OwnedOp::Mean,
        CoreOp::Reshape => OwnedOp::Reshape,
        CoreOp::Activation { activation } => OwnedOp::Activation {
            activation: *activation,
        },
        CoreOp::Softmax { beta } => OwnedOp::Softmax { beta: *beta },
        CoreOp::BatchMatMul { adj_y, alpha } => OwnedOp::BatchMatMul {
            adj_y: *adj_y,
            alpha: *alpha,
        },
        CoreOp::Transpose { perm } => OwnedOp::Transpose { perm: perm.clone() },
        CoreOp::Concat { axis } => OwnedOp::Concat { axis: *axis },
        CoreOp::MeanAxis { axis } => OwnedOp::MeanAxis { axis: *axis },
        CoreOp::Slice { axis, start, len } => OwnedOp::Slice {
            axis: *axis,
            start: *start,
            len: *len,
        },
        CoreOp::Linear { .. }
        | CoreOp::Conv2d { .. }
        | CoreOp::DepthwiseConv2d { .. }
        | CoreOp::LayerNorm { .. }
        | CoreOp::Gelu => unreachable!("precision-specific ops are converted by the caller"),
    }
}

/// The model file around `tensors` and `nodes` (name = arch string, so a model and its baseline
/// have names of equal length).
pub(crate) fn skeleton(
    g: &CoreGraph,
    tensors: Vec<OwnedTensor>,
    nodes: Vec<OwnedNode>,
) -> ModelFile {
    ModelFile {
        name: g.name.clone(),
        input: 0,
        logits: g.logits,
        embedding: g.embedding,
        input_mean: f32_bytes(&g.mean),
        input_std: f32_bytes(&g.std),
        tensors,
        nodes,
    }
}
