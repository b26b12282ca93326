//! Backbone architectures: the `--arch` grammar and the resulting computation graph.
//!
//! Grammar (widths are positive integers):
//!
//! ```text
//! mlp                      = mlp:256,128
//! mlp:H1,H2,…              Flatten, [Linear(·,Hk), ReLU]…, Linear(·,classes)
//! cnn                      = cnn:32,64/128
//! cnn:C1,C2,…[/H1,H2,…]    [Conv2d(·,Ck,3×3,stride 1,pad 1), ReLU, MaxPool2d(2,2)]…,
//!                          Flatten, [Linear(·,Hk), ReLU]…, Linear(·,classes)
//! resnet8[:F]              MLPerf Tiny image classification ResNet-8 (see [`resnet`]) with F
//!                          base filters (F, 2F, 4F per stack; F = 16, the reference, by default)
//! ds-cnn                   MLPerf Tiny keyword spotting DS-CNN (see [`ds_cnn`])
//! mobilenet-v1[:ALPHA[,relu6]]
//!                          MLPerf Tiny visual wake words MobileNetV1, ALPHA = 0.25 by
//!                          default: 32·ALPHA base channels (see [`mobilenet`]); ReLU, or
//!                          ReLU6 with `,relu6` (the Keras application's activation)
//! autoencoder              MLPerf Tiny anomaly detection FC autoencoder D→128×4→8→128×4→D,
//!                          D = C·H·W of the data (see [`autoencoder`])
//! vit[:P,D,H,L,R[,POOL]]   Vision Transformer (timm's `VisionTransformer`, see [`vit`]): patch
//!                          P, width D, H heads, L blocks, MLP ratio R, POOL = cls | mean;
//!                          `vit` = patch 7 (or the largest of 6…2 dividing the input), 64, 4,
//!                          4, 2, cls
//! ```
//!
//! The MLPerf Tiny architectures adapt to the data's input shape: TF-"same" padding is computed
//! from the actual map sizes (asymmetric at stride 2 on even sizes, as TensorFlow does), and
//! the final pooling reduces whatever map is left to 1×1.
//!
//! **The graph.** An [`Arch`] is a DAG of [`Node`]s in execution order: node `k` reads the
//! graph input or the outputs of earlier nodes ([`Src`]). Each node has a `name`, its PyTorch
//! `state_dict` prefix: a weighted node owns `{name}.weight`, `{name}.bias`, a batch norm also
//! the buffers `{name}.running_mean`, `{name}.running_var`, `{name}.num_batches_tracked`.
//! `mlp`/`cnn` are chains named like an `nn.Sequential` (`0`, `1`, …: `1.weight`); the MLPerf
//! Tiny families are named like nested modules (`layer1.0.conv1.weight`, `bn1.running_mean`).
//!
//! The **embedding** is the input of the final Linear (the penultimate features: the output of
//! the last hidden block of `mlp`/`cnn`, the flattened conv features of `cnn:…` without hidden
//! widths, the globally pooled features of the MLPerf Tiny CNNs) — except for the autoencoder,
//! whose embedding is its 8-wide bottleneck (`encoder.4.relu`), the code it reconstructs from;
//! it is used for retrieval. `embedding_layer` is the node whose output it is. The autoencoder's
//! output (`logits` in the model and the core) is the reconstruction `[N, C·H·W]`: see
//! [`Arch::reconstructs`].
//!
//! **Parameter counts.** [`Arch::param_counts`] gives three counts: `weighted` (Conv2d and
//! Linear weights and biases: the count of the deployed model, whose batch norms are folded
//! into the convs; this is the count the MLPerf Tiny tables quote), `trainable` (plus batch
//! norm `γ`, `β`: Keras' "trainable params"; plus LayerNorm `γ`, `β`, the class token and the
//! position embeddings: PyTorch's `sum(p.numel() for p in model.parameters())`, which for the
//! ViT is also the deployed count, since nothing of it folds away) and `total` (plus the
//! running mean and variance: Keras' `count_params()`; `num_batches_tracked` is not counted).
//!
//! **Tokens.** A node's per-sample output is `[C, H, W]` (a feature map), `[F]` (features) or
//! `[T, D]` (`T` tokens of width `D`, the ViT). A Linear acts on the last dim, so on tokens it
//! is applied to every token (`[T, in] → [T, out]`), and so is its denoiser.

mod autoencoder;
mod cnn;
mod ds_cnn;
mod mlp;
mod mobilenet;
mod resnet;
pub mod vit;

