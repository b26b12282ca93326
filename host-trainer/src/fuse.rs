//! The reverse denoising step and its exact fusion into Linear / Conv2d weights (functional:
//! every function returns new tensors and never modifies its arguments).
//!
//! A denoiser in front of a layer with input width `C` predicts the noise of its input with a
//! linear map, `ε̂(x) = D·(x + e_t) + d` (`D: [C, C]`, `d, e_t: [C]`; for a conv input
//! `[N, C, H, W]` the map acts per pixel over channels, a 1×1 convolution, and `e_t`, `d`
//! broadcast over space). One reverse DDPM step is
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

use tch::Tensor;

use crate::schedule::Coeffs;

/// The denoiser terms of one layer, all on the layer's device and of the same kind:
/// `d_mat: [C, C]`, `d_vec: [C]`, `e_t: [C]`, `z: [C]`.
#[derive(Debug)]
pub struct Terms<'a> {
    pub d_mat: &'a Tensor,
    pub d_vec: &'a Tensor,
    pub e_t: &'a Tensor,
    pub z: &'a Tensor,
}

/// `ε̂(x) = D·(x + e_t) + d` for `x: [N, C]` (Linear input) or `[N, C, H, W]` (conv input).
pub fn predict_noise(x: &Tensor, d_mat: &Tensor, d_vec: &Tensor, e_t: &Tensor) -> Tensor {
    if x.dim() == 4 {
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

/// `A = c3·I − c1·D` and `c = −c1·(D·e_t + d) + c2·z`.
fn affine(terms: &Terms, k: Coeffs) -> (Tensor, Tensor) {
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

/// The unfused reference of a denoised Linear: reverse step on `x: [N, C]`, then the layer.
pub fn unfused_linear(x: &Tensor, w: &Tensor, b: &Tensor, terms: &Terms, k: Coeffs) -> Tensor {
    reverse_step(x, terms, k).linear(w, Some(b))
}

/// The unfused reference of a denoised Conv2d: zero-pad `x: [N, C, H, W]`, reverse step on
/// every pixel of the padded input, then convolve with padding 0.
pub fn unfused_conv(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: i64,
    padding: i64,
    terms: &Terms,
    k: Coeffs,
) -> Tensor {
    let padded = x.constant_pad_nd([padding, padding, padding, padding]);
    reverse_step(&padded, terms, k).conv2d(w, Some(b), [stride, stride], [0, 0], [1, 1], 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Schedule, ScheduleSpec};
    use tch::{Device, Kind};

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

    fn rand(shape: &[i64], kind: Kind) -> Tensor {
        Tensor::randn(shape, (kind, Device::Cpu))
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
        tch::manual_seed(1);
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
            // The denoiser changes the output: the test would catch a fusion that drops it.
            assert!(rel_err(&x.linear(&w, Some(&b)), &reference) > 100.0 * tol);
        }
    }

    fn check_conv(kind: Kind, tol: f64) {
        tch::manual_seed(2);
        let k = strong();
        for (stride, padding, h, w_) in [(2, 1, 9, 7), (1, 1, 6, 6), (2, 0, 8, 5), (1, 2, 5, 5)] {
            let case = Case::new(5, kind);
            let x = rand(&[3, 5, h, w_], kind);
            let (w, b) = (rand(&[4, 5, 3, 3], kind), rand(&[4], kind));
            let reference = unfused_conv(&x, &w, &b, stride, padding, &case.terms(), k);
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
        tch::manual_seed(3);
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
        tch::manual_seed(4);
        let case = Case::new(4, Kind::Float);
        let (w, b) = (rand(&[3, 4], Kind::Float), rand(&[3], Kind::Float));
        let (w0, b0, d0) = (w.copy(), b.copy(), case.d_mat.copy());
        let _ = fuse_linear(&w, &b, &case.terms(), strong());
        assert!(w.equal(&w0) && b.equal(&b0) && case.d_mat.equal(&d0));
    }
}
