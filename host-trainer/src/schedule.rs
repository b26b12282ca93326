//! The DDPM noise schedule and the per-layer timestep assignment.
//!
//! Betas are linear, `β = linspace(β_start, β_end, T)`; timestep `t ∈ 1..=T` uses `β_t = betas[t−1]`,
//! `α_t = 1 − β_t` and `ᾱ_t = Π_{s≤t} α_s`, all in f64. One reverse DDPM step with predicted noise
//! `ε̂` is `x_{t−1} = c3·x_t − c1·ε̂ + c2·z` ([`Coeffs`]).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Schedule hyper-parameters (`--beta-start`, `--beta-end`, `--timesteps`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    pub beta_start: f64,
    pub beta_end: f64,
    pub timesteps: usize,
}

impl Default for ScheduleSpec {
    /// The paper's code: `linspace(1e-4, 2e-3, 1000)`.
    fn default() -> Self {
        Self {
            beta_start: 1e-4,
            beta_end: 2e-3,
            timesteps: 1000,
        }
    }
}

/// The coefficients of one reverse step at timestep `t`:
/// `c3 = 1/√α_t`, `c1 = β_t / (√(1−ᾱ_t)·√α_t)`, `c2 = √β_t`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coeffs {
    pub c1: f64,
    pub c2: f64,
    pub c3: f64,
    /// `√ᾱ_t`, the signal scale of forward noising `x_t = √ᾱ_t·x + √(1−ᾱ_t)·ε`.
    pub sqrt_alpha_bar: f64,
    /// `√(1−ᾱ_t)`, the noise scale of forward noising.
    pub sqrt_one_minus_alpha_bar: f64,
}

/// A computed schedule: `betas[t−1]` and `alpha_bar[t−1]` for `t ∈ 1..=T`.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub spec: ScheduleSpec,
    pub betas: Vec<f64>,
    pub alpha_bar: Vec<f64>,
}

impl Schedule {
    /// Builds the linear schedule; rejects `T = 0` and betas outside `(0, 1)`.
    pub fn new(spec: ScheduleSpec) -> Result<Self> {
        let ScheduleSpec {
            beta_start,
            beta_end,
            timesteps,
        } = spec;
        if timesteps == 0 {
            bail!("--timesteps must be at least 1");
        }
        for (flag, b) in [("--beta-start", beta_start), ("--beta-end", beta_end)] {
            if !(b > 0.0 && b < 1.0) {
                bail!("{flag} {b} is outside (0, 1)");
            }
        }
        let betas: Vec<f64> = (0..timesteps)
            .map(|i| {
                if timesteps == 1 {
                    beta_start
                } else {
                    beta_start + (beta_end - beta_start) * i as f64 / (timesteps - 1) as f64
                }
            })
            .collect();
        let mut prod = 1.0;
        let alpha_bar = betas
            .iter()
            .map(|b| {
                prod *= 1.0 - b;
                prod
            })
            .collect();
        Ok(Self {
            spec,
            betas,
            alpha_bar,
        })
    }

    /// Reverse-step coefficients at timestep `t` (`1..=T`). Panics outside that range (a bug:
    /// timesteps are validated by [`layer_timesteps`]).
    pub fn coeffs(&self, t: usize) -> Coeffs {
        assert!(
            t >= 1 && t <= self.betas.len(),
            "timestep {t} outside 1..={}",
            self.betas.len()
        );
        let beta = self.betas[t - 1];
        let alpha = 1.0 - beta;
        let ab = self.alpha_bar[t - 1];
        Coeffs {
            c1: beta / ((1.0 - ab).sqrt() * alpha.sqrt()),
            c2: beta.sqrt(),
            c3: 1.0 / alpha.sqrt(),
            sqrt_alpha_bar: ab.sqrt(),
            sqrt_one_minus_alpha_bar: (1.0 - ab).sqrt(),
        }
    }
}

/// Timesteps of the `n` denoised layers in forward order: layer `i` (1-based) gets
/// `t_i = stride·(n − i + 1)`, so the first layer has the largest timestep and the last layer
/// `stride`. Errors when `stride` is 0 or `t_1 > T`.
pub fn layer_timesteps(n: usize, stride: usize, timesteps: usize) -> Result<Vec<usize>> {
    if stride == 0 {
        bail!("--t-stride must be at least 1");
    }
    let first = stride * n;
    if first > timesteps {
        bail!(
            "--t-stride {stride} with {n} denoised layers gives timestep {first} for the first layer, \
             more than --timesteps {timesteps}"
        );
    }
    Ok((1..=n).map(|i| stride * (n - i + 1)).collect())
}

