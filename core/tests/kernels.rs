//! Every kernel against a plain reference: f32 bit for bit (the reference spells out the 8-lane
//! order with explicit zero padding, im2col style) and within 1e-4 of an f64 sum; int8 against an
//! i64 accumulator and an i128 transcription of the tflite requantization.

mod common;

use common::{bytes_i8, le_f32, le_i32, Rng};
use denoiserep_core::kernels::{self, window_out_dim, Chw};
use denoiserep_core::{
    Activation, Conv2dF32, Conv2dS8, Error, F32Data, I32Data, I8Data, LinearF32, LinearS8,
    MaxPool2d, QuantParams,
};
use proptest::prelude::*;

fn tree(l: &[f32; 8]) -> f32 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// Reference dot product in the documented 8-lane order.
fn dot_ref(w: &[f32], x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    for j in 0..w.len() {
        lanes[j % 8] += w[j] * x[j];
    }
    tree(&lanes)
}

fn relu(x: f32, a: Activation) -> f32 {
    if a == Activation::Relu && x < 0.0 {
        0.0
    } else {
        x
    }
}

/// Reference requantization: i128 arithmetic, round half up then round half away from zero.
fn requant_ref(acc: i64, m: i32, shift: i32, zp: i32, lo: i32, hi: i32) -> i8 {
    let acc = acc as i32; // the loader guarantees this is exact
    let xs = acc.wrapping_shl(shift.max(0) as u32) as i128;
    let prod = xs * m as i128;
    let d = 1i128 << 31;
    let high = (2 * prod + d).div_euclid(2 * d) as i32 as i128;
    let r = (-shift).max(0);
    let v = if r == 0 {
        high
    } else {
        let p = 1i128 << r;
        if high >= 0 {
            (2 * high + p).div_euclid(2 * p)
        } else {
            -((-2 * high + p).div_euclid(2 * p))
        }
    };
    (v as i32 + zp).clamp(lo, hi) as i8
}

fn act_range(a: Activation, zp: i8) -> (i32, i32) {
    match a {
        Activation::None => (-128, 127),
        Activation::Relu => ((zp as i32).max(-128), 127),
        Activation::Relu6 => unreachable!("these tests draw None or Relu"),
    }
}

/// im2col patch of output (oy, ox) with explicit padding value `pad`.
#[allow(clippy::too_many_arguments)]
fn patch<T: Copy>(
    x: &[T],
    d: Chw,
    k: usize,
    s: usize,
    p: usize,
    oy: usize,
    ox: usize,
    pad: T,
) -> Vec<T> {
    let mut v = Vec::with_capacity(d.c * k * k);
    for i in 0..d.c {
        for ky in 0..k {
            for kx in 0..k {
                let iy = (oy * s + ky) as isize - p as isize;
                let ix = (ox * s + kx) as isize - p as isize;
                if iy < 0 || ix < 0 || iy >= d.h as isize || ix >= d.w as isize {
                    v.push(pad);
                } else {
                    v.push(x[i * d.h * d.w + iy as usize * d.w + ix as usize]);
                }
            }
        }
    }
    v
}

fn random_per_channel(rng: &mut Rng, n: usize) -> (Vec<i32>, Vec<i8>) {
    let m = (0..n)
        .map(|_| (1i32 << 30) + (rng.next_u64() % (1 << 30)) as i32)
        .collect();
    let s = (0..n).map(|_| -((rng.next_u64() % 12) as i8)).collect();
    (m, s)
}

