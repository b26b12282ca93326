//! The model: a backbone (an `nn.Sequential`-like layer list), optional denoisers, the input
//! normalization, and the three forwards (plain, unfused-with-denoisers, fused).

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::arch::{Arch, LayerSpec, Pool, Src};
use crate::data::Normalization;
use crate::denoiser::{live, Denoiser};
use crate::fuse::{self, ConvGeom, Terms};
use crate::rng::{mix, Rng};
use crate::schedule::{layer_timesteps, listed_timesteps, Schedule, ScheduleSpec};

/// How the denoisers are configured (`--beta-start/--beta-end/--timesteps`, `--t-stride` or
/// `--t-list`, `--fuse-noise`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenoiseSpec {
    pub schedule: ScheduleSpec,
    pub t_stride: usize,
    /// `--t-list`: explicit timesteps of the denoised layers in forward order (replaces
    /// `t_stride`); absent in config.json files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_list: Option<Vec<usize>>,
    /// Seed of the reverse-step noise `z` baked into the fused bias; `None` = `z = 0`.
    pub fuse_noise: Option<u64>,
}

/// Which forward to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The backbone alone, denoisers ignored.
    Plain,
    /// The explicit reference: a reverse step on each denoised layer's input, then the layer.
    Unfused,
    /// Each denoised layer with its fused weights (computed functionally from the live ones).
    Fused,
}

/// Which parameter groups the forward lets gradients reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grads {
    pub backbone: bool,
    pub denoisers: bool,
}

impl Grads {
    pub const NONE: Self = Self {
        backbone: false,
        denoisers: false,
    };
}

/// Forward results.
#[derive(Debug)]
pub struct Output {
    /// `[N, classes]`.
    pub logits: Tensor,
    /// `[N, embedding_dim]`, the output of `arch.embedding_layer`.
    pub embedding: Tensor,
    /// The input of every weighted layer, in forward order.
    pub inputs: Vec<Tensor>,
}

/// A batch norm's parameters (`γ = weight`, `β = bias`, trained) and buffers (running
/// statistics, updated by a train-mode forward; `num_batches_tracked` is `Int64 []`).
#[derive(Debug)]
pub struct BatchNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: Tensor,
}

/// A backbone with optional denoisers (one per weighted node, or none).
#[derive(Debug)]
pub struct Model {
    pub arch: Arch,
    /// `weights[k]` = `(weight, bias)` of node `k` when it is weighted (Linear, Conv2d).
    pub weights: Vec<Option<(Tensor, Tensor)>>,
    /// `bn[k]` = the batch norm state of node `k` when it is a [`LayerSpec::BatchNorm2d`].
    pub bn: Vec<Option<BatchNorm>>,
    /// `norms[k]` = `(γ, β)` (`{name}.weight`, `{name}.bias`) of node `k` when it is a
    /// [`LayerSpec::LayerNorm`].
    pub norms: Vec<Option<(Tensor, Tensor)>>,
    /// `embeds[k]` = the class token `[1, 1, D]` or position embeddings `[1, T, D]` of node `k`
    /// ([`LayerSpec::ClsToken`], [`LayerSpec::PosEmbed`]), named like the node (`cls_token`,
    /// `pos_embed`).
    pub embeds: Vec<Option<Tensor>>,
    /// Denoisers in forward order; empty for baseline / penalty-control models.
    pub denoisers: Vec<Denoiser>,
    pub denoise_spec: Option<DenoiseSpec>,
    pub normalization: Normalization,
    pub device: Device,
}

fn uniform(shape: &[i64], bound: f64, device: Device) -> Tensor {
    (Tensor::rand(shape, (Kind::Float, device)) * 2.0 - 1.0) * bound
}

/// timm's `trunc_normal_(std=0.02)`: `N(0, 0.02²)` truncated at its default absolute bounds ±2
/// (100 σ: never reached, so the clamp changes nothing).
fn trunc_normal(shape: &[i64], device: Device) -> Tensor {
    (Tensor::randn(shape, (Kind::Float, device)) * 0.02).clamp(-2.0, 2.0)
}

/// Multi-head self-attention on `qkv: [N, T, 3·D]` (see [`LayerSpec::Attention`]): timm's
/// `Attention.forward` after its `qkv` Linear, without the fused kernel — `q·scale`, `q·kᵀ`,
/// softmax over the keys, `·v`, heads concatenated — returning `[N, T, D]`.
pub fn attention(qkv: &Tensor, heads: i64) -> Tensor {
    let s = qkv.size();
    let (n, t, d) = (s[0], s[1], s[2] / 3);
    let dh = d / heads;
    let qkv = qkv.reshape([n, t, 3, heads, dh]).permute([2, 0, 3, 1, 4]);
    let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
    let q = q * (1.0 / (dh as f64).sqrt());
    let att = q.matmul(&k.transpose(-2, -1)).softmax(-1, qkv.kind());
    att.matmul(&v).transpose(1, 2).reshape([n, t, d])
}

