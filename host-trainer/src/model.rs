//! The model: a backbone (an `nn.Sequential`-like layer list), optional denoisers, the input
//! normalization, and the three forwards (plain, unfused-with-denoisers, fused).

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::arch::{Arch, LayerSpec};
use crate::data::Normalization;
use crate::denoiser::{live, Denoiser};
use crate::fuse::{self, Terms};
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

/// A backbone with optional denoisers (one per weighted layer, or none).
#[derive(Debug)]
pub struct Model {
    pub arch: Arch,
    /// `weights[k]` = `(weight, bias)` of layer `k` when it is weighted.
    pub weights: Vec<Option<(Tensor, Tensor)>>,
    /// Denoisers in forward order; empty for baseline / penalty-control models.
    pub denoisers: Vec<Denoiser>,
    pub denoise_spec: Option<DenoiseSpec>,
    pub normalization: Normalization,
    pub device: Device,
}

fn uniform(shape: &[i64], bound: f64, device: Device) -> Tensor {
    (Tensor::rand(shape, (Kind::Float, device)) * 2.0 - 1.0) * bound
}

impl Model {
    /// A randomly initialized backbone (PyTorch's default `U(±1/√fan_in)` for weights and
    /// biases) without denoisers. Draws from tch's RNG.
    pub fn new(arch: Arch, normalization: Normalization, device: Device) -> Self {
        let weights = arch
            .layers
            .iter()
            .map(|l| {
                l.param_shapes().map(|(ws, bs)| {
                    let fan_in: i64 = ws[1..].iter().product();
                    let bound = 1.0 / (fan_in as f64).sqrt();
                    (
                        uniform(&ws, bound, device).set_requires_grad(true),
                        uniform(&bs, bound, device).set_requires_grad(true),
                    )
                })
            })
            .collect();
        Self {
            arch,
            weights,
            denoisers: Vec::new(),
            denoise_spec: None,
            normalization,
            device,
        }
    }

