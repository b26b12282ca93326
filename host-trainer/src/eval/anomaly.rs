//! Reconstruction and held-out-class anomaly detection (`--arch autoencoder`, `train
//! --normal-classes`): the ROC AUC of an anomaly score, the class filter and the
//! `metrics.json` record.
//!
//! **Setup.** Training (and the test-split reconstruction MSE) sees only the samples whose class
//! is in the normal set; the anomaly evaluation runs on the whole test split, a sample being
//! *anomalous* exactly when its class is not normal. The anomaly score of a sample is its mean
//! squared reconstruction error over the `D = C·H·W` inputs of the model, in normalized units:
//! `s(x) = (1/D)·Σ_j (x̂_j − x_j)²`, `x` the normalized input, `x̂` the model's output.

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Split};

/// The ROC AUC of `scores` for telling `anomalous[i] = true` samples (positives) from the others
/// (negatives), higher score = more anomalous: the Mann–Whitney statistic
///
/// `AUC = (1/(P·N)) · Σ_{i positive} Σ_{j negative} ([s_i > s_j] + ½·[s_i = s_j])`,
///
/// the probability that a random positive scores above a random negative, ties counted half. It
/// is computed exactly in `O(n log n)` from midranks: with `R` the sum of the positives' ranks
/// (1-based, tied scores sharing the mean of their ranks), `AUC = (R − P(P+1)/2) / (P·N)`.
/// `None` when either class is empty (the AUC is undefined) or a score is NaN.
pub fn roc_auc(scores: &[f64], anomalous: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), anomalous.len(), "one label per score");
    if scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let p = anomalous.iter().filter(|&&a| a).count();
    let n = scores.len() - p;
    if p == 0 || n == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j share their mean.
        let mid = (i + 1 + j) as f64 / 2.0;
        let positives = order[i..j].iter().filter(|&&k| anomalous[k]).count();
        rank_sum += mid * positives as f64;
        i = j;
    }
    let (p, n) = (p as f64, n as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Parses a class set: comma-separated classes and inclusive ranges, e.g. `0-8` or `0,2,4-6`;
/// sorted, without duplicates. Errors say what is allowed (the `--normal-classes` rule).
pub fn parse_classes(s: &str) -> Result<Vec<u32>, String> {
    let why = || {
        "must be a comma-separated list of class indices and ranges A-B (A ≤ B), e.g. 0-8 or 0,2,4-6"
            .to_string()
    };
    if s.trim().is_empty() {
        return Err(why());
    }
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) else {
            return Err(why());
        };
        if a > b || b >= 1 << 16 {
            return Err(why());
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// `classes` written back as `parse_classes` reads it, ranges collapsed (`0-8`, `0,2,4-6`).
pub fn format_classes(classes: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < classes.len() {
        let mut j = i;
        while j + 1 < classes.len() && classes[j + 1] == classes[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            classes[i].to_string()
        } else {
            format!("{}-{}", classes[i], classes[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// Checks a normal class set against a data set's classes: every class exists, and at least one
/// class is left out (the anomalies). `flag` names the option in errors.
pub fn check_classes(normal: &[u32], num_classes: usize, flag: &str) -> anyhow::Result<()> {
    let text = format_classes(normal);
    if let Some(c) = normal.iter().find(|&&c| c as usize >= num_classes) {
        anyhow::bail!(
            "{flag} {text}: class {c} does not exist (the data has classes 0-{})",
            num_classes - 1
        );
    }
    if normal.is_empty() || normal.len() >= num_classes {
        anyhow::bail!(
            "{flag} {text}: leaves no class out of the data's {num_classes}, so there are no \
             anomalies to detect; name the normal classes only (e.g. 0-{})",
            num_classes.saturating_sub(2)
        );
    }
    Ok(())
}

/// The samples of `split` whose class is in `normal` (sorted), in their order.
pub fn filter_split(split: &Split, normal: &[u32]) -> Split {
    let mut out = Split::default();
    for (i, &y) in split.y.iter().enumerate() {
        if normal.binary_search(&y).is_ok() {
            out.x.extend_from_slice(split.sample(i));
            out.y.push(y);
        }
    }
    out
}

/// `data` with both splits restricted to the `normal` classes (the class count is kept: labels
/// stay the data's).
pub fn normal_only(data: &Dataset, normal: &[u32]) -> Dataset {
    Dataset {
        name: data.name.clone(),
        shape: data.shape,
        num_classes: data.num_classes,
        train: filter_split(&data.train, normal),
        test: filter_split(&data.test, normal),
        value_range: data.value_range,
    }
}

/// `metrics.json` `reconstruction`: the evaluation of a reconstruction model (autoencoder).
/// Errors are mean squared errors per input value in normalized units (module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionMetrics {
    /// Mean over the test split's (normal) samples of the per-sample reconstruction MSE.
    pub test_mse: f64,
    /// The held-out-class anomaly evaluation (`null` without `--normal-classes`).
    pub anomaly: Option<AnomalyMetrics>,
    /// Per input-noise σ (pixel units, [`super::NOISE_SIGMAS`], the classification protocol's
    /// draws): the MSE between the reconstruction of the noisy input and the noisy input on the
    /// normal test samples, and the AUC of that score over the whole test split.
    pub noise: Vec<ReconstructionNoisePoint>,
}

/// The anomaly detection results of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyMetrics {
    /// The classes trained on (normal); every other class of the test split is anomalous.
    pub normal_classes: Vec<u32>,
    pub n_normal: usize,
    pub n_anomalous: usize,
    /// ROC AUC of the per-sample reconstruction MSE as the anomaly score ([`roc_auc`]).
    pub auc: f64,
    /// Mean anomaly score of the normal and of the anomalous test samples.
    pub mse_normal: f64,
    pub mse_anomalous: f64,
}

/// One input-noise level of [`ReconstructionMetrics::noise`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionNoisePoint {
    pub sigma: f32,
    pub mse_normal: f64,
    /// `null` without `--normal-classes`.
    pub auc: Option<f64>,
}

/// The mean of `v` (0 when empty).
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: pairs, ties half.
    fn auc_pairs(scores: &[f64], anomalous: &[bool]) -> f64 {
        let (mut sum, mut pairs) = (0.0, 0.0);
        for (_, &si) in scores.iter().enumerate().filter(|(i, _)| anomalous[*i]) {
            for (j, &sj) in scores.iter().enumerate() {
                if !anomalous[j] {
                    pairs += 1.0;
                    sum += if si > sj {
                        1.0
                    } else if si == sj {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        sum / pairs
    }

    #[test]
    fn auc_hand_computed_cases() {
        let t = true;
        let f = false;
        // Perfect separation, inverted, and all tied.
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &[f, f, t, t]), Some(1.0));
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &[t, t, f, f]), Some(0.0));
        assert_eq!(roc_auc(&[0.5; 4], &[t, f, t, f]), Some(0.5));
        // Positives {0.9, 0.4}, negatives {0.1, 0.5, 0.3}: pairs won 3 + 2 = 5 of 6.
        assert_eq!(
            roc_auc(&[0.9, 0.1, 0.5, 0.4, 0.3], &[t, f, f, t, f]),
            Some(5.0 / 6.0)
        );
        // A tie across the classes: positives {2, 1}, negatives {1, 0}: 1 + 1 + 0.5 + 1 = 3.5
        // of 4 pairs.
        assert_eq!(roc_auc(&[2.0, 1.0, 1.0, 0.0], &[t, t, f, f]), Some(0.875));
        // Ties within a class change nothing: positives {3, 3}, negatives {1, 1, 2}.
        assert_eq!(
            roc_auc(&[3.0, 1.0, 3.0, 1.0, 2.0], &[t, f, t, f, f]),
            Some(1.0)
        );
        // Undefined without both classes, or with a NaN score.
        assert_eq!(roc_auc(&[1.0, 2.0], &[t, t]), None);
        assert_eq!(roc_auc(&[1.0, 2.0], &[f, f]), None);
        assert_eq!(roc_auc(&[f64::NAN, 2.0], &[t, f]), None);
    }

    #[test]
    fn auc_equals_the_pair_count_on_tied_random_scores() {
        let mut rng = crate::rng::Rng::new(11);
        for n in [2usize, 3, 7, 50, 201] {
            // Scores on a coarse grid: many ties within and across the classes.
            let scores: Vec<f64> = (0..n)
                .map(|_| ((rng.next_u64() % 5) as f64) / 4.0)
                .collect();
            let mut anomalous: Vec<bool> = (0..n).map(|_| rng.next_u64() % 3 == 0).collect();
            anomalous[0] = true;
            anomalous[1] = false;
            let got = roc_auc(&scores, &anomalous).unwrap();
            let want = auc_pairs(&scores, &anomalous);
            assert!((got - want).abs() < 1e-12, "n {n}: {got} vs {want}");
        }
    }

    #[test]
    fn classes_parse_format_and_check() {
        assert_eq!(parse_classes("0-8").unwrap(), (0..9).collect::<Vec<u32>>());
        assert_eq!(parse_classes(" 4-6, 0,2,5").unwrap(), vec![0, 2, 4, 5, 6]);
        assert_eq!(format_classes(&[0, 2, 4, 5, 6]), "0,2,4-6");
        assert_eq!(format_classes(&(0..9).collect::<Vec<u32>>()), "0-8");
        for bad in ["", "a", "3-1", "1,,2", "-1", "0-"] {
            assert!(parse_classes(bad).is_err(), "{bad:?}");
        }
        assert!(check_classes(&[0, 1], 3, "--normal-classes").is_ok());
        let e = check_classes(&[0, 3], 3, "--normal-classes").unwrap_err();
        assert!(e.to_string().contains("class 3 does not exist"), "{e}");
        let e = check_classes(&[0, 1, 2], 3, "--normal-classes").unwrap_err();
        assert!(e.to_string().contains("no anomalies"), "{e}");
    }

    #[test]
    fn reconstruction_metrics_write_null_accuracy_and_read_back() {
        let m = crate::eval::Metrics {
            test_accuracy: f64::NAN,
            retrieval_map: 0.5,
            retrieval_rank1: 0.6,
            noise_robustness: Vec::new(),
            corruptions: Vec::new(),
            curve: vec![crate::eval::EpochRecord {
                epoch: 1,
                phase: "baseline".into(),
                train_loss: 0.3,
                ce_loss: 0.3,
                noise_loss: 0.0,
                train_accuracy: f64::NAN,
                test_accuracy: f64::NAN,
                test_mse: Some(0.25),
                seconds: 1.0,
                denoisers: Vec::new(),
            }],
            denoisers: Vec::new(),
            feature_noise: Vec::new(),
            reconstruction: Some(ReconstructionMetrics {
                test_mse: 0.25,
                anomaly: Some(AnomalyMetrics {
                    normal_classes: vec![0, 1, 2],
                    n_normal: 30,
                    n_anomalous: 10,
                    auc: 0.875,
                    mse_normal: 0.25,
                    mse_anomalous: 0.75,
                }),
                noise: vec![ReconstructionNoisePoint {
                    sigma: 0.1,
                    mse_normal: 0.3,
                    auc: Some(0.8),
                }],
            }),
        };
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains(r#""test_accuracy":null"#), "{text}");
        let back: crate::eval::Metrics = serde_json::from_str(&text).unwrap();
        assert!(back.test_accuracy.is_nan() && back.curve[0].train_accuracy.is_nan());
        assert_eq!(back.reconstruction, m.reconstruction);
        assert!(back.is_reconstruction());
        let line = crate::run::summary(&back);
        assert!(line.contains("anomaly ROC AUC 0.8750"), "{line}");
        assert!(line.contains("normal classes 0-2"), "{line}");
        assert!(!line.contains("accuracy"), "{line}");
    }

    #[test]
    fn filter_keeps_the_normal_samples_in_order() {
        let s = Split {
            x: vec![0.0, 0.1, 1.0, 1.1, 2.0, 2.1, 3.0, 3.1],
            y: vec![0, 1, 2, 1],
        };
        let f = filter_split(&s, &[1, 2]);
        assert_eq!(f.y, vec![1, 2, 1]);
        assert_eq!(f.x, vec![1.0, 1.1, 2.0, 2.1, 3.0, 3.1]);
    }
}
