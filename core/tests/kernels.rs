//! Every kernel against a plain reference written here: f32 bit for bit (the reference spells out
//! the 8-lane order with explicit zero padding, im2col style) and within 1e-4 of an f64 sum; int8
//! against an i64 accumulator and an i128 transcription of the tflite requantization; max pooling
//! against a fold over the taps inside the input.
//!
//! Windows are drawn with any `kh × kw` (1–5), strides 1–3 per dimension and independent padding
//! on each side; fixed cases cover the shapes of real models (10×4 stride 2 with padding
//! 4/5/1/1, 1×1 stride 2, 3×3 stride 2 with TF "same" padding 0/1).

mod common;

use common::{bytes_i8, le_f32, le_i32, Rng};
use denoiserep_core::kernels::params::{
    ConvParams, DepthwiseParams, LinearParams, PerChannelQuant, PoolParams, Window,
};
use denoiserep_core::kernels::{self, Chw};
use denoiserep_core::{Activation, Error, F32Data, I32Data, I8Data, QuantParams};
use proptest::prelude::*;

fn tree(l: &[f32; 8]) -> f32 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// Reference dot product in the documented 8-lane order: term `j` into lane `j mod 8`.
fn dot_ref(w: &[f32], x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    for j in 0..w.len() {
        lanes[j % 8] += w[j] * x[j];
    }
    tree(&lanes)
}

