//! Command-line interface (clap derive): `denoiserep train …`, `eval …`, `export …`, `infer …`,
//! `report …`, `compare …`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::compare::{CompareRequest, Settings as CompareSettings};
use crate::data::LoadOptions;
use crate::export::{ExportFormat, ExportPrecision, ExportRequest, DEFAULT_CALIB};
use crate::infer::InferRequest;
use crate::model::DenoiseSpec;
use crate::run::{DeviceArg, TrainRequest};
use crate::schedule::ScheduleSpec;
use crate::train::{EpochSchedule, LrSchedule, Regime, TrainConfig};

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
    /// Baseline vs DenoiseRep at equal budget with three controls, over seeds.
    Compare(CompareArgs),
}

/// `denoiserep compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Data set: mnist, idx:DIR, cifar10:DIR, csv:FILE, synthetic[:C,H,W,classes,n_train,n_test]
    #[arg(long, default_value = "mnist")]
    pub data: String,
    /// Backbone: mlp[:H1,H2,…] or cnn[:C1,C2,…/H1,…]
    #[arg(long, default_value = "mlp:256,128")]
    pub arch: String,
    /// Number of seeds: 0, 1, …, K−1.
    #[arg(long, value_name = "K", default_value_t = 5)]
    pub seeds: usize,
    /// Explicit seeds instead of --seeds, e.g. 0,3,7.
    #[arg(
        long,
        value_name = "S,S,…",
        value_delimiter = ',',
        conflicts_with = "seeds"
    )]
    pub seed_list: Option<Vec<u64>>,
    /// Epochs of the from-scratch baseline every arm starts from.
    #[arg(long, value_name = "E")]
    pub epochs: usize,
    /// Epochs every arm trains from the baseline (the equal budget).
    #[arg(long, value_name = "E2")]
    pub extra_epochs: usize,
    /// label-guided phase length (its B epochs are the null control's) [default: E2 / 2].
    #[arg(long, value_name = "P")]
    pub phase_epochs: Option<usize>,
    /// Extra arm NAME=TRAIN FLAGS, e.g. 'lg-t4=--regime label-guided --t-stride 4' (repeatable).
    #[arg(long, value_name = "NAME=FLAGS")]
    pub variant: Vec<String>,
    /// Output folder: DIR/seed-S/ARM run dirs, compare.json, compare.md, compare.png.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Retrain arms whose run directory holds a run with other settings (or an older baseline).
    #[arg(long)]
    pub force: bool,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    #[arg(long, value_enum, default_value_t = LrSchedule::Cosine)]
    pub lr_schedule: LrSchedule,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// λ of the noise loss (label-guided B) and of the activation penalty (penalty-control).
    #[arg(long, default_value_t = 0.01)]
    pub lambda: f64,
    #[arg(long, default_value_t = 1)]
    pub t_stride: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub beta_start: f64,
    #[arg(long, default_value_t = 2e-3)]
    pub beta_end: f64,
    #[arg(long, default_value_t = 1000)]
    pub timesteps: usize,
    /// Test fraction for sources without a fixed split (csv).
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Folder with fetched/cached data sets.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// libtorch CPU threads [default: libtorch's choice].
    #[arg(long)]
    pub threads: Option<i32>,
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
        };
        crate::compare::validate(&settings)?;
        Ok(CompareRequest {
            settings,
            variants,
            out: self.out.clone(),
            force: self.force,
            command,
            progress,
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
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Data set: mnist, idx:DIR, cifar10:DIR, csv:FILE, synthetic[:C,H,W,classes,n_train,n_test]
    /// [default: mnist, or the --init run's]
    #[arg(long)]
    pub data: Option<String>,
    /// Test fraction for sources without a fixed split (csv).
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Folder with fetched/cached data sets.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Backbone: mlp[:H1,H2,…] or cnn[:C1,C2,…/H1,…] [default: mlp:256,128, or the --init run's]
    #[arg(long)]
    pub arch: Option<String>,
    /// Training regime.
    #[arg(long, value_enum, default_value_t = Regime::Baseline)]
    pub regime: Regime,
    /// Epochs [default: 10; label-guided: 2 × --phase-epochs].
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Adam learning rate (both parameter groups).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Learning-rate schedule over the run (label-guided: over each phase block).
    #[arg(long, value_enum, default_value_t = LrSchedule::Cosine)]
    pub lr_schedule: LrSchedule,
    /// Weight λ of the noise loss (label-guided B) or of the activation penalty (penalty-control).
    #[arg(long, default_value_t = 0.01)]
    pub lambda: f64,
    /// label-guided: epochs per phase (A, B, A, …).
    #[arg(long, default_value_t = 10)]
    pub phase_epochs: usize,
    /// baseline / penalty-control: `label-guided` trains only in label-guided's B epochs (A
    /// epochs skipped, per-block cosine lr), the null control of `compare`.
    #[arg(long, value_enum, default_value_t = EpochSchedule::Plain)]
    pub schedule: EpochSchedule,
    #[arg(long, default_value_t = 1e-4)]
    pub beta_start: f64,
    #[arg(long, default_value_t = 2e-3)]
    pub beta_end: f64,
    /// Diffusion steps T of the schedule.
    #[arg(long, default_value_t = 1000)]
    pub timesteps: usize,
    /// Layer i of N (1-based, forward order) gets timestep s·(N − i + 1).
    #[arg(long, default_value_t = 1)]
    pub t_stride: usize,
    /// Let the noise loss's gradient reach the backbone through the layer inputs (label-guided B).
    #[arg(long)]
    pub noise_grad: bool,
    /// Bake seeded Gaussian reverse-step noise z into the fused biases (default: z = 0).
    #[arg(long, value_name = "SEED")]
    pub fuse_noise: Option<u64>,
    /// Seed of initialization, data order and noise, and of the split of sources without a fixed
    /// one (with --init: the init run's split seed is kept, so its test split stays unseen).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Start from the backbone of a previous run.
    #[arg(long, value_name = "RUN_DIR")]
    pub init: Option<PathBuf>,
    /// Start from backbone weights trained elsewhere (PyTorch nn.Sequential names: 1.weight, …).
    #[arg(long, value_name = "FILE")]
    pub import: Option<PathBuf>,
    /// Run directory.
    #[arg(long, value_name = "RUN_DIR")]
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
    #[arg(long)]
    pub threads: Option<i32>,
}

/// `denoiserep eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Run directory to re-evaluate.
    #[arg(long, value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// Evaluate on this data spec instead of the run's (same shape and classes).
    #[arg(long)]
    pub data: Option<String>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    #[arg(long)]
    pub threads: Option<i32>,
}

/// `denoiserep export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Run directory to export (its model.safetensors and config.json).
    #[arg(long, value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// f32, or int8 (post-training quantization calibrated on the run's train split).
    #[arg(long, value_enum)]
    pub precision: ExportPrecision,
    /// dnrp: the core's model format (what the device runs); onnx: an ONNX graph of the fused
    /// model (opset 13, f32 only).
    #[arg(long, value_enum, default_value_t = ExportFormat::Dnrp)]
    pub format: ExportFormat,
    /// Model file to write; the report goes beside it with the extension .json.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// int8: number of training samples to calibrate activation ranges on.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CALIB)]
    pub calib: usize,
    /// int8: take each activation range from the (100 − P)-th and P-th percentiles instead of
    /// min/max (50 < P ≤ 100, e.g. 99.99).
    #[arg(long, value_name = "P")]
    pub calib_percentile: Option<f64>,
    /// int8: seed of the random choice of calibration samples.
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    pub calib_seed: u64,
    /// libtorch CPU threads [default: libtorch's choice].
    #[arg(long)]
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
            progress,
        }
    }
}

