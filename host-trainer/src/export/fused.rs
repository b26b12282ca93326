//! The fused model as plain CPU `f32` arrays: what the exporter turns into the core's model
//! format. Evaluating these layers in order on normalized inputs gives exactly the fused forward
//! ([`Mode::Fused`](crate::model::Mode::Fused)); [`Model::plain`] gives the backbone alone (the
//! baseline the exporter compares against).

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use crate::arch::{LayerSpec, Src};
use crate::data::Normalization;
use crate::fuse;
use crate::model::{Grads, Mode, Model};

/// One layer of the fused model (BatchNorm already folded, denoisers folded into the weights).
/// Weights are row-major and contiguous, in PyTorch layouts.
#[derive(Debug, Clone, PartialEq)]
pub enum FusedLayer {
    /// `y = W·x + b` on the last dim; `weight` is `[out_features, in_features]`.
    Linear {
        in_features: usize,
        out_features: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
    /// Cross-correlation as in PyTorch; `weight` is `[out, in / groups, kh, kw]`; `padding` is
    /// `[top, bottom, left, right]` zeros. `groups` is 1 or `in_channels = out_channels`
    /// (depthwise).
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
        groups: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// Floor mode; padded taps never win.
    MaxPool2d {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
    },
    /// Floor mode; the mean over the in-bounds taps (PyTorch `count_include_pad=False`).
    AvgPool2d {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
    },
    /// Mean over H, W: `[C, H, W] → [C]`.
    GlobalAvgPool,
    /// `[C, H, W] → [C·H·W]` in CHW order.
    Flatten,
    /// Elementwise sum of the two inputs (residual connection).
    Add,
}

impl FusedLayer {
    /// True for the layers with weights (Linear, Conv2d).
    pub fn is_weighted(&self) -> bool {
        matches!(self, Self::Linear { .. } | Self::Conv2d { .. })
    }

    /// A short description for messages, e.g. `Conv2d(16→32, 3×3, stride 2)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Linear {
                in_features,
                out_features,
                ..
            } => format!("Linear({in_features}→{out_features})"),
            Self::Conv2d {
                in_channels,
                out_channels,
                kernel: [kh, kw],
                stride,
                groups,
                ..
            } => {
                let kind = if *groups > 1 {
                    "DepthwiseConv2d"
                } else {
                    "Conv2d"
                };
                let mut s = format!("{kind}({in_channels}→{out_channels}, {kh}×{kw}");
                if stride != &[1, 1] {
                    s.push_str(&format!(", stride {}", stride[0]));
                }
                s.push(')');
                s
            }
            Self::Relu => "ReLU".into(),
            Self::Relu6 => "ReLU6".into(),
            Self::MaxPool2d {
                kernel: [kh, kw],
                stride,
                ..
            } => format!("MaxPool2d({kh}×{kw}, stride {})", stride[0]),
            Self::AvgPool2d {
                kernel: [kh, kw],
                stride,
                ..
            } => format!("AvgPool2d({kh}×{kw}, stride {})", stride[0]),
            Self::GlobalAvgPool => "GlobalAvgPool".into(),
            Self::Flatten => "Flatten".into(),
            Self::Add => "Add".into(),
        }
    }
}

/// Where a node reads a value from: value 0 is the normalized model input, value `k + 1` the
/// output of node `k`.
pub type ValueId = usize;

/// One node of the fused graph, in execution order.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedNode {
    /// PyTorch `state_dict` prefix of the layer (`layer1.0.conv1`; `3` in an `nn.Sequential`).
    pub name: String,
    pub layer: FusedLayer,
    /// Values it reads (one, two for Add), each produced earlier.
    pub inputs: Vec<ValueId>,
}

/// The fused model: normalize `(x − mean[c]) / std[c]` (CHW input), then `nodes` in order; the
/// logits are the last node's output.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedModel {
    pub arch: String,
    pub input_shape: [usize; 3],
    pub num_classes: usize,
    pub normalization: Normalization,
    pub nodes: Vec<FusedNode>,
    /// The value used as the embedding (retrieval features).
    pub embedding: ValueId,
}

impl FusedModel {
    /// A sequential model: node `k` reads value `k` (the previous node's output); node names
    /// are the `nn.Sequential` indices.
    pub fn sequential(
        arch: String,
        input_shape: [usize; 3],
        num_classes: usize,
        normalization: Normalization,
        layers: Vec<FusedLayer>,
        embedding_layer: usize,
    ) -> Self {
        let nodes = layers
            .into_iter()
            .enumerate()
            .map(|(k, layer)| FusedNode {
                name: k.to_string(),
                layer,
                inputs: vec![k],
            })
            .collect();
        Self {
            arch,
            input_shape,
            num_classes,
            normalization,
            nodes,
            embedding: embedding_layer + 1,
        }
    }
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    let flat = t
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .flatten(0, -1);
    Vec::<f32>::try_from(&flat).context("copying a fused tensor to the host")
}

impl Model {
    /// The fused layer list (denoisers folded into the weights; the plain backbone when the
    /// model has no denoisers).
    pub fn fused(&self) -> Result<FusedModel> {
        self.layer_arrays(Mode::Fused)
    }

    /// The backbone alone, denoisers ignored ([`Mode::Plain`]): the baseline a fused model is
    /// compared with (same layers and shapes, the backbone's own weights).
    pub fn plain(&self) -> Result<FusedModel> {
        self.layer_arrays(Mode::Plain)
    }