fn activation(b: bool) -> Activation {
    if b {
        Activation::Relu
    } else {
        Activation::None
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn linear_f32_matches_reference(n_in in 1usize..40, n_out in 1usize..12, relu_on: bool, seed: u64) {
        let mut rng = Rng(seed);
        let (w, b, x) = (rng.vec(n_in * n_out, -1.0, 1.0), rng.vec(n_out, -1.0, 1.0), rng.vec(n_in, -2.0, 2.0));
        let (wb, bb) = (le_f32(&w), le_f32(&b));
        let act = activation(relu_on);
        let layer = LinearF32 { in_features: n_in as u32, out_features: n_out as u32, activation: act,
            weights: F32Data::from_le_bytes(&wb), bias: F32Data::from_le_bytes(&bb) };
        let mut y = vec![0.0; n_out];
        kernels::linear_f32(&layer, &x, &mut y).unwrap();
        for o in 0..n_out {
            let want = relu(dot_ref(&w[o * n_in..(o + 1) * n_in], &x) + b[o], act);
            prop_assert_eq!(y[o].to_bits(), want.to_bits());
            let exact: f64 = (0..n_in).map(|i| w[o * n_in + i] as f64 * x[i] as f64).sum::<f64>() + b[o] as f64;
            prop_assert!((y[o] as f64 - relu(exact as f32, act) as f64).abs() < 1e-4);
        }
    }

    #[test]
    fn conv2d_f32_matches_im2col_reference(
        ci in 1usize..4, co in 1usize..4, k in 1usize..4, s in 1usize..3, p_frac in 0usize..3,
        h in 1usize..9, w in 1usize..9, relu_on: bool, seed: u64,
    ) {
        let p = p_frac.min(k - 1);
        let d = Chw { c: ci, h, w };
        prop_assume!(window_out_dim(h, k, s, p).is_some() && window_out_dim(w, k, s, p).is_some());
        let (oh, ow) = (window_out_dim(h, k, s, p).unwrap(), window_out_dim(w, k, s, p).unwrap());
        let mut rng = Rng(seed);
        let per = ci * k * k;
        let (wt, b, x) = (rng.vec(co * per, -1.0, 1.0), rng.vec(co, -1.0, 1.0), rng.vec(ci * h * w, -2.0, 2.0));
        let (wb, bb) = (le_f32(&wt), le_f32(&b));
        let act = activation(relu_on);
        let layer = Conv2dF32 { in_channels: ci as u16, out_channels: co as u16, kernel: k as u16,
            stride: s as u16, padding: p as u16, activation: act,
            weights: F32Data::from_le_bytes(&wb), bias: F32Data::from_le_bytes(&bb) };
        let mut y = vec![0.0; co * oh * ow];
        kernels::conv2d_f32(&layer, &x, d, &mut y).unwrap();
        for o in 0..co {
            for oy in 0..oh {
                for ox in 0..ow {
                    let pt = patch(&x, d, k, s, p, oy, ox, 0.0f32);
                    let want = relu(dot_ref(&wt[o * per..(o + 1) * per], &pt) + b[o], act);
                    let got = y[(o * oh + oy) * ow + ox];
                    prop_assert_eq!(got.to_bits(), want.to_bits(), "o={} oy={} ox={}", o, oy, ox);
                }
            }
        }
    }

    #[test]
    fn linear_s8_matches_i64_reference(
        n_in in 1usize..40, n_out in 1usize..12, zp_in: i8, zp_out: i8, relu_on: bool, seed: u64,
    ) {
        let mut rng = Rng(seed);
        let w: Vec<i8> = rng.i8s(n_in * n_out).into_iter().map(|v| v.max(-127)).collect();
        let x = rng.i8s(n_in);
        let b: Vec<i32> = (0..n_out).map(|_| (rng.next_u64() % 200_001) as i32 - 100_000).collect();
        let (m, sh) = random_per_channel(&mut rng, n_out);
        let (wb, bb, mb, sb) = (bytes_i8(&w), le_i32(&b), le_i32(&m), bytes_i8(&sh));
        let act = activation(relu_on);
        let out = QuantParams { scale: 0.05, zero_point: zp_out };
        let layer = LinearS8 { in_features: n_in as u32, out_features: n_out as u32, activation: act,
            weights: I8Data::from_le_bytes(&wb), bias: I32Data::from_le_bytes(&bb),
            multiplier: I32Data::from_le_bytes(&mb), shift: I8Data::from_le_bytes(&sb), output: out };
        let mut y = vec![0i8; n_out];
        kernels::linear_s8(&layer, &x, zp_in, &mut y).unwrap();
        let (lo, hi) = act_range(act, zp_out);
        for o in 0..n_out {
            let acc: i64 = b[o] as i64 + (0..n_in).map(|i| w[o * n_in + i] as i64 * (x[i] as i64 - zp_in as i64)).sum::<i64>();
            prop_assert_eq!(y[o], requant_ref(acc, m[o], sh[o] as i32, zp_out as i32, lo, hi));
        }
    }

    #[test]
    fn conv2d_s8_matches_i64_reference(
        ci in 1usize..4, co in 1usize..4, k in 1usize..4, s in 1usize..3, p_frac in 0usize..3,
        h in 1usize..9, w in 1usize..9, zp_in: i8, zp_out: i8, relu_on: bool, seed: u64,
    ) {
        let p = p_frac.min(k - 1);
        let d = Chw { c: ci, h, w };
        prop_assume!(window_out_dim(h, k, s, p).is_some() && window_out_dim(w, k, s, p).is_some());
        let (oh, ow) = (window_out_dim(h, k, s, p).unwrap(), window_out_dim(w, k, s, p).unwrap());
        let mut rng = Rng(seed);
        let per = ci * k * k;
        let wt: Vec<i8> = rng.i8s(co * per).into_iter().map(|v| v.max(-127)).collect();
        let x = rng.i8s(ci * h * w);
        let b: Vec<i32> = (0..co).map(|_| (rng.next_u64() % 20_001) as i32 - 10_000).collect();
        let (m, sh) = random_per_channel(&mut rng, co);
        let (wb, bb, mb, sb) = (bytes_i8(&wt), le_i32(&b), le_i32(&m), bytes_i8(&sh));
        let act = activation(relu_on);
        let layer = Conv2dS8 { in_channels: ci as u16, out_channels: co as u16, kernel: k as u16,
            stride: s as u16, padding: p as u16, activation: act,
            weights: I8Data::from_le_bytes(&wb), bias: I32Data::from_le_bytes(&bb),
            multiplier: I32Data::from_le_bytes(&mb), shift: I8Data::from_le_bytes(&sb),
            output: QuantParams { scale: 0.1, zero_point: zp_out } };
        let mut y = vec![0i8; co * oh * ow];
        kernels::conv2d_s8(&layer, &x, d, zp_in, &mut y).unwrap();
        let (lo, hi) = act_range(act, zp_out);
        for o in 0..co {
            for oy in 0..oh {
                for ox in 0..ow {
                    let pt = patch(&x, d, k, s, p, oy, ox, zp_in);
                    let acc: i64 = b[o] as i64 + pt.iter().enumerate()
                        .map(|(j, &v)| wt[o * per + j] as i64 * (v as i64 - zp_in as i64)).sum::<i64>();
                    let want = requant_ref(acc, m[o], sh[o] as i32, zp_out as i32, lo, hi);
                    prop_assert_eq!(y[(o * oh + oy) * ow + ox], want);
                }
            }
        }
    }

    #[test]
    fn maxpool2d_matches_reference(c in 1usize..4, k in 1usize..4, s in 1usize..4, h in 1usize..10, w in 1usize..10, seed: u64) {
        prop_assume!(h >= k && w >= k);
        let d = Chw { c, h, w };
        let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
        let mut rng = Rng(seed);
        let xf = rng.vec(c * h * w, -3.0, 3.0);
        let xq = rng.i8s(c * h * w);
        let pool = MaxPool2d { kernel: k as u16, stride: s as u16 };
        let (mut yf, mut yq) = (vec![0.0; c * oh * ow], vec![0i8; c * oh * ow]);
        kernels::maxpool2d_f32(&pool, &xf, d, &mut yf).unwrap();
        kernels::maxpool2d_s8(&pool, &xq, d, &mut yq).unwrap();
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let idx = |ky: usize, kx: usize| ch * h * w + (oy * s + ky) * w + ox * s + kx;
                    let mut mf = f32::NEG_INFINITY;
                    let mut mq = i8::MIN;
                    for ky in 0..k {
                        for kx in 0..k {
                            mf = mf.max(xf[idx(ky, kx)]);
                            mq = mq.max(xq[idx(ky, kx)]);
                        }
                    }
                    prop_assert_eq!(yf[(ch * oh + oy) * ow + ox], mf);
                    prop_assert_eq!(yq[(ch * oh + oy) * ow + ox], mq);
                }
            }
        }
    }

    #[test]
    fn global_avg_pool_matches_reference(c in 1usize..4, h in 1usize..12, w in 1usize..12, seed: u64) {
        let d = Chw { c, h, w };
        let n = h * w;
        let mut rng = Rng(seed);
        let xf = rng.vec(c * n, -3.0, 3.0);
        let xq = rng.i8s(c * n);
        let (mut yf, mut yq) = (vec![0.0; c], vec![0i8; c]);
        kernels::global_avg_pool_f32(&xf, d, &mut yf).unwrap();
        kernels::global_avg_pool_s8(&xq, d, &mut yq).unwrap();
        for ch in 0..c {
            let plane = &xf[ch * n..(ch + 1) * n];
            let mut lanes = [0.0f32; 8];
            for (j, &v) in plane.iter().enumerate() {
                lanes[j % 8] += v;
            }
            prop_assert_eq!(yf[ch].to_bits(), (tree(&lanes) / n as f32).to_bits());
            let mean64 = plane.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            prop_assert!((yf[ch] as f64 - mean64).abs() < 1e-5);
            // Round half away from zero of the exact rational sum / n.
            let sum: i64 = xq[ch * n..(ch + 1) * n].iter().map(|&v| v as i64).sum();
            let (a, nn) = (sum.abs(), n as i64);
            let q = (2 * a + nn) / (2 * nn) * sum.signum();
            prop_assert_eq!(yq[ch] as i64, q);
        }
    }

    #[test]
    fn relu_matches_reference(seed: u64, zp: i8) {
        let mut rng = Rng(seed);
        let xf = rng.vec(33, -2.0, 2.0);
        let xq = rng.i8s(33);
        let (mut yf, mut yq) = (xf.clone(), xq.clone());
        kernels::relu_f32(&mut yf);
        kernels::relu_s8(&mut yq, zp);
        for i in 0..33 {
            prop_assert_eq!(yf[i], xf[i].max(0.0));
            prop_assert_eq!(yq[i], xq[i].max(zp));
        }
    }
}

