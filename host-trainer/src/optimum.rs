//! The L2-optimal linear noise predictor of one denoising layer, in closed form, and what the
//! fused reverse step then does to the layer input (all in f64, on the CPU).
//!
//! Notation (one denoised layer, input width `C`, timestep `t`): the layer input `x ∈ R^C` has
//! mean `μ` and covariance `Σ` over the train split (for a conv input `[N, C, H, W]`, every
//! pixel's channel vector is one sample: `N·H·W` samples; for a Linear on tokens `[N, T, C]`,
//! every token is one sample: `N·T` samples). Forward noising is
//! `x_t = s·x + n·ε`, `s = √ᾱ_t`, `n = √(1−ᾱ_t)`, `ε ~ N(0, I)`, and the predictor is affine,
//! `ε̂ = D·x_t + o` (in the model `o = D·e_t + d`).
//!
//! * **Optimum.** Minimizing the L2 part `E‖ε − ε̂‖²` is linear regression of `ε` on `x_t`:
//!   `Cov(x_t) = K = s²Σ + n²I`, `Cov(ε, x_t) = n·I`, so
//!   `D* = n·K⁻¹` (symmetric), `o* = E ε − D*·E x_t = −s·D*·μ`.
//!   `K ⪰ n²I` is positive definite even where `Σ` is singular (constant pixels): the noise
//!   itself regularizes the fit, so no extra ridge term is needed; `K` is factored by Cholesky.
//! * **Its loss**, per element: `L2* = 1 − n²·tr(K⁻¹)/C = (1/C)·Σ_λ s²λ / (s²λ + n²)` over the
//!   eigenvalues `λ` of `Σ` (a direction without variance is predicted exactly; zero predictor: 1).
//! * **Any predictor's expected L2** (exact expectation over `ε`, on the train split's moments):
//!   with `r = ε − D·x_t − o = (I − nD)·ε − s·D·x − o`,
//!   `E‖r‖² = ‖I − nD‖²_F + s²·tr(D·Σ·Dᵀ) + ‖s·D·μ + o‖²` (divided by `C` per element).
//! * **Shrinkage.** The fused step is `x' = A·x_t + c`, `A = c3·I − c1·D`. At `D = D*`, in the
//!   eigenbasis of `Σ`, `A` multiplies a direction of variance `λ` by
//!   `a(λ) = (1/√α_t)·(1 − β_t / (ᾱ_t·λ + 1 − ᾱ_t))` — a per-layer Wiener filter: directions
//!   with `ᾱ_t·λ ≫ 1 − ᾱ_t` pass (× `1/√α_t`), directions without variance are removed
//!   (`a(0) = (1/√α_t)(1 − β_t/(1 − ᾱ_t))`, which is 0 at `t = 1`).

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::schedule::Coeffs;

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

/// The rows of a layer input as `[M, C]` f64 on the CPU: `[N, C]` as is, tokens `[N, T, C]` as
/// their `N·T` token vectors, `[N, C, H, W]` as its `N·H·W` channel vectors.
pub fn rows(x: &Tensor) -> Tensor {
    let x = x.to_device(Device::Cpu).to_kind(Kind::Double);
    if x.dim() == 4 {
        let c = x.size()[1];
        x.permute([0, 2, 3, 1]).reshape([-1, c])
    } else {
        let c = x.size()[x.dim() - 1];
        x.reshape([-1, c])
    }
}

/// Mean and covariance (population, `1/M`) of a layer input over a data split.
#[derive(Debug)]
pub struct Moments {
    /// Number of rows `M` (samples, or samples × pixels for a conv input, samples × tokens for
    /// a Linear on tokens).
    pub count: i64,
    /// `μ: [C]`, f64.
    pub mean: Tensor,
    /// `Σ: [C, C]`, f64.
    pub cov: Tensor,
}

