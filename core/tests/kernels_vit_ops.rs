//! The tiny-ViT kernels (LayerNorm, GELU, table lookup, BatchMatMul, Transpose, Concat, Slice,
//! MeanAxis, Quantize, Dequantize) against references written here:
//!
//! - f32: a transcription of each kernel's documented operation order (8 lanes, fixed tree,
//!   every product rounded), which must give the same bits, and f64 math within a tolerance;
//! - int8: exact i64 arithmetic with TFLite's rounding (SaturatingRoundingDoublingHighMul and
//!   RoundingDivideByPOT written as integer divisions), and golden vectors from TFLite-Micro's
//!   own interpreter (`golden/tflm_vit_ops.py`);
//! - element moves: index formulas.
//!
//! Every kernel also rejects mismatched slices without panicking.

mod common;

use common::{bits, gelu_f64, Rng};
use denoiserep_core::kernels::params::{
    AxisDims, BatchMatMulParams, BatchMatMulS8Params, MeanS8Params,
};
use denoiserep_core::kernels::{self, LUT_S8_LEN};
use denoiserep_core::quant::{batch_matmul_s8_params, mean_s8_params};
use denoiserep_core::{Error, QuantParams};
use proptest::prelude::*;

fn qp(scale: f32, zero_point: i8) -> QuantParams {
    QuantParams { scale, zero_point }
}

// ---------------------------------------------------------------------------------------------
// Reference arithmetic.

/// The documented 8-lane sum of `terms`: term `j` into lane `j mod 8`, then
/// `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`.
fn lanes(terms: impl IntoIterator<Item = f32>) -> f32 {
    let mut l = [0.0f32; 8];
    for (j, t) in terms.into_iter().enumerate() {
        l[j % 8] += t;
    }
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// gemmlowp SaturatingRoundingDoublingHighMul: `(a·b + nudge) / 2^31`, truncating division.
fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// RoundingDivideByPOT: `x / 2^e` rounded to nearest, ties away from zero.
fn rdbp(x: i32, e: i32) -> i32 {
    if e == 0 {
        return x;
    }
    let (mag, half) = ((x as i64).abs(), 1i64 << (e - 1));
    let q = (mag + half) >> e;
    (if x < 0 { -q } else { q }) as i32
}

/// TFLite MultiplyByQuantizedMultiplier (double rounding); the left shift must be exact.
fn mbqm(x: i32, m: i32, shift: i32) -> i32 {
    let left = shift.max(0);
    let shifted = i32::try_from((x as i64) << left).expect("exact left shift");
    rdbp(srdhm(shifted, m), (-shift).max(0))
}

/// TFLite QuantizeMultiplier (double-rounding build): `(q_fixed, shift)` with
/// `real ≈ q_fixed · 2^(shift − 31)`.
fn quantize_multiplier_ref(real: f64) -> (i32, i32) {
    if real == 0.0 {
        return (0, 0);
    }
    let (mut shift, mut q) = (0i32, real);
    while q >= 1.0 {
        q /= 2.0;
        shift += 1;
    }
    while q < 0.5 {
        q *= 2.0;
        shift -= 1;
    }
    let mut q_fixed = (q * (1u64 << 31) as f64).round() as i64;
    if q_fixed == 1 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        return (0, 0);
    }
    (q_fixed as i32, shift)
}

/// TFLite-Micro MEAN (`QuantizedMeanOrSum`) of one output from the sum of its `n` inputs.
fn mean_s8_ref(sum: i64, n: i64, qi: QuantParams, qo: QuantParams) -> i8 {
    let (m, s) = quantize_multiplier_ref(qi.scale as f64 / qo.scale as f64);
    let k = (63 - (n as u64).leading_zeros() as i32).min(32).min(31 + s);
    let m2 = (((m as i64) << k) / n) as i32;
    let shifted = i32::try_from(sum - qi.zero_point as i64 * n).unwrap();
    let v = mbqm(shifted, m2, s - k) + qo.zero_point as i32;
    v.clamp(-128, 127) as i8
}

