//! The training loop and the four regimes.
//!
//! | regime | trains | loss | forward |
//! |---|---|---|---|
//! | `baseline` | backbone | CE | plain |
//! | `label-free` | denoisers | Σ noise | unfused reference (backbone frozen, bit-identical) |
//! | `label-guided` A | denoisers | Σ noise | unfused reference (backbone frozen) |
//! | `label-guided` B | backbone | CE + λ·Σ noise | fused, recomputed from the live `W, b` each step |
//! | `penalty-control` | backbone | CE + λ·Σ (mean\|a\| + mean a²) | plain |
//!
//! CE is the task loss: cross-entropy, or for a reconstruction model (`--arch autoencoder`) the
//! MSE between its output and the flattened normalized input ([`Trainer::task_loss`]); the
//! denoiser phases never use labels.
//!
//! `label-guided` alternates every `phase_epochs` epochs, starting with A. Each parameter group
//! has its own [`Adam`]; only the active group's optimizer steps, and the frozen group is used
//! through detached tensors, so it receives no gradient at all. The noise loss sees each layer
//! input detached (the paper's code), so in phase B it only adds a constant; with `noise_grad`
//! its gradient reaches the backbone through the layer inputs.
//!
//! **Epoch schedule** ([`EpochSchedule`], `--schedule`): `baseline` and `penalty-control` can
//! run on label-guided's schedule instead of the plain one: the A epochs are skipped (no step,
//! no curve record, the backbone untouched) and each B block gets its own cosine lr segment, so
//! the run trains the backbone in exactly label-guided's B epochs, with the same data order —
//! the null control of `denoiserep compare`.
//!
//! **Determinism:** epoch `e` (0-based) reseeds libtorch with `mix(seed, e)` and shuffles the
//! train split with `Rng::new(mix(seed, e + 2^32))`, so a run resumed from an epoch checkpoint
//! (which holds the Adam moments) continues bit-identically on the CPU.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::augment::Augment;
use crate::data::Dataset;
use crate::denoiser::Denoiser;
use crate::denoiser_fit;
use crate::eval::EpochRecord;
use crate::evaluate;
use crate::model::{DenoiseSpec, Grads, Mode, Model};
use crate::optim::{Adam, Sgd};

/// Default step size of the denoisers' whitened SGD (`--denoiser-lr` with `--denoiser-precondition
/// whiten`): the fraction of a Newton step of each layer's L2 loss (`docs/trainer.md`).
pub const DEFAULT_WHITENED_LR: f64 = 0.5;
use crate::rng::{mix, Rng};

/// `--regime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Regime {
    /// Cross-entropy only, no denoisers.
    Baseline,
    /// From `--init`: backbone frozen, denoisers trained with the noise loss.
    LabelFree,
    /// Alternating phases A (denoisers) and B (backbone through the fused weights).
    LabelGuided,
    /// From `--init`: CE + λ·(L1 + L2 of every weighted layer's input), no denoisers.
    PenaltyControl,
}

impl Regime {
    /// The kebab-case name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::LabelFree => "label-free",
            Self::LabelGuided => "label-guided",
            Self::PenaltyControl => "penalty-control",
        }
    }

    /// True for the regimes whose model has denoisers.
    pub fn has_denoisers(self) -> bool {
        matches!(self, Self::LabelFree | Self::LabelGuided)
    }
}

/// `--lr-schedule`: the learning rate over a training segment (the whole run, or one
/// label-guided phase block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// `lr` throughout.
    Constant,
    /// `lr·(1 + cos(π·k/K))/2` at step `k` of the segment's `K` steps (decays to 0).
    Cosine,
}

/// `--schedule`: which epochs of the run train, and the learning-rate segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EpochSchedule {
    /// Every epoch trains; one lr segment over the whole run.
    #[default]
    Plain,
    /// label-guided's schedule for a backbone-only regime: epochs in A blocks (`⌊e/P⌋` even,
    /// `P = phase_epochs`) are skipped; each B block is one lr segment.
    LabelGuided,
}

impl EpochSchedule {
    /// The kebab-case name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::LabelGuided => "label-guided",
        }
    }
}

/// `--denoiser-fit`: how the denoisers are set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DenoiserFit {
    /// Adam on the noise loss (L1 + L2, as the paper), one step per batch.
    #[default]
    Gradient,
    /// The exact L2 optimum from train-split moments, layer by layer in forward order, at the
    /// first epoch of every denoiser block (label-free: the run; label-guided: each phase A);
    /// the block's other epochs have nothing to train and are skipped.
    ClosedForm,
}