impl Model {
    /// A randomly initialized backbone without denoisers. Draws from tch's RNG, node by node in
    /// order. PyTorch's defaults: `U(±1/√fan_in)` for Linear and Conv2d weights and biases,
    /// `fan_in = in/groups·kh·kw`; batch norms `γ = 1`, `β = 0`, running mean 0 and variance 1;
    /// layer norms `γ = 1`, `β = 0`. The ViT ([`Arch::is_vit`]) follows timm instead: Linear
    /// weights, the class token and the position embeddings `N(0, 0.02²)` (truncated at ±2),
    /// Linear biases 0 (its patch-embedding conv keeps PyTorch's default, as in timm).
    pub fn new(arch: Arch, normalization: Normalization, device: Device) -> Self {
        let timm = arch.is_vit();
        let n = arch.nodes.len();
        let (mut weights, mut norms, mut embeds) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for node in &arch.nodes {
            let param = |t: Tensor| t.set_requires_grad(true);
            weights.push(match (node.spec, node.spec.param_shapes()) {
                (LayerSpec::Linear { .. }, Some((ws, bs))) if timm => Some((
                    param(trunc_normal(&ws, device)),
                    param(Tensor::zeros(bs.as_slice(), (Kind::Float, device))),
                )),
                (spec, Some((ws, bs))) if spec.is_weighted() => {
                    let fan_in: i64 = ws[1..].iter().product();
                    let bound = 1.0 / (fan_in as f64).sqrt();
                    Some((
                        param(uniform(&ws, bound, device)),
                        param(uniform(&bs, bound, device)),
                    ))
                }
                _ => None,
            });
            norms.push(match node.spec {
                LayerSpec::LayerNorm { dim, .. } => {
                    let opts = (Kind::Float, device);
                    Some((
                        param(Tensor::ones([dim as i64], opts)),
                        param(Tensor::zeros([dim as i64], opts)),
                    ))
                }
                _ => None,
            });
            embeds.push(
                node.spec
                    .embed_shape()
                    .map(|shape| param(trunc_normal(&shape, device))),
            );
        }
        let bn = arch
            .nodes
            .iter()
            .map(|n| match n.spec {
                LayerSpec::BatchNorm2d { channels, .. } => {
                    let c = channels as i64;
                    let opts = (Kind::Float, device);
                    Some(BatchNorm {
                        weight: Tensor::ones([c], opts).set_requires_grad(true),
                        bias: Tensor::zeros([c], opts).set_requires_grad(true),
                        running_mean: Tensor::zeros([c], opts),
                        running_var: Tensor::ones([c], opts),
                        num_batches_tracked: Tensor::zeros([], (Kind::Int64, device)),
                    })
                }
                _ => None,
            })
            .collect();
        Self {
            arch,
            weights,
            bn,
            norms,
            embeds,
            denoisers: Vec::new(),
            denoise_spec: None,
            normalization,
            device,
        }
    }

    /// Adds fresh denoisers (`D = 0`, `d = 0`) to every weighted node, replacing any: dense
    /// (`D: [C, C]`) in general, diagonal (`D: [C]`) on depthwise convs.
    pub fn add_denoisers(&mut self, spec: &DenoiseSpec) -> Result<()> {
        let schedule = Schedule::new(spec.schedule)?;
        let layers = self.arch.weighted_layers();
        let ts = match &spec.t_list {
            Some(list) => listed_timesteps(list, layers.len(), spec.schedule.timesteps)?,
            None => layer_timesteps(layers.len(), spec.t_stride, spec.schedule.timesteps)?,
        };
        self.denoisers = layers
            .iter()
            .zip(ts)
            .map(|(&k, t)| {
                let layer = &self.arch.nodes[k].spec;
                let c = layer.in_channels();
                let z: Vec<f32> = match spec.fuse_noise {
                    None => vec![0.0; c],
                    Some(seed) => {
                        let mut rng = Rng::new(mix(seed, k as u64));
                        (0..c).map(|_| rng.normal() as f32).collect()
                    }
                };
                Denoiser::with_shape(
                    k,
                    c,
                    layer.is_depthwise(),
                    t,
                    schedule.coeffs(t),
                    Tensor::from_slice(&z),
                    self.device,
                )
            })
            .collect();
        self.denoise_spec = Some(spec.clone());
        Ok(())
    }

    /// Trainable backbone tensors named as in a PyTorch `state_dict`: `{name}.weight`,
    /// `{name}.bias` of every weighted node, batch norm and layer norm, and `{name}` of a class
    /// token or position embedding, in node order (for `mlp`/`cnn`, `nn.Sequential` names
    /// `k.weight`, `k.bias`).
    pub fn backbone_params(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        for (k, node) in self.arch.nodes.iter().enumerate() {
            if let Some(e) = &self.embeds[k] {
                v.push((node.name.clone(), e.shallow_clone()));
            }
            let wb = match (&self.weights[k], &self.bn[k], &self.norms[k]) {
                (Some((w, b)), _, _) => Some((w, b)),
                (None, Some(bn), _) => Some((&bn.weight, &bn.bias)),
                (None, None, Some((w, b))) => Some((w, b)),
                _ => None,
            };
            if let Some((w, b)) = wb {
                v.push((format!("{}.weight", node.name), w.shallow_clone()));
                v.push((format!("{}.bias", node.name), b.shallow_clone()));
            }
        }
        v
    }