pub use vit::Pool;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// One node's operation and shape.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum LayerSpec {
    /// `y = W·x + b`, `W: [out_features, in_features]`, `x: [N, in_features]`.
    Linear {
        in_features: usize,
        out_features: usize,
    },
    /// 2-D cross-correlation (PyTorch `Conv2d`), `W: [out_channels, in_channels/groups, kh, kw]`,
    /// `b: [out_channels]`. `kernel = [kh, kw]`, `stride = [sh, sw]`, zero `padding =
    /// [top, bottom, left, right]` (asymmetric for TF-"same" at stride 2). `groups` is 1 or
    /// `in_channels` (depthwise; then `out_channels = in_channels`).
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
        groups: usize,
    },
    /// Batch norm over channel dim 1 of `[N, C, H, W]` (BatchNorm2d) or `[N, C]` (BatchNorm1d),
    /// PyTorch semantics: train mode normalizes with the batch mean and biased variance and
    /// updates `running ← (1 − momentum)·running + momentum·batch` (unbiased variance); eval
    /// mode uses `y = (x − μ)/√(σ² + eps)·γ + β` with the running `μ`, `σ²`.
    BatchNorm2d {
        channels: usize,
        eps: f64,
        momentum: f64,
    },
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// No padding, floor mode.
    MaxPool2d {
        kernel: usize,
        stride: usize,
    },
    /// No padding, floor mode, `[kh, kw]` window.
    AvgPool2d {
        kernel: [usize; 2],
        stride: [usize; 2],
    },
    /// Mean over H, W: `[N, C, H, W] → [N, C]` (flattened, so the final Linear follows directly).
    GlobalAvgPool,
    /// Elementwise sum of its two inputs (a residual connection).
    Add,
    /// `[N, C, H, W] → [N, C·H·W]`.
    Flatten,
    /// A feature map's pixels as tokens, `[N, C, H, W] → [N, H·W, C]` (row-major pixel order:
    /// timm's `x.flatten(2).transpose(1, 2)` after the patch embedding).
    Tokens,
    /// Prepends a learned class token (the parameter named like the node, `cls_token`:
    /// `[1, 1, dim]`): `[N, T, dim] → [N, T + 1, dim]`.
    ClsToken {
        dim: usize,
    },
    /// Adds learned position embeddings (the parameter named like the node, `pos_embed`:
    /// `[1, tokens, dim]`) to `[N, tokens, dim]`.
    PosEmbed {
        tokens: usize,
        dim: usize,
    },
    /// `y = (x − mean)/√(var + eps)·γ + β` over the last dim (`dim` wide; biased variance),
    /// `γ = weight`, `β = bias` (PyTorch `LayerNorm`).
    LayerNorm {
        dim: usize,
        eps: f64,
    },
    /// GELU, the exact erf form `x·Φ(x)` (PyTorch `GELU()`, `approximate='none'`).
    Gelu,
    /// Multi-head self-attention on the output of a `qkv` Linear, `[N, T, 3·dim] → [N, T, dim]`:
    /// the last dim is `q | k | v`, each split into `heads` heads of `dim/heads` (timm's
    /// `reshape(N, T, 3, heads, dim/heads)`); per head `softmax(q·kᵀ/√(dim/heads))·v` with the
    /// softmax over keys, heads concatenated in order. No parameters.
    Attention {
        dim: usize,
        heads: usize,
    },
    /// `[N, T, D] → [N, D]`: token 0 (the class token) or the mean over the tokens.
    TokenPool {
        pool: Pool,
    },
}

impl LayerSpec {
    /// True for the layers that own weights and get a denoiser (Linear, Conv2d).
    pub fn is_weighted(&self) -> bool {
        matches!(self, Self::Linear { .. } | Self::Conv2d { .. })
    }

    /// True for a depthwise Conv2d (`groups > 1`, i.e. `groups = in_channels`): its denoiser is
    /// diagonal so that the fused layer stays depthwise.
    pub fn is_depthwise(&self) -> bool {
        matches!(self, Self::Conv2d { groups, .. } if *groups > 1)
    }

    /// Input width seen by a denoiser: `in_features` or `in_channels`; 0 for other layers.
    pub fn in_channels(&self) -> usize {
        match *self {
            Self::Linear { in_features, .. } => in_features,
            Self::Conv2d { in_channels, .. } => in_channels,
            _ => 0,
        }
    }

    /// Shape of the single parameter of a class token (`[1, 1, D]`) or position embedding
    /// (`[1, T, D]`), named like the node itself (timm's `cls_token`, `pos_embed`).
    pub fn embed_shape(&self) -> Option<Vec<i64>> {
        match *self {
            Self::ClsToken { dim } => Some(vec![1, 1, dim as i64]),
            Self::PosEmbed { tokens, dim } => Some(vec![1, tokens as i64, dim as i64]),
            _ => None,
        }
    }

    /// Shapes of `weight` and `bias` for weighted layers and of `weight` (`γ`) and `bias` (`β`)
    /// for batch and layer norms.
    pub fn param_shapes(&self) -> Option<(Vec<i64>, Vec<i64>)> {
        match *self {
            Self::Linear {
                in_features,
                out_features,
            } => Some((
                vec![out_features as i64, in_features as i64],
                vec![out_features as i64],
            )),
            Self::Conv2d {
                in_channels,
                out_channels,
                kernel,
                groups,
                ..
            } => Some((
                vec![
                    out_channels as i64,
                    (in_channels / groups) as i64,
                    kernel[0] as i64,
                    kernel[1] as i64,
                ],
                vec![out_channels as i64],
            )),
            Self::BatchNorm2d { channels, .. } => {
                Some((vec![channels as i64], vec![channels as i64]))
            }
            Self::LayerNorm { dim, .. } => Some((vec![dim as i64], vec![dim as i64])),
            _ => None,
        }
    }

    /// Short kind name for messages (`Conv2d`, `BatchNorm2d`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Linear { .. } => "Linear",
            Self::Conv2d { groups, .. } if *groups > 1 => "depthwise Conv2d",
            Self::Conv2d { .. } => "Conv2d",
            Self::BatchNorm2d { .. } => "BatchNorm2d",
            Self::Relu => "ReLU",
            Self::Relu6 => "ReLU6",
            Self::MaxPool2d { .. } => "MaxPool2d",
            Self::AvgPool2d { .. } => "AvgPool2d",
            Self::GlobalAvgPool => "GlobalAvgPool",
            Self::Add => "Add",
            Self::Flatten => "Flatten",
            Self::Tokens => "Tokens",
            Self::ClsToken { .. } => "ClsToken",
            Self::PosEmbed { .. } => "PosEmbed",
            Self::LayerNorm { .. } => "LayerNorm",
            Self::Gelu => "GELU",
            Self::Attention { .. } => "Attention",
            Self::TokenPool { pool: Pool::Cls } => "TokenPool(cls)",
            Self::TokenPool { pool: Pool::Mean } => "TokenPool(mean)",
        }
    }
}

/// Where a node reads one of its inputs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Src {
    /// The (normalized) graph input `[N, C, H, W]`.
    Input,
    /// The output of an earlier node.
    Node(usize),
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// PyTorch `state_dict` prefix (`0`, `layer1.0.conv1`, …).
    pub name: String,
    pub spec: LayerSpec,
    /// Inputs (two for [`LayerSpec::Add`], one otherwise), each the graph input or an earlier
    /// node.
    pub inputs: Vec<Src>,
}

