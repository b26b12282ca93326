//! `denoiserep export --format tflite`: the lowered core graph as a TFLite flatbuffer (schema v3,
//! `docs/export.md`, "TFLite"), f32 or int8. The int8 model uses the very numbers of the core's
//! int8 export ([`Int8Plan`]: per-tensor activation quantization, per-channel int8 weights and
//! scales, int32 biases); TFLite-Micro derives the requantization multipliers from the stored
//! float scales in its Prepare exactly as [`crate::export::int8`] does (f64
//! `s_in·s_w[c]/s_out` → `QuantizeMultiplier`, CONV_2D, DEPTHWISE_CONV_2D and per-channel
//! FULLY_CONNECTED alike), so its outputs equal the core's bit for bit
//! (`tests/tests/tflite_export.rs`).
//!
//! | core op | TFLite |
//! |---|---|
//! | Linear | FULLY_CONNECTED `[out, in]` (columns permuted to HWC after a flatten of `[C][H][W]`) |
//! | Conv2d | (PAD →) CONV_2D, weights OHWI, padding SAME / VALID |
//! | DepthwiseConv2d | (PAD →) DEPTHWISE_CONV_2D, weights `[1, kh, kw, C]`, multiplier 1 |
//! | Add | ADD |
//! | MaxPool2d, AvgPool2d | MAX_POOL_2D, AVERAGE_POOL_2D (SAME / VALID only) |
//! | Mean (global average) | AVERAGE_POOL_2D over `H×W` → RESHAPE `[1, C]` |
//! | Reshape (flatten) | RESHAPE `[1, C·H·W]` (HWC order) |
//! | Activation ReLU / ReLU6 | RELU / RELU6; fused ones in the op's options |
//! | Softmax | SOFTMAX |
//!
//! With a float interface ([`to_tflite_int8_float_io`], `--tflite-io float`) an int8 model
//! takes and gives float32 as TFLiteConverter's default int8 models do: QUANTIZE(float input →
//! the int8 input) first, DEQUANTIZE(each int8 output → float) last; TFLite-Micro's QUANTIZE and
//! DEQUANTIZE compute exactly the core's input quantization and output dequantization
//! (`docs/interop.md`, "Float interface").
//!
//! Activations are NHWC: the input is `[1, H, W, C]` for a `[C][H][W]` model input, vectors are
//! `[1, n]`. The input normalization `(x − mean[c]) / std[c]` is not part of the graph: the user
//! feeds normalized values (int8: `quantize((x − mean) / std)` with the input tensor's
//! quantization); mean and std are in the description and the `denoiserep` metadata (JSON).
//! Ops without an exact TFLite builtin (the ViT's LayerNorm, GELU, BatchMatMul, Transpose,
//! Concat, Slice, MeanAxis) are refused, naming the op.

mod graph;
pub mod layout;
mod ops;

use anyhow::Result;
use denoiserep_tflite_schema::tflite::{BuiltinOperator, TensorType};
use serde::Serialize;

pub use graph::deprecated_code;
pub use ops::Numbers;

use crate::export::int8::Int8Plan;
use crate::export::lower::{CoreGraph, CoreNode};
use ops::Converter;

/// The name of the model's metadata entry (JSON, [`TfliteMetadata`]).
pub const METADATA_NAME: &str = "denoiserep";

/// What the `denoiserep` metadata entry of an exported `.tflite` holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TfliteMetadata {
    pub producer: String,
    pub arch: String,
    /// `f32` or `int8`.
    pub precision: String,
    /// `NHWC`.
    pub input_layout: String,
    /// Per-channel input normalization the graph does not contain: feed `(x − mean) / std`.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// int8: the input tensor's `(scale, zero_point)`.
    pub input_scale: Option<f32>,
    pub input_zero_point: Option<i8>,
    /// The tensors the model takes and gives: `f32`, `int8`, or `float` (an int8 model with
    /// QUANTIZE / DEQUANTIZE at its edges).
    pub interface: String,
}

/// The TFLite flatbuffer of the lowered graph `g`: f32 ([`Numbers::F32`]) or int8 with `plan`
/// ([`Numbers::Int8`], the plan of [`crate::export::int8::to_int8_planned`]). Outputs: the
/// logits, then the embedding when it is another tensor.
pub fn to_tflite(g: &CoreGraph, numbers: Numbers<'_>) -> Result<Vec<u8>> {
    build(g, numbers, false)
}

