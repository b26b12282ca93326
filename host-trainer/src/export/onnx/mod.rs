//! ONNX export of the fused f32 model (`denoiserep export --precision f32 --format onnx`).
//!
//! The graph computes exactly what the core's f32 model computes, op for op: it is written from
//! the same lowered graph ([`lower`]), one ONNX node per core op (plus one for a fused
//! activation):
//!
//! ```text
//! input [N, C, H, W] (raw, e.g. pixels in [0, 1])
//!   Sub(input_mean [1, C, 1, 1]) → Div(input_std [1, C, 1, 1])      (x − mean[c]) / std[c]
//!   per core op:  Conv (name.weight [O, I/g, kh, kw], name.bias [O]; pads, strides, group)
//!                 Gemm (transB = 1; name.weight [out, in], name.bias [out])
//!                 Add | MaxPool | AveragePool (count_include_pad = 0) |
//!                 GlobalAveragePool + Flatten | Flatten (axis 1)
//!                 then Relu, or Clip(0, 6) for ReLU6, when the op has a fused activation
//!   ViT token ops on [N, T, D]: MatMul (Wᵀ) + Add for a Linear on tokens; LayerNorm as
//!                 ReduceMean/Sub/Mul/ReduceMean/Add(ε)/Sqrt/Div/Mul(γ)/Add(β); GELU as
//!                 Div(√2)/Erf/Add(1)/Mul(0.5)/Mul(x); BatchMatMul as (Transpose →) MatMul
//!                 (→ Mul α); Softmax (axis −1); Transpose/Concat/Slice/MeanAxis with their
//!                 axes shifted past the batch; constants (class token, position embedding,
//!                 γ, β) as [1, …] initializers, the class token Expanded over the batch
//!   → logits [N, classes], embedding [N, D]
//! ```
//!
//! Initializers are named after the trainer's parameters (`layer1.0.conv1.weight`), so the file
//! reads like the run's checkpoint. Opset 13, IR version 8, producer `denoiserep`; the batch
//! dimension is the symbol `N`. The schema subset is in [`proto`].

pub use crate::interop::onnx::proto;

use anyhow::{bail, Result};
use denoiserep_core::{Activation, WindowSpec};
use prost::Message;

use crate::export::file::f32_bytes;
use crate::export::fused::FusedModel;
use crate::export::lower::{lower, CoreGraph, CoreOp};
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

/// The ONNX file of `model` (see the module doc).
pub fn to_onnx(model: &FusedModel) -> Result<Vec<u8>> {
    Ok(model_proto(model)?.encode_to_vec())
}

fn i64s(v: &[u16]) -> Vec<i64> {
    v.iter().map(|&x| i64::from(x)).collect()
}

/// ONNX `pads` (`[top, left, bottom, right]`) of a core window (`[top, bottom, left, right]`).
fn pads(w: &WindowSpec) -> AttributeProto {
    let [t, b, l, r] = w.padding.map(i64::from);
    ints("pads", &[t, l, b, r])
}

/// The [`ModelProto`] of `model`.
pub fn model_proto(model: &FusedModel) -> Result<ModelProto> {
    let c = model.input_shape[0];
    if model.normalization.mean.len() != c || model.normalization.std.len() != c {
        bail!(
            "input normalization has {} means and {} stds for {c} channels",
            model.normalization.mean.len(),
            model.normalization.std.len()
        );
    }
    graph_proto(&lower(model)?, model)
}