impl DenoiserFit {
    /// The kebab-case name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gradient => "gradient",
            Self::ClosedForm => "closed-form",
        }
    }
}

/// `--denoiser-precondition`: the coordinates gradient training of the denoisers runs in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Precondition {
    /// `D`, `d` directly (the paper's code; ill-conditioned: `docs/trainer.md`). What
    /// config.json files written before this option existed used.
    #[default]
    None,
    /// Whitened coordinates of the noisy layer input (`denoiser::Whitened`).
    Whiten,
}

/// Every training setting; written to `config.json` as `train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// `--data` spec.
    pub data: String,
    pub test_fraction: f64,
    pub data_dir: PathBuf,
    /// Canonical arch string.
    pub arch: String,
    pub regime: Regime,
    pub epochs: usize,
    pub batch_size: usize,
    /// `--labels N`: cross-entropy sees only N class-stratified train samples
    /// ([`labelled_subset`]); `None` (and config.json files written before it existed): all.
    #[serde(default)]
    pub labels: Option<usize>,
    pub lr: f64,
    pub lr_schedule: LrSchedule,
    pub lambda: f64,
    pub phase_epochs: usize,
    /// `--schedule` (absent in config.json files written before it existed: plain).
    #[serde(default)]
    pub schedule: EpochSchedule,
    pub denoise: DenoiseSpec,
    /// `--denoiser-fit` (absent in config.json files written before it existed: gradient).
    #[serde(default)]
    pub denoiser_fit: DenoiserFit,
    /// `--denoiser-lr`: Adam's learning rate for the denoisers (`None`: `lr`, as config.json
    /// files written before it existed).
    #[serde(default)]
    pub denoiser_lr: Option<f64>,
    /// `--denoiser-precondition` (absent in older config.json files: none).
    #[serde(default)]
    pub denoiser_precondition: Precondition,
    pub noise_grad: bool,
    pub seed: u64,
    /// Seed of the train/test split (`LoadOptions::seed`): `seed`, or the `--init` run's.
    pub data_seed: u64,
    pub init: Option<PathBuf>,
    pub import: Option<PathBuf>,
    /// `--normal-classes`: a reconstruction model trains on these classes only (sorted) and is
    /// evaluated for anomaly detection on the whole test split, every other class anomalous
    /// (`eval::anomaly`). `None` (and config.json files written before it existed): all classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normal_classes: Option<Vec<u32>>,
    /// `--augment` of the cross-entropy epochs (absent in config.json files written before it
    /// existed, and not written when `none`).
    #[serde(default, skip_serializing_if = "Augment::is_none")]
    pub augment: Augment,
    /// `--weight-decay`: AdamW's decoupled decay of the backbone's weight matrices and kernels
    /// (absent in config.json files written before it existed, and not written when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub weight_decay: f64,
}

/// Serde's `skip_serializing_if` for a setting whose 0 means "off".
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// What an epoch trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Baseline,
    LabelFree,
    /// label-guided, denoisers.
    A,
    /// label-guided, backbone.
    B,
    PenaltyControl,
}

impl Phase {
    /// Name in the curve records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::LabelFree => "label-free",
            Self::A => "A",
            Self::B => "B",
            Self::PenaltyControl => "penalty-control",
        }
    }
}

/// The phase of epoch `epoch` (0-based).
pub fn phase(regime: Regime, phase_epochs: usize, epoch: usize) -> Phase {
    match regime {
        Regime::Baseline => Phase::Baseline,
        Regime::LabelFree => Phase::LabelFree,
        Regime::PenaltyControl => Phase::PenaltyControl,
        Regime::LabelGuided if (epoch / phase_epochs.max(1)) % 2 == 0 => Phase::A,
        Regime::LabelGuided => Phase::B,
    }
}

/// True when epoch `epoch` (0-based) of a `cfg` run is skipped: an A epoch under
/// `--schedule label-guided` (which only backbone-only regimes accept).
pub fn skips_epoch(cfg: &TrainConfig, epoch: usize) -> bool {
    let null_schedule = cfg.schedule == EpochSchedule::LabelGuided
        && cfg.regime != Regime::LabelGuided
        && phase(Regime::LabelGuided, cfg.phase_epochs, epoch) == Phase::A;
    null_schedule || closed_form_rest(cfg, epoch)
}

/// True for an epoch of a denoiser block that a closed-form fit leaves nothing to do: every
/// label-free epoch after the first, every phase-A epoch after its block's first.
pub fn closed_form_rest(cfg: &TrainConfig, epoch: usize) -> bool {
    if cfg.denoiser_fit != DenoiserFit::ClosedForm {
        return false;
    }
    match phase(cfg.regime, cfg.phase_epochs, epoch) {
        Phase::LabelFree => epoch > 0,
        Phase::A => epoch % cfg.phase_epochs.max(1) != 0,
        _ => false,
    }
}

