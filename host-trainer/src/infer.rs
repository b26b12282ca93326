//! `denoiserep infer`: runs a model file through `denoiserep-core` (the code the device runs; no
//! other implementation of the layers is involved) over a data set.
//!
//! * top-1 accuracy of the logits on the test split (int8 logits dequantized);
//! * retrieval mAP / Rank-1 of the embedding (queries = test split, gallery = train split,
//!   cosine similarity; int8 embeddings dequantized), as `denoiserep eval`;
//! * `--dump FILE`: every test sample's logits and embedding exactly as the core produced them
//!   (`docs/dump-format.md`, written with the core's own `samples` encoder);
//! * `--write-inputs FILE`: the raw test samples that were run, as a `DNRI` input file, so the
//!   firmware can run the same inputs and its dump can be compared byte for byte;
//! * `--json FILE`: what was measured ([`InferSummary`]), with the model's footprint read from
//!   the core (parameters, MACs, file and arena bytes).
//!
//! Samples are spread over threads (each with its own arena); results are stored per sample, so
//! the output does not depend on the thread count.

use crate::model_bytes::ModelBytes;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use denoiserep_core::samples::{encode_record, encode_sample};
use denoiserep_core::{DumpHeader, InputHeader, Model, Precision};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::data::{self, LoadOptions};
use crate::eval::{self, Retrieval};
use crate::export::{footprint, Footprint};
use crate::parallel::par_chunks;
use crate::run::write_atomic;

/// What `denoiserep infer` was asked to do.
#[derive(Debug, Clone)]
pub struct InferRequest {
    pub model: PathBuf,
    pub data: String,
    pub load: LoadOptions,
    /// Run only the first `limit` test samples.
    pub limit: Option<usize>,
    /// Compute retrieval mAP / Rank-1 (runs the model over the train split as the gallery).
    pub retrieval: bool,
    pub dump: Option<PathBuf>,
    pub write_inputs: Option<PathBuf>,
    /// `--normal-classes` (reconstruction models): the anomaly AUC over the test samples run,
    /// every other class anomalous.
    pub normal_classes: Option<Vec<u32>>,
    /// Worker threads (≥ 1).
    pub threads: usize,
    /// Progress bars on stderr (a terminal); otherwise one plain line per long step.
    pub progress: bool,
}

/// What `denoiserep infer` measured.
#[derive(Debug, Clone, PartialEq)]
pub struct InferReport {
    pub name: String,
    pub precision: Precision,
    /// Test samples run.
    pub samples: usize,
    /// Top-1 accuracy; NaN for a reconstruction model.
    pub test_accuracy: f64,
    /// A reconstruction model's numbers (`None` for a classifier).
    pub reconstruction: Option<InferReconstruction>,
    pub retrieval: Option<Retrieval>,
    /// Gallery samples of the retrieval (the train split); 0 without retrieval.
    pub gallery_samples: usize,
    /// The model's cost, read from the core model.
    pub footprint: Footprint,
    /// Wall time of the whole command (load, data, inference, retrieval, files).
    pub seconds: f64,
}

/// What `infer` measures for a reconstruction model (logits = a reconstruction of the
/// normalized input, as many values as the input): per test sample the anomaly score
/// `e = (1/D)·Σ_j (x̂_j − (x_j − μ)/σ)²` from the core's (dequantized) output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferReconstruction {
    /// Mean score over the normal test samples run (all of them without `--normal-classes`).
    pub mse_normal: f64,
    /// `--normal-classes` given: the classes, the anomalous samples' mean score and the ROC AUC.
    pub normal_classes: Option<Vec<u32>>,
    pub mse_anomalous: Option<f64>,
    pub auc: Option<f64>,
}

