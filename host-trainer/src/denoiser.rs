//! One denoising layer: time embedding, linear noise predictor and its noise-prediction loss.
//!
//! For the layer at `nn.Sequential` index `k` with input width `C` and timestep `t`:
//!
//! * time embedding `e_t = W2·silu(W1·sin(t) + b1) + b2 ∈ R^C`, `sin(t)` the
//!   [`TIME_EMBED_DIM`]-dim sinusoidal embedding, hidden width [`TIME_HIDDEN`];
//! * noise predictor `ε̂(x_t) = D·(x_t + e_t) + d`, `D ∈ R^{C×C}`, `d ∈ R^C`;
//! * loss on the layer input `x`: `x_t = √ᾱ_t·x + √(1−ᾱ_t)·ε`, `ε ~ N(0, I)`,
//!   `L = mean|ε − ε̂(x_t)| + mean (ε − ε̂(x_t))²`.
//!
//! **Init:** `D = 0`, `d = 0`, so a fresh denoiser predicts no noise and its fused layer is the
//! plain layer scaled by `c3 = 1/√α_t` (≈ 1 + β_t/2). The time MLP uses PyTorch's default
//! uniform init; it receives gradient once `D ≠ 0` (after the first step).
//!
//! Tensor names in `model.safetensors`: `denoisers.k.time.0.weight [H, E]`, `…time.0.bias [H]`,
//! `…time.2.weight [C, H]`, `…time.2.bias [C]`, `denoisers.k.D [C, C]`, `denoisers.k.d [C]`,
//! `denoisers.k.z [C]` (the reverse-step noise baked into the fused bias, 0 by default).
//!
//! **Diagonal denoisers** (on depthwise convs, where a dense `D` would mix channels and the fused
//! layer would no longer be depthwise): `ε̂(x_t) = D⊙(x_t + e_t) + d` with `D ∈ R^C`, saved as
//! `denoisers.k.D_diag [C]` instead of `denoisers.k.D`. Everything else is the same.

use tch::{Device, Kind, Tensor};

use crate::fuse::{self, Terms};
use crate::schedule::{sinusoidal, Coeffs};

/// Dimension of the sinusoidal timestep embedding.
pub const TIME_EMBED_DIM: usize = 16;
/// Hidden width of the time-embedding MLP.
pub const TIME_HIDDEN: usize = 32;

/// A denoiser's parameters and constants.
#[derive(Debug)]
pub struct Denoiser {
    /// `nn.Sequential` index of the denoised layer.
    pub layer: usize,
    /// Timestep `t ∈ 1..=T`.
    pub t: usize,
    pub coeffs: Coeffs,
    pub time_w1: Tensor,
    pub time_b1: Tensor,
    pub time_w2: Tensor,
    pub time_b2: Tensor,
    pub d_mat: Tensor,
    pub d_vec: Tensor,
    /// Reverse-step noise `z` (constant, not trained).
    pub z: Tensor,
    /// Sinusoidal embedding of `t` (constant).
    sinus: Tensor,
    /// Whitened coordinates for gradient training (`--denoiser-precondition whiten`), if on.
    pub whitened: Option<Whitened>,
    /// Rows (samples × pixels, or samples × tokens) of the last input [`Denoiser::noise_loss`] saw, and the largest
    /// squared norm of a whitened row `u = P·(x_t + e_t − m)` in it.
    last_rows: std::cell::Cell<i64>,
    last_max_u2: std::cell::Cell<f64>,
}