    /// Adds fresh denoisers (`D = 0`, `d = 0`) to every weighted layer, replacing any.
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
                let c = self.arch.layers[k].in_channels();
                let z: Vec<f32> = match spec.fuse_noise {
                    None => vec![0.0; c],
                    Some(seed) => {
                        let mut rng = Rng::new(mix(seed, k as u64));
                        (0..c).map(|_| rng.normal() as f32).collect()
                    }
                };
                Denoiser::new(
                    k,
                    c,
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

    /// Backbone tensors named as in PyTorch `nn.Sequential`: `k.weight`, `k.bias`.
    pub fn backbone_params(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        for (k, wb) in self.weights.iter().enumerate() {
            if let Some((w, b)) = wb {
                v.push((format!("{k}.weight"), w.shallow_clone()));
                v.push((format!("{k}.bias"), b.shallow_clone()));
            }
        }
        v
    }

    /// Trainable denoiser tensors (`denoisers.k.*`).
    pub fn denoiser_params(&self) -> Vec<(String, Tensor)> {
        self.denoisers.iter().flat_map(Denoiser::params).collect()
    }

    /// Everything saved in `model.safetensors`: backbone, denoisers (with `z`) and the input
    /// normalization as `normalization.mean` / `normalization.std` (`[C]`).
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut v = self.backbone_params();
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

    /// Copies backbone tensors `k.weight` / `k.bias` from `src` (any float kind), checking that
    /// each exists with the right shape. `source` names the file in errors. Keys other than the
    /// backbone's, `denoisers.*` and `normalization.*` are rejected.
    pub fn load_backbone(&mut self, src: &HashMap<String, Tensor>, source: &str) -> Result<()> {
        let expected: HashMap<String, Tensor> = self.backbone_params().into_iter().collect();
        let mut unexpected: Vec<&String> = src
            .keys()
            .filter(|k| {
                !expected.contains_key(*k)
                    && !k.starts_with("denoisers.")
                    && !k.starts_with("normalization.")
            })
            .collect();
        unexpected.sort();
        if !unexpected.is_empty() {
            bail!(
                "{source}: tensor(s) {} do not belong to arch {} (expected nn.Sequential names {})",
                list(unexpected.iter().map(|s| s.as_str())),
                self.arch.spec,
                list(self.backbone_params().iter().map(|(n, _)| n.as_str()))
            );
        }
        for (k, spec) in self.arch.layers.iter().enumerate() {
            let Some((w, b)) = &self.weights[k] else {
                continue;
            };
            for (suffix, dst) in [("weight", w), ("bias", b)] {
                let name = format!("{k}.{suffix}");
                let t = src.get(&name).with_context(|| {
                    format!(
                        "{source}: missing tensor '{name}' ({} expects shape {:?})",
                        describe(spec),
                        dst.size()
                    )
                })?;
                if t.size() != dst.size() {
                    bail!(
                        "{source}: tensor '{name}' has shape {:?}, {} expects {:?}",
                        t.size(),
                        describe(spec),
                        dst.size()
                    );
                }
                if !t.is_floating_point() {
                    bail!(
                        "{source}: tensor '{name}' has kind {:?}, expected a float kind",
                        t.kind()
                    );
                }
                let t = t.to_kind(Kind::Float).to_device(self.device);
                tch::no_grad(|| dst.shallow_clone().copy_(&t));
            }
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

    /// The denoiser of layer `k`, if any.
    fn denoiser(&self, k: usize) -> Option<&Denoiser> {
        self.denoisers.iter().find(|d| d.layer == k)
    }

    /// Per-layer `(weight, bias)` used by a forward in `mode`: the live (or detached) backbone
    /// weights, or for [`Mode::Fused`] the fused ones of every denoised layer.
    pub fn layer_params(&self, mode: Mode, grads: Grads) -> Vec<Option<(Tensor, Tensor)>> {
        self.weights
            .iter()
            .enumerate()
            .map(|(k, wb)| {
                let (w, b) = wb.as_ref()?;
                let (w, b) = (live(w, grads.backbone), live(b, grads.backbone));
                match (mode, self.denoiser(k)) {
                    (Mode::Fused, Some(d)) => {
                        Some(
                            d.with_terms(grads.denoisers, |terms| match self.arch.layers[k] {
                                LayerSpec::Conv2d { .. } => {
                                    fuse::fuse_conv(&w, &b, terms, d.coeffs)
                                }
                                _ => fuse::fuse_linear(&w, &b, terms, d.coeffs),
                            }),
                        )
                    }
                    _ => Some((w, b)),
                }
            })
            .collect()
    }

    /// Forward of normalized inputs `x: [N, C, H, W]`.
    pub fn forward(&self, x: &Tensor, mode: Mode, grads: Grads) -> Output {
        let params = self.layer_params(mode, grads);
        self.forward_with(x, &params, mode, grads)
    }

    /// Forward with precomputed [`layer_params`](Self::layer_params) (e.g. fused once for a
    /// whole evaluation).
    pub fn forward_with(
        &self,
        x: &Tensor,
        params: &[Option<(Tensor, Tensor)>],
        mode: Mode,
        grads: Grads,
    ) -> Output {
        self.forward_noisy(x, params, mode, grads, &[])
    }

    /// [`forward_with`](Self::forward_with), adding `N(0, s²)` (tch's RNG) to the input of each
    /// weighted layer `k` listed in `feature_noise` as `(k, s)` before the layer (and before its
    /// denoiser's step, which the fused weights contain): the feature-noise positive control.
    /// `Output::inputs` holds the noisy inputs.
    pub fn forward_noisy(
        &self,
        x: &Tensor,
        params: &[Option<(Tensor, Tensor)>],
        mode: Mode,
        grads: Grads,
        feature_noise: &[(usize, f64)],
    ) -> Output {
        let mut h = x.shallow_clone();
        let mut inputs = Vec::new();
        let mut embedding = None;
        for (k, spec) in self.arch.layers.iter().enumerate() {
            h = match *spec {
                LayerSpec::Linear { .. } | LayerSpec::Conv2d { .. } => {
                    if let Some(&(_, s)) = feature_noise.iter().find(|(layer, _)| *layer == k) {
                        h = &h + h.randn_like() * s;
                    }
                    inputs.push(h.shallow_clone());
                    let (w, b) = params[k].as_ref().expect("weighted layer has parameters");
                    let (stride, padding) = match *spec {
                        LayerSpec::Conv2d {
                            stride, padding, ..
                        } => (stride as i64, padding as i64),
                        _ => (1, 0),
                    };
                    let conv = matches!(spec, LayerSpec::Conv2d { .. });
                    match (mode, self.denoiser(k)) {
                        (Mode::Unfused, Some(d)) => d.with_terms(grads.denoisers, |t: &Terms| {
                            if conv {
                                fuse::unfused_conv(&h, w, b, stride, padding, t, d.coeffs)
                            } else {
                                fuse::unfused_linear(&h, w, b, t, d.coeffs)
                            }
                        }),
                        _ if conv => {
                            h.conv2d(w, Some(b), [stride, stride], [padding, padding], [1, 1], 1)
                        }
                        _ => h.linear(w, Some(b)),
                    }
                }
                LayerSpec::Relu => h.relu(),
                LayerSpec::MaxPool2d { kernel, stride } => {
                    let (k, s) = (kernel as i64, stride as i64);
                    h.max_pool2d([k, k], [s, s], [0, 0], [1, 1], false)
                }
                LayerSpec::Flatten => h.flatten(1, -1),
            };
            if k == self.arch.embedding_layer {
                embedding = Some(h.shallow_clone());
            }
        }
        Output {
            logits: h,
            embedding: embedding.expect("embedding layer is inside the layer list"),
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
            kernel,
            ..
        } => {
            format!("Conv2d({in_channels}→{out_channels}, {kernel}×{kernel})")
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
