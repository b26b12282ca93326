//! Adam (Kingma & Ba, 2015; PyTorch's formulation) over a named parameter group, with its state
//! exposed so that checkpoints can resume exactly, and optional decoupled weight decay (AdamW,
//! Loshchilov & Hutter, 2019, as PyTorch's `AdamW`): before the Adam update,
//! `p ← p·(1 − lr·wd)` — here only for parameters of rank ≥ 2 (conv and linear weights; biases
//! and BatchNorm's scale and shift are not decayed, the usual practice), less those named by
//! [`Adam::exclude_from_decay`] (a ViT's class token and position embeddings, as timm's
//! `no_weight_decay`).
//!
//! Per step `k` and parameter `p` with gradient `g`: `m ← β1·m + (1−β1)·g` (as
//! `m + (1−β1)·(g − m)`, PyTorch's `lerp_`), `v ← β2·v + (1−β2)·g²`,
//! `p ← p − lr·(m / (1−β1^k)) / (√v / √(1−β2^k) + ε)`, every update in place.
//! Parameters without a gradient are skipped (their moments do not decay).

use std::collections::HashMap;

use anyhow::{bail, Result};
use tch::Tensor;

/// Adam over one parameter group.
#[derive(Debug)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay `wd` of rank ≥ 2 parameters (0: plain Adam).
    pub weight_decay: f64,
    /// Steps taken.
    pub steps: i64,
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Per parameter: decayed when `weight_decay > 0` (rank ≥ 2 and not excluded).
    decays: Vec<bool>,
}

impl Adam {
    /// Adam with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8).
    pub fn new(params: Vec<(String, Tensor)>, lr: f64) -> Self {
        let zeros =
            |p: &[(String, Tensor)]| p.iter().map(|(_, t)| t.zeros_like().detach()).collect();
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            steps: 0,
            m: zeros(&params),
            v: zeros(&params),
            decays: params.iter().map(|(_, p)| p.dim() >= 2).collect(),
            params,
        }
    }

    /// Exempts the parameters called `names` from weight decay.
    pub fn exclude_from_decay(&mut self, names: &[String]) {
        for ((n, _), d) in self.params.iter().zip(&mut self.decays) {
            if names.contains(n) {
                *d = false;
            }
        }
    }

    /// One update of every parameter that has a gradient.
    pub fn step(&mut self) {
        self.steps += 1;
        let bc1 = 1.0 - self.beta1.powi(self.steps as i32);
        let bc2 = 1.0 - self.beta2.powi(self.steps as i32);
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter().enumerate() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                if self.weight_decay > 0.0 && self.decays[i] {
                    let _ = p
                        .shallow_clone()
                        .g_mul_scalar_(1.0 - self.lr * self.weight_decay);
                }
                // PyTorch's single-tensor Adam, in place: two temporaries per parameter
                // (`(1−β2)·g` and `√v`) instead of one per operation.
                let _ = self.m[i].lerp_(&g, 1.0 - self.beta1);
                let _ = self.v[i]
                    .g_mul_scalar_(self.beta2)
                    .addcmul_(&g, &(&g * (1.0 - self.beta2)));
                // denom = (√v / √(1−β2^k) + ε) · (−(1−β1^k)/lr), so that p += m / denom.
                let mut denom = self.v[i].sqrt();
                let _ = denom
                    .g_div_scalar_(bc2.sqrt())
                    .g_add_scalar_(self.eps)
                    .g_mul_scalar_(-bc1 / self.lr);
                let _ = p.shallow_clone().addcdiv_(&self.m[i], &denom);
            }
        });
    }

    /// Clears the gradients of the group.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// State tensors `{prefix}m.{name}`, `{prefix}v.{name}` for a checkpoint.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (n, _)) in self.params.iter().enumerate() {
            out.push((format!("{prefix}m.{n}"), self.m[i].shallow_clone()));
            out.push((format!("{prefix}v.{n}"), self.v[i].shallow_clone()));
        }
        out
    }

    /// Restores the moments written by [`state`](Self::state) and the step count.
    pub fn load_state(
        &mut self,
        src: &HashMap<String, Tensor>,
        prefix: &str,
        steps: i64,
    ) -> Result<()> {
        for (i, (n, _)) in self.params.iter().enumerate() {
            for (which, dst) in [("m", &self.m[i]), ("v", &self.v[i])] {
                let key = format!("{prefix}{which}.{n}");
                let Some(t) = src.get(&key) else {
                    bail!("checkpoint lacks optimizer tensor '{key}'")
                };
                if t.size() != dst.size() {
                    bail!(
                        "checkpoint optimizer tensor '{key}' has shape {:?}, expected {:?}",
                        t.size(),
                        dst.size()
                    );
                }
                tch::no_grad(|| dst.shallow_clone().copy_(t));
            }
        }
        self.steps = steps;
        Ok(())
    }
}

