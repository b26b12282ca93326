//! Denoisers measured and fitted on the train split: the closed-form fit
//! (`--denoiser-fit closed-form`) and the per-layer diagnostics of `metrics.json`.
//!
//! Both pass the whole (normalized) train split through the unfused reference forward
//! ([`Mode::Unfused`]: every denoised layer's input gets its reverse step, then the layer), in
//! batches of [`EVAL_BATCH`], without gradients. The input of denoised layer `i` therefore
//! depends on the denoisers of layers `< i`, so the fit goes layer by layer in forward order:
//! layer `i` is fitted on the inputs it sees once layers `0..i` are fitted.

use anyhow::Result;
use tch::{Kind, Tensor};

use crate::eval::DenoiserDiag;
use crate::evaluate;
use crate::model::{Grads, Mode, Model, Output};
use crate::optimum::{self, MomentAccumulator, Moments};

/// Calls `f` with the unfused forward's output of each batch of `x` (`[N, C, H, W]`, normalized).
fn for_each_batch(model: &Model, x: &Tensor, f: impl FnMut(&Output)) {
    evaluate::for_each_batch(model, x, Mode::Unfused, &[], f)
}

/// Position of denoiser `j`'s layer among the weighted layers (= index into `Output::inputs`).
fn input_index(model: &Model, j: usize) -> usize {
    let layer = model.denoisers[j].layer;
    model
        .arch
        .weighted_layers()
        .iter()
        .position(|&k| k == layer)
        .expect("a denoiser sits on a weighted layer")
}

/// The moments whose L2 optimum is the best predictor of `d`'s family: `m` itself for a dense
/// denoiser; for a diagonal one, `m` with its covariance's off-diagonal zeroed (the per-channel
/// regressions `ε̂_c = D_c·x_t,c + o_c` only see the variances, and `n·K⁻¹` of a diagonal
/// `K = s²Σ + n²I` is diagonal).
fn family(m: &Moments, d: &crate::denoiser::Denoiser) -> Moments {
    if d.is_diagonal() {
        Moments {
            count: m.count,
            mean: m.mean.shallow_clone(),
            cov: m.cov.diagonal(0, 0, 1).diag(0),
        }
    } else {
        Moments {
            count: m.count,
            mean: m.mean.shallow_clone(),
            cov: m.cov.shallow_clone(),
        }
    }
}

/// Train-split moments of denoiser `j`'s layer input under the model's current denoisers.
fn moments(model: &Model, x: &Tensor, j: usize) -> Result<Moments> {
    let i = input_index(model, j);
    let mut acc = MomentAccumulator::new(model.denoisers[j].channels());
    for_each_batch(model, x, |out| acc.add(&out.inputs[i]));
    acc.finish()
}

/// Train-split moments of every denoiser's layer input under the model's current denoisers (one
/// pass).
pub fn all_moments(model: &Model, x: &Tensor) -> Result<Vec<Moments>> {
    let idx: Vec<usize> = (0..model.denoisers.len())
        .map(|j| input_index(model, j))
        .collect();
    let mut accs: Vec<MomentAccumulator> = model
        .denoisers
        .iter()
        .map(|d| MomentAccumulator::new(d.channels()))
        .collect();
    for_each_batch(model, x, |out| {
        for (acc, &i) in accs.iter_mut().zip(&idx) {
            acc.add(&out.inputs[i]);
        }
    });
    accs.iter().map(MomentAccumulator::finish).collect()
}

/// Sets the whitening ([`optimum::whitening`]) of every whitened denoiser from its layer input's
/// moments on `train_x`, keeping each predictor's function.
pub fn set_whitening(model: &Model, train_x: &Tensor) -> Result<()> {
    if model.denoisers.iter().all(|d| d.whitened.is_none()) {
        return Ok(());
    }
    for (d, m) in model.denoisers.iter().zip(all_moments(model, train_x)?) {
        let (p, p_inv, mean) = optimum::whitening(&m, d.coeffs);
        // Centre the predictor's whole input `x_t + e_t` (e_t is fixed under whitening): with a
        // mean left in, E[uuᵀ] = I + P·e_t·e_tᵀ·Pᵀ, and P's 1/n directions blow the step up.
        let e_t = d
            .time_embedding(false)
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu);
        d.set_whitening(&p, &p_inv, &(mean + e_t.detach()));
        d.sync();
    }
    Ok(())
}