    /// The graph with the weights a forward in `mode` uses ([`Mode::Unfused`] uses the
    /// backbone weights, like [`Mode::Plain`]), every BatchNorm folded into the Linear / Conv2d
    /// before it: denoiser first (it acts on the layer's input), then the batch norm (it acts on
    /// the layer's output), `W' = W·s`, `b' = (b − μ)·s + β`, `s = γ/√(σ² + ε)`
    /// ([`fuse::fold_batchnorm`]). A batch norm that does not follow a weighted layer whose
    /// output only it reads is refused.
    fn layer_arrays(&self, mode: Mode) -> Result<FusedModel> {
        let params = tch::no_grad(|| self.layer_params(mode, Grads::NONE));
        let nodes = &self.arch.nodes;
        let value = |src: Src| match src {
            Src::Input => 0,
            Src::Node(k) => k + 1,
        };
        let mut readers = vec![0usize; nodes.len() + 1];
        for node in nodes {
            for &src in &node.inputs {
                readers[value(src)] += 1;
            }
        }
        // Arch value → fused value; a folded batch norm maps to its layer's value.
        let mut remap: Vec<usize> = vec![0; nodes.len() + 1];
        let mut out: Vec<FusedNode> = Vec::with_capacity(nodes.len());
        // Fused (w, b) of each emitted weighted node, by its index in `out`, still as tensors.
        let mut pending: Vec<Option<(Tensor, Tensor)>> = Vec::new();
        for (k, node) in nodes.iter().enumerate() {
            let inputs: Vec<usize> = node.inputs.iter().map(|&s| remap[value(s)]).collect();
            let what = || {
                format!(
                    "node {k} '{}' ({}) of arch {}",
                    node.name,
                    node.spec.kind(),
                    self.arch.spec
                )
            };
            let layer = match (node.spec, &params[k]) {
                (LayerSpec::BatchNorm2d { eps, .. }, _) => {
                    let src = node.inputs.first().copied().map(value);
                    let target = src.filter(|&v| v > 0 && readers[v] == 1).map(|v| v - 1);
                    let j = match target {
                        Some(j) if nodes[j].spec.is_weighted() => remap[j + 1] - 1,
                        _ => anyhow::bail!(
                            "{}: a batch norm can only be exported right after the Linear or \
                             Conv2d whose output only it reads (it is folded into that layer)",
                            what()
                        ),
                    };
                    let bn = self.bn[k].as_ref().context("batch norm without state")?;
                    let (w, b) = pending[j].take().context("batch norm folded twice")?;
                    let terms = fuse::BnTerms {
                        gamma: &bn.weight,
                        beta: &bn.bias,
                        mean: &bn.running_mean,
                        var: &bn.running_var,
                        eps,
                    };
                    pending[j] = Some(tch::no_grad(|| fuse::fold_batchnorm(&w, &b, &terms)));
                    remap[k + 1] = j + 1;
                    continue;
                }
                (
                    LayerSpec::Linear {
                        in_features,
                        out_features,
                    },
                    Some((w, b)),
                ) => {
                    pending.push(Some((w.shallow_clone(), b.shallow_clone())));
                    FusedLayer::Linear {
                        in_features,
                        out_features,
                        weight: Vec::new(),
                        bias: Vec::new(),
                    }
                }
                (
                    LayerSpec::Conv2d {
                        in_channels,
                        out_channels,
                        kernel,
                        stride,
                        padding,
                        groups,
                    },
                    Some((w, b)),
                ) => {
                    pending.push(Some((w.shallow_clone(), b.shallow_clone())));
                    FusedLayer::Conv2d {
                        in_channels,
                        out_channels,
                        kernel,
                        stride,
                        padding,
                        groups,
                        weight: Vec::new(),
                        bias: Vec::new(),
                    }
                }
                (spec, None) if spec.is_weighted() => {
                    anyhow::bail!("{}: weighted layer without parameters (a bug)", what())
                }
                (LayerSpec::Relu, _) => FusedLayer::Relu,
                (LayerSpec::Relu6, _) => FusedLayer::Relu6,
                (LayerSpec::MaxPool2d { kernel, stride }, _) => FusedLayer::MaxPool2d {
                    kernel: [kernel; 2],
                    stride: [stride; 2],
                    padding: [0; 4],
                },
                (LayerSpec::AvgPool2d { kernel, stride }, _) => FusedLayer::AvgPool2d {
                    kernel,
                    stride,
                    padding: [0; 4],
                },
                (LayerSpec::GlobalAvgPool, _) => FusedLayer::GlobalAvgPool,
                (LayerSpec::Flatten, _) => FusedLayer::Flatten,
                (LayerSpec::Add, _) => FusedLayer::Add,
                (spec, _) => anyhow::bail!("{}: {spec:?} cannot be exported", what()),
            };
            if !layer.is_weighted() {
                pending.push(None);
            }
            out.push(FusedNode {
                name: node.name.clone(),
                layer,
                inputs,
            });
            remap[k + 1] = out.len();
        }
        for (node, wb) in out.iter_mut().zip(pending) {
            if let Some((w, b)) = wb {
                match &mut node.layer {
                    FusedLayer::Linear { weight, bias, .. }
                    | FusedLayer::Conv2d { weight, bias, .. } => {
                        *weight = to_vec(&w)?;
                        *bias = to_vec(&b)?;
                    }
                    _ => {}
                }
            }
        }
        Ok(FusedModel {
            arch: self.arch.spec.clone(),
            input_shape: self.arch.input_shape,
            num_classes: self.arch.num_classes,
            normalization: self.normalization.clone(),
            nodes: out,
            embedding: remap[self.arch.embedding_layer + 1],
        })
    }
}