/// The noise predictor in whitened coordinates, for gradient training.
///
/// With `P = K^{-1/2}`, `K = s²Σ + n²I` the covariance of `x_t` and `m = s·μ` its mean (both from
/// train-split moments of the layer input), the predictor is trained as
/// `ε̂ = G·P·(x_t + e_t − m) + h` — the same function as `D·(x_t + e_t) + d` with
/// `D = G·P`, `d = h − G·P·m`. In these coordinates the L2 loss's Hessian with respect to each
/// row of `G` is `E[P(x_t − m)(x_t − m)ᵀPᵀ] = I`: condition number 1 instead of
/// `(s²λ_max + n²)/n²` (10³–10⁴ on MNIST), so one learning rate fits every direction. `D` and
/// `d` are kept equal to `G·P` and `h − G·P·m` after every step ([`Denoiser::sync`]): they are
/// what the forward, the fusion and `model.safetensors` use.
#[derive(Debug)]
pub struct Whitened {
    /// `G: [C, C]`, trained.
    pub g_mat: Tensor,
    /// `h: [C]`, trained.
    pub h_vec: Tensor,
    /// `P = K^{-1/2}: [C, C]`, constant.
    pub p: Tensor,
    /// `P^{-1} = K^{1/2}: [C, C]`, constant (to re-express `D` when `P` changes).
    pub p_inv: Tensor,
    /// `m = E x_t: [C]`, constant.
    pub m: Tensor,
}

/// `t` itself when `live`, else a detached view (no gradient reaches the parameter).
pub(crate) fn live(t: &Tensor, live: bool) -> Tensor {
    if live {
        t.shallow_clone()
    } else {
        t.detach()
    }
}

fn uniform(shape: &[i64], bound: f64, device: Device) -> Tensor {
    (Tensor::rand(shape, (Kind::Float, device)) * 2.0 - 1.0) * bound
}

impl Denoiser {
    /// A fresh dense denoiser (`D = 0: [C, C]`, `d = 0`) for a layer of input width
    /// `channels`; `z` is the reverse-step noise (`[channels]`, usually zeros). Draws from tch's
    /// RNG.
    pub fn new(
        layer: usize,
        channels: usize,
        t: usize,
        coeffs: Coeffs,
        z: Tensor,
        device: Device,
    ) -> Self {
        Self::with_shape(layer, channels, false, t, coeffs, z, device)
    }

    /// [`Denoiser::new`], with a diagonal `D = 0: [C]` when `diagonal` (depthwise layers).
    pub fn with_shape(
        layer: usize,
        channels: usize,
        diagonal: bool,
        t: usize,
        coeffs: Coeffs,
        z: Tensor,
        device: Device,
    ) -> Self {
        let (e, h, c) = (TIME_EMBED_DIM as i64, TIME_HIDDEN as i64, channels as i64);
        let sinus: Vec<f32> = sinusoidal(t, TIME_EMBED_DIM)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let b1 = 1.0 / (e as f64).sqrt();
        let b2 = 1.0 / (h as f64).sqrt();
        let opts = (Kind::Float, device);
        let param = |t: Tensor| t.set_requires_grad(true);
        Self {
            layer,
            t,
            coeffs,
            time_w1: param(uniform(&[h, e], b1, device)),
            time_b1: param(uniform(&[h], b1, device)),
            time_w2: param(uniform(&[c, h], b2, device)),
            time_b2: param(uniform(&[c], b2, device)),
            d_mat: param(if diagonal {
                Tensor::zeros([c], opts)
            } else {
                Tensor::zeros([c, c], opts)
            }),
            d_vec: param(Tensor::zeros([c], opts)),
            z: z.to_device(device).to_kind(Kind::Float),
            sinus: Tensor::from_slice(&sinus).to_device(device),
            whitened: None,
            last_rows: std::cell::Cell::new(1),
            last_max_u2: std::cell::Cell::new(0.0),
        }
    }

    /// The step scale of whitened SGD for the last batch, `rows·C / (2·(rows + max_b ‖u_b‖²))`,
    /// so that the step is `ΔG = η·Σ_b r_b·u_bᵀ / (rows + max_b ‖u_b‖²)`. In expectation
    /// (`‖u‖² ≈ C`) this is `(C/2)/(1 + C/rows)`: `C/2` makes `η = 1` a Newton step of the
    /// layer's mean L2 loss (Hessian `(2/C)·I` per row of `G`), `1/(1 + C/rows)` the
    /// normalized-LMS factor for minibatch noise. The batch's largest `‖u_b‖²` replaces `C` so
    /// that a heavy-tailed input (a rare stroke in a pixel that is almost always blank has a
    /// whitened norm of hundreds) never gets a step above `η` along its own direction: stable for
    /// every `η < 2`.
    pub fn whitened_scale(&self) -> f64 {
        let c = self.channels() as f64;
        let rows = self.last_rows.get().max(1) as f64;
        rows * c / (2.0 * (rows + self.last_max_u2.get().max(c)))
    }

