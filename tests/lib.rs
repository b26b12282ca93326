//! Shared helpers for the cross-crate integration tests in `tests/tests/`: temp folders, training
//! a run through the same argument parsing as the `denoiserep` binary, exporting it, and a
//! seeded random model generator.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use clap::Parser;
use denoiserep_trainer::arch::Arch;
use denoiserep_trainer::cli::{Cli, Command};
use denoiserep_trainer::data::Normalization;
use denoiserep_trainer::export::{
    self, ExportFormat, ExportOutcome, ExportPrecision, ExportRequest,
};
use denoiserep_trainer::model::{DenoiseSpec, Model};
use denoiserep_trainer::rng::Rng;
use denoiserep_trainer::schedule::ScheduleSpec;
use denoiserep_trainer::{FusedLayer, FusedModel};
use tch::{Device, Kind, Tensor};

pub mod device;
pub mod tflite_build;
pub mod tflm;

/// The core's test-model builders and int8 quantizer (`core/tests/common/`), shared so that the
/// device tests build exactly the models the core's own tests use.
#[path = "../core/tests/common/mod.rs"]
pub mod models;

/// A fresh temp folder, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `$TMPDIR/denoiserep-tests-<name>-<pid>`, emptied first.
    pub fn new(name: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("denoiserep-tests-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }

    /// A path inside the folder.
    pub fn path(&self, sub: &str) -> PathBuf {
        self.0.join(sub)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The repository root (where `data/` lives).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// libtorch's RNG is process-global (`tch::manual_seed`, weight init, the noise draws), and the
/// test harness runs a file's tests in parallel threads: [`train`] holds this lock for the whole
/// run, so two trainings never interleave their draws and each seeded run gives the bytes it
/// gives alone (as `host-trainer/tests/train_regimes.rs` does for its own trainers).
static TORCH_RNG: Mutex<()> = Mutex::new(());

/// Holds [`TORCH_RNG`]; a test that panicked while holding it does not poison it for the others.
pub fn torch_rng_lock() -> MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Trains a run into `out` with `denoiserep train` arguments (`--out` and `--device cpu` are
/// added; `--data-dir` points at the repository's `data/`), through the binary's own parsing.
/// Trainings in one test process run one at a time ([`torch_rng_lock`]).
pub fn train(out: &Path, args: &[&str]) {
    let _rng = torch_rng_lock();
    let data_dir = repo_root().join("data");
    let mut argv = vec![
        "denoiserep",
        "train",
        "--device",
        "cpu",
        "--data-dir",
        data_dir.to_str().expect("utf-8 path"),
        "--out",
        out.to_str().expect("utf-8 path"),
    ];
    argv.extend_from_slice(args);
    let Command::Train(t) = Cli::try_parse_from(&argv)
        .expect("valid train arguments")
        .command
    else {
        unreachable!("parsed a train command");
    };
    denoiserep_trainer::run::train(t.request(false).expect("train request")).expect("training");
}

/// One epoch of label-free DenoiseRep training (closed-form denoisers) continuing from run
/// `init` into `out` (what `train --init RUN_DIR` does after `denoiserep import`); returns the
/// new run's config, checked to have denoisers and metrics.
pub fn train_on_from(init: &Path, out: &Path) -> denoiserep_trainer::run::RunConfig {
    train(
        out,
        &[
            "--init",
            init.to_str().expect("utf-8 path"),
            "--regime",
            "label-free",
            "--epochs",
            "1",
            "--denoiser-fit",
            "closed-form",
        ],
    );
    let cfg = denoiserep_trainer::run::read_config(out).expect("the new run's config");
    assert!(!cfg.timesteps.is_empty(), "the run has denoisers");
    assert!(out.join(denoiserep_trainer::run::METRICS).is_file());
    cfg
}

/// Exports `run` to `out` in the core's format (calibration: 1,000 samples, min/max, seed 0).
pub fn export(run: &Path, precision: ExportPrecision, out: &Path) -> ExportOutcome {
    export_as(run, precision, ExportFormat::Dnrp, out)
}

/// Exports `run` to `out` in `format` (calibration: 1,000 samples, min/max, seed 0).
pub fn export_as(
    run: &Path,
    precision: ExportPrecision,
    format: ExportFormat,
    out: &Path,
) -> ExportOutcome {
    export::export(&ExportRequest {
        run: run.to_path_buf(),
        precision,
        format,
        out: out.to_path_buf(),
        calib: export::DEFAULT_CALIB,
        calib_percentile: None,
        calib_seed: 0,
        tflite_float_io: false,
        progress: false,
    })
    .expect("export")
}

/// A random fused model: `conv` conv blocks (3×3, padding 1, ReLU, 2×2 max-pool) of random
/// widths, then Flatten, `hidden` hidden Linear + ReLU blocks, and a Linear to `classes`, as a
/// sequential [`FusedModel`] (node `k` reads node `k − 1`'s output).
/// Weights ~ U(±scale/√fan_in), biases ~ U(±bias_scale); normalization mean/std random.
pub struct RandomModel {
    pub input_shape: [usize; 3],
    pub conv: Vec<usize>,
    pub hidden: Vec<usize>,
    pub classes: usize,
    pub weight_scale: f64,
    pub bias_scale: f64,
}

impl RandomModel {
    /// Builds the model from `rng`.
    pub fn build(&self, rng: &mut Rng) -> FusedModel {
        let [c, mut h, mut w] = self.input_shape;
        let mut layers = Vec::new();
        let mut ch = c;
        let uniform = |n: usize, bound: f64, rng: &mut Rng| -> Vec<f32> {
            (0..n)
                .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
                .collect()
        };
        for &out in &self.conv {
            let fan_in = ch * 9;
            layers.push(FusedLayer::Conv2d {
                in_channels: ch,
                out_channels: out,
                kernel: [3, 3],
                stride: [1, 1],
                padding: [1; 4],
                groups: 1,
                weight: uniform(
                    out * fan_in,
                    self.weight_scale / (fan_in as f64).sqrt(),
                    rng,
                ),
                bias: uniform(out, self.bias_scale, rng),
            });
            layers.push(FusedLayer::Relu);
            layers.push(FusedLayer::MaxPool2d {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0; 4],
            });
            ch = out;
            h /= 2;
            w /= 2;
        }
        layers.push(FusedLayer::Flatten);
        let mut features = ch * h * w;
        for &out in &self.hidden {
            layers.push(FusedLayer::Linear {
                in_features: features,
                out_features: out,
                weight: uniform(
                    out * features,
                    self.weight_scale / (features as f64).sqrt(),
                    rng,
                ),
                bias: uniform(out, self.bias_scale, rng),
            });
            layers.push(FusedLayer::Relu);
            features = out;
        }
        let embedding_layer = layers.len() - 1;
        layers.push(FusedLayer::Linear {
            in_features: features,
            out_features: self.classes,
            weight: uniform(
                self.classes * features,
                self.weight_scale / (features as f64).sqrt(),
                rng,
            ),
            bias: uniform(self.classes, self.bias_scale, rng),
        });
        let normalization = Normalization {
            mean: (0..c).map(|_| rng.uniform() as f32 * 0.5).collect(),
            std: (0..c).map(|_| 0.2 + rng.uniform() as f32).collect(),
        };
        FusedModel::sequential(
            "random".into(),
            self.input_shape,
            self.classes,
            normalization,
            layers,
            embedding_layer,
        )
    }
}

/// A trainer model of architecture `spec` (`Arch::parse`) with random, seeded weights: tch's
/// default initialization under `tch::manual_seed(seed)`, then every BatchNorm's `γ`, `β`,
/// running mean and variance drawn at random (so folding them is not the identity), and
/// denoisers on every weighted layer with random `D`, `d` and reverse-step noise (so the fused
/// model differs from its backbone, [`Model::plain`]); a ViT's LayerNorms, class token,
/// position embeddings and qkv weights drawn too (see the body). Holds [`torch_rng_lock`] while
/// drawing.
pub fn random_arch_model(spec: &str, input_shape: [usize; 3], classes: usize, seed: u64) -> Model {
    let _rng = torch_rng_lock();
    tch::manual_seed(seed as i64);
    let arch = Arch::parse(spec, input_shape, classes).expect("arch parses");
    let c = input_shape[0];
    let normalization = Normalization {
        mean: (0..c).map(|i| 0.3 + 0.1 * i as f32).collect(),
        std: (0..c).map(|i| 0.25 + 0.05 * i as f32).collect(),
    };
    let mut model = Model::new(arch, normalization, Device::Cpu);
    let n_weighted = model.arch.weighted_layers().len();
    model
        .add_denoisers(&DenoiseSpec {
            schedule: ScheduleSpec::default(),
            t_stride: (1000 / n_weighted.max(1)).clamp(1, 50),
            t_list: None,
            fuse_noise: Some(seed),
        })
        .expect("denoisers");
    tch::no_grad(|| {
        let rand = |t: &Tensor, lo: f64, hi: f64| {
            let r = Tensor::rand(t.size(), (Kind::Float, Device::Cpu)) * (hi - lo) + lo;
            let mut t = t.shallow_clone();
            t.copy_(&r);
        };
        for bn in model.bn.iter().flatten() {
            // γ ≈ √6 keeps the activations' scale through conv (default init: variance / 3)
            // and ReLU (/ 2), so deep instances still vary with their input after int8.
            rand(&bn.weight, 1.8, 2.8);
            rand(&bn.bias, -0.2, 0.2);
            rand(&bn.running_mean, -0.2, 0.2);
            rand(&bn.running_var, 0.5, 1.5);
        }
        for d in &model.denoisers {
            rand(&d.d_mat, -0.02, 0.02);
            rand(&d.d_vec, -0.02, 0.02);
        }
        // ViT only (other archs have none of these, and draw nothing more): LayerNorm γ, β,
        // class token and position embeddings away from timm's 1, 0 and σ = 0.02, and qkv
        // weights large enough that attention is peaked, not uniform, so that a wrong scale,
        // head order or constant shows in the outputs.
        for (w, b) in model.norms.iter().flatten() {
            rand(w, 0.5, 1.5);
            rand(b, -0.2, 0.2);
        }
        for e in model.embeds.iter().flatten() {
            rand(e, -0.5, 0.5);
        }
        for (node, wb) in model.arch.nodes.iter().zip(&model.weights) {
            if let (true, Some((w, _))) = (node.name.ends_with("attn.qkv"), wb) {
                rand(w, -0.5, 0.5);
            }
        }
    });
    model
}

/// `n` random raw samples of `len` values, uniform in `[lo, hi)`.
pub fn random_samples(rng: &mut Rng, n: usize, len: usize, lo: f64, hi: f64) -> Vec<f32> {
    (0..n * len)
        .map(|_| (lo + rng.uniform() * (hi - lo)) as f32)
        .collect()
}
