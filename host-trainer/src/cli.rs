//! Command-line interface (clap derive): `denoiserep train …`, `eval …`, `export …`, `infer …`,
//! `report …`, `compare …`, `import …`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use self::rules::parsed;

use crate::compare::{CompareRequest, Mode as CompareMode, Settings as CompareSettings};
use crate::data::LoadOptions;
use crate::export::{ExportFormat, ExportPrecision, ExportRequest, DEFAULT_CALIB};
use crate::import::ImportRequest;
use crate::infer::InferRequest;
use crate::infer_npy::NpyRequest;
use crate::model::DenoiseSpec;
use crate::run::{DeviceArg, TrainRequest};
use crate::schedule::ScheduleSpec;
use crate::train::{DenoiserFit, EpochSchedule, LrSchedule, Precondition, Regime, TrainConfig};

/// DenoiseRep for the edge: train backbones with exactly fusable denoising layers.
#[derive(Debug, Parser)]
#[command(name = "denoiserep", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing buys nothing
pub enum Command {
    /// Train a model into a run directory.
    Train(TrainArgs),
    /// Re-evaluate a saved run (fused model) and rewrite its metrics.json.
    Eval(EvalArgs),
    /// Fuse a run's denoisers and write one model file (f32 or int8) plus its report.
    Export(ExportArgs),
    /// Run a model file through denoiserep-core over a data set: accuracy, retrieval, dumps.
    Infer(InferArgs),
    /// Write REPORT.md and its plots from a finished `scripts/demo.sh` folder.
    Report(ReportArgs),
    /// Baseline vs DenoiseRep at equal budget with four controls, over seeds.
    Compare(CompareArgs),
    /// Bring a model from another framework in: .tflite (int8 TensorFlow Lite) becomes a model
    /// file; .onnx (PyTorch) or a .safetensors state_dict (with --arch) becomes a run directory
    /// that eval, export and train --init accept.
    Import(ImportArgs),
}

/// `denoiserep import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Model to import; its extension picks the format: .tflite (an int8 TensorFlow Lite
    /// flatbuffer, one subgraph, batch 1), .onnx (torch.onnx.export) or .safetensors (a
    /// state_dict; needs --arch).
    #[arg(value_name = "MODEL", value_parser = parsed(rules::existing_file))]
    pub model: PathBuf,
    /// .tflite: the model file (.dnrp) to write; .onnx / .safetensors: the run directory to
    /// create (must not exist, or be empty).
    #[arg(long, value_name = "PATH", value_parser = parsed(rules::out_file))]
    pub out: PathBuf,
    /// The state_dict's architecture: mlp[:H1,H2,…], cnn[:C1,C2,…/H1,…], resnet8[:F], ds-cnn, mobilenet-v1[:ALPHA[,relu6]], autoencoder or vit:…; for .onnx optional, checked against the graph's.
    #[arg(long, value_parser = parsed(rules::arch_spec))]
    pub arch: Option<String>,
    /// Data set the run is evaluated on and trains on with train --init (its shape and classes
    /// must be the model's; required for .onnx and .safetensors, not taken for .tflite): mnist,
    /// idx:DIR, cifar10:DIR, csv:FILE, synthetic[:C,H,W,classes,n_train,n_test]
    #[arg(long, value_parser = parsed(rules::data_spec))]
    pub data: Option<String>,
    /// Test fraction for sources without a fixed split (csv).
    #[arg(
        long,
        default_value_t = 0.2,
        allow_negative_numbers = true,
        value_parser = parsed(rules::fraction)
    )]
    pub test_fraction: f64,
    /// Folder with fetched/cached data sets.
    #[arg(long, default_value = "data", value_parser = parsed(rules::path))]
    pub data_dir: PathBuf,
    /// Input normalization the model was trained with, x' = (x − MEAN[c]) / STD[c]: one value or
    /// one per channel, comma-separated (e.g. torchvision's Normalize) [default: 0, or the file's
    /// own]
    #[arg(
        long,
        value_name = "M,M,…",
        value_delimiter = ',',
        allow_negative_numbers = true,
        value_parser = parsed(rules::mean_value)
    )]
    pub mean: Option<Vec<f32>>,
    /// See --mean [default: 1, or the file's own].
    #[arg(
        long,
        value_name = "S,S,…",
        value_delimiter = ',',
        allow_negative_numbers = true,
        value_parser = parsed(rules::std_value)
    )]
    pub std: Option<Vec<f32>>,
    /// Seed of the evaluation's noise and of the split of sources without a fixed one.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = rules::seed)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// libtorch CPU threads [default: libtorch's choice].
    #[arg(long, allow_negative_numbers = true, value_parser = parsed(rules::threads))]
    pub threads: Option<i32>,
}

impl ImportArgs {
    /// The [`ImportRequest`] of these arguments.
    pub fn request(&self) -> Result<ImportRequest> {
        let Some(data) = self.data.clone() else {
            anyhow::bail!(
                "import {}: --data is required for a .onnx or .safetensors model (the run is \
                 evaluated on it, and train --init and int8 calibration use it)",
                self.model.display()
            );
        };
        if let (Some(m), Some(s)) = (&self.mean, &self.std) {
            if m.len() > 1 && s.len() > 1 && m.len() != s.len() {
                anyhow::bail!(
                    "--mean has {} values and --std {}: give one value or one per channel to each",
                    m.len(),
                    s.len()
                );
            }
        }
        Ok(ImportRequest {
            model: self.model.clone(),
            arch: self.arch.clone(),
            out: self.out.clone(),
            data,
            test_fraction: self.test_fraction,
            data_dir: self.data_dir.clone(),
            seed: self.seed,
            mean: self.mean.clone(),
            std: self.std.clone(),
            device: self.device.resolve()?,
        })
    }
}

