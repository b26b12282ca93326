//! ONNX export of the fused f32 model (`denoiserep export --precision f32 --format onnx`).
//!
//! The graph computes exactly what the core's f32 model computes, node for node:
//!
//! ```text
//! input [N, C, H, W] (raw, e.g. pixels in [0, 1])
//!   Sub(input_mean [1, C, 1, 1]) → Div(input_std [1, C, 1, 1])      (x − mean[c]) / std[c]
//!   per trainer layer k:  Conv (k.weight [O, I, K, K], k.bias [O]; pads, strides)
//!                         Gemm (transB = 1; k.weight [out, in], k.bias [out])
//!                         Relu | MaxPool (kernel_shape, strides, no padding, floor) | Flatten (axis 1)
//!   → logits [N, classes], embedding [N, D]
//! ```
//!
//! `embedding` is the output of the same layer as the core's embedding ([`lower`]: the core
//! layer holding the trainer's embedding layer, a fused ReLU included). Tensor names follow the
//! trainer's `nn.Sequential` names (`3.weight`), so the file reads like the run's checkpoint.
//! Opset 13, IR version 8, producer `denoiserep`; the batch dimension is the symbol `N`.
//! The schema subset is in [`proto`].

pub mod proto;

use anyhow::{bail, Result};
use prost::Message;

