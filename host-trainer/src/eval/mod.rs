//! Evaluation metrics on model outputs: top-1 accuracy, retrieval mAP / Rank-1 on embeddings,
//! and the robustness protocol (Gaussian input noise, and the corruptions of [`corrupt`]); plus
//! the `metrics.json` record types.

pub mod anomaly;
pub mod corrupt;
mod noise;
pub mod plots;
mod retrieval;

use serde::{Deserialize, Serialize};

/// The σ values (pixel units, inputs in `[0, 1]`) of the robustness protocol.
pub const NOISE_SIGMAS: [f32; 5] = [0.0, 0.1, 0.2, 0.3, 0.5];

/// Top-1 accuracy in `[0, 1]`: `logits` is `n × num_classes`, row-major. Ties go to the lowest
/// class index (the same rule as the core's argmax).
pub fn accuracy(logits: &[f32], num_classes: usize, labels: &[u32]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let correct = logits
        .chunks(num_classes)
        .zip(labels)
        .filter(|(row, &y)| argmax(row) == y as usize)
        .count();
    correct as f64 / labels.len() as f64
}

/// Index of the largest value; the first one on ties.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Retrieval quality of embeddings, as in person re-identification.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    /// Mean over queries of average precision (gallery ranked by cosine similarity).
    pub map: f64,
    /// Fraction of queries whose most similar gallery item has the query's label.
    pub rank1: f64,
}

pub use noise::add_noise;
pub use retrieval::{retrieval, retrieval_naive, retrieval_threads};

/// Accuracy at one input-noise level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NoisePoint {
    pub sigma: f32,
    pub accuracy: f64,
}

/// Accuracy under one input corruption ([`corrupt::CORRUPTIONS`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CorruptionPoint {
    pub kind: corrupt::Kind,
    /// σ (pixel units) for `gaussian`, the pixel fraction `p` for `salt-pepper`, the patch side
    /// as a fraction of the image side for `occlusion`, σ in pixels for `blur`.
    pub severity: f32,
    pub accuracy: f64,
}

impl CorruptionPoint {
    /// The corruption measured.
    pub fn corruption(&self) -> corrupt::Corruption {
        corrupt::Corruption {
            kind: self.kind,
            severity: self.severity,
        }
    }
}

/// One row of the per-epoch training curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    /// `baseline`, `A` (denoisers), `B` (backbone), `label-free`, `penalty-control`.
    pub phase: String,
    pub train_loss: f64,
    /// The task loss: cross-entropy, or for a reconstruction model (`--arch autoencoder`) the
    /// reconstruction MSE (`train_loss` − λ·noise).
    pub ce_loss: f64,
    pub noise_loss: f64,
    /// Top-1 accuracies; `null` (NaN) for a reconstruction model, which predicts no class.
    #[serde(deserialize_with = "nan_if_null")]
    pub train_accuracy: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub test_accuracy: f64,
    /// A reconstruction model's mean per-sample reconstruction MSE on the (normal) test split
    /// (absent for classifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_mse: Option<f64>,
    pub seconds: f64,
    /// Per denoised layer, after this epoch (empty for models without denoisers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denoisers: Vec<DenoiserDiag>,
}

/// How well one denoising layer predicts the noise, on the train split (`docs/trainer.md`,
/// "Denoiser diagnostics"). Losses are per element (mean over samples × channels [× pixels]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenoiserDiag {
    /// `nn.Sequential` index of the denoised layer.
    pub layer: usize,
    pub t: usize,
    /// The training loss `mean|ε − ε̂| + mean(ε − ε̂)²`, one seeded draw of `ε` per input.
    pub noise_loss: f64,
    /// The same loss of the zero predictor `ε̂ = 0` on the same draws (expectation
    /// `√(2/π) + 1 ≈ 1.7979`).
    pub zero_predictor_loss: f64,
    /// The L2 part alone, `E(ε − ε̂)²`, as an exact expectation over `ε` from the layer input's
    /// train-split moments (zero predictor: 1).
    pub noise_l2: f64,
    /// The analytic minimum of the L2 part over all affine predictors (`optimum.rs`).
    pub optimal_l2: f64,
    /// `‖c1·D‖₂`: how far the fused step is from `c3·I` (spectral norm).
    pub step_norm: f64,
    /// `‖W′ − c3·W‖_F / ‖W‖_F`: how much the fused weights differ from the plainly scaled ones.
    pub weight_change: f64,
}

impl DenoiserDiag {
    /// `(noise_l2 − optimal_l2) / optimal_l2`: how far the fit is from the optimum.
    pub fn excess_l2(&self) -> f64 {
        (self.noise_l2 - self.optimal_l2) / self.optimal_l2.max(1e-300)
    }
}

/// `RUN_DIR/metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Top-1 accuracy on the test split; `null` (NaN) for a reconstruction model, which predicts
    /// no class (its numbers are in `reconstruction`).
    #[serde(deserialize_with = "nan_if_null")]
    pub test_accuracy: f64,
    /// Retrieval on the embedding (queries = test split, gallery = train split; for the
    /// autoencoder the 8-wide bottleneck, on the normal classes only).
    pub retrieval_map: f64,
    pub retrieval_rank1: f64,
    pub noise_robustness: Vec<NoisePoint>,
    /// Top-1 under each corruption of [`corrupt::CORRUPTIONS`], in that order (`[]` in files
    /// written before it existed; `denoiserep eval` adds it).
    #[serde(default)]
    pub corruptions: Vec<CorruptionPoint>,
    pub curve: Vec<EpochRecord>,
    /// Per denoised layer, of the final model (`[]` for models without denoisers).
    #[serde(default)]
    pub denoisers: Vec<DenoiserDiag>,
    /// `eval --feature-noise`: accuracy and retrieval with Gaussian noise added to the input of
    /// every weighted layer (absent unless asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feature_noise: Vec<FeatureNoisePoint>,
    /// A reconstruction model's evaluation (test MSE, anomaly AUC; absent for classifiers, whose
    /// `noise_robustness` and `corruptions` it replaces: those are `[]` for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconstruction: Option<anomaly::ReconstructionMetrics>,
}

impl Metrics {
    /// True for the metrics of a reconstruction model (no classification numbers).
    pub fn is_reconstruction(&self) -> bool {
        self.reconstruction.is_some()
    }
}

/// Reads a number written as `null` as NaN: `serde_json` writes a non-finite `f64` (a metric
/// that does not apply, e.g. a reconstruction model's accuracy) as `null`.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One feature-noise level (`docs/trainer.md`, "Feature-noise positive control").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureNoisePoint {
    /// The standard deviation given (`--feature-noise S`); `null` for the per-layer default
    /// `s_k = √((1 − ᾱ_t)/ᾱ_t)` at each layer's timestep.
    pub s: Option<f64>,
    /// `(layer, s)` actually used, per weighted layer in forward order.
    pub per_layer: Vec<(usize, f64)>,
    /// Top-1 accuracy on the test split under that noise (`null` for a reconstruction model).
    #[serde(deserialize_with = "nan_if_null")]
    pub accuracy: f64,
    /// Retrieval on the (noisy) embedding: queries = test split, gallery = clean train split.
    pub retrieval_map: f64,
    pub retrieval_rank1: f64,
    /// Retrieval on the explicitly denoised noisy embedding — the reverse step of the denoiser
    /// of the layer after the embedding applied to it (`null` when that layer has none).
    pub denoised_retrieval_map: Option<f64>,
    pub denoised_retrieval_rank1: Option<f64>,
}