/// Accumulates [`Moments`] batch by batch. Sums are taken around a shift (the first batch's
/// mean), so `Σ = S₂/M − m̄m̄ᵀ` does not cancel catastrophically for inputs far from zero.
#[derive(Debug)]
pub struct MomentAccumulator {
    channels: i64,
    shift: Option<Tensor>,
    sum: Tensor,
    sum_outer: Tensor,
    count: i64,
}

impl MomentAccumulator {
    pub fn new(channels: i64) -> Self {
        Self {
            channels,
            shift: None,
            sum: Tensor::zeros([channels], F64),
            sum_outer: Tensor::zeros([channels, channels], F64),
            count: 0,
        }
    }

    /// Adds a batch of layer inputs (`[N, C]`, `[N, T, C]` or `[N, C, H, W]`).
    pub fn add(&mut self, x: &Tensor) {
        let r = rows(x);
        if r.size()[0] == 0 {
            return;
        }
        let shift = self
            .shift
            .get_or_insert_with(|| r.mean_dim(0, false, Kind::Double));
        let centered = r - &*shift;
        self.sum += centered.sum_dim_intlist(0, false, Kind::Double);
        self.sum_outer += centered.tr().matmul(&centered);
        self.count += centered.size()[0];
    }

    /// The moments; an error when nothing was added.
    pub fn finish(&self) -> Result<Moments> {
        let Some(shift) = &self.shift else {
            bail!("no layer inputs to take moments of (empty train split)")
        };
        let m = self.count as f64;
        let mbar = &self.sum / m;
        let cov = &self.sum_outer / m - mbar.outer(&mbar);
        let cov = (&cov + cov.tr()) * 0.5;
        debug_assert_eq!(cov.size(), [self.channels, self.channels]);
        Ok(Moments {
            count: self.count,
            mean: shift + mbar,
            cov,
        })
    }
}

/// The L2-optimal affine noise predictor `ε̂ = D*·x_t + o*` and its loss.
#[derive(Debug)]
pub struct Optimum {
    /// `D* = n·(s²Σ + n²I)⁻¹: [C, C]`, f64.
    pub d_mat: Tensor,
    /// `o* = −s·D*·μ: [C]`, f64.
    pub offset: Tensor,
    /// `L2*`, per element.
    pub l2: f64,
}

/// `K = s²Σ + n²I`.
fn noisy_cov(m: &Moments, k: Coeffs) -> Tensor {
    let c = m.cov.size()[0];
    let (s, n) = (k.sqrt_alpha_bar, k.sqrt_one_minus_alpha_bar);
    &m.cov * (s * s) + Tensor::eye(c, F64) * (n * n)
}

/// The whitening of the noisy input `x_t` for gradient training: `(P, P⁻¹, m)` with
/// `P = K^{-1/2}`, `P⁻¹ = K^{1/2}` (`K = s²Σ + n²I`, by eigendecomposition) and `m = s·μ`.
pub fn whitening(m: &Moments, k: Coeffs) -> (Tensor, Tensor, Tensor) {
    let (kappa, q) = noisy_cov(m, k).linalg_eigh("L");
    let root = kappa.clamp_min(f64::MIN_POSITIVE).sqrt();
    let p = q.matmul(&root.reciprocal().diag(0)).matmul(&q.tr());
    let p_inv = q.matmul(&root.diag(0)).matmul(&q.tr());
    (p, p_inv, &m.mean * k.sqrt_alpha_bar)
}

/// The closed-form optimum at timestep coefficients `k` (module docs).
pub fn optimum(m: &Moments, k: Coeffs) -> Result<Optimum> {
    let (s, n) = (k.sqrt_alpha_bar, k.sqrt_one_minus_alpha_bar);
    let c = m.cov.size()[0];
    let chol = Tensor::f_linalg_cholesky(&noisy_cov(m, k), false)
        .map_err(|e| anyhow::anyhow!("closed-form fit: s²Σ + n²I is not positive definite: {e}"))?;
    let k_inv = chol.cholesky_inverse(false);
    let d_mat = &k_inv * n;
    let offset = d_mat.mv(&m.mean) * (-s);
    let l2 = 1.0 - n * d_mat.trace().double_value(&[]) / c as f64;
    Ok(Optimum { d_mat, offset, l2 })
}

