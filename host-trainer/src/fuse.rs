//! The reverse denoising step and its exact fusion into Linear / Conv2d weights (functional:
//! every function returns new tensors and never modifies its arguments).
//!
//! A denoiser in front of a layer with input width `C` predicts the noise of its input with a
//! linear map, `ε̂(x) = D·(x + e_t) + d` (`D: [C, C]`, `d, e_t: [C]`; for a conv input
//! `[N, C, H, W]` the map acts per pixel over channels, a 1×1 convolution, and `e_t`, `d`
//! broadcast over space; for a Linear on tokens `[N, T, C]` it acts on every token alike, and
//! the fusion is the Linear's). One reverse DDPM step is
//!
//! ```text
//! x' = c3·x − c1·ε̂(x) + c2·z = A·x + c,   A = c3·I − c1·D,   c = −c1·(D·e_t + d) + c2·z
//! ```
//!
//! so the layer after it is affine in `x` again:
//!
//! * Linear: `W' = W·A`, `b' = b + W·c` (= `b − c1·W(D·e_t + d) + c2·W·z`).
//! * Conv2d: the unfused reference **pads first** and applies the per-pixel step to every pixel
//!   of the padded input (pad pixels included, where it yields `c`), then convolves without
//!   padding. Then `W'[o,i,:,:] = Σ_j W[o,j,:,:]·A[j,i]` and `b'[o] = b[o] + Σ_{j,kh,kw}
//!   W[o,j,kh,kw]·c[j]`, exact at every output position including the borders. (Applying the
//!   step to the unpadded input instead would leave the pad pixels at 0 instead of `c`, so
//!   border outputs would miss part of the `Σ W·c` bias term: not expressible as one conv.)
//!   Asymmetric padding `[top, bottom, left, right]` (TF-"same" at stride 2) is handled alike.
//! * Depthwise Conv2d (`groups = C`, `W: [C, 1, kh, kw]`): a dense `D` would mix channels and
//!   the fused conv would no longer be depthwise, so its denoiser is **diagonal**,
//!   `ε̂(x) = D⊙(x + e_t) + d` with `D: [C]`. Then `A = diag(a)`, `a = c3 − c1·D`,
//!   `c = −c1·(D⊙e_t + d) + c2·z`, and `W'[o,0] = a[o]·W[o,0]`,
//!   `b'[o] = b[o] + c[o]·Σ_{kh,kw} W[o,0,kh,kw]`: still depthwise, +0 MACs.
//!
//! A BatchNorm after the layer (eval mode) folds afterwards ([`fold_batchnorm`]): first the
//! denoiser into `(W, b)`, then the batch norm into the result.

use tch::Tensor;

use crate::schedule::Coeffs;

/// The denoiser terms of one layer, all on the layer's device and of the same kind:
/// `d_mat: [C, C]` (dense) or `[C]` (diagonal, depthwise layers), `d_vec: [C]`, `e_t: [C]`,
/// `z: [C]`.
#[derive(Debug)]
pub struct Terms<'a> {
    pub d_mat: &'a Tensor,
    pub d_vec: &'a Tensor,
    pub e_t: &'a Tensor,
    pub z: &'a Tensor,
}

/// `ε̂(x) = D·(x + e_t) + d` for `x: [N, C]` (Linear input), `[N, T, C]` (a Linear on tokens:
/// per token) or `[N, C, H, W]` (conv input: per pixel); `D⊙(x + e_t) + d` when `d_mat` is
/// diagonal (`[C]`).
pub fn predict_noise(x: &Tensor, d_mat: &Tensor, d_vec: &Tensor, e_t: &Tensor) -> Tensor {
    if d_mat.dim() == 1 {
        let c = e_t.size()[0];
        let shape: &[i64] = if x.dim() == 4 { &[1, c, 1, 1] } else { &[c] };
        (x + e_t.view(shape)) * d_mat.view(shape) + d_vec.view(shape)
    } else if x.dim() == 4 {
        let c = e_t.size()[0];
        let xe = x + e_t.view([1, c, 1, 1]);
        Tensor::einsum("ij,njhw->nihw", &[d_mat, &xe], None::<&[i64]>) + d_vec.view([1, c, 1, 1])
    } else {
        (x + e_t).matmul(&d_mat.tr()) + d_vec
    }
}