/// A parsed architecture bound to an input shape and class count.
///
/// Serialized with all fields (for reading `config.json`), deserialized from `spec`,
/// `input_shape` and `num_classes` alone by re-parsing, so `config.json` files written before
/// the graph existed (with a `layers` list) still load to the same architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ArchRecord")]
pub struct Arch {
    /// Canonical arch string, e.g. `mlp:256,128`.
    pub spec: String,
    /// Per-sample input shape `[C, H, W]`.
    pub input_shape: [usize; 3],
    pub num_classes: usize,
    /// The graph in execution order.
    pub nodes: Vec<Node>,
    /// Index of the node whose output is the embedding.
    pub embedding_layer: usize,
    /// Width of the embedding.
    pub embedding_dim: usize,
    /// Width of the output: `num_classes`, or `C·H·W` for the autoencoder (a reconstruction).
    pub output_dim: usize,
}

#[derive(Deserialize)]
struct ArchRecord {
    spec: String,
    input_shape: [usize; 3],
    num_classes: usize,
}

impl TryFrom<ArchRecord> for Arch {
    type Error = anyhow::Error;
    fn try_from(r: ArchRecord) -> Result<Self> {
        Arch::parse(&r.spec, r.input_shape, r.num_classes)
    }
}

/// Parameter counts of an architecture (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCounts {
    /// Conv2d and Linear weights and biases.
    pub weighted: usize,
    /// `weighted` plus batch norm `γ`, `β`.
    pub trainable: usize,
    /// `trainable` plus batch norm running mean and variance.
    pub total: usize,
}

impl Arch {
    /// Parses `spec` (see the module doc) and builds the graph for `input_shape` and
    /// `num_classes`. Errors name the bad part of the string.
    pub fn parse(spec: &str, input_shape: [usize; 3], num_classes: usize) -> Result<Self> {
        let spec = spec.trim();
        let (kind, args) = spec
            .split_once(':')
            .map_or((spec, None), |(k, a)| (k, Some(a)));
        let no_args = |canonical: &str| -> Result<String> {
            match args {
                Some(a) => bail!("arch '{spec}': {kind} takes no arguments, got ':{a}'"),
                None => Ok(canonical.to_string()),
            }
        };
        // Grammar first (so a spec checked without data fails only at the data).
        enum Family {
            Mlp(Vec<usize>),
            Cnn(Vec<usize>, Vec<usize>),
            Resnet8(usize),
            DsCnn,
            MobileNet(f64, LayerSpec),
            Autoencoder,
            Vit(vit::Vit),
        }
        let (mut family, mut canonical) = match kind {
            "mlp" => {
                let hidden = widths(spec, args.unwrap_or("256,128"), "hidden width")?;
                if hidden.is_empty() {
                    bail!("arch '{spec}': mlp needs at least one hidden width, e.g. mlp:256,128");
                }
                let c = format!("mlp:{}", join(&hidden));
                (Family::Mlp(hidden), c)
            }
            "cnn" => {
                let args = args.unwrap_or("32,64/128");
                let (c, h) = args.split_once('/').unwrap_or((args, ""));
                let convs = widths(spec, c, "conv channel width")?;
                if convs.is_empty() {
                    bail!("arch '{spec}': cnn needs at least one conv channel width, e.g. cnn:32,64/128");
                }
                let hidden = widths(spec, h, "hidden width")?;
                let c = format!("cnn:{}/{}", join(&convs), join(&hidden));
                (Family::Cnn(convs, hidden), c)
            }
            "resnet8" => match args {
                None => (Family::Resnet8(16), "resnet8".to_string()),
                Some(a) => {
                    let f = a.trim().parse::<usize>().ok().filter(|f| (1..=1024).contains(f)).with_context(|| {
                        format!("arch '{spec}': base filter count F ('{a}') is not an integer in 1..=1024, e.g. resnet8:16")
                    })?;
                    let c = if f == 16 {
                        "resnet8".to_string()
                    } else {
                        format!("resnet8:{f}")
                    };
                    (Family::Resnet8(f), c)
                }
            },
            "ds-cnn" => (Family::DsCnn, no_args("ds-cnn")?),
            "mobilenet-v1" => {
                // `ALPHA[,relu6]`: the activation is ReLU unless `relu6` follows.
                let (a, relu6) = match args.map(|a| a.split_once(',')) {
                    Some(Some((a, act))) if act.trim() == "relu6" => (Some(a), true),
                    Some(Some((_, act))) => bail!(
                        "arch '{spec}': mobilenet-v1's activation '{act}' is not relu6 (ReLU is \
                         the default), e.g. mobilenet-v1:0.25,relu6"
                    ),
                    _ => (args, false),
                };
                let alpha = match a {
                    None => 0.25,
                    Some(a) => a.trim().parse::<f64>().ok().filter(|a| *a > 0.0 && *a <= 4.0).with_context(|| {
                        format!("arch '{spec}': width multiplier ALPHA ('{a}') is not a number in (0, 4], e.g. mobilenet-v1:0.25")
                    })?,
                };
                let act = if relu6 {
                    LayerSpec::Relu6
                } else {
                    LayerSpec::Relu
                };
                let c = format!("mobilenet-v1:{alpha}{}", if relu6 { ",relu6" } else { "" });
                (Family::MobileNet(alpha, act), c)
            }
            "autoencoder" => (Family::Autoencoder, no_args("autoencoder")?),
            "vit" => (Family::Vit(vit::Vit::parse(spec, args)?), String::new()),
            _ => bail!(
                "arch '{spec}': unknown kind '{kind}' (expected mlp[:H1,H2,…], cnn[:C1,C2,…/H1,…], \
                 resnet8[:F], ds-cnn, mobilenet-v1[:ALPHA[,relu6]], autoencoder or \
                 vit[:PATCH,DIM,HEADS,DEPTH,MLP_RATIO[,POOL]])"
            ),
        };
        if input_shape.contains(&0) || num_classes < 2 {
            bail!("arch '{spec}': input shape {input_shape:?} with {num_classes} classes is not trainable");
        }
        if let Family::Vit(v) = &mut family {
            // The default patch and the patch's fit depend on the input: the canonical string
            // names the patch actually used.
            v.fit_input(spec, input_shape)?;
            canonical = v.canonical();
        }
        let mut b = Builder::new(&canonical, input_shape);
        match family {
            Family::Mlp(hidden) => mlp::build(&mut b, &hidden, num_classes)?,
            Family::Cnn(convs, hidden) => cnn::build(&mut b, &convs, &hidden, num_classes)?,
            Family::Resnet8(f) => resnet::build(&mut b, f, num_classes)?,
            Family::DsCnn => ds_cnn::build(&mut b, num_classes)?,
            Family::MobileNet(alpha, act) => mobilenet::build(&mut b, alpha, act, num_classes)?,
            Family::Autoencoder => autoencoder::build(&mut b)?,
            Family::Vit(v) => vit::build(&mut b, &v, num_classes)?,
        }
        b.finish(num_classes)
    }