/// `denoiserep infer`.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// Model file (.dnrp) written by `denoiserep export`.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// Data set: mnist, idx:DIR, cifar10:DIR, csv:FILE, synthetic[:C,H,W,classes,n_train,n_test]
    #[arg(long)]
    pub data: String,
    /// Test fraction for sources without a fixed split (csv); use the training run's.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Seed of the split (csv) or of the generated data (synthetic); use the training run's.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    /// Folder with fetched/cached data sets.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Run only the first N test samples.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Skip retrieval (which runs the model over the whole train split as the gallery).
    #[arg(long)]
    pub no_retrieval: bool,
    /// Write every test sample's logits and embedding, exact bytes (docs/dump-format.md).
    #[arg(long, value_name = "FILE")]
    pub dump: Option<PathBuf>,
    /// Write the raw test samples that were run as a DNRI input file (docs/dump-format.md).
    #[arg(long, value_name = "FILE")]
    pub write_inputs: Option<PathBuf>,
    /// Write what was measured (accuracy, retrieval, seconds, the model's footprint) as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
}

impl InferArgs {
    /// The [`InferRequest`] of these arguments.
    pub fn request(&self, progress: bool) -> Result<InferRequest> {
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            anyhow::bail!("--test-fraction {} is outside (0, 1)", self.test_fraction);
        }
        let threads = match self.threads {
            Some(0) => anyhow::bail!("--threads must be at least 1"),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if let Some(json) = &self.json {
            if let Some(dir) = json.parent().filter(|p| !p.as_os_str().is_empty()) {
                if !dir.is_dir() {
                    anyhow::bail!(
                        "--json {}: folder {} does not exist",
                        json.display(),
                        dir.display()
                    );
                }
            }
        }
        Ok(InferRequest {
            model: self.model.clone(),
            data: self.data.clone(),
            load: LoadOptions {
                test_fraction: self.test_fraction,
                seed: self.data_seed,
                data_dir: self.data_dir.clone(),
            },
            limit: self.limit,
            retrieval: !self.no_retrieval,
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
    #[arg(long, value_name = "DIR")]
    pub demo: PathBuf,
    /// Output folder for REPORT.md, curves.png and robustness.png (created if missing).
    #[arg(long, value_name = "DIR", default_value = "report")]
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
                    fuse_noise: self.fuse_noise,
                },
                noise_grad: self.noise_grad,
                seed: self.seed,
                data_seed: self.seed,
                // Stored in config.json: absolute, so `--resume` works from any directory.
                init: self.init.as_deref().map(absolute).transpose()?,
                import: self.import.as_deref().map(absolute).transpose()?,
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