use crate::export::file::f32_bytes;
use crate::export::fused::{FusedLayer, FusedModel};
use crate::export::lower::{describe, lower};
use proto::tensor_shape_proto::{dimension, Dimension};
use proto::{
    type_proto, AttributeProto, AttributeType, DataType, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// ONNX operator set the graph is written against (`ai.onnx`).
pub const OPSET: i64 = 13;
/// ONNX IR version of the file (IR 8 = ONNX 1.10+, reads opset 13).
pub const IR_VERSION: i64 = 8;
/// `ModelProto.producer_name`.
pub const PRODUCER: &str = "denoiserep";
/// Graph input: raw samples `[N, C, H, W]`, f32.
pub const INPUT: &str = "input";
/// Graph output: class scores `[N, classes]`.
pub const LOGITS: &str = "logits";
/// Graph output: the embedding `[N, D]` (`Model::run`'s embedding).
pub const EMBEDDING: &str = "embedding";
/// Name of the symbolic batch dimension.
pub const BATCH: &str = "N";

/// The ONNX file of `model` (see the module doc). Fails on a model whose layers do not chain
/// (a shape that does not fit the next layer), naming the layer.
pub fn to_onnx(model: &FusedModel) -> Result<Vec<u8>> {
    Ok(model_proto(model)?.encode_to_vec())
}

/// The [`ModelProto`] of `model`.
pub fn model_proto(model: &FusedModel) -> Result<ModelProto> {
    let [c, h, w] = model.input_shape;
    if model.normalization.mean.len() != c || model.normalization.std.len() != c {
        bail!(
            "input normalization has {} means and {} stds for {c} channels",
            model.normalization.mean.len(),
            model.normalization.std.len()
        );
    }
    let lowering = lower(model);
    let (Some(last), Some(emb_step)) = (
        lowering.steps.last(),
        lowering.steps.get(lowering.embedding),
    ) else {
        bail!("the model has no layers");
    };
    let last_layer = *last.sources().end();
    let emb_layer = *emb_step.sources().end();

    let mut g = Graph::default();
    let channel = [1, c as i64, 1, 1];
    g.initializer("input_mean", &channel, &model.normalization.mean);
    g.initializer("input_std", &channel, &model.normalization.std);
    g.node(
        "Sub",
        "normalize_sub",
        &[INPUT, "input_mean"],
        "centered",
        vec![],
    );
    g.node(
        "Div",
        "normalize_div",
        &["centered", "input_std"],
        "normalized",
        vec![],
    );

    let mut x = "normalized".to_string();
    let mut shape = Shape::Chw(c, h, w);
    let mut emb_dim = 0;
    for (k, layer) in model.layers.iter().enumerate() {
        let out = if k == last_layer {
            LOGITS.to_string()
        } else if k == emb_layer {
            EMBEDDING.to_string()
        } else {
            format!("x{k}")
        };
        let what = || format!("arch layer {k} {}", describe(layer));
        let name = format!("layer{k}");
        shape = match (layer, shape) {
            (
                FusedLayer::Linear {
                    in_features,
                    out_features,
                    weight,
                    bias,
                },
                Shape::Flat(n),
            ) if n == *in_features => {
                let (wn, bn) = (format!("{k}.weight"), format!("{k}.bias"));
                g.weights(&wn, &[*out_features, *in_features], weight, &what())?;
                g.weights(&bn, &[*out_features], bias, &what())?;
                g.node("Gemm", &name, &[&x, &wn, &bn], &out, vec![int("transB", 1)]);
                Shape::Flat(*out_features)
            }
            (
                FusedLayer::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    weight,
                    bias,
                },
                Shape::Chw(ci, hi, wi),
            ) if ci == *in_channels && *stride > 0 => {
                let (Some(ho), Some(wo)) = (
                    window_out(hi + 2 * padding, *kernel, *stride),
                    window_out(wi + 2 * padding, *kernel, *stride),
                ) else {
                    bail!("{}: kernel larger than its padded {hi}×{wi} input", what());
                };
                let (wn, bn) = (format!("{k}.weight"), format!("{k}.bias"));
                let dims = [*out_channels, *in_channels, *kernel, *kernel];
                g.weights(&wn, &dims, weight, &what())?;
                g.weights(&bn, &[*out_channels], bias, &what())?;
                let (kk, s, p) = (*kernel as i64, *stride as i64, *padding as i64);
                g.node(
                    "Conv",
                    &name,
                    &[&x, &wn, &bn],
                    &out,
                    vec![
                        ints("kernel_shape", &[kk, kk]),
                        ints("pads", &[p, p, p, p]),
                        ints("strides", &[s, s]),
                    ],
                );
                Shape::Chw(*out_channels, ho, wo)
            }
            (FusedLayer::Relu, s) => {
                g.node("Relu", &name, &[&x], &out, vec![]);
                s
            }
            (FusedLayer::MaxPool2d { kernel, stride }, Shape::Chw(ci, hi, wi)) if *stride > 0 => {
                let (Some(ho), Some(wo)) = (
                    window_out(hi, *kernel, *stride),
                    window_out(wi, *kernel, *stride),
                ) else {
                    bail!("{}: window larger than its {hi}×{wi} input", what());
                };
                let (kk, s) = (*kernel as i64, *stride as i64);
                g.node(
                    "MaxPool",
                    &name,
                    &[&x],
                    &out,
                    vec![
                        ints("kernel_shape", &[kk, kk]),
                        ints("strides", &[s, s]),
                        ints("pads", &[0, 0, 0, 0]),
                        int("ceil_mode", 0),
                    ],
                );
                Shape::Chw(ci, ho, wo)
            }
            (FusedLayer::Flatten, s) => {
                g.node("Flatten", &name, &[&x], &out, vec![int("axis", 1)]);
                Shape::Flat(s.len())
            }
            (_, s) => bail!("{} does not fit its input of shape {s}", what()),
        };
        if k == emb_layer {
            emb_dim = shape.len();
        }
        x = out;
    }
    let Shape::Flat(classes) = shape else {
        bail!("the model's output has shape {shape}, not a vector of class scores");
    };
    if classes != model.num_classes {
        bail!(
            "the model ends in {classes} values but has {} classes",
            model.num_classes
        );
    }
    if emb_layer == last_layer {
        // One tensor cannot carry two graph-output names.
        g.node("Identity", "embedding_copy", &[LOGITS], EMBEDDING, vec![]);
    }

    let graph = GraphProto {
        name: Some(model.arch.clone()),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![value_info(
            INPUT,
            &[Dim::Batch, Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)],
        )],
        output: vec![
            value_info(LOGITS, &[Dim::Batch, Dim::Fixed(classes)]),
            value_info(EMBEDDING, &[Dim::Batch, Dim::Fixed(emb_dim)]),
        ],
        doc_string: Some(format!(
            "DenoiseRep-fused {} (denoisers folded into the weights); input: raw samples, \
             normalized in the graph",
            model.arch
        )),
        value_info: Vec::new(),
    };
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some(PRODUCER.into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph),
        ..Default::default()
    })
}