    /// True when the model's output is a reconstruction of its (normalized, flattened) input
    /// `[N, C·H·W]`, not class logits: the `autoencoder`, trained with the MSE loss
    /// (`docs/trainer.md`, "Reconstruction and anomaly detection").
    pub fn reconstructs(&self) -> bool {
        self.spec == "autoencoder"
    }

    /// True for the Vision Transformer (`vit:…`): its weights are initialized as timm's
    /// ([`vit`]'s doc).
    pub fn is_vit(&self) -> bool {
        self.spec.starts_with("vit:")
    }

    /// Indices (into `nodes`) of the weighted nodes, in execution order.
    pub fn weighted_layers(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].spec.is_weighted())
            .collect()
    }

    /// The node specs in order (for the chain-shaped consumers: exporters).
    pub fn specs(&self) -> Vec<LayerSpec> {
        self.nodes.iter().map(|n| n.spec).collect()
    }

    /// True when every node reads exactly the previous node (or the input, for node 0): an
    /// `nn.Sequential`.
    pub fn is_chain(&self) -> bool {
        self.nodes.iter().enumerate().all(|(k, n)| {
            n.inputs
                == [match k {
                    0 => Src::Input,
                    _ => Src::Node(k - 1),
                }]
        })
    }

    /// Parameter counts (see the module doc).
    pub fn param_counts(&self) -> ParamCounts {
        let mut c = ParamCounts {
            weighted: 0,
            trainable: 0,
            total: 0,
        };
        for n in &self.nodes {
            if let Some(e) = n.spec.embed_shape() {
                let count = e.iter().product::<i64>() as usize;
                c.trainable += count;
                c.total += count;
            }
            let Some((w, b)) = n.spec.param_shapes() else {
                continue;
            };
            let count = (w.iter().product::<i64>() + b.iter().product::<i64>()) as usize;
            match n.spec {
                LayerSpec::BatchNorm2d { channels, .. } => {
                    c.trainable += count;
                    c.total += count + 2 * channels;
                }
                LayerSpec::LayerNorm { .. } => {
                    c.trainable += count;
                    c.total += count;
                }
                _ => {
                    c.weighted += count;
                    c.trainable += count;
                    c.total += count;
                }
            }
        }
        c
    }
}

/// Per-sample shape of a node's output: `[C, H, W]` or `[F]`.
type Shape = Vec<usize>;

/// Builds a graph in execution order, checking shapes, with PyTorch-module-like scoped names:
/// inside `scoped("layer1", …)` and `scoped("0", …)` a node added as `conv1` is named
/// `layer1.0.conv1`.
pub(crate) struct Builder {
    spec: String,
    input_shape: [usize; 3],
    nodes: Vec<Node>,
    shapes: Vec<Shape>,
    prefix: Vec<String>,
    /// The embedding node when it is not the final Linear's input (the autoencoder's
    /// bottleneck); set with [`Builder::set_embedding`].
    embedding: Option<usize>,
}

/// TF-"same" padding of one spatial dim: output `⌈n/s⌉`, total padding
/// `max((out − 1)·s + k − n, 0)`, the smaller half before (TensorFlow puts the odd pixel at the
/// end). Returns `(before, after)`.
pub fn same_padding(n: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(n);
    (total / 2, total - total / 2)
}

impl Builder {
    fn new(spec: &str, input_shape: [usize; 3]) -> Self {
        Self {
            spec: spec.to_string(),
            input_shape,
            nodes: Vec::new(),
            shapes: Vec::new(),
            prefix: Vec::new(),
            embedding: None,
        }
    }

    /// Makes `src`'s output the embedding instead of the final Linear's input.
    pub(crate) fn set_embedding(&mut self, src: Src) -> Result<()> {
        let Src::Node(k) = src else {
            bail!(
                "arch {}: the embedding must be a node's output, not the raw input",
                self.spec
            );
        };
        self.embedding = Some(k);
        Ok(())
    }