    /// Names of the class token and position embeddings (`cls_token`, `pos_embed`): parameters
    /// that are not weight-decayed (timm's `no_weight_decay`).
    pub fn embed_names(&self) -> Vec<String> {
        self.arch
            .nodes
            .iter()
            .zip(&self.embeds)
            .filter(|(_, e)| e.is_some())
            .map(|(n, _)| n.name.clone())
            .collect()
    }

    /// Batch norm buffers: `{name}.running_mean`, `{name}.running_var`,
    /// `{name}.num_batches_tracked` (empty without batch norms).
    pub fn backbone_buffers(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        for (node, bn) in self.arch.nodes.iter().zip(&self.bn) {
            if let Some(bn) = bn {
                for (suffix, t) in [
                    ("running_mean", &bn.running_mean),
                    ("running_var", &bn.running_var),
                    ("num_batches_tracked", &bn.num_batches_tracked),
                ] {
                    v.push((format!("{}.{suffix}", node.name), t.shallow_clone()));
                }
            }
        }
        v
    }

    /// The backbone's whole `state_dict`: [`backbone_params`](Self::backbone_params) and
    /// [`backbone_buffers`](Self::backbone_buffers).
    pub fn backbone_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v = self.backbone_params();
        v.extend(self.backbone_buffers());
        v
    }

    /// Trainable denoiser tensors (`denoisers.k.*`).
    pub fn denoiser_params(&self) -> Vec<(String, Tensor)> {
        self.denoisers.iter().flat_map(Denoiser::params).collect()
    }

    /// Everything saved in `model.safetensors`: backbone (with batch norm buffers), denoisers
    /// (with `z`) and the input normalization as `normalization.mean` / `normalization.std`
    /// (`[C]`).
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut v = self.backbone_tensors();
        v.extend(self.denoisers.iter().flat_map(Denoiser::tensors));
        v.push((
            "normalization.mean".into(),
            Tensor::from_slice(&self.normalization.mean),
        ));
        v.push((
            "normalization.std".into(),
            Tensor::from_slice(&self.normalization.std),
        ));
        v
    }

    /// Copies the backbone's tensors ([`backbone_tensors`](Self::backbone_tensors) names) from
    /// `src`, checking that each exists with the right shape (float kinds are converted;
    /// `num_batches_tracked` must be an integer). `source` names the file in errors. Keys other
    /// than the backbone's, `denoisers.*` and `normalization.*` are rejected.
    pub fn load_backbone(&mut self, src: &HashMap<String, Tensor>, source: &str) -> Result<()> {
        let expected: Vec<(String, Tensor)> = self.backbone_tensors();
        let names: std::collections::HashSet<&str> =
            expected.iter().map(|(n, _)| n.as_str()).collect();
        let mut unexpected: Vec<&String> = src
            .keys()
            .filter(|k| {
                !names.contains(k.as_str())
                    && !k.starts_with("denoisers.")
                    && !k.starts_with("normalization.")
            })
            .collect();
        unexpected.sort();
        if !unexpected.is_empty() {
            bail!(
                "{source}: tensor(s) {} do not belong to arch {} (expected state_dict names {})",
                list(unexpected.iter().map(|s| s.as_str())),
                self.arch.spec,
                list(expected.iter().map(|(n, _)| n.as_str()))
            );
        }
        for (name, dst) in &expected {
            // `{node}.weight`, or a class token / position embedding named like its node.
            let node = match self.arch.nodes.iter().any(|n| &n.name == name) {
                true => name.as_str(),
                false => name.rsplit_once('.').map_or("", |(n, _)| n),
            };
            let what = self
                .arch
                .nodes
                .iter()
                .find(|n| n.name == node)
                .map_or_else(|| node.to_string(), |n| describe(&n.spec));
            let t = src.get(name).with_context(|| {
                format!(
                    "{source}: missing tensor '{name}' ({what} expects shape {:?})",
                    dst.size()
                )
            })?;
            if t.size() != dst.size() {
                bail!(
                    "{source}: tensor '{name}' has shape {:?}, {what} expects {:?}",
                    t.size(),
                    dst.size()
                );
            }
            if t.is_floating_point() != dst.is_floating_point() {
                bail!(
                    "{source}: tensor '{name}' has kind {:?}, expected a {} kind",
                    t.kind(),
                    if dst.is_floating_point() {
                        "float"
                    } else {
                        "integer"
                    }
                );
            }
            let t = t.to_kind(dst.kind()).to_device(self.device);
            tch::no_grad(|| dst.shallow_clone().copy_(&t));
        }
        Ok(())
    }

    /// Copies `denoisers.k.*` tensors from `src` into the existing denoisers (shape-checked).
    pub fn load_denoisers(&mut self, src: &HashMap<String, Tensor>, source: &str) -> Result<()> {
        for d in &self.denoisers {
            for (name, dst) in d.tensors() {
                let t = src
                    .get(&name)
                    .with_context(|| format!("{source}: missing tensor '{name}'"))?;
                if t.size() != dst.size() {
                    bail!(
                        "{source}: tensor '{name}' has shape {:?}, expected {:?}",
                        t.size(),
                        dst.size()
                    );
                }
                let t = t.to_kind(Kind::Float).to_device(self.device);
                tch::no_grad(|| dst.shallow_clone().copy_(&t));
            }
        }
        Ok(())
    }

    /// The same model in f64 (tests of exactness): every backbone tensor and denoiser converted.
    #[cfg(test)]
    pub(crate) fn to_double(&self) -> Self {
        let d = |t: &Tensor| t.detach().to_kind(Kind::Double);
        let pair = |p: &Option<(Tensor, Tensor)>| p.as_ref().map(|(w, b)| (d(w), d(b)));
        Self {
            arch: self.arch.clone(),
            weights: self.weights.iter().map(pair).collect(),
            bn: self
                .bn
                .iter()
                .map(|b| {
                    b.as_ref().map(|b| BatchNorm {
                        weight: d(&b.weight),
                        bias: d(&b.bias),
                        running_mean: d(&b.running_mean),
                        running_var: d(&b.running_var),
                        num_batches_tracked: b.num_batches_tracked.copy(),
                    })
                })
                .collect(),
            norms: self.norms.iter().map(pair).collect(),
            embeds: self.embeds.iter().map(|e| e.as_ref().map(d)).collect(),
            denoisers: self.denoisers.iter().map(Denoiser::to_double).collect(),
            denoise_spec: self.denoise_spec.clone(),
            normalization: self.normalization.clone(),
            device: self.device,
        }
    }

    /// The class token or position embeddings of node `k`, live or detached.
    fn embed(&self, k: usize, grad: bool) -> Tensor {
        live(
            self.embeds[k]
                .as_ref()
                .expect("class token / position embedding node has its tensor"),
            grad,
        )
    }

    /// The denoiser of node `k`, if any.
    fn denoiser(&self, k: usize) -> Option<&Denoiser> {
        self.denoisers.iter().find(|d| d.layer == k)
    }

    /// Per-node `(weight, bias)` of the weighted nodes used by a forward in `mode`: the live (or
    /// detached) backbone weights, or for [`Mode::Fused`] the fused ones of every denoised node
    /// ([`fuse::fuse_linear`], [`fuse::fuse_conv`], [`fuse::fuse_depthwise`]). `None` for
    /// every other node (batch norms keep their own parameters).
    pub fn layer_params(&self, mode: Mode, grads: Grads) -> Vec<Option<(Tensor, Tensor)>> {
        self.weights
            .iter()
            .enumerate()
            .map(|(k, wb)| {
                let (w, b) = wb.as_ref()?;
                let (w, b) = (live(w, grads.backbone), live(b, grads.backbone));
                match (mode, self.denoiser(k)) {
                    (Mode::Fused, Some(d)) => Some(d.with_terms(grads.denoisers, |terms| {
                        let spec = &self.arch.nodes[k].spec;
                        match spec {
                            _ if spec.is_depthwise() => {
                                fuse::fuse_depthwise(&w, &b, terms, d.coeffs)
                            }
                            LayerSpec::Conv2d { .. } => fuse::fuse_conv(&w, &b, terms, d.coeffs),
                            _ => fuse::fuse_linear(&w, &b, terms, d.coeffs),
                        }
                    })),
                    _ => Some((w, b)),
                }
            })
            .collect()
    }

    /// Forward of normalized inputs `x: [N, C, H, W]`. `train` puts the batch norms in train
    /// mode (batch statistics; running statistics updated): only for backbone training.
    pub fn forward(&self, x: &Tensor, mode: Mode, grads: Grads, train: bool) -> Output {
        let params = self.layer_params(mode, grads);
        self.forward_with(x, &params, mode, grads, train)
    }

    /// Forward with precomputed [`layer_params`](Self::layer_params) (e.g. fused once for a
    /// whole evaluation).
    pub fn forward_with(
        &self,
        x: &Tensor,
        params: &[Option<(Tensor, Tensor)>],
        mode: Mode,
        grads: Grads,
        train: bool,
    ) -> Output {
        self.forward_noisy(x, params, mode, grads, train, &[])
    }

    /// [`forward_with`](Self::forward_with), adding `N(0, s²)` (tch's RNG) to the input of each
    /// weighted node `k` listed in `feature_noise` as `(k, s)` before the node (and before its
    /// denoiser's step, which the fused weights contain): the feature-noise positive control.
    /// `Output::inputs` holds the noisy inputs.
    ///
    /// The graph is evaluated node by node into a value table (`values[k]` = node `k`'s
    /// output); a node reads the graph input `x` or earlier values. Conv2d padding
    /// `[top, bottom, left, right]` is passed to the convolution when symmetric and applied by
    /// an explicit zero pad otherwise; the unfused reference always pads first and applies the
    /// reverse step to the padded input (see [`fuse`]).
    pub fn forward_noisy(
        &self,
        x: &Tensor,
        params: &[Option<(Tensor, Tensor)>],
        mode: Mode,
        grads: Grads,
        train: bool,
        feature_noise: &[(usize, f64)],
    ) -> Output {
        let mut values: Vec<Tensor> = Vec::with_capacity(self.arch.nodes.len());
        let mut inputs = Vec::new();
        for (k, node) in self.arch.nodes.iter().enumerate() {
            let get = |s: Src| match s {
                Src::Input => x.shallow_clone(),
                Src::Node(j) => values[j].shallow_clone(),
            };
            let mut h = get(node.inputs[0]);
            let out = match node.spec {
                LayerSpec::Linear { .. } | LayerSpec::Conv2d { .. } => {
                    if let Some(&(_, s)) = feature_noise.iter().find(|(layer, _)| *layer == k) {
                        h = &h + h.randn_like() * s;
                    }
                    inputs.push(h.shallow_clone());
                    let (w, b) = params[k].as_ref().expect("weighted node has parameters");
                    let denoiser = match mode {
                        Mode::Unfused => self.denoiser(k),
                        _ => None,
                    };
                    match node.spec {
                        LayerSpec::Conv2d {
                            stride,
                            padding,
                            groups,
                            ..
                        } => {
                            let geom = ConvGeom {
                                stride: stride.map(|s| s as i64),
                                padding: padding.map(|p| p as i64),
                                groups: groups as i64,
                            };
                            match denoiser {
                                Some(d) => d.with_terms(grads.denoisers, |t: &Terms| {
                                    fuse::unfused_conv(&h, w, b, geom, t, d.coeffs)
                                }),
                                None => geom.conv(&h, w, b),
                            }
                        }
                        _ => match denoiser {
                            Some(d) => d.with_terms(grads.denoisers, |t: &Terms| {
                                fuse::unfused_linear(&h, w, b, t, d.coeffs)
                            }),
                            None => h.linear(w, Some(b)),
                        },
                    }
                }
                LayerSpec::BatchNorm2d { eps, momentum, .. } => {
                    let bn = self.bn[k].as_ref().expect("batch norm node has state");
                    if train {
                        tch::no_grad(|| {
                            let _ = bn.num_batches_tracked.shallow_clone().g_add_scalar_(1);
                        });
                    }
                    h.batch_norm(
                        Some(&live(&bn.weight, grads.backbone)),
                        Some(&live(&bn.bias, grads.backbone)),
                        Some(&bn.running_mean),
                        Some(&bn.running_var),
                        train,
                        momentum,
                        eps,
                        false,
                    )
                }
                LayerSpec::Relu => h.relu(),
                LayerSpec::Relu6 => h.clamp(0.0, 6.0),
                LayerSpec::MaxPool2d { kernel, stride } => {
                    let (k, s) = (kernel as i64, stride as i64);
                    h.max_pool2d([k, k], [s, s], [0, 0], [1, 1], false)
                }
                LayerSpec::AvgPool2d { kernel, stride } => h.avg_pool2d(
                    kernel.map(|v| v as i64),
                    stride.map(|v| v as i64),
                    [0, 0],
                    false,
                    true,
                    None::<i64>,
                ),
                LayerSpec::GlobalAvgPool => h.mean_dim([2i64, 3].as_slice(), false, h.kind()),
                LayerSpec::Add => h + get(node.inputs[1]),
                LayerSpec::Flatten => h.flatten(1, -1),
                LayerSpec::Tokens => h.flatten(2, -1).transpose(1, 2),
                LayerSpec::ClsToken { .. } => {
                    let cls = self.embed(k, grads.backbone);
                    let n = h.size()[0];
                    Tensor::cat(&[cls.expand([n, -1, -1], false), h], 1)
                }
                LayerSpec::PosEmbed { .. } => h + self.embed(k, grads.backbone),
                LayerSpec::LayerNorm { dim, eps } => {
                    let (w, b) = self.norms[k].as_ref().expect("layer norm node has γ, β");
                    h.layer_norm(
                        [dim as i64],
                        Some(&live(w, grads.backbone)),
                        Some(&live(b, grads.backbone)),
                        eps,
                        false,
                    )
                }
                LayerSpec::Gelu => h.gelu("none"),
                LayerSpec::Attention { heads, .. } => attention(&h, heads as i64),
                LayerSpec::TokenPool { pool: Pool::Cls } => h.select(1, 0),
                LayerSpec::TokenPool { pool: Pool::Mean } => {
                    h.mean_dim([1i64].as_slice(), false, h.kind())
                }
            };
            values.push(out);
        }
        Output {
            embedding: values[self.arch.embedding_layer].shallow_clone(),
            logits: values.pop().expect("a graph has nodes"),
            inputs,
        }
    }
}

