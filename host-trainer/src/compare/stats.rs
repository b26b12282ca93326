//! Statistics of a comparison over seeds: mean, sample standard deviation, paired per-seed
//! differences with better/worse/tied counts, and the verdict rule.
//!
//! All values are plain numbers (metrics as fractions in `[0, 1]`); summation runs in seed order.

use serde::{Deserialize, Serialize};

/// A paired difference with `|d| < TIE` counts as tied (neither better nor worse).
pub const TIE: f64 = 1e-9;

/// Fraction of seeds that must be better for an arm to beat a control (with a positive mean).
pub const BETTER_FRACTION: f64 = 0.8;

/// Arithmetic mean `Σx / n`; `None` for no values.
pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    Some(xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Sample standard deviation `√(Σ(x − x̄)² / (n − 1))`; `None` for fewer than two values.
pub fn sample_std(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs)?;
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    Some((ss / (xs.len() - 1) as f64).sqrt())
}

/// Paired differences `arm[s] − control[s]` over the seeds `s` both have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// Per-seed differences, in seed order.
    pub diffs: Vec<f64>,
    pub mean: Option<f64>,
    /// Sample standard deviation of the differences (n − 1).
    pub std: Option<f64>,
    /// Seeds with `d ≥ TIE`.
    pub better: usize,
    /// Seeds with `d ≤ −TIE`.
    pub worse: usize,
    /// Seeds with `|d| < TIE`.
    pub tied: usize,
}

/// Paired differences of two equally long, seed-aligned series.
pub fn paired(arm: &[f64], control: &[f64]) -> Paired {
    let diffs: Vec<f64> = arm.iter().zip(control).map(|(a, c)| a - c).collect();
    let better = diffs.iter().filter(|d| **d >= TIE).count();
    let worse = diffs.iter().filter(|d| **d <= -TIE).count();
    Paired {
        mean: mean(&diffs),
        std: sample_std(&diffs),
        tied: diffs.len() - better - worse,
        better,
        worse,
        diffs,
    }
}

/// Seeds that must be better to beat a control over `n` seeds: `⌈0.8·n⌉` (integer arithmetic).
pub fn required_better(n: usize) -> usize {
    (4 * n).div_ceil(5)
}

/// True when the arm beats this control: mean difference `> 0` and at least `⌈0.8·n⌉` of the
/// `n` seeds better.
pub fn beats(p: &Paired) -> bool {
    !p.diffs.is_empty()
        && p.mean.is_some_and(|m| m > 0.0)
        && p.better >= required_better(p.diffs.len())
}

/// True when the arm beats every control in `against` (and there is at least one).
pub fn beats_all<'a>(against: impl IntoIterator<Item = &'a Paired>) -> bool {
    let mut any = false;
    for p in against {
        if !beats(p) {
            return false;
        }
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn mean_and_sample_std_of_hand_computed_numbers() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, Σ(x−5)² = 32, sample var 32/7.
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&xs), Some(5.0));
        assert!(close(sample_std(&xs).unwrap(), (32.0f64 / 7.0).sqrt()));
        assert_eq!(mean(&[]), None);
        assert_eq!(sample_std(&[1.0]), None);
        assert_eq!(sample_std(&[0.3, 0.3]), Some(0.0));
    }

    #[test]
    fn paired_differences_and_counts() {
        let arm = [0.90, 0.92, 0.95, 0.80, 0.85];
        let ctl = [0.89, 0.92, 0.94, 0.81, 0.83];
        let p = paired(&arm, &ctl);
        // diffs 0.01, 0, 0.01, −0.01, 0.02 (up to rounding): mean 0.006.
        assert_eq!((p.better, p.worse, p.tied), (3, 1, 1));
        assert!(close(p.mean.unwrap(), 0.006));
        let d = [0.01, 0.0, 0.01, -0.01, 0.02];
        let m = 0.006;
        let var = d.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 4.0;
        assert!(close(p.std.unwrap(), var.sqrt()));
        assert_eq!(p.diffs.len(), 5);
        // A difference far below TIE is a tie, one at 1e-8 is not.
        let q = paired(&[1.0 + 1e-12, 1.0 + 1e-8], &[1.0, 1.0]);
        assert_eq!((q.better, q.worse, q.tied), (1, 0, 1));
    }

    #[test]
    fn required_better_is_ceil_of_four_fifths() {
        let want = [
            (1, 1),
            (2, 2),
            (3, 3),
            (4, 4),
            (5, 4),
            (6, 5),
            (10, 8),
            (11, 9),
        ];
        for (n, k) in want {
            assert_eq!(required_better(n), k, "n = {n}");
            assert_eq!(k, (0.8 * n as f64 - 1e-12).ceil() as usize);
        }
    }

    #[test]
    fn verdict_needs_positive_mean_and_enough_better_seeds_against_every_control() {
        // 4 of 5 better, mean > 0: beats.
        let good = paired(&[1.0, 1.0, 1.0, 1.0, 0.0], &[0.9, 0.9, 0.9, 0.9, 0.1]);
        assert!(beats(&good));
        // 3 of 5 better: not enough seeds even with a large mean.
        let few = paired(&[2.0, 2.0, 2.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.1, 0.1]);
        assert!(few.mean.unwrap() > 0.0 && !beats(&few));
        // 4 of 5 better but one large loss: mean < 0.
        let neg = paired(&[1.0, 1.0, 1.0, 1.0, 0.0], &[0.99, 0.99, 0.99, 0.99, 1.0]);
        assert!(neg.mean.unwrap() < 0.0 && !beats(&neg));
        // All tied: mean 0 is not > 0.
        let tie = paired(&[0.5; 5], &[0.5; 5]);
        assert!(!beats(&tie));
        assert!(beats_all([&good, &good, &good]));
        assert!(!beats_all([&good, &few, &good]));
        assert!(!beats_all(std::iter::empty::<&Paired>()));
    }
}