/// Number of epochs of a `cfg` run that train the backbone (CE): every epoch of `baseline` and
/// `penalty-control` that is not skipped, label-guided's B epochs, none for `label-free`.
pub fn backbone_epochs(cfg: &TrainConfig) -> usize {
    (0..cfg.epochs)
        .filter(|&e| match cfg.regime {
            Regime::LabelFree => false,
            Regime::LabelGuided => phase(cfg.regime, cfg.phase_epochs, e) == Phase::B,
            Regime::Baseline | Regime::PenaltyControl => !skips_epoch(cfg, e),
        })
        .count()
}

/// The `--labels n` subset of a train split with labels `y`: class-stratified — each class's
/// samples in the order of a permutation seeded by `mix(seed, 7·2³²)`, then taken round-robin
/// over the classes in class order (one per class per round, skipping exhausted classes) until
/// `n` are picked, so every class gets `⌊n/C⌋` or one more while it has samples. Sorted
/// ascending; every index when `n ≥ y.len()`.
pub fn labelled_subset(y: &[u32], num_classes: usize, n: usize, seed: u64) -> Vec<i64> {
    if n >= y.len() {
        return (0..y.len() as i64).collect();
    }
    let c = num_classes.max(1);
    let mut by_class: Vec<Vec<i64>> = vec![Vec::new(); c];
    for i in Rng::new(mix(seed, 7 << 32)).permutation(y.len()) {
        by_class[(y[i as usize] as usize).min(c - 1)].push(i);
    }
    // Round-robin over classes: each round takes one more sample of every class that has one.
    let mut picked = Vec::with_capacity(n);
    let mut round = 0;
    while picked.len() < n {
        for class in &by_class {
            if picked.len() < n {
                if let Some(&i) = class.get(round) {
                    picked.push(i);
                }
            }
        }
        round += 1;
    }
    picked.sort_unstable();
    picked
}

/// Trainer state: model, data tensors, optimizers and the curve so far.
pub struct Trainer {
    pub cfg: TrainConfig,
    pub model: Model,
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    /// Train indices cross-entropy sees (`--labels`; every index without it).
    labelled: Vec<i64>,
    /// `[C]`: the normalized value of a raw 0 pixel, the border fill of `--augment shift`.
    augment_fill: Tensor,
    pub backbone_opt: Adam,
    pub denoiser_opt: Adam,
    /// The denoisers' optimizer in whitened coordinates (then `denoiser_opt` holds nothing).
    pub denoiser_sgd: Option<Sgd>,
    pub curve: Vec<EpochRecord>,
    /// Epochs completed, skipped ones included (the curve holds only the trained ones).
    pub epochs_done: usize,
    /// Show progress bars (only drawn when stderr is a terminal).
    pub progress: bool,
}

/// Resume bookkeeping stored in a checkpoint next to the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub epochs_done: usize,
    pub backbone_steps: i64,
    pub denoiser_steps: i64,
    pub curve: Vec<EpochRecord>,
    /// CRC-32 (ISO-HDLC) of every other tensor's raw little-endian bytes, by name: a flipped bit
    /// in the weights or moments is caught at `--resume` instead of silently training on.
    #[serde(default)]
    pub checksums: BTreeMap<String, u32>,
}

/// CRC-32 of a tensor's raw bytes (moved to the CPU, contiguous, native = little-endian order).
fn tensor_crc(t: &Tensor) -> u32 {
    let t = t.to_device(Device::Cpu).contiguous();
    let numel = t.numel();
    let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    t.copy_data_u8(&mut bytes, numel);
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&bytes)
}