/// `denoiserep compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Data set: mnist, idx:DIR, cifar10:DIR, csv:FILE, folder:DIR[,C,H,W] (one image sub-folder per class), synthetic[:C,H,W,classes,n_train,n_test]
    #[arg(long, default_value = "mnist", value_parser = parsed(rules::data_spec))]
    pub data: String,
    /// Backbone: mlp[:H1,H2,…], cnn[:C1,C2,…/H1,…], resnet8, ds-cnn, mobilenet-v1[:ALPHA[,relu6]], autoencoder or vit[:PATCH,DIM,HEADS,DEPTH,MLP_RATIO[,POOL]]
    #[arg(long, default_value = "mlp:256,128", value_parser = parsed(rules::arch_spec))]
    pub arch: String,
    /// Number of seeds: 0, 1, …, K−1.
    #[arg(
        long,
        value_name = "K",
        default_value_t = 5,
        allow_negative_numbers = true,
        value_parser = parsed(rules::seeds)
    )]
    pub seeds: usize,
    /// Explicit seeds instead of --seeds, e.g. 0,3,7.
    #[arg(
        long,
        value_name = "S,S,…",
        value_delimiter = ',',
        conflicts_with = "seeds",
        allow_negative_numbers = true,
        value_parser = rules::seed
    )]
    pub seed_list: Option<Vec<u64>>,
    /// Epochs of the from-scratch baseline every arm starts from.
    #[arg(
        long,
        value_name = "E",
        allow_negative_numbers = true,
        value_parser = parsed(rules::epochs)
    )]
    pub epochs: usize,
    /// Epochs every arm trains from the baseline (the equal budget).
    #[arg(
        long,
        value_name = "E2",
        allow_negative_numbers = true,
        value_parser = parsed(rules::epochs)
    )]
    pub extra_epochs: usize,
    /// label-guided phase length (its B epochs are the null control's) [default: E2 / 2].
    #[arg(
        long,
        value_name = "P",
        allow_negative_numbers = true,
        value_parser = parsed(rules::epochs)
    )]
    pub phase_epochs: Option<usize>,
    /// Extra arm NAME=TRAIN FLAGS, e.g. 'lg-t4=--regime label-guided --t-stride 4' (repeatable).
    #[arg(long, value_name = "NAME=FLAGS")]
    pub variant: Vec<String>,
    /// Output folder: DIR/seed-S/ARM run dirs, compare.json, compare.md, compare.png.
    #[arg(long, value_name = "DIR", value_parser = parsed(rules::path))]
    pub out: PathBuf,
    /// Retrain arms whose run directory holds a run with other settings (or an older baseline).
    #[arg(long)]
    pub force: bool,
    #[arg(
        long,
        default_value_t = 2e-3,
        allow_negative_numbers = true,
        value_parser = parsed(rules::lr)
    )]
    pub lr: f64,
    #[arg(long, value_enum, default_value_t = LrSchedule::Cosine)]
    pub lr_schedule: LrSchedule,
    #[arg(
        long,
        default_value_t = 32,
        allow_negative_numbers = true,
        value_parser = parsed(rules::batch_size)
    )]
    pub batch_size: usize,
    /// Input augmentation and weight decay of every run's backbone epochs (baselines,
    /// baseline-more, null and penalty controls, label-guided's B phases), as in `train`.
    #[command(flatten)]
    pub regularization: Regularization,
    /// Every run (baselines included) trains its backbone on only N labelled, class-stratified
    /// train samples (`train --labels`); denoisers are still fitted on the whole train split.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parsed(rules::at_least_one))]
    pub labels: Option<usize>,
    /// λ of the noise loss (label-guided B) and of the activation penalty (penalty-control).
    #[arg(
        long,
        default_value_t = 0.01,
        allow_negative_numbers = true,
        value_parser = parsed(rules::lambda)
    )]
    pub lambda: f64,
    #[arg(
        long,
        default_value_t = 1,
        allow_negative_numbers = true,
        value_parser = parsed(rules::t_stride)
    )]
    pub t_stride: usize,
    #[arg(
        long,
        default_value_t = 1e-4,
        allow_negative_numbers = true,
        value_parser = parsed(rules::fraction)
    )]
    pub beta_start: f64,
    #[arg(
        long,
        default_value_t = 2e-3,
        allow_negative_numbers = true,
        value_parser = parsed(rules::fraction)
    )]
    pub beta_end: f64,
    #[arg(
        long,
        default_value_t = 1000,
        allow_negative_numbers = true,
        value_parser = parsed(rules::timesteps)
    )]
    pub timesteps: usize,
    /// Test fraction for sources without a fixed split (csv, folder).
    #[arg(
        long,
        default_value_t = 0.2,
        allow_negative_numbers = true,
        value_parser = parsed(rules::fraction)
    )]
    pub test_fraction: f64,
    /// Folder with fetched/cached data sets.
    #[arg(long, default_value = "data", value_parser = parsed(rules::path))]
    pub data_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// libtorch CPU threads of every run [default: libtorch's choice for this machine, its
    /// physical cores], the same whatever --jobs is.
    #[arg(long, allow_negative_numbers = true, value_parser = parsed(rules::threads))]
    pub threads: Option<i32>,
    /// Equivalence margin in percentage points: an arm is "equivalent" to a control only when
    /// the whole 95 % interval of the paired difference lies inside ±PP.
    #[arg(
        long,
        value_name = "PP",
        default_value_t = crate::compare::stats::DEFAULT_MARGIN_PP,
        allow_negative_numbers = true,
        value_parser = parsed(rules::equivalence_margin)
    )]
    pub equivalence_margin: f64,
    /// Runs trained at a time, as child processes of this binary (1: in this process); a
    /// seed's arms wait for its baseline. Up to 4 × the logical CPUs.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        allow_negative_numbers = true,
        value_parser = parsed(rules::jobs)
    )]
    pub jobs: usize,
    /// Print every run's `train` command line (baselines, then arms) and exit: nothing is
    /// trained or written.
    #[arg(long, conflicts_with_all = ["collect", "jobs", "force"])]
    pub emit_commands: bool,
    /// Only read the finished runs in DIR (e.g. of --emit-commands lines) and write the report;
    /// an error lists every missing or unfinished run.
    #[arg(long, conflicts_with_all = ["jobs", "force"])]
    pub collect: bool,
}

impl CompareArgs {
    /// The [`CompareRequest`] of these arguments; `command` is the quoted command line.
    pub fn request(&self, command: String, progress: bool) -> Result<CompareRequest> {
        let seeds = match &self.seed_list {
            Some(v) => v.clone(),
            None => (0..self.seeds as u64).collect(),
        };
        let variants = self
            .variant
            .iter()
            .map(|v| crate::compare::arms::parse_variant(v))
            .collect::<Result<Vec<_>>>()?;
        let mut names: Vec<&str> = variants.iter().map(|a| a.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            anyhow::bail!("--variant '{}': given twice", w[0]);
        }
        let settings = CompareSettings {
            data: self.data.clone(),
            data_dir: self.data_dir.clone(),
            test_fraction: self.test_fraction,
            arch: self.arch.clone(),
            seeds,
            epochs: self.epochs,
            extra_epochs: self.extra_epochs,
            phase_epochs: self.phase_epochs.unwrap_or(self.extra_epochs / 2),
            lr: self.lr,
            lr_schedule: self.lr_schedule,
            batch_size: self.batch_size,
            labels: self.labels,
            augment: self.regularization.augment,
            weight_decay: self.regularization.weight_decay,
            lambda: self.lambda,
            t_stride: self.t_stride,
            beta_start: self.beta_start,
            beta_end: self.beta_end,
            timesteps: self.timesteps,
            device: match self.device {
                DeviceArg::Auto => "auto",
                DeviceArg::Cpu => "cpu",
                DeviceArg::Cuda => "cuda",
            }
            .into(),
            threads: self.threads,
            equivalence_margin_pp: self.equivalence_margin,
        };
        crate::compare::validate(&settings)?;
        let mode = if self.emit_commands {
            CompareMode::EmitCommands
        } else if self.collect {
            CompareMode::Collect
        } else {
            CompareMode::Run { jobs: self.jobs }
        };
        Ok(CompareRequest {
            settings,
            variants,
            out: self.out.clone(),
            force: self.force,
            command,
            progress,
            mode,
        })
    }
}