    /// Runs `f` with `name` appended to the name prefix.
    pub(crate) fn scoped<R>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        self.prefix.push(name.to_string());
        let r = f(self);
        self.prefix.pop();
        r
    }

    /// The output shape of `src`.
    pub(crate) fn shape(&self, src: Src) -> Shape {
        match src {
            Src::Input => self.input_shape.to_vec(),
            Src::Node(k) => self.shapes[k].clone(),
        }
    }

    /// The last node added (the graph input before any).
    pub(crate) fn last(&self) -> Src {
        match self.nodes.len() {
            0 => Src::Input,
            n => Src::Node(n - 1),
        }
    }

    /// Adds node `local` (under the current prefix) reading `inputs`; checks the input shapes and
    /// returns the new node.
    pub(crate) fn add(&mut self, local: &str, spec: LayerSpec, inputs: &[Src]) -> Result<Src> {
        let name = self
            .prefix
            .iter()
            .map(String::as_str)
            .chain([local])
            .collect::<Vec<_>>()
            .join(".");
        let arity = if spec == LayerSpec::Add { 2 } else { 1 };
        if inputs.len() != arity {
            bail!(
                "arch {}: node '{name}' ({}) needs {arity} input(s)",
                self.spec,
                spec.kind()
            );
        }
        let shapes: Vec<Shape> = inputs.iter().map(|&s| self.shape(s)).collect();
        let x = &shapes[0];
        let spatial = |what: &str| -> Result<(usize, usize, usize)> {
            match x[..] {
                [c, h, w] => Ok((c, h, w)),
                _ => bail!(
                    "arch {}: node '{name}' ({what}) needs a [C, H, W] input, got {x:?}",
                    self.spec
                ),
            }
        };
        let out: Shape = match spec {
            LayerSpec::Linear {
                in_features,
                out_features,
            } => {
                // Features `[in]`, or tokens `[T, in]` (applied to every token).
                if !(x.len() == 1 || x.len() == 2) || x.last() != Some(&in_features) {
                    bail!(
                        "arch {}: node '{name}' Linear({in_features}→{out_features}) gets input {x:?}",
                        self.spec
                    );
                }
                let mut out = x.clone();
                out[x.len() - 1] = out_features;
                out
            }
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                groups,
            } => {
                let (c, h, w) = spatial("Conv2d")?;
                if c != in_channels
                    || !(groups == 1 || (groups == in_channels && out_channels == in_channels))
                    || kernel.contains(&0)
                    || stride.contains(&0)
                {
                    bail!(
                        "arch {}: node '{name}' {spec:?} does not fit input {x:?} (groups must be 1 \
                         or in_channels = out_channels)",
                        self.spec
                    );
                }
                let (ph, pw) = (h + padding[0] + padding[1], w + padding[2] + padding[3]);
                if ph < kernel[0] || pw < kernel[1] {
                    bail!(
                        "arch {}: node '{name}' has a {}×{} kernel on a padded {ph}×{pw} map; the \
                         {}×{} input is too small for this architecture",
                        self.spec,
                        kernel[0],
                        kernel[1],
                        self.input_shape[1],
                        self.input_shape[2]
                    );
                }
                vec![
                    out_channels,
                    (ph - kernel[0]) / stride[0] + 1,
                    (pw - kernel[1]) / stride[1] + 1,
                ]
            }
            LayerSpec::BatchNorm2d { channels, .. } => {
                if x[0] != channels {
                    bail!(
                        "arch {}: node '{name}' BatchNorm2d({channels}) gets input {x:?}",
                        self.spec
                    );
                }
                x.clone()
            }
            LayerSpec::Relu | LayerSpec::Relu6 => x.clone(),
            LayerSpec::MaxPool2d { kernel, stride } => {
                let (c, h, w) = spatial("MaxPool2d")?;
                if h < kernel || w < kernel {
                    bail!("arch {}: node '{name}' would pool a {h}×{w} map", self.spec);
                }
                vec![c, (h - kernel) / stride + 1, (w - kernel) / stride + 1]
            }
            LayerSpec::AvgPool2d { kernel, stride } => {
                let (c, h, w) = spatial("AvgPool2d")?;
                if h < kernel[0] || w < kernel[1] || kernel.contains(&0) || stride.contains(&0) {
                    bail!(
                        "arch {}: node '{name}' would pool a {h}×{w} map with {kernel:?}",
                        self.spec
                    );
                }
                vec![
                    c,
                    (h - kernel[0]) / stride[0] + 1,
                    (w - kernel[1]) / stride[1] + 1,
                ]
            }
            LayerSpec::GlobalAvgPool => vec![spatial("GlobalAvgPool")?.0],
            LayerSpec::Add => {
                if shapes[0] != shapes[1] {
                    bail!(
                        "arch {}: node '{name}' adds shapes {:?} and {:?}",
                        self.spec,
                        shapes[0],
                        shapes[1]
                    );
                }
                x.clone()
            }
            LayerSpec::Flatten => {
                let Some(n) = x.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
                    bail!("arch {}: {x:?} features overflow", self.spec);
                };
                vec![n]
            }
            LayerSpec::Tokens => {
                let (c, h, w) = spatial("Tokens")?;
                vec![h * w, c]
            }
            LayerSpec::ClsToken { dim } => match x[..] {
                [t, d] if d == dim => vec![t + 1, dim],
                _ => bail!(
                    "arch {}: node '{name}' ClsToken({dim}) needs [tokens, {dim}], gets {x:?}",
                    self.spec
                ),
            },
            LayerSpec::PosEmbed { tokens, dim } => {
                if x[..] != [tokens, dim] {
                    bail!(
                        "arch {}: node '{name}' PosEmbed({tokens}×{dim}) gets input {x:?}",
                        self.spec
                    );
                }
                x.clone()
            }
            LayerSpec::LayerNorm { dim, .. } => {
                if x.last() != Some(&dim) {
                    bail!(
                        "arch {}: node '{name}' LayerNorm({dim}) gets input {x:?}",
                        self.spec
                    );
                }
                x.clone()
            }
            LayerSpec::Gelu => x.clone(),
            LayerSpec::Attention { dim, heads } => match x[..] {
                [t, w] if w == 3 * dim && heads > 0 && dim % heads == 0 => vec![t, dim],
                _ => bail!(
                    "arch {}: node '{name}' Attention({dim}, {heads} heads) needs [tokens, {}] \
                     with {dim} divisible by {heads}, gets {x:?}",
                    self.spec,
                    3 * dim
                ),
            },
            LayerSpec::TokenPool { .. } => match x[..] {
                [_, d] => vec![d],
                _ => bail!(
                    "arch {}: node '{name}' TokenPool needs [tokens, D], gets {x:?}",
                    self.spec
                ),
            },
        };
        self.nodes.push(Node {
            name,
            spec,
            inputs: inputs.to_vec(),
        });
        self.shapes.push(out);
        Ok(self.last())
    }

    /// Adds a node reading the last node.
    pub(crate) fn then(&mut self, local: &str, spec: LayerSpec) -> Result<Src> {
        let x = self.last();
        self.add(local, spec, &[x])
    }

    /// Conv2d with TF-"same" padding for `x`'s map size (`groups`: 1 or the channel count).
    pub(crate) fn conv_same(
        &mut self,
        local: &str,
        x: Src,
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        groups: usize,
    ) -> Result<Src> {
        let s = self.shape(x);
        let [c, h, w] = s[..] else {
            bail!(
                "arch {}: conv '{local}' needs a [C, H, W] input, got {s:?}",
                self.spec
            );
        };
        let (top, bottom) = same_padding(h, kernel[0], stride[0]);
        let (left, right) = same_padding(w, kernel[1], stride[1]);
        self.add(
            local,
            LayerSpec::Conv2d {
                in_channels: c,
                out_channels,
                kernel,
                stride,
                padding: [top, bottom, left, right],
                groups,
            },
            &[x],
        )
    }

    /// A batch norm with PyTorch's defaults (`eps = 1e-5`, `momentum = 0.1`) over `x`'s channels.
    pub(crate) fn bn(&mut self, local: &str, x: Src) -> Result<Src> {
        let channels = self.shape(x)[0];
        self.add(
            local,
            LayerSpec::BatchNorm2d {
                channels,
                eps: 1e-5,
                momentum: 0.1,
            },
            &[x],
        )
    }

    /// A Linear from `x`'s features (`[F]`), or from each of its tokens (`[T, D]`).
    pub(crate) fn linear(&mut self, local: &str, x: Src, out_features: usize) -> Result<Src> {
        let s = self.shape(x);
        let (1 | 2, Some(&in_features)) = (s.len(), s.last()) else {
            bail!(
                "arch {}: Linear '{local}' needs a flat or token input, got {s:?}",
                self.spec
            );
        };
        self.add(
            local,
            LayerSpec::Linear {
                in_features,
                out_features,
            },
            &[x],
        )
    }

    /// The graph, with the embedding = the input of the final node (which must be a Linear), or
    /// the node given to [`Builder::set_embedding`].
    fn finish(self, num_classes: usize) -> Result<Arch> {
        let Some(last) = self.nodes.last() else {
            bail!("arch {}: empty graph", self.spec);
        };
        let LayerSpec::Linear { out_features, .. } = last.spec else {
            bail!("arch {}: the last node must be a Linear", self.spec);
        };
        let Src::Node(penultimate) = last.inputs[0] else {
            bail!("arch {}: the final Linear reads the raw input", self.spec);
        };
        let embedding_layer = self.embedding.unwrap_or(penultimate);
        Ok(Arch {
            spec: self.spec,
            input_shape: self.input_shape,
            num_classes,
            embedding_dim: self.shapes[embedding_layer][0],
            embedding_layer,
            output_dim: out_features,
            nodes: self.nodes,
        })
    }
}

