//! `denoiserep import MODEL --out RUN_DIR`: a model trained elsewhere (PyTorch) becomes a run
//! directory, unchanged, that `eval`, `export` and `train --init RUN_DIR` (DenoiseRep training
//! on top of it) accept like any run `train` wrote.
//!
//! The file's extension picks the reader ([`Source::of`]):
//!
//! * `.tflite`: an int8 TensorFlow Lite model becomes a core model file (`--out MODEL.dnrp`),
//!   not a run: [`crate::interop::import_file`] (tch-free; the fuzz crate runs it);
//! * `.onnx` ([`onnx`]): `torch.onnx.export` output; the arch spec, input shape and class count
//!   come from the graph, the weights from its initializers, the input normalization from a
//!   leading `Sub`/`Div` when the graph has one;
//! * `.safetensors` ([`state_dict`]): `safetensors.torch.save_file(model.state_dict(), …)`;
//!   `--arch` gives the spec, the data set the input shape and class count (as for `train`),
//!   the same loader as `train --import` the weights.
//!
//! Either way `--data` names the data set the run is evaluated on (and that `train --init`,
//! `eval` and int8 calibration use); the run's `metrics.json` is that evaluation. The input
//! normalization `x' = (x − mean[c]) / std[c]` is the file's own (the graph's `Sub`/`Div`, or a
//! state dict's `normalization.mean`/`normalization.std`), else `--mean`/`--std`, else mean 0 and
//! std 1 (the model sees the raw samples, as it did in PyTorch); a file's own and the flags
//! together are refused.

pub mod onnx;
pub mod state_dict;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::Device;

pub use state_dict::load_state_dict;

use crate::arch::Arch;
use crate::data::Normalization;
use crate::eval::Metrics;
use crate::model::{DenoiseSpec, Model};
use crate::run;
use crate::schedule::ScheduleSpec;
use crate::train::{LrSchedule, Regime, TrainConfig};

/// The reader a model file's extension selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `.tflite`: an int8 TFLite model → a core model file ([`crate::interop`]).
    Tflite,
    /// `.onnx`: a graph with its weights ([`onnx`]).
    Onnx,
    /// `.safetensors`: a PyTorch `state_dict` ([`state_dict`]); needs `--arch`.
    StateDict,
}

/// The extensions [`Source::of`] knows, as errors list them.
pub const EXTENSIONS: &str = ".tflite (an int8 TensorFlow Lite model → a model file), .onnx \
     (torch.onnx.export → a run) or .safetensors (a state_dict, with --arch → a run)";

impl Source {
    /// The reader of `path`, by its extension (case-insensitive).
    pub fn of(path: &Path) -> Result<Source> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        Ok(match ext.as_str() {
            "tflite" => Source::Tflite,
            "onnx" => Source::Onnx,
            "safetensors" => Source::StateDict,
            _ => bail!(
                "{}: unsupported model file extension '{ext}'; supported: {EXTENSIONS}",
                path.display()
            ),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Source::Tflite => "TFLite",
            Source::Onnx => "ONNX",
            Source::StateDict => "state_dict",
        }
    }
}

/// What `denoiserep import` does (see the module doc).
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub model: PathBuf,
    /// `--arch`: required for a state dict; for ONNX, checked against the inferred spec.
    pub arch: Option<String>,
    pub out: PathBuf,
    pub data: String,
    pub test_fraction: f64,
    pub data_dir: PathBuf,
    /// Seed of the evaluation's noise and of the split of sources without a fixed one.
    pub seed: u64,
    /// `--mean`, `--std`: one value for every channel, or one per channel.
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
    pub device: Device,
}

/// What `denoiserep import` reports.
#[derive(Debug, Clone)]
pub struct ImportOutcome {
    pub source: Source,
    pub arch: Arch,
    /// Where the input normalization came from: `file`, `--mean/--std` or `identity`.
    pub normalization: &'static str,
    pub metrics: Metrics,
}

impl ImportOutcome {
    /// The one line `denoiserep import` prints.
    pub fn summary(&self, req: &ImportRequest) -> String {
        format!(
            "{}: {} {} imported as {} on {:?} inputs, {} classes, {} parameters (normalization: \
             {}); {}",
            req.out.display(),
            self.source.name(),
            req.model.display(),
            self.arch.spec,
            self.arch.input_shape,
            self.arch.num_classes,
            self.arch.param_counts().trainable,
            self.normalization,
            run::summary(&self.metrics)
        )
    }
}

/// `denoiserep import` (see the module doc). Nothing is written unless everything succeeds.
pub fn import(req: &ImportRequest) -> Result<ImportOutcome> {
    let source = Source::of(&req.model)?;
    if !req.model.is_file() {
        bail!("{}: no such file", req.model.display());
    }
    run::check_new_run_dir(&req.out)?;
    let mut cfg = train_config(req)?;
    let (data, anomaly_test) = run::load_run_data(&cfg)?;
    let (model, normalization) = match source {
        Source::Onnx => from_onnx(req)?,
        Source::StateDict => from_state_dict(req, data.shape, data.num_classes)?,
        Source::Tflite => bail!(
            "{}: a .tflite model becomes a model file, not a run (a bug: the caller picks)",
            req.model.display()
        ),
    };
    let arch = model.arch.clone();
    if arch.input_shape != data.shape || arch.num_classes != data.num_classes {
        bail!(
            "{}: the model takes {:?} inputs and gives {} classes; data '{}' has {:?} and {}",
            req.model.display(),
            arch.input_shape,
            arch.num_classes,
            req.data,
            data.shape,
            data.num_classes
        );
    }
    cfg.arch = arch.spec.clone();
    let metrics = run::write_untrained_run(
        &req.out,
        &cfg,
        &model,
        &data,
        anomaly_test.as_ref(),
        req.device,
    )?;
    Ok(ImportOutcome {
        source,
        arch,
        normalization,
        metrics,
    })
}

