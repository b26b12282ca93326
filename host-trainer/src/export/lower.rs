//! Lowering: the fused trainer graph → the core's graph (tensor table + ops), still in f32 and
//! before a precision is chosen. One pass, then a 1:1 mapping:
//!
//! * **activation fusion**: a ReLU / ReLU6 whose only input is the output of a Linear, Conv2d or
//!   Add that nothing else reads (and that is not the embedding) becomes that op's fused
//!   activation (int8: its output clamp);
//! * Conv2d with `groups = channels` → `DepthwiseConv2d` (weights `[C, 1, kh, kw]` = `[C][kh][kw]`);
//! * GlobalAvgPool → `Mean` (output `[C]`), Flatten → `Reshape` (an alias, no data moves),
//!   a ReLU that cannot be fused → a standalone `Activation` op;
//! * shapes are inferred here (batch 1, CHW), once, and checked again by the core's loader.
//!
//! Core tensor 0 is the normalized input; every other tensor is one op's output. The logits are
//! the last node's output, the embedding the model's embedding value.

use anyhow::{bail, Result};
use denoiserep_core::{Activation, WindowSpec};

use crate::export::fused::{FusedLayer, FusedModel, ValueId};

/// One op of the lowered graph, f32 weights in PyTorch layout.
#[derive(Debug, Clone, PartialEq)]
pub enum CoreOp {
    Linear {
        activation: Activation,
        out_features: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
    Conv2d {
        window: WindowSpec,
        activation: Activation,
        out_channels: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
    DepthwiseConv2d {
        window: WindowSpec,
        activation: Activation,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
    Add {
        activation: Activation,
    },
    MaxPool2d {
        window: WindowSpec,
    },
    AvgPool2d {
        window: WindowSpec,
    },
    Mean,
    Reshape,
    Activation {
        activation: Activation,
    },
}

impl CoreOp {
    /// True for ops whose output has its own quantization in an int8 model (the others keep
    /// their input's).
    pub fn requantizes(&self) -> bool {
        matches!(
            self,
            Self::Linear { .. }
                | Self::Conv2d { .. }
                | Self::DepthwiseConv2d { .. }
                | Self::Add { .. }
        )
    }
}

/// One lowered op: what it computes, the core tensors it reads and writes, and where it came
/// from (for messages and reports).
#[derive(Debug, Clone, PartialEq)]
pub struct CoreNode {
    /// The trainer node's name (PyTorch `state_dict` prefix, e.g. `layer1.0.conv1`).
    pub name: String,
    pub op: CoreOp,
    pub inputs: Vec<u16>,
    pub output: u16,
    /// `layer1.0.conv1 Conv2d(16→16, 3×3) + ReLU`.
    pub source: String,
}

/// The lowered graph (f32).
#[derive(Debug, Clone, PartialEq)]
pub struct CoreGraph {
    /// Model name (the arch string).
    pub name: String,
    /// Shape of every core tensor (batch 1); tensor 0 is the input.
    pub shapes: Vec<Vec<usize>>,
    pub nodes: Vec<CoreNode>,
    pub logits: u16,
    pub embedding: u16,
    /// Per-channel normalization of the input.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

fn window(
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
    what: &str,
) -> Result<WindowSpec> {
    let c = |v: usize| {
        u16::try_from(v).map_err(|_| {
            anyhow::anyhow!("{what}: {v} does not fit the model format (at most 65535)")
        })
    };
    Ok(WindowSpec {
        kernel: [c(kernel[0])?, c(kernel[1])?],
        stride: [c(stride[0])?, c(stride[1])?],
        padding: [
            c(padding[0])?,
            c(padding[1])?,
            c(padding[2])?,
            c(padding[3])?,
        ],
    })
}

/// `(in + before + after − k) / s + 1`, or an error naming `what`.
fn out_dim(
    input: usize,
    k: usize,
    s: usize,
    before: usize,
    after: usize,
    what: &str,
) -> Result<usize> {
    let span = (input + before + after).checked_sub(k).filter(|_| s > 0);
    match span {
        Some(span) => Ok(span / s + 1),
        None => bail!("{what}: a {k}-wide window with stride {s} does not fit an input of {input}"),
    }
}

fn chw(shape: &[usize], what: &str) -> Result<[usize; 3]> {
    match *shape {
        [c, h, w] => Ok([c, h, w]),
        _ => bail!("{what}: expects a C×H×W input, got {shape:?}"),
    }
}

fn pooled(
    shape: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
    what: &str,
) -> Result<Vec<usize>> {
    let [c, h, w] = chw(shape, what)?;
    Ok(vec![
        c,
        out_dim(h, kernel[0], stride[0], padding[0], padding[1], what)?,
        out_dim(w, kernel[1], stride[1], padding[2], padding[3], what)?,
    ])
}

/// The error for a model with ViT node kinds ([`FusedLayer::is_transformer`]), which have no
/// lowering to the core's ops yet.
pub const VIT_NOT_LOWERED: &str = "ViT export to the core is not implemented yet";

/// Lowers `model` (see the module docs). Errors name the node.
pub fn lower(model: &FusedModel) -> Result<CoreGraph> {
    let nodes = &model.nodes;
    if let Some((k, node)) = nodes
        .iter()
        .enumerate()
        .find(|(_, n)| n.layer.is_transformer())
    {
        bail!(
            "arch {}: {VIT_NOT_LOWERED} (node {k} '{}' {} has no core op; the fused model \
             itself is complete: Model::fused())",
            model.arch,
            node.name,
            node.layer.describe()
        );
    }
    let n_values = nodes.len() + 1;
    // Readers of each value, to decide which activations fuse.
    let mut readers = vec![0usize; n_values];
    for (k, node) in nodes.iter().enumerate() {
        for &v in &node.inputs {
            if v > k {
                bail!("node {} ({}) reads value {v}, produced later", k, node.name);
            }
            readers[v] += 1;
        }
    }
    // fused_into[k] = Some(j): node k (an activation) is folded into node j.
    let mut fused_into: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut activation_of: Vec<Activation> = vec![Activation::None; nodes.len()];
    for (k, node) in nodes.iter().enumerate() {
        let act = match node.layer {
            FusedLayer::Relu => Activation::Relu,
            FusedLayer::Relu6 => Activation::Relu6,
            _ => continue,
        };
        let &[v] = node.inputs.as_slice() else {
            continue;
        };
        if v == 0 || readers[v] != 1 || v == model.embedding {
            continue;
        }
        let j = v - 1;
        let fusable = matches!(
            nodes[j].layer,
            FusedLayer::Linear { .. } | FusedLayer::Conv2d { .. } | FusedLayer::Add
        ) && fused_into[j].is_none()
            && activation_of[j] == Activation::None;
        if fusable {
            fused_into[k] = Some(j);
            activation_of[j] = act;
        }
    }
    // Value → core tensor id; shapes of core tensors.
    let mut tensor_of: Vec<Option<u16>> = vec![None; n_values];
    let mut shapes: Vec<Vec<usize>> = vec![model.input_shape.to_vec()];
    tensor_of[0] = Some(0);
    let mut value_shape: Vec<Vec<usize>> = vec![Vec::new(); n_values];
    value_shape[0] = model.input_shape.to_vec();
    let mut out_nodes: Vec<CoreNode> = Vec::new();
    for (k, node) in nodes.iter().enumerate() {
        let what = format!("node {k} '{}' {}", node.name, node.layer.describe());
        let ins: Vec<ValueId> = node.inputs.clone();
        let arity = if matches!(node.layer, FusedLayer::Add) {
            2
        } else {
            1
        };
        if ins.len() != arity {
            bail!("{what}: has {} inputs, expects {arity}", ins.len());
        }
        let in_shape = value_shape[ins[0]].clone();
        let out_shape = shape_of(&node.layer, &in_shape, &ins, &value_shape, &what)?;
        value_shape[k + 1] = out_shape.clone();
        if let Some(j) = fused_into[k] {
            // The activation's value is the fused op's output tensor.
            let t = tensor_of[j + 1].expect("the fused op ran before its activation");
            tensor_of[k + 1] = Some(t);
            if let Some(n) = out_nodes.iter_mut().rev().find(|n| n.output == t) {
                n.source.push_str(&format!(" + {}", node.layer.describe()));
            }
            continue;
        }
        let inputs = ins
            .iter()
            .map(|&v| {
                tensor_of[v].ok_or_else(|| anyhow::anyhow!("{what}: input value {v} has no tensor"))
            })
            .collect::<Result<Vec<u16>>>()?;
        let op = core_op(&node.layer, activation_of[k], &in_shape, &what)?;
        let out_shape = match op {
            CoreOp::Mean => vec![in_shape[0]],
            _ => out_shape,
        };
        value_shape[k + 1] = out_shape.clone();
        let id = u16::try_from(shapes.len())
            .map_err(|_| anyhow::anyhow!("{what}: more than 65535 tensors"))?;
        shapes.push(out_shape);
        tensor_of[k + 1] = Some(id);
        out_nodes.push(CoreNode {
            name: node.name.clone(),
            op,
            inputs,
            output: id,
            source: format!("{} {}", node.name, node.layer.describe()),
        });
    }
    let logits = tensor_of[n_values - 1].expect("every value has a tensor");
    let embedding = tensor_of
        .get(model.embedding)
        .copied()
        .flatten()
        .ok_or_else(|| {
            anyhow::anyhow!("embedding value {} is not in the graph", model.embedding)
        })?;
    Ok(CoreGraph {
        name: model.arch.clone(),
        shapes,
        nodes: out_nodes,
        logits,
        embedding,
        mean: model.normalization.mean.clone(),
        std: model.normalization.std.clone(),
    })
}

/// Output shape of `layer` (batch 1) for input shape `in_shape`.
fn shape_of(
    layer: &FusedLayer,
    in_shape: &[usize],
    ins: &[ValueId],
    value_shape: &[Vec<usize>],
    what: &str,
) -> Result<Vec<usize>> {
    Ok(match layer {
        FusedLayer::Linear {
            in_features,
            out_features,
            ..
        } => {
            if in_shape.last() != Some(in_features) {
                bail!("{what}: input {in_shape:?} does not end in {in_features} features");
            }
            let mut s = in_shape.to_vec();
            *s.last_mut().expect("nonempty") = *out_features;
            s
        }
        FusedLayer::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            ..
        } => {
            let [c, _, _] = chw(in_shape, what)?;
            if c != *in_channels {
                bail!("{what}: input has {c} channels, expects {in_channels}");
            }
            let mut s = pooled(in_shape, *kernel, *stride, *padding, what)?;
            s[0] = *out_channels;
            s
        }
        FusedLayer::MaxPool2d {
            kernel,
            stride,
            padding,
        }
        | FusedLayer::AvgPool2d {
            kernel,
            stride,
            padding,
        } => pooled(in_shape, *kernel, *stride, *padding, what)?,
        FusedLayer::GlobalAvgPool => vec![chw(in_shape, what)?[0]],
        FusedLayer::Flatten => vec![in_shape.iter().product()],
        FusedLayer::Relu | FusedLayer::Relu6 => in_shape.to_vec(),
        FusedLayer::Add => {
            let other = &value_shape[ins[1]];
            if other.as_slice() != in_shape {
                bail!("{what}: adds {in_shape:?} and {other:?}, shapes differ");
            }
            in_shape.to_vec()
        }
        FusedLayer::Tokens
        | FusedLayer::ClsToken { .. }
        | FusedLayer::PosEmbed { .. }
        | FusedLayer::LayerNorm { .. }
        | FusedLayer::Gelu
        | FusedLayer::Attention { .. }
        | FusedLayer::TokenPool { .. } => bail!("{what}: {VIT_NOT_LOWERED}"),
    })
}

fn core_op(layer: &FusedLayer, act: Activation, in_shape: &[usize], what: &str) -> Result<CoreOp> {
    Ok(match layer {
        FusedLayer::Linear {
            out_features,
            weight,
            bias,
            ..
        } => CoreOp::Linear {
            activation: act,
            out_features: *out_features,
            weight: weight.clone(),
            bias: bias.clone(),
        },
        FusedLayer::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            groups,
            weight,
            bias,
        } => {
            let window = window(*kernel, *stride, *padding, what)?;
            match *groups {
                1 => CoreOp::Conv2d {
                    window,
                    activation: act,
                    out_channels: *out_channels,
                    weight: weight.clone(),
                    bias: bias.clone(),
                },
                g if g == *in_channels && g == *out_channels => CoreOp::DepthwiseConv2d {
                    window,
                    activation: act,
                    weight: weight.clone(),
                    bias: bias.clone(),
                },
                g => bail!(
                    "{what}: grouped convolution with {g} groups is not supported by the core \
                     (groups must be 1 or the channel count)"
                ),
            }
        }
        FusedLayer::MaxPool2d {
            kernel,
            stride,
            padding,
        } => CoreOp::MaxPool2d {
            window: window(*kernel, *stride, *padding, what)?,
        },
        FusedLayer::AvgPool2d {
            kernel,
            stride,
            padding,
        } => CoreOp::AvgPool2d {
            window: window(*kernel, *stride, *padding, what)?,
        },
        FusedLayer::GlobalAvgPool => {
            chw(in_shape, what)?;
            CoreOp::Mean
        }
        FusedLayer::Flatten => CoreOp::Reshape,
        FusedLayer::Relu => CoreOp::Activation {
            activation: Activation::Relu,
        },
        FusedLayer::Relu6 => CoreOp::Activation {
            activation: Activation::Relu6,
        },
        FusedLayer::Add => CoreOp::Add { activation: act },
        FusedLayer::Tokens
        | FusedLayer::ClsToken { .. }
        | FusedLayer::PosEmbed { .. }
        | FusedLayer::LayerNorm { .. }
        | FusedLayer::Gelu
        | FusedLayer::Attention { .. }
        | FusedLayer::TokenPool { .. } => bail!("{what}: {VIT_NOT_LOWERED}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Normalization;
    use crate::export::fused::FusedNode;

    fn linear(i: usize, o: usize) -> FusedLayer {
        FusedLayer::Linear {
            in_features: i,
            out_features: o,
            weight: vec![0.0; i * o],
            bias: vec![0.0; o],
        }
    }

    fn conv(i: usize, o: usize, k: usize, s: usize, p: usize) -> FusedLayer {
        FusedLayer::Conv2d {
            in_channels: i,
            out_channels: o,
            kernel: [k, k],
            stride: [s, s],
            padding: [p; 4],
            groups: 1,
            weight: vec![0.0; o * i * k * k],
            bias: vec![0.0; o],
        }
    }

    fn norm(c: usize) -> Normalization {
        Normalization {
            mean: vec![0.0; c],
            std: vec![1.0; c],
        }
    }

    #[test]
    fn mlp_relus_fuse_and_embedding_follows() {
        // 0 Flatten, 1 Linear, 2 ReLU, 3 Linear, 4 ReLU (embedding), 5 Linear.
        let layers = vec![
            FusedLayer::Flatten,
            linear(784, 256),
            FusedLayer::Relu,
            linear(256, 128),
            FusedLayer::Relu,
            linear(128, 10),
        ];
        let m = FusedModel::sequential("mlp".into(), [1, 28, 28], 10, norm(1), layers, 4);
        let g = lower(&m).unwrap();
        assert_eq!(g.nodes.len(), 4);
        let acts: Vec<_> = g
            .nodes
            .iter()
            .map(|n| match n.op {
                CoreOp::Linear { activation, .. } => Some(activation),
                _ => None,
            })
            .collect();
        assert_eq!(
            acts,
            vec![
                None,
                Some(Activation::Relu),
                Some(Activation::Relu),
                Some(Activation::None)
            ]
        );
        assert_eq!(
            g.shapes,
            vec![vec![1, 28, 28], vec![784], vec![256], vec![128], vec![10]]
        );
        assert_eq!((g.embedding, g.logits), (3, 4));
        assert_eq!(g.nodes[2].source, "3 Linear(256→128) + ReLU");
    }

    #[test]
    fn residual_block_keeps_its_skip_and_fuses_the_add_relu() {
        // x → conv a (+ReLU) → conv b ; add(b, x) → ReLU → mean → linear.
        let nodes = vec![
            FusedNode {
                name: "a".into(),
                layer: conv(4, 4, 3, 1, 1),
                inputs: vec![0],
            },
            FusedNode {
                name: "a.relu".into(),
                layer: FusedLayer::Relu,
                inputs: vec![1],
            },
            FusedNode {
                name: "b".into(),
                layer: conv(4, 4, 3, 1, 1),
                inputs: vec![2],
            },
            FusedNode {
                name: "add".into(),
                layer: FusedLayer::Add,
                inputs: vec![3, 0],
            },
            FusedNode {
                name: "relu".into(),
                layer: FusedLayer::Relu,
                inputs: vec![4],
            },
            FusedNode {
                name: "pool".into(),
                layer: FusedLayer::GlobalAvgPool,
                inputs: vec![5],
            },
            FusedNode {
                name: "fc".into(),
                layer: linear(4, 3),
                inputs: vec![6],
            },
        ];
        let m = FusedModel {
            arch: "t".into(),
            input_shape: [4, 6, 6],
            num_classes: 3,
            normalization: norm(4),
            nodes,
            embedding: 6,
        };
        let g = lower(&m).unwrap();
        let kinds: Vec<String> = g
            .nodes
            .iter()
            .map(|n| format!("{:?}", std::mem::discriminant(&n.op)))
            .collect();
        assert_eq!(kinds.len(), 5, "{:?}", g.nodes);
        assert_eq!(
            g.nodes[2].op,
            CoreOp::Add {
                activation: Activation::Relu
            }
        );
        assert_eq!(g.nodes[2].inputs, vec![2, 0]);
        assert_eq!(g.nodes[3].op, CoreOp::Mean);
        assert_eq!(g.shapes[4], vec![4]);
        assert_eq!((g.embedding, g.logits), (4, 5));
    }

    #[test]
    fn grouped_convolutions_other_than_depthwise_are_refused() {
        let layer = FusedLayer::Conv2d {
            in_channels: 4,
            out_channels: 4,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1; 4],
            groups: 2,
            weight: vec![0.0; 4 * 2 * 9],
            bias: vec![0.0; 4],
        };
        let m = FusedModel::sequential("g".into(), [4, 5, 5], 4, norm(4), vec![layer], 0);
        let e = lower(&m).unwrap_err().to_string();
        assert!(e.contains("node 0 '0'") && e.contains("2 groups"), "{e}");
    }
}