/// `infer --json FILE`: an [`InferReport`] with what was run, as written to disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferSummary {
    /// `--model`, as given.
    pub model: String,
    /// The model's name (metadata).
    pub name: String,
    /// `f32` or `int8`.
    pub precision: String,
    /// `--data` spec.
    pub data: String,
    /// Test samples run.
    pub samples: usize,
    /// Top-1 accuracy in `[0, 1]` on those samples (`null` for a reconstruction model).
    pub test_accuracy: f64,
    /// A reconstruction model's scores (absent for a classifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconstruction: Option<InferReconstruction>,
    /// Retrieval mAP / Rank-1 in `[0, 1]` (queries: the test samples; gallery: the train split);
    /// `null` with `--no-retrieval`.
    pub retrieval: Option<Retrieval>,
    pub gallery_samples: usize,
    pub threads: usize,
    /// Wall seconds of the command.
    pub seconds: f64,
    #[serde(flatten)]
    pub footprint: Footprint,
    /// The core's f32 Softmax / GELU / LayerNorm math in this build ([`denoiserep_core::MATH`]):
    /// `libm`, or `fast` with the `fast-math` feature. A summary without it is `libm`.
    #[serde(default = "libm_math")]
    pub math: String,
}

/// [`InferSummary::math`] of summaries written before it existed.
fn libm_math() -> String {
    "libm".into()
}

impl InferSummary {
    /// The summary of `report`, measured for `req`.
    pub fn new(req: &InferRequest, report: &InferReport) -> Self {
        Self {
            model: req.model.display().to_string(),
            name: report.name.clone(),
            precision: precision_name(report.precision).into(),
            data: req.data.clone(),
            samples: report.samples,
            test_accuracy: report.test_accuracy,
            reconstruction: report.reconstruction.clone(),
            retrieval: report.retrieval,
            gallery_samples: report.gallery_samples,
            threads: req.threads,
            seconds: report.seconds,
            footprint: report.footprint,
            math: denoiserep_core::MATH.into(),
        }
    }

    /// Writes the summary as pretty JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_vec_pretty(self)?;
        text.push(b'\n');
        write_atomic(path, &text).with_context(|| format!("--json {}", path.display()))
    }
}

/// `f32` or `int8`.
pub fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::F32 => "f32",
        Precision::Int8 => "int8",
    }
}

/// The outputs of a model over many samples, one row per sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitOutputs {
    /// `n × num_classes` real logits (dequantized for int8).
    pub logits: Vec<f32>,
    /// `n × embedding_len` real embedding values (dequantized for int8).
    pub embedding: Vec<f32>,
    /// The dump records (`docs/dump-format.md`), `n × record_len` bytes; empty unless asked.
    pub records: Vec<u8>,
    /// The dump header for these samples; `None` when there are none.
    pub header: Option<DumpHeader>,
}

/// Reads and validates a model file, naming the file in every error. The bytes start on a
/// cache line ([`ModelBytes`]), so the encoder's payload alignment reaches the kernels.
pub fn read_model(path: &Path) -> Result<ModelBytes> {
    let bytes = ModelBytes::read(path)
        .with_context(|| format!("--model {}: cannot read", path.display()))?;
    Model::from_bytes(&bytes).map_err(|e| anyhow!("--model {}: {e}", path.display()))?;
    Ok(bytes)
}

