//! `denoiserep export`: a trained run → one model file for the device (`docs/export.md`).
//!
//! * [`fused`]: the fused model (denoisers folded into the weights) as plain `f32` arrays;
//! * [`lower`]: the fused trainer graph → the core's graph (activations fused, shapes inferred);
//! * [`float`]: f32 export; [`calibrate`] + [`int8`]: int8 post-training quantization;
//! * [`file`]: owned model buffers, encoded and validated by the core;
//! * [`onnx`]: the fused f32 model as an ONNX graph (`--format onnx`);
//! * [`tflite`]: the lowered graph as a TFLite flatbuffer, f32 or int8 with the int8 export's own
//!   quantization (`--format tflite`);
//! * [`accuracy`]: the exported f32 and int8 models' test top-1 through the core (`compare`);
//! * [`footprint`]: parameters, MACs, file and arena bytes, read back from the core model;
//! * [`export`]: the command: both the model and its baseline (the backbone without denoisers)
//!   are exported the same way, the model file and `<name>.json` are written atomically.

pub mod accuracy;
pub mod calibrate;
pub mod file;
pub mod float;
pub mod footprint;
pub mod fused;
pub mod int8;
pub mod lower;
pub mod onnx;
pub mod tflite;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use denoiserep_core::{Model, QuantParams};
use serde::{Deserialize, Serialize};
use tch::Device;

pub use calibrate::{calibrate, RangeMethod, Ranges};
pub use file::ModelFile;
pub use float::{graph_f32, to_f32};
pub use footprint::{footprint, Footprint};
pub use fused::{FusedLayer, FusedModel, FusedNode};
pub use int8::{to_int8, to_int8_planned, Int8Plan};
pub use lower::{lower, CoreGraph, CoreNode, CoreOp};
pub use onnx::to_onnx;
pub use tflite::{to_tflite, to_tflite_int8, to_tflite_int8_float_io};

use crate::cli::rules;
use crate::data::Split;
use crate::rng::Rng;
use crate::run::{self, write_atomic};

/// Default number of calibration samples (`--calib`).
pub const DEFAULT_CALIB: usize = 1000;

/// Numeric precision of an exported model (`--precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportPrecision {
    /// 32-bit float weights and activations.
    F32,
    /// int8 weights (per output channel) and activations (per tensor), TFLite-Micro arithmetic.
    Int8,
}

/// File format of an export (`--format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// The core's model format (`docs/model-format.md`), f32 or int8: what the device runs.
    #[default]
    Dnrp,
    /// ONNX (opset 13) of the fused f32 model, for other runtimes (`docs/export.md`, "ONNX").
    Onnx,
    /// TFLite flatbuffer (schema v3), f32 or int8 with the core's int8 quantization, NHWC, for
    /// TFLite / TFLite-Micro (`docs/export.md`, "TFLite").
    Tflite,
}

/// How an int8 model was calibrated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Training samples run through the float model.
    pub samples: usize,
    /// `min-max` or `percentile`.
    pub method: String,
    pub percentile: Option<f64>,
    /// Seed of the random choice of samples from the train split.
    pub seed: u64,
}

/// Parameters, MACs and bytes of one exported op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerReport {
    pub index: usize,
    /// Core op, e.g. `conv2d`.
    pub kind: String,
    /// The trainer layers it computes, e.g. `3 Linear(256→128) + ReLU`.
    pub source: String,
    /// Its inputs' and output's tensor ids.
    #[serde(default)]
    pub inputs: Vec<u16>,
    #[serde(default)]
    pub output: u16,
    /// e.g. `16×32×32` or `10`.
    pub output_shape: String,
    pub parameters: u64,
    pub macs: u64,
    /// int8: the quantization of the layer's output.
    pub output_quant: Option<QuantParams>,
}

/// Difference model − baseline (DenoiseRep's cost after fusion: zero everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overhead {
    pub parameters: i64,
    pub macs: i64,
    pub file_bytes: i64,
    pub arena_bytes: i64,
}