/// [`to_tflite`] in int8 with `plan` and a float interface (see the module doc).
pub fn to_tflite_int8_float_io(g: &CoreGraph, plan: &Int8Plan) -> Result<Vec<u8>> {
    build(g, Numbers::Int8(plan), true)
}

fn build(g: &CoreGraph, numbers: Numbers<'_>, float_io: bool) -> Result<Vec<u8>> {
    let mut c = Converter::new(g, numbers);
    // Refuse a model with ops TFLite cannot compute before building anything, naming the first
    // and the kinds of all of them.
    let missing: Vec<(usize, &CoreNode)> = g
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !ops::has_builtin(&n.op))
        .collect();
    if let Some(&(index, node)) = missing.first() {
        let mut kinds: Vec<&str> = Vec::new();
        for (_, n) in &missing {
            if !kinds.contains(&n.op.kind()) {
                kinds.push(n.op.kind());
            }
        }
        let refusal = c.refuse(index, node, ops::NO_BUILTIN);
        anyhow::bail!(
            "{refusal}; {} of its {} ops have none ({}): export it as dnrp (or, in f32, as ONNX)",
            missing.len(),
            g.nodes.len(),
            kinds.join(", ")
        );
    }
    let mut input = c.input()?;
    if float_io {
        let f = c.graph.tensor(
            "input_f32".into(),
            c.graph.shape(input),
            TensorType::Float32,
            None,
            None,
        )?;
        c.graph
            .op(BuiltinOperator::Quantize, 1, vec![f], vec![input], None)?;
        input = f;
    }
    for (index, node) in g.nodes.iter().enumerate() {
        c.node(index, node)?;
    }
    let last = g
        .nodes
        .last()
        .ok_or_else(|| anyhow::anyhow!("{}: the model has no ops", g.name))?;
    let mut outputs = vec![c.tensor(g.logits, last)?.0];
    if g.embedding != g.logits {
        outputs.push(c.tensor(g.embedding, last)?.0);
    }
    if float_io {
        for (k, o) in outputs.iter_mut().enumerate() {
            let f = c.graph.tensor(
                format!("output{k}_f32"),
                c.graph.shape(*o),
                TensorType::Float32,
                None,
                None,
            )?;
            c.graph
                .op(BuiltinOperator::Dequantize, 2, vec![*o], vec![f], None)?;
            *o = f;
        }
    }
    let input_quant = match numbers {
        Numbers::F32 => None,
        Numbers::Int8(plan) => Some(plan.tensor(0, "the model input")?),
    };
    let meta = TfliteMetadata {
        producer: format!("denoiserep {}", env!("CARGO_PKG_VERSION")),
        arch: g.name.clone(),
        precision: if input_quant.is_some() { "int8" } else { "f32" }.into(),
        input_layout: "NHWC".into(),
        mean: g.mean.clone(),
        std: g.std.clone(),
        input_scale: input_quant.map(|q| q.scale),
        input_zero_point: input_quant.map(|q| q.zero_point),
        interface: match (input_quant, float_io) {
            (None, _) => "f32",
            (Some(_), false) => "int8",
            (Some(_), true) => "float",
        }
        .into(),
    };
    let feed = match input_quant {
        Some(q) if float_io => format!(
            "(x - mean[c]) / std[c] as float32 (the model quantizes it with scale {:e}, zero \
             point {}, and dequantizes its outputs)",
            q.scale, q.zero_point
        ),
        Some(q) => format!(
            "quantize((x - mean[c]) / std[c]) with scale {:e}, zero point {}",
            q.scale, q.zero_point
        ),
        None => "(x - mean[c]) / std[c]".into(),
    };
    let description = format!(
        "{} {} {}: input NHWC, feed {feed}; mean {:?}, std {:?}",
        meta.producer, meta.arch, meta.precision, meta.mean, meta.std
    );
    let json = serde_json::to_vec(&meta)?;
    c.graph.finish(
        vec![input],
        outputs,
        description,
        vec![(METADATA_NAME.into(), json)],
    )
}

/// [`to_tflite`] in int8 with `plan`.
pub fn to_tflite_int8(g: &CoreGraph, plan: &Int8Plan) -> Result<Vec<u8>> {
    to_tflite(g, Numbers::Int8(plan))
}