fn widths(spec: &str, list: &str, what: &str) -> Result<Vec<usize>> {
    if list.trim().is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .enumerate()
        .map(|(i, s)| {
            let n: usize = s.trim().parse().with_context(|| {
                format!(
                    "arch '{spec}': {what} {} ('{s}') is not a positive whole number",
                    i + 1
                )
            })?;
            if n == 0 {
                bail!("arch '{spec}': {what} {} is 0", i + 1);
            }
            Ok(n)
        })
        .collect()
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use LayerSpec::*;

    fn conv3(in_channels: usize, out_channels: usize) -> LayerSpec {
        Conv2d {
            in_channels,
            out_channels,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1, 1, 1],
            groups: 1,
        }
    }

    #[test]
    fn mlp_layers_and_embedding() {
        let a = Arch::parse("mlp:256,128", [1, 28, 28], 10).unwrap();
        assert_eq!(a.spec, "mlp:256,128");
        assert_eq!(
            a.specs(),
            vec![
                Flatten,
                Linear {
                    in_features: 784,
                    out_features: 256
                },
                Relu,
                Linear {
                    in_features: 256,
                    out_features: 128
                },
                Relu,
                Linear {
                    in_features: 128,
                    out_features: 10
                },
            ]
        );
        let names: Vec<&str> = a.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["0", "1", "2", "3", "4", "5"]);
        assert!(a.is_chain());
        assert_eq!((a.embedding_layer, a.embedding_dim), (4, 128));
        assert_eq!(a.weighted_layers(), vec![1, 3, 5]);
        assert_eq!(
            Arch::parse("mlp", [1, 28, 28], 10).unwrap().spec,
            "mlp:256,128"
        );
    }

    #[test]
    fn cnn_adapts_to_input_shape() {
        let a = Arch::parse("cnn", [3, 32, 32], 10).unwrap();
        assert_eq!(a.spec, "cnn:32,64/128");
        assert!(a.is_chain());
        assert_eq!(a.nodes[0].spec, conv3(3, 32));
        assert_eq!(a.nodes[6].spec, Flatten);
        assert_eq!(
            a.nodes[7].spec,
            Linear {
                in_features: 64 * 8 * 8,
                out_features: 128
            }
        );
        let b = Arch::parse("cnn:8/", [1, 8, 8], 4).unwrap();
        assert_eq!(b.nodes.len(), 5);
        assert_eq!((b.embedding_layer, b.embedding_dim), (3, 8 * 4 * 4));
        // 28 → 14 → 7 → 3 (floor).
        let c = Arch::parse("cnn:4,4,4/16", [1, 28, 28], 10).unwrap();
        assert_eq!(
            c.nodes[10].spec,
            Linear {
                in_features: 4 * 3 * 3,
                out_features: 16
            }
        );
    }

    #[test]
    fn old_config_json_arch_loads_by_reparsing() {
        // An `arch` object as written before the graph (a `layers` list) deserializes.
        let old = r#"{"spec":"cnn:8/","input_shape":[1,8,8],"num_classes":4,
            "layers":[{"Conv2d":{"in_channels":1,"out_channels":8,"kernel":3,"stride":1,"padding":1}},
            "Relu",{"MaxPool2d":{"kernel":2,"stride":2}},"Flatten",
            {"Linear":{"in_features":128,"out_features":4}}],"embedding_layer":3,"embedding_dim":128}"#;
        let a: Arch = serde_json::from_str(old).unwrap();
        assert_eq!(a, Arch::parse("cnn:8/", [1, 8, 8], 4).unwrap());
        let back: Arch = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        let bad = r#"{"spec":"cnn:0","input_shape":[1,8,8],"num_classes":4}"#;
        assert!(serde_json::from_str::<Arch>(bad).is_err());
    }

    #[test]
    fn same_padding_matches_tensorflow() {
        // TF: out = ⌈n/s⌉, the odd pixel of padding goes after.
        assert_eq!(same_padding(32, 3, 1), (1, 1));
        assert_eq!(same_padding(32, 3, 2), (0, 1));
        assert_eq!(same_padding(33, 3, 2), (1, 1));
        assert_eq!(same_padding(49, 10, 2), (4, 5));
        assert_eq!(same_padding(10, 4, 2), (1, 1));
        assert_eq!(same_padding(32, 1, 2), (0, 0));
        assert_eq!(same_padding(5, 1, 1), (0, 0));
    }

    #[test]
    fn errors_name_the_bad_part() {
        let e = |s: &str, shape| format!("{:#}", Arch::parse(s, shape, 10).unwrap_err());
        assert!(e("transformer", [1, 28, 28]).contains("unknown kind 'transformer'"));
        assert!(e("mlp:256,x", [1, 28, 28]).contains("hidden width 2 ('x')"));
        assert!(e("mlp:0", [1, 28, 28]).contains("hidden width 1 is 0"));
        assert!(e("cnn:8,y/16", [1, 28, 28]).contains("conv channel width 2 ('y')"));
        assert!(e("cnn", [20, 1, 1]).contains("tabular"));
        assert!(e("cnn:8,8,8,8", [1, 8, 8]).contains("conv block 4"));
        assert!(e("mlp:", [1, 8, 8]).contains("at least one hidden width"));
        assert!(e("ds-cnn:3", [1, 49, 10]).contains("takes no arguments"));
        assert!(e("mobilenet-v1:x", [1, 28, 28]).contains("ALPHA ('x')"));
        assert!(e("mobilenet-v1:0", [1, 28, 28]).contains("ALPHA ('0')"));
        assert!(e("vit:7,64,3,4,2", [1, 28, 28]).contains("DIM 64 is not divisible by HEADS 3"));
        assert!(e("vit:5,64,4,4,2", [1, 28, 28]).contains("PATCH 5 does not divide"));
        // Grammar is checked before the data.
        assert!(e("resnet8", [0, 0, 0]).ends_with("is not trainable"));
    }

    /// The MLPerf Tiny tables quote the Conv2d/Dense weights and biases only (the deployed
    /// model, batch norms folded); Keras' `count_params()` of the reference adds 4 values per
    /// batch norm channel (`γ`, `β`, moving mean, moving variance), 2 of them trainable.
    #[test]
    fn mlperf_tiny_parameter_counts_match_the_reference() {
        for (spec, shape, classes, weighted, trainable, total, bn_channels) in [
            // 16/32/64 stacks on CIFAR-10: BN channels 16·3 + 32·2 + 64·2 = 240.
            ("resnet8", [3, 32, 32], 10, 77_706, 78_186, 78_666, 240),
            // 49×10 MFCCs, 12 keywords: BN channels 64·9 = 576.
            ("ds-cnn", [1, 49, 10], 12, 22_604, 23_756, 24_908, 576),
            // 96×96 RGB, person / no person: BN channels 8 + Σ(c_in + c_out) = 2736.
            (
                "mobilenet-v1",
                [3, 96, 96],
                2,
                210_850,
                216_322,
                221_794,
                2736,
            ),
            // 640 = 5 frames × 128 mel bins: BN channels 128·8 + 8 = 1032.
            (
                "autoencoder",
                [640, 1, 1],
                2,
                265_864,
                267_928,
                269_992,
                1032,
            ),
        ] {
            let a = Arch::parse(spec, shape, classes).unwrap();
            let c = a.param_counts();
            assert_eq!(
                (c.weighted, c.trainable, c.total),
                (weighted, trainable, total),
                "{spec}"
            );
            assert_eq!(c.trainable - c.weighted, 2 * bn_channels, "{spec}");
        }
    }

    #[test]
    fn resnet8_base_filters_scale_every_stack() {
        let a = Arch::parse("resnet8:8", [1, 28, 28], 10).unwrap();
        assert_eq!(a.spec, "resnet8:8");
        // conv1 80 + layer1 2·584 + layer2 1168 + 2320 + 144 + layer3 4640 + 9248 + 544 + fc 330.
        assert_eq!(a.param_counts().weighted, 19_642);
        assert_eq!(a.embedding_dim, 32);
        assert_eq!(
            Arch::parse("resnet8:16", [3, 32, 32], 10).unwrap().spec,
            "resnet8"
        );
        for bad in ["resnet8:0", "resnet8:x", "resnet8:2000"] {
            let e = Arch::parse(bad, [1, 28, 28], 10).unwrap_err().to_string();
            assert!(e.contains("base filter count"), "{bad}: {e}");
        }
    }

    #[test]
    fn resnet8_graph_names_and_shapes() {
        let a = Arch::parse("resnet8", [3, 32, 32], 10).unwrap();
        assert_eq!(a.spec, "resnet8");
        let names: Vec<&str> = a.nodes.iter().map(|n| n.name.as_str()).collect();
        for want in [
            "conv1",
            "bn1",
            "layer1.0.conv1",
            "layer1.0.bn2",
            "layer1.0.add",
            "layer2.0.shortcut",
            "layer3.0.relu2",
            "avgpool",
            "fc",
        ] {
            assert!(names.contains(&want), "{want} in {names:?}");
        }
        // layer1 keeps the shape: identity shortcut; layers 2, 3 get a 1×1 stride-2 conv.
        assert!(!names.contains(&"layer1.0.shortcut"));
        let node = |n: &str| a.nodes.iter().position(|x| x.name == n).unwrap();
        let sc = &a.nodes[node("layer2.0.shortcut")];
        assert_eq!(
            sc.spec,
            Conv2d {
                in_channels: 16,
                out_channels: 32,
                kernel: [1, 1],
                stride: [2, 2],
                padding: [0, 0, 0, 0],
                groups: 1
            }
        );
        // TF-"same" 3×3 stride 2 on 32: pad 0 before, 1 after.
        match a.nodes[node("layer2.0.conv1")].spec {
            Conv2d { padding, .. } => assert_eq!(padding, [0, 1, 0, 1]),
            _ => panic!(),
        }
        let add = &a.nodes[node("layer2.0.add")];
        assert_eq!(
            add.inputs,
            [
                Src::Node(node("layer2.0.shortcut")),
                Src::Node(node("layer2.0.bn2"))
            ]
        );
        assert!(!a.is_chain());
        assert_eq!((a.embedding_layer, a.embedding_dim), (node("avgpool"), 64));
        assert_eq!(a.output_dim, 10);
        assert_eq!(a.weighted_layers().len(), 10);
        // MNIST: 28 → 28 → 14 → 7, pooled to 1×1.
        let m = Arch::parse("resnet8", [1, 28, 28], 10).unwrap();
        assert_eq!(m.embedding_dim, 64);
        assert_eq!(m.param_counts().weighted, 77_706 - 2 * 9 * 16);
    }

    #[test]
    fn ds_cnn_and_mobilenet_shapes_follow_the_input() {
        let a = Arch::parse("ds-cnn", [1, 49, 10], 12).unwrap();
        // 10×4 stride 2 TF-"same" on 49×10: out 25×5, padding 4/5 rows, 1/1 columns.
        assert_eq!(
            a.nodes[0].spec,
            Conv2d {
                in_channels: 1,
                out_channels: 64,
                kernel: [10, 4],
                stride: [2, 2],
                padding: [4, 5, 1, 1],
                groups: 1
            }
        );
        let dw = a.nodes.iter().find(|n| n.name == "blocks.3.dw").unwrap();
        assert!(dw.spec.is_depthwise());
        assert_eq!(dw.spec.param_shapes().unwrap().0, vec![64, 1, 3, 3]);
        let pool = a.nodes.iter().find(|n| n.name == "avgpool").unwrap();
        assert_eq!(
            pool.spec,
            AvgPool2d {
                kernel: [24, 5],
                stride: [24, 5]
            }
        );
        assert_eq!(a.embedding_dim, 64);
        assert_eq!(a.weighted_layers().len(), 10);
        let m = Arch::parse("ds-cnn", [1, 28, 28], 10).unwrap();
        assert_eq!(m.embedding_dim, 64);
        let v = Arch::parse("mobilenet-v1", [3, 32, 32], 10).unwrap();
        assert_eq!(v.spec, "mobilenet-v1:0.25");
        assert_eq!(v.weighted_layers().len(), 28);
        assert_eq!(v.embedding_dim, 256);
        let w = Arch::parse("mobilenet-v1:0.5", [1, 28, 28], 10).unwrap();
        assert_eq!(
            (w.spec.as_str(), w.embedding_dim),
            ("mobilenet-v1:0.5", 512)
        );
        assert_eq!(w.nodes.iter().filter(|n| n.spec.is_depthwise()).count(), 13);
        // `,relu6`: every activation is ReLU6, nothing else changes.
        let r = Arch::parse("mobilenet-v1:0.5,relu6", [1, 28, 28], 10).unwrap();
        assert_eq!(r.spec, "mobilenet-v1:0.5,relu6");
        assert_eq!(r.nodes.iter().filter(|n| n.spec == Relu6).count(), 27);
        assert!(!r.nodes.iter().any(|n| n.spec == Relu));
        assert_eq!(r.param_counts(), w.param_counts());
        let e = Arch::parse("mobilenet-v1:0.5,gelu", [1, 28, 28], 10).unwrap_err();
        assert!(e.to_string().contains("'gelu' is not relu6"), "{e}");
    }

    #[test]
    fn autoencoder_reconstructs_the_flattened_input() {
        let a = Arch::parse("autoencoder", [1, 28, 28], 10).unwrap();
        assert_eq!((a.output_dim, a.embedding_dim), (784, 8));
        assert_eq!(a.nodes[a.embedding_layer].name, "encoder.4.relu");
        assert!(a.reconstructs());
        assert!(!Arch::parse("mlp", [1, 28, 28], 10).unwrap().reconstructs());
        assert_eq!(a.weighted_layers().len(), 10);
        let names: Vec<&str> = a.nodes.iter().map(|n| n.name.as_str()).collect();
        assert!(names.contains(&"encoder.4.fc") && names.contains(&"decoder.3.bn"));
        match a
            .nodes
            .iter()
            .find(|n| n.name == "encoder.4.fc")
            .unwrap()
            .spec
        {
            Linear { out_features, .. } => assert_eq!(out_features, 8),
            _ => panic!(),
        }
        let t = Arch::parse("autoencoder", [20, 1, 1], 2).unwrap();
        assert_eq!(t.output_dim, 20);
    }
}
