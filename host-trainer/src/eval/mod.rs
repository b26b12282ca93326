//! Evaluation metrics on model outputs: top-1 accuracy, retrieval mAP / Rank-1 on embeddings,
//! and the input-noise robustness protocol; plus the `metrics.json` record types.

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

/// One row of the per-epoch training curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    /// `baseline`, `A` (denoisers), `B` (backbone), `label-free`, `penalty-control`.
    pub phase: String,
    pub train_loss: f64,
    pub ce_loss: f64,
    pub noise_loss: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub seconds: f64,
}

/// `RUN_DIR/metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub test_accuracy: f64,
    pub retrieval_map: f64,
    pub retrieval_rank1: f64,
    pub noise_robustness: Vec<NoisePoint>,
    pub curve: Vec<EpochRecord>,
}
