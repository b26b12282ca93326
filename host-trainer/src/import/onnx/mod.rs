//! `denoiserep import MODEL.onnx`: a model exported with `torch.onnx.export` (opset 13–18, or by
//! `denoiserep export --format onnx`) read into a trainer [`Model`] of the architecture its
//! graph has.
//!
//! A graph with transformer ops (LayerNorm, Softmax, GELU) is a ViT: [`vit`] maps its weights
//! and checks the mapping against the reference evaluator [`eval`]. Otherwise
//! [`graph`] decodes the file with the exporter's prost structs ([`crate::export::onnx::proto`])
//! into a few ops with their constants resolved; [`mapping`] infers the arch spec, walks the
//! arch's nodes and the ops together and collects the `state_dict`; [`read`] loads it into a
//! model through the same [`Model::load_backbone`] as every other checkpoint (so each shape is
//! checked twice: against the op while matching, against the model while loading).

pub mod eval;
pub mod vit;

pub use crate::interop::onnx::{graph, mapping};

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use prost::Message;
use tch::{Device, Tensor};

use crate::export::onnx::proto::ModelProto;

use crate::data::Normalization;
use crate::model::Model;

/// The model of an ONNX file and the input normalization its graph applies (`None`: it has no
/// leading `Sub`/`Div`; the model then holds mean 0, std 1).
pub struct OnnxImport {
    pub model: Model,
    pub normalization: Option<Normalization>,
}

/// Reads `path` (see the module doc). Errors start with the file's name; a node that does not
/// fit is named with its op type.
pub fn read(path: &Path, device: Device) -> Result<OnnxImport> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    from_bytes(&bytes, device).with_context(|| path.display().to_string())
}

/// [`read`] on a file's bytes: a graph with transformer ops ([`vit::MARKERS`]) goes to
/// [`vit::read`], any other to the CNN/MLP mapping.
pub fn from_bytes(bytes: &[u8], device: Device) -> Result<OnnxImport> {
    let proto =
        ModelProto::decode(bytes).context("not an ONNX model (protobuf decoding failed)")?;
    let transformer = proto.graph.as_ref().is_some_and(|g| {
        g.node
            .iter()
            .any(|n| vit::MARKERS.contains(&n.op_type.as_deref().unwrap_or("")))
    });
    if transformer {
        return vit::read(&proto, device);
    }
    let g = graph::from_model(&proto)?;
    let m = mapping::map(&g)?;
    let c = m.arch.input_shape[0];
    let identity = Normalization {
        mean: vec![0.0; c],
        std: vec![1.0; c],
    };
    let norm = m.normalization.clone().unwrap_or(identity);
    let mut model = Model::new(m.arch, norm, device);
    let mut tensors: HashMap<String, Tensor> = m
        .tensors
        .into_iter()
        .map(|(name, p)| {
            let dims: Vec<i64> = p.dims.iter().map(|&d| d as i64).collect();
            (name, Tensor::from_slice(&p.data).reshape(dims))
        })
        .collect();
    // ONNX has no batch counter: the model's own (0) is kept.
    for (name, t) in model.backbone_buffers() {
        if name.ends_with(".num_batches_tracked") {
            tensors.insert(name, t.copy());
        }
    }
    model.load_backbone(&tensors, "the ONNX initializers")?;
    Ok(OnnxImport {
        model,
        normalization: m.normalization,
    })
}