/// The f32 fused activations, spelled out (NaN and −0.0 pass through).
#[allow(clippy::manual_clamp)] // the documented comparisons, written as such
fn act_ref(x: f32, a: Activation) -> f32 {
    match a {
        Activation::None => x,
        Activation::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        Activation::Relu6 => {
            if x < 0.0 {
                0.0
            } else if x > 6.0 {
                6.0
            } else {
                x
            }
        }
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

/// TFLite's int8 clamp range of a fused activation (`CalculateActivationRangeQuantized`).
fn act_range(a: Activation, out: QuantParams) -> (i32, i32) {
    let zp = out.zero_point as i32;
    match a {
        Activation::None => (-128, 127),
        Activation::Relu => (zp.max(-128), 127),
        Activation::Relu6 => (
            zp.max(-128),
            ((6.0 / out.scale).round() as i32 + zp).min(127),
        ),
    }
}

/// Output size of `win` on an `h × w` input, computed independently of `Window::out_dims`.
fn out_dims_ref(win: &Window, h: usize, w: usize) -> Option<(usize, usize)> {
    let ok = win.kh > 0
        && win.kw > 0
        && win.sh > 0
        && win.sw > 0
        && h > 0
        && w > 0
        && win.pad_top < win.kh
        && win.pad_bottom < win.kh
        && win.pad_left < win.kw
        && win.pad_right < win.kw
        && h + win.pad_top + win.pad_bottom >= win.kh
        && w + win.pad_left + win.pad_right >= win.kw;
    ok.then(|| {
        (
            (h + win.pad_top + win.pad_bottom - win.kh) / win.sh + 1,
            (w + win.pad_left + win.pad_right - win.kw) / win.sw + 1,
        )
    })
}

/// The input value of channel plane `plane` (`h × w`) under window tap `(ky, kx)` of output
/// `(oy, ox)`, or `None` in the padding.
#[allow(clippy::too_many_arguments)]
fn tap<T: Copy>(
    plane: &[T],
    h: usize,
    w: usize,
    win: &Window,
    oy: usize,
    ox: usize,
    ky: usize,
    kx: usize,
) -> Option<T> {
    let iy = (oy * win.sh + ky) as isize - win.pad_top as isize;
    let ix = (ox * win.sw + kx) as isize - win.pad_left as isize;
    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
        None
    } else {
        Some(plane[iy as usize * w + ix as usize])
    }
}

/// im2col patch of output (oy, ox) over all `c` channels of `x` (`[c][h][w]`), `[c][kh][kw]`,
/// with explicit padding value `pad`.
#[allow(clippy::too_many_arguments)]
fn patch<T: Copy>(
    x: &[T],
    c: usize,
    h: usize,
    w: usize,
    win: &Window,
    oy: usize,
    ox: usize,
    pad: T,
) -> Vec<T> {
    let mut v = Vec::with_capacity(c * win.kh * win.kw);
    for plane in x.chunks(h * w).take(c) {
        for ky in 0..win.kh {
            for kx in 0..win.kw {
                v.push(tap(plane, h, w, win, oy, ox, ky, kx).unwrap_or(pad));
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

/// `kh, kw ∈ 1..=5`, strides `1..=3`, each pad drawn below its kernel size.
fn window() -> impl Strategy<Value = Window> {
    (
        1usize..6,
        1usize..6,
        1usize..4,
        1usize..4,
        [0usize..8, 0usize..8, 0usize..8, 0usize..8],
    )
        .prop_map(|(kh, kw, sh, sw, p)| Window {
            kh,
            kw,
            sh,
            sw,
            pad_top: p[0] % kh,
            pad_bottom: p[1] % kh,
            pad_left: p[2] % kw,
            pad_right: p[3] % kw,
        })
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::None),
        Just(Activation::Relu),
        Just(Activation::Relu6)
    ]
}

/// The windows of real models that the random ones may miss: `(window, h, w)`.
fn fixed_windows() -> [(Window, usize, usize); 4] {
    let tall = Window {
        kh: 10,
        kw: 4,
        sh: 2,
        sw: 2,
        pad_top: 4,
        pad_bottom: 5,
        pad_left: 1,
        pad_right: 1,
    };
    let one = Window::square(1, 2, 0);
    let same = Window {
        pad_top: 0,
        pad_bottom: 1,
        pad_left: 0,
        pad_right: 1,
        ..Window::square(3, 2, 0)
    };
    [(tall, 49, 10), (one, 7, 6), (same, 8, 8), (same, 7, 10)]
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the property tests and the fixed cases.

/// f32 Conv2d: bit for bit against im2col + `dot_ref`, and within 1e-4 of an f64 sum.
fn check_conv2d_f32(
    ci: usize,
    co: usize,
    h: usize,
    w: usize,
    win: Window,
    act: Activation,
    seed: u64,
) -> Result<(), TestCaseError> {
    let (oh, ow) = out_dims_ref(&win, h, w).unwrap();
    let mut rng = Rng(seed);
    let per = ci * win.kh * win.kw;
    let (wt, b, x) = (
        rng.vec(co * per, -1.0, 1.0),
        rng.vec(co, -1.0, 1.0),
        rng.vec(ci * h * w, -2.0, 2.0),
    );
    let (wb, bb) = (le_f32(&wt), le_f32(&b));
    let p = ConvParams {
        in_channels: ci,
        h,
        w,
        out_channels: co,
        window: win,
        activation: act,
    };
    let mut y = vec![f32::NAN; co * oh * ow];
    kernels::conv2d_f32(
        &p,
        &x,
        F32Data::from_le_bytes(&wb),
        F32Data::from_le_bytes(&bb),
        &mut y,
    )
    .unwrap();
    for o in 0..co {
        let w_o = &wt[o * per..(o + 1) * per];
        for oy in 0..oh {
            for ox in 0..ow {
                let pt = patch(&x, ci, h, w, &win, oy, ox, 0.0f32);
                let want = act_ref(dot_ref(w_o, &pt) + b[o], act);
                let got = y[(o * oh + oy) * ow + ox];
                prop_assert_eq!(got.to_bits(), want.to_bits(), "o={} oy={} ox={}", o, oy, ox);
                let exact: f64 = w_o
                    .iter()
                    .zip(&pt)
                    .map(|(&a, &v)| a as f64 * v as f64)
                    .sum();
                let exact = act_ref((exact + b[o] as f64) as f32, act);
                prop_assert!((got as f64 - exact as f64).abs() < 1e-4);
            }
        }
    }
    Ok(())
}

/// int8 Conv2d against an i64 accumulator over the im2col patch (padding reads `zp_in`).
#[allow(clippy::too_many_arguments)]
fn check_conv2d_s8(
    ci: usize,
    co: usize,
    h: usize,
    w: usize,
    win: Window,
    act: Activation,
    (zp_in, zp_out): (i8, i8),
    seed: u64,
) -> Result<(), TestCaseError> {
    let (oh, ow) = out_dims_ref(&win, h, w).unwrap();
    let mut rng = Rng(seed);
    let per = ci * win.kh * win.kw;
    let wt: Vec<i8> = rng.i8s(co * per).into_iter().map(|v| v.max(-127)).collect();
    let x = rng.i8s(ci * h * w);
    let b: Vec<i32> = (0..co)
        .map(|_| (rng.next_u64() % 20_001) as i32 - 10_000)
        .collect();
    let (m, sh) = random_per_channel(&mut rng, co);
    let (wb, bb, mb, sb) = (bytes_i8(&wt), le_i32(&b), le_i32(&m), bytes_i8(&sh));
    let out = QuantParams {
        scale: 0.05,
        zero_point: zp_out,
    };
    let p = ConvParams {
        in_channels: ci,
        h,
        w,
        out_channels: co,
        window: win,
        activation: act,
    };
    let q = PerChannelQuant {
        input_zp: zp_in,
        output: out,
        multiplier: I32Data::from_le_bytes(&mb),
        shift: I8Data::from_le_bytes(&sb),
    };
    let mut y = vec![0i8; co * oh * ow];
    kernels::conv2d_s8(
        &p,
        &q,
        &x,
        I8Data::from_le_bytes(&wb),
        I32Data::from_le_bytes(&bb),
        &mut y,
    )
    .unwrap();
    let (lo, hi) = act_range(act, out);
    for o in 0..co {
        for oy in 0..oh {
            for ox in 0..ow {
                let pt = patch(&x, ci, h, w, &win, oy, ox, zp_in);
                let acc: i64 = b[o] as i64
                    + pt.iter()
                        .enumerate()
                        .map(|(j, &v)| wt[o * per + j] as i64 * (v as i64 - zp_in as i64))
                        .sum::<i64>();
                let want = requant_ref(acc, m[o], sh[o] as i32, zp_out as i32, lo, hi);
                prop_assert_eq!(
                    y[(o * oh + oy) * ow + ox],
                    want,
                    "o={} oy={} ox={}",
                    o,
                    oy,
                    ox
                );
            }
        }
    }
    Ok(())
}

/// f32 DepthwiseConv2d: channel `c` is a dot of its own `kh × kw` filter with its own patch.
fn check_depthwise_f32(
    c: usize,
    h: usize,
    w: usize,
    win: Window,
    act: Activation,
    seed: u64,
) -> Result<(), TestCaseError> {
    let (oh, ow) = out_dims_ref(&win, h, w).unwrap();
    let mut rng = Rng(seed);
    let per = win.kh * win.kw;
    let (wt, b, x) = (
        rng.vec(c * per, -1.0, 1.0),
        rng.vec(c, -1.0, 1.0),
        rng.vec(c * h * w, -2.0, 2.0),
    );
    let (wb, bb) = (le_f32(&wt), le_f32(&b));
    let p = DepthwiseParams {
        channels: c,
        h,
        w,
        window: win,
        activation: act,
    };
    let mut y = vec![f32::NAN; c * oh * ow];
    kernels::depthwise_conv2d_f32(
        &p,
        &x,
        F32Data::from_le_bytes(&wb),
        F32Data::from_le_bytes(&bb),
        &mut y,
    )
    .unwrap();
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        let w_c = &wt[ch * per..(ch + 1) * per];
        for oy in 0..oh {
            for ox in 0..ow {
                let pt = patch(plane, 1, h, w, &win, oy, ox, 0.0f32);
                let want = act_ref(dot_ref(w_c, &pt) + b[ch], act);
                let got = y[(ch * oh + oy) * ow + ox];
                prop_assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "c={} oy={} ox={}",
                    ch,
                    oy,
                    ox
                );
            }
        }
    }
    Ok(())
}

/// int8 DepthwiseConv2d as TFLite-Micro's reference `DepthwiseConvPerChannel` (multiplier 1):
/// `acc = Σ_{taps inside} f · (x + input_offset)`, `input_offset = −zp_in`, then `+ bias[c]`,
/// then the channel's requantization, `+ zp_out`, clamp.
#[allow(clippy::too_many_arguments)]
fn check_depthwise_s8(
    c: usize,
    h: usize,
    w: usize,
    win: Window,
    act: Activation,
    (zp_in, zp_out): (i8, i8),
    seed: u64,
) -> Result<(), TestCaseError> {
    let (oh, ow) = out_dims_ref(&win, h, w).unwrap();
    let mut rng = Rng(seed);
    let per = win.kh * win.kw;
    let wt: Vec<i8> = rng.i8s(c * per).into_iter().map(|v| v.max(-127)).collect();
    let x = rng.i8s(c * h * w);
    let b: Vec<i32> = (0..c)
        .map(|_| (rng.next_u64() % 20_001) as i32 - 10_000)
        .collect();
    let (m, sh) = random_per_channel(&mut rng, c);
    let (wb, bb, mb, sb) = (bytes_i8(&wt), le_i32(&b), le_i32(&m), bytes_i8(&sh));
    let out = QuantParams {
        scale: 0.05,
        zero_point: zp_out,
    };
    let p = DepthwiseParams {
        channels: c,
        h,
        w,
        window: win,
        activation: act,
    };
    let q = PerChannelQuant {
        input_zp: zp_in,
        output: out,
        multiplier: I32Data::from_le_bytes(&mb),
        shift: I8Data::from_le_bytes(&sb),
    };
    let mut y = vec![0i8; c * oh * ow];
    kernels::depthwise_conv2d_s8(
        &p,
        &q,
        &x,
        I8Data::from_le_bytes(&wb),
        I32Data::from_le_bytes(&bb),
        &mut y,
    )
    .unwrap();
    let (lo, hi) = act_range(act, out);
    let input_offset = -(zp_in as i64);
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0i64;
                for ky in 0..win.kh {
                    for kx in 0..win.kw {
                        if let Some(v) = tap(plane, h, w, &win, oy, ox, ky, kx) {
                            let f = wt[(ch * win.kh + ky) * win.kw + kx] as i64;
                            acc += f * (v as i64 + input_offset);
                        }
                    }
                }
                acc += b[ch] as i64;
                let want = requant_ref(acc, m[ch], sh[ch] as i32, zp_out as i32, lo, hi);
                prop_assert_eq!(
                    y[(ch * oh + oy) * ow + ox],
                    want,
                    "c={} oy={} ox={}",
                    ch,
                    oy,
                    ox
                );
            }
        }
    }
    Ok(())
}