/// Sets every denoiser to the exact L2 optimum ([`optimum::optimum`]) of its layer's input on
/// `train_x`, in forward order; returns the fitted layers' `optimal_l2`. `D*` and `o*` are
/// computed in f64 and stored as f32; the time embedding is zeroed ([`Denoiser::set_predictor`]).
///
/// [`Denoiser::set_predictor`]: crate::denoiser::Denoiser::set_predictor
pub fn fit_closed_form(model: &Model, train_x: &Tensor) -> Result<Vec<f64>> {
    let mut l2 = Vec::new();
    for j in 0..model.denoisers.len() {
        let m = moments(model, train_x, j)?;
        let d = &model.denoisers[j];
        let opt = optimum::optimum(&family(&m, d), d.coeffs)
            .map_err(|e| e.context(format!("layer {} (t = {})", d.layer, d.t)))?;
        d.set_predictor(&opt.d_mat, &opt.offset);
        l2.push(opt.l2);
    }
    Ok(l2)
}

/// The diagnostics of every denoiser ([`DenoiserDiag`]) on `train_x`. The noise draws come from
/// tch's RNG, reseeded with `seed` first (so the values are reproducible and a resumed run
/// writes the same ones).
pub fn diagnose(model: &Model, train_x: &Tensor, seed: i64) -> Result<Vec<DenoiserDiag>> {
    if model.denoisers.is_empty() {
        return Ok(Vec::new());
    }
    let n = model.denoisers.len();
    let idx: Vec<usize> = (0..n).map(|j| input_index(model, j)).collect();
    let mut accs: Vec<MomentAccumulator> = model
        .denoisers
        .iter()
        .map(|d| MomentAccumulator::new(d.channels()))
        .collect();
    let mut sums = vec![[0.0f64; 4]; n];
    let mut count = vec![0i64; n];
    tch::manual_seed(seed);
    for_each_batch(model, train_x, |out| {
        for j in 0..n {
            let x = &out.inputs[idx[j]];
            accs[j].add(x);
            let s = model.denoisers[j].noise_sums(x);
            for (acc, v) in sums[j].iter_mut().zip(s) {
                *acc += v;
            }
            count[j] += x.numel() as i64;
        }
    });
    let fused = model.layer_params(Mode::Fused, Grads::NONE);
    let mut diags = Vec::with_capacity(n);
    for j in 0..n {
        let d = &model.denoisers[j];
        let m = accs[j].finish()?;
        let opt = optimum::optimum(&family(&m, d), d.coeffs)?;
        let noise_l2 = optimum::expected_l2(&m, d.coeffs, &d.d_dense(), &d.offset());
        let cnt = count[j].max(1) as f64;
        let [r1, r2, e1, e2] = sums[j];
        let (w, _) = model.weights[d.layer]
            .as_ref()
            .expect("denoised layer has weights");
        let (wf, _) = fused[d.layer].as_ref().expect("denoised layer has weights");
        let weight_change = tch::no_grad(|| {
            let diff = (wf - w * d.coeffs.c3)
                .to_kind(Kind::Double)
                .norm()
                .double_value(&[]);
            diff / w.to_kind(Kind::Double).norm().double_value(&[]).max(1e-300)
        });
        diags.push(DenoiserDiag {
            layer: d.layer,
            t: d.t,
            noise_loss: (r1 + r2) / cnt,
            zero_predictor_loss: (e1 + e2) / cnt,
            noise_l2,
            optimal_l2: opt.l2,
            step_norm: d.coeffs.c1 * optimum::spectral_norm(&d.d_dense()),
            weight_change,
        });
    }
    Ok(diags)
}

