//! Input noise of the robustness protocol.

use crate::data::Rng;

/// `x + σ·ε` with `ε ~ N(0, 1)` i.i.d. per value (raw input units: pixel units for images in
/// `[0, 1]`), clipped to `range = (lo, hi)` when given. Deterministic: the noise stream depends
/// only on `seed` ([`Rng`], Box–Muller in f64, rounded to f32), so the same seed gives the same
/// noise on every platform. `σ = 0` returns `x` (clipped).
pub fn add_noise(x: &[f32], sigma: f32, range: Option<(f32, f32)>, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    x.iter()
        .map(|&v| {
            let noisy = v + sigma * rng.normal() as f32;
            match range {
                Some((lo, hi)) => noisy.max(lo).min(hi),
                None => noisy,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_clipped_and_scaled() {
        let x = vec![0.5f32; 20_000];
        let a = add_noise(&x, 0.1, Some((0.0, 1.0)), 3);
        assert_eq!(a, add_noise(&x, 0.1, Some((0.0, 1.0)), 3));
        assert_ne!(a, add_noise(&x, 0.1, Some((0.0, 1.0)), 4));
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
        let sd = (a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
        assert!((sd - 0.1).abs() < 0.005, "sd {sd}");
        let big = add_noise(&x, 2.0, Some((0.0, 1.0)), 5);
        assert!(big.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!(big.contains(&0.0) && big.contains(&1.0));
        let free = add_noise(&x, 2.0, None, 5);
        assert!(free.iter().any(|&v| v > 1.0) && free.iter().any(|&v| v < 0.0));
        assert_eq!(
            add_noise(&[0.25, 0.75], 0.0, Some((0.0, 1.0)), 9),
            vec![0.25, 0.75]
        );
    }
}