impl Trainer {
    /// Moves the (raw) data to the model's device, normalized with the model's statistics.
    pub fn new(cfg: TrainConfig, mut model: Model, data: &Dataset) -> Self {
        if cfg.denoiser_fit == DenoiserFit::Gradient
            && cfg.denoiser_precondition == Precondition::Whiten
        {
            model
                .denoisers
                .iter_mut()
                .for_each(Denoiser::enable_whitening);
        }
        let (norm, dev) = (&model.normalization, model.device);
        let train_x = evaluate::to_tensor(&data.train.x, data.shape, norm, dev);
        let test_x = evaluate::to_tensor(&data.test.x, data.shape, norm, dev);
        let mut backbone_opt = Adam::new(model.backbone_params(), cfg.lr);
        backbone_opt.weight_decay = cfg.weight_decay;
        backbone_opt.exclude_from_decay(&model.embed_names());
        let whitened = model.denoisers.iter().any(|d| d.whitened.is_some());
        let (denoiser_opt, denoiser_sgd) = if whitened {
            // Per-layer scales are set before every step (`Denoiser::whitened_scale`).
            let params = model
                .denoisers
                .iter()
                .flat_map(|d| d.params().into_iter().map(|(n, t)| (n, t, 0.0)))
                .collect();
            let eta = cfg.denoiser_lr.unwrap_or(DEFAULT_WHITENED_LR);
            (Adam::new(Vec::new(), cfg.lr), Some(Sgd::new(params, eta)))
        } else {
            (
                Adam::new(model.denoiser_params(), cfg.denoiser_lr.unwrap_or(cfg.lr)),
                None,
            )
        };
        let labelled = match cfg.labels {
            Some(n) => labelled_subset(&data.train.y, data.num_classes, n, cfg.data_seed),
            None => (0..data.train.len() as i64).collect(),
        };
        let augment_fill = Tensor::from_slice(
            &norm
                .mean
                .iter()
                .zip(&norm.std)
                .map(|(m, s)| (0.0 - m) / s)
                .collect::<Vec<f32>>(),
        );
        Self {
            labelled,
            augment_fill,
            train_y: evaluate::labels(&data.train.y, dev),
            test_y: evaluate::labels(&data.test.y, dev),
            train_x,
            test_x,
            backbone_opt,
            denoiser_opt,
            denoiser_sgd,
            curve: Vec::new(),
            epochs_done: 0,
            progress: true,
            cfg,
            model,
        }
    }