/// Output length of a pooling/convolution window sweep: `⌊(len − kernel) / stride⌋ + 1`
/// (`len` already padded), `None` when the window does not fit.
fn window_out(len: usize, kernel: usize, stride: usize) -> Option<usize> {
    (kernel > 0 && len >= kernel && stride > 0).then(|| (len - kernel) / stride + 1)
}

/// Per-sample shape of a value flowing through the graph.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Chw(usize, usize, usize),
    Flat(usize),
}

impl Shape {
    fn len(self) -> usize {
        match self {
            Shape::Chw(c, h, w) => c * h * w,
            Shape::Flat(n) => n,
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Shape::Chw(c, h, w) => write!(f, "{c}×{h}×{w}"),
            Shape::Flat(n) => write!(f, "{n}"),
        }
    }
}

/// Nodes and initializers collected in graph order.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Graph {
    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        output: &str,
        attrs: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: Some(name.into()),
            op_type: Some(op.into()),
            attribute: attrs,
            ..Default::default()
        });
    }

    fn initializer(&mut self, name: &str, dims: &[i64], values: &[f32]) {
        self.initializers.push(TensorProto {
            dims: dims.to_vec(),
            data_type: Some(DataType::Float as i32),
            name: Some(name.into()),
            raw_data: Some(f32_bytes(values)),
            ..Default::default()
        });
    }

    /// A weight initializer, checked against its shape.
    fn weights(&mut self, name: &str, dims: &[usize], values: &[f32], what: &str) -> Result<()> {
        let n: usize = dims.iter().product();
        if values.len() != n {
            bail!(
                "{what}: tensor {name} has {} values, its shape {dims:?} needs {n}",
                values.len()
            );
        }
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        self.initializer(name, &dims, values);
        Ok(())
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

enum Dim {
    Batch,
    Fixed(usize),
}

fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match *d {
                Dim::Batch => dimension::Value::DimParam(BATCH.into()),
                Dim::Fixed(n) => dimension::Value::DimValue(n as i64),
            }),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        doc_string: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Normalization;

    fn linear(i: usize, o: usize) -> FusedLayer {
        FusedLayer::Linear {
            in_features: i,
            out_features: o,
            weight: (0..i * o).map(|v| v as f32 * 0.01).collect(),
            bias: vec![0.5; o],
        }
    }

    fn cnn() -> FusedModel {
        FusedModel {
            arch: "cnn:2/4".into(),
            input_shape: [1, 6, 6],
            num_classes: 3,
            normalization: Normalization {
                mean: vec![0.1],
                std: vec![0.3],
            },
            layers: vec![
                FusedLayer::Conv2d {
                    in_channels: 1,
                    out_channels: 2,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                    weight: vec![0.1; 18],
                    bias: vec![0.0; 2],
                },
                FusedLayer::Relu,
                FusedLayer::MaxPool2d {
                    kernel: 2,
                    stride: 2,
                },
                FusedLayer::Flatten,
                linear(18, 4),
                FusedLayer::Relu,
                linear(4, 3),
            ],
            embedding_layer: 5,
        }
    }

    fn ops(m: &ModelProto) -> Vec<(String, Vec<String>, Vec<String>)> {
        m.graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .map(|n| {
                (
                    n.op_type.clone().unwrap(),
                    n.input.clone(),
                    n.output.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn cnn_graph_nodes_names_and_shapes() {
        let m = model_proto(&cnn()).unwrap();
        assert_eq!(m.ir_version, Some(8));
        assert_eq!(m.producer_name.as_deref(), Some("denoiserep"));
        assert_eq!(m.opset_import[0].version, Some(13));
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ops(&m),
            vec![
                ("Sub".into(), s(&["input", "input_mean"]), s(&["centered"])),
                (
                    "Div".into(),
                    s(&["centered", "input_std"]),
                    s(&["normalized"])
                ),
                (
                    "Conv".into(),
                    s(&["normalized", "0.weight", "0.bias"]),
                    s(&["x0"])
                ),
                ("Relu".into(), s(&["x0"]), s(&["x1"])),
                ("MaxPool".into(), s(&["x1"]), s(&["x2"])),
                ("Flatten".into(), s(&["x2"]), s(&["x3"])),
                ("Gemm".into(), s(&["x3", "4.weight", "4.bias"]), s(&["x4"])),
                ("Relu".into(), s(&["x4"]), s(&["embedding"])),
                (
                    "Gemm".into(),
                    s(&["embedding", "6.weight", "6.bias"]),
                    s(&["logits"])
                ),
            ]
        );
        let g = m.graph.unwrap();
        let dims = |v: &ValueInfoProto| -> Vec<String> {
            let Some(type_proto::Value::TensorType(t)) = &v.r#type.as_ref().unwrap().value else {
                panic!("not a tensor type")
            };
            t.shape
                .as_ref()
                .unwrap()
                .dim
                .iter()
                .map(|d| match d.value.as_ref().unwrap() {
                    dimension::Value::DimValue(n) => n.to_string(),
                    dimension::Value::DimParam(p) => p.clone(),
                })
                .collect()
        };
        assert_eq!(dims(&g.input[0]), ["N", "1", "6", "6"]);
        assert_eq!(dims(&g.output[0]), ["N", "3"]);
        assert_eq!(dims(&g.output[1]), ["N", "4"]);
        let conv_w = g
            .initializer
            .iter()
            .find(|t| t.name.as_deref() == Some("0.weight"))
            .unwrap();
        assert_eq!(conv_w.dims, [2, 1, 3, 3]);
        assert_eq!(conv_w.raw_data.as_ref().unwrap().len(), 18 * 4);
        let mean = &g.initializer[0];
        assert_eq!(mean.dims, [1, 1, 1, 1]);
        assert_eq!(mean.raw_data.as_deref(), Some(&0.1f32.to_le_bytes()[..]));
    }

    #[test]
    fn file_round_trips_through_the_schema() {
        let bytes = to_onnx(&cnn()).unwrap();
        let back = ModelProto::decode(&bytes[..]).unwrap();
        assert_eq!(back, model_proto(&cnn()).unwrap());
    }

    #[test]
    fn embedding_equal_to_logits_gets_an_identity() {
        let mut m = cnn();
        m.embedding_layer = 6;
        let p = model_proto(&m).unwrap();
        let last = ops(&p).pop().unwrap();
        assert_eq!(last.0, "Identity");
        assert_eq!(last.1, ["logits"]);
        assert_eq!(last.2, ["embedding"]);
    }

    #[test]
    fn mismatched_layers_are_refused_by_name() {
        let mut m = cnn();
        m.layers[4] = linear(17, 4);
        let e = model_proto(&m).unwrap_err().to_string();
        assert_eq!(
            e,
            "arch layer 4 Linear(17→4) does not fit its input of shape 18"
        );
        let mut m = cnn();
        m.num_classes = 5;
        assert_eq!(
            model_proto(&m).unwrap_err().to_string(),
            "the model ends in 3 values but has 5 classes"
        );
    }
}
