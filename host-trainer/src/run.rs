//! Run directories: `config.json`, `model.safetensors`, `checkpoint.safetensors`,
//! `metrics.json` (written last: a run is complete exactly when it exists), plots; and the
//! `train` / `eval` commands built on them.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::arch::Arch;
use crate::data::{self, Dataset, LoadOptions, Normalization, Split};
use crate::eval::{self, Metrics};
use crate::evaluate::{self, Evaluation};
use crate::model::Model;
use crate::schedule::Schedule;
use crate::train::{EpochSchedule, Regime, TrainConfig, Trainer};

pub const CONFIG: &str = "config.json";
pub const MODEL: &str = "model.safetensors";
pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const METRICS: &str = "metrics.json";
pub const CURVES_PNG: &str = "curves.png";
pub const ROBUSTNESS_PNG: &str = "robustness.png";
/// Files a run writes; `--force` removes exactly these.
const RUN_FILES: [&str; 6] = [
    CONFIG,
    MODEL,
    CHECKPOINT,
    METRICS,
    CURVES_PNG,
    ROBUSTNESS_PNG,
];

/// Test hook: when set to `N`, training stops with an error right after the checkpoint of
/// epoch `N` (1-based), as if the process had been killed. Used to test `--resume`.
pub const ABORT_ENV: &str = "DENOISEREP_ABORT_AFTER_EPOCH";

/// What the data set looked like (for `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    pub name: String,
    pub shape: [usize; 3],
    pub num_classes: usize,
    pub n_train: usize,
    pub n_test: usize,
    pub value_range: Option<(f32, f32)>,
}

/// One denoised layer's timestep and reverse-step coefficients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerTimestep {
    pub layer: usize,
    pub t: usize,
    pub c1: f64,
    pub c2: f64,
    pub c3: f64,
}

/// Library versions of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub denoiserep: String,
    pub tch: String,
    pub libtorch: String,
}

/// `RUN_DIR/config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub train: TrainConfig,
    pub data: DataInfo,
    pub normalization: Normalization,
    pub arch: Arch,
    /// Empty when the model has no denoisers.
    pub timesteps: Vec<LayerTimestep>,
    pub device: String,
    /// libtorch CPU threads the run used (`--threads`, or the machine's default, set
    /// explicitly); `--resume` continues with it. `None` in runs written before it was recorded.
    #[serde(default)]
    pub threads: Option<i32>,
    pub versions: Versions,
}

pub use crate::atomic::write_atomic;

/// Writes named tensors as safetensors atomically (moved to the CPU, contiguous).
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.detach().to_device(Device::Cpu).contiguous()))
        .collect();
    crate::atomic::write_with(path, |tmp| Ok(Tensor::write_safetensors(&cpu, tmp)?))
}

/// Reads a safetensors file into a name → tensor map.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        bail!("{}: no such file", path.display());
    }
    let v = Tensor::read_safetensors(path)
        .with_context(|| format!("{}: not a readable safetensors file", path.display()))?;
    Ok(v.into_iter().collect())
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: invalid JSON", path.display()))
}

/// Reads `RUN_DIR/config.json`.
pub fn read_config(dir: &Path) -> Result<RunConfig> {
    let path = dir.join(CONFIG);
    if !path.is_file() {
        bail!("{}: not a run directory (no {CONFIG})", dir.display());
    }
    read_json(&path)
}

/// Device choice (`--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// CUDA when available, else CPU.
    Auto,
    Cpu,
    Cuda,
}

impl DeviceArg {
    pub fn resolve(self) -> Result<Device> {
        Ok(match self {
            Self::Auto => Device::cuda_if_available(),
            Self::Cpu => Device::Cpu,
            Self::Cuda if tch::Cuda::is_available() => Device::Cuda(0),
            Self::Cuda => bail!(
                "--device cuda: no CUDA device visible to libtorch (a CPU-only libtorch, or a build \
                 without the `cuda` feature)"
            ),
        })
    }
}

