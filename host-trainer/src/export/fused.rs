//! The fused model as plain CPU `f32` arrays: what the exporter turns into the core's model
//! format. Evaluating these layers in order on normalized inputs gives exactly the fused forward
//! ([`Mode::Fused`](crate::model::Mode::Fused)); [`Model::plain`] gives the backbone alone (the
//! baseline the exporter compares against).
//!
//! Values are per sample (batch 1): `[C, H, W]` maps, `[F]` features, or `[T, D]` tokens (the
//! ViT). The ViT's node kinds — [`FusedLayer::Tokens`], [`FusedLayer::ClsToken`],
//! [`FusedLayer::PosEmbed`], [`FusedLayer::LayerNorm`], [`FusedLayer::Gelu`],
//! [`FusedLayer::Attention`], [`FusedLayer::TokenPool`] — carry everything the lowering needs
//! (constants included); [`crate::export::lower`] maps each to core ops.

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use crate::arch::{LayerSpec, Pool, Src};
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
    /// `[C, H, W] → [H·W, C]`: the pixels as tokens, row-major (a reshape to `[C, H·W]`, then a
    /// transpose).
    Tokens,
    /// Prepends the constant class token `token` (`[dim]`): `[T, dim] → [T + 1, dim]` (a
    /// concat on axis 0 with a constant).
    ClsToken {
        dim: usize,
        token: Vec<f32>,
    },
    /// Adds the constant position embeddings `table` (`[tokens, dim]`, row-major).
    PosEmbed {
        tokens: usize,
        dim: usize,
        table: Vec<f32>,
    },
    /// LayerNorm over the last axis: `(x − mean)/√(var + eps)·weight + bias` (biased variance;
    /// `weight`, `bias`: `[dim]`).
    LayerNorm {
        dim: usize,
        eps: f64,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
    /// GELU, exact erf form `x·Φ(x)`.
    Gelu,
    /// Multi-head self-attention on `[T, 3·dim]` (`q | k | v`, each `heads` heads of
    /// `dim/heads`, head-major) → `[T, dim]`: per head `softmax(q·kᵀ/√(dim/heads))·v`, softmax
    /// over the keys, heads concatenated. As core ops: reshape `[T, 3, heads, dh]`, transpose to
    /// `[3, heads, T, dh]`, a batch matmul `q·kᵀ` (adj_y, alpha = 1/√dh), softmax, a batch matmul
    /// with `v`, transpose back to `[T, heads, dh]`, reshape `[T, dim]`.
    Attention {
        dim: usize,
        heads: usize,
    },
    /// `[T, D] → [D]`: token 0 (a row slice) or the mean over the tokens (a mean over axis 0).
    TokenPool {
        pool: Pool,
    },
}

impl FusedLayer {
    /// True for the layers with weights (Linear, Conv2d).
    pub fn is_weighted(&self) -> bool {
        matches!(self, Self::Linear { .. } | Self::Conv2d { .. })
    }

    /// Parameters (weights, biases and constants) the layer stores.
    pub fn parameters(&self) -> usize {
        match self {
            Self::Linear { weight, bias, .. }
            | Self::Conv2d { weight, bias, .. }
            | Self::LayerNorm { weight, bias, .. } => weight.len() + bias.len(),
            Self::ClsToken { token, .. } => token.len(),
            Self::PosEmbed { table, .. } => table.len(),
            _ => 0,
        }
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
            Self::Tokens => "Tokens".into(),
            Self::ClsToken { dim, .. } => format!("ClsToken({dim})"),
            Self::PosEmbed { tokens, dim, .. } => format!("PosEmbed({tokens}×{dim})"),
            Self::LayerNorm { dim, .. } => format!("LayerNorm({dim})"),
            Self::Gelu => "GELU".into(),
            Self::Attention { dim, heads } => format!("Attention({dim}, {heads} heads)"),
            Self::TokenPool { pool: Pool::Cls } => "TokenPool(cls)".into(),
            Self::TokenPool { pool: Pool::Mean } => "TokenPool(mean)".into(),
        }
    }
}

/// What a fused model costs per sample: stored parameters (weights, biases, constants) and
/// multiply-accumulates of its Linear and Conv2d layers and attention products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub parameters: usize,
    pub macs: u64,
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