/// The `--t-list` timesteps for `n` denoised layers: exactly `n` values, each in `1..=T`.
pub fn listed_timesteps(list: &[usize], n: usize, timesteps: usize) -> Result<Vec<usize>> {
    if list.len() != n {
        bail!(
            "--t-list has {} value(s), the backbone has {n} denoised layer(s): give one timestep per layer, in forward order",
            list.len()
        );
    }
    if let Some(&t) = list.iter().find(|&&t| t == 0 || t > timesteps) {
        bail!("--t-list: timestep {t} is outside 1..={timesteps} (--timesteps)");
    }
    Ok(list.to_vec())
}

/// Sinusoidal embedding of timestep `t` with `dim` (even) values:
/// `[sin(t·ω_0), …, sin(t·ω_{h−1}), cos(t·ω_0), …, cos(t·ω_{h−1})]`, `h = dim/2`,
/// `ω_k = 10000^(−k/h)` (the DDPM / transformer convention).
pub fn sinusoidal(t: usize, dim: usize) -> Vec<f64> {
    let h = dim / 2;
    let freqs: Vec<f64> = (0..h)
        .map(|k| (-(10000f64.ln()) * k as f64 / h as f64).exp())
        .collect();
    let mut v: Vec<f64> = freqs.iter().map(|w| (t as f64 * w).sin()).collect();
    v.extend(freqs.iter().map(|w| (t as f64 * w).cos()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_matches_linspace_and_cumprod() {
        let s = Schedule::new(ScheduleSpec::default()).unwrap();
        assert_eq!(s.betas.len(), 1000);
        assert_eq!(s.betas[0], 1e-4);
        assert!((s.betas[999] - 2e-3).abs() < 1e-18);
        assert!((s.betas[1] - (1e-4 + 1.9e-3 / 999.0)).abs() < 1e-18);
        assert!((s.alpha_bar[1] - (1.0 - 1e-4) * (1.0 - s.betas[1])).abs() < 1e-15);
    }

    #[test]
    fn coefficients_at_t1() {
        let s = Schedule::new(ScheduleSpec::default()).unwrap();
        let c = s.coeffs(1);
        // ᾱ_1 = α_1, so c1 = β/(√β·√α) = √β/√α.
        assert!((c.c1 - (1e-4f64).sqrt() / (1.0 - 1e-4f64).sqrt()).abs() < 1e-15);
        assert!((c.c2 - 0.01).abs() < 1e-15);
        assert!((c.c3 - 1.0 / (1.0 - 1e-4f64).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn timesteps_first_layer_largest() {
        assert_eq!(layer_timesteps(3, 1, 1000).unwrap(), vec![3, 2, 1]);
        assert_eq!(layer_timesteps(4, 5, 20).unwrap(), vec![20, 15, 10, 5]);
        let e = layer_timesteps(4, 6, 20).unwrap_err().to_string();
        assert!(e.contains("timestep 24"), "{e}");
        assert!(layer_timesteps(2, 0, 10).is_err());
    }

    #[test]
    fn listed_timesteps_are_checked() {
        assert_eq!(
            listed_timesteps(&[1, 1, 1], 3, 1000).unwrap(),
            vec![1, 1, 1]
        );
        assert_eq!(listed_timesteps(&[5, 2], 2, 5).unwrap(), vec![5, 2]);
        let e = listed_timesteps(&[1, 1], 3, 1000).unwrap_err().to_string();
        assert!(e.contains("2 value(s)") && e.contains("3 denoised"), "{e}");
        let e = listed_timesteps(&[1, 6], 2, 5).unwrap_err().to_string();
        assert!(e.contains("timestep 6"), "{e}");
        assert!(listed_timesteps(&[0, 1], 2, 5).is_err());
    }

    #[test]
    fn rejects_bad_schedules() {
        let bad = |b0, b1, t| {
            Schedule::new(ScheduleSpec {
                beta_start: b0,
                beta_end: b1,
                timesteps: t,
            })
        };
        assert!(bad(1e-4, 2e-3, 0).is_err());
        assert!(bad(0.0, 2e-3, 10).is_err());
        assert!(bad(1e-4, 1.0, 10).is_err());
        assert!(bad(f64::NAN, 0.1, 10).is_err());
    }

    #[test]
    fn sinusoidal_values() {
        let v = sinusoidal(5, 4);
        assert_eq!(v.len(), 4);
        assert!((v[0] - 5f64.sin()).abs() < 1e-15);
        assert!((v[1] - (5.0 * 0.01f64).sin()).abs() < 1e-15);
        assert!((v[2] - 5f64.cos()).abs() < 1e-15);
    }
}