fn device_name(d: Device) -> String {
    match d {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

/// Loads the data set a config trains on: with `--normal-classes`, both splits restricted to the
/// normal classes ([`eval::anomaly::normal_only`]).
pub fn load_data(cfg: &TrainConfig) -> Result<Dataset> {
    Ok(load_run_data(cfg)?.0)
}

/// [`load_data`], and with `--normal-classes` the whole test split, normal and anomalous samples,
/// for the anomaly evaluation. Errors name a class the data does not have.
pub fn load_run_data(cfg: &TrainConfig) -> Result<(Dataset, Option<Split>)> {
    let opts = LoadOptions {
        test_fraction: cfg.test_fraction,
        seed: cfg.data_seed,
        data_dir: cfg.data_dir.clone(),
    };
    let data = data::load(&cfg.data, &opts)?;
    let Some(normal) = &cfg.normal_classes else {
        return Ok((data, None));
    };
    eval::anomaly::check_classes(normal, data.num_classes, "--normal-classes")
        .with_context(|| format!("data '{}'", cfg.data))?;
    let restricted = eval::anomaly::normal_only(&data, normal);
    Ok((restricted, Some(data.test)))
}

/// A model rebuilt from a run directory (config + `model.safetensors`).
pub fn load_run_model(dir: &Path, device: Device) -> Result<(RunConfig, Model)> {
    let cfg = read_config(dir)?;
    let tensors = read_tensors(&dir.join(MODEL))?;
    let mut model = Model::new(cfg.arch.clone(), cfg.normalization.clone(), device);
    model.load_backbone(&tensors, &dir.join(MODEL).display().to_string())?;
    if cfg.train.regime.has_denoisers() {
        model.add_denoisers(&cfg.train.denoise)?;
        model.load_denoisers(&tensors, &dir.join(MODEL).display().to_string())?;
    }
    Ok((cfg, model))
}

/// State of an output directory.
#[derive(Debug, PartialEq, Eq)]
enum DirState {
    Empty,
    Unfinished,
    Complete,
}

fn dir_state(dir: &Path) -> Result<DirState> {
    if !dir.exists() {
        return Ok(DirState::Empty);
    }
    if !dir.is_dir() {
        bail!("--out {}: exists and is not a directory", dir.display());
    }
    if dir.join(METRICS).exists() {
        return Ok(DirState::Complete);
    }
    if RUN_FILES.iter().any(|f| dir.join(f).exists()) {
        return Ok(DirState::Unfinished);
    }
    Ok(DirState::Empty)
}

/// Options of `denoiserep train` beyond the [`TrainConfig`].
#[derive(Debug, Clone)]
pub struct TrainRequest {
    pub cfg: TrainConfig,
    /// `--arch` was given explicitly (must then agree with `--init`'s).
    pub arch_given: bool,
    /// `--data` was given explicitly (else `--init`'s data spec is used).
    pub data_given: bool,
    pub out: PathBuf,
    pub resume: bool,
    pub force: bool,
    pub device: Device,
    pub threads: Option<i32>,
    pub progress: bool,
}

/// What `train` reports at the end.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub metrics: Metrics,
    pub seconds: f64,
}

/// `denoiserep train`.
pub fn train(req: TrainRequest) -> Result<TrainSummary> {
    let started = std::time::Instant::now();
    // Library callers that skip `runtime::init_threads` get the same first-step bits.
    crate::runtime::warm_up_vml();
    let out = req.out.clone();
    let state = dir_state(&out)?;
    let (cfg, resume) = if req.resume {
        match state {
            DirState::Complete => {
                // A kill between writing metrics.json and removing the checkpoint (the last two
                // steps of a run) leaves a complete run with a stale checkpoint: clean it up.
                let ckpt = out.join(CHECKPOINT);
                let note = if ckpt.exists() {
                    fs::remove_file(&ckpt)
                        .with_context(|| format!("removing {}", ckpt.display()))?;
                    format!(" (removed the leftover {CHECKPOINT} of its last moments)")
                } else {
                    String::new()
                };
                bail!(
                    "--resume: run {} is already complete ({METRICS} exists){note}; pass --force without --resume to retrain",
                    out.display()
                )
            }
            DirState::Empty => bail!("--resume: {} holds no run to resume", out.display()),
            DirState::Unfinished => {
                let stored = read_config(&out)?;
                resume_threads(req.threads, stored.threads)?;
                (stored.train, true)
            }
        }
    } else {
        match state {
            DirState::Complete if !req.force => bail!(
                "--out {}: holds a complete run ({METRICS} exists); pass --force to overwrite it",
                out.display()
            ),
            DirState::Unfinished if !req.force => bail!(
                "--out {}: holds an unfinished run; pass --resume to continue it or --force to start over",
                out.display()
            ),
            _ => (req.cfg.clone(), false),
        }
    };
    validate(&cfg)?;

    // Everything that can fail on user input happens before the run directory is touched.
    let init = match &cfg.init {
        Some(dir) => Some(
            load_run_model(dir, req.device).with_context(|| format!("--init {}", dir.display()))?,
        ),
        None => None,
    };
    let mut cfg = cfg;
    if let Some((icfg, _)) = &init {
        if !req.data_given && !resume {
            cfg.data = icfg.train.data.clone();
            cfg.test_fraction = icfg.train.test_fraction;
            cfg.data_dir = icfg.train.data_dir.clone();
        }
        if !resume {
            cfg.data_seed = icfg.train.data_seed;
            if cfg.normal_classes.is_none() {
                // The anomaly setup of the backbone's run (a DenoiseRep run on an autoencoder
                // trained on the normal classes keeps them).
                cfg.normal_classes = icfg.train.normal_classes.clone();
            }
        }
    }
    let (data, anomaly_test) = load_run_data(&cfg)?;
    if data.train.is_empty() || data.test.is_empty() {
        bail!(
            "data '{}': the train and test splits must both be non-empty{}",
            cfg.data,
            match &cfg.normal_classes {
                Some(c) => format!(
                    " (with --normal-classes {}: samples of those classes)",
                    eval::anomaly::format_classes(c)
                ),
                None => String::new(),
            }
        );
    }
    if let Some(n) = cfg.labels {
        if n > data.train.len() {
            bail!(
                "--labels {n}: data '{}' has only {} train samples",
                cfg.data,
                data.train.len()
            );
        }
    }
    cfg.augment
        .check(data.shape)
        .with_context(|| format!("data '{}'", cfg.data))?;
    let arch = match &init {
        Some((icfg, _)) => {
            if req.arch_given && !resume {
                let asked = Arch::parse(&cfg.arch, data.shape, data.num_classes)?;
                if asked.spec != icfg.arch.spec {
                    bail!(
                        "--arch {} differs from the --init run's arch {}",
                        asked.spec,
                        icfg.arch.spec
                    );
                }
            }
            if icfg.arch.input_shape != data.shape || icfg.arch.num_classes != data.num_classes {
                bail!(
                    "data '{}' has shape {:?} and {} classes, the --init run's model expects {:?} and {}",
                    cfg.data,
                    data.shape,
                    data.num_classes,
                    icfg.arch.input_shape,
                    icfg.arch.num_classes
                );
            }
            icfg.arch.clone()
        }
        None => Arch::parse(&cfg.arch, data.shape, data.num_classes)?,
    };
    cfg.arch = arch.spec.clone();
    check_task(&cfg, &arch)?;
    if cfg.regime.has_denoisers()
        && cfg.denoiser_fit == crate::train::DenoiserFit::Gradient
        && cfg.denoiser_precondition == crate::train::Precondition::Whiten
    {
        if let Some(n) = arch.nodes.iter().find(|n| n.spec.is_depthwise()) {
            bail!(
                "--denoiser-precondition whiten: node '{}' of arch {} is a depthwise conv, whose \
                 denoiser is diagonal; whitening is not supported for it yet (use \
                 --denoiser-precondition none or --denoiser-fit closed-form)",
                n.name,
                arch.spec
            );
        }
    }

    tch::manual_seed(cfg.seed as i64);
    let mut model = match init {
        Some((_, m)) => {
            let mut fresh = Model::new(arch.clone(), m.normalization.clone(), req.device);
            let tensors: HashMap<String, Tensor> = m.backbone_tensors().into_iter().collect();
            fresh.load_backbone(&tensors, "--init")?;
            fresh
        }
        None => Model::new(
            arch.clone(),
            Normalization::from_split(&data.train, data.shape),
            req.device,
        ),
    };
    if let Some(file) = &cfg.import {
        let tensors = read_tensors(file).context("--import")?;
        crate::import::load_state_dict(&mut model, &tensors, &file.display().to_string())?;
    }
    if cfg.regime.has_denoisers() {
        model.add_denoisers(&cfg.denoise)?;
    }
    let run_cfg = run_config(&cfg, &data, &model, req.device)?;

    if req.force && !resume {
        for f in RUN_FILES {
            let p = out.join(f);
            if p.exists() {
                fs::remove_file(&p)
                    .with_context(|| format!("--force: removing {}", p.display()))?;
            }
        }
    }
    fs::create_dir_all(&out)
        .with_context(|| format!("--out {}: cannot create directory", out.display()))?;
    // A process killed mid-write leaves its temp file; the run directory has one writer (us).
    let stale = crate::atomic::remove_stale_temps(&out, &RUN_FILES)?;
    if stale > 0 {
        eprintln!(
            "removed {stale} temp file(s) of an interrupted write in {}",
            out.display()
        );
    }
    write_json(&out.join(CONFIG), &run_cfg)?;

    let mut trainer = Trainer::new(cfg.clone(), model, &data);
    trainer.progress = req.progress;
    let mut start_epoch = 0;
    let ckpt = out.join(CHECKPOINT);
    if resume && ckpt.exists() {
        start_epoch = trainer.restore(&read_tensors(&ckpt)?, &ckpt.display().to_string())?;
    }
    let abort_after: Option<usize> = std::env::var(ABORT_ENV).ok().and_then(|v| v.parse().ok());
    for epoch in start_epoch..cfg.epochs {
        let r = trainer.run_epoch(epoch)?;
        // Always, also when stderr is not a terminal (CI logs, pipes): progress stays visible.
        // Skipped epochs (the A epochs of `--schedule label-guided`) have no record.
        if let Some(r) = r {
            if let Some(mse) = r.test_mse {
                eprintln!(
                    "epoch {}/{} {:<15} loss {:.4} (mse {:.4}, noise {:.4}) test mse {:.4} {:.1}s",
                    r.epoch,
                    cfg.epochs,
                    r.phase,
                    r.train_loss,
                    r.ce_loss,
                    r.noise_loss,
                    mse,
                    r.seconds
                );
            } else {
                eprintln!(
                "epoch {}/{} {:<15} loss {:.4} (ce {:.4}, noise {:.4}) train {:.2}% test {:.2}% {:.1}s",
                r.epoch,
                cfg.epochs,
                r.phase,
                r.train_loss,
                r.ce_loss,
                r.noise_loss,
                100.0 * r.train_accuracy,
                100.0 * r.test_accuracy,
                r.seconds
            );
            }
            for line in crate::denoiser_fit::log_lines(&r.denoisers) {
                eprintln!("{line}");
            }
        }
        write_tensors(&out.join(MODEL), &trainer.model.tensors())?;
        write_tensors(&ckpt, &trainer.checkpoint_tensors()?)?;
        if abort_after == Some(epoch + 1) {
            bail!("aborted after epoch {} ({ABORT_ENV} test hook)", epoch + 1);
        }
    }
    write_tensors(&out.join(MODEL), &trainer.model.tensors())?;
    eprintln!(
        "{}",
        if arch.reconstructs() {
            "evaluating the fused model: reconstruction MSE, anomaly AUC, retrieval on the bottleneck, input-noise robustness"
        } else {
            "evaluating the fused model: test accuracy, retrieval, input-noise and corruption robustness"
        }
    );
    let metrics = final_metrics(
        &run_cfg,
        &trainer.model,
        &data,
        anomaly_test.as_ref(),
        trainer.curve.clone(),
        &[],
    )?;
    finish(&out, &run_cfg, &metrics)?;
    if ckpt.exists() {
        fs::remove_file(&ckpt).with_context(|| format!("removing {}", ckpt.display()))?;
    }
    Ok(TrainSummary {
        metrics,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The `config.json` of a run of `cfg` on `data` whose model is `model` (its arch,
/// normalization and denoisers' timesteps), on `device`, with this process's thread count.
fn run_config(
    cfg: &TrainConfig,
    data: &Dataset,
    model: &Model,
    device: Device,
) -> Result<RunConfig> {
    let schedule = Schedule::new(cfg.denoise.schedule)?;
    Ok(RunConfig {
        train: cfg.clone(),
        data: DataInfo {
            name: data.name.clone(),
            shape: data.shape,
            num_classes: data.num_classes,
            n_train: data.train.len(),
            n_test: data.test.len(),
            value_range: data.value_range,
        },
        normalization: model.normalization.clone(),
        arch: model.arch.clone(),
        timesteps: model
            .denoisers
            .iter()
            .map(|d| {
                let k = schedule.coeffs(d.t);
                LayerTimestep {
                    layer: d.layer,
                    t: d.t,
                    c1: k.c1,
                    c2: k.c2,
                    c3: k.c3,
                }
            })
            .collect(),
        device: device_name(device),
        threads: Some(tch::get_num_threads()),
        versions: versions(),
    })
}

/// Writes a complete run directory `out` for `model`, trained elsewhere (`denoiserep import`):
/// `config.json` (`cfg`: the data it is evaluated on, no epochs), `model.safetensors` and
/// `metrics.json` (the final evaluation on `data`, as `eval` computes it; no training curve).
/// All or nothing: the files are written into a temp folder beside `out`, which is renamed to
/// `out` at the end (removed on any error). `out` must not exist, or be an empty folder.
pub fn write_untrained_run(
    out: &Path,
    cfg: &TrainConfig,
    model: &Model,
    data: &Dataset,
    anomaly_test: Option<&Split>,
    device: Device,
) -> Result<Metrics> {
    check_new_run_dir(out)?;
    let run_cfg = run_config(cfg, data, model, device)?;
    let name = out
        .file_name()
        .with_context(|| format!("--out {}: names no folder", out.display()))?
        .to_string_lossy();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| {
        format!(
            "--out {}: cannot create {}",
            out.display(),
            parent.display()
        )
    })?;
    let tmp = parent.join(format!(".{name}.{}.tmp-run", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let written = write_run_files(&tmp, out, &run_cfg, model, data, anomaly_test);
    if written.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    written
}

/// The files of [`write_untrained_run`] into `tmp`, then `tmp` renamed to `out`.
fn write_run_files(
    tmp: &Path,
    out: &Path,
    run_cfg: &RunConfig,
    model: &Model,
    data: &Dataset,
    anomaly_test: Option<&Split>,
) -> Result<Metrics> {
    write_json(&tmp.join(CONFIG), run_cfg)?;
    write_tensors(&tmp.join(MODEL), &model.tensors())?;
    let metrics = final_metrics(run_cfg, model, data, anomaly_test, Vec::new(), &[])?;
    finish(tmp, run_cfg, &metrics)?;
    check_new_run_dir(out)?;
    if out.exists() {
        fs::remove_dir(out)
            .with_context(|| format!("--out {}: removing the empty folder", out.display()))?;
    }
    fs::rename(tmp, out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    Ok(metrics)
}

/// `out` does not exist or is an empty folder: a new run may be written there.
pub fn check_new_run_dir(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        bail!("--out {}: exists and is not a directory", out.display());
    }
    let mut entries =
        fs::read_dir(out).with_context(|| format!("--out {}: cannot list", out.display()))?;
    if entries.next().is_some() {
        bail!(
            "--out {}: exists and is not empty; choose a new run directory (nothing was written)",
            out.display()
        );
    }
    Ok(())
}

/// The flags that depend on whether `arch` classifies or reconstructs its input: a
/// reconstruction model (`--arch autoencoder`, trained with the MSE) uses no labels, so
/// `--labels` is refused; `--normal-classes` needs one.
fn check_task(cfg: &TrainConfig, arch: &Arch) -> Result<()> {
    if arch.reconstructs() {
        if let Some(n) = cfg.labels {
            bail!(
                "--labels {n}: --arch {} is trained on reconstruction (MSE against its input), \
                 which uses no labels; drop --labels",
                arch.spec
            );
        }
    } else {
        if arch.output_dim != arch.num_classes {
            bail!(
                "--arch {}: outputs {} values per sample, not {} class logits",
                arch.spec,
                arch.output_dim,
                arch.num_classes
            );
        }
        if let Some(c) = &cfg.normal_classes {
            bail!(
                "--normal-classes {}: the held-out-class anomaly setup needs a reconstruction \
                 model (--arch autoencoder), not --arch {}",
                eval::anomaly::format_classes(c),
                arch.spec
            );
        }
    }
    Ok(())
}

/// On `--resume`: without `--threads`, the run continues on the thread count it was started
/// with (conv backbones' bits depend on it, `docs/trainer.md` "Determinism"); with a different
/// `--threads`, it says that the bits may then differ from an uninterrupted run.
fn resume_threads(asked: Option<i32>, stored: Option<i32>) -> Result<()> {
    match (asked, stored) {
        (None, Some(t)) if t != tch::get_num_threads() => {
            crate::runtime::init_threads(Some(t))?;
        }
        (Some(n), Some(t)) if n != t => eprintln!(
            "denoiserep: warning: resuming with --threads {n}, the run started with {t}: \
             a conv backbone's weights may then differ in the last bits from an uninterrupted run"
        ),
        _ => {}
    }
    Ok(())
}

/// Checks a config's values before any training: each flag's own rule ([`crate::cli::rules`], the
/// functions the command line is parsed with: this catches `--resume` configs and library
/// callers), then the rules between flags (β range, t-stride, phases, regime needs).
pub fn validate(cfg: &TrainConfig) -> Result<()> {
    use crate::cli::rules::{self, flag};
    flag("--data", cfg.data.clone(), rules::data_spec)?;
    flag("--data-dir", cfg.data_dir.clone(), rules::path)?;
    flag("--test-fraction", cfg.test_fraction, rules::fraction)?;
    flag("--arch", cfg.arch.clone(), rules::arch_spec)?;
    flag("--epochs", cfg.epochs, rules::epochs)?;
    flag("--batch-size", cfg.batch_size, rules::batch_size)?;
    flag("--lr", cfg.lr, rules::lr)?;
    if let Some(lr) = cfg.denoiser_lr {
        flag("--denoiser-lr", lr, rules::lr)?;
    }
    flag("--lambda", cfg.lambda, rules::lambda)?;
    flag("--phase-epochs", cfg.phase_epochs, rules::epochs)?;
    let s = cfg.denoise.schedule;
    flag("--beta-start", s.beta_start, rules::fraction)?;
    flag("--beta-end", s.beta_end, rules::fraction)?;
    flag("--timesteps", s.timesteps, rules::timesteps)?;
    flag("--t-stride", cfg.denoise.t_stride, rules::t_stride)?;
    if let Some(file) = &cfg.import {
        flag("--import", file.clone(), rules::existing_file)?;
    }
    if s.beta_start > s.beta_end {
        bail!(
            "--beta-start {} is above --beta-end {}: the noise schedule must not decrease",
            s.beta_start,
            s.beta_end
        );
    }
    if let Some(list) = &cfg.denoise.t_list {
        let text: Vec<String> = list.iter().map(|t| t.to_string()).collect();
        rules::t_list(&text.join(","))
            .map_err(|why| anyhow::anyhow!("--t-list {}: {why}", text.join(",")))?;
        if let Some(&t) = list.iter().find(|&&t| t > s.timesteps) {
            bail!(
                "--t-list: timestep {t} is above --timesteps {}: past the end of the schedule",
                s.timesteps
            );
        }
    } else if cfg.regime.has_denoisers() && cfg.denoise.t_stride > s.timesteps {
        bail!(
            "--t-stride {} is above --timesteps {}: the first denoised layer's timestep would be past the schedule",
            cfg.denoise.t_stride,
            s.timesteps
        );
    }
    if cfg.schedule == EpochSchedule::LabelGuided {
        if !matches!(cfg.regime, Regime::Baseline | Regime::PenaltyControl) {
            bail!(
                "--schedule label-guided applies to --regime baseline or penalty-control (it trains them in label-guided's B epochs), not {}",
                cfg.regime.name()
            );
        }
        if cfg.epochs <= cfg.phase_epochs {
            bail!(
                "--schedule label-guided with --epochs {} and --phase-epochs {} has no backbone epoch (the first {} are phase A); use more epochs than --phase-epochs",
                cfg.epochs,
                cfg.phase_epochs,
                cfg.phase_epochs
            );
        }
    }
    if cfg.regime == Regime::LabelGuided && cfg.epochs <= cfg.phase_epochs {
        // Not an error (phase A alone is a valid, if odd, run), but worth saying.
        eprintln!(
            "denoiserep: warning: label-guided with --epochs {} and --phase-epochs {} never trains the backbone (phase A only)",
            cfg.epochs, cfg.phase_epochs
        );
    }
    if matches!(cfg.regime, Regime::LabelFree | Regime::PenaltyControl)
        && cfg.init.is_none()
        && cfg.import.is_none()
    {
        bail!(
            "--regime {} needs a trained backbone: pass --init RUN_DIR (a baseline run) or --import FILE.safetensors",
            cfg.regime.name()
        );
    }
    if cfg.init.is_some() && cfg.import.is_some() {
        bail!("--init and --import both give the backbone; pass only one");
    }
    Schedule::new(cfg.denoise.schedule)?;
    Ok(())
}

fn to_metrics(
    ev: &Evaluation,
    curve: Vec<eval::EpochRecord>,
    denoisers: Vec<eval::DenoiserDiag>,
) -> Metrics {
    Metrics {
        test_accuracy: ev.test_accuracy,
        retrieval_map: ev.retrieval.map,
        retrieval_rank1: ev.retrieval.rank1,
        noise_robustness: ev.noise_robustness.clone(),
        corruptions: ev.corruptions.clone(),
        curve,
        denoisers,
        feature_noise: Vec::new(),
        reconstruction: None,
    }
}

/// Feature-noise levels every final evaluation measures (`metrics.json` `feature_noise`, the
/// positive control that `compare` reports): the same `s` at every weighted layer's input.
pub const FEATURE_NOISE_LEVELS: [f64; 2] = [0.5, 1.0];

/// The metrics of a final model: evaluation, denoiser diagnostics and the feature-noise points
/// at [`FEATURE_NOISE_LEVELS`] followed by `extra_levels` (`eval --feature-noise`; `None` = the
/// per-layer default), level `i` seeded with `mix(seed, 6·2³² + i)`. A reconstruction model
/// also gets `reconstruction` ([`evaluate::evaluate_reconstruction`]; the anomaly part on
/// `anomaly_test`, the whole test split, when the run has `--normal-classes`).
fn final_metrics(
    cfg: &RunConfig,
    model: &Model,
    data: &Dataset,
    anomaly_test: Option<&Split>,
    curve: Vec<eval::EpochRecord>,
    extra_levels: &[Option<f64>],
) -> Result<Metrics> {
    let seed = cfg.train.seed;
    let ev = evaluate::evaluate(model, data, seed)?;
    let diags = final_diagnostics(model, data, seed)?;
    let mut metrics = to_metrics(&ev, curve, diags);
    if model.arch.reconstructs() {
        let anomaly = match (anomaly_test, &cfg.train.normal_classes) {
            (Some(t), Some(c)) => Some((t, c.as_slice())),
            _ => None,
        };
        metrics.reconstruction = Some(evaluate::evaluate_reconstruction(
            model, data, anomaly, seed,
        )?);
    }
    let mut wanted: Vec<Option<f64>> = FEATURE_NOISE_LEVELS.iter().map(|&s| Some(s)).collect();
    for l in extra_levels {
        if !wanted.contains(l) {
            wanted.push(*l);
        }
    }
    let levels = feature_noise_levels(cfg, model, &wanted)?;
    let gallery = evaluate::gallery(model, data);
    for (i, (s, per_layer)) in levels.into_iter().enumerate() {
        let seed = crate::rng::mix(seed, (6 << 32) + i as u64);
        metrics.feature_noise.push(evaluate::feature_noise(
            model, data, &gallery, s, per_layer, seed,
        )?);
    }
    Ok(metrics)
}

/// The denoiser diagnostics of a final model on the train split (`metrics.json` `denoisers`),
/// noise seeded from the run's seed; `[]` without denoisers.
fn final_diagnostics(model: &Model, data: &Dataset, seed: u64) -> Result<Vec<eval::DenoiserDiag>> {
    if model.denoisers.is_empty() {
        return Ok(Vec::new());
    }
    let x = evaluate::to_tensor(
        &data.train.x,
        data.shape,
        &model.normalization,
        model.device,
    );
    crate::denoiser_fit::diagnose(model, &x, crate::rng::mix(seed, 4 << 32) as i64)
}

/// Plots, then `metrics.json` last (atomically): the run becomes complete.
fn finish(out: &Path, cfg: &RunConfig, metrics: &Metrics) -> Result<()> {
    let title = format!(
        "{} {} on {}",
        cfg.train.regime.name(),
        cfg.arch.spec,
        cfg.data.name
    );
    if !metrics.curve.is_empty() {
        eval::plots::training_curves(&out.join(CURVES_PNG), &title, &metrics.curve)?;
    }
    // A reconstruction model has no accuracy-under-noise points (its noise numbers are in
    // `reconstruction.noise`): no robustness plot.
    if !metrics.noise_robustness.is_empty() || !metrics.corruptions.is_empty() {
        eval::plots::robustness_all(
            &out.join(ROBUSTNESS_PNG),
            &title,
            &[eval::plots::RobustnessSeries {
                name: cfg.train.regime.name().to_string(),
                noise: metrics.noise_robustness.clone(),
                corruptions: metrics.corruptions.clone(),
            }],
        )?;
    }
    write_json(&out.join(METRICS), metrics)
}

/// `denoiserep eval`: re-evaluates a saved run (fused model) and rewrites its `metrics.json`,
/// keeping the training curve. `data` overrides the run's data spec. Each `feature_noise` entry
/// (`Some(s)`, or `None` for the per-layer default) adds a feature-noise point.
pub fn eval_run(
    dir: &Path,
    data_spec: Option<&str>,
    device: Device,
    feature_noise: &[Option<f64>],
) -> Result<Metrics> {
    let (cfg, model) = load_run_model(dir, device)?;
    let mut tcfg = cfg.train.clone();
    if let Some(spec) = data_spec {
        tcfg.data = spec.to_string();
    }
    let (data, anomaly_test) = load_run_data(&tcfg)?;
    if data.shape != cfg.arch.input_shape || data.num_classes != cfg.arch.num_classes {
        bail!(
            "data '{}' has shape {:?} and {} classes, run {} expects {:?} and {}",
            tcfg.data,
            data.shape,
            data.num_classes,
            dir.display(),
            cfg.arch.input_shape,
            cfg.arch.num_classes
        );
    }
    let old: Option<Metrics> = match dir.join(METRICS) {
        p if p.exists() => Some(read_json(&p)?),
        _ => None,
    };
    let curve = old.map(|m| m.curve).unwrap_or_default();
    let metrics = final_metrics(
        &cfg,
        &model,
        &data,
        anomaly_test.as_ref(),
        curve,
        feature_noise,
    )?;
    finish(dir, &cfg, &metrics)?;
    Ok(metrics)
}

/// The per-layer standard deviations of each `--feature-noise` level: `s` at every weighted layer,
/// or (`None`) `√((1 − ᾱ_t)/ᾱ_t)` at each layer's timestep — the run's denoisers', or for a run
/// without denoisers the ones its denoiser settings would give (`--t-stride`/`--t-list`, betas).
#[allow(clippy::type_complexity)]
fn feature_noise_levels(
    cfg: &RunConfig,
    model: &Model,
    levels: &[Option<f64>],
) -> Result<Vec<(Option<f64>, Vec<(usize, f64)>)>> {
    let layers = model.arch.weighted_layers();
    let spec = &cfg.train.denoise;
    let schedule = Schedule::new(spec.schedule)?;
    let ts = match &spec.t_list {
        Some(list) => {
            crate::schedule::listed_timesteps(list, layers.len(), spec.schedule.timesteps)?
        }
        None => {
            crate::schedule::layer_timesteps(layers.len(), spec.t_stride, spec.schedule.timesteps)?
        }
    };
    Ok(levels
        .iter()
        .map(|&level| {
            let per_layer = layers
                .iter()
                .zip(&ts)
                .map(|(&k, &t)| {
                    let ab = schedule.alpha_bar[t - 1];
                    (k, level.unwrap_or(((1.0 - ab) / ab).sqrt()))
                })
                .collect();
            (level, per_layer)
        })
        .collect())
}

/// The headline numbers of a run's metrics, as `train` and `eval` print them: test accuracy and
/// retrieval; for a reconstruction model the test MSE, the anomaly AUC with the MSE of normal and
/// anomalous samples, and retrieval on the bottleneck (never an accuracy).
pub fn summary(m: &Metrics) -> String {
    let retrieval = format!(
        "retrieval mAP {:.2}% Rank-1 {:.2}%",
        100.0 * m.retrieval_map,
        100.0 * m.retrieval_rank1
    );
    let Some(r) = &m.reconstruction else {
        return format!("test accuracy {:.2}%, {retrieval}", 100.0 * m.test_accuracy);
    };
    let anomaly = match &r.anomaly {
        Some(a) => format!(
            "anomaly ROC AUC {:.4} (normal classes {}: {} normal, {} anomalous test samples; \
             MSE normal {:.4}, anomalous {:.4}), ",
            a.auc,
            eval::anomaly::format_classes(&a.normal_classes),
            a.n_normal,
            a.n_anomalous,
            a.mse_normal,
            a.mse_anomalous
        ),
        None => "no anomaly AUC (no --normal-classes), ".to_string(),
    };
    format!(
        "test reconstruction MSE {:.4}, {anomaly}bottleneck {retrieval}",
        r.test_mse
    )
}

fn versions() -> Versions {
    Versions {
        denoiserep: env!("CARGO_PKG_VERSION").into(),
        tch: "0.24".into(),
        libtorch: "2.11.0".into(),
    }
}