    /// Trains epoch `epoch` (0-based), appends and returns its record; `None` for an epoch the
    /// schedule skips ([`skips_epoch`]), which changes nothing but the epoch count. A non-finite
    /// loss is an error naming the epoch (1-based) and step (1-based).
    pub fn run_epoch(&mut self, epoch: usize) -> Result<Option<EpochRecord>> {
        self.epochs_done = epoch + 1;
        if skips_epoch(&self.cfg, epoch) {
            return Ok(None);
        }
        let started = Instant::now();
        let ph = phase(self.cfg.regime, self.cfg.phase_epochs, epoch);
        if matches!(ph, Phase::A | Phase::LabelFree)
            && self.cfg.denoiser_fit == DenoiserFit::ClosedForm
        {
            return self.closed_form_epoch(epoch, ph, started).map(Some);
        }
        if matches!(ph, Phase::A | Phase::LabelFree) {
            // The layer inputs drift as the denoisers in front of them train: re-whiten every
            // denoiser epoch (keeps each predictor's function).
            self.precondition()?;
        }
        tch::manual_seed(mix(self.cfg.seed, epoch as u64) as i64);
        // Denoiser epochs see every train sample; cross-entropy only the labelled ones.
        let pool: Vec<i64> = match ph {
            Phase::A | Phase::LabelFree => (0..self.train_y.size()[0]).collect(),
            Phase::Baseline | Phase::B | Phase::PenaltyControl => self.labelled.clone(),
        };
        let n = pool.len();
        let order: Vec<i64> = Rng::new(mix(self.cfg.seed, epoch as u64 + (1 << 32)))
            .permutation(n)
            .into_iter()
            .map(|i| pool[i as usize])
            .collect();
        let bs = self.cfg.batch_size.max(1);
        let steps = n.div_ceil(bs);
        let bar = self.progress_bar(epoch, ph, steps);
        let (mut loss_sum, mut ce_sum, mut noise_sum, mut correct) = (0.0, 0.0, 0.0, 0i64);
        let (seg_start, seg_len) = self.segment(epoch);
        // Whitened SGD averages its iterates over the last epoch of each denoiser block
        // (Polyak–Ruppert tail averaging: the SGD noise of the last steps averages out).
        // `--augment` only where cross-entropy trains the backbone, drawn per epoch.
        let mut augment = (!self.cfg.augment.is_none()
            && matches!(ph, Phase::Baseline | Phase::B | Phase::PenaltyControl))
        .then(|| Rng::new(mix(self.cfg.seed, epoch as u64 + (2 << 32))));
        let mut tail_avg = (self.denoiser_sgd.is_some()
            && matches!(ph, Phase::A | Phase::LabelFree)
            && epoch + 1 == seg_start + seg_len)
            .then(|| TailAverage::new(&self.model));
        for (step, chunk) in order.chunks(bs).enumerate() {
            let lr = match self.cfg.lr_schedule {
                LrSchedule::Constant => self.cfg.lr,
                LrSchedule::Cosine => {
                    let k = ((epoch - seg_start) * steps + step) as f64;
                    let total = (seg_len * steps) as f64;
                    self.cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * k / total).cos())
                }
            };
            self.backbone_opt.lr = lr;
            let factor = lr / self.cfg.lr;
            self.denoiser_opt.lr = factor * self.cfg.denoiser_lr.unwrap_or(self.cfg.lr);
            if let Some(sgd) = &mut self.denoiser_sgd {
                sgd.lr = factor * self.cfg.denoiser_lr.unwrap_or(DEFAULT_WHITENED_LR);
            }
            let idx = Tensor::from_slice(chunk).to_device(self.model.device);
            let x = self.train_x.index_select(0, &idx);
            let x = match &mut augment {
                Some(rng) => self.cfg.augment.apply(&x, &self.augment_fill, rng),
                None => x,
            };
            let y = self.train_y.index_select(0, &idx);
            let (loss, ce, noise, logits) = self.losses(ph, &x, &y);
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                bar.finish_and_clear();
                let (flag, now) = match ph {
                    Phase::A | Phase::LabelFree => (
                        "--denoiser-lr",
                        self.denoiser_sgd
                            .as_ref()
                            .map_or(self.denoiser_opt.lr, |s| s.lr),
                    ),
                    _ => ("--lr", self.cfg.lr),
                };
                bail!(
                    "training diverged: loss is {value} at epoch {} step {} (phase {}); lower {flag} (now {now:e})",
                    epoch + 1,
                    step + 1,
                    ph.name(),
                );
            }
            self.backbone_opt.zero_grad();
            self.denoiser_opt.zero_grad();
            if let Some(sgd) = &mut self.denoiser_sgd {
                sgd.zero_grad();
            }
            loss.backward();
            match ph {
                Phase::Baseline | Phase::B | Phase::PenaltyControl => self.backbone_opt.step(),
                Phase::A | Phase::LabelFree => {
                    match &mut self.denoiser_sgd {
                        Some(sgd) => {
                            for (j, d) in self.model.denoisers.iter().enumerate() {
                                let scale = d.whitened_scale();
                                sgd.set_scale(2 * j, scale);
                                sgd.set_scale(2 * j + 1, scale);
                            }
                            sgd.step();
                            if let Some(avg) = &mut tail_avg {
                                avg.add(&self.model);
                            }
                        }
                        None => self.denoiser_opt.step(),
                    }
                    self.model.denoisers.iter().for_each(Denoiser::sync);
                }
            }
            let w = chunk.len() as f64;
            loss_sum += value * w;
            ce_sum += ce * w;
            noise_sum += noise * w;
            correct += self.hits(&logits, &y);
            bar.inc(1);
            if step % 10 == 0 {
                bar.set_message(if self.model.arch.reconstructs() {
                    format!("loss {value:.4}")
                } else {
                    format!(
                        "loss {value:.4} acc {:.1}%",
                        100.0 * correct as f64 / ((step + 1) * bs) as f64
                    )
                });
            }
        }
        bar.finish_and_clear();
        if let Some(avg) = tail_avg {
            avg.apply(&self.model);
        }
        let (test_accuracy, test_mse) = self.test_numbers()?;
        let record = EpochRecord {
            epoch: epoch + 1,
            phase: ph.name().into(),
            train_loss: loss_sum / n as f64,
            ce_loss: ce_sum / n as f64,
            noise_loss: noise_sum / n as f64,
            train_accuracy: self.train_accuracy(correct, n),
            test_accuracy,
            test_mse,
            seconds: 0.0,
            denoisers: Vec::new(),
        };
        self.finish_record(record, epoch, started).map(Some)
    }

    /// Adds the denoiser diagnostics and the wall time to an epoch's record and appends it.
    fn finish_record(
        &mut self,
        mut record: EpochRecord,
        epoch: usize,
        started: Instant,
    ) -> Result<EpochRecord> {
        record.denoisers = self.diagnostics(epoch)?;
        record.seconds = started.elapsed().as_secs_f64();
        self.curve.push(record.clone());
        Ok(record)
    }

    /// Sets the whitening of gradient-trained denoisers from the layer inputs' train-split moments
    /// (at the start of a run; a resumed run restores it from the checkpoint). No-op otherwise.
    pub fn precondition(&self) -> Result<()> {
        denoiser_fit::set_whitening(&self.model, &self.train_x)
    }

    /// The denoiser diagnostics of the current model on the train split; the noise draws are
    /// seeded from the run's seed and `epoch` (and restore nothing: the next epoch reseeds).
    pub fn diagnostics(&self, epoch: usize) -> Result<Vec<crate::eval::DenoiserDiag>> {
        let seed = mix(self.cfg.seed, epoch as u64 + (3 << 32)) as i64;
        denoiser_fit::diagnose(&self.model, &self.train_x, seed)
    }

    /// A denoiser epoch under `--denoiser-fit closed-form`: every denoiser set to its L2 optimum
    /// in forward order; the record's losses are measured on the train split after the fit.
    fn closed_form_epoch(
        &mut self,
        epoch: usize,
        ph: Phase,
        started: Instant,
    ) -> Result<EpochRecord> {
        denoiser_fit::fit_closed_form(&self.model, &self.train_x)?;
        let (logits, _) = evaluate::outputs(&self.model, &self.train_x);
        let y = self.train_y.to_device(tch::Device::Cpu);
        let x = self.train_x.to_device(tch::Device::Cpu);
        let ce = self.task_loss(&logits, &x, &y).double_value(&[]);
        let correct = self.hits(&logits, &y);
        let (test_accuracy, test_mse) = self.test_numbers()?;
        let record = EpochRecord {
            epoch: epoch + 1,
            phase: ph.name().into(),
            train_loss: 0.0,
            ce_loss: ce,
            noise_loss: 0.0,
            train_accuracy: self.train_accuracy(correct, y.size()[0] as usize),
            test_accuracy,
            test_mse,
            seconds: 0.0,
            denoisers: Vec::new(),
        };
        let mut record = self.finish_record(record, epoch, started)?;
        // The noise loss of a fit epoch: the sum over layers (as the training loss is).
        let noise: f64 = record.denoisers.iter().map(|g| g.noise_loss).sum();
        record.train_loss = noise;
        record.noise_loss = noise;
        if let Some(last) = self.curve.last_mut() {
            last.train_loss = noise;
            last.noise_loss = noise;
        }
        Ok(record)
    }

    /// First epoch and length (epochs) of the learning-rate segment holding `epoch`: the whole
    /// run, or for label-guided (regime or schedule) the phase block.
    fn segment(&self, epoch: usize) -> (usize, usize) {
        match (self.cfg.regime, self.cfg.schedule) {
            (Regime::LabelGuided, _) | (_, EpochSchedule::LabelGuided) => {
                let p = self.cfg.phase_epochs.max(1);
                let start = epoch / p * p;
                (start, p.min(self.cfg.epochs - start))
            }
            _ => (0, self.cfg.epochs),
        }
    }

    /// The task loss of a batch: the cross-entropy of `logits` against the labels `y`, or for a
    /// reconstruction model ([`crate::arch::Arch::reconstructs`]) the MSE of its output
    /// `x̂: [N, D]` against the flattened normalized input, `(1/(N·D))·Σ (x̂ − x)²` (no labels).
    fn task_loss(&self, logits: &Tensor, x: &Tensor, y: &Tensor) -> Tensor {
        if self.model.arch.reconstructs() {
            logits.mse_loss(&x.flatten(1, -1), tch::Reduction::Mean)
        } else {
            logits.cross_entropy_for_logits(y)
        }
    }

    /// Correct top-1 predictions in a batch (0 for a reconstruction model: no classes).
    fn hits(&self, logits: &Tensor, y: &Tensor) -> i64 {
        if self.model.arch.reconstructs() {
            return 0;
        }
        logits
            .argmax(-1, false)
            .eq_tensor(y)
            .sum(Kind::Int64)
            .int64_value(&[])
    }

    /// The per-epoch test numbers: top-1 accuracy (NaN for a reconstruction model) and a
    /// reconstruction model's test MSE.
    fn test_numbers(&self) -> Result<(f64, Option<f64>)> {
        if self.model.arch.reconstructs() {
            let mse = evaluate::reconstruction_mse(&self.model, &self.test_x)?;
            return Ok((f64::NAN, Some(mse)));
        }
        Ok((
            evaluate::accuracy(&self.model, &self.test_x, &self.test_y),
            None,
        ))
    }

    /// A train accuracy from a hit count, NaN for a reconstruction model.
    fn train_accuracy(&self, correct: i64, n: usize) -> f64 {
        if self.model.arch.reconstructs() {
            f64::NAN
        } else {
            correct as f64 / n.max(1) as f64
        }
    }

    /// `(loss, ce, noise-or-penalty, logits)` of one batch in phase `ph` (`ce`: the task loss,
    /// [`Self::task_loss`]).
    fn losses(&self, ph: Phase, x: &Tensor, y: &Tensor) -> (Tensor, f64, f64, Tensor) {
        let m = &self.model;
        let lambda = self.cfg.lambda;
        let backbone = Grads {
            backbone: true,
            denoisers: false,
        };
        // Batch norms run in train mode (batch statistics, running statistics updated) exactly
        // when the backbone trains: baseline, penalty-control and phase B; eval mode otherwise.
        match ph {
            Phase::Baseline => {
                let out = m.forward(x, Mode::Plain, backbone, true);
                let ce = self.task_loss(&out.logits, x, y);
                let c = ce.double_value(&[]);
                (ce, c, 0.0, out.logits)
            }
            Phase::PenaltyControl => {
                let out = m.forward(x, Mode::Plain, backbone, true);
                let ce = self.task_loss(&out.logits, x, y);
                let pen = sum(out
                    .inputs
                    .iter()
                    .map(|a| a.abs().mean(Kind::Float) + a.square().mean(Kind::Float)));
                let (c, p) = (ce.double_value(&[]), pen.double_value(&[]));
                (ce + pen * lambda, c, p, out.logits)
            }
            Phase::A | Phase::LabelFree => {
                // The unfused reference computes the same function as the fused forward, at
                // N·C² instead of out·C² per layer (the fused weights change every step here).
                let out = tch::no_grad(|| m.forward(x, Mode::Unfused, Grads::NONE, false));
                let noise = sum(m
                    .denoisers
                    .iter()
                    .zip(&out.inputs)
                    .map(|(d, a)| d.noise_loss(a, true)));
                let c = tch::no_grad(|| self.task_loss(&out.logits, x, y).double_value(&[]));
                let nv = noise.double_value(&[]);
                (noise, c, nv, out.logits)
            }
            Phase::B => {
                let out = m.forward(x, Mode::Fused, backbone, true);
                let ce = self.task_loss(&out.logits, x, y);
                let noise = sum(m.denoisers.iter().zip(&out.inputs).map(|(d, a)| {
                    let a = if self.cfg.noise_grad {
                        a.shallow_clone()
                    } else {
                        a.detach()
                    };
                    d.noise_loss(&a, false)
                }));
                let (c, nv) = (ce.double_value(&[]), noise.double_value(&[]));
                (ce + noise * lambda, c, nv, out.logits.detach())
            }
        }
    }

    fn progress_bar(&self, epoch: usize, ph: Phase, steps: usize) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!(
            "epoch {}/{} {}",
            epoch + 1,
            self.cfg.epochs,
            ph.name()
        ));
        bar
    }

    /// Tensors of an epoch checkpoint: the model, both optimizers' moments and the state JSON
    /// (as a `u8` tensor `state.json`), all on the CPU.
    pub fn checkpoint_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut v = self.model.tensors();
        v.extend(
            self.model
                .denoisers
                .iter()
                .flat_map(Denoiser::whitened_tensors),
        );
        v.extend(self.backbone_opt.state("opt.backbone."));
        v.extend(self.denoiser_opt.state("opt.denoisers."));
        let state = TrainState {
            epochs_done: self.epochs_done,
            backbone_steps: self.backbone_opt.steps,
            denoiser_steps: self
                .denoiser_sgd
                .as_ref()
                .map_or(self.denoiser_opt.steps, |s| s.steps),
            curve: self.curve.clone(),
            checksums: v.iter().map(|(k, t)| (k.clone(), tensor_crc(t))).collect(),
        };
        v.push((
            "state.json".into(),
            Tensor::from_slice(&serde_json::to_vec(&state)?),
        ));
        Ok(v)
    }

    /// Restores a checkpoint written from [`checkpoint_tensors`](Self::checkpoint_tensors);
    /// returns the number of completed epochs.
    pub fn restore(&mut self, src: &HashMap<String, Tensor>, source: &str) -> Result<usize> {
        let Some(json) = src.get("state.json") else {
            bail!("{source}: not a checkpoint (no 'state.json' tensor)")
        };
        let bytes = Vec::<u8>::try_from(json)
            .map_err(|e| anyhow::anyhow!("{source}: 'state.json' is not a byte tensor: {e}"))?;
        let state: TrainState = serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!("{source}: corrupt 'state.json' in the checkpoint: {e}")
        })?;
        for (name, want) in &state.checksums {
            let Some(t) = src.get(name) else {
                bail!("{source}: corrupt checkpoint: tensor '{name}' is missing")
            };
            let got = tensor_crc(t);
            if got != *want {
                bail!(
                    "{source}: corrupt checkpoint: tensor '{name}' fails its CRC-32 check \
                     (stored {want:08x}, computed {got:08x}); start the run over with --force"
                );
            }
        }
        let model_tensors: HashMap<String, Tensor> = src
            .iter()
            .filter(|(k, _)| !k.starts_with("opt.") && !k.starts_with("state."))
            .map(|(k, t)| (k.clone(), t.shallow_clone()))
            .collect();
        self.model.load_backbone(&model_tensors, source)?;
        self.model.load_denoisers(&model_tensors, source)?;
        for d in &self.model.denoisers {
            for (name, dst) in d.whitened_tensors() {
                let Some(t) = src.get(&name) else {
                    bail!("{source}: corrupt checkpoint: tensor '{name}' is missing")
                };
                if t.size() != dst.size() {
                    bail!(
                        "{source}: tensor '{name}' has shape {:?}, expected {:?}",
                        t.size(),
                        dst.size()
                    );
                }
                let t = t.to_kind(Kind::Float).to_device(self.model.device);
                tch::no_grad(|| dst.shallow_clone().copy_(&t));
            }
        }
        self.backbone_opt
            .load_state(src, "opt.backbone.", state.backbone_steps)?;
        self.denoiser_opt
            .load_state(src, "opt.denoisers.", state.denoiser_steps)?;
        if let Some(sgd) = &mut self.denoiser_sgd {
            sgd.steps = state.denoiser_steps;
        }
        self.curve = state.curve;
        self.epochs_done = state.epochs_done;
        Ok(state.epochs_done)
    }

    /// The training device.
    pub fn device(&self) -> Device {
        self.model.device
    }
}

