//! Evaluation metrics on model outputs: top-1 accuracy, retrieval mAP / Rank-1 on embeddings,
//! and the input-noise robustness protocol; plus the `metrics.json` record types.

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

/// Retrieval mAP and Rank-1: each query (`query`, `n_q × dim`) ranks the whole gallery
/// (`gallery`, `n_g × dim`) by cosine similarity, ties broken by gallery index. AP of a query =
/// mean over its relevant (same-label) gallery items of precision at that item's rank; queries
/// with no relevant gallery item are skipped.
pub fn retrieval(
    query: &[f32],
    query_labels: &[u32],
    gallery: &[f32],
    gallery_labels: &[u32],
    dim: usize,
) -> Retrieval {
    let norm = |v: &[f32]| -> Vec<f32> {
        v.chunks(dim)
            .flat_map(|r| {
                let n = r.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                r.iter().map(move |x| x / n)
            })
            .collect()
    };
    let (q, g) = (norm(query), norm(gallery));
    let (mut ap_sum, mut rank1, mut counted) = (0.0f64, 0usize, 0usize);
    let mut order: Vec<(f32, usize)> = Vec::with_capacity(gallery_labels.len());
    for (qi, &ql) in query_labels.iter().enumerate() {
        let qv = &q[qi * dim..(qi + 1) * dim];
        order.clear();
        order.extend(g.chunks(dim).enumerate().map(|(gi, gv)| {
            let s: f32 = qv.iter().zip(gv).map(|(a, b)| a * b).sum();
            (s, gi)
        }));
        order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let (mut hits, mut ap) = (0usize, 0.0f64);
        for (rank, &(_, gi)) in order.iter().enumerate() {
            if gallery_labels[gi] == ql {
                hits += 1;
                ap += hits as f64 / (rank + 1) as f64;
            }
        }
        if hits == 0 {
            continue;
        }
        counted += 1;
        ap_sum += ap / hits as f64;
        if gallery_labels[order[0].1] == ql {
            rank1 += 1;
        }
    }
    let n = counted.max(1) as f64;
    Retrieval {
        map: ap_sum / n,
        rank1: rank1 as f64 / n,
    }
}

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