/// `args` as one POSIX-shell command line (arguments with other characters than
/// `[A-Za-z0-9_./:=,+-]` single-quoted).
pub fn shell_line(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_./:=,+-".contains(c));
            if plain {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `denoiserep train`.
/// The backbone's regularization, shared by `train` and `compare` (`--augment`, `--weight-decay`).
#[derive(Debug, Clone, Copy, Args)]
pub struct Regularization {
    /// Random input transforms of the epochs that train the backbone (cross-entropy): shift:N
    /// (translate by up to N pixels, border filled with a raw 0), hflip (mirror half the
    /// samples), comma-separated, or none. Denoiser fits and evaluation see clean inputs.
    #[arg(long, value_name = "SPEC", default_value = "none", value_parser = rules::augment)]
    pub augment: crate::augment::Augment,
    /// AdamW weight decay of the backbone's weight matrices and conv kernels (decoupled,
    /// `p ← p·(1 − lr·WD)` each step; biases, BatchNorm, LayerNorm and a ViT's class token and
    /// position embeddings are not decayed). 0: plain Adam.
    #[arg(
        long,
        value_name = "WD",
        default_value_t = 0.0,
        allow_negative_numbers = true,
        value_parser = parsed(rules::weight_decay)
    )]
    pub weight_decay: f64,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Data set: mnist, idx:DIR, cifar10:DIR, csv:FILE, folder:DIR[,C,H,W] (one image sub-folder per class), synthetic[:C,H,W,classes,n_train,n_test]
    /// [default: mnist, or the --init run's]
    #[arg(long, value_parser = parsed(rules::data_spec))]
    pub data: Option<String>,
    /// Test fraction for sources without a fixed split (csv, folder).
    #[arg(
        long,
        default_value_t = 0.2,
        allow_negative_numbers = true,
        value_parser = parsed(rules::fraction)
    )]
    pub test_fraction: f64,
    /// Folder with fetched/cached data sets.
    #[arg(long, default_value = "data", value_parser = parsed(rules::path))]
    pub data_dir: PathBuf,
    /// Backbone: mlp[:H1,H2,…], cnn[:C1,C2,…/H1,…], resnet8, ds-cnn, mobilenet-v1[:ALPHA[,relu6]], autoencoder or vit[:PATCH,DIM,HEADS,DEPTH,MLP_RATIO[,POOL]] [default: mlp:256,128, or the --init run's]
    #[arg(long, value_parser = parsed(rules::arch_spec))]
    pub arch: Option<String>,
    /// Training regime.
    #[arg(long, value_enum, default_value_t = Regime::Baseline)]
    pub regime: Regime,
    /// Epochs [default: 10; label-guided: 2 × --phase-epochs].
    #[arg(long, allow_negative_numbers = true, value_parser = parsed(rules::epochs))]
    pub epochs: Option<usize>,
    #[arg(
        long,
        default_value_t = 32,
        allow_negative_numbers = true,
        value_parser = parsed(rules::batch_size)
    )]
    pub batch_size: usize,
    /// Train the backbone (cross-entropy) on only N labelled train samples — a class-stratified
    /// choice seeded by the data seed, the same for every run of a `compare` — while label-free
    /// work (denoiser fits, calibration, the retrieval gallery) still sees the whole train split.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parsed(rules::at_least_one))]
    pub labels: Option<usize>,
    /// Held-out-class anomaly detection (--arch autoencoder): train on these classes only
    /// (comma-separated classes and ranges, e.g. 0-8) and report the ROC AUC of the
    /// reconstruction error on the whole test split, every other class anomalous [default: all
    /// classes, no AUC; with --init: the --init run's]
    #[arg(long, value_name = "CLASSES", value_parser = rules::normal_classes)]
    pub normal_classes: Option<rules::ClassList>,
    #[command(flatten)]
    pub regularization: Regularization,
    /// Adam learning rate (both parameter groups).
    #[arg(
        long,
        default_value_t = 2e-3,
        allow_negative_numbers = true,
        value_parser = parsed(rules::lr)
    )]
    pub lr: f64,
    /// Learning-rate schedule over the run (label-guided: over each phase block).
    #[arg(long, value_enum, default_value_t = LrSchedule::Cosine)]
    pub lr_schedule: LrSchedule,
    /// Weight λ of the noise loss (label-guided B) or of the activation penalty (penalty-control).
    #[arg(
        long,
        default_value_t = 0.01,
        allow_negative_numbers = true,
        value_parser = parsed(rules::lambda)
    )]
    pub lambda: f64,
    /// label-guided: epochs per phase (A, B, A, …).
    #[arg(
        long,
        default_value_t = 10,
        allow_negative_numbers = true,
        value_parser = parsed(rules::epochs)
    )]
    pub phase_epochs: usize,
    /// baseline / penalty-control: `label-guided` trains only in label-guided's B epochs (A
    /// epochs skipped, per-block cosine lr), the null control of `compare`.
    #[arg(long, value_enum, default_value_t = EpochSchedule::Plain)]
    pub schedule: EpochSchedule,
    #[arg(
        long,
        default_value_t = 1e-4,
        allow_negative_numbers = true,
        value_parser = parsed(rules::fraction)
    )]
    pub beta_start: f64,
    #[arg(
        long,
        default_value_t = 2e-3,
        allow_negative_numbers = true,
        value_parser = parsed(rules::fraction)
    )]
    pub beta_end: f64,
    /// Diffusion steps T of the schedule.
    #[arg(
        long,
        default_value_t = 1000,
        allow_negative_numbers = true,
        value_parser = parsed(rules::timesteps)
    )]
    pub timesteps: usize,
    /// Layer i of N (1-based, forward order) gets timestep s·(N − i + 1).
    #[arg(
        long,
        default_value_t = 1,
        allow_negative_numbers = true,
        value_parser = parsed(rules::t_stride)
    )]
    pub t_stride: usize,
    /// Explicit timesteps of the denoised layers in forward order, e.g. 1,1,1 (the strong step:
    /// t = 1 with a larger --beta-start); replaces --t-stride.
    #[arg(long, value_name = "T1,T2,…", value_parser = rules::t_list_arg, conflicts_with = "t_stride")]
    pub t_list: Option<rules::TimestepList>,
    /// How the denoisers are set: gradient (Adam on the noise loss) or closed-form (the exact L2
    /// optimum from train-split moments, in seconds; the block's other epochs are skipped).
    #[arg(long, value_enum, default_value_t = DenoiserFit::Gradient)]
    pub denoiser_fit: DenoiserFit,
    /// Step size of the denoisers' gradient fit: with whitening, the fraction of a Newton step
    /// of each layer's L2 loss [default: 0.5]; with --denoiser-precondition none, Adam's
    /// learning rate [default: --lr].
    #[arg(long, allow_negative_numbers = true, value_parser = parsed(rules::lr))]
    pub denoiser_lr: Option<f64>,
    /// Coordinates of the denoisers' gradient training: whiten (the noisy layer input whitened
    /// with its train-split covariance: well-conditioned) or none (D, d directly, as the paper).
    #[arg(long, value_enum, default_value_t = Precondition::Whiten)]
    pub denoiser_precondition: Precondition,
    /// Let the noise loss's gradient reach the backbone through the layer inputs (label-guided B).
    #[arg(long)]
    pub noise_grad: bool,
    /// Bake seeded Gaussian reverse-step noise z into the fused biases (default: z = 0).
    #[arg(long, value_name = "SEED", allow_negative_numbers = true, value_parser = rules::seed)]
    pub fuse_noise: Option<u64>,
    /// Seed of initialization, data order and noise, and of the split of sources without a fixed
    /// one (with --init: the init run's split seed is kept, so its test split stays unseen).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = rules::seed)]
    pub seed: u64,
    /// Start from the backbone of a previous run (checked when it is loaded, first thing after
    /// the values: `compare` plans its arms from baselines that do not exist yet).
    #[arg(long, value_name = "RUN_DIR", value_parser = parsed(rules::path))]
    pub init: Option<PathBuf>,
    /// Start from backbone weights trained elsewhere (PyTorch nn.Sequential names: 1.weight, …).
    #[arg(long, value_name = "FILE", value_parser = parsed(rules::existing_file))]
    pub import: Option<PathBuf>,
    /// Run directory.
    #[arg(long, value_name = "RUN_DIR", value_parser = parsed(rules::path))]
    pub out: PathBuf,
    /// Continue the unfinished run in --out from its last epoch checkpoint (its config.json
    /// settings apply).
    #[arg(long)]
    pub resume: bool,
    /// Overwrite a run directory that holds a run.
    #[arg(long)]
    pub force: bool,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// libtorch CPU threads [default: libtorch's choice].
    #[arg(long, allow_negative_numbers = true, value_parser = parsed(rules::threads))]
    pub threads: Option<i32>,
}