/// TFLite-Micro BATCH_MATMUL int8 of one output from its exact accumulator.
fn batch_matmul_s8_ref(
    acc: i64,
    qa: QuantParams,
    qb: QuantParams,
    qo: QuantParams,
    alpha: f32,
) -> i8 {
    let real = (qa.scale * qb.scale) as f64 * alpha as f64 / qo.scale as f64;
    let (m, s) = quantize_multiplier_ref(real);
    let v = mbqm(i32::try_from(acc).unwrap(), m, s) + qo.zero_point as i32;
    v.clamp(-128, 127) as i8
}

fn quant() -> impl Strategy<Value = QuantParams> {
    (-12i32..=4, 1.0f32..2.0, any::<i8>()).prop_map(|(e, m, zp)| qp(libm::ldexpf(m, e), zp))
}

/// Row-major index of `idx` in `dims`.
fn flat(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(dims).fold(0, |a, (&i, &d)| a * d + i)
}

/// Multi-index of `f` in `dims`.
fn unflat(mut f: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for a in (0..dims.len()).rev() {
        idx[a] = f % dims[a];
        f /= dims[a];
    }
    idx
}

// ---------------------------------------------------------------------------------------------
// LayerNorm and GELU.

/// The documented LayerNorm order, per row.
fn layer_norm_ref(x: &[f32], depth: usize, eps: f32, g: &[f32], b: &[f32]) -> Vec<f32> {
    let d = depth as f32;
    let mut out = vec![];
    for r in x.chunks(depth) {
        let mu = lanes(r.iter().copied()) / d;
        let diff: Vec<f32> = r.iter().map(|&v| v - mu).collect();
        let var = lanes(diff.iter().map(|&v| v * v)) / d;
        let sd = libm::sqrtf(var + eps);
        out.extend(
            diff.iter()
                .zip(g)
                .zip(b)
                .map(|((&v, &g), &b)| v / sd * g + b),
        );
    }
    out
}

#[test]
fn layer_norm_hand_checked() {
    // Row [1, 2, 3, 4]: μ = 2.5, σ² = 1.25; γ = 2, β = 1.
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let mut y = [0.0f32; 4];
    kernels::layer_norm_f32(1, 4, 0.0, &x, &[2.0; 4], &[1.0; 4], &mut y).unwrap();
    let sd = 1.25f32.sqrt();
    for (o, v) in y.iter().zip(x) {
        assert_eq!(*o, (v - 2.5) / sd * 2.0 + 1.0);
    }
    // A constant row gives β (0 / sqrt(eps)).
    kernels::layer_norm_f32(1, 4, 1e-5, &[7.0; 4], &[3.0; 4], &[0.5; 4], &mut y).unwrap();
    assert_eq!(y, [0.5; 4]);
    // NaN stays in its row.
    let mut y = [0.0f32; 4];
    kernels::layer_norm_f32(
        2,
        2,
        1e-5,
        &[f32::NAN, 1.0, 1.0, 3.0],
        &[1.0; 2],
        &[0.0; 2],
        &mut y,
    )
    .unwrap();
    assert!(y[0].is_nan() && y[1].is_nan());
    assert_eq!(
        &y[2..],
        &[-1.0 / (1.0f32 + 1e-5).sqrt(), 1.0 / (1.0f32 + 1e-5).sqrt()]
    );
}

#[test]
fn gelu_special_values_and_accuracy() {
    assert_eq!(kernels::gelu_f32_one(0.0), 0.0);
    assert_eq!(kernels::gelu_f32_one(f32::INFINITY), f32::INFINITY);
    assert!(kernels::gelu_f32_one(f32::NEG_INFINITY).is_nan());
    assert!(kernels::gelu_f32_one(f32::NAN).is_nan());
    assert_eq!(kernels::gelu_f32_one(-20.0), -0.0);
    let mut worst = 0.0f64;
    for i in -8000..=8000 {
        let x = i as f32 / 1000.0;
        let got = kernels::gelu_f32_one(x) as f64;
        worst = worst.max((got - gelu_f64(x as f64)).abs() / (1.0 + gelu_f64(x as f64).abs()));
    }
    assert!(worst < 4e-7, "worst relative error {worst:e}");
    let mut v = [1.0f32, -1.0];
    kernels::gelu_f32(&mut v);
    assert_eq!(v, [kernels::gelu_f32_one(1.0), kernels::gelu_f32_one(-1.0)]);
}

// ---------------------------------------------------------------------------------------------
// Table lookup.