/// Expected L2 per element of the predictor `ε̂ = D·x_t + o` (exact expectation over `ε`, the
/// input's moments `m`): `(‖I − nD‖²_F + s²·tr(DΣDᵀ) + ‖s·D·μ + o‖²) / C`.
pub fn expected_l2(m: &Moments, k: Coeffs, d_mat: &Tensor, offset: &Tensor) -> f64 {
    let (s, n) = (k.sqrt_alpha_bar, k.sqrt_one_minus_alpha_bar);
    let d = d_mat.to_device(Device::Cpu).to_kind(Kind::Double);
    let o = offset.to_device(Device::Cpu).to_kind(Kind::Double);
    let c = d.size()[0];
    let resid = Tensor::eye(c, F64) - &d * n;
    let t1 = resid.square().sum(Kind::Double).double_value(&[]);
    let t2 = (s * s) * d.matmul(&m.cov).matmul(&d.tr()).trace().double_value(&[]);
    let bias = d.mv(&m.mean) * s + o;
    let t3 = bias.square().sum(Kind::Double).double_value(&[]);
    (t1 + t2 + t3) / c as f64
}

/// `a(λ) = (1/√α_t)·(1 − β_t / (ᾱ_t·λ + 1 − ᾱ_t))`: the factor by which the fused step at the
/// optimum scales an input direction of variance `λ` (module docs).
pub fn shrinkage(lambda: f64, beta_t: f64, alpha_bar_t: f64) -> f64 {
    (1.0 / (1.0 - beta_t).sqrt()) * (1.0 - beta_t / (alpha_bar_t * lambda + 1.0 - alpha_bar_t))
}

/// Largest singular value of a matrix: `√λ_max(AᵀA)` (f64).
pub fn spectral_norm(a: &Tensor) -> f64 {
    let a = a.to_device(Device::Cpu).to_kind(Kind::Double);
    let gram = a.tr().matmul(&a);
    gram.linalg_eigvalsh("L")
        .max()
        .double_value(&[])
        .max(0.0)
        .sqrt()
}

#[cfg(test)]
/// Rows `[M, C]` whose population mean and covariance are exactly `mu` and `sigma` (up to
/// rounding): Gaussian draws, whitened with their own moments, re-coloured.
pub(crate) fn exact_rows(mu: &Tensor, sigma: &Tensor, m: i64) -> Tensor {
    tch::manual_seed(5);
    let c = mu.size()[0];
    let z = Tensor::randn([m, c], F64);
    let z = &z - z.mean_dim(0, true, Kind::Double);
    let cov = z.tr().matmul(&z) / m as f64;
    let white = z.matmul(&cov.linalg_cholesky(false).tr().inverse());
    let root = sigma.linalg_cholesky(false);
    white.matmul(&root.tr()) + mu
}

#[cfg(test)]
mod tests {
    use super::exact_rows;
    use super::*;
    use crate::schedule::{Schedule, ScheduleSpec};

    fn coeffs(t: usize, beta: f64) -> (Coeffs, f64, f64) {
        let s = Schedule::new(ScheduleSpec {
            beta_start: beta,
            beta_end: beta,
            timesteps: 10,
        })
        .unwrap();
        (s.coeffs(t), s.betas[t - 1], s.alpha_bar[t - 1])
    }

    fn random_cov(c: i64, singular: bool) -> Tensor {
        tch::manual_seed(9);
        let b = Tensor::randn([c, c], F64);
        let mut eig: Vec<f64> = (0..c)
            .map(|i| 10f64.powf(1.0 - 4.0 * i as f64 / c as f64))
            .collect();
        if singular {
            eig[c as usize - 1] = 1e-9; // numerically a constant direction
        }
        let (q, _) = Tensor::linalg_qr(&b, "reduced");
        q.matmul(&Tensor::from_slice(&eig).diag(0)).matmul(&q.tr())
    }