/// Runs `model` on every sample of `x` (`n × input_len` raw values) with `threads` threads.
/// `records` also keeps the exact dump records.
pub fn run_samples(
    model: &Model<'_>,
    x: &[f32],
    threads: usize,
    records: bool,
    bar: &ProgressBar,
) -> Result<SplitOutputs> {
    let len = model.input_len();
    if len == 0 || x.len() % len != 0 {
        bail!("{} input values are not whole samples of {len}", x.len());
    }
    let n = x.len() / len;
    if n == 0 {
        return Ok(SplitOutputs::default());
    }
    let mut arena = vec![0u8; model.arena_size()];
    let first = model
        .run(&x[..len], &mut arena)
        .map_err(|e| anyhow!("running the model: {e}"))?;
    let n_u32 = u32::try_from(n).map_err(|_| anyhow!("{n} samples do not fit a dump file"))?;
    let header = DumpHeader::for_outputs(&first, n_u32).map_err(|e| anyhow!("dump header: {e}"))?;
    let (n_logits, n_emb) = (first.logits.len(), first.embedding.len());
    let rec_len = if records { header.record_len() } else { 0 };

    let parts = par_chunks(n, threads, |range| -> Result<SplitOutputs> {
        let chunk = &x[range.start * len..range.end * len];
        let m = range.len();
        let mut arena = vec![0u8; model.arena_size()];
        let mut out = SplitOutputs {
            logits: vec![0.0; m * n_logits],
            embedding: vec![0.0; m * n_emb],
            records: vec![0u8; m * rec_len],
            header: None,
        };
        for (i, sample) in chunk.chunks(len).enumerate() {
            let o = model
                .run(sample, &mut arena)
                .map_err(|e| anyhow!("running the model: {e}"))?;
            o.logits
                .dequantize_into(&mut out.logits[i * n_logits..])
                .map_err(|e| anyhow!("{e}"))?;
            o.embedding
                .dequantize_into(&mut out.embedding[i * n_emb..])
                .map_err(|e| anyhow!("{e}"))?;
            if records {
                encode_record(&o, &mut out.records[i * rec_len..(i + 1) * rec_len])
                    .map_err(|e| anyhow!("{e}"))?;
            }
            bar.inc(1);
        }
        Ok(out)
    })?;
    let mut all = SplitOutputs {
        header: Some(header),
        ..SplitOutputs::default()
    };
    for part in parts {
        all.logits.extend(part.logits);
        all.embedding.extend(part.embedding);
        all.records.extend(part.records);
    }
    Ok(all)
}