#[test]
fn lut_reads_the_entry_of_every_input_value() {
    let table: Vec<i8> = (0..256).map(|i| (255 - i) as u8 as i8).collect();
    let x: Vec<i8> = (-128..=127).collect();
    let mut y = vec![0i8; 256];
    kernels::lut_s8(&table, &x, &mut y).unwrap();
    for (&q, &o) in x.iter().zip(&y) {
        assert_eq!(o, table[(q as i32 + 128) as usize]);
    }
    assert_eq!(LUT_S8_LEN, 256);
    for n in [0, 255, 257] {
        assert_eq!(
            kernels::lut_s8(&vec![0; n], &x, &mut y),
            Err(Error::KernelBadArguments)
        );
    }
    assert_eq!(
        kernels::lut_s8(&table, &x[1..], &mut y),
        Err(Error::KernelBadArguments)
    );
}

// ---------------------------------------------------------------------------------------------
// BatchMatMul.

/// `(a index, b index)` of term `kk` of output `(bi, i, j)`.
fn bmm_ix(p: &BatchMatMulParams, bi: usize, i: usize, j: usize, kk: usize) -> (usize, usize) {
    let a = (bi * p.m + i) * p.k + kk;
    let b = if p.adj_y {
        (bi * p.n + j) * p.k + kk
    } else {
        (bi * p.k + kk) * p.n + j
    };
    (a, b)
}

fn outputs(p: &BatchMatMulParams) -> Vec<(usize, usize, usize)> {
    let mut v = vec![];
    for bi in 0..p.batches {
        for i in 0..p.m {
            for j in 0..p.n {
                v.push((bi, i, j));
            }
        }
    }
    v
}

fn bmm_params() -> impl Strategy<Value = BatchMatMulParams> {
    (
        1usize..=3,
        1usize..=6,
        1usize..=40,
        1usize..=6,
        any::<bool>(),
    )
        .prop_map(|(batches, m, k, n, adj_y)| BatchMatMulParams {
            batches,
            m,
            k,
            n,
            adj_y,
        })
}

#[test]
fn batch_matmul_f32_hand_checked() {
    // [2×3] × [3×2] and the same with b stored transposed.
    let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
    let bt = [1.0f32, 0.0, 1.0, 0.0, 1.0, 1.0];
    let p = BatchMatMulParams {
        batches: 1,
        m: 2,
        k: 3,
        n: 2,
        adj_y: false,
    };
    let mut y = [0.0f32; 4];
    kernels::batch_matmul_f32(&p, 0.5, &a, &b, &mut y).unwrap();
    assert_eq!(y, [2.0, 2.5, 5.0, 5.5]);
    let pt = BatchMatMulParams { adj_y: true, ..p };
    kernels::batch_matmul_f32(&pt, 0.5, &a, &bt, &mut y).unwrap();
    assert_eq!(y, [2.0, 2.5, 5.0, 5.5]);
}