    #[test]
    fn moments_are_exact_and_batch_independent() {
        let mu = Tensor::from_slice(&[3.0f64, -200.0, 0.5]);
        let sigma = random_cov(3, false);
        let x = exact_rows(&mu, &sigma, 4000);
        let mut one = MomentAccumulator::new(3);
        one.add(&x);
        let mut many = MomentAccumulator::new(3);
        for chunk in x.split(333, 0) {
            many.add(&chunk);
        }
        for acc in [one, many] {
            let m = acc.finish().unwrap();
            assert_eq!(m.count, 4000);
            let em = (&m.mean - &mu).abs().max().double_value(&[]);
            let ec = (&m.cov - &sigma).abs().max().double_value(&[]);
            assert!(em < 1e-9 && ec < 1e-9, "mean err {em}, cov err {ec}");
        }
    }

    #[test]
    fn conv_inputs_are_per_pixel_channel_vectors() {
        let x = Tensor::arange(2 * 3 * 2 * 2, F64).view([2, 3, 2, 2]);
        let r = rows(&x);
        assert_eq!(r.size(), [8, 3]);
        // Row 1 = sample 0, pixel (0, 1): channels 0, 1, 2 at offsets 1, 5, 9.
        assert_eq!(
            Vec::<f64>::try_from(&r.get(1)).unwrap(),
            vec![1.0, 5.0, 9.0]
        );
    }

    #[test]
    fn optimum_matches_the_eigen_formula_and_is_a_minimum() {
        for (t, beta, singular) in [(1, 1e-2, false), (3, 1e-4, true), (2, 0.1, true)] {
            let (k, beta_t, ab) = coeffs(t, beta);
            let c = 6;
            let sigma = random_cov(c, singular);
            let mu = Tensor::from_slice(&[1.0f64, -2.0, 0.0, 4.0, 0.5, 7.0]);
            let m = Moments {
                count: 1,
                mean: mu.shallow_clone(),
                cov: sigma.shallow_clone(),
            };
            let opt = optimum(&m, k).unwrap();
            // Independent path: eigendecomposition, D* = Q·diag(n/(s²λ + n²))·Qᵀ.
            let (lam, q) = sigma.linalg_eigh("L");
            let (s, n) = (k.sqrt_alpha_bar, k.sqrt_one_minus_alpha_bar);
            let lam_v = Vec::<f64>::try_from(&lam).unwrap();
            let diag: Vec<f64> = lam_v.iter().map(|l| n / (s * s * l + n * n)).collect();
            let want = q.matmul(&Tensor::from_slice(&diag).diag(0)).matmul(&q.tr());
            let rel =
                ((&opt.d_mat - &want).norm().double_value(&[])) / want.norm().double_value(&[]);
            assert!(rel < 1e-9, "t {t}: D* relative error {rel}");
            let l2_eig: f64 = lam_v
                .iter()
                .map(|l| s * s * l / (s * s * l + n * n))
                .sum::<f64>()
                / c as f64;
            assert!((opt.l2 - l2_eig).abs() < 1e-9, "{} vs {l2_eig}", opt.l2);
            // The expected-L2 formula agrees at the optimum, and every perturbation is worse.
            let at = expected_l2(&m, k, &opt.d_mat, &opt.offset);
            assert!((at - opt.l2).abs() < 1e-9, "{at} vs {}", opt.l2);
            for j in 0..5 {
                tch::manual_seed(100 + j);
                let dd = Tensor::randn([c, c], F64) * 1e-3;
                let doff = Tensor::randn([c], F64) * 1e-3;
                let worse = expected_l2(&m, k, &(&opt.d_mat + dd), &(&opt.offset + doff));
                assert!(
                    worse > at,
                    "perturbation {j} lowered the loss: {worse} < {at}"
                );
            }
            // Zero predictor: exactly 1 per element.
            let zero = expected_l2(&m, k, &Tensor::zeros([c, c], F64), &Tensor::zeros([c], F64));
            assert!((zero - 1.0).abs() < 1e-12);
            // Shrinkage: A = c3·I − c1·D* has the eigenvalues a(λ).
            let a = Tensor::eye(c, F64) * k.c3 - &opt.d_mat * k.c1;
            let got =
                Vec::<f64>::try_from(&q.tr().matmul(&a).matmul(&q).diagonal(0, 0, 1)).unwrap();
            for (g, l) in got.iter().zip(&lam_v) {
                let w = shrinkage(*l, beta_t, ab);
                assert!((g - w).abs() < 1e-9, "a({l}) = {w}, step gives {g}");
            }
        }
    }