fn describe(spec: &LayerSpec) -> String {
    match *spec {
        LayerSpec::Linear {
            in_features,
            out_features,
        } => format!("Linear({in_features}→{out_features})"),
        LayerSpec::Conv2d {
            in_channels,
            out_channels,
            kernel: [kh, kw],
            groups,
            ..
        } => {
            let dw = if groups > 1 { ", depthwise" } else { "" };
            format!("Conv2d({in_channels}→{out_channels}, {kh}×{kw}{dw})")
        }
        LayerSpec::BatchNorm2d { channels, .. } => format!("BatchNorm2d({channels})"),
        LayerSpec::LayerNorm { dim, .. } => format!("LayerNorm({dim})"),
        LayerSpec::ClsToken { dim } => format!("class token [1, 1, {dim}]"),
        LayerSpec::PosEmbed { tokens, dim } => {
            format!("position embeddings [1, {tokens}, {dim}]")
        }
        other => format!("{other:?}"),
    }
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleSpec;

    fn model(spec: &str, shape: [usize; 3], classes: usize) -> Model {
        tch::manual_seed(11);
        let arch = Arch::parse(spec, shape, classes).unwrap();
        let norm = Normalization {
            mean: vec![0.0; shape[0]],
            std: vec![1.0; shape[0]],
        };
        Model::new(arch, norm, Device::Cpu)
    }

    fn input(m: &Model, n: i64) -> Tensor {
        let [c, h, w] = m.arch.input_shape.map(|v| v as i64);
        Tensor::randn([n, c, h, w], (Kind::Float, Device::Cpu))
    }

    fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
        let diff = (a - b).abs().max().double_value(&[]);
        diff / b.abs().max().double_value(&[]).max(1e-30)
    }

    /// Non-zero denoisers on every weighted node (strong schedule so a wrong fusion shows).
    fn with_denoisers(m: &mut Model) {
        let spec = DenoiseSpec {
            schedule: ScheduleSpec {
                beta_start: 0.05,
                beta_end: 0.2,
                timesteps: 10,
            },
            t_stride: 1,
            t_list: Some(vec![3; m.arch.weighted_layers().len()]),
            fuse_noise: Some(3),
        };
        m.add_denoisers(&spec).unwrap();
        tch::no_grad(|| {
            for d in &m.denoisers {
                d.d_mat
                    .shallow_clone()
                    .copy_(&(d.d_mat.randn_like() * 0.05));
                d.d_vec.shallow_clone().copy_(&(d.d_vec.randn_like() * 0.1));
            }
        });
    }

    #[test]
    fn cnn_forward_is_the_sequential_forward_bit_for_bit() {
        let m = model("cnn:4,6/8", [1, 12, 12], 5);
        let x = input(&m, 3);
        let out = tch::no_grad(|| m.forward(&x, Mode::Plain, Grads::NONE, false));
        let p = |k: usize| m.weights[k].as_ref().unwrap();
        let mut h = x.shallow_clone();
        for k in [0, 3] {
            h = h
                .conv2d(&p(k).0, Some(&p(k).1), [1, 1], [1, 1], [1, 1], 1)
                .relu()
                .max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
        }
        let emb = h.flatten(1, -1).linear(&p(7).0, Some(&p(7).1)).relu();
        let logits = emb.linear(&p(9).0, Some(&p(9).1));
        assert!(out.logits.equal(&logits));
        assert!(out.embedding.equal(&emb));
        assert_eq!(out.inputs.len(), 4);
        let names: Vec<String> = m.backbone_params().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[..3], ["0.weight", "0.bias", "3.weight"]);
    }

    #[test]
    fn mlperf_tiny_forwards_in_train_and_eval_mode() {
        for (spec, shape) in [
            ("resnet8", [1, 8, 8]),
            ("ds-cnn", [1, 12, 10]),
            ("mobilenet-v1", [3, 16, 16]),
            ("autoencoder", [1, 6, 6]),
        ] {
            let m = model(spec, shape, 4);
            let x = input(&m, 5);
            let weighted = m.arch.weighted_layers().len();
            let eval = || tch::no_grad(|| m.forward(&x, Mode::Plain, Grads::NONE, false));
            let before = eval();
            assert_eq!(
                before.logits.size(),
                [5, m.arch.output_dim as i64],
                "{spec}"
            );
            assert_eq!(
                before.embedding.size(),
                [5, m.arch.embedding_dim as i64],
                "{spec}"
            );
            assert_eq!(before.inputs.len(), weighted, "{spec}");
            // Eval mode: deterministic, running statistics untouched.
            assert!(eval().logits.equal(&before.logits), "{spec}");
            let bn = m.bn.iter().flatten().next().unwrap();
            assert_eq!(bn.num_batches_tracked.int64_value(&[]), 0);
            // Train mode: batch statistics (a different function), running stats updated.
            let grads = Grads {
                backbone: true,
                denoisers: false,
            };
            let train = m.forward(&x, Mode::Plain, grads, true);
            assert_eq!(train.logits.size(), before.logits.size());
            assert!(rel_err(&train.logits, &before.logits) > 1e-3, "{spec}");
            assert_eq!(bn.num_batches_tracked.int64_value(&[]), 1, "{spec}");
            assert!(bn.running_mean.abs().sum(Kind::Float).double_value(&[]) > 0.0);
            // Gradients reach every trainable backbone tensor.
            train.logits.square().mean(Kind::Float).backward();
            for (name, t) in m.backbone_params() {
                assert!(t.grad().defined(), "{spec}: {name} has no gradient");
            }
            assert!(
                !eval().logits.equal(&before.logits),
                "{spec}: running stats unused"
            );
        }
    }

    #[test]
    fn fused_is_the_unfused_reference_on_graph_backbones() {
        for (spec, shape) in [
            ("resnet8", [1, 8, 8]),
            ("ds-cnn", [1, 12, 10]),
            ("mobilenet-v1", [3, 16, 16]),
            ("autoencoder", [1, 6, 6]),
            ("vit:4,16,2,2,2", [1, 8, 8]),
        ] {
            let mut m = model(spec, shape, 4);
            with_denoisers(&mut m);
            assert_eq!(m.denoisers.len(), m.arch.weighted_layers().len());
            let depthwise = m
                .arch
                .nodes
                .iter()
                .filter(|n| n.spec.is_depthwise())
                .count();
            let diagonal = m.denoisers.iter().filter(|d| d.is_diagonal()).count();
            assert_eq!(depthwise, diagonal, "{spec}");
            let x = input(&m, 3);
            let run = |mode| tch::no_grad(|| m.forward(&x, mode, Grads::NONE, false));
            let (fused, unfused, plain) = (run(Mode::Fused), run(Mode::Unfused), run(Mode::Plain));
            let err = rel_err(&fused.logits, &unfused.logits);
            assert!(err < 1e-4, "{spec}: fused vs unfused {err}");
            assert!(rel_err(&plain.logits, &unfused.logits) > 1e-3, "{spec}");
            // Fused depthwise weights stay depthwise.
            let params = tch::no_grad(|| m.layer_params(Mode::Fused, Grads::NONE));
            for (k, p) in params.iter().enumerate() {
                if let (Some((wf, _)), Some((w, _))) = (p, &m.weights[k]) {
                    assert_eq!(wf.size(), w.size());
                }
            }
        }
    }

    /// The ViT written out op by op in f64 from its `state_dict`, independently of
    /// [`Model::forward`]: tokens by permute + reshape, explicit LayerNorm, each head's
    /// attention from its own slices of q, k, v with an explicit softmax, GELU from `erf`.
    fn vit_reference(m: &Model, x: &Tensor, heads: i64, cls: bool) -> (Tensor, Tensor) {
        let p: HashMap<String, Tensor> = m.backbone_params().into_iter().collect();
        let w = |n: &str| p[n].detach();
        let ln = |x: &Tensor, name: &str| {
            let mu = x.mean_dim(-1, true, Kind::Double);
            let var = (x - &mu).square().mean_dim(-1, true, Kind::Double);
            (x - mu) / (var + 1e-6).sqrt() * w(&format!("{name}.weight"))
                + w(&format!("{name}.bias"))
        };
        let lin = |x: &Tensor, name: &str| {
            x.matmul(&w(&format!("{name}.weight")).tr()) + w(&format!("{name}.bias"))
        };
        let n = x.size()[0];
        let y = x.conv2d(
            &w("patch_embed.proj.weight"),
            Some(&w("patch_embed.proj.bias")),
            [4, 4],
            [0, 0],
            [1, 1],
            1,
        );
        let d = y.size()[1];
        let mut t = y.permute([0, 2, 3, 1]).reshape([n, -1, d]);
        if cls {
            t = Tensor::cat(&[w("cls_token").repeat([n, 1, 1]), t], 1);
        }
        t += w("pos_embed");
        let dh = d / heads;
        for b in 0..2 {
            let pre = format!("blocks.{b}");
            let qkv = lin(&ln(&t, &format!("{pre}.norm1")), &format!("{pre}.attn.qkv"));
            let head = |h: i64| {
                let part = |j: i64| qkv.narrow(2, j * d + h * dh, dh);
                let s = part(0).matmul(&part(1).transpose(1, 2)) / (dh as f64).sqrt();
                let e = (&s - s.amax([-1i64].as_slice(), true)).exp();
                (&e / e.sum_dim_intlist(-1, true, Kind::Double)).matmul(&part(2))
            };
            let heads: Vec<Tensor> = (0..heads).map(head).collect();
            t = &t + lin(&Tensor::cat(&heads, 2), &format!("{pre}.attn.proj"));
            let h = lin(&ln(&t, &format!("{pre}.norm2")), &format!("{pre}.mlp.fc1"));
            let g = &h * 0.5 * ((&h / std::f64::consts::SQRT_2).erf() + 1.0);
            t = &t + lin(&g, &format!("{pre}.mlp.fc2"));
        }
        let emb = if cls {
            ln(&t, "norm").select(1, 0)
        } else {
            ln(&t.mean_dim(1, false, Kind::Double), "fc_norm")
        };
        (lin(&emb, "head"), emb)
    }

    #[test]
    fn vit_forward_is_the_explicit_reference() {
        for (spec, cls) in [
            ("vit:4,16,2,2,2,cls", true),
            ("vit:4,16,4,2,1.5,mean", false),
        ] {
            let m = model(spec, [1, 8, 12], 5).to_double();
            let heads = if cls { 2 } else { 4 };
            let x = Tensor::randn([3, 1, 8, 12], (Kind::Double, Device::Cpu));
            let out = tch::no_grad(|| m.forward(&x, Mode::Plain, Grads::NONE, false));
            let (logits, emb) = vit_reference(&m, &x, heads, cls);
            assert_eq!(out.logits.size(), [3, 5]);
            assert_eq!(out.embedding.size(), [3, 16]);
            assert!(rel_err(&out.logits, &logits) < 1e-12, "{spec}");
            assert!(rel_err(&out.embedding, &emb) < 1e-12, "{spec}");
            // Denoised-layer inputs: the image, then tokens [N, T, ·], the pooled token.
            let tokens = 6 + i64::from(cls);
            let shapes: Vec<Vec<i64>> = out.inputs.iter().map(|t| t.size()).collect();
            assert_eq!(shapes.len(), 1 + 4 * 2 + 1);
            assert_eq!(shapes[0], [3, 1, 8, 12]);
            assert_eq!(shapes[1], [3, tokens, 16]);
            assert_eq!(shapes[4], [3, tokens, if cls { 32 } else { 24 }]);
            assert_eq!(shapes[9], [3, 16]);
        }
    }

    #[test]
    fn vit_init_is_timms_and_gradients_reach_every_tensor() {
        let m = model("vit:4,16,2,2,2", [1, 8, 8], 5);
        let p: HashMap<String, Tensor> = m.backbone_params().into_iter().collect();
        let std = |n: &str| p[n].std(true).double_value(&[]);
        for n in [
            "blocks.0.attn.qkv.weight",
            "blocks.1.mlp.fc2.weight",
            "pos_embed",
        ] {
            assert!((std(n) - 0.02).abs() < 0.006, "{n}: σ {}", std(n));
        }
        for n in ["blocks.0.attn.qkv.bias", "head.bias", "norm.bias"] {
            assert_eq!(p[n].abs().sum(Kind::Float).double_value(&[]), 0.0, "{n}");
        }
        assert_eq!(
            p["blocks.1.norm2.weight"]
                .mean(Kind::Float)
                .double_value(&[]),
            1.0
        );
        assert_eq!(p["cls_token"].size(), [1, 1, 16]);
        // The patch conv keeps PyTorch's U(±1/√fan_in), fan_in = 16.
        assert!(p["patch_embed.proj.weight"].abs().max().double_value(&[]) <= 0.25);
        assert_eq!(m.embed_names(), ["cls_token", "pos_embed"]);
        // Seeded initialization is checked in its own test binary (host-trainer/tests/
        // seeded_init.rs): libtorch's generator is process-wide, and the other unit tests running
        // in parallel threads draw from it between a seed and the draws that follow.
        let x = input(&m, 4);
        let grads = Grads {
            backbone: true,
            denoisers: false,
        };
        let out = m.forward(&x, Mode::Plain, grads, true);
        out.logits.square().mean(Kind::Float).backward();
        for (name, t) in m.backbone_params() {
            assert!(t.grad().defined(), "{name} has no gradient");
            assert!(
                t.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0,
                "{name}"
            );
        }
    }

    /// Denoisers on every Linear (per token) and the patch conv fuse exactly: the fused ViT is
    /// the explicit reverse-step reference to f64 rounding.
    #[test]
    fn vit_fusion_is_exact_f64() {
        for spec in ["vit:4,16,2,2,2,cls", "vit:2,8,2,1,3,mean"] {
            let mut m = model(spec, [2, 8, 8], 4);
            with_denoisers(&mut m);
            assert_eq!(m.denoisers.len(), m.arch.weighted_layers().len());
            assert!(m.denoisers.iter().all(|d| !d.is_diagonal()));
            let m = m.to_double();
            let x = Tensor::randn([3, 2, 8, 8], (Kind::Double, Device::Cpu));
            let run = |mode| tch::no_grad(|| m.forward(&x, mode, Grads::NONE, false));
            let (fused, unfused, plain) = (run(Mode::Fused), run(Mode::Unfused), run(Mode::Plain));
            assert_eq!(fused.logits.kind(), Kind::Double);
            let err = rel_err(&fused.logits, &unfused.logits);
            assert!(err <= 1e-5, "{spec}: fused vs unfused {err:e}");
            let err = rel_err(&fused.embedding, &unfused.embedding);
            assert!(err <= 1e-5, "{spec}: embedding {err:e}");
            assert!(rel_err(&plain.logits, &unfused.logits) > 1e-3, "{spec}");
            // The fused weights have the backbone's shapes: nothing is added.
            let params = tch::no_grad(|| m.layer_params(Mode::Fused, Grads::NONE));
            for (k, p) in params.iter().enumerate() {
                if let (Some((wf, bf)), Some((w, b))) = (p, &m.weights[k]) {
                    assert_eq!((wf.size(), bf.size()), (w.size(), b.size()));
                }
            }
        }
    }

    #[test]
    fn state_dict_round_trips_with_batchnorm_buffers() {
        let m = model("ds-cnn", [1, 12, 10], 4);
        let x = input(&m, 4);
        let grads = Grads {
            backbone: true,
            denoisers: false,
        };
        let _ = m.forward(&x, Mode::Plain, grads, true);
        let saved: HashMap<String, Tensor> = m.tensors().into_iter().collect();
        for name in [
            "conv1.weight",
            "bn1.running_mean",
            "blocks.0.dw.weight",
            "blocks.3.bn2.num_batches_tracked",
            "fc.bias",
        ] {
            assert!(saved.contains_key(name), "{name}");
        }
        let mut fresh = model("ds-cnn", [1, 12, 10], 4);
        fresh.load_backbone(&saved, "test").unwrap();
        let a = tch::no_grad(|| m.forward(&x, Mode::Plain, Grads::NONE, false));
        let b = tch::no_grad(|| fresh.forward(&x, Mode::Plain, Grads::NONE, false));
        assert!(a.logits.equal(&b.logits));
        let mut missing = saved;
        missing.remove("blocks.1.bn1.running_var");
        let e = format!(
            "{:#}",
            fresh.load_backbone(&missing, "f.safetensors").unwrap_err()
        );
        assert!(
            e.contains("missing tensor 'blocks.1.bn1.running_var'"),
            "{e}"
        );
    }
}