impl Overhead {
    fn between(model: &Footprint, baseline: &Footprint) -> Self {
        let d = |a: u64, b: u64| a as i64 - b as i64;
        Self {
            parameters: d(model.parameters, baseline.parameters),
            macs: d(model.macs, baseline.macs),
            file_bytes: d(model.file_bytes, baseline.file_bytes),
            arena_bytes: d(model.arena_bytes, baseline.arena_bytes),
        }
    }
}

/// `<model>.json`, written beside the model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportReport {
    /// Model file name.
    pub model: String,
    pub precision: ExportPrecision,
    /// File format (`dnrp` in reports written before ONNX export existed).
    #[serde(default)]
    pub format: ExportFormat,
    /// Run directory it was exported from.
    pub run: String,
    pub arch: String,
    pub regime: String,
    pub input_shape: [usize; 3],
    pub num_classes: usize,
    /// Core tensor that is the embedding, and its width.
    #[serde(alias = "embedding_layer")]
    pub embedding_tensor: usize,
    pub embedding_dim: usize,
    #[serde(flatten)]
    pub footprint: Footprint,
    /// The same run's backbone without its denoisers, exported the same way.
    pub baseline: Footprint,
    /// Model − baseline.
    pub denoiserep_overhead: Overhead,
    /// int8: quantization of the normalized input.
    pub input_quant: Option<QuantParams>,
    /// The input normalization `(x − mean[c]) / std[c]` (part of a dnrp model; a TFLite or
    /// ONNX model expects normalized inputs).
    #[serde(default)]
    pub input_mean: Vec<f32>,
    #[serde(default)]
    pub input_std: Vec<f32>,
    pub calibration: Option<Calibration>,
    pub layers: Vec<LayerReport>,
}

/// What `denoiserep export` was asked to do.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub run: PathBuf,
    pub precision: ExportPrecision,
    pub format: ExportFormat,
    pub out: PathBuf,
    /// Calibration samples (int8).
    pub calib: usize,
    /// `--calib-percentile P` (int8); min/max when `None`.
    pub calib_percentile: Option<f64>,
    /// Seed of the choice of calibration samples.
    pub calib_seed: u64,
    /// `--tflite-io float`: an int8 `.tflite` with QUANTIZE / DEQUANTIZE at its edges.
    pub tflite_float_io: bool,
    pub progress: bool,
}

/// The result of an export.
#[derive(Debug, Clone)]
pub struct ExportOutcome {
    pub report: ExportReport,
    /// Where the report was written.
    pub json: PathBuf,
    /// Things the user should know (an unfinished run, fewer calibration samples than asked).
    pub warnings: Vec<String>,
}

/// `model.dnrp` → `model.json` (same folder, same stem).
pub fn report_path(out: &Path) -> Result<PathBuf> {
    let json = out.with_extension("json");
    if json == out {
        bail!(
            "--out {}: the model file must not end in .json (the report {} goes beside it)",
            out.display(),
            json.display()
        );
    }
    Ok(json)
}