/// Max pooling (f32 and int8) against TFLite's fold: start at the lowest value, `max` over the
/// taps inside the input.
fn check_maxpool(
    c: usize,
    h: usize,
    w: usize,
    win: Window,
    seed: u64,
) -> Result<(), TestCaseError> {
    let (oh, ow) = out_dims_ref(&win, h, w).unwrap();
    let mut rng = Rng(seed);
    let xf = rng.vec(c * h * w, -3.0, 3.0);
    let xq = rng.i8s(c * h * w);
    let p = PoolParams {
        channels: c,
        h,
        w,
        window: win,
    };
    let (mut yf, mut yq) = (vec![f32::NAN; c * oh * ow], vec![0i8; c * oh * ow]);
    kernels::maxpool2d_f32(&p, &xf, &mut yf).unwrap();
    kernels::maxpool2d_s8(&p, &xq, &mut yq).unwrap();
    for ch in 0..c {
        let (pf, pq) = (&xf[ch * h * w..][..h * w], &xq[ch * h * w..][..h * w]);
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut mf, mut mq) = (f32::MIN, i8::MIN);
                for ky in 0..win.kh {
                    for kx in 0..win.kw {
                        if let Some(v) = tap(pf, h, w, &win, oy, ox, ky, kx) {
                            mf = mf.max(v);
                        }
                        if let Some(v) = tap(pq, h, w, &win, oy, ox, ky, kx) {
                            mq = mq.max(v);
                        }
                    }
                }
                let i = (ch * oh + oy) * ow + ox;
                prop_assert_eq!(
                    yf[i].to_bits(),
                    mf.to_bits(),
                    "c={} oy={} ox={}",
                    ch,
                    oy,
                    ox
                );
                prop_assert_eq!(yq[i], mq, "c={} oy={} ox={}", ch, oy, ox);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn linear_f32_matches_reference(
        rows in 1usize..4, n_in in 1usize..40, n_out in 1usize..12, act in activation(), seed: u64,
    ) {
        let mut rng = Rng(seed);
        let (w, b, x) = (
            rng.vec(n_in * n_out, -1.0, 1.0),
            rng.vec(n_out, -1.0, 1.0),
            rng.vec(rows * n_in, -2.0, 2.0),
        );
        let (wb, bb) = (le_f32(&w), le_f32(&b));
        let p = LinearParams { rows, in_features: n_in, out_features: n_out, activation: act };
        let mut y = vec![f32::NAN; rows * n_out];
        kernels::linear_f32(&p, &x, F32Data::from_le_bytes(&wb), F32Data::from_le_bytes(&bb), &mut y)
            .unwrap();
        for r in 0..rows {
            let xr = &x[r * n_in..(r + 1) * n_in];
            for o in 0..n_out {
                let w_o = &w[o * n_in..(o + 1) * n_in];
                let want = act_ref(dot_ref(w_o, xr) + b[o], act);
                let got = y[r * n_out + o];
                prop_assert_eq!(got.to_bits(), want.to_bits(), "r={} o={}", r, o);
                let exact: f64 = w_o.iter().zip(xr).map(|(&a, &v)| a as f64 * v as f64).sum();
                let exact = act_ref((exact + b[o] as f64) as f32, act);
                prop_assert!((got as f64 - exact as f64).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn linear_s8_matches_i64_reference(
        rows in 1usize..4, n_in in 1usize..40, n_out in 1usize..12, zp_in: i8, zp_out: i8,
        act in activation(), seed: u64,
    ) {
        let mut rng = Rng(seed);
        let w: Vec<i8> = rng.i8s(n_in * n_out).into_iter().map(|v| v.max(-127)).collect();
        let x = rng.i8s(rows * n_in);
        let b: Vec<i32> = (0..n_out).map(|_| (rng.next_u64() % 200_001) as i32 - 100_000).collect();
        let (m, sh) = random_per_channel(&mut rng, n_out);
        let (wb, bb, mb, sb) = (bytes_i8(&w), le_i32(&b), le_i32(&m), bytes_i8(&sh));
        let out = QuantParams { scale: 0.05, zero_point: zp_out };
        let p = LinearParams { rows, in_features: n_in, out_features: n_out, activation: act };
        let q = PerChannelQuant {
            input_zp: zp_in,
            output: out,
            multiplier: I32Data::from_le_bytes(&mb),
            shift: I8Data::from_le_bytes(&sb),
        };
        let mut y = vec![0i8; rows * n_out];
        kernels::linear_s8(&p, &q, &x, I8Data::from_le_bytes(&wb), I32Data::from_le_bytes(&bb), &mut y)
            .unwrap();
        let (lo, hi) = act_range(act, out);
        for r in 0..rows {
            for o in 0..n_out {
                let acc: i64 = b[o] as i64
                    + (0..n_in)
                        .map(|i| w[o * n_in + i] as i64 * (x[r * n_in + i] as i64 - zp_in as i64))
                        .sum::<i64>();
                prop_assert_eq!(y[r * n_out + o], requant_ref(acc, m[o], sh[o] as i32, zp_out as i32, lo, hi));
            }
        }
    }

    #[test]
    fn conv2d_f32_matches_im2col_reference(
        ci in 1usize..4, co in 1usize..4, win in window(), h in 1usize..12, w in 1usize..12,
        act in activation(), seed: u64,
    ) {
        prop_assume!(out_dims_ref(&win, h, w).is_some());
        check_conv2d_f32(ci, co, h, w, win, act, seed)?;
    }

    #[test]
    fn conv2d_s8_matches_i64_reference(
        ci in 1usize..4, co in 1usize..4, win in window(), h in 1usize..12, w in 1usize..12,
        zp_in: i8, zp_out: i8, act in activation(), seed: u64,
    ) {
        prop_assume!(out_dims_ref(&win, h, w).is_some());
        check_conv2d_s8(ci, co, h, w, win, act, (zp_in, zp_out), seed)?;
    }

    #[test]
    fn depthwise_conv2d_f32_matches_reference(
        c in 1usize..5, win in window(), h in 1usize..12, w in 1usize..12, act in activation(),
        seed: u64,
    ) {
        prop_assume!(out_dims_ref(&win, h, w).is_some());
        check_depthwise_f32(c, h, w, win, act, seed)?;
    }

    #[test]
    fn depthwise_conv2d_s8_matches_tflite_reference(
        c in 1usize..5, win in window(), h in 1usize..12, w in 1usize..12, zp_in: i8, zp_out: i8,
        act in activation(), seed: u64,
    ) {
        prop_assume!(out_dims_ref(&win, h, w).is_some());
        check_depthwise_s8(c, h, w, win, act, (zp_in, zp_out), seed)?;
    }

    #[test]
    fn maxpool2d_matches_reference(
        c in 1usize..4, win in window(), h in 1usize..10, w in 1usize..10, seed: u64,
    ) {
        prop_assume!(out_dims_ref(&win, h, w).is_some());
        check_maxpool(c, h, w, win, seed)?;
    }

    #[test]
    fn window_out_dims_matches_reference(win in window(), h in 0usize..12, w in 0usize..12) {
        prop_assert_eq!(win.out_dims(h, w), out_dims_ref(&win, h, w));
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

/// The fixed windows of [`fixed_windows`] through every conv-family kernel and max pooling, each
/// with every activation.
#[test]
fn fixed_windows_match_the_references() {
    let acts = [Activation::None, Activation::Relu, Activation::Relu6];
    for (n, (win, h, w)) in fixed_windows().into_iter().enumerate() {
        for (a, &act) in acts.iter().enumerate() {
            let seed = 1000 + 10 * n as u64 + a as u64;
            let run = || -> Result<(), TestCaseError> {
                check_conv2d_f32(3, 4, h, w, win, act, seed)?;
                check_conv2d_s8(3, 4, h, w, win, act, (-7, 5), seed)?;
                check_conv2d_s8(2, 9, h, w, win, act, (127, -128), seed + 1)?;
                check_depthwise_f32(5, h, w, win, act, seed)?;
                check_depthwise_s8(5, h, w, win, act, (-128, 3), seed)?;
                check_depthwise_s8(11, h, w, win, act, (42, -100), seed + 1)?;
                check_maxpool(3, h, w, win, seed)
            };
            if let Err(e) = run() {
                panic!("{win:?} on {h}×{w}, {act:?}: {e}");
            }
        }
    }
    // The output sizes these windows are meant to have.
    let dims: Vec<_> = fixed_windows()
        .iter()
        .map(|(win, h, w)| win.out_dims(*h, *w).unwrap())
        .collect();
    assert_eq!(dims, [(25, 5), (4, 3), (4, 4), (3, 5)]);
}

#[test]
fn maxpool_skips_padded_taps() {
    // All inputs negative: a padded tap read as 0 would win; skipping it keeps the true maximum.
    let p = PoolParams {
        channels: 1,
        h: 2,
        w: 2,
        window: Window {
            pad_bottom: 1,
            pad_right: 1,
            ..Window::square(2, 2, 0)
        },
    };
    let mut y = [0.0f32; 1];
    kernels::maxpool2d_f32(&p, &[-4.0, -3.0, -2.0, -1.0], &mut y).unwrap();
    assert_eq!(y, [-1.0]);
    let p = PoolParams {
        h: 3,
        w: 3,
        window: Window::square(3, 2, 1),
        ..p
    };
    let x: Vec<i8> = (-9..0).collect();
    let mut y = [0i8; 4];
    kernels::maxpool2d_s8(&p, &x, &mut y).unwrap();
    // Windows centred on the corners of the 3×3 input [[-9,-8,-7],[-6,-5,-4],[-3,-2,-1]].
    assert_eq!(y, [-5, -4, -2, -1]);
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
    let bad = Err(Error::KernelBadArguments);
    let (wb, bb) = (le_f32(&[1.0; 6]), le_f32(&[0.0; 2]));
    let (w, b) = (F32Data::from_le_bytes(&wb), F32Data::from_le_bytes(&bb));
    let p = LinearParams {
        rows: 2,
        in_features: 3,
        out_features: 2,
        activation: Activation::None,
    };
    assert_eq!(kernels::linear_f32(&p, &[1.0; 3], w, b, &mut [0.0; 4]), bad);
    assert_eq!(kernels::linear_f32(&p, &[1.0; 6], w, b, &mut [0.0; 2]), bad);
    assert_eq!(
        kernels::linear_f32(&p, &[1.0; 6], w, b.slice(0, 1).unwrap(), &mut [0.0; 4]),
        bad
    );
    let mut y = [0.0; 4];
    kernels::linear_f32(&p, &[1.0, 2.0, 3.0, -1.0, 0.0, 0.5], w, b, &mut y).unwrap();
    assert_eq!(y, [6.0, 6.0, -0.5, -0.5]);

    let (w8, b32, m, s) = ([1u8; 6], le_i32(&[0; 2]), le_i32(&[1 << 30; 2]), [1u8; 2]);
    let q = PerChannelQuant {
        input_zp: 0,
        output: QuantParams {
            scale: 1.0,
            zero_point: 0,
        },
        multiplier: I32Data::from_le_bytes(&m),
        shift: I8Data::from_le_bytes(&s),
    };
    let (w8, b32) = (I8Data::from_le_bytes(&w8), I32Data::from_le_bytes(&b32));
    assert_eq!(
        kernels::linear_s8(&p, &q, &[1; 3], w8, b32, &mut [0; 2]),
        bad
    );
    let q1 = PerChannelQuant {
        shift: I8Data::from_le_bytes(&s[..1]),
        ..q
    };
    assert_eq!(
        kernels::linear_s8(&p, &q1, &[1; 6], w8, b32, &mut [0; 4]),
        bad
    );
    let mut y8 = [0i8; 4];
    kernels::linear_s8(&p, &q, &[1, 2, 3, -1, 0, 0], w8, b32, &mut y8).unwrap();
    assert_eq!(y8, [6, 6, -1, -1]);

    // Conv2d 2→1, 2×1 kernel on 3×2: weights must be 1·2·2·1 = 4.
    let conv = ConvParams {
        in_channels: 2,
        h: 3,
        w: 2,
        out_channels: 1,
        window: Window {
            kh: 2,
            kw: 1,
            sh: 1,
            sw: 1,
            ..Window::default()
        },
        activation: Activation::None,
    };
    let (cw, cb) = (le_f32(&[1.0; 4]), le_f32(&[0.0]));
    let (cw, cb) = (F32Data::from_le_bytes(&cw), F32Data::from_le_bytes(&cb));
    let mut y = [0.0; 4];
    kernels::conv2d_f32(&conv, &[1.0; 12], cw, cb, &mut y).unwrap();
    assert_eq!(y, [4.0; 4]);
    assert_eq!(
        kernels::conv2d_f32(&conv, &[1.0; 12], cw, cb, &mut [0.0; 6]),
        bad
    );
    assert_eq!(kernels::conv2d_f32(&conv, &[1.0; 6], cw, cb, &mut y), bad);
    assert_eq!(
        kernels::conv2d_f32(&conv, &[1.0; 12], cw.slice(0, 2).unwrap(), cb, &mut y),
        bad
    );
    // A pad as large as the kernel is not a window.
    let padded = ConvParams {
        window: Window {
            pad_top: 2,
            ..conv.window
        },
        ..conv
    };
    assert_eq!(
        kernels::conv2d_f32(&padded, &[1.0; 12], cw, cb, &mut [0.0; 6]),
        bad
    );
    let (cw8, cb8) = (
        I8Data::from_le_bytes(&[1; 4]),
        I32Data::from_le_bytes(&b32.as_bytes()[..4]),
    );
    let q1 = PerChannelQuant {
        multiplier: q.multiplier.slice(0, 1).unwrap(),
        shift: q.shift.slice(0, 1).unwrap(),
        ..q
    };
    let mut y8 = [0i8; 4];
    kernels::conv2d_s8(&conv, &q1, &[1; 12], cw8, cb8, &mut y8).unwrap();
    assert_eq!(y8, [4; 4]);
    assert_eq!(
        kernels::conv2d_s8(&conv, &q, &[1; 12], cw8, cb8, &mut y8),
        bad
    );

    // Depthwise 2 channels, 2×1 kernel on 3×2: weights 2·2·1 = 4, bias 2.
    let dw = DepthwiseParams {
        channels: 2,
        h: 3,
        w: 2,
        window: conv.window,
        activation: Activation::None,
    };
    let (dwb, dbb) = (le_f32(&[1.0, 2.0, -1.0, 0.5]), le_f32(&[0.0, 1.0]));
    let (dwf, dbf) = (F32Data::from_le_bytes(&dwb), F32Data::from_le_bytes(&dbb));
    let mut y = [0.0; 8];
    kernels::depthwise_conv2d_f32(&dw, &[1.0; 12], dwf, dbf, &mut y).unwrap();
    assert_eq!(y, [3.0, 3.0, 3.0, 3.0, 0.5, 0.5, 0.5, 0.5]);
    assert_eq!(
        kernels::depthwise_conv2d_f32(&dw, &[1.0; 12], dwf, cb, &mut y),
        bad
    );
    assert_eq!(
        kernels::depthwise_conv2d_f32(&dw, &[1.0; 6], dwf, dbf, &mut y),
        bad
    );
    assert_eq!(
        kernels::depthwise_conv2d_f32(&dw, &[1.0; 12], cw.slice(0, 3).unwrap(), dbf, &mut y),
        bad
    );
    let mut y8 = [0i8; 8];
    kernels::depthwise_conv2d_s8(&dw, &q, &[1; 12], cw8, b32, &mut y8).unwrap();
    assert_eq!(y8, [2; 8]);
    assert_eq!(
        kernels::depthwise_conv2d_s8(&dw, &q1, &[1; 12], cw8, b32, &mut y8),
        bad
    );
    assert_eq!(
        kernels::depthwise_conv2d_s8(&dw, &q, &[1; 12], cw8, b32, &mut [0; 6]),
        bad
    );

    let pool = PoolParams {
        channels: 1,
        h: 2,
        w: 2,
        window: Window::square(3, 1, 0),
    };
    assert_eq!(kernels::maxpool2d_f32(&pool, &[0.0; 4], &mut [0.0; 1]), bad);
    let pool = PoolParams {
        window: Window::square(2, 1, 0),
        ..pool
    };
    assert_eq!(kernels::maxpool2d_s8(&pool, &[0; 4], &mut [0; 2]), bad);
    assert_eq!(kernels::maxpool2d_s8(&pool, &[0; 3], &mut [0; 1]), bad);
    let d = Chw { c: 1, h: 2, w: 2 };
    assert_eq!(
        kernels::global_avg_pool_f32(&[0.0; 4], d, &mut [0.0; 2]),
        bad
    );
}

#[test]
fn conv2d_f32_known_values() {
    // 1×3×3 input 1..9, one 3×3 kernel of ones, padding 1, stride 2: corner sums.
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let (w, b) = (le_f32(&[1.0; 9]), le_f32(&[0.5]));
    let p = ConvParams {
        in_channels: 1,
        h: 3,
        w: 3,
        out_channels: 1,
        window: Window::square(3, 2, 1),
        activation: Activation::None,
    };
    let mut y = [0.0; 4];
    kernels::conv2d_f32(
        &p,
        &x,
        F32Data::from_le_bytes(&w),
        F32Data::from_le_bytes(&b),
        &mut y,
    )
    .unwrap();
    assert_eq!(y, [12.5, 16.5, 24.5, 28.5]);
    // TF "same" at stride 2 on 4×4 (pad top/left 0, bottom/right 1): windows at rows/cols
    // 0..3 and 2..5, the last row/column being padding.
    let x: Vec<f32> = (1..=16).map(|v| v as f32).collect();
    let same = ConvParams {
        h: 4,
        w: 4,
        window: Window {
            pad_top: 0,
            pad_left: 0,
            ..p.window
        },
        ..p
    };
    kernels::conv2d_f32(
        &same,
        &x,
        F32Data::from_le_bytes(&w),
        F32Data::from_le_bytes(&b),
        &mut y,
    )
    .unwrap();
    assert_eq!(y, [54.5, 45.5, 72.5, 54.5]);
}

/// A padded tap is skipped but keeps its lane. Weights (3×3) `w[3] = 1e8`, `w[4] = 1`,
/// `w[8] = −1e8`, the rest 0, on a 3×3 input of ones with one row of padding on top: output 0
/// skips taps j = 0, 1, 2. Kept lanes: l3 = 1e8, l4 = 1, l0 = −1e8, so
/// `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)) = 0 + 1 = 1`. Renumbering the six remaining
/// taps 0..5 would put 1e8 and 1 together in lane 0 and 1 (summed first: 1e8 + 1 = 1e8) and give 0,
/// as would a left-to-right sum.
#[test]
fn conv2d_f32_padded_taps_keep_their_lane() {
    let mut wv = [0.0f32; 9];
    wv[3] = 1e8;
    wv[4] = 1.0;
    wv[8] = -1e8;
    let p = ConvParams {
        in_channels: 1,
        h: 3,
        w: 3,
        out_channels: 1,
        window: Window {
            pad_top: 1,
            ..Window::square(3, 1, 0)
        },
        activation: Activation::None,
    };
    let (w, b) = (le_f32(&wv), le_f32(&[0.0]));
    let x = [1.0f32; 9];
    let mut y = [0.0f32; 2];
    kernels::conv2d_f32(
        &p,
        &x,
        F32Data::from_le_bytes(&w),
        F32Data::from_le_bytes(&b),
        &mut y,
    )
    .unwrap();
    assert_eq!(y, [1.0, 1.0]);
    assert_eq!(wv[3..].iter().fold(0.0f32, |a, &v| a + v), 0.0);
    // Depthwise follows the same rule.
    let dw = DepthwiseParams {
        channels: 1,
        h: 3,
        w: 3,
        window: p.window,
        activation: Activation::None,
    };
    let mut yd = [0.0f32; 2];
    kernels::depthwise_conv2d_f32(
        &dw,
        &x,
        F32Data::from_le_bytes(&w),
        F32Data::from_le_bytes(&b),
        &mut yd,
    )
    .unwrap();
    assert_eq!(yd, [1.0, 1.0]);
}