/// Running mean of every whitened denoiser's `G`, `h` over the steps of one epoch.
struct TailAverage {
    sums: Vec<(Tensor, Tensor)>,
    count: i64,
}

impl TailAverage {
    fn new(model: &Model) -> Self {
        let sums = model
            .denoisers
            .iter()
            .filter_map(|d| d.whitened.as_ref())
            .map(|w| (w.g_mat.zeros_like().detach(), w.h_vec.zeros_like().detach()))
            .collect();
        Self { sums, count: 0 }
    }

    fn add(&mut self, model: &Model) {
        tch::no_grad(|| {
            let ws = model.denoisers.iter().filter_map(|d| d.whitened.as_ref());
            for ((g, h), w) in self.sums.iter_mut().zip(ws) {
                *g += &w.g_mat;
                *h += &w.h_vec;
            }
        });
        self.count += 1;
    }

    /// Sets `G`, `h` to their means over the epoch and `D`, `d` to match.
    fn apply(self, model: &Model) {
        if self.count == 0 {
            return;
        }
        let n = self.count as f64;
        tch::no_grad(|| {
            let ds = model.denoisers.iter().filter(|d| d.whitened.is_some());
            for ((g, h), d) in self.sums.iter().zip(ds) {
                let w = d.whitened.as_ref().expect("filtered");
                w.g_mat.shallow_clone().copy_(&(g / n));
                w.h_vec.shallow_clone().copy_(&(h / n));
                d.sync();
            }
        });
    }
}