/// One log line per denoiser: `layer k t=…: noise … (zero …) L2 … (optimum …, +x %) ‖c1·D‖ … ΔW …`.
pub fn log_lines(diags: &[DenoiserDiag]) -> Vec<String> {
    diags
        .iter()
        .map(|g| {
            format!(
                "  denoiser layer {} t={}: noise {:.4} (zero {:.4}) L2 {:.5} (optimum {:.5}, {:+.2}%) ‖c1·D‖₂ {:.4} ΔW {:.3}%",
                g.layer,
                g.t,
                g.noise_loss,
                g.zero_predictor_loss,
                g.noise_l2,
                g.optimal_l2,
                100.0 * g.excess_l2(),
                g.step_norm,
                100.0 * g.weight_change
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::data::Normalization;
    use crate::model::DenoiseSpec;
    use crate::optimum::exact_rows;
    use crate::schedule::ScheduleSpec;
    use tch::Device;

    const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

    /// An MLP on `C`-value inputs whose train split has exactly mean `μ` and covariance `Σ`.
    fn setup(t_list: Vec<usize>, beta: f64) -> (Model, Tensor, Tensor, Tensor) {
        let c = 6;
        tch::manual_seed(21);
        let q = Tensor::linalg_qr(&Tensor::randn([c, c], F64), "reduced").0;
        let eig = Tensor::from_slice(&[4.0f64, 1.0, 0.3, 0.05, 1e-3, 0.0]);
        let sigma = q.matmul(&eig.diag(0)).matmul(&q.tr()) + Tensor::eye(c, F64) * 1e-12;
        let mu = Tensor::from_slice(&[0.5f64, -1.0, 2.0, 0.0, 0.25, -3.0]);
        let x = exact_rows(&mu, &sigma, 5000);
        let arch = Arch::parse("mlp:5,4", [1, 1, c as usize], 3).unwrap();
        let norm = Normalization {
            mean: vec![0.0],
            std: vec![1.0],
        };
        let mut model = Model::new(arch, norm, Device::Cpu);
        model
            .add_denoisers(&DenoiseSpec {
                schedule: ScheduleSpec {
                    beta_start: beta,
                    beta_end: beta,
                    timesteps: 10,
                },
                t_stride: 1,
                t_list: Some(t_list),
                fuse_noise: None,
            })
            .unwrap();
        let x4 = x.to_kind(Kind::Float).view([-1, 1, 1, c]);
        (model, x4, mu, sigma)
    }

    #[test]
    fn closed_form_recovers_the_known_optimum() {
        for (ts, beta) in [(vec![1, 1, 1], 0.02), (vec![3, 2, 1], 1e-3)] {
            let (model, x, mu, sigma) = setup(ts.clone(), beta);
            // The fit reads f32 inputs: compare with D* of their own (f32-rounded) moments,
            // computed here by eigendecomposition, independently of the Cholesky path.
            let xr = x.to_kind(Kind::Double).view([-1, 6]);
            let m_mu = xr.mean_dim(0, false, Kind::Double);
            let xc = &xr - &m_mu;
            let m_sigma = xc.tr().matmul(&xc) / xr.size()[0] as f64;
            assert!((&m_sigma - &sigma).abs().max().double_value(&[]) < 1e-5);
            assert!((&m_mu - &mu).abs().max().double_value(&[]) < 1e-5);
            fit_closed_form(&model, &x).unwrap();
            let d = &model.denoisers[0];
            let (s, n) = (d.coeffs.sqrt_alpha_bar, d.coeffs.sqrt_one_minus_alpha_bar);
            let (lam, q) = m_sigma.linalg_eigh("L");
            let inv = (lam * (s * s) + n * n).reciprocal() * n;
            let want = q.matmul(&inv.diag(0)).matmul(&q.tr());
            let got = d.d_mat.to_kind(Kind::Double);
            let rel = (&got - &want).norm().double_value(&[]) / want.norm().double_value(&[]);
            assert!(rel < 1e-6, "t {ts:?}: D relative error {rel}");
            let want_o = want.mv(&m_mu) * (-s);
            let rel_o = (d.offset().to_kind(Kind::Double) - &want_o)
                .norm()
                .double_value(&[])
                / want_o.norm().double_value(&[]);
            assert!(rel_o < 1e-6, "t {ts:?}: offset relative error {rel_o}");
        }
    }

    /// On a ViT every Linear's input is tokens `[N, T, D]`: its moments are taken over the
    /// `N·T` tokens, and the closed-form fit puts every layer — patch conv, qkv, proj, fc1,
    /// fc2, head — at its optimum.
    #[test]
    fn closed_form_fits_a_vit_per_token() {
        tch::manual_seed(23);
        let arch = Arch::parse("vit:4,8,2,1,2", [1, 8, 8], 3).unwrap();
        let norm = Normalization {
            mean: vec![0.0],
            std: vec![1.0],
        };
        let mut model = Model::new(arch, norm, Device::Cpu);
        model
            .add_denoisers(&DenoiseSpec {
                schedule: ScheduleSpec {
                    beta_start: 0.02,
                    beta_end: 0.02,
                    timesteps: 10,
                },
                t_stride: 1,
                t_list: None,
                fuse_noise: None,
            })
            .unwrap();
        let x = Tensor::randn([200, 1, 8, 8], (Kind::Float, Device::Cpu));
        // qkv (denoiser 1) sees 200 samples × 5 tokens (4 patches + the class token); the patch
        // conv 200 × 64 pixels; the head 200 pooled tokens.
        assert_eq!(moments(&model, &x, 0).unwrap().count, 200 * 64);
        let m = moments(&model, &x, 1).unwrap();
        assert_eq!((m.count, m.cov.size()), (200 * 5, vec![8, 8]));
        assert_eq!(moments(&model, &x, 5).unwrap().count, 200);
        // The same moments as the tokens taken as rows by hand.
        let out = tch::no_grad(|| model.forward(&x, Mode::Unfused, Grads::NONE, false));
        let rows = out.inputs[1].to_kind(Kind::Double).reshape([-1, 8]);
        let mean = rows.mean_dim(0, false, Kind::Double);
        assert!((&m.mean - &mean).abs().max().double_value(&[]) < 1e-9);
        fit_closed_form(&model, &x).unwrap();
        let diags = diagnose(&model, &x, 1).unwrap();
        assert_eq!(diags.len(), 6);
        for g in &diags {
            assert!(g.excess_l2().abs() < 1e-4, "{g:?}");
            assert!(g.noise_loss < g.zero_predictor_loss, "{g:?}");
        }
    }

    #[test]
    fn every_layer_ends_at_its_optimum_in_forward_order() {
        let (model, x, _, _) = setup(vec![1, 1, 1], 0.05);
        let before = diagnose(&model, &x, 1).unwrap();
        fit_closed_form(&model, &x).unwrap();
        let after = diagnose(&model, &x, 1).unwrap();
        assert_eq!(after.len(), 3);
        for (b, a) in before.iter().zip(&after) {
            // Fresh denoisers predict zero: L2 exactly 1.
            assert!((b.noise_l2 - 1.0).abs() < 1e-9, "{b:?}");
            // Fitted: at the optimum (f32 storage of D), strictly below the zero predictor on
            // the sampled loss too, and a visible step.
            assert!(a.excess_l2().abs() < 1e-5, "{a:?}");
            assert!(a.noise_loss < a.zero_predictor_loss, "{a:?}");
            assert!(a.step_norm > 0.05 && a.weight_change > 0.01, "{a:?}");
        }
        // A layer fitted before the layers in front of it would see other inputs afterwards:
        // refitting only the last layer first, then the rest, leaves it off its optimum.
        let (model, x, _, _) = setup(vec![1, 1, 1], 0.05);
        let last = model.denoisers.len() - 1;
        let m = moments(&model, &x, last).unwrap();
        let opt = optimum::optimum(&m, model.denoisers[last].coeffs).unwrap();
        model.denoisers[last].set_predictor(&opt.d_mat, &opt.offset);
        for j in 0..last {
            let m = moments(&model, &x, j).unwrap();
            let opt = optimum::optimum(&m, model.denoisers[j].coeffs).unwrap();
            model.denoisers[j].set_predictor(&opt.d_mat, &opt.offset);
        }
        let wrong = diagnose(&model, &x, 1).unwrap();
        assert!(wrong[last].excess_l2() > 1e-3, "{:?}", wrong[last]);
    }
}