/// `denoiserep eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Run directory to re-evaluate.
    #[arg(long, value_name = "RUN_DIR", value_parser = parsed(rules::run_dir))]
    pub run: PathBuf,
    /// Evaluate on this data spec instead of the run's (same shape and classes).
    #[arg(long, value_parser = parsed(rules::data_spec))]
    pub data: Option<String>,
    /// Positive control: add N(0, S²) to the input of every weighted layer at test time
    /// (repeatable; without a value, S² = (1 − ᾱ_t)/ᾱ_t per layer, the noise its denoiser is
    /// trained to remove). Results go to metrics.json "feature_noise", after the levels every
    /// evaluation measures (S = 0.5 and 1).
    #[arg(
        long,
        value_name = "S",
        num_args = 0..=1,
        allow_negative_numbers = true,
        default_missing_value = "auto",
        action = clap::ArgAction::Append,
        value_parser = rules::feature_noise
    )]
    pub feature_noise: Vec<Option<f64>>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// libtorch CPU threads [default: libtorch's choice].
    #[arg(long, allow_negative_numbers = true, value_parser = parsed(rules::threads))]
    pub threads: Option<i32>,
}

/// `denoiserep export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Run directory to export (its model.safetensors and config.json).
    #[arg(long, value_name = "RUN_DIR", value_parser = parsed(rules::run_dir))]
    pub run: PathBuf,
    /// f32, or int8 (post-training quantization calibrated on the run's train split).
    #[arg(long, value_enum)]
    pub precision: ExportPrecision,
    /// dnrp: the core's model format (what the device runs); onnx: an ONNX graph of the fused
    /// model (opset 13, f32 only); tflite: a TFLite flatbuffer (NHWC, f32 or int8 with the same
    /// quantization as dnrp; the input normalization is not in the graph).
    #[arg(long, value_enum, default_value_t = ExportFormat::Dnrp)]
    pub format: ExportFormat,
    /// The tensors an int8 .tflite takes and gives: int8, or float (QUANTIZE and DEQUANTIZE at
    /// its edges, as TFLiteConverter writes by default; TFLite-Micro then computes exactly the
    /// core's input quantization and output dequantization).
    #[arg(long, value_enum, default_value_t = TfliteIo::Int8)]
    pub tflite_io: TfliteIo,
    /// Model file to write; the report goes beside it with the extension .json.
    #[arg(long, value_name = "FILE", value_parser = parsed(rules::out_file))]
    pub out: PathBuf,
    /// int8: number of training samples to calibrate activation ranges on.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_CALIB,
        allow_negative_numbers = true,
        value_parser = parsed(rules::at_least_one)
    )]
    pub calib: usize,
    /// int8: take each activation range from the (100 − P)-th and P-th percentiles instead of
    /// min/max (50 < P ≤ 100, e.g. 99.99).
    #[arg(
        long,
        value_name = "P",
        allow_negative_numbers = true,
        value_parser = parsed(rules::calib_percentile)
    )]
    pub calib_percentile: Option<f64>,
    /// int8: seed of the random choice of calibration samples.
    #[arg(
        long,
        value_name = "SEED",
        default_value_t = 0,
        allow_negative_numbers = true,
        value_parser = rules::seed
    )]
    pub calib_seed: u64,
    /// libtorch CPU threads [default: libtorch's choice].
    #[arg(long, allow_negative_numbers = true, value_parser = parsed(rules::threads))]
    pub threads: Option<i32>,
}

impl ExportArgs {
    /// The [`ExportRequest`] of these arguments.
    pub fn request(&self, progress: bool) -> ExportRequest {
        ExportRequest {
            run: self.run.clone(),
            precision: self.precision,
            format: self.format,
            out: self.out.clone(),
            calib: self.calib,
            calib_percentile: self.calib_percentile,
            calib_seed: self.calib_seed,
            tflite_float_io: self.tflite_io == TfliteIo::Float,
            progress,
        }
    }
}