fn sum(mut terms: impl Iterator<Item = Tensor>) -> Tensor {
    let first = terms
        .next()
        .unwrap_or_else(|| Tensor::zeros([], (Kind::Float, Device::Cpu)));
    terms.fold(first, |acc, t| acc + t)
}

#[cfg(test)]
mod tests {
    use super::labelled_subset;

    #[test]
    fn labelled_subset_is_stratified_seeded_and_sorted() {
        // 3 classes with 50, 30 and 4 samples.
        let y: Vec<u32> = (0..84)
            .map(|i| match i {
                0..=49 => 0,
                50..=79 => 1,
                _ => 2,
            })
            .collect();
        let a = labelled_subset(&y, 3, 30, 1);
        assert_eq!(a.len(), 30);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        let count = |s: &[i64], c: u32| s.iter().filter(|&&i| y[i as usize] == c).count();
        // Class 2 has only 4: the rounds after it runs out share its place among 0 and 1.
        assert_eq!((count(&a, 0), count(&a, 1), count(&a, 2)), (13, 13, 4));
        assert_eq!(a, labelled_subset(&y, 3, 30, 1), "seeded");
        assert_ne!(a, labelled_subset(&y, 3, 30, 2), "the seed matters");
        let b = labelled_subset(&y, 3, 9, 1);
        assert_eq!((count(&b, 0), count(&b, 1), count(&b, 2)), (3, 3, 3));
        assert_eq!(labelled_subset(&y, 3, 84, 1), (0..84).collect::<Vec<i64>>());
        assert_eq!(labelled_subset(&y, 3, 500, 1).len(), 84);
    }
}