    #[test]
    fn expected_l2_matches_sampled_noise() {
        let (k, _, _) = coeffs(2, 0.05);
        let c = 4;
        let sigma = random_cov(c, false);
        let mu = Tensor::from_slice(&[0.3f64, -1.0, 2.0, 0.0]);
        let x = exact_rows(&mu, &sigma, 200_000);
        let m = Moments {
            count: 200_000,
            mean: mu,
            cov: sigma,
        };
        tch::manual_seed(3);
        let d = Tensor::randn([c, c], F64) * 0.3;
        let o = Tensor::randn([c], F64) * 0.3;
        let eps = Tensor::randn([200_000, c], F64);
        let xt = &x * k.sqrt_alpha_bar + &eps * k.sqrt_one_minus_alpha_bar;
        let r = eps - xt.matmul(&d.tr()) - &o;
        let sampled = r.square().mean(Kind::Double).double_value(&[]);
        let exact = expected_l2(&m, k, &d, &o);
        assert!(
            (sampled - exact).abs() < 0.01 * exact,
            "sampled {sampled} vs exact {exact}"
        );
    }

    #[test]
    fn whitening_whitens_the_noisy_input() {
        let (k, _, _) = coeffs(2, 0.01);
        let c = 5;
        let sigma = random_cov(c, true);
        let mu = Tensor::from_slice(&[1.0f64, 2.0, -1.0, 0.0, 3.0]);
        let m = Moments {
            count: 1,
            mean: mu.shallow_clone(),
            cov: sigma.shallow_clone(),
        };
        let (p, p_inv, mean) = whitening(&m, k);
        let kx = noisy_cov(&m, k);
        let white = p.matmul(&kx).matmul(&p.tr());
        let e = (white - Tensor::eye(c, F64)).abs().max().double_value(&[]);
        assert!(e < 1e-9, "P·K·Pᵀ − I: {e}");
        let e = (p.matmul(&p_inv) - Tensor::eye(c, F64))
            .abs()
            .max()
            .double_value(&[]);
        assert!(e < 1e-9, "P·P⁻¹ − I: {e}");
        let e = (mean - &mu * k.sqrt_alpha_bar)
            .abs()
            .max()
            .double_value(&[]);
        assert!(e < 1e-12);
    }

    #[test]
    fn spectral_norm_of_known_matrices() {
        let a = Tensor::from_slice(&[3.0f64, 0.0, 0.0, -4.0]).view([2, 2]);
        assert!((spectral_norm(&a) - 4.0).abs() < 1e-12);
        let r = Tensor::from_slice(&[1.0f64, 1.0, 1.0, 1.0]).view([2, 2]);
        assert!((spectral_norm(&r) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn shrinkage_table_values() {
        // t = 1: a(0) = 0, a(λ→∞) = 1/√α.
        assert!(shrinkage(0.0, 0.01, 0.99).abs() < 1e-15);
        assert!((shrinkage(1e12, 0.01, 0.99) - 1.0 / 0.99f64.sqrt()).abs() < 1e-9);
        // λ = 1 at t = 1, β = 0.1: (1/√0.9)(1 − 0.1/(0.9 + 0.1)) = 0.9/√0.9 = √0.9.
        assert!((shrinkage(1.0, 0.1, 0.9) - 0.9f64.sqrt()).abs() < 1e-15);
    }
}