/// `denoiserep infer`.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// Model file (.dnrp) written by `denoiserep export`.
    #[arg(long, value_name = "FILE", value_parser = parsed(rules::existing_file))]
    pub model: PathBuf,
    /// Data set: mnist, idx:DIR, cifar10:DIR, csv:FILE, folder:DIR[,C,H,W] (one image sub-folder per class), synthetic[:C,H,W,classes,n_train,n_test] (not with --inputs)
    #[arg(long, value_parser = parsed(rules::data_spec), required_unless_present = "inputs")]
    pub data: Option<String>,
    /// Instead of a data set: run the samples of this NumPy file, shape (N, …the model's input
    /// dims), float32 '<f4' raw values (normalized and quantized by the core) or, for an int8
    /// model, int8 '|i1' values of its quantized input tensor; needs --outputs.
    #[arg(
        long,
        value_name = "X.npy",
        value_parser = parsed(rules::existing_file),
        requires = "outputs",
        conflicts_with_all = [
            "data", "test_fraction", "data_seed", "data_dir", "limit", "no_retrieval",
            "normal_classes", "dump", "write_inputs", "json"
        ]
    )]
    pub inputs: Option<PathBuf>,
    /// With --inputs: write the logits here, shape (N, …logits dims): float32, or an int8
    /// model's raw int8 output tensor (see --dequantize).
    #[arg(long, value_name = "Y.npy", value_parser = parsed(rules::out_file), requires = "inputs")]
    pub outputs: Option<PathBuf>,
    /// With --inputs: also write the embeddings here, as --outputs writes the logits.
    #[arg(long, value_name = "E.npy", value_parser = parsed(rules::out_file), requires = "inputs")]
    pub embeddings: Option<PathBuf>,
    /// With --inputs: write an int8 model's outputs as float32 real values s·(q − zp) instead of
    /// the raw int8 tensors (an f32 model's outputs are float32 either way).
    #[arg(long, requires = "inputs")]
    pub dequantize: bool,
    /// Test fraction for sources without a fixed split (csv, folder); use the training run's.
    #[arg(
        long,
        default_value_t = 0.2,
        allow_negative_numbers = true,
        value_parser = parsed(rules::fraction)
    )]
    pub test_fraction: f64,
    /// Seed of the split (csv, folder) or of the generated data (synthetic); use the training run's.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = rules::seed)]
    pub data_seed: u64,
    /// Folder with fetched/cached data sets.
    #[arg(long, default_value = "data", value_parser = parsed(rules::path))]
    pub data_dir: PathBuf,
    /// Run only the first N test samples.
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = parsed(rules::at_least_one)
    )]
    pub limit: Option<usize>,
    /// Skip retrieval (which runs the model over the whole train split as the gallery).
    #[arg(long)]
    pub no_retrieval: bool,
    /// Reconstruction models (autoencoder): the classes trained on; the ROC AUC of the
    /// reconstruction error is reported over the test samples, every other class anomalous.
    #[arg(long, value_name = "CLASSES", value_parser = rules::normal_classes)]
    pub normal_classes: Option<rules::ClassList>,
    /// Write every test sample's logits and embedding, exact bytes (docs/dump-format.md).
    #[arg(long, value_name = "FILE", value_parser = parsed(rules::out_file))]
    pub dump: Option<PathBuf>,
    /// Write the raw test samples that were run as a DNRI input file (docs/dump-format.md).
    #[arg(long, value_name = "FILE", value_parser = parsed(rules::out_file))]
    pub write_inputs: Option<PathBuf>,
    /// Write what was measured (accuracy, retrieval, seconds, the model's footprint) as JSON.
    #[arg(long, value_name = "FILE", value_parser = parsed(rules::out_file))]
    pub json: Option<PathBuf>,
    /// Worker threads [default: all cores] (the same rule as libtorch's `--threads`).
    #[arg(long, allow_negative_numbers = true, value_parser = parsed(rules::threads))]
    pub threads: Option<i32>,
}

