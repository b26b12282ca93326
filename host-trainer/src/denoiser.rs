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
    /// A fresh denoiser (`D = 0`, `d = 0`) for a layer of input width `channels`; `z` is the
    /// reverse-step noise (`[channels]`, usually zeros). Draws from tch's RNG.
    pub fn new(
        layer: usize,
        channels: usize,
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
            d_mat: param(Tensor::zeros([c, c], opts)),
            d_vec: param(Tensor::zeros([c], opts)),
            z: z.to_device(device).to_kind(Kind::Float),
            sinus: Tensor::from_slice(&sinus).to_device(device),
        }
    }

    /// Input width `C`.
    pub fn channels(&self) -> i64 {
        self.d_vec.size()[0]
    }

    /// Named trainable tensors (shallow clones sharing storage and gradients).
    pub fn params(&self) -> Vec<(String, Tensor)> {
        let k = self.layer;
        [
            ("time.0.weight", &self.time_w1),
            ("time.0.bias", &self.time_b1),
            ("time.2.weight", &self.time_w2),
            ("time.2.bias", &self.time_b2),
            ("D", &self.d_mat),
            ("d", &self.d_vec),
        ]
        .into_iter()
        .map(|(n, t)| (format!("denoisers.{k}.{n}"), t.shallow_clone()))
        .collect()
    }

    /// Named tensors to save: [`params`](Self::params) plus `z`.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut v = self.params();
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
    /// (`[N, C]` or `[N, C, H, W]`); `ε` is drawn from tch's RNG. Gradients reach the denoiser
    /// only when `train`, and reach `x`'s graph only if the caller passes it undetached.
    pub fn noise_loss(&self, x: &Tensor, train: bool) -> Tensor {
        let eps = x.randn_like();
        let k = self.coeffs;
        let x_t = x * k.sqrt_alpha_bar + &eps * k.sqrt_one_minus_alpha_bar;
        let e_t = self.time_embedding(train);
        let pred = fuse::predict_noise(
            &x_t,
            &live(&self.d_mat, train),
            &live(&self.d_vec, train),
            &e_t,
        );
        let diff = eps - pred;
        diff.abs().mean(Kind::Float) + diff.square().mean(Kind::Float)
    }

    /// The predictor's total offset `o = D·e_t + d` (`ε̂ = D·x_t + o`), detached.
    pub fn offset(&self) -> Tensor {
        tch::no_grad(|| self.d_mat.mv(&self.time_embedding(false)) + &self.d_vec)
    }

    /// Sums over every element of `x` (`[N, C]` or `[N, C, H, W]`) of the noise-prediction error
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
    /// offset without the f32 rounding of `D·e_t − D·e_t`). `d_mat: [C, C]`, `offset: [C]`.
    pub fn set_predictor(&self, d_mat: &Tensor, offset: &Tensor) {
        tch::no_grad(|| {
            let f = |t: &Tensor| t.to_kind(Kind::Float).to_device(self.d_mat.device());
            self.d_mat.shallow_clone().copy_(&f(d_mat));
            self.d_vec.shallow_clone().copy_(&f(offset));
            let _ = self.time_w2.shallow_clone().zero_();
            let _ = self.time_b2.shallow_clone().zero_();
        });
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