/// One explicit reverse step `x' = c3·x − c1·ε̂(x) + c2·z` (`z` broadcast per channel).
pub fn reverse_step(x: &Tensor, terms: &Terms, k: Coeffs) -> Tensor {
    let eps = predict_noise(x, terms.d_mat, terms.d_vec, terms.e_t);
    let z = if x.dim() == 4 {
        terms.z.view([1, -1, 1, 1])
    } else {
        terms.z.shallow_clone()
    };
    x * k.c3 - eps * k.c1 + z * k.c2
}

/// `A = c3·I − c1·D` and `c = −c1·(D·e_t + d) + c2·z` (dense `D`).
fn affine(terms: &Terms, k: Coeffs) -> (Tensor, Tensor) {
    assert_eq!(
        terms.d_mat.dim(),
        2,
        "a dense fusion needs a dense D: [C, C]"
    );
    let c = terms.d_mat.size()[0];
    let eye = Tensor::eye(c, (terms.d_mat.kind(), terms.d_mat.device()));
    let a = eye * k.c3 - terms.d_mat * k.c1;
    let shift = (terms.d_mat.mv(terms.e_t) + terms.d_vec) * (-k.c1) + terms.z * k.c2;
    (a, shift)
}

/// Fused Linear: `W' = W·A`, `b' = b + W·c` for `W: [out, C]`, `b: [out]`.
pub fn fuse_linear(w: &Tensor, b: &Tensor, terms: &Terms, k: Coeffs) -> (Tensor, Tensor) {
    let (a, c) = affine(terms, k);
    (w.matmul(&a), b + w.mv(&c))
}

/// Fused Conv2d: `W'[o,i] = Σ_j W[o,j]·A[j,i]`, `b'[o] = b[o] + Σ_{j,kh,kw} W[o,j,kh,kw]·c[j]`
/// for `W: [out, C, k, k]`; the fused conv keeps the original stride and padding.
pub fn fuse_conv(w: &Tensor, b: &Tensor, terms: &Terms, k: Coeffs) -> (Tensor, Tensor) {
    let (a, c) = affine(terms, k);
    let wf = Tensor::einsum("ojhw,ji->oihw", &[w, &a], None::<&[i64]>);
    let bf = b + w
        .sum_dim_intlist([2i64, 3].as_slice(), false, w.kind())
        .mv(&c);
    (wf, bf)
}

/// Diagonal `a = c3 − c1·D` and `c = −c1·(D⊙e_t + d) + c2·z` for `D: [C]`.
fn affine_diagonal(terms: &Terms, k: Coeffs) -> (Tensor, Tensor) {
    assert_eq!(
        terms.d_mat.dim(),
        1,
        "a depthwise fusion needs a diagonal D: [C]"
    );
    let a = terms.d_mat * (-k.c1) + k.c3;
    let shift = (terms.d_mat * terms.e_t + terms.d_vec) * (-k.c1) + terms.z * k.c2;
    (a, shift)
}

/// Fused depthwise Conv2d with a diagonal denoiser: `W'[o,0] = a[o]·W[o,0]`,
/// `b'[o] = b[o] + c[o]·Σ_{kh,kw} W[o,0,kh,kw]` for `W: [C, 1, kh, kw]`, `b: [C]`; the fused
/// conv keeps stride, padding and `groups = C`.
pub fn fuse_depthwise(w: &Tensor, b: &Tensor, terms: &Terms, k: Coeffs) -> (Tensor, Tensor) {
    let (a, c) = affine_diagonal(terms, k);
    let wf = w * a.view([-1, 1, 1, 1]);
    let bf = b + w.sum_dim_intlist([1i64, 2, 3].as_slice(), false, w.kind()) * c;
    (wf, bf)
}

/// Geometry of a Conv2d: `stride = [sh, sw]`, zero `padding = [top, bottom, left, right]`,
/// `groups` (1, or `C` for depthwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub stride: [i64; 2],
    pub padding: [i64; 4],
    pub groups: i64,
}

impl ConvGeom {
    /// `x ⋆ W + b` (PyTorch cross-correlation): the padding is passed to the convolution when
    /// symmetric (bit-identical to `conv2d(…, padding)`), an explicit zero pad first otherwise.
    pub fn conv(&self, x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        let [top, bottom, left, right] = self.padding;
        if top == bottom && left == right {
            x.conv2d(w, Some(b), self.stride, [top, left], [1, 1], self.groups)
        } else {
            self.pad(x)
                .conv2d(w, Some(b), self.stride, [0, 0], [1, 1], self.groups)
        }
    }