impl InferArgs {
    /// `--threads`, or all cores.
    fn threads(&self) -> Result<usize> {
        Ok(match self.threads {
            Some(n) => usize::try_from(rules::flag("--threads", n, rules::threads)?)?,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    /// The [`NpyRequest`] of `--inputs` (`None` without it: a data-set run).
    pub fn npy_request(&self) -> Result<Option<NpyRequest>> {
        let (Some(inputs), Some(outputs)) = (&self.inputs, &self.outputs) else {
            return Ok(None);
        };
        Ok(Some(NpyRequest {
            model: self.model.clone(),
            inputs: inputs.clone(),
            outputs: outputs.clone(),
            embeddings: self.embeddings.clone(),
            dequantize: self.dequantize,
            threads: self.threads()?,
        }))
    }

    /// The [`InferRequest`] of these arguments (a data-set run: `--data` given).
    /// The values were checked while parsing ([`rules`]).
    pub fn request(&self, progress: bool) -> Result<InferRequest> {
        let threads = self.threads()?;
        let data = self
            .data
            .clone()
            .context("infer: --data (a data set) or --inputs (a .npy file) is required")?;
        Ok(InferRequest {
            model: self.model.clone(),
            data,
            load: LoadOptions {
                test_fraction: self.test_fraction,
                seed: self.data_seed,
                data_dir: self.data_dir.clone(),
            },
            limit: self.limit,
            retrieval: !self.no_retrieval,
            normal_classes: self.normal_classes.clone().map(|c| c.0),
            dump: self.dump.clone(),
            write_inputs: self.write_inputs.clone(),
            threads,
            progress,
        })
    }
}

/// `denoiserep report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Folder written by scripts/demo.sh (layout: README.md, "The main command's output").
    #[arg(long, value_name = "DIR", value_parser = parsed(rules::existing_dir))]
    pub demo: PathBuf,
    /// Output folder for REPORT.md, curves.png and robustness.png (created if missing).
    #[arg(long, value_name = "DIR", default_value = "report", value_parser = parsed(rules::path))]
    pub out: PathBuf,
}

impl TrainArgs {
    /// Resolves defaults into a [`TrainRequest`].
    pub fn request(&self, progress: bool) -> Result<TrainRequest> {
        let epochs = self.epochs.unwrap_or(match (self.regime, self.schedule) {
            (Regime::LabelGuided, _) | (_, EpochSchedule::LabelGuided) => 2 * self.phase_epochs,
            _ => 10,
        });
        Ok(TrainRequest {
            cfg: TrainConfig {
                data: self.data.clone().unwrap_or_else(|| "mnist".into()),
                test_fraction: self.test_fraction,
                data_dir: self.data_dir.clone(),
                arch: self.arch.clone().unwrap_or_else(|| "mlp:256,128".into()),
                regime: self.regime,
                epochs,
                batch_size: self.batch_size,
                labels: self.labels,
                lr: self.lr,
                lr_schedule: self.lr_schedule,
                lambda: self.lambda,
                phase_epochs: self.phase_epochs,
                schedule: self.schedule,
                denoise: DenoiseSpec {
                    schedule: ScheduleSpec {
                        beta_start: self.beta_start,
                        beta_end: self.beta_end,
                        timesteps: self.timesteps,
                    },
                    t_stride: self.t_stride,
                    t_list: self.t_list.clone().map(|l| l.0),
                    fuse_noise: self.fuse_noise,
                },
                denoiser_fit: self.denoiser_fit,
                denoiser_lr: self.denoiser_lr,
                denoiser_precondition: self.denoiser_precondition,
                noise_grad: self.noise_grad,
                seed: self.seed,
                data_seed: self.seed,
                // Stored in config.json: absolute, so `--resume` works from any directory.
                init: self.init.as_deref().map(absolute).transpose()?,
                import: self.import.as_deref().map(absolute).transpose()?,
                normal_classes: self.normal_classes.clone().map(|c| c.0),
                augment: self.regularization.augment,
                weight_decay: self.regularization.weight_decay,
            },
            arch_given: self.arch.is_some(),
            data_given: self.data.is_some(),
            out: self.out.clone(),
            resume: self.resume,
            force: self.force,
            device: self.device.resolve()?,
            threads: self.threads,
            progress,
        })
    }
}

/// `path` made absolute against the current directory (it need not exist yet).
fn absolute(path: &std::path::Path) -> Result<PathBuf> {
    std::path::absolute(path)
        .with_context(|| format!("{}: cannot make the path absolute", path.display()))
}

/// One line for a clap error, without clap's `error: ` prefix: `--flag VALUE: why` for a value a
/// [`rules`] function refused (the same words as [`rules::flag`]), else clap's message with its
/// continuation lines (the missing arguments, the possible values) joined onto it.
pub fn clap_message(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() == ErrorKind::ValueValidation {
        if let (Some(ContextValue::String(arg)), Some(ContextValue::String(value)), Some(why)) = (
            e.get(ContextKind::InvalidArg),
            e.get(ContextKind::InvalidValue),
            std::error::Error::source(e),
        ) {
            let flag = arg.split_whitespace().next().unwrap_or(arg);
            return format!("{flag} {}: {why}", shell_line([value.clone()]));
        }
    }
    let text = e.render().to_string();
    let mut lines = text.lines().take_while(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or("").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first).to_string();
    std::iter::once(first)
        .chain(lines.map(|l| l.trim().to_string()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The rules for flag values, one function per rule: each returns the value, or [`rules::Why`]
/// it is refused (what is allowed; the caller names the flag and the value).
///
/// The clap value parsers ([`rules::parsed`]) apply them while the command line is parsed, so a
/// bad value stops every subcommand before any work (no data loaded, no file written, libtorch
/// untouched). [`crate::run::validate`], [`crate::compare::validate`] and
/// [`crate::export::export`] apply the same functions through [`rules::flag`] to values that did
/// not come through clap: a `--resume` run's `config.json`, a library caller's request. Rules
/// between flags (`--beta-start` ≤ `--beta-end`, `--phase-epochs` < `--extra-epochs`, …) live in
/// those validation functions.
pub mod rules {
    use std::path::{Path, PathBuf};
    use std::str::FromStr;

    use crate::arch::Arch;
    use crate::data::{FolderSpec, SyntheticSpec};
    use crate::runtime;

    /// Why a value is refused: what is allowed, e.g. `must be at least 1`.
    pub type Why = String;
    /// A rule: the value when it is allowed.
    pub type Rule<T> = fn(T) -> Result<T, Why>;

    /// Largest `--epochs`, `--extra-epochs`, `--phase-epochs`.
    pub const MAX_EPOCHS: usize = 100_000;
    /// Largest `--batch-size`.
    pub const MAX_BATCH_SIZE: usize = 1 << 20;
    /// Largest `--timesteps` and `--t-stride` (the schedule holds two `f64` per timestep).
    pub const MAX_TIMESTEPS: usize = 1_000_000;
    /// Largest number of `compare` seeds.
    pub const MAX_SEEDS: usize = 1_000;
    /// Largest layer width or channel count in an `--arch` spec.
    pub const MAX_WIDTH: usize = 1 << 16;
    /// Largest synthetic data set, in values (`(n_train + n_test)·C·H·W`; 1 GiB of `f32`).
    pub const MAX_SYNTHETIC_VALUES: usize = 1 << 28;

    /// A flag value type: how a value is shown in an error, and a value that every rule of the
    /// type refuses (its [`Why`] is the answer to a text that does not even parse as the type).
    pub trait Value: Sized {
        /// The value as it would be typed.
        fn text(&self) -> String;
        /// A value every rule of this type refuses.
        fn refused() -> Self;
    }

    impl Value for usize {
        fn text(&self) -> String {
            self.to_string()
        }
        fn refused() -> Self {
            0
        }
    }

    impl Value for i32 {
        fn text(&self) -> String {
            self.to_string()
        }
        fn refused() -> Self {
            0
        }
    }

    impl Value for f64 {
        fn text(&self) -> String {
            self.to_string()
        }
        fn refused() -> Self {
            f64::NAN
        }
    }

    impl Value for f32 {
        fn text(&self) -> String {
            self.to_string()
        }
        fn refused() -> Self {
            f32::NAN
        }
    }

    impl Value for PathBuf {
        fn text(&self) -> String {
            self.to_string_lossy().into_owned()
        }
        fn refused() -> Self {
            PathBuf::new()
        }
    }

    impl Value for String {
        fn text(&self) -> String {
            self.clone()
        }
        fn refused() -> Self {
            String::new()
        }
    }

    /// A clap value parser: the text parsed as `T`, then `rule`.
    pub fn parsed<T>(
        rule: Rule<T>,
    ) -> impl Fn(&str) -> Result<T, Why> + Clone + Send + Sync + 'static
    where
        T: Value + FromStr + 'static,
    {
        move |s: &str| match s.parse::<T>() {
            Ok(v) => rule(v),
            Err(_) => Err(rule(T::refused()).err().unwrap_or_default()),
        }
    }

    /// `rule` applied to the value of flag `name`, refusals as `NAME VALUE: why`.
    pub fn flag<T: Value>(name: &str, value: T, rule: Rule<T>) -> anyhow::Result<T> {
        let text = value.text();
        rule(value).map_err(|why| anyhow::anyhow!("{name} {}: {why}", super::shell_line([text])))
    }

    fn whole(n: usize, max: usize) -> Result<usize, Why> {
        if (1..=max).contains(&n) {
            Ok(n)
        } else {
            Err(format!("must be a whole number from 1 to {max}"))
        }
    }

    /// An epoch count: 1 ..= [`MAX_EPOCHS`].
    pub fn epochs(n: usize) -> Result<usize, Why> {
        whole(n, MAX_EPOCHS)
    }

    /// `--batch-size`: 1 ..= [`MAX_BATCH_SIZE`].
    pub fn batch_size(n: usize) -> Result<usize, Why> {
        whole(n, MAX_BATCH_SIZE)
    }

    /// `--timesteps`: 1 ..= [`MAX_TIMESTEPS`].
    pub fn timesteps(n: usize) -> Result<usize, Why> {
        whole(n, MAX_TIMESTEPS)
    }

    /// `--t-stride`: 1 ..= [`MAX_TIMESTEPS`] (and at most `--timesteps`: `run::validate`).
    pub fn t_stride(n: usize) -> Result<usize, Why> {
        whole(n, MAX_TIMESTEPS)
    }

    /// `--t-list`: comma-separated timesteps, one per denoised layer in forward order, each
    /// 1 ..= [`MAX_TIMESTEPS`] (and at most `--timesteps`, one per layer: `run::validate` and
    /// the model). A clap value parser itself.
    /// A parsed `--t-list` (a newtype: clap would take a bare `Vec` for a repeated flag).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TimestepList(pub Vec<usize>);

    /// `--t-list` as clap parses it.
    pub fn t_list_arg(s: &str) -> Result<TimestepList, Why> {
        t_list(s).map(TimestepList)
    }

    pub fn t_list(s: &str) -> Result<Vec<usize>, Why> {
        let why = || {
            format!("must be a comma-separated list of whole numbers from 1 to {MAX_TIMESTEPS}, one per denoised layer (e.g. 1,1,1)")
        };
        if s.trim().is_empty() {
            return Err(why());
        }
        s.split(',')
            .map(|v| match v.trim().parse::<usize>() {
                Ok(t) if (1..=MAX_TIMESTEPS).contains(&t) => Ok(t),
                _ => Err(why()),
            })
            .collect()
    }

    /// A parsed `--normal-classes` (a newtype: clap would take a bare `Vec` for a repeated flag).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ClassList(pub Vec<u32>);

    /// `--normal-classes`: comma-separated class indices and inclusive ranges, e.g. `0-8` or
    /// `0,2,4-6` (that the classes exist is checked against the data). A clap value parser.
    pub fn weight_decay(v: f64) -> Result<f64, Why> {
        if v.is_finite() && (0.0..1.0).contains(&v) {
            Ok(v)
        } else {
            Err("must be a number in [0, 1)".into())
        }
    }

    pub fn augment(s: &str) -> Result<crate::augment::Augment, Why> {
        crate::augment::Augment::parse(s)
    }

    pub fn normal_classes(s: &str) -> Result<ClassList, Why> {
        crate::eval::anomaly::parse_classes(s).map(ClassList)
    }

    /// `eval --feature-noise`: `auto` (the per-layer default) or a finite standard deviation
    /// ≥ 0. A clap value parser itself.
    pub fn feature_noise(s: &str) -> Result<Option<f64>, Why> {
        if s == "auto" {
            return Ok(None);
        }
        match s.parse::<f64>() {
            Ok(v) if v >= 0.0 && v.is_finite() => Ok(Some(v)),
            _ => Err("must be a finite number ≥ 0 (a standard deviation), or no value for the per-layer default".into()),
        }
    }

    /// `compare --seeds`: 1 ..= [`MAX_SEEDS`].
    pub fn seeds(n: usize) -> Result<usize, Why> {
        whole(n, MAX_SEEDS)
    }

    /// Largest `compare --equivalence-margin`, in percentage points.
    pub const MAX_MARGIN_PP: f64 = 100.0;

    /// `compare --equivalence-margin`: above 0, at most [`MAX_MARGIN_PP`] percentage points.
    pub fn equivalence_margin(pp: f64) -> Result<f64, Why> {
        if pp > 0.0 && pp <= MAX_MARGIN_PP {
            Ok(pp)
        } else {
            Err(format!(
                "must be a number of percentage points above 0 and at most {MAX_MARGIN_PP}"
            ))
        }
    }

    /// `compare --jobs`: 1 ..= 4 × this machine's logical CPUs.
    pub fn jobs(n: usize) -> Result<usize, Why> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        whole(n, 4 * cores)
            .map_err(|why| format!("{why} (4 × this machine's {cores} logical CPUs)"))
    }

    /// A seed (`--seed`, `--seed-list`, `--fuse-noise`, `--calib-seed`, `--data-seed`): any whole
    /// number that fits in 64 bits. A clap value parser itself (every parsed value is allowed).
    pub fn seed(s: &str) -> Result<u64, Why> {
        s.parse()
            .map_err(|_| format!("must be a whole number from 0 to {}", u64::MAX))
    }

    /// A count with no upper bound that matters (`--calib`, `--limit`: larger means all).
    pub fn at_least_one(n: usize) -> Result<usize, Why> {
        if n >= 1 {
            Ok(n)
        } else {
            Err("must be at least 1".into())
        }
    }

    /// `--threads` of every subcommand: [`runtime::check_threads`]'s range.
    pub fn threads(n: i32) -> Result<i32, Why> {
        runtime::check_threads(n)
            .map_err(|_| format!("must be a whole number from 1 to {}", runtime::MAX_THREADS))
    }

    /// `--lr`: positive and finite.
    pub fn lr(x: f64) -> Result<f64, Why> {
        if x > 0.0 && x.is_finite() {
            Ok(x)
        } else {
            Err("must be a positive finite number".into())
        }
    }

    /// `--lambda`: non-negative and finite.
    pub fn lambda(x: f64) -> Result<f64, Why> {
        if x >= 0.0 && x.is_finite() {
            Ok(x)
        } else {
            Err("must be a finite number ≥ 0".into())
        }
    }

    /// `--beta-start`, `--beta-end`, `--test-fraction`: strictly between 0 and 1.
    pub fn fraction(x: f64) -> Result<f64, Why> {
        if x > 0.0 && x < 1.0 {
            Ok(x)
        } else {
            Err("must be a number strictly between 0 and 1".into())
        }
    }

    /// `--calib-percentile`: above 50, at most 100.
    pub fn calib_percentile(p: f64) -> Result<f64, Why> {
        if p > 50.0 && p <= 100.0 {
            Ok(p)
        } else {
            Err("must be above 50 and at most 100".into())
        }
    }

    /// `--mean` values: finite.
    pub fn mean_value(x: f32) -> Result<f32, Why> {
        if x.is_finite() {
            Ok(x)
        } else {
            Err("must be a finite number".into())
        }
    }

    /// `--std` values: positive and finite.
    pub fn std_value(x: f32) -> Result<f32, Why> {
        if x.is_finite() && x > 0.0 {
            Ok(x)
        } else {
            Err("must be a positive finite number".into())
        }
    }

    /// Any path flag: not empty.
    pub fn path(p: PathBuf) -> Result<PathBuf, Why> {
        if p.as_os_str().is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(p)
        }
    }

    /// A file to write: not empty, in a folder that exists.
    pub fn out_file(p: PathBuf) -> Result<PathBuf, Why> {
        let p = path(p)?;
        match p.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) if !dir.is_dir() => Err(format!("folder {} does not exist", dir.display())),
            _ => Ok(p),
        }
    }

    /// A file to read: not empty, and a file.
    pub fn existing_file(p: PathBuf) -> Result<PathBuf, Why> {
        let p = path(p)?;
        if p.is_file() {
            Ok(p)
        } else {
            Err("no such file".into())
        }
    }

    /// A folder to read: not empty, and a folder.
    pub fn existing_dir(p: PathBuf) -> Result<PathBuf, Why> {
        let p = path(p)?;
        if p.is_dir() {
            Ok(p)
        } else {
            Err("no such folder".into())
        }
    }

    /// A run directory to read (`eval`, `export`): it holds a `config.json`.
    pub fn run_dir(p: PathBuf) -> Result<PathBuf, Why> {
        let p = path(p)?;
        if p.join(crate::run::CONFIG).is_file() {
            Ok(p)
        } else {
            Err(format!("not a run directory (no {})", crate::run::CONFIG))
        }
    }

    /// The data spec kinds, as the errors list them.
    const DATA_KINDS: &str = "mnist, idx:DIR, cifar10:DIR, csv:FILE, folder:DIR[,C,H,W] or \
                              synthetic[:C,H,W,classes,n_train,n_test]";

    /// A `--data` spec, checked without loading anything: a known kind (the kinds of
    /// [`crate::data::load`]), its folder or file present, a folder spec's `C,H,W` allowed
    /// ([`FolderSpec::parse`]), a synthetic spec that parses and fits in
    /// [`MAX_SYNTHETIC_VALUES`].
    pub fn data_spec(spec: String) -> Result<String, Why> {
        if spec.is_empty() {
            return Err(format!("must not be empty; expected {DATA_KINDS}"));
        }
        let (kind, arg) = spec
            .split_once(':')
            .map_or((spec.as_str(), None), |(k, a)| (k, Some(a)));
        let need = |what: &str, present: fn(&Path) -> bool, missing: &str| match arg {
            Some(a) if !a.is_empty() && present(Path::new(a)) => Ok(()),
            Some(a) if !a.is_empty() => Err(format!("{a}: {missing}")),
            _ => Err(format!("expected {kind}:{what}")),
        };
        match kind {
            "mnist" if arg.is_none() => Ok(()),
            "mnist" => Err("mnist takes no argument (its folder is --data-dir)".into()),
            "idx" | "cifar10" => need("DIR", Path::is_dir, "no such directory"),
            "csv" => need("FILE", Path::is_file, "no such file"),
            "folder" => {
                need("DIR[,C,H,W]", |_| true, "")?;
                let f = FolderSpec::parse(arg.unwrap_or("")).map_err(|e| format!("{e:#}"))?;
                if f.dir.is_dir() {
                    Ok(())
                } else {
                    Err(format!("{}: no such directory", f.dir.display()))
                }
            }
            "synthetic" => {
                let s = SyntheticSpec::parse(arg.unwrap_or("")).map_err(|e| format!("{e:#}"))?;
                let values = (s.n_train.checked_add(s.n_test))
                    .and_then(|n| s.shape.iter().try_fold(n, |a, &d| a.checked_mul(d)));
                match values {
                    Some(v) if v <= MAX_SYNTHETIC_VALUES => Ok(()),
                    _ => Err(format!(
                        "synthetic data of more than {MAX_SYNTHETIC_VALUES} values \
                         ((n_train + n_test)·C·H·W)"
                    )),
                }
            }
            _ => Err(format!("unknown kind '{kind}'; expected {DATA_KINDS}")),
        }
        .map(|()| spec)
    }

    /// An `--arch` spec, checked without data: [`Arch::parse`]'s grammar, and no width above
    /// [`MAX_WIDTH`]. The grammar errors come before `Arch::parse` looks at the data, so with no
    /// data (shape `[0, 0, 0]`) a spec with a right grammar fails at the data ("not trainable"),
    /// which is not the spec's fault; the unit tests pin that.
    pub fn arch_spec(spec: String) -> Result<String, Why> {
        if spec.trim().is_empty() {
            return Err("must not be empty; expected mlp[:H1,H2,…], cnn[:C1,C2,…/H1,…], resnet8, ds-cnn, mobilenet-v1[:ALPHA[,relu6]], autoencoder or vit[:PATCH,DIM,HEADS,DEPTH,MLP_RATIO[,POOL]]".into());
        }
        match Arch::parse(&spec, [0, 0, 0], 0) {
            Err(e) if !e.to_string().ends_with("is not trainable") => return Err(format!("{e:#}")),
            _ => {}
        }
        let widths = spec.split_once(':').map_or("", |(_, w)| w);
        match widths
            .split([',', '/'])
            .filter_map(|w| w.trim().parse::<usize>().ok())
            .find(|&w| w > MAX_WIDTH)
        {
            Some(w) => Err(format!("width {w} is above the largest, {MAX_WIDTH}")),
            None => Ok(spec),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn arch_specs_with_a_right_grammar_pass_and_others_name_the_fault() {
            for ok in [
                "mlp",
                "mlp:8",
                " mlp:256,128 ",
                "cnn",
                "cnn:2/",
                "cnn:4,4,4,4,4,4,4,4",
                "cnn:32,64/128",
                "resnet8",
                "ds-cnn",
                "mobilenet-v1",
                "mobilenet-v1:0.5",
                "mobilenet-v1:0.25,relu6",
                "autoencoder",
                "vit",
                "vit:4,32,2,2,1.5",
                "vit:7,64,4,4,2,mean",
            ] {
                assert!(arch_spec(ok.into()).is_ok(), "{ok}");
            }
            for (bad, needle) in [
                ("", "must not be empty"),
                ("resnet", "unknown kind 'resnet'"),
                ("mlp:64,x", "hidden width 2 ('x')"),
                ("mlp:0", "hidden width 1 is 0"),
                ("cnn:/8", "at least one conv channel"),
                ("mlp:100000", "width 100000 is above"),
                ("vit:7,64,3,4,2", "DIM 64 is not divisible by HEADS 3"),
                ("vit:7,64,4", "5 or 6 values"),
                ("vit:7,64,4,4,2,max", "POOL ('max')"),
            ] {
                let e = arch_spec(bad.into()).unwrap_err();
                assert!(e.contains(needle), "{bad}: {e}");
            }
        }

        #[test]
        fn data_specs_are_checked_without_loading() {
            for ok in [
                "mnist",
                "synthetic",
                "synthetic:1,8,8,4,256,64",
                "idx:/",
                "folder:/",
                "folder:/,3,32,32",
            ] {
                assert!(data_spec(ok.into()).is_ok(), "{ok}");
            }
            for (bad, needle) in [
                ("", "must not be empty"),
                ("foo:bar", "unknown kind 'foo'"),
                ("mnist:x", "takes no argument"),
                ("idx:", "expected idx:DIR"),
                ("cifar10:/nonexistent", "/nonexistent: no such directory"),
                ("csv:/nonexistent.csv", "no such file"),
                ("folder:", "expected folder:DIR[,C,H,W]"),
                (
                    "folder:/nonexistent,1,8,8",
                    "/nonexistent: no such directory",
                ),
                ("folder:/,2,8,8", "C = 2, expected 1 (grayscale) or 3 (RGB)"),
                ("folder:/,8,8", "expected DIR,C,H,W"),
                ("synthetic:1,2", "expected six positive numbers"),
                ("synthetic:1,8,8,4,1000000000000,1", "more than"),
                (
                    "synthetic:1,99999999999,99999999999,4,99999999999,1",
                    "more than",
                ),
            ] {
                let e = data_spec(bad.into()).unwrap_err();
                assert!(e.contains(needle), "{bad}: {e}");
            }
        }

        #[test]
        fn unparsable_text_gets_the_rules_own_words() {
            let p = parsed(epochs);
            assert_eq!(p("3"), Ok(3));
            assert_eq!(p("x"), p("0"));
            assert!(p("-1").unwrap_err().contains("from 1 to"));
            let p = parsed(lr);
            for bad in ["0", "-1", "nan", "NaN", "inf", "x"] {
                assert_eq!(p(bad).unwrap_err(), "must be a positive finite number");
            }
            let e = flag("--out", PathBuf::new(), path).unwrap_err().to_string();
            assert_eq!(e, "--out '': must not be empty");
        }
    }
}

/// `denoiserep export --tflite-io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TfliteIo {
    /// int8 input and outputs (quantize the normalized input yourself).
    Int8,
    /// float32 input and outputs (QUANTIZE / DEQUANTIZE inside the model).
    Float,
}
