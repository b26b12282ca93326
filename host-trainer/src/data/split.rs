//! The seeded, stratified train/test split used by every source without a fixed split.
//!
//! Rule (documented in `docs/data.md`):
//! 1. The test set gets `n_test` samples in all. Each class `c` with `n_c` samples gets the integer
//!    part of its exact share `n_test · n_c / n`; the samples still missing go one each to the
//!    classes with the largest fractional parts (ties: lower class index) — the largest-remainder
//!    method, so the per-class proportions are as close to the data's as integers allow.
//! 2. Within a class, its sample indices are shuffled by a Fisher–Yates pass driven by
//!    [`Rng`] seeded with `seed`; the first quota go to the test set.
//! 3. Both index lists are returned in ascending order (the source's order is kept).

use super::Rng;

/// Train and test sample indices (ascending) of a stratified split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitIndices {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// Number of test samples for a fraction: `round(n · fraction)`, clamped to `0..=n`.
pub fn test_count(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).round().max(0.0) as usize).min(n)
}

/// Splits samples with `labels` (classes `0..num_classes`) into `n_test` test and `n − n_test`
/// train indices, stratified by class and seeded (see the module doc for the exact rule).
/// Labels `>= num_classes` are a caller bug and panic.
pub fn stratified_split(
    labels: &[u32],
    num_classes: usize,
    n_test: usize,
    seed: u64,
) -> SplitIndices {
    let n = labels.len();
    let n_test = n_test.min(n);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &y) in labels.iter().enumerate() {
        by_class[y as usize].push(i);
    }
    // Largest-remainder quotas, exact in integers: share_c = n_test·n_c / n.
    let mut quota: Vec<usize> = by_class
        .iter()
        .map(|c| n_test * c.len() / n.max(1))
        .collect();
    let mut order: Vec<usize> = (0..num_classes).collect();
    let rem = |c: usize| (n_test * by_class[c].len()) % n.max(1);
    order.sort_by(|&a, &b| rem(b).cmp(&rem(a)).then(a.cmp(&b)));
    let missing = n_test - quota.iter().sum::<usize>();
    for &c in order.iter().take(missing) {
        quota[c] += 1;
    }
    let mut rng = Rng::new(seed);
    let (mut train, mut test) = (Vec::with_capacity(n - n_test), Vec::with_capacity(n_test));
    for (members, &q) in by_class.iter_mut().zip(&quota) {
        for i in (1..members.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            members.swap(i, j);
        }
        test.extend_from_slice(&members[..q]);
        train.extend_from_slice(&members[q..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    SplitIndices { train, test }
}

/// The train and test splits of samples `x` (`sample_len` values each) with labels `y` (classes
/// `0..num_classes`): [`stratified_split`] of `round(n · test_fraction)` test samples, seeded.
/// Sources without a fixed split use it (`csv`, `folder`). Errors: a fraction outside (0, 1), or
/// a split that would be empty; `what` names the source (a file or folder) in the error.
pub fn split_by_fraction(
    x: &[f32],
    y: &[u32],
    num_classes: usize,
    sample_len: usize,
    test_fraction: f64,
    seed: u64,
    what: &str,
) -> anyhow::Result<(super::Split, super::Split)> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        anyhow::bail!("test fraction {test_fraction} must be strictly between 0 and 1");
    }
    let idx = stratified_split(y, num_classes, test_count(y.len(), test_fraction), seed);
    if idx.train.is_empty() || idx.test.is_empty() {
        anyhow::bail!(
            "{what}: {} samples with test fraction {test_fraction} leave an empty train or test \
             split",
            y.len()
        );
    }
    Ok((
        gather(x, y, sample_len, &idx.train),
        gather(x, y, sample_len, &idx.test),
    ))
}

/// Gathers the samples `indices` (each `sample_len` values of `x`) and their labels.
pub fn gather(x: &[f32], y: &[u32], sample_len: usize, indices: &[usize]) -> super::Split {
    let mut out = super::Split {
        x: Vec::with_capacity(indices.len() * sample_len),
        y: Vec::with_capacity(indices.len()),
    };
    for &i in indices {
        out.x
            .extend_from_slice(&x[i * sample_len..(i + 1) * sample_len]);
        out.y.push(y[i]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_are_exact_and_proportional() {
        // 10 000 samples, classes of 1000 ± k: an exact 2000-sample test set, ≈20% per class.
        let sizes = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
        let labels: Vec<u32> = sizes
            .iter()
            .enumerate()
            .flat_map(|(c, &k)| std::iter::repeat_n(c as u32, k))
            .collect();
        let s = stratified_split(&labels, 10, 2000, 7);
        assert_eq!(s.test.len(), 2000);
        assert_eq!(s.train.len(), 8000);
        for (c, &k) in sizes.iter().enumerate() {
            let t = s.test.iter().filter(|&&i| labels[i] == c as u32).count();
            let exact = 2000.0 * k as f64 / 10_000.0;
            assert!((t as f64 - exact).abs() < 1.0, "class {c}: {t} vs {exact}");
        }
        let mut all: Vec<usize> = s.train.iter().chain(&s.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..10_000).collect::<Vec<_>>());
    }

    #[test]
    fn seeded_and_seed_sensitive() {
        let labels: Vec<u32> = (0..300).map(|i| (i % 3) as u32).collect();
        let a = stratified_split(&labels, 3, 60, 1);
        assert_eq!(a, stratified_split(&labels, 3, 60, 1));
        assert_ne!(a, stratified_split(&labels, 3, 60, 2));
        assert!(a.train.windows(2).all(|w| w[0] < w[1]));
        assert!(a.test.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn largest_remainder_ties_go_to_lower_class() {
        // 3 classes of 1, one test sample: all shares are 1/3, class 0 gets it.
        let s = stratified_split(&[2, 1, 0], 3, 1, 0);
        assert_eq!(s.test, vec![2]);
        assert_eq!(test_count(10, 0.25), 3); // 2.5 rounds away from zero
        assert_eq!(test_count(10, 2.0), 10);
    }
}