fn progress_bar(n: usize, what: &str, progress: bool) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(n as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:30}}] {{pos}}/{{len}} samples ({{elapsed}})"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// `denoiserep infer` (see the module doc).
pub fn infer(req: &InferRequest) -> Result<InferReport> {
    let started = Instant::now();
    let bytes = read_model(&req.model)?;
    let model = Model::from_bytes(&bytes).map_err(|e| anyhow!("{e}"))?;
    let data = data::load(&req.data, &req.load)?;
    let input: Vec<u32> = model.input_info().shape.dims().to_vec();
    let classes = model.num_classes();
    // A reconstruction model (the autoencoder): as many outputs as inputs, not class logits.
    let reconstructs = classes == model.input_len() && classes != data.num_classes;
    if let (Some(c), false) = (&req.normal_classes, reconstructs) {
        bail!(
            "--normal-classes {}: model {} outputs {classes} class logits, not a reconstruction of \
             its input; the anomaly evaluation needs an autoencoder's model file",
            eval::anomaly::format_classes(c),
            req.model.display()
        );
    }
    if let Some(c) = &req.normal_classes {
        eval::anomaly::check_classes(c, data.num_classes, "--normal-classes")
            .with_context(|| format!("data '{}'", req.data))?;
    }
    if data.sample_len() != model.input_len() || (data.num_classes != classes && !reconstructs) {
        bail!(
            "data '{}' has shape {:?} and {} classes, model {} expects {:?} and {}",
            req.data,
            data.shape,
            data.num_classes,
            req.model.display(),
            input,
            classes
        );
    }
    let n = req.limit.unwrap_or(usize::MAX).min(data.test.len());
    if n == 0 {
        bail!("data '{}': no test samples to run", req.data);
    }
    let test_x = &data.test.x[..n * data.sample_len()];
    let test_y = &data.test.y[..n];

    let bar = progress_bar(n, "test   ", req.progress);
    let test = run_samples(&model, test_x, req.threads, req.dump.is_some(), &bar)?;
    bar.finish_and_clear();
    let (test_accuracy, reconstruction) = if reconstructs {
        let mean: Vec<f32> = model.info().input_mean.iter().collect();
        let std: Vec<f32> = model.info().input_std.iter().collect();
        let r = reconstruction_scores(&test.logits, test_x, test_y, &mean, &std, req)?;
        (f64::NAN, Some(r))
    } else {
        (eval::accuracy(&test.logits, data.num_classes, test_y), None)
    };

    let retrieval = if req.retrieval {
        let m = data.train.len();
        let step = Instant::now();
        if !req.progress {
            eprintln!("infer: retrieval: {n} queries against a gallery of {m} train samples");
        }
        let bar = progress_bar(m, "gallery", req.progress);
        let gallery = run_samples(&model, &data.train.x, req.threads, false, &bar)?;
        bar.finish_and_clear();
        let dim = test.embedding.len() / n;
        let r = eval::retrieval(
            &test.embedding,
            test_y,
            &gallery.embedding,
            &data.train.y,
            dim,
        );
        if !req.progress {
            eprintln!(
                "infer: retrieval done in {:.1} s",
                step.elapsed().as_secs_f64()
            );
        }
        Some(r)
    } else {
        None
    };

    if let (Some(path), Some(header)) = (&req.dump, &test.header) {
        let mut out = header.encode().to_vec();
        out.extend_from_slice(&test.records);
        write_atomic(path, &out).with_context(|| format!("--dump {}", path.display()))?;
    }
    if let Some(path) = &req.write_inputs {
        write_atomic(path, &input_file(test_x, data.sample_len())?)
            .with_context(|| format!("--write-inputs {}", path.display()))?;
    }
    Ok(InferReport {
        name: model.info().name.to_string(),
        precision: model.precision(),
        samples: n,
        test_accuracy,
        reconstruction,
        retrieval,
        gallery_samples: if req.retrieval { data.train.len() } else { 0 },
        footprint: footprint(&bytes)?,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// [`InferReconstruction`] of the reconstructions `out` (`n × D`) of the raw samples `x` with
/// labels `y`, normalized with the model's `mean`, `std` (1 value, or one per input dim-0 index
/// over equal planes, as the core does).
fn reconstruction_scores(
    out: &[f32],
    x: &[f32],
    y: &[u32],
    mean: &[f32],
    std: &[f32],
    req: &InferRequest,
) -> Result<InferReconstruction> {
    let d = x.len() / y.len().max(1);
    let groups = mean.len().max(1);
    let plane = d / groups;
    if mean.len() != std.len() || plane * groups != d || out.len() != x.len() {
        bail!(
            "model {}: {} outputs for {} inputs with {} normalization groups: not a reconstruction \
             model",
            req.model.display(),
            out.len(),
            x.len(),
            mean.len()
        );
    }
    let scores: Vec<f64> = out
        .chunks(d)
        .zip(x.chunks(d))
        .map(|(o, s)| {
            let sum: f64 = o
                .iter()
                .zip(s)
                .enumerate()
                .map(|(j, (&o, &v))| {
                    let g = if groups == 1 { 0 } else { j / plane };
                    let t = (v - mean[g]) / std[g];
                    f64::from(o - t).powi(2)
                })
                .sum();
            sum / d as f64
        })
        .collect();
    let anomalous: Vec<bool> = match &req.normal_classes {
        Some(c) => y.iter().map(|k| c.binary_search(k).is_err()).collect(),
        None => vec![false; y.len()],
    };
    let pick = |want: bool| -> Vec<f64> {
        scores
            .iter()
            .zip(&anomalous)
            .filter(|(_, &a)| a == want)
            .map(|(&e, _)| e)
            .collect()
    };
    let (normal, bad) = (pick(false), pick(true));
    Ok(InferReconstruction {
        mse_normal: eval::anomaly::mean(&normal),
        normal_classes: req.normal_classes.clone(),
        mse_anomalous: req
            .normal_classes
            .as_ref()
            .map(|_| eval::anomaly::mean(&bad)),
        auc: req
            .normal_classes
            .as_ref()
            .and_then(|_| eval::anomaly::roc_auc(&scores, &anomalous)),
    })
}

/// A `DNRI` input file (`docs/dump-format.md`) holding the samples of `x`.
pub fn input_file(x: &[f32], sample_len: usize) -> Result<Vec<u8>> {
    let n = x.len() / sample_len.max(1);
    let header = InputHeader {
        n_samples: u32::try_from(n)?,
        sample_len: u32::try_from(sample_len)?,
    };
    let mut out = header.encode().to_vec();
    let start = out.len();
    out.resize(start + x.len() * 4, 0);
    encode_sample(x, &mut out[start..]).map_err(|e| anyhow!("{e}"))?;
    Ok(out)
}