    /// Switches to whitened coordinates with `P = I`, `m = 0` (`G = D`, `h = d`): the predictor
    /// is unchanged; [`Self::set_whitening`] then sets the real `P`.
    pub fn enable_whitening(&mut self) {
        let c = self.channels();
        let opts = (Kind::Float, self.d_mat.device());
        let eye = Tensor::eye(c, opts);
        self.whitened = Some(Whitened {
            g_mat: self.d_mat.detach().copy().set_requires_grad(true),
            h_vec: self.d_vec.detach().copy().set_requires_grad(true),
            p: eye.copy(),
            p_inv: eye,
            m: Tensor::zeros([c], opts),
        });
    }

    /// Sets `P`, `P^{-1}` and `m` (f64 `[C, C]`, `[C, C]`, `[C]`) and re-expresses `G`, `h` so that
    /// the predictor is unchanged: `G = D·P^{-1}`, `h = d + D·m`. No-op without whitening.
    pub fn set_whitening(&self, p: &Tensor, p_inv: &Tensor, m: &Tensor) {
        let Some(w) = &self.whitened else { return };
        tch::no_grad(|| {
            let f = |t: &Tensor| t.to_kind(Kind::Float).to_device(self.d_mat.device());
            w.p.shallow_clone().copy_(&f(p));
            w.p_inv.shallow_clone().copy_(&f(p_inv));
            w.m.shallow_clone().copy_(&f(m));
            let d = self.d_mat.to_kind(Kind::Double).to_device(tch::Device::Cpu);
            let dv = self.d_vec.to_kind(Kind::Double).to_device(tch::Device::Cpu);
            w.g_mat.shallow_clone().copy_(&f(&d.matmul(p_inv)));
            w.h_vec.shallow_clone().copy_(&f(&(dv + d.mv(m))));
        });
    }

    /// `D = G·P`, `d = h − D·m` from the whitened parameters (after each optimizer step).
    pub fn sync(&self) {
        let Some(w) = &self.whitened else { return };
        tch::no_grad(|| {
            let d = w.g_mat.matmul(&w.p);
            let dv = &w.h_vec - d.mv(&w.m);
            self.d_mat.shallow_clone().copy_(&d);
            self.d_vec.shallow_clone().copy_(&dv);
        });
    }

    /// The whitened coordinates' tensors for a checkpoint: `denoisers.k.{G,h,P,P_inv,m}`
    /// (empty without whitening).
    pub fn whitened_tensors(&self) -> Vec<(String, Tensor)> {
        match &self.whitened {
            Some(w) => self.named(&[
                ("G", &w.g_mat),
                ("h", &w.h_vec),
                ("P", &w.p),
                ("P_inv", &w.p_inv),
                ("m", &w.m),
            ]),
            None => Vec::new(),
        }
    }

    /// True for a diagonal denoiser (`D: [C]`).
    pub fn is_diagonal(&self) -> bool {
        self.d_mat.dim() == 1
    }

    /// `D` as a `[C, C]` matrix (the diagonal matrix of a diagonal denoiser), detached.
    pub fn d_dense(&self) -> Tensor {
        let d = self.d_mat.detach();
        if self.is_diagonal() {
            d.diag(0)
        } else {
            d
        }
    }