/// Plain SGD with a per-parameter scale, `p ← p − lr·scale_p·g`: the denoisers' optimizer in
/// whitened coordinates (`denoiser::Whitened`), where `scale = C/2` makes `lr = 1` a Newton step
/// of the layer's L2 loss. Stateless but for the step count, so a checkpoint resumes it exactly.
#[derive(Debug)]
pub struct Sgd {
    pub lr: f64,
    /// Steps taken.
    pub steps: i64,
    params: Vec<(String, Tensor, f64)>,
}

impl Sgd {
    /// `params`: `(name, tensor, scale)`.
    pub fn new(params: Vec<(String, Tensor, f64)>, lr: f64) -> Self {
        Self {
            lr,
            steps: 0,
            params,
        }
    }

    /// One update of every parameter that has a gradient.
    pub fn step(&mut self) {
        self.steps += 1;
        tch::no_grad(|| {
            for (_, p, scale) in &self.params {
                let g = p.grad();
                if g.defined() {
                    let _ = p.shallow_clone().g_sub_(&(&g * (self.lr * scale)));
                }
            }
        });
    }

    /// Sets the scale of parameter `i` (in the order given to [`Sgd::new`]).
    pub fn set_scale(&mut self, i: usize, scale: f64) {
        self.params[i].2 = scale;
    }

    /// Clears the gradients.
    pub fn zero_grad(&mut self) {
        for (_, p, _) in &mut self.params {
            p.zero_grad();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn matches_the_adam_formula_and_skips_gradless_params() {
        let p = Tensor::from_slice(&[1.0f64, -2.0]).set_requires_grad(true);
        let q = Tensor::from_slice(&[5.0f64]).set_requires_grad(true);
        let mut opt = Adam::new(
            vec![
                ("p".into(), p.shallow_clone()),
                ("q".into(), q.shallow_clone()),
            ],
            0.1,
        );
        for _ in 0..2 {
            opt.zero_grad();
            (&p * &p).sum(Kind::Double).backward(); // g = 2p
            opt.step();
        }
        // Reference computed by hand with the same formula in f64.
        let mut x = [1.0f64, -2.0];
        let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
        for k in 1..=2 {
            for i in 0..2 {
                let g = 2.0 * x[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let mh = m[i] / (1.0 - 0.9f64.powi(k));
                let vh = v[i] / (1.0 - 0.999f64.powi(k));
                x[i] -= 0.1 * mh / (vh.sqrt() + 1e-8);
            }
        }
        let got = Vec::<f64>::try_from(&p.detach()).unwrap();
        assert!(
            (got[0] - x[0]).abs() < 1e-12 && (got[1] - x[1]).abs() < 1e-12,
            "{got:?} vs {x:?}"
        );
        assert_eq!(Vec::<f64>::try_from(&q.detach()).unwrap(), vec![5.0]);
        let _ = Device::Cpu;
    }

    /// AdamW: rank ≥ 2 parameters shrink by `1 − lr·wd` before the Adam update (PyTorch's
    /// `AdamW`); rank-1 parameters (biases) get the plain Adam update.
    #[test]
    fn weight_decay_is_decoupled_and_only_for_matrices() {
        let w = Tensor::from_slice(&[1.0f64, -2.0])
            .view([1, 2])
            .set_requires_grad(true);
        let b = Tensor::from_slice(&[3.0f64]).set_requires_grad(true);
        let mut opt = Adam::new(
            vec![
                ("w".into(), w.shallow_clone()),
                ("b".into(), b.shallow_clone()),
            ],
            0.1,
        );
        opt.weight_decay = 0.5;
        opt.zero_grad();
        (w.sum(Kind::Double) + b.sum(Kind::Double)).backward(); // g = 1 everywhere
        opt.step();
        // First Adam step with g = 1: m̂ = 1, v̂ = 1, update −lr·1/(1 + ε).
        let step = 0.1 / (1.0 + 1e-8);
        let want_w = [1.0 * (1.0 - 0.05) - step, -2.0 * (1.0 - 0.05) - step];
        let got_w = Vec::<f64>::try_from(&w.detach().view([-1])).unwrap();
        for (g, e) in got_w.iter().zip(want_w) {
            assert!((g - e).abs() < 1e-12, "{got_w:?} vs {want_w:?}");
        }
        let got_b = Vec::<f64>::try_from(&b.detach()).unwrap()[0];
        assert!((got_b - (3.0 - step)).abs() < 1e-12, "{got_b}");
    }

    #[test]
    fn sgd_applies_the_scaled_step() {
        let p = Tensor::from_slice(&[1.0f64, -2.0]).set_requires_grad(true);
        let mut opt = Sgd::new(vec![("p".into(), p.shallow_clone(), 4.0)], 0.1);
        opt.zero_grad();
        (&p * &p).sum(Kind::Double).backward(); // g = 2p
        opt.step();
        // p − 0.1·4·2p = 0.2·p
        let got = Vec::<f64>::try_from(&p.detach()).unwrap();
        assert!(
            (got[0] - 0.2).abs() < 1e-12 && (got[1] + 0.4).abs() < 1e-12,
            "{got:?}"
        );
        assert_eq!(opt.steps, 1);
    }
}