    /// Zero-pads `x: [N, C, H, W]` by `padding`.
    pub fn pad(&self, x: &Tensor) -> Tensor {
        let [top, bottom, left, right] = self.padding;
        x.constant_pad_nd([left, right, top, bottom])
    }
}

/// The unfused reference of a denoised Linear: reverse step on `x: [N, C]` (or on every token of
/// `x: [N, T, C]`), then the layer.
pub fn unfused_linear(x: &Tensor, w: &Tensor, b: &Tensor, terms: &Terms, k: Coeffs) -> Tensor {
    reverse_step(x, terms, k).linear(w, Some(b))
}

/// The unfused reference of a denoised Conv2d (dense or, with `groups = C` and a diagonal
/// `D`, depthwise): zero-pad `x: [N, C, H, W]`, reverse step on every pixel of the padded
/// input, then convolve with padding 0.
pub fn unfused_conv(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    geom: ConvGeom,
    terms: &Terms,
    k: Coeffs,
) -> Tensor {
    let stepped = reverse_step(&geom.pad(x), terms, k);
    stepped.conv2d(w, Some(b), geom.stride, [0, 0], [1, 1], geom.groups)
}

/// The unfused reference of a denoised depthwise Conv2d (`W: [C, 1, kh, kw]`, diagonal
/// `D: [C]`): [`unfused_conv`] with `groups = C`.
pub fn unfused_depthwise(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: [i64; 2],
    padding: [i64; 4],
    terms: &Terms,
    k: Coeffs,
) -> Tensor {
    assert_eq!(
        terms.d_mat.dim(),
        1,
        "a depthwise layer needs a diagonal D: [C]"
    );
    let geom = ConvGeom {
        stride,
        padding,
        groups: w.size()[0],
    };
    unfused_conv(x, w, b, geom, terms, k)
}

/// A batch norm's eval-mode constants: `γ`, `β`, running `μ`, `σ²` (`[out]`) and `eps`.
#[derive(Debug)]
pub struct BnTerms<'a> {
    pub gamma: &'a Tensor,
    pub beta: &'a Tensor,
    pub mean: &'a Tensor,
    pub var: &'a Tensor,
    pub eps: f64,
}