/// The run's `train` settings: the data, no epochs (lr 0), the default denoiser settings that
/// `train --init RUN_DIR` and `eval --feature-noise` read; `import` records the file.
fn train_config(req: &ImportRequest) -> Result<TrainConfig> {
    let model = std::path::absolute(&req.model)
        .with_context(|| format!("{}: cannot make the path absolute", req.model.display()))?;
    Ok(TrainConfig {
        data: req.data.clone(),
        test_fraction: req.test_fraction,
        data_dir: req.data_dir.clone(),
        arch: req.arch.clone().unwrap_or_default(),
        regime: Regime::Baseline,
        epochs: 0,
        batch_size: 32,
        labels: None,
        lr: 0.0,
        lr_schedule: LrSchedule::Constant,
        lambda: 0.0,
        phase_epochs: 0,
        schedule: Default::default(),
        denoise: DenoiseSpec {
            schedule: ScheduleSpec::default(),
            t_stride: 1,
            t_list: None,
            fuse_noise: None,
        },
        denoiser_fit: Default::default(),
        denoiser_lr: None,
        denoiser_precondition: Default::default(),
        noise_grad: false,
        seed: req.seed,
        data_seed: req.seed,
        init: None,
        import: Some(model),
        normal_classes: None,
        augment: Default::default(),
        weight_decay: 0.0,
    })
}

/// `--mean`/`--std` for `channels` channels (a single value is broadcast); `None` without both.
fn flag_normalization(req: &ImportRequest, channels: usize) -> Result<Option<Normalization>> {
    let expand = |flag: &str, v: &[f32]| -> Result<Vec<f32>> {
        match v.len() {
            1 => Ok(vec![v[0]; channels]),
            n if n == channels => Ok(v.to_vec()),
            n => bail!("{flag}: {n} values for {channels} input channels (give 1 or {channels})"),
        }
    };
    let norm = Normalization {
        mean: match &req.mean {
            Some(m) => expand("--mean", m)?,
            None => vec![0.0; channels],
        },
        std: match &req.std {
            Some(s) => expand("--std", s)?,
            None => vec![1.0; channels],
        },
    };
    if norm.std.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
        bail!("--std: every value must be positive");
    }
    Ok((req.mean.is_some() || req.std.is_some()).then_some(norm))
}

/// The normalization of a file that may have its own (`own`) and the flags' (see the module
/// doc); errors when both are given.
fn pick_normalization(
    req: &ImportRequest,
    own: Option<Normalization>,
    channels: usize,
    what_own: &str,
) -> Result<(Normalization, &'static str)> {
    let flags = flag_normalization(req, channels)?;
    Ok(match (own, flags) {
        (Some(_), Some(_)) => bail!(
            "{}: {what_own}; drop --mean/--std (they would normalize twice)",
            req.model.display()
        ),
        (Some(n), None) => (n, "file"),
        (None, Some(n)) => (n, "--mean/--std"),
        (None, None) => (
            Normalization {
                mean: vec![0.0; channels],
                std: vec![1.0; channels],
            },
            "identity",
        ),
    })
}

fn from_onnx(req: &ImportRequest) -> Result<(Model, &'static str)> {
    let mut imported = onnx::read(&req.model, req.device)?;
    let arch = imported.model.arch.clone();
    if let Some(spec) = &req.arch {
        let asked = Arch::parse(spec, arch.input_shape, arch.num_classes)
            .with_context(|| format!("--arch {spec}"))?;
        if asked.spec != arch.spec {
            bail!(
                "--arch {}: the graph of {} is arch {}",
                asked.spec,
                req.model.display(),
                arch.spec
            );
        }
    }
    let (norm, from) = pick_normalization(
        req,
        imported.normalization.take(),
        arch.input_shape[0],
        "the graph normalizes its input itself (a leading Sub/Div)",
    )?;
    imported.model.normalization = norm;
    Ok((imported.model, from))
}

fn from_state_dict(
    req: &ImportRequest,
    shape: [usize; 3],
    classes: usize,
) -> Result<(Model, &'static str)> {
    let Some(spec) = &req.arch else {
        bail!(
            "{}: a state_dict does not say its architecture; pass --arch (mlp:H1,…, cnn:C1,…/H1,…, \
             resnet8[:F], ds-cnn, mobilenet-v1[:ALPHA[,relu6]], autoencoder, vit:…)",
            req.model.display()
        );
    };
    let arch = Arch::parse(spec, shape, classes).with_context(|| format!("--arch {spec}"))?;
    let tensors = run::read_tensors(&req.model)?;
    let source = req.model.display().to_string();
    let denoisers = state_dict::denoiser_names(&tensors);
    if let Some(first) = denoisers.first() {
        bail!(
            "{source}: holds DenoiseRep denoisers ({first}, …: a trainer run's model file); \
             import takes a plain backbone; use that run directly (train --init, export)"
        );
    }
    let identity = Normalization {
        mean: vec![0.0; shape[0]],
        std: vec![1.0; shape[0]],
    };
    let mut model = Model::new(arch, identity, req.device);
    let own = load_state_dict(&mut model, &tensors, &source)?;
    let (norm, from) = pick_normalization(
        req,
        own,
        shape[0],
        "the state_dict holds normalization.mean/std",
    )?;
    model.normalization = norm;
    Ok((model, from))
}