/// `denoiserep export`: loads the run, fuses, converts (and for int8 calibrates on the run's
/// train split), validates with the core, then writes the model file and its report atomically.
/// Nothing is written when any step fails.
///
/// `--format tflite` (f32 or int8) writes the same lowered graph (int8: the same quantization)
/// as a TFLite flatbuffer ([`tflite`]); the report's figures are the core model's except
/// `file_bytes`, as for ONNX.
///
/// `--format onnx` (f32 only) writes the same fused f32 model as an ONNX graph ([`onnx`]); the
/// core model of the same weights is still built and validated, and the report's figures are
/// the core model's except `file_bytes` (the ONNX file's length, baseline likewise).
pub fn export(req: &ExportRequest) -> Result<ExportOutcome> {
    if req.tflite_float_io
        && (req.format != ExportFormat::Tflite || req.precision != ExportPrecision::Int8)
    {
        bail!(
            "--tflite-io float: only with --format tflite --precision int8 (it puts QUANTIZE and \
             DEQUANTIZE around an int8 model; an f32 .tflite takes float already)"
        );
    }
    if req.format == ExportFormat::Onnx && req.precision != ExportPrecision::F32 {
        bail!(
            "--format onnx writes f32 models only (got --precision int8); int8 models are \
             exported in the core's format (--format dnrp)"
        );
    }
    // The command line was checked while parsing; a library caller's request is checked here
    // by the same rules, before anything is read.
    rules::flag("--out", req.out.clone(), rules::out_file)?;
    let json = report_path(&req.out)?;
    let method = RangeMethod::from_percentile(req.calib_percentile)?;
    rules::flag("--calib", req.calib, rules::at_least_one)?;
    let mut warnings = Vec::new();
    run::read_config(&req.run).with_context(|| format!("--run {}", req.run.display()))?;
    if !req.run.join(run::MODEL).is_file() {
        bail!(
            "--run {}: no {} (the run has not finished an epoch; nothing to export)",
            req.run.display(),
            run::MODEL
        );
    }
    if !req.run.join(run::METRICS).is_file() {
        warnings.push(format!(
            "run {} is unfinished (no {}); exporting its last saved epoch",
            req.run.display(),
            run::METRICS
        ));
    }
    let (cfg, model) = run::load_run_model(&req.run, Device::Cpu)
        .with_context(|| format!("--run {}", req.run.display()))?;
    let fused = model.fused()?;
    let plain = model.plain()?;

    let tflite = req.format == ExportFormat::Tflite;
    // `--format tflite`: the model and its baseline as TFLite, from the same lowered graphs
    // (and int8 quantization) as the core files.
    let mut tflite_files = None;
    let (file, base, calibration) = match req.precision {
        ExportPrecision::F32 => {
            let (g, gb) = (lower(&fused)?, lower(&plain)?);
            if tflite {
                tflite_files = Some((
                    to_tflite(&g, tflite::Numbers::F32)?,
                    to_tflite(&gb, tflite::Numbers::F32)
                        .context("exporting the baseline (no denoisers)")?,
                ));
            }
            (graph_f32(&g)?, graph_f32(&gb)?, None)
        }
        ExportPrecision::Int8 => {
            let data = run::load_data(&cfg.train)
                .with_context(|| format!("calibration data of run {}", req.run.display()))?;
            if data.shape != cfg.arch.input_shape {
                bail!(
                    "calibration data '{}' has shape {:?}, run {} expects {:?}",
                    cfg.train.data,
                    data.shape,
                    req.run.display(),
                    cfg.arch.input_shape
                );
            }
            if data.train.len() < req.calib {
                warnings.push(format!(
                    "--calib {}: the train split has only {} samples; calibrating on all of them",
                    req.calib,
                    data.train.len()
                ));
            }
            let samples = calibration_samples(&data.train, req.calib, req.calib_seed);
            let n = samples.len() / data.sample_len().max(1);
            let (g, plan) = quantize_plan(&fused, &samples, method, req.progress)?;
            let (gb, plan_b) = quantize_plan(&plain, &samples, method, false)
                .context("exporting the baseline (no denoisers)")?;
            if tflite {
                let write = if req.tflite_float_io {
                    to_tflite_int8_float_io
                } else {
                    to_tflite_int8
                };
                tflite_files = Some((
                    write(&g, &plan)?,
                    write(&gb, &plan_b).context("exporting the baseline (no denoisers)")?,
                ));
            }
            let file = to_int8_planned(&g, &plan)?;
            let base =
                to_int8_planned(&gb, &plan_b).context("exporting the baseline (no denoisers)")?;
            let calibration = Calibration {
                samples: n,
                method: match method {
                    RangeMethod::MinMax => "min-max".into(),
                    RangeMethod::Percentile(_) => "percentile".into(),
                },
                percentile: req.calib_percentile,
                seed: req.calib_seed,
            };
            (file, base, Some(calibration))
        }
    };
    let bytes = file.encode()?;
    let base_bytes = base
        .encode()
        .context("exporting the baseline (no denoisers)")?;
    let mut report = report(req, &cfg, &file, &bytes, &base_bytes, calibration)?;
    report.input_mean = model.normalization.mean.clone();
    report.input_std = model.normalization.std.clone();
    let written = match req.format {
        ExportFormat::Dnrp => bytes,
        ExportFormat::Onnx => {
            let onnx = to_onnx(&fused)?;
            let base_onnx = to_onnx(&plain).context("exporting the baseline (no denoisers)")?;
            report.footprint.file_bytes = onnx.len() as u64;
            report.baseline.file_bytes = base_onnx.len() as u64;
            report.denoiserep_overhead = Overhead::between(&report.footprint, &report.baseline);
            onnx
        }
        ExportFormat::Tflite => {
            let (model, base) = tflite_files
                .ok_or_else(|| anyhow::anyhow!("--format tflite: no TFLite model built (a bug)"))?;
            report.footprint.file_bytes = model.len() as u64;
            report.baseline.file_bytes = base.len() as u64;
            report.denoiserep_overhead = Overhead::between(&report.footprint, &report.baseline);
            model
        }
    };

    write_atomic(&req.out, &written)?;
    let mut text = serde_json::to_vec_pretty(&report)?;
    text.push(b'\n');
    write_atomic(&json, &text)?;
    Ok(ExportOutcome {
        report,
        json,
        warnings,
    })
}