/// Folds an eval-mode batch norm after a Linear/Conv2d into its weights: with
/// `s = γ/√(σ² + eps)` per output channel, `W' = W·s` (row `o` of `W: [out, …]` scaled by
/// `s[o]`) and `b' = (b − μ)·s + β`, so `BN(W·x + b) = W'·x + b'`.
pub fn fold_batchnorm(w: &Tensor, b: &Tensor, bn: &BnTerms) -> (Tensor, Tensor) {
    let s = bn.gamma / (bn.var + bn.eps).sqrt();
    let mut shape = vec![1i64; w.dim()];
    shape[0] = -1;
    (w * s.view(shape.as_slice()), (b - bn.mean) * &s + bn.beta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::schedule::{Schedule, ScheduleSpec};
    use tch::Kind;

    /// Coefficients where the denoiser term is large (β ≈ 0.1), so a wrong fusion shows.
    fn strong() -> Coeffs {
        Schedule::new(ScheduleSpec {
            beta_start: 0.05,
            beta_end: 0.2,
            timesteps: 10,
        })
        .unwrap()
        .coeffs(3)
    }

    thread_local! {
        /// The tests' own normal draws: libtorch's RNG is process-global, and tests running in
        /// parallel threads would interleave their draws, so a test's numbers would depend on
        /// what else runs. Each test thread seeds its own stream ([`seed`]).
        static DRAWS: std::cell::RefCell<Rng> = std::cell::RefCell::new(Rng::new(0));
    }

    fn seed(s: u64) {
        DRAWS.with(|r| *r.borrow_mut() = Rng::new(s));
    }

    /// Standard normal draws of `shape` from this thread's stream.
    fn rand(shape: &[i64], kind: Kind) -> Tensor {
        let n = shape.iter().product::<i64>() as usize;
        let v: Vec<f64> = DRAWS.with(|r| {
            let mut r = r.borrow_mut();
            (0..n).map(|_| r.normal()).collect()
        });
        Tensor::from_slice(&v).view(shape).to_kind(kind)
    }

    fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
        let diff = (a - b).abs().max().double_value(&[]);
        diff / b.abs().max().double_value(&[])
    }

    struct Case {
        d_mat: Tensor,
        d_vec: Tensor,
        e_t: Tensor,
        z: Tensor,
    }

    impl Case {
        fn new(c: i64, kind: Kind) -> Self {
            Self {
                d_mat: rand(&[c, c], kind) * 0.5,
                d_vec: rand(&[c], kind),
                e_t: rand(&[c], kind),
                z: rand(&[c], kind),
            }
        }
        fn terms(&self) -> Terms<'_> {
            Terms {
                d_mat: &self.d_mat,
                d_vec: &self.d_vec,
                e_t: &self.e_t,
                z: &self.z,
            }
        }
    }

    fn check_linear(kind: Kind, tol: f64) {
        seed(1);
        for k in [
            strong(),
            Schedule::new(ScheduleSpec::default()).unwrap().coeffs(7),
        ] {
            let case = Case::new(13, kind);
            let (x, w, b) = (rand(&[5, 13], kind), rand(&[7, 13], kind), rand(&[7], kind));
            let reference = unfused_linear(&x, &w, &b, &case.terms(), k);
            let (wf, bf) = fuse_linear(&w, &b, &case.terms(), k);
            let fused = x.linear(&wf, Some(&bf));
            let err = rel_err(&fused, &reference);
            assert!(err <= tol, "{kind:?}: relative error {err}");
            // The denoiser changes the output: the test would catch a fusion that drops it (at
            // the default schedule's t = 7 it changes this output by ≈ 1 %, 0.47 at the strong
            // one: 10× the tolerance leaves room in f32).
            assert!(rel_err(&x.linear(&w, Some(&b)), &reference) > 10.0 * tol);
        }
    }

    fn check_conv(kind: Kind, tol: f64) {
        seed(2);
        let k = strong();
        for (stride, padding, h, w_) in [(2, 1, 9, 7), (1, 1, 6, 6), (2, 0, 8, 5), (1, 2, 5, 5)] {
            let case = Case::new(5, kind);
            let x = rand(&[3, 5, h, w_], kind);
            let (w, b) = (rand(&[4, 5, 3, 3], kind), rand(&[4], kind));
            let geom = ConvGeom {
                stride: [stride, stride],
                padding: [padding; 4],
                groups: 1,
            };
            let reference = unfused_conv(&x, &w, &b, geom, &case.terms(), k);
            let (wf, bf) = fuse_conv(&w, &b, &case.terms(), k);
            let fused = x.conv2d(
                &wf,
                Some(&bf),
                [stride, stride],
                [padding, padding],
                [1, 1],
                1,
            );
            assert_eq!(fused.size(), reference.size());
            let err = rel_err(&fused, &reference);
            assert!(
                err <= tol,
                "{kind:?} stride {stride} pad {padding}: relative error {err}"
            );
            let plain = x.conv2d(
                &w,
                Some(&b),
                [stride, stride],
                [padding, padding],
                [1, 1],
                1,
            );
            assert!(rel_err(&plain, &reference) > 100.0 * tol);
        }
    }

    /// Diagonal denoiser terms for `c` channels.
    fn diagonal_case(c: i64, kind: Kind) -> Case {
        Case {
            d_mat: rand(&[c], kind) * 0.5,
            ..Case::new(c, kind)
        }
    }

    fn check_depthwise(kind: Kind, tol: f64) {
        seed(6);
        let k = strong();
        // Symmetric and TF-"same" asymmetric padding, strides 1 and 2, non-square kernels.
        for (stride, padding, kernel, h, w_) in [
            ([1, 1], [1, 1, 1, 1], [3, 3], 7, 6),
            ([2, 2], [0, 1, 0, 1], [3, 3], 8, 8),
            ([2, 1], [4, 5, 1, 2], [10, 4], 13, 6),
        ] {
            let c = 6;
            let case = diagonal_case(c, kind);
            let x = rand(&[2, c, h, w_], kind);
            let (w, b) = (rand(&[c, 1, kernel[0], kernel[1]], kind), rand(&[c], kind));
            let reference = unfused_depthwise(&x, &w, &b, stride, padding, &case.terms(), k);
            let (wf, bf) = fuse_depthwise(&w, &b, &case.terms(), k);
            // Still depthwise: one filter per channel.
            assert_eq!(wf.size(), w.size());
            let geom = ConvGeom {
                stride,
                padding,
                groups: c,
            };
            let fused = geom.conv(&x, &wf, &bf);
            assert_eq!(fused.size(), reference.size());
            let err = rel_err(&fused, &reference);
            assert!(
                err <= tol,
                "{kind:?} {stride:?} {padding:?}: relative error {err}"
            );
            assert!(rel_err(&geom.conv(&x, &w, &b), &reference) > 100.0 * tol);
        }
    }

    #[test]
    fn depthwise_fusion_is_exact_f64() {
        check_depthwise(Kind::Double, 1e-5);
    }

    #[test]
    fn depthwise_fusion_is_exact_f32() {
        check_depthwise(Kind::Float, 1e-4);
    }

    #[test]
    fn diagonal_prediction_is_the_dense_one_with_a_diagonal_matrix() {
        seed(7);
        let case = diagonal_case(5, Kind::Double);
        let x = rand(&[3, 5, 4, 4], Kind::Double);
        let diag = predict_noise(&x, &case.d_mat, &case.d_vec, &case.e_t);
        let dense = predict_noise(&x, &case.d_mat.diag(0), &case.d_vec, &case.e_t);
        assert!(rel_err(&diag, &dense) < 1e-12);
    }

    #[test]
    fn asymmetric_padding_conv_fusion_is_exact_f64() {
        seed(8);
        let k = strong();
        let case = Case::new(4, Kind::Double);
        let x = rand(&[2, 4, 8, 7], Kind::Double);
        let (w, b) = (rand(&[3, 4, 3, 2], Kind::Double), rand(&[3], Kind::Double));
        let geom = ConvGeom {
            stride: [2, 2],
            padding: [0, 1, 1, 0],
            groups: 1,
        };
        let reference = unfused_conv(&x, &w, &b, geom, &case.terms(), k);
        let (wf, bf) = fuse_conv(&w, &b, &case.terms(), k);
        let fused = geom.conv(&x, &wf, &bf);
        assert_eq!(fused.size(), [2, 3, 4, 4]);
        assert!(rel_err(&fused, &reference) <= 1e-5);
    }

    struct Bn {
        gamma: Tensor,
        beta: Tensor,
        mean: Tensor,
        var: Tensor,
    }

    impl Bn {
        fn new(c: i64) -> Self {
            Self {
                gamma: rand(&[c], Kind::Double),
                beta: rand(&[c], Kind::Double),
                mean: rand(&[c], Kind::Double),
                var: rand(&[c], Kind::Double).abs() + 0.1,
            }
        }
        fn terms(&self) -> BnTerms<'_> {
            BnTerms {
                gamma: &self.gamma,
                beta: &self.beta,
                mean: &self.mean,
                var: &self.var,
                eps: 1e-5,
            }
        }
        /// Eval-mode batch norm of `y: [N, C, …]`.
        fn apply(&self, y: &Tensor) -> Tensor {
            y.batch_norm(
                Some(&self.gamma),
                Some(&self.beta),
                Some(&self.mean),
                Some(&self.var),
                false,
                0.1,
                1e-5,
                false,
            )
        }
    }

    #[test]
    fn batchnorm_folds_into_conv_and_linear_f64() {
        seed(9);
        let bn = Bn::new(3);
        let x = rand(&[2, 4, 6, 6], Kind::Double);
        let (w, b) = (rand(&[3, 4, 3, 3], Kind::Double), rand(&[3], Kind::Double));
        let geom = ConvGeom {
            stride: [1, 1],
            padding: [1, 1, 1, 1],
            groups: 1,
        };
        let reference = bn.apply(&geom.conv(&x, &w, &b));
        let (wf, bf) = fold_batchnorm(&w, &b, &bn.terms());
        assert!(rel_err(&geom.conv(&x, &wf, &bf), &reference) <= 1e-10);
        let x = rand(&[5, 4], Kind::Double);
        let (w, b) = (rand(&[3, 4], Kind::Double), rand(&[3], Kind::Double));
        let reference = bn.apply(&x.linear(&w, Some(&b)));
        let (wf, bf) = fold_batchnorm(&w, &b, &bn.terms());
        assert!(rel_err(&x.linear(&wf, Some(&bf)), &reference) <= 1e-10);
    }

    #[test]
    fn denoiser_then_batchnorm_fold_is_the_unfused_reference_f64() {
        seed(10);
        let k = strong();
        // Dense conv with TF-"same" stride-2 padding.
        let (case, bn) = (Case::new(4, Kind::Double), Bn::new(3));
        let x = rand(&[2, 4, 8, 8], Kind::Double);
        let (w, b) = (rand(&[3, 4, 3, 3], Kind::Double), rand(&[3], Kind::Double));
        let geom = ConvGeom {
            stride: [2, 2],
            padding: [0, 1, 0, 1],
            groups: 1,
        };
        let reference = bn.apply(&unfused_conv(&x, &w, &b, geom, &case.terms(), k));
        let (wd, bd) = fuse_conv(&w, &b, &case.terms(), k);
        let (wf, bf) = fold_batchnorm(&wd, &bd, &bn.terms());
        let err = rel_err(&geom.conv(&x, &wf, &bf), &reference);
        assert!(err <= 1e-5, "dense: {err}");
        // Depthwise with a diagonal denoiser.
        let (case, bn) = (diagonal_case(4, Kind::Double), Bn::new(4));
        let (w, b) = (rand(&[4, 1, 3, 3], Kind::Double), rand(&[4], Kind::Double));
        let geom = ConvGeom { groups: 4, ..geom };
        let reference = bn.apply(&unfused_conv(&x, &w, &b, geom, &case.terms(), k));
        let (wd, bd) = fuse_depthwise(&w, &b, &case.terms(), k);
        let (wf, bf) = fold_batchnorm(&wd, &bd, &bn.terms());
        let err = rel_err(&geom.conv(&x, &wf, &bf), &reference);
        assert!(err <= 1e-5, "depthwise: {err}");
        // The batch norm matters: skipping it is far off.
        assert!(rel_err(&geom.conv(&x, &wd, &bd), &reference) > 1e-3);
    }

    #[test]
    fn linear_fusion_is_exact_f64() {
        check_linear(Kind::Double, 1e-5);
    }

    #[test]
    fn linear_fusion_is_exact_f32() {
        check_linear(Kind::Float, 1e-4);
    }

    #[test]
    fn conv_fusion_is_exact_f64() {
        check_conv(Kind::Double, 1e-5);
    }

    #[test]
    fn conv_fusion_is_exact_f32() {
        check_conv(Kind::Float, 1e-4);
    }

    #[test]
    fn conv_reverse_step_on_unpadded_input_differs_at_borders() {
        // Documents why the reference pads first: stepping the unpadded input is not fusable.
        seed(3);
        let (k, case) = (strong(), Case::new(3, Kind::Double));
        let x = rand(&[1, 3, 6, 6], Kind::Double);
        let (w, b) = (rand(&[2, 3, 3, 3], Kind::Double), rand(&[2], Kind::Double));
        let (wf, bf) = fuse_conv(&w, &b, &case.terms(), k);
        let fused = x.conv2d(&wf, Some(&bf), [1, 1], [1, 1], [1, 1], 1);
        let other =
            reverse_step(&x, &case.terms(), k).conv2d(&w, Some(&b), [1, 1], [1, 1], [1, 1], 1);
        let inner = |t: &Tensor| t.narrow(2, 1, 4).narrow(3, 1, 4);
        assert!(rel_err(&inner(&fused), &inner(&other)) < 1e-12);
        assert!(rel_err(&fused, &other) > 1e-3);
    }

    #[test]
    fn fusion_leaves_inputs_untouched() {
        seed(4);
        let case = Case::new(4, Kind::Float);
        let (w, b) = (rand(&[3, 4], Kind::Float), rand(&[3], Kind::Float));
        let (w0, b0, d0) = (w.copy(), b.copy(), case.d_mat.copy());
        let _ = fuse_linear(&w, &b, &case.terms(), strong());
        assert!(w.equal(&w0) && b.equal(&b0) && case.d_mat.equal(&d0));
    }
}