#[test]
fn global_avg_pool_s8_ties_round_away_from_zero() {
    let d = Chw { c: 2, h: 1, w: 2 };
    let mut y = [0i8; 2];
    // (1 + 2) / 2 = 1.5 -> 2 ; (-1 - 2) / 2 = -1.5 -> -2
    kernels::global_avg_pool_s8(&[1, 2, -1, -2], d, &mut y).unwrap();
    assert_eq!(y, [2, -2]);
}

#[test]
fn relu_keeps_nan_and_negative_zero() {
    let mut v = [f32::NAN, -0.0, -1.0, 2.0];
    kernels::relu_f32(&mut v);
    assert!(v[0].is_nan());
    assert_eq!(v[1].to_bits(), (-0.0f32).to_bits());
    assert_eq!(&v[2..], &[0.0, 2.0]);
}

#[test]
fn kernels_reject_mismatched_slices() {
    let (w, b) = (le_f32(&[1.0; 6]), le_f32(&[0.0; 2]));
    let layer = LinearF32 {
        in_features: 3,
        out_features: 2,
        activation: Activation::None,
        weights: F32Data::from_le_bytes(&w),
        bias: F32Data::from_le_bytes(&b),
    };
    assert_eq!(
        kernels::linear_f32(&layer, &[1.0; 2], &mut [0.0; 2]),
        Err(Error::KernelBadArguments)
    );
    assert_eq!(
        kernels::linear_f32(&layer, &[1.0; 3], &mut [0.0; 3]),
        Err(Error::KernelBadArguments)
    );
    let mut y = [0.0; 2];
    kernels::linear_f32(&layer, &[1.0, 2.0, 3.0], &mut y).unwrap();
    assert_eq!(y, [6.0, 6.0]);
    let pool = MaxPool2d {
        kernel: 3,
        stride: 1,
    };
    let d = Chw { c: 1, h: 2, w: 2 };
    assert_eq!(
        kernels::maxpool2d_f32(&pool, &[0.0; 4], d, &mut [0.0; 1]),
        Err(Error::KernelBadArguments)
    );
    assert_eq!(
        kernels::global_avg_pool_f32(&[0.0; 4], d, &mut [0.0; 2]),
        Err(Error::KernelBadArguments)
    );
}

#[test]
fn conv2d_f32_known_values() {
    // 1×3×3 input 1..9, one 3×3 kernel of ones, padding 1, stride 2: corner sums.
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let (w, b) = (le_f32(&[1.0; 9]), le_f32(&[0.5]));
    let layer = Conv2dF32 {
        in_channels: 1,
        out_channels: 1,
        kernel: 3,
        stride: 2,
        padding: 1,
        activation: Activation::None,
        weights: F32Data::from_le_bytes(&w),
        bias: F32Data::from_le_bytes(&b),
    };
    let mut y = [0.0; 4];
    kernels::conv2d_f32(&layer, &x, Chw { c: 1, h: 3, w: 3 }, &mut y).unwrap();
    assert_eq!(y, [12.5, 16.5, 24.5, 28.5]);
}