#[test]
fn batch_matmul_s8_hand_checked() {
    // acc = (3 − 1)·(4 − 2) + (5 − 1)·(−2 − 2) = 4 − 16 = −12; multiplier 0.5 → −6, + zp 10.
    let p = BatchMatMulParams {
        batches: 1,
        m: 1,
        k: 2,
        n: 1,
        adj_y: true,
    };
    let q = batch_matmul_s8_params(qp(0.5, 1), qp(0.5, 2), qp(0.25, 10), 0.5).unwrap();
    assert_eq!((q.a_zp, q.b_zp, q.out_zp), (1, 2, 10));
    let mut y = [0i8];
    kernels::batch_matmul_s8(&p, &q, &[3, 5], &[4, -2], &mut y).unwrap();
    assert_eq!(y, [4]);
    // Bad scales or alpha give no parameters.
    assert!(batch_matmul_s8_params(qp(0.5, 1), qp(0.5, 2), qp(0.25, 10), 0.0).is_none());
    assert!(batch_matmul_s8_params(qp(0.0, 1), qp(0.5, 2), qp(0.25, 10), 1.0).is_none());
    assert!(batch_matmul_s8_params(qp(1e4, 0), qp(1e4, 0), qp(1e-3, 0), 1.0).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn batch_matmul_f32_is_the_documented_order(p in bmm_params(), alpha in 0.01f32..4.0, seed: u64) {
        let mut rng = Rng(seed);
        let a = rng.vec(p.batches * p.m * p.k, -2.0, 2.0);
        let b = rng.vec(p.batches * p.k * p.n, -2.0, 2.0);
        let mut y = vec![0.0f32; p.batches * p.m * p.n];
        kernels::batch_matmul_f32(&p, alpha, &a, &b, &mut y).unwrap();
        let want: Vec<f32> = outputs(&p)
            .into_iter()
            .map(|(bi, i, j)| {
                alpha * lanes((0..p.k).map(|kk| {
                    let (ia, ib) = bmm_ix(&p, bi, i, j, kk);
                    a[ia] * b[ib]
                }))
            })
            .collect();
        prop_assert_eq!(bits(&y), bits(&want));
        // And close to f64 math.
        for ((bi, i, j), &got) in outputs(&p).into_iter().zip(&y) {
            let s: f64 = (0..p.k).map(|kk| {
                let (ia, ib) = bmm_ix(&p, bi, i, j, kk);
                a[ia] as f64 * b[ib] as f64
            }).sum();
            prop_assert!((got as f64 - alpha as f64 * s).abs() <= 1e-5 * (1.0 + (alpha as f64 * s).abs()));
        }
    }

    #[test]
    fn batch_matmul_s8_is_tflite_arithmetic(
        p in bmm_params(), qa in quant(), qb in quant(), qo in quant(), alpha in 0.05f32..2.0, seed: u64,
    ) {
        let Some(q) = batch_matmul_s8_params(qa, qb, qo, alpha) else {
            return Ok(());
        };
        // Only where the loader would accept it: the left shift keeps the accumulator exact.
        if (p.k as i64) * 256 * 256 > (i32::MAX >> q.shift.max(0)) as i64 {
            return Ok(());
        }
        let mut rng = Rng(seed);
        let a = rng.i8s(p.batches * p.m * p.k);
        let b = rng.i8s(p.batches * p.k * p.n);
        let mut y = vec![0i8; p.batches * p.m * p.n];
        kernels::batch_matmul_s8(&p, &q, &a, &b, &mut y).unwrap();
        let want: Vec<i8> = outputs(&p)
            .into_iter()
            .map(|(bi, i, j)| {
                let acc: i64 = (0..p.k)
                    .map(|kk| {
                        let (ia, ib) = bmm_ix(&p, bi, i, j, kk);
                        (a[ia] as i64 - qa.zero_point as i64) * (b[ib] as i64 - qb.zero_point as i64)
                    })
                    .sum();
                batch_matmul_s8_ref(acc, qa, qb, qo, alpha)
            })
            .collect();
        prop_assert_eq!(y, want);
    }

    #[test]
    fn batch_matmul_s8_never_panics_on_arbitrary_params(
        p in bmm_params(), m: i32, shift in -40i32..40, zps: (i32, i32, i32), seed: u64,
    ) {
        let q = BatchMatMulS8Params { a_zp: zps.0, b_zp: zps.1, out_zp: zps.2, multiplier: m, shift };
        let mut rng = Rng(seed);
        let a = rng.i8s(p.batches * p.m * p.k);
        let b = rng.i8s(p.batches * p.k * p.n);
        let mut y = vec![0i8; p.batches * p.m * p.n];
        kernels::batch_matmul_s8(&p, &q, &a, &b, &mut y).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// LayerNorm, element moves, MeanAxis, Quantize / Dequantize.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn layer_norm_is_the_documented_order(rows in 0usize..4, depth in 1usize..70, eps in 1e-7f32..1e-1, spread in 1e-3f32..1e3, seed: u64) {
        let mut rng = Rng(seed);
        let x = rng.vec(rows * depth, -spread, spread);
        let (g, b) = (rng.vec(depth, -2.0, 2.0), rng.vec(depth, -1.0, 1.0));
        let mut y = vec![0.0f32; rows * depth];
        kernels::layer_norm_f32(rows, depth, eps, &x, &g, &b, &mut y).unwrap();
        prop_assert_eq!(bits(&y), bits(&layer_norm_ref(&x, depth, eps, &g, &b)));
        // Within f32 rounding of the f64 math: x − μ is rounded to |x|·2⁻²⁴, so the error scales
        // with the row's conditioning max|x| / sqrt(σ² + eps) (times |γ| ≤ 2).
        for (r, yr) in x.chunks(depth).zip(y.chunks(depth)) {
            let mu = r.iter().map(|&v| v as f64).sum::<f64>() / depth as f64;
            let var = r.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / depth as f64;
            let sd = (var + eps as f64).sqrt();
            let kappa = r.iter().fold(1.0f64, |k, &v| k.max(v.abs() as f64 / sd));
            for j in 0..depth {
                let want = (r[j] as f64 - mu) / sd * g[j] as f64 + b[j] as f64;
                let tol = 1e-5 * kappa * (1.0 + want.abs());
                prop_assert!((yr[j] as f64 - want).abs() <= tol, "{} vs {want}", yr[j]);
            }
        }
    }

    #[test]
    fn transpose_is_the_index_permutation(dims in prop::collection::vec(1usize..=5, 1..=4), seed: u64) {
        let mut rng = Rng(seed);
        let r = dims.len();
        let mut perm: Vec<usize> = (0..r).collect();
        for i in (1..r).rev() {
            perm.swap(i, rng.below(i + 1));
        }
        let n: usize = dims.iter().product();
        let x: Vec<i8> = rng.i8s(n);
        let mut y = vec![0i8; n];
        kernels::transpose(&dims, &perm, &x, &mut y).unwrap();
        let od: Vec<usize> = perm.iter().map(|&a| dims[a]).collect();
        for (f, &v) in y.iter().enumerate() {
            let i = unflat(f, &od);
            let mut j = vec![0; r];
            for k in 0..r {
                j[perm[k]] = i[k];
            }
            prop_assert_eq!(v, x[flat(&j, &dims)]);
        }
    }

    #[test]
    fn concat_and_slice_are_inverse(outer in 1usize..4, lens in prop::collection::vec(1usize..4, 2..=4), inner in 1usize..4, seed: u64) {
        let mut rng = Rng(seed);
        let parts: Vec<Vec<f32>> = lens.iter().map(|&l| rng.vec(outer * l * inner, -1.0, 1.0)).collect();
        let refs: Vec<&[f32]> = parts.iter().map(|p| p.as_slice()).collect();
        let total: usize = lens.iter().sum();
        let mut y = vec![0.0f32; outer * total * inner];
        kernels::concat(outer, &refs, &mut y).unwrap();
        // Element (o, j, i) of the output comes from the part holding index j.
        let mut start = 0;
        for (part, &l) in parts.iter().zip(&lens) {
            for o in 0..outer {
                for j in 0..l {
                    for i in 0..inner {
                        prop_assert_eq!(y[(o * total + start + j) * inner + i], part[(o * l + j) * inner + i]);
                    }
                }
            }
            // Slicing the range back out gives the part.
            let d = AxisDims { outer, len: total, inner };
            let mut back = vec![0.0f32; part.len()];
            kernels::slice(&d, start, l, &y, &mut back).unwrap();
            prop_assert_eq!(&back, part);
            start += l;
        }
    }

    #[test]
    fn mean_axis_f32_is_the_documented_order(outer in 1usize..4, len in 1usize..40, inner in 1usize..5, seed: u64) {
        let x = Rng(seed).vec(outer * len * inner, -3.0, 3.0);
        let d = AxisDims { outer, len, inner };
        let mut y = vec![0.0f32; outer * inner];
        kernels::mean_axis_f32(&d, &x, &mut y).unwrap();
        for o in 0..outer {
            for i in 0..inner {
                let want = lanes((0..len).map(|j| x[(o * len + j) * inner + i])) / len as f32;
                prop_assert_eq!(y[o * inner + i].to_bits(), want.to_bits());
            }
        }
    }

    #[test]
    fn mean_axis_s8_is_tflite_arithmetic(outer in 1usize..4, len in 1usize..300, inner in 1usize..4, qi in quant(), qo in quant(), seed: u64) {
        let Some(q) = mean_s8_params(qi, qo, len) else {
            return Ok(());
        };
        if len as i64 * 256 > (i32::MAX >> q.shift.max(0)) as i64 {
            return Ok(());
        }
        let x = Rng(seed).i8s(outer * len * inner);
        let d = AxisDims { outer, len, inner };
        let mut y = vec![0i8; outer * inner];
        kernels::mean_axis_s8(&d, &q, &x, &mut y).unwrap();
        for o in 0..outer {
            for i in 0..inner {
                let sum: i64 = (0..len).map(|j| x[(o * len + j) * inner + i] as i64).sum();
                prop_assert_eq!(y[o * inner + i], mean_s8_ref(sum, len as i64, qi, qo));
            }
        }
    }

    #[test]
    fn mean_axis_s8_never_panics_on_arbitrary_params(len in 1usize..40, m: i32, shift in -40i32..40, zps: (i32, i32), seed: u64) {
        let q = MeanS8Params { input_zp: zps.0, output_zp: zps.1, multiplier: m, shift };
        let x = Rng(seed).i8s(len * 2);
        let mut y = vec![0i8; 2];
        kernels::mean_axis_s8(&AxisDims { outer: 1, len, inner: 2 }, &q, &x, &mut y).unwrap();
    }

    #[test]
    fn quantize_and_dequantize_match_the_formulas(q in quant(), seed: u64) {
        let mut rng = Rng(seed);
        let mut x = rng.vec(64, -300.0 * q.scale, 300.0 * q.scale);
        x.extend([0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30]);
        let mut y = vec![0i8; x.len()];
        kernels::quantize_s8(q, &x, &mut y).unwrap();
        for (&v, &o) in x.iter().zip(&y) {
            // round(v / s) half away from zero (f32 division), + zp, clamped; NaN → zp.
            let r = (v / q.scale).round();
            let want = if r.is_nan() { q.zero_point as i64 } else { (r as i64).saturating_add(q.zero_point as i64) };
            prop_assert_eq!(o as i64, want.clamp(-128, 127), "{}", v);
        }
        let codes: Vec<i8> = (-128..=127).collect();
        let mut f = vec![0.0f32; 256];
        kernels::dequantize_s8(q, &codes, &mut f).unwrap();
        for (&c, &v) in codes.iter().zip(&f) {
            // The exact product rounded once.
            let want = ((c as f64 - q.zero_point as f64) * q.scale as f64) as f32;
            prop_assert_eq!(v.to_bits(), want.to_bits());
        }
    }
}

#[test]
fn mean_over_the_last_axis_equals_the_global_average_pool() {
    let (c, h, w) = (3, 5, 7);
    let x = Rng(4).vec(c * h * w, -1.0, 1.0);
    let mut a = vec![0.0f32; c];
    let mut b = vec![0.0f32; c];
    kernels::mean_axis_f32(
        &AxisDims {
            outer: c,
            len: h * w,
            inner: 1,
        },
        &x,
        &mut a,
    )
    .unwrap();
    kernels::global_avg_pool_f32(&x, kernels::Chw { c, h, w }, &mut b).unwrap();
    assert_eq!(bits(&a), bits(&b));
}

#[test]
fn mean_s8_params_follow_tflite() {
    // Equal scales, n = 4: QuantizeMultiplier(1) = (2^30, 1), k = 2, m = 2^32 / 4, shift −1.
    let q = mean_s8_params(qp(0.1, 5), qp(0.1, -3), 4).unwrap();
    assert_eq!(
        (q.multiplier, q.shift, q.input_zp, q.output_zp),
        (1 << 30, -1, 5, -3)
    );
    // n = 3: k = 1, m = 2^31 / 3 truncated.
    let q = mean_s8_params(qp(0.1, 0), qp(0.1, 0), 3).unwrap();
    assert_eq!((q.multiplier, q.shift), (((1i64 << 31) / 3) as i32, 0));
    assert!(mean_s8_params(qp(0.1, 0), qp(0.1, 0), 0).is_none());
    assert!(mean_s8_params(qp(f32::NAN, 0), qp(0.1, 0), 2).is_none());
}

#[test]
fn kernels_reject_mismatched_slices() {
    let bad = Err(Error::KernelBadArguments);
    let mut y = [0.0f32; 8];
    let mut q = [0i8; 8];
    assert_eq!(
        kernels::layer_norm_f32(2, 4, 1e-5, &[0.0; 7], &[1.0; 4], &[0.0; 4], &mut y),
        bad
    );
    assert_eq!(
        kernels::layer_norm_f32(2, 4, 1e-5, &[0.0; 8], &[1.0; 3], &[0.0; 4], &mut y),
        bad
    );
    assert_eq!(
        kernels::layer_norm_f32(2, 0, 1e-5, &[], &[], &[], &mut []),
        bad
    );
    assert_eq!(
        kernels::layer_norm_f32(usize::MAX, 2, 1e-5, &[], &[], &[], &mut []),
        bad
    );
    let p = BatchMatMulParams {
        batches: 2,
        m: 2,
        k: 2,
        n: 2,
        adj_y: false,
    };
    assert_eq!(
        kernels::batch_matmul_f32(&p, 1.0, &[0.0; 8], &[0.0; 7], &mut y),
        bad
    );
    let huge = BatchMatMulParams {
        batches: 0,
        m: usize::MAX,
        k: 2,
        n: 2,
        adj_y: true,
    };
    assert_eq!(
        kernels::batch_matmul_f32(&huge, 1.0, &[], &[], &mut []),
        bad
    );
    let qq = BatchMatMulS8Params {
        a_zp: 0,
        b_zp: 0,
        out_zp: 0,
        multiplier: 1 << 30,
        shift: 0,
    };
    assert_eq!(
        kernels::batch_matmul_s8(&p, &qq, &[0; 8], &[0; 8], &mut q[..7]),
        bad
    );
    // Zero-sized products are fine: no terms, the output is alpha · 0 (int8: the zero point).
    let empty = BatchMatMulParams {
        batches: 1,
        m: 2,
        k: 0,
        n: 2,
        adj_y: false,
    };
    assert_eq!(
        kernels::batch_matmul_f32(&empty, 1.0, &[], &[], &mut y[..4]),
        Ok(())
    );
    assert_eq!(&y[..4], &[0.0; 4]);
    assert_eq!(kernels::transpose(&[2, 4], &[0, 0], &[0.0; 8], &mut y), bad);
    assert_eq!(kernels::transpose(&[2, 4], &[0, 2], &[0.0; 8], &mut y), bad);
    assert_eq!(
        kernels::transpose(&[2, 4], &[1, 0], &[0.0; 7], &mut y[..7]),
        bad
    );
    assert_eq!(kernels::transpose::<f32>(&[], &[], &[], &mut []), bad);
    assert_eq!(
        kernels::transpose(&[1, 1, 1, 1, 8], &[0, 1, 2, 3, 4], &[0.0; 8], &mut y),
        bad
    );
    assert_eq!(kernels::concat(0, &[&[0.0f32; 4][..]], &mut y[..4]), bad);
    assert_eq!(
        kernels::concat(3, &[&[0.0f32; 4][..], &[0.0; 4][..]], &mut y),
        bad
    );
    assert_eq!(
        kernels::concat(2, &[&[0.0f32; 4][..], &[0.0; 2][..]], &mut y),
        bad
    );
    let d = AxisDims {
        outer: 2,
        len: 4,
        inner: 1,
    };
    assert_eq!(kernels::slice(&d, 3, 2, &[0.0f32; 8], &mut y[..4]), bad);
    assert_eq!(kernels::slice(&d, 0, 0, &[0.0f32; 8], &mut []), bad);
    assert_eq!(
        kernels::slice(&d, usize::MAX, 2, &[0.0f32; 8], &mut y[..4]),
        bad
    );
    assert_eq!(kernels::mean_axis_f32(&d, &[0.0; 8], &mut y[..3]), bad);
    assert_eq!(
        kernels::mean_axis_f32(&AxisDims { len: 0, ..d }, &[], &mut y[..2]),
        bad
    );
    let mq = MeanS8Params {
        input_zp: 0,
        output_zp: 0,
        multiplier: 1 << 30,
        shift: 0,
    };
    assert_eq!(kernels::mean_axis_s8(&d, &mq, &[0; 7], &mut q[..2]), bad);
    assert_eq!(
        kernels::quantize_s8(qp(1.0, 0), &[0.0; 3], &mut q[..2]),
        bad
    );
    assert_eq!(
        kernels::dequantize_s8(qp(1.0, 0), &[0; 3], &mut y[..2]),
        bad
    );
}

// ---------------------------------------------------------------------------------------------
// Golden vectors from TFLite-Micro's interpreter (golden/tflm_vit_ops.py).

fn parse_hex_float(s: &str) -> f32 {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let s = s.strip_prefix("0x").expect("0x");
    let (mant, exp) = s.split_once('p').expect("p");
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let mut v = u64::from_str_radix(int, 16).unwrap() as f64;
    for (i, ch) in frac.chars().enumerate() {
        v += ch.to_digit(16).unwrap() as f64 / 16f64.powi(i as i32 + 1);
    }
    let v = v * 2f64.powi(exp.parse::<i32>().unwrap());
    let v = if neg { -v } else { v };
    assert_eq!(v as f32 as f64, v, "not an f32: {s}");
    v as f32
}

#[test]
fn golden_vectors_from_the_tflite_micro_interpreter() {
    let text = include_str!("golden/tflm_vit_ops.txt");
    let mut counts = [0usize; 4];
    for (line_no, line) in text.lines().enumerate() {
        let at = format!("line {}", line_no + 1);
        let mut t = line.split_whitespace();
        let kind = t.next().unwrap();
        let mut next = || t.next().unwrap();
        match kind {
            "batch_matmul" => {
                let mut u = || -> usize { next().parse().unwrap() };
                let (adj_y, batches, m, k, n) = (u() == 1, u(), u(), u(), u());
                let mut q = || {
                    let s = parse_hex_float(next());
                    qp(s, next().parse().unwrap())
                };
                let (qa, qb, qo) = (q(), q(), q());
                let mut vals =
                    |len: usize| -> Vec<i8> { (0..len).map(|_| next().parse().unwrap()).collect() };
                let (a, b, want) = (
                    vals(batches * m * k),
                    vals(batches * k * n),
                    vals(batches * m * n),
                );
                let p = BatchMatMulParams {
                    batches,
                    m,
                    k,
                    n,
                    adj_y,
                };
                let qq = batch_matmul_s8_params(qa, qb, qo, 1.0).unwrap();
                let mut y = vec![0i8; want.len()];
                kernels::batch_matmul_s8(&p, &qq, &a, &b, &mut y).unwrap();
                assert_eq!(y, want, "{at}");
                counts[0] += 1;
            }
            "mean" => {
                let mut u = || -> usize { next().parse().unwrap() };
                let (outer, len, inner) = (u(), u(), u());
                let mut q = || {
                    let s = parse_hex_float(next());
                    qp(s, next().parse().unwrap())
                };
                let (qi, qo) = (q(), q());
                let x: Vec<i8> = (0..outer * len * inner)
                    .map(|_| next().parse().unwrap())
                    .collect();
                let want: Vec<i8> = (0..outer * inner)
                    .map(|_| next().parse().unwrap())
                    .collect();
                let qq = mean_s8_params(qi, qo, len).unwrap();
                let mut y = vec![0i8; want.len()];
                kernels::mean_axis_s8(&AxisDims { outer, len, inner }, &qq, &x, &mut y).unwrap();
                assert_eq!(y, want, "{at}");
                counts[1] += 1;
            }
            "quantize" => {
                let s = parse_hex_float(next());
                let zp: i8 = next().parse().unwrap();
                let n: usize = next().parse().unwrap();
                let x: Vec<f32> = (0..n).map(|_| parse_hex_float(next())).collect();
                let want: Vec<i8> = (0..n).map(|_| next().parse().unwrap()).collect();
                let mut y = vec![0i8; n];
                kernels::quantize_s8(qp(s, zp), &x, &mut y).unwrap();
                assert_eq!(y, want, "{at}");
                counts[2] += 1;
            }
            "dequantize" => {
                let s = parse_hex_float(next());
                let zp: i8 = next().parse().unwrap();
                let want: Vec<f32> = (0..256).map(|_| parse_hex_float(next())).collect();
                let codes: Vec<i8> = (-128..=127).collect();
                let mut y = vec![0.0f32; 256];
                kernels::dequantize_s8(qp(s, zp), &codes, &mut y).unwrap();
                assert_eq!(bits(&y), bits(&want), "{at}");
                counts[3] += 1;
            }
            other => panic!("unknown case {other}"),
        }
    }
    assert_eq!(counts, [60, 60, 24, 8]);
}