fn graph_proto(core: &CoreGraph, model: &FusedModel) -> Result<ModelProto> {
    let [c, h, w] = model.input_shape;
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
        "t0",
        vec![],
    );
    let name_of = |t: u16| tensor_name(core, t);
    let input_name = |t: u16| if t == 0 { "t0".to_string() } else { name_of(t) };
    for (k, node) in core.nodes.iter().enumerate() {
        let what = &node.source;
        let ins: Vec<String> = node.inputs.iter().map(|&t| input_name(t)).collect();
        let in_shape = &core.shapes[usize::from(node.inputs[0])];
        let activation = match node.op {
            CoreOp::Linear { activation, .. }
            | CoreOp::Conv2d { activation, .. }
            | CoreOp::DepthwiseConv2d { activation, .. }
            | CoreOp::Add { activation } => activation,
            _ => Activation::None,
        };
        let out = if activation == Activation::None {
            name_of(node.output)
        } else {
            format!("pre{k}")
        };
        let op_name = format!("op{k}");
        let (wn, bn) = (
            format!("{}.weight", node.name),
            format!("{}.bias", node.name),
        );
        match &node.op {
            CoreOp::Linear {
                out_features,
                weight,
                bias,
                ..
            } => {
                let in_features = *in_shape.last().unwrap_or(&0);
                g.weights(&bn, &[*out_features], bias, what)?;
                if in_shape.len() == 1 {
                    g.weights(&wn, &[*out_features, in_features], weight, what)?;
                    g.node(
                        "Gemm",
                        &op_name,
                        &[&ins[0], &wn, &bn],
                        &out,
                        vec![int("transB", 1)],
                    );
                } else {
                    // Tokens [N, T, in]: MatMul by Wᵀ [in, out], then the bias.
                    let mut wt = vec![0.0; weight.len()];
                    for o in 0..*out_features {
                        for i in 0..in_features {
                            wt[i * out_features + o] = weight[o * in_features + i];
                        }
                    }
                    g.weights(&wn, &[in_features, *out_features], &wt, what)?;
                    let product = format!("op{k}_matmul");
                    g.node("MatMul", &op_name, &[&ins[0], &wn], &product, vec![]);
                    g.node(
                        "Add",
                        &format!("op{k}_bias"),
                        &[&product, &bn],
                        &out,
                        vec![],
                    );
                }
            }
            CoreOp::Conv2d {
                window,
                out_channels,
                weight,
                bias,
                ..
            } => {
                let [kh, kw] = window.kernel.map(usize::from);
                g.weights(&wn, &[*out_channels, in_shape[0], kh, kw], weight, what)?;
                g.weights(&bn, &[*out_channels], bias, what)?;
                g.node(
                    "Conv",
                    &op_name,
                    &[&ins[0], &wn, &bn],
                    &out,
                    vec![
                        ints("kernel_shape", &i64s(&window.kernel)),
                        pads(window),
                        ints("strides", &i64s(&window.stride)),
                    ],
                );
            }
            CoreOp::DepthwiseConv2d {
                window,
                weight,
                bias,
                ..
            } => {
                let [kh, kw] = window.kernel.map(usize::from);
                let ch = in_shape[0];
                g.weights(&wn, &[ch, 1, kh, kw], weight, what)?;
                g.weights(&bn, &[ch], bias, what)?;
                g.node(
                    "Conv",
                    &op_name,
                    &[&ins[0], &wn, &bn],
                    &out,
                    vec![
                        ints("kernel_shape", &i64s(&window.kernel)),
                        pads(window),
                        ints("strides", &i64s(&window.stride)),
                        int("group", ch as i64),
                    ],
                );
            }
            CoreOp::Add { .. } => {
                // A constant addend (the position embedding) broadcasts over the batch.
                let a = input_or_constant(&mut g, core, node, 0, &node.name)?;
                let b = input_or_constant(&mut g, core, node, 1, &node.name)?;
                g.node("Add", &op_name, &[&a, &b], &out, vec![]);
            }
            CoreOp::MaxPool2d { window } => g.node(
                "MaxPool",
                &op_name,
                &[&ins[0]],
                &out,
                vec![
                    ints("kernel_shape", &i64s(&window.kernel)),
                    ints("strides", &i64s(&window.stride)),
                    pads(window),
                    int("ceil_mode", 0),
                ],
            ),
            CoreOp::AvgPool2d { window } => g.node(
                "AveragePool",
                &op_name,
                &[&ins[0]],
                &out,
                vec![
                    ints("kernel_shape", &i64s(&window.kernel)),
                    ints("strides", &i64s(&window.stride)),
                    pads(window),
                    int("ceil_mode", 0),
                    int("count_include_pad", 0),
                ],
            ),
            CoreOp::Mean => {
                let pooled = format!("gap{k}");
                g.node("GlobalAveragePool", &op_name, &[&ins[0]], &pooled, vec![]);
                g.node(
                    "Flatten",
                    &format!("op{k}_flatten"),
                    &[&pooled],
                    &out,
                    vec![int("axis", 1)],
                );
            }
            CoreOp::Reshape => {
                let to = &core.shapes[usize::from(node.output)];
                if to.len() == 1 {
                    g.node("Flatten", &op_name, &[&ins[0]], &out, vec![int("axis", 1)]);
                } else {
                    let dims: Vec<i64> = std::iter::once(-1)
                        .chain(to.iter().map(|&d| d as i64))
                        .collect();
                    let shape = g.int64s(&format!("op{k}.shape"), &dims);
                    g.node("Reshape", &op_name, &[&ins[0], &shape], &out, vec![]);
                }
            }
            CoreOp::Activation { activation } => {
                activate(&mut g, *activation, &op_name, &ins[0], &out)
            }
            CoreOp::Softmax { beta } => {
                let x = if *beta == 1.0 {
                    ins[0].clone()
                } else {
                    let b = g.scalar(&format!("{}.beta", node.name), *beta);
                    let scaled = format!("op{k}_scaled");
                    g.node(
                        "Mul",
                        &format!("op{k}_beta"),
                        &[&ins[0], &b],
                        &scaled,
                        vec![],
                    );
                    scaled
                };
                g.node("Softmax", &op_name, &[&x], &out, vec![int("axis", -1)]);
            }
            CoreOp::LayerNorm { eps } => {
                let [x, gamma, beta] = [0, 1, 2].map(|i| {
                    let suffix = ["", ".weight", ".bias"][i];
                    input_or_constant(&mut g, core, node, i, &format!("{}{suffix}", node.name))
                });
                layer_norm(&mut g, k, &x?, &gamma?, &beta?, *eps, &out);
            }
            CoreOp::Gelu => {
                // 0.5·x·(1 + erf(x/√2)), the core's formula.
                let (sqrt2, one, half) = (
                    g.scalar("gelu.sqrt2", std::f32::consts::SQRT_2),
                    g.scalar("gelu.one", 1.0),
                    g.scalar("gelu.half", 0.5),
                );
                let t = |s: &str| format!("op{k}_{s}");
                g.node("Div", &t("div"), &[&ins[0], &sqrt2], &t("scaled"), vec![]);
                g.node("Erf", &t("erf"), &[&t("scaled")], &t("erfed"), vec![]);
                g.node("Add", &t("add"), &[&t("erfed"), &one], &t("plus1"), vec![]);
                g.node(
                    "Mul",
                    &t("half"),
                    &[&half, &t("plus1")],
                    &t("halved"),
                    vec![],
                );
                g.node("Mul", &op_name, &[&ins[0], &t("halved")], &out, vec![]);
            }
            CoreOp::BatchMatMul { adj_y, alpha } => {
                let b = if *adj_y {
                    let bt = format!("op{k}_bT");
                    let rank = core.shapes[usize::from(node.inputs[1])].len() as i64 + 1;
                    let mut perm: Vec<i64> = (0..rank).collect();
                    perm.swap(rank as usize - 1, rank as usize - 2);
                    g.node(
                        "Transpose",
                        &format!("op{k}_adj_y"),
                        &[&ins[1]],
                        &bt,
                        vec![ints("perm", &perm)],
                    );
                    bt
                } else {
                    ins[1].clone()
                };
                if *alpha == 1.0 {
                    g.node("MatMul", &op_name, &[&ins[0], &b], &out, vec![]);
                } else {
                    let product = format!("op{k}_product");
                    g.node("MatMul", &op_name, &[&ins[0], &b], &product, vec![]);
                    let a = g.scalar(&format!("{}.alpha{k}", node.name), *alpha);
                    g.node(
                        "Mul",
                        &format!("op{k}_alpha"),
                        &[&product, &a],
                        &out,
                        vec![],
                    );
                }
            }
            CoreOp::Transpose { perm } => {
                let perm: Vec<i64> = std::iter::once(0)
                    .chain(perm.iter().map(|&a| i64::from(a) + 1))
                    .collect();
                g.node(
                    "Transpose",
                    &op_name,
                    &[&ins[0]],
                    &out,
                    vec![ints("perm", &perm)],
                );
            }
            CoreOp::Concat { axis } => {
                // Constants (the class token) are broadcast over the batch: Expand to
                // [N, …their shape] with N read from the first computed input.
                let computed = (0..node.inputs.len())
                    .find(|&i| !is_constant(core, node.inputs[i]))
                    .ok_or_else(|| anyhow::anyhow!("{what}: a Concat of constants only"))?;
                let first = ins[computed].clone();
                let mut parts = Vec::new();
                for (i, (&t, name)) in node.inputs.iter().zip(&ins).enumerate() {
                    if !is_constant(core, t) {
                        parts.push(name.clone());
                        continue;
                    }
                    let c = input_or_constant(&mut g, core, node, i, &node.name)?;
                    let batch = format!("op{k}_batch");
                    if !g.nodes.iter().any(|n| n.output.first() == Some(&batch)) {
                        g.node(
                            "Shape",
                            &format!("op{k}_shape"),
                            &[&first],
                            &format!("op{k}_dims"),
                            vec![],
                        );
                        let (s0, s1) = (
                            g.int64s(&format!("op{k}.start"), &[0]),
                            g.int64s(&format!("op{k}.end"), &[1]),
                        );
                        g.node(
                            "Slice",
                            &format!("op{k}_n"),
                            &[&format!("op{k}_dims"), &s0, &s1],
                            &batch,
                            vec![],
                        );
                    }
                    let rest: Vec<i64> = core.shapes[usize::from(t)]
                        .iter()
                        .map(|&d| d as i64)
                        .collect();
                    let rest = g.int64s(&format!("{}.shape{i}", node.name), &rest);
                    let shape = format!("op{k}_shape{i}");
                    g.node(
                        "Concat",
                        &format!("op{k}_cat_shape{i}"),
                        &[&batch, &rest],
                        &shape,
                        vec![int("axis", 0)],
                    );
                    let expanded = format!("op{k}_expanded{i}");
                    g.node(
                        "Expand",
                        &format!("op{k}_expand{i}"),
                        &[&c, &shape],
                        &expanded,
                        vec![],
                    );
                    parts.push(expanded);
                }
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                g.node(
                    "Concat",
                    &op_name,
                    &refs,
                    &out,
                    vec![int("axis", i64::from(*axis) + 1)],
                );
            }
            CoreOp::MeanAxis { axis } => g.node(
                "ReduceMean",
                &op_name,
                &[&ins[0]],
                &out,
                vec![ints("axes", &[i64::from(*axis) + 1]), int("keepdims", 0)],
            ),
            CoreOp::Slice { axis, start, len } => {
                let a = i64::from(*axis) + 1;
                let (s0, s1, ax) = (
                    g.int64s(&format!("op{k}.starts"), &[i64::from(*start)]),
                    g.int64s(
                        &format!("op{k}.ends"),
                        &[i64::from(*start) + i64::from(*len)],
                    ),
                    g.int64s(&format!("op{k}.axes"), &[a]),
                );
                if *len == 1 {
                    // The core drops a sliced axis of length 1.
                    let sliced = format!("op{k}_sliced");
                    g.node(
                        "Slice",
                        &op_name,
                        &[&ins[0], &s0, &s1, &ax],
                        &sliced,
                        vec![],
                    );
                    g.node(
                        "Squeeze",
                        &format!("op{k}_squeeze"),
                        &[&sliced, &ax],
                        &out,
                        vec![],
                    );
                } else {
                    g.node("Slice", &op_name, &[&ins[0], &s0, &s1, &ax], &out, vec![]);
                }
            }
        }
        if activation != Activation::None {
            activate(
                &mut g,
                activation,
                &format!("op{k}_act"),
                &out,
                &name_of(node.output),
            );
        }
    }
    let classes: usize = core.shapes[usize::from(core.logits)].iter().product();
    if classes != model.num_classes {
        bail!(
            "the model ends in {classes} values but has {} classes",
            model.num_classes
        );
    }
    let emb_dim: usize = core.shapes[usize::from(core.embedding)].iter().product();
    if core.embedding == core.logits {
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

/// Whether core tensor `t` is a constant (class token, position embedding, `γ`, `β`).
fn is_constant(core: &CoreGraph, t: u16) -> bool {
    core.constants
        .get(usize::from(t))
        .is_some_and(Option::is_some)
}

/// The ONNX name of input `i` of `node`: its tensor, or for a constant an initializer named
/// `name` (`[1, …core shape]`, broadcasting over the batch), added once.
fn input_or_constant(
    g: &mut Graph,
    core: &CoreGraph,
    node: &crate::export::lower::CoreNode,
    i: usize,
    name: &str,
) -> Result<String> {
    let t = node.inputs[i];
    let Some(Some(values)) = core.constants.get(usize::from(t)) else {
        return Ok(if t == 0 {
            "t0".into()
        } else {
            tensor_name(core, t)
        });
    };
    let name = if g
        .initializers
        .iter()
        .any(|x| x.name.as_deref() == Some(name))
    {
        format!("{name}.{t}")
    } else {
        name.to_string()
    };
    let dims: Vec<usize> = std::iter::once(1)
        .chain(core.shapes[usize::from(t)].iter().copied())
        .collect();
    g.weights(&name, &dims, values, &node.source)?;
    Ok(name)
}

/// The ONNX name of a computed core tensor `t` (≠ 0).
fn tensor_name(core: &CoreGraph, t: u16) -> String {
    if t == core.logits {
        LOGITS.to_string()
    } else if t == core.embedding {
        EMBEDDING.to_string()
    } else {
        format!("t{t}")
    }
}

/// LayerNorm over the last axis in opset-13 ops, the core's formula
/// `(x − μ) / √(σ² + ε) · γ + β` with `μ`, `σ²` the row's mean and mean squared deviation.
fn layer_norm(g: &mut Graph, k: usize, x: &str, gamma: &str, beta: &str, eps: f32, out: &str) {
    let t = |s: &str| format!("op{k}_{s}");
    let e = g.scalar(&format!("op{k}.eps"), eps);
    let last = || vec![ints("axes", &[-1]), int("keepdims", 1)];
    g.node("ReduceMean", &t("mean"), &[x], &t("mu"), last());
    g.node("Sub", &t("center"), &[x, &t("mu")], &t("d"), vec![]);
    g.node("Mul", &t("square"), &[&t("d"), &t("d")], &t("d2"), vec![]);
    g.node("ReduceMean", &t("var"), &[&t("d2")], &t("var_out"), last());
    g.node(
        "Add",
        &t("eps"),
        &[&t("var_out"), &e],
        &t("var_eps"),
        vec![],
    );
    g.node("Sqrt", &t("sqrt"), &[&t("var_eps")], &t("std"), vec![]);
    g.node("Div", &t("norm"), &[&t("d"), &t("std")], &t("xhat"), vec![]);
    g.node(
        "Mul",
        &t("gamma"),
        &[&t("xhat"), gamma],
        &t("scaled"),
        vec![],
    );
    g.node("Add", &t("beta"), &[&t("scaled"), beta], out, vec![]);
}

/// `Relu`, or `Clip(x, 0, 6)` for ReLU6 (opset 13: bounds are inputs).
fn activate(g: &mut Graph, a: Activation, name: &str, input: &str, out: &str) {
    match a {
        Activation::Relu => g.node("Relu", name, &[input], out, vec![]),
        Activation::Relu6 => {
            if !g
                .initializers
                .iter()
                .any(|t| t.name.as_deref() == Some("relu6_min"))
            {
                g.initializer("relu6_min", &[], &[0.0]);
                g.initializer("relu6_max", &[], &[6.0]);
            }
            g.node(
                "Clip",
                name,
                &[input, "relu6_min", "relu6_max"],
                out,
                vec![],
            );
        }
        Activation::None => g.node("Identity", name, &[input], out, vec![]),
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

    /// A float scalar initializer `name` (added once); returns its name.
    fn scalar(&mut self, name: &str, v: f32) -> String {
        if !self
            .initializers
            .iter()
            .any(|t| t.name.as_deref() == Some(name))
        {
            self.initializer(name, &[], &[v]);
        }
        name.to_string()
    }

    /// An int64 initializer `name` of shape `[len]` (shapes, axes, slice bounds); returns its
    /// name.
    fn int64s(&mut self, name: &str, v: &[i64]) -> String {
        self.initializers.push(TensorProto {
            dims: vec![v.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            name: Some(name.into()),
            int64_data: v.to_vec(),
            ..Default::default()
        });
        name.to_string()
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
    use crate::export::fused::{FusedLayer, FusedNode};

    fn linear(i: usize, o: usize) -> FusedLayer {
        FusedLayer::Linear {
            in_features: i,
            out_features: o,
            weight: (0..i * o).map(|v| v as f32 * 0.01).collect(),
            bias: vec![0.5; o],
        }
    }

    fn cnn() -> FusedModel {
        FusedModel::sequential(
            "cnn:2/4".into(),
            [1, 6, 6],
            3,
            Normalization {
                mean: vec![0.1],
                std: vec![0.3],
            },
            vec![
                FusedLayer::Conv2d {
                    in_channels: 1,
                    out_channels: 2,
                    kernel: [3, 3],
                    stride: [1, 1],
                    padding: [1; 4],
                    groups: 1,
                    weight: vec![0.1; 18],
                    bias: vec![0.0; 2],
                },
                FusedLayer::Relu,
                FusedLayer::MaxPool2d {
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [0; 4],
                },
                FusedLayer::Flatten,
                linear(18, 4),
                FusedLayer::Relu,
                linear(4, 3),
            ],
            5,
        )
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
                ("Div".into(), s(&["centered", "input_std"]), s(&["t0"])),
                (
                    "Conv".into(),
                    s(&["t0", "0.weight", "0.bias"]),
                    s(&["pre0"])
                ),
                ("Relu".into(), s(&["pre0"]), s(&["t1"])),
                ("MaxPool".into(), s(&["t1"]), s(&["t2"])),
                ("Flatten".into(), s(&["t2"]), s(&["t3"])),
                (
                    "Gemm".into(),
                    s(&["t3", "4.weight", "4.bias"]),
                    s(&["pre3"])
                ),
                ("Relu".into(), s(&["pre3"]), s(&["embedding"])),
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
        m.embedding = 7;
        let p = model_proto(&m).unwrap();
        let last = ops(&p).pop().unwrap();
        assert_eq!(last.0, "Identity");
        assert_eq!(last.1, ["logits"]);
        assert_eq!(last.2, ["embedding"]);
    }

    #[test]
    fn residual_depthwise_relu6_graph() {
        let dw = FusedLayer::Conv2d {
            in_channels: 2,
            out_channels: 2,
            kernel: [3, 3],
            stride: [2, 2],
            padding: [0, 1, 0, 1],
            groups: 2,
            weight: vec![0.1; 18],
            bias: vec![0.0; 2],
        };
        let m = FusedModel {
            arch: "t".into(),
            input_shape: [2, 6, 6],
            num_classes: 3,
            normalization: Normalization {
                mean: vec![0.0; 2],
                std: vec![1.0; 2],
            },
            nodes: vec![
                FusedNode {
                    name: "dw".into(),
                    layer: dw,
                    inputs: vec![0],
                },
                FusedNode {
                    name: "act".into(),
                    layer: FusedLayer::Relu6,
                    inputs: vec![1],
                },
                FusedNode {
                    name: "pool".into(),
                    layer: FusedLayer::GlobalAvgPool,
                    inputs: vec![2],
                },
                FusedNode {
                    name: "fc".into(),
                    layer: linear(2, 3),
                    inputs: vec![3],
                },
            ],
            embedding: 3,
        };
        let p = model_proto(&m).unwrap();
        let names: Vec<String> = ops(&p).into_iter().map(|o| o.0).collect();
        assert_eq!(
            names,
            [
                "Sub",
                "Div",
                "Conv",
                "Clip",
                "GlobalAveragePool",
                "Flatten",
                "Gemm"
            ]
        );
        let conv = &p.graph.as_ref().unwrap().node[2];
        let attr = |n: &str| {
            conv.attribute
                .iter()
                .find(|a| a.name.as_deref() == Some(n))
                .unwrap()
                .clone()
        };
        assert_eq!(attr("group").i, Some(2));
        assert_eq!(attr("pads").ints, vec![0, 0, 1, 1]);
    }

    #[test]
    fn mismatched_layers_are_refused_by_name() {
        let mut m = cnn();
        m.nodes[4].layer = linear(17, 4);
        let e = model_proto(&m).unwrap_err().to_string();
        assert!(
            e.contains("node 4 '4' Linear(17→4)") && e.contains("18"),
            "{e}"
        );
        let mut m = cnn();
        m.num_classes = 5;
        assert_eq!(
            model_proto(&m).unwrap_err().to_string(),
            "the model ends in 3 values but has 5 classes"
        );
    }
}