/// The int8 model file of `model`: lowered, its activation ranges calibrated on `samples` (raw,
/// `n × C·H·W`) by `method`, quantized.
pub fn quantize(
    model: &FusedModel,
    samples: &[f32],
    method: RangeMethod,
    progress: bool,
) -> Result<ModelFile> {
    let (graph, plan) = quantize_plan(model, samples, method, progress)?;
    to_int8_planned(&graph, &plan)
}

/// The lowered graph of `model` and its int8 quantization (calibrated on `samples` by
/// `method`): what both the core's int8 file ([`to_int8_planned`]) and the int8 TFLite file
/// ([`to_tflite_int8`]) are written from.
pub fn quantize_plan(
    model: &FusedModel,
    samples: &[f32],
    method: RangeMethod,
    progress: bool,
) -> Result<(CoreGraph, Int8Plan)> {
    let graph = lower(model)?;
    let ranges = calibrate(&graph, samples, method, progress)?;
    let plan = Int8Plan::new(&graph, &ranges)?;
    Ok((graph, plan))
}

/// `n` samples of `split` (all when it has fewer), chosen by a seeded permutation.
pub fn calibration_samples(split: &Split, n: usize, seed: u64) -> Vec<f32> {
    let mut out = Vec::new();
    for &i in Rng::new(seed).permutation(split.len()).iter().take(n) {
        out.extend_from_slice(split.sample(i as usize));
    }
    out
}

fn report(
    req: &ExportRequest,
    cfg: &run::RunConfig,
    file: &ModelFile,
    bytes: &[u8],
    base_bytes: &[u8],
    calibration: Option<Calibration>,
) -> Result<ExportReport> {
    let model = Model::from_bytes(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let fp = footprint(bytes)?;
    let base = footprint(base_bytes)?;
    let layers = model
        .nodes()
        .zip(&file.nodes)
        .enumerate()
        .map(|(index, (node, owned))| {
            let node = node.map_err(|e| anyhow::anyhow!("{e}"))?;
            let (parameters, macs) = footprint::op_cost(&model, &node);
            let output = model.tensor(node.output);
            Ok(LayerReport {
                index,
                kind: node.op.kind().to_string(),
                source: owned.source.clone(),
                inputs: node.inputs.ids().to_vec(),
                output: node.output,
                output_shape: output.map(|t| t.shape.to_string()).unwrap_or_default(),
                parameters,
                macs,
                output_quant: match output.map(|t| t.dtype) {
                    Some(denoiserep_core::DType::I8(q)) => Some(q),
                    _ => None,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let input_quant = match model.input_info().dtype {
        denoiserep_core::DType::I8(q) => Some(q),
        denoiserep_core::DType::F32 => None,
    };
    Ok(ExportReport {
        model: req
            .out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        precision: req.precision,
        format: req.format,
        run: req.run.display().to_string(),
        arch: cfg.arch.spec.clone(),
        regime: cfg.train.regime.name().to_string(),
        input_shape: cfg.arch.input_shape,
        num_classes: cfg.arch.num_classes,
        embedding_tensor: usize::from(model.info().embedding),
        embedding_dim: cfg.arch.embedding_dim,
        footprint: fp,
        baseline: base,
        denoiserep_overhead: Overhead::between(&fp, &base),
        input_quant,
        input_mean: Vec::new(),
        input_std: Vec::new(),
        calibration,
        layers,
    })
}