impl FusedModel {
    /// Per-sample shapes of every value (value 0: the input), inferred node by node; an error
    /// names the first node whose input does not fit it.
    pub fn value_shapes(&self) -> Result<Vec<Vec<usize>>> {
        let mut shapes: Vec<Vec<usize>> = vec![self.input_shape.to_vec()];
        for (k, node) in self.nodes.iter().enumerate() {
            let what = || format!("node {k} '{}' {}", node.name, node.layer.describe());
            let x = node
                .inputs
                .first()
                .and_then(|&v| shapes.get(v))
                .with_context(|| format!("{}: reads a value not produced before it", what()))?
                .clone();
            let bad = || anyhow::anyhow!("{}: does not fit its input {x:?}", what());
            let window = |c, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4]| {
                let (h, w) = match x[..] {
                    [_, h, w] => (h, w),
                    _ => return Err(bad()),
                };
                let (ph, pw) = (h + padding[0] + padding[1], w + padding[2] + padding[3]);
                if ph < kernel[0] || pw < kernel[1] || stride.contains(&0) {
                    return Err(bad());
                }
                Ok(vec![
                    c,
                    (ph - kernel[0]) / stride[0] + 1,
                    (pw - kernel[1]) / stride[1] + 1,
                ])
            };
            let out = match &node.layer {
                FusedLayer::Linear {
                    in_features,
                    out_features,
                    ..
                } => {
                    if x.last() != Some(in_features) {
                        return Err(bad());
                    }
                    let mut s = x.clone();
                    *s.last_mut().expect("nonempty") = *out_features;
                    s
                }
                FusedLayer::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    ..
                } => window(*out_channels, *kernel, *stride, *padding)?,
                FusedLayer::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                }
                | FusedLayer::AvgPool2d {
                    kernel,
                    stride,
                    padding,
                } => window(x.first().copied().unwrap_or(0), *kernel, *stride, *padding)?,
                FusedLayer::GlobalAvgPool => vec![x[0]],
                FusedLayer::Flatten => vec![x.iter().product()],
                FusedLayer::Relu | FusedLayer::Relu6 | FusedLayer::Gelu => x,
                FusedLayer::Add => {
                    let other = node.inputs.get(1).and_then(|&v| shapes.get(v));
                    if other != Some(&x) {
                        return Err(bad());
                    }
                    x
                }
                FusedLayer::Tokens => match x[..] {
                    [c, h, w] => vec![h * w, c],
                    _ => return Err(bad()),
                },
                FusedLayer::ClsToken { dim, .. } => match x[..] {
                    [t, d] if d == *dim => vec![t + 1, d],
                    _ => return Err(bad()),
                },
                FusedLayer::PosEmbed { tokens, dim, .. } => {
                    if x[..] != [*tokens, *dim] {
                        return Err(bad());
                    }
                    x
                }
                FusedLayer::LayerNorm { dim, .. } => {
                    if x.last() != Some(dim) {
                        return Err(bad());
                    }
                    x
                }
                FusedLayer::Attention { dim, heads } => match x[..] {
                    [t, w] if w == 3 * dim && *heads > 0 && dim % heads == 0 => vec![t, *dim],
                    _ => return Err(bad()),
                },
                FusedLayer::TokenPool { .. } => match x[..] {
                    [_, d] => vec![d],
                    _ => return Err(bad()),
                },
            };
            shapes.push(out);
        }
        Ok(shapes)
    }

    /// Parameters and MACs per sample ([`Cost`]): a Linear costs `rows·in·out` (rows: 1, or the
    /// tokens), a Conv2d `out_h·out_w·out·(in/groups)·kh·kw`, an attention `2·T²·dim` (`q·kᵀ`
    /// and the product with `v`, over all heads).
    pub fn cost(&self) -> Result<Cost> {
        let shapes = self.value_shapes()?;
        let mut c = Cost {
            parameters: 0,
            macs: 0,
        };
        for (k, node) in self.nodes.iter().enumerate() {
            c.parameters += node.layer.parameters();
            let (x, y) = (&shapes[node.inputs[0]], &shapes[k + 1]);
            let prod = |s: &[usize]| s.iter().product::<usize>() as u64;
            c.macs += match &node.layer {
                FusedLayer::Linear { in_features, .. } => prod(y) * *in_features as u64,
                FusedLayer::Conv2d {
                    in_channels,
                    kernel,
                    groups,
                    ..
                } => prod(y) * (in_channels / groups.max(&1) * kernel[0] * kernel[1]) as u64,
                FusedLayer::Attention { dim, .. } => 2 * (x[0] * x[0] * dim) as u64,
                _ => 0,
            };
        }
        Ok(c)
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
                        _ => bail!(
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
                    bail!("{}: weighted layer without parameters (a bug)", what())
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
                (LayerSpec::Tokens, _) => FusedLayer::Tokens,
                (LayerSpec::ClsToken { dim }, _) => FusedLayer::ClsToken {
                    dim,
                    token: to_vec(self.embeds[k].as_ref().with_context(what)?)?,
                },
                (LayerSpec::PosEmbed { tokens, dim }, _) => FusedLayer::PosEmbed {
                    tokens,
                    dim,
                    table: to_vec(self.embeds[k].as_ref().with_context(what)?)?,
                },
                (LayerSpec::LayerNorm { dim, eps }, _) => {
                    let (w, b) = self.norms[k].as_ref().with_context(what)?;
                    FusedLayer::LayerNorm {
                        dim,
                        eps,
                        weight: to_vec(w)?,
                        bias: to_vec(b)?,
                    }
                }
                (LayerSpec::Gelu, _) => FusedLayer::Gelu,
                (LayerSpec::Attention { dim, heads }, _) => FusedLayer::Attention { dim, heads },
                (LayerSpec::TokenPool { pool }, _) => FusedLayer::TokenPool { pool },
                (spec, _) => bail!("{}: {spec:?} cannot be exported", what()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::model::{attention, DenoiseSpec};
    use crate::schedule::ScheduleSpec;

    /// A ViT with non-zero denoisers on every weighted layer.
    fn vit(spec: &str, shape: [usize; 3], classes: usize) -> Model {
        tch::manual_seed(17);
        let arch = Arch::parse(spec, shape, classes).unwrap();
        let norm = Normalization {
            mean: vec![0.0; shape[0]],
            std: vec![1.0; shape[0]],
        };
        let mut m = Model::new(arch, norm, Device::Cpu);
        let n = m.arch.weighted_layers().len();
        m.add_denoisers(&DenoiseSpec {
            schedule: ScheduleSpec {
                beta_start: 0.05,
                beta_end: 0.2,
                timesteps: 10,
            },
            t_stride: 1,
            t_list: Some(vec![2; n]),
            fuse_noise: Some(1),
        })
        .unwrap();
        tch::no_grad(|| {
            for d in &m.denoisers {
                d.d_mat
                    .shallow_clone()
                    .copy_(&(d.d_mat.randn_like() * 0.05));
                d.d_vec.shallow_clone().copy_(&(d.d_vec.randn_like() * 0.1));
            }
        });
        m
    }

    /// Makes a ViT's attention peaked and its norms and embeddings non-trivial (timm's init
    /// gives near-uniform attention, `γ = 1`, `β = 0`), so that a wrong scale, head order or
    /// LayerNorm parameter shows in the outputs: qkv weights `N(0, 0.5²)`, LayerNorm `γ` in
    /// `[0.5, 1.5)`, `β` and the class token and position embeddings `N(0, 0.3²)`.
    fn roughen(m: &Model) {
        tch::no_grad(|| {
            for (name, t) in m.backbone_params() {
                let new = if name.ends_with("qkv.weight") {
                    t.randn_like() * 0.5
                } else if name.contains("norm") && name.ends_with(".weight") {
                    t.rand_like() + 0.5
                } else if name.contains("norm") || name == "cls_token" || name == "pos_embed" {
                    t.randn_like() * 0.3
                } else {
                    continue;
                };
                t.shallow_clone().copy_(&new);
            }
        });
    }

    /// `n` values from SplitMix64 `seed`: uniform in `[0, 1)` or standard normal (Box–Muller).
    /// Tests that compare outputs against thresholds draw from this instead of tch's global
    /// generator, which the tests of this binary share while they run in parallel: the instance
    /// would otherwise depend on what other tests drew in between (a CI run under load once drew
    /// a model outside the thresholds).
    fn local_draw(seed: u64, n: usize, normal: bool) -> Vec<f32> {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let u = next();
                if !normal {
                    return u as f32;
                }
                let (u1, u2) = (u.max(1e-300), next());
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect()
    }

    /// Overwrites every parameter of `m` (backbone and denoisers, `z` included) from
    /// [`local_draw`], independently of tch's generator: qkv weights `N(0, 0.5²)`, LayerNorm `γ`
    /// in `[0.5, 1.5)`, LayerNorm `β`, class token and position embeddings `N(0, 0.3²)` (as
    /// [`roughen`]); the other Linear weights `N(0, 0.02²)` and biases 0 (timm's init); the patch
    /// conv and the denoisers' time MLPs `U(±1/√fan_in)`; denoiser `D` `N(0, 0.05²)` and `d`
    /// `N(0, 0.1²)` (as [`vit`]); the fusion noise `z` `N(0, 1)`.
    fn redraw_locally(m: &Model, seed: u64) {
        let mut tensors = m.backbone_params();
        tensors.extend(m.denoisers.iter().flat_map(|d| d.tensors()));
        tch::no_grad(|| {
            for (k, (name, t)) in tensors.iter().enumerate() {
                let n = t.numel();
                let normal = |scale: f64| {
                    Tensor::from_slice(&local_draw(seed.wrapping_add(k as u64 * 7919), n, true))
                        * scale
                };
                let new = if name.ends_with("qkv.weight") {
                    normal(0.5)
                } else if name.contains("norm") && name.ends_with(".weight") {
                    Tensor::from_slice(&local_draw(seed.wrapping_add(k as u64 * 7919), n, false))
                        + 0.5
                } else if name.contains("norm") || name == "cls_token" || name == "pos_embed" {
                    normal(0.3)
                } else if name.starts_with("denoisers.") && !name.contains(".time.") {
                    match name.rsplit('.').next() {
                        Some("z") => normal(1.0),
                        Some("d") => normal(0.1),
                        _ => normal(0.05),
                    }
                } else if name.ends_with(".bias") && !name.starts_with("denoisers.") {
                    Tensor::zeros([n as i64], (Kind::Float, Device::Cpu))
                } else if t.dim() == 2 && !name.starts_with("denoisers.") {
                    normal(0.02)
                } else {
                    // The patch conv and the time MLP: PyTorch's default `U(±1/√fan_in)`.
                    let fan_in = if t.dim() == 1 {
                        16
                    } else {
                        n / usize::try_from(t.size()[0]).unwrap()
                    };
                    let u = local_draw(seed.wrapping_add(k as u64 * 7919), n, false);
                    (Tensor::from_slice(&u) * 2.0 - 1.0) / (fan_in as f64).sqrt()
                };
                t.shallow_clone().copy_(&new.view(t.size().as_slice()));
            }
        });
    }

    /// Evaluates a fused model's nodes in order with tch on normalized `x: [N, C, H, W]` (the
    /// node kinds a ViT uses); returns every value.
    fn eval(f: &FusedModel, x: &Tensor) -> Vec<Tensor> {
        let t = |v: &[f32], dims: &[i64]| Tensor::from_slice(v).view(dims);
        let mut values = vec![x.shallow_clone()];
        for node in &f.nodes {
            let h = &values[node.inputs[0]];
            let y = match &node.layer {
                FusedLayer::Linear {
                    in_features,
                    out_features,
                    weight,
                    bias,
                } => h.linear(
                    &t(weight, &[*out_features as i64, *in_features as i64]),
                    Some(&t(bias, &[*out_features as i64])),
                ),
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
                    assert_eq!((*padding, *groups), ([0; 4], 1));
                    let [kh, kw] = kernel.map(|v| v as i64);
                    h.conv2d(
                        &t(weight, &[*out_channels as i64, *in_channels as i64, kh, kw]),
                        Some(&t(bias, &[*out_channels as i64])),
                        stride.map(|v| v as i64),
                        [0, 0],
                        [1, 1],
                        1,
                    )
                }
                FusedLayer::Add => h + &values[node.inputs[1]],
                FusedLayer::Tokens => h.flatten(2, -1).transpose(1, 2),
                FusedLayer::ClsToken { dim, token } => {
                    let cls = t(token, &[1, 1, *dim as i64]).expand([h.size()[0], -1, -1], false);
                    Tensor::cat(&[cls, h.shallow_clone()], 1)
                }
                FusedLayer::PosEmbed { tokens, dim, table } => {
                    h + t(table, &[1, *tokens as i64, *dim as i64])
                }
                FusedLayer::LayerNorm {
                    dim,
                    eps,
                    weight,
                    bias,
                } => h.layer_norm(
                    [*dim as i64],
                    Some(&t(weight, &[*dim as i64])),
                    Some(&t(bias, &[*dim as i64])),
                    *eps,
                    false,
                ),
                FusedLayer::Gelu => h.gelu("none"),
                FusedLayer::Attention { heads, .. } => attention(h, *heads as i64),
                FusedLayer::TokenPool { pool: Pool::Cls } => h.select(1, 0),
                FusedLayer::TokenPool { pool: Pool::Mean } => {
                    h.mean_dim([1i64].as_slice(), false, h.kind())
                }
                other => panic!("not a ViT node kind: {}", other.describe()),
            };
            values.push(y);
        }
        values
    }

    #[test]
    fn the_fused_vit_graph_computes_the_fused_forward() {
        for (spec, shape) in [
            ("vit:4,16,2,2,2", [1, 8, 12]),
            ("vit:2,8,2,1,2,mean", [3, 6, 6]),
        ] {
            let m = vit(spec, shape, 6);
            let f = m.fused().unwrap();
            assert_eq!(f.nodes.len(), m.arch.nodes.len());
            let [c, h, w] = shape.map(|v| v as i64);
            let x = Tensor::randn([4, c, h, w], (Kind::Float, Device::Cpu));
            let values = eval(&f, &x);
            let want = tch::no_grad(|| m.forward(&x, Mode::Fused, Grads::NONE, false));
            let rel = |a: &Tensor, b: &Tensor| {
                (a - b).abs().max().double_value(&[]) / b.abs().max().double_value(&[])
            };
            assert!(rel(values.last().unwrap(), &want.logits) < 1e-5, "{spec}");
            assert!(rel(&values[f.embedding], &want.embedding) < 1e-5, "{spec}");
            // The per-sample shapes the graph declares are the values' shapes.
            let shapes = f.value_shapes().unwrap();
            for (v, s) in values.iter().zip(&shapes) {
                let s: Vec<i64> = s.iter().map(|&d| d as i64).collect();
                assert_eq!(v.size()[1..], s[..], "{spec}");
            }
            // The plain graph is the backbone alone: a different function.
            let plain = eval(&m.plain().unwrap(), &x);
            assert!(rel(plain.last().unwrap(), &want.logits) > 1e-3, "{spec}");
        }
    }

    /// DenoiseRep costs a ViT nothing after fusion: the fused graph has the plain graph's nodes,
    /// shapes, parameters and MACs.
    #[test]
    fn fusion_adds_no_parameters_or_macs_to_the_vit() {
        let m = vit("vit", [1, 28, 28], 10);
        assert_eq!(m.arch.spec, "vit:7,64,4,4,2,cls");
        let (fused, plain) = (m.fused().unwrap(), m.plain().unwrap());
        assert_eq!(fused.value_shapes().unwrap(), plain.value_shapes().unwrap());
        for (a, b) in fused.nodes.iter().zip(&plain.nodes) {
            assert_eq!(
                (&a.name, a.layer.describe(), &a.inputs),
                (&b.name, b.layer.describe(), &b.inputs)
            );
            assert_eq!(a.layer.parameters(), b.layer.parameters(), "{}", a.name);
        }
        let (cf, cp) = (fused.cost().unwrap(), plain.cost().unwrap());
        assert_eq!(cf, cp);
        // Every parameter of the backbone is in the graph: 139,018.
        assert_eq!(cf.parameters, m.arch.param_counts().trainable);
        assert_eq!(cf.parameters, 139_018);
        // MACs by hand (T = 17 tokens, D = 64, hidden 128): patch conv 16·49·64; per block
        // qkv 17·64·192, q·kᵀ and ·v 2·17²·64, proj 17·64², fc1 and fc2 2·17·64·128; head 640.
        let block = 17 * 64 * 192 + 2 * 17 * 17 * 64 + 17 * 64 * 64 + 2 * 17 * 64 * 128;
        assert_eq!(cf.macs, (16 * 49 * 64 + 4 * block + 64 * 10) as u64);
        assert_eq!(cf.macs, 2_427_008);
    }

    /// The lowered ViT, run by the core, is the fused forward (f32, both pools, heads 1 and
    /// 2), and the core model's footprint is the fused graph's cost: every parameter of the
    /// backbone (LayerNorm `γ`, `β`, class token, position embeddings included) and every MAC
    /// (attention products included), the same for the model and its baseline.
    #[test]
    fn the_lowered_vit_runs_in_the_core_as_the_fused_forward() {
        use crate::export::{footprint, to_f32};
        use denoiserep_core::{Model as CoreModel, TensorData};
        for (spec, shape) in [
            ("vit:4,16,2,2,2", [1, 8, 12]),
            ("vit:2,8,1,1,1.5,mean", [3, 6, 4]),
        ] {
            let m = vit(spec, shape, 5);
            roughen(&m);
            let f = m.fused().unwrap();
            let file = to_f32(&f).unwrap().encode().unwrap();
            let base = to_f32(&m.plain().unwrap()).unwrap().encode().unwrap();
            let (fp, fb) = (footprint(&file).unwrap(), footprint(&base).unwrap());
            assert_eq!(
                fp, fb,
                "{spec}: the fused model costs what its baseline costs"
            );
            let cost = f.cost().unwrap();
            assert_eq!(fp.parameters, cost.parameters as u64, "{spec}");
            assert_eq!(
                fp.parameters,
                m.arch.param_counts().trainable as u64,
                "{spec}"
            );
            assert_eq!(fp.macs, cost.macs, "{spec}");
            let core = CoreModel::from_bytes(&file).unwrap();
            let mut arena = vec![0u8; core.arena_size()];
            let [c, h, w] = shape.map(|v| v as i64);
            let x = Tensor::randn([3, c, h, w], (Kind::Float, Device::Cpu));
            let want = tch::no_grad(|| m.forward(&x, Mode::Fused, Grads::NONE, false));
            for i in 0..3 {
                let sample = Vec::<f32>::try_from(&x.get(i).flatten(0, -1)).unwrap();
                let out = core.run(&sample, &mut arena).unwrap();
                let f32s = |d: TensorData<'_>| match d {
                    TensorData::F32(v) => v.to_vec(),
                    TensorData::I8 { .. } => panic!("int8 from an f32 model"),
                };
                for (got, want) in [
                    (f32s(out.logits.data), want.logits.get(i)),
                    (f32s(out.embedding.data), want.embedding.get(i)),
                ] {
                    let got = Tensor::from_slice(&got);
                    let err = (&got - &want).abs().max().double_value(&[])
                        / want.abs().max().double_value(&[]);
                    // Observed ≤ 4e-7; an attention scale off by 0.1 % gives 8e-5.
                    assert!(err < 5e-6, "{spec} sample {i}: core vs tch {err:e}");
                }
            }
        }
    }

    /// The int8 ViT (calibrated on 64 random inputs, min/max) runs in the core with the ops the
    /// int8 form needs (int8 Softmax, GELU as a Lut, LayerNorm between Dequantize and
    /// Quantize), costs what its baseline costs, and picks the f32 model's class on most of 200
    /// other inputs, its logits close to the f32 ones.
    #[test]
    fn the_int8_vit_agrees_with_f32() {
        use crate::export::{footprint, quantize, to_f32, RangeMethod};
        use denoiserep_core::format::graph::Op;
        use denoiserep_core::Model as CoreModel;
        for (spec, shape) in [
            ("vit:4,16,2,2,2", [1, 8, 8]),
            ("vit:2,8,2,1,2,mean", [2, 6, 6]),
        ] {
            let m = vit(spec, shape, 5);
            // Not `roughen`: tch's generator is shared with the tests running beside this one.
            redraw_locally(&m, 17);
            let (f, p) = (m.fused().unwrap(), m.plain().unwrap());
            let len: usize = shape.iter().product();
            let draw = |n: usize, seed: u64| local_draw(seed, n * len, true);
            let calib = draw(64, 1);
            let int8 = quantize(&f, &calib, RangeMethod::MinMax, false)
                .unwrap()
                .encode()
                .unwrap();
            let base = quantize(&p, &calib, RangeMethod::MinMax, false)
                .unwrap()
                .encode()
                .unwrap();
            assert_eq!(
                footprint(&int8).unwrap(),
                footprint(&base).unwrap(),
                "{spec}"
            );
            let f32_file = to_f32(&f).unwrap().encode().unwrap();
            let (q, fl) = (
                CoreModel::from_bytes(&int8).unwrap(),
                CoreModel::from_bytes(&f32_file).unwrap(),
            );
            let kinds: Vec<String> = q
                .nodes()
                .map(|n| n.unwrap().op.kind().to_string())
                .collect();
            for k in [
                "lut",
                "softmax",
                "dequantize",
                "layer_norm",
                "quantize",
                "batch_matmul",
            ] {
                assert!(kinds.iter().any(|x| x == k), "{spec}: no {k} in {kinds:?}");
            }
            assert!(q.nodes().all(|n| !matches!(n.unwrap().op, Op::Gelu)));
            let (mut qa, mut fa) = (vec![0u8; q.arena_size()], vec![0u8; fl.arena_size()]);
            let (mut agree, mut worst) = (0, 0f32);
            let tests = draw(200, 2);
            for x in tests.chunks(len) {
                let (a, b) = (q.run(x, &mut qa).unwrap(), fl.run(x, &mut fa).unwrap());
                agree += usize::from(a.logits.argmax() == b.logits.argmax());
                let range = (0..b.logits.len())
                    .map(|i| b.logits.get_f32(i).unwrap().abs())
                    .fold(0f32, f32::max);
                for i in 0..b.logits.len() {
                    let d = (a.logits.get_f32(i).unwrap() - b.logits.get_f32(i).unwrap()).abs();
                    worst = worst.max(d / range);
                }
            }
            // Observed (deterministic: `redraw_locally`, `local_draw`): 199 and 195 of 200, logits
            // within 0.13 and 0.23 of their range.
            assert!(
                agree >= 180,
                "{spec}: int8 argmax = f32 argmax on {agree}/200 only"
            );
            assert!(
                worst < 0.3,
                "{spec}: an int8 logit is off by {worst} of the range"
            );
            // Op by op (observed ≤ 0.07): every tensor both models write (the int8 model keeps the f32 model's
            // tensor ids) is close to the f32 one, relative RMS over 20 inputs. A wrong scale in
            // one op (e.g. a GELU table built for the wrong input scale) shows here even where
            // the logits hide it.
            let (errs, worst_op) = per_tensor_rms(&fl, &q, tests.chunks(len).take(20));
            assert!(
                worst_op < 0.25,
                "{spec}: int8 vs f32 relative RMS per tensor {errs:?}"
            );
        }
    }

    /// `(tensor id, op kind, relative RMS of the int8 model's dequantized output against the
    /// f32 model's)` for every tensor both models write, and the largest of them.
    fn per_tensor_rms<'a>(
        f32_model: &denoiserep_core::Model<'_>,
        int8_model: &denoiserep_core::Model<'_>,
        inputs: impl Iterator<Item = &'a [f32]>,
    ) -> (Vec<(u16, String, f64)>, f64) {
        use std::collections::BTreeMap;
        let mut sums: BTreeMap<u16, (String, f64, f64)> = BTreeMap::new();
        let mut fa = vec![0u8; f32_model.arena_size()];
        let mut qa = vec![0u8; int8_model.arena_size()];
        for x in inputs {
            let mut want: BTreeMap<u16, Vec<f32>> = BTreeMap::new();
            f32_model
                .run_with(x, &mut fa, |s| {
                    let v = (0..s.output.len()).map(|i| s.output.get_f32(i).unwrap());
                    want.insert(s.output_id, v.collect());
                })
                .unwrap();
            int8_model
                .run_with(x, &mut qa, |s| {
                    let Some(w) = want.get(&s.output_id) else {
                        return;
                    };
                    let e = sums
                        .entry(s.output_id)
                        .or_insert((s.kind.to_string(), 0.0, 0.0));
                    for (i, &w) in w.iter().enumerate() {
                        let d = f64::from(s.output.get_f32(i).unwrap() - w);
                        e.1 += d * d;
                        e.2 += f64::from(w) * f64::from(w);
                    }
                })
                .unwrap();
        }
        let errs: Vec<(u16, String, f64)> = sums
            .into_iter()
            .map(|(t, (kind, d, w))| (t, kind, (d / w.max(1e-30)).sqrt()))
            .collect();
        let worst = errs.iter().map(|e| e.2).fold(0.0, f64::max);
        (errs, worst)
    }
}