    /// The name of `D` in files: `D`, or `D_diag` for a diagonal denoiser.
    fn d_name(&self) -> &'static str {
        if self.is_diagonal() {
            "D_diag"
        } else {
            "D"
        }
    }

    /// Input width `C`.
    pub fn channels(&self) -> i64 {
        self.d_vec.size()[0]
    }

    /// `(denoisers.k.NAME, tensor)` for each pair (shallow clones sharing storage and gradients).
    fn named(&self, pairs: &[(&str, &Tensor)]) -> Vec<(String, Tensor)> {
        let k = self.layer;
        pairs
            .iter()
            .map(|(n, t)| (format!("denoisers.{k}.{n}"), t.shallow_clone()))
            .collect()
    }

    /// The time MLP, `D` and `d` (what `model.safetensors` holds besides `z`).
    fn saved(&self) -> Vec<(String, Tensor)> {
        self.named(&[
            ("time.0.weight", &self.time_w1),
            ("time.0.bias", &self.time_b1),
            ("time.2.weight", &self.time_w2),
            ("time.2.bias", &self.time_b2),
            (self.d_name(), &self.d_mat),
            ("d", &self.d_vec),
        ])
    }

    /// Named trainable tensors: the time MLP and `D`, `d` — or only `G`, `h` with whitening.
    pub fn params(&self) -> Vec<(String, Tensor)> {
        match &self.whitened {
            // The time MLP stays fixed: `e_t` only shifts the input, `ε̂ = G·P·(x_t + e_t − m) + h`,
            // which `h` covers exactly.
            Some(w) => self.named(&[("G", &w.g_mat), ("h", &w.h_vec)]),
            None => self.saved(),
        }
    }

    /// Named tensors to save: the time MLP, `D`, `d` and `z`.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut v = self.saved();
        v.push((
            format!("denoisers.{}.z", self.layer),
            self.z.shallow_clone(),
        ));
        v
    }

    /// The time embedding `e_t ∈ R^C`; gradients reach the time MLP only when `train`.
    pub fn time_embedding(&self, train: bool) -> Tensor {
        self.sinus
            .linear(
                &live(&self.time_w1, train),
                Some(live(&self.time_b1, train)),
            )
            .silu()
            .linear(
                &live(&self.time_w2, train),
                Some(live(&self.time_b2, train)),
            )
    }

    /// Noise-prediction loss `mean|ε − ε̂| + mean(ε − ε̂)²` on the layer input `x`
    /// (`[N, C]`, tokens `[N, T, C]` or `[N, C, H, W]`); `ε` is drawn from tch's RNG. Gradients reach the denoiser
    /// only when `train`, and reach `x`'s graph only if the caller passes it undetached.
    pub fn noise_loss(&self, x: &Tensor, train: bool) -> Tensor {
        let eps = x.randn_like();
        let k = self.coeffs;
        self.last_rows
            .set(x.numel() as i64 / self.channels().max(1));
        let x_t = x * k.sqrt_alpha_bar + &eps * k.sqrt_one_minus_alpha_bar;
        let pred = match &self.whitened {
            // ε̂ = G·(P·(x_t + e_t − m)) + h: two C×C products per input, no C³ per step.
            Some(w) if train => {
                let zero = w.h_vec.zeros_like();
                let e_t = self.time_embedding(false);
                let u = fuse::predict_noise(&x_t, &w.p, &zero, &(&e_t - &w.m));
                let u2 = tch::no_grad(|| {
                    // One row per sample, pixel or token.
                    let c = self.channels();
                    let rows = if u.dim() == 4 {
                        u.permute([0, 2, 3, 1]).reshape([-1, c])
                    } else {
                        u.reshape([-1, c])
                    };
                    rows.square()
                        .sum_dim_intlist(1, false, Kind::Float)
                        .max()
                        .double_value(&[])
                });
                self.last_max_u2.set(u2);
                fuse::predict_noise(&u, &w.g_mat, &w.h_vec, &zero)
            }
            _ => fuse::predict_noise(
                &x_t,
                &live(&self.d_mat, train),
                &live(&self.d_vec, train),
                &self.time_embedding(train),
            ),
        };
        let diff = eps - pred;
        diff.abs().mean(Kind::Float) + diff.square().mean(Kind::Float)
    }

    /// The predictor's total offset `o = D·e_t + d` (`ε̂ = D·x_t + o`), detached.
    pub fn offset(&self) -> Tensor {
        tch::no_grad(|| {
            let e_t = self.time_embedding(false);
            let de = if self.is_diagonal() {
                &self.d_mat * e_t
            } else {
                self.d_mat.mv(&e_t)
            };
            de + &self.d_vec
        })
    }

    /// Sums over every element of `x` (`[N, C]`, `[N, T, C]` or `[N, C, H, W]`) of the noise-prediction error
    /// `r = ε − ε̂(x_t)` and of the zero predictor's error `ε`, for one draw of `ε` from tch's
    /// RNG: `[Σ|r|, Σr², Σ|ε|, Σε²]` (divide by `x.numel()` for the per-element losses).
    pub fn noise_sums(&self, x: &Tensor) -> [f64; 4] {
        tch::no_grad(|| {
            let eps = x.randn_like();
            let k = self.coeffs;
            let x_t = x * k.sqrt_alpha_bar + &eps * k.sqrt_one_minus_alpha_bar;
            let pred =
                fuse::predict_noise(&x_t, &self.d_mat, &self.d_vec, &self.time_embedding(false));
            let r = (&eps - pred).to_kind(Kind::Double);
            let eps = eps.to_kind(Kind::Double);
            let sum = |t: Tensor| t.sum(Kind::Double).double_value(&[]);
            [
                sum(r.abs()),
                sum(r.square()),
                sum(eps.abs()),
                sum(eps.square()),
            ]
        })
    }

    /// Sets the predictor to `ε̂ = D·x_t + o` exactly: `D`, `d = o`, and the time embedding to 0
    /// (its output layer zeroed: `e_t` only ever enters as `D·e_t + d`, so `d` carries the whole
    /// offset without the f32 rounding of `D·e_t − D·e_t`). `d_mat: [C, C]`, `offset: [C]`; a
    /// diagonal denoiser keeps the diagonal of `d_mat` (pass a diagonal optimum).
    pub fn set_predictor(&self, d_mat: &Tensor, offset: &Tensor) {
        tch::no_grad(|| {
            let f = |t: &Tensor| t.to_kind(Kind::Float).to_device(self.d_mat.device());
            let d_mat = if self.is_diagonal() {
                d_mat.diagonal(0, 0, 1)
            } else {
                d_mat.shallow_clone()
            };
            self.d_mat.shallow_clone().copy_(&f(&d_mat));
            self.d_vec.shallow_clone().copy_(&f(offset));
            let _ = self.time_w2.shallow_clone().zero_();
            let _ = self.time_b2.shallow_clone().zero_();
        });
    }

    /// The same denoiser in f64 (tests of exactness; not whitened).
    #[cfg(test)]
    pub(crate) fn to_double(&self) -> Self {
        let d = |t: &Tensor| t.detach().to_kind(Kind::Double);
        Self {
            layer: self.layer,
            t: self.t,
            coeffs: self.coeffs,
            time_w1: d(&self.time_w1),
            time_b1: d(&self.time_b1),
            time_w2: d(&self.time_w2),
            time_b2: d(&self.time_b2),
            d_mat: d(&self.d_mat),
            d_vec: d(&self.d_vec),
            z: d(&self.z),
            sinus: d(&self.sinus),
            whitened: None,
            last_rows: std::cell::Cell::new(1),
            last_max_u2: std::cell::Cell::new(0.0),
        }
    }

    /// Calls `f` with this denoiser's fusion terms; gradients reach `D`, `d`, the time MLP only
    /// when `train`.
    pub fn with_terms<R>(&self, train: bool, f: impl FnOnce(&Terms) -> R) -> R {
        let e_t = self.time_embedding(train);
        let (d_mat, d_vec) = (live(&self.d_mat, train), live(&self.d_vec, train));
        f(&Terms {
            d_mat: &d_mat,
            d_vec: &d_vec,
            e_t: &e_t,
            z: &self.z,
        })
    }
}
