//! Every host path (reference loop, portable blocked, AVX2 and AVX-512 where the CPU has them) against a
//! straightforward scalar transcription of the documented order, on random shapes: f32 bit for
//! bit (NaN compared as NaN: its payload is not part of the contract), int8 exactly.
//!
//! Weights sit at an odd offset in their buffer so the unaligned loads are exercised.

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::{conv2d_f32, conv2d_s8, linear_f32, linear_s8, normalize_quantize};
use crate::kernels::params::{ConvParams, LinearParams, PerChannelQuant, Window};
use crate::kernels::{conv_geometry, KernelPath};
use crate::quant::{activation_range, quantize, requantize};
use crate::tensor::{Activation, F32Data, I32Data, I8Data, QuantParams};

/// The paths this CPU can run.
fn paths() -> Vec<KernelPath> {
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut p = vec![KernelPath::Reference, KernelPath::Portable];
    #[cfg(target_arch = "x86_64")]
    if super::x86::has_avx2() {
        p.push(KernelPath::Avx2);
    }
    #[cfg(target_arch = "x86_64")]
    if super::x86::has_avx512() {
        p.push(KernelPath::Avx512);
    }
    p
}

/// The fastest path, and [`crate::kernels::limit_kernel_path`] capping it (one test, because the
/// cap is process-wide: the other tests pass their path explicitly).
#[test]
fn the_dispatched_path_is_the_fastest_available() {
    let all = paths();
    let fastest = |max: KernelPath| -> KernelPath {
        if cfg!(feature = "portable-kernels") {
            return KernelPath::Portable;
        }
        [KernelPath::Avx512, KernelPath::Avx2]
            .into_iter()
            .find(|p| all.contains(p) && super::rank(*p) <= super::rank(max))
            .unwrap_or(KernelPath::Portable)
    };
    assert_eq!(super::path(), fastest(KernelPath::Avx512));
    assert_eq!(crate::kernels::kernel_path(), fastest(KernelPath::Avx512));
    for max in [KernelPath::Portable, KernelPath::Avx2, KernelPath::Avx512] {
        crate::kernels::limit_kernel_path(max);
        assert_eq!(crate::kernels::kernel_path(), fastest(max), "limit {max:?}");
    }
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Mostly uniform in [−1, 1); with `specials`, sometimes ±0.0, huge (overflow) or tiny values.
    fn f32(&mut self, specials: bool) -> f32 {
        let u = (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
        if !specials {
            return u;
        }
        match self.next() % 64 {
            0 => 0.0,
            1 => -0.0,
            2 => u * 1e30,
            3 => u * 1e-40,
            _ => u,
        }
    }
    fn i8(&mut self) -> i8 {
        self.next() as i8
    }
}

/// `values` as little-endian bytes starting at byte `offset` of the returned buffer.
fn le_at(values: &[f32], offset: usize) -> Vec<u8> {
    let mut b = vec![0xAAu8; offset];
    b.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    b
}

fn act(relu: bool) -> Activation {
    if relu {
        Activation::Relu
    } else {
        Activation::None
    }
}

fn relu(x: f32, a: Activation) -> f32 {
    if a == Activation::Relu && x < 0.0 {
        0.0
    } else {
        x
    }
}

/// The documented order, spelled out: term `j` into lane `j mod 8`, then the fixed tree.
fn lanes_ref(terms: impl Iterator<Item = (usize, f32)>) -> f32 {
    let mut l = [0.0f32; 8];
    for (j, t) in terms {
        l[j % 8] += t;
    }
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

fn same_f32(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

fn random_requant(rng: &mut Rng, n: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let bias: Vec<i32> = (0..n)
        .map(|_| (rng.next() % 20_001) as i32 - 10_000)
        .collect();
    let mult: Vec<i32> = (0..n)
        .map(|_| (1 << 30) + (rng.next() % (1 << 30)) as i32)
        .collect();
    let shift: Vec<i8> = (0..n).map(|_| -((rng.next() % 14) as i8)).collect();
    (
        bias.iter().flat_map(|v| v.to_le_bytes()).collect(),
        mult.iter().flat_map(|v| v.to_le_bytes()).collect(),
        shift.iter().map(|&v| v as u8).collect(),
    )
}

/// Runs every path of `linear_s8` on `rows` input rows and compares with an i64 accumulator and
/// [`requantize`].
#[allow(clippy::too_many_arguments)]
fn linear_s8_check(
    (rows, n_in, n_out): (usize, usize, usize),
    relu_on: bool,
    zp_in: i8,
    zp_out: i8,
    w: &[u8],
    x: &[i8],
    bias: &[u8],
    mult: &[u8],
    shift: &[u8],
) -> Result<(), TestCaseError> {
    let p = LinearParams {
        rows,
        in_features: n_in,
        out_features: n_out,
        activation: act(relu_on),
    };
    let q = PerChannelQuant {
        input_zp: zp_in,
        output: QuantParams {
            scale: 0.1,
            zero_point: zp_out,
        },
        multiplier: I32Data::from_le_bytes(mult),
        shift: I8Data::from_le_bytes(shift),
    };
    let bias = I32Data::from_le_bytes(bias);
    let (lo, hi) = activation_range(p.activation, q.output);
    let mut want = Vec::new();
    for r in 0..rows {
        for o in 0..n_out {
            let dot: i64 = (0..n_in)
                .map(|i| {
                    i64::from(w[o * n_in + i] as i8)
                        * (i64::from(x[r * n_in + i]) - i64::from(zp_in))
                })
                .sum();
            let acc = bias.get(o).unwrap() as i64 + dot;
            let (m, s) = (q.multiplier.get(o).unwrap(), q.shift.get(o).unwrap());
            want.push(requantize(
                acc as i32,
                m,
                i32::from(s),
                i32::from(zp_out),
                lo,
                hi,
            ));
        }
    }
    for path in paths() {
        let mut y = vec![99i8; rows * n_out];
        linear_s8(path, &p, &q, x, I8Data::from_le_bytes(w), bias, &mut y);
        prop_assert_eq!(&y, &want, "{:?}", path);
    }
    Ok(())
}

/// Input sizes: small ones (every remainder mod 8 and 16) and a few hundred.
fn n_in() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..70, 120usize..400]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn linear_f32_paths_match_the_documented_order(
        n_in in n_in(), n_out in 1usize..40, rows in 1usize..4, relu_on: bool, offset in 0usize..4,
        seed: u64,
    ) {
        let mut rng = Rng(seed);
        let specials = seed % 3 == 0;
        let w: Vec<f32> = (0..n_in * n_out).map(|_| rng.f32(specials)).collect();
        let b: Vec<f32> = (0..n_out).map(|_| rng.f32(false)).collect();
        let x: Vec<f32> = (0..rows * n_in).map(|_| rng.f32(specials)).collect();
        let (wb, bb) = (le_at(&w, offset), le_at(&b, 0));
        let p = LinearParams { rows, in_features: n_in, out_features: n_out, activation: act(relu_on) };
        let (weights, bias) = (F32Data::from_le_bytes(&wb[offset..]), F32Data::from_le_bytes(&bb));
        let mut want = Vec::new();
        for r in 0..rows {
            for o in 0..n_out {
                let dot = lanes_ref((0..n_in).map(|j| (j, w[o * n_in + j] * x[r * n_in + j])));
                want.push(relu(dot + b[o], p.activation));
            }
        }
        for path in paths() {
            let mut y = vec![7.0f32; rows * n_out];
            linear_f32(path, &p, &x, weights, bias, &mut y);
            prop_assert!(same_f32(&y, &want), "{:?}: {:?} != {:?}", path, y, want);
        }
    }

    #[test]
    fn linear_s8_paths_are_exact(
        n_in in n_in(), n_out in 1usize..40, rows in 1usize..4, relu_on: bool, zp_in: i8,
        zp_out: i8, seed: u64,
    ) {
        let mut rng = Rng(seed);
        // Every third seed: zp_in = −128 (the usual zero point after a ReLU), where the VNNI
        // kernel skips its weight sums.
        let zp_in = if seed % 3 == 0 { i8::MIN } else { zp_in };
        // Odd seeds: full-range values. Even seeds: weights and x − zp_in in {−1, 0, 1} and a
        // requantization by exactly 1.0 (multiplier 2^30, shift 1), so the output is
        // `clamp(acc + zp_out)` and an accumulator off by one shows.
        let exact_scale = seed % 2 == 0;
        let small = |rng: &mut Rng| (rng.next() % 3) as i8 - 1;
        let w: Vec<u8> = (0..n_in * n_out)
            .map(|_| if exact_scale { small(&mut rng) } else { rng.i8() } as u8)
            .collect();
        let x: Vec<i8> = (0..rows * n_in)
            .map(|_| if exact_scale { zp_in.saturating_add(small(&mut rng)) } else { rng.i8() })
            .collect();
        let (bias, mut mult, mut shift) = random_requant(&mut rng, n_out);
        let dims = (rows, n_in, n_out);
        if exact_scale {
            mult = (0..n_out).flat_map(|_| (1i32 << 30).to_le_bytes()).collect();
            shift = vec![1u8; n_out];
            let b: Vec<i32> = (0..n_out).map(|_| (rng.next() % 41) as i32 - 20).collect();
            return linear_s8_check(dims, relu_on, zp_in, zp_out, &w, &x,
                &b.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(), &mult, &shift);
        }
        linear_s8_check(dims, relu_on, zp_in, zp_out, &w, &x, &bias, &mult, &shift)?;
    }

    /// Square and non-square kernels, strides 1–3 per dimension, independent padding on each side
    /// (TF "same" at stride 2 pads bottom/right one more than top/left).
    #[test]
    fn conv2d_paths_match_the_documented_order(
        ci in 1usize..4, co in 1usize..6, kh in 1usize..6, kw in 1usize..6, sh in 1usize..4,
        sw in 1usize..4, pads in [0usize..8, 0usize..8, 0usize..8, 0usize..8],
        h in 1usize..24, w in 1usize..24, relu_on: bool, zp_in: i8, offset in 0usize..4, seed: u64,
    ) {
        let win = Window {
            kh, kw, sh, sw,
            pad_top: pads[0] % kh, pad_bottom: pads[1] % kh,
            pad_left: pads[2] % kw, pad_right: pads[3] % kw,
        };
        prop_assume!(win.out_dims(h, w).is_some());
        let (oh, ow) = win.out_dims(h, w).unwrap();
        let mut rng = Rng(seed);
        let per_out = ci * kh * kw;
        // Finite weights (the fast path's condition); the input may hold anything.
        let wf: Vec<f32> = (0..co * per_out).map(|_| rng.f32(false)).collect();
        let bf: Vec<f32> = (0..co).map(|_| rng.f32(false)).collect();
        let xf: Vec<f32> = (0..ci * h * w).map(|_| rng.f32(seed % 3 == 0)).collect();
        let (wb, bb) = (le_at(&wf, offset), le_at(&bf, 0));
        let a = act(relu_on);
        let p = ConvParams { in_channels: ci, h, w, out_channels: co, window: win, activation: a };
        let (weights, bias) = (F32Data::from_le_bytes(&wb[offset..]), F32Data::from_le_bytes(&bb));
        let g = conv_geometry(&p, xf.len(), co * oh * ow, wf.len()).unwrap();
        // Taps (j, input index) of output pixel (oy, ox); padded taps are skipped.
        let taps = |oy: usize, ox: usize| {
            let mut t = Vec::new();
            for i in 0..ci {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (oy * sh + ky) as isize - win.pad_top as isize;
                        let ix = (ox * sw + kx) as isize - win.pad_left as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            t.push(((i * kh + ky) * kw + kx, i * h * w + iy as usize * w + ix as usize));
                        }
                    }
                }
            }
            t
        };
        let mut want = Vec::new();
        for o in 0..co {
            for oy in 0..oh {
                for ox in 0..ow {
                    let dot = lanes_ref(taps(oy, ox).into_iter().map(|(j, xi)| (j, wf[o * per_out + j] * xf[xi])));
                    want.push(relu(dot + bf[o], a));
                }
            }
        }
        for path in paths() {
            let mut y = vec![7.0f32; co * oh * ow];
            if !conv2d_f32(path, &g, a, &xf, weights, bias, &mut y) {
                prop_assert_eq!(path, KernelPath::Reference);
                crate::kernels::conv2d_f32::reference(&g, a, &xf, weights, bias, &mut y);
            }
            prop_assert!(same_f32(&y, &want), "{:?}", path);
        }

        // int8, same geometry; even seeds use the exact-scale mode of `linear_s8_paths_are_exact`.
        let exact_scale = seed % 2 == 0;
        let small = |rng: &mut Rng| (rng.next() % 3) as i8 - 1;
        let w8: Vec<u8> = (0..co * per_out)
            .map(|_| if exact_scale { small(&mut rng) } else { rng.i8() } as u8)
            .collect();
        let x8: Vec<i8> = (0..ci * h * w)
            .map(|_| if exact_scale { zp_in.saturating_add(small(&mut rng)) } else { rng.i8() })
            .collect();
        let (mut bias, mut mult, mut shift) = random_requant(&mut rng, co);
        if exact_scale {
            bias = (0..co).flat_map(|_| ((rng.next() % 41) as i32 - 20).to_le_bytes()).collect();
            mult = (0..co).flat_map(|_| (1i32 << 30).to_le_bytes()).collect();
            shift = vec![1u8; co];
        }
        let zp_out = rng.i8();
        let q = PerChannelQuant {
            input_zp: zp_in,
            output: QuantParams { scale: 0.1, zero_point: zp_out },
            multiplier: I32Data::from_le_bytes(&mult),
            shift: I8Data::from_le_bytes(&shift),
        };
        let bias = I32Data::from_le_bytes(&bias);
        let (lo, hi) = activation_range(a, q.output);
        let mut want = Vec::new();
        for o in 0..co {
            let (b, m, sh) = (bias.get(o).unwrap(), q.multiplier.get(o).unwrap(), q.shift.get(o).unwrap());
            for oy in 0..oh {
                for ox in 0..ow {
                    let dot: i64 = taps(oy, ox)
                        .into_iter()
                        .map(|(j, xi)| i64::from(w8[o * per_out + j] as i8) * (i64::from(x8[xi]) - i64::from(zp_in)))
                        .sum();
                    want.push(requantize((i64::from(b) + dot) as i32, m, i32::from(sh), i32::from(zp_out), lo, hi));
                }
            }
        }
        for path in paths() {
            let mut y = vec![99i8; co * oh * ow];
            conv2d_s8(path, &g, a, &q, &x8, I8Data::from_le_bytes(&w8), bias, &mut y);
            prop_assert_eq!(&y, &want, "{:?}", path);
        }
    }

    #[test]
    fn normalize_quantize_paths_match_quantize(n in 1usize..100, zp: i8, seed: u64) {
        let mut rng = Rng(seed);
        let x: Vec<f32> = (0..n).map(|_| rng.f32(true) * 3.0).collect();
        let (mean, std) = (0.1307f32, 0.3081f32);
        let q = QuantParams { scale: 0.0123, zero_point: zp };
        let want: Vec<i8> = x.iter().map(|&v| quantize((v - mean) / std, q)).collect();
        for path in paths() {
            let mut y = vec![0i8; n];
            normalize_quantize(path, &x, mean, std, q, &mut y);
            prop_assert_eq!(&y, &want, "{:?}", path);
        }
    }
}

#[test]
fn conv2d_f32_leaves_non_finite_weights_to_the_reference_loop() {
    // With an infinite weight, a padded tap computed as inf · 0.0 would give NaN; skipping it
    // (the documented rule) gives inf. Every path must give the reference's answer.
    let w = le_at(&[f32::INFINITY, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 0);
    let b = le_at(&[0.0], 0);
    let (weights, bias) = (F32Data::from_le_bytes(&w), F32Data::from_le_bytes(&b));
    let p = ConvParams {
        in_channels: 1,
        h: 3,
        w: 3,
        out_channels: 1,
        window: Window::square(3, 1, 1),
        activation: Activation::None,
    };
    let x = [1.0f32; 9];
    let mut y = [0.0f32; 9];
    crate::kernels::conv2d_f32(&p, &x, weights, bias, &mut y).unwrap();
    // Output (0, 0): tap (0, 0) is padding, so no inf reaches it.
    assert_eq!(y[0], 4.0);
    assert_eq!(y[4], f32::INFINITY);
    let g = conv_geometry(&p, 9, 9, 9).unwrap();
    for path in paths() {
        assert!(
            !conv2d_f32(path, &g, p.activation, &x, weights, bias, &mut y),
            "{path:?}"
        );
    }
}

/// Runs every path of the f32 and int8 Conv2d on one random case and compares each with the
/// reference loops (f32 bit for bit, NaN as NaN; int8 exactly). `specials` puts ±inf, NaN, ±0.0,
/// huge and tiny values into the f32 input (weights stay finite: the fast path's condition).
#[allow(clippy::too_many_arguments)]
fn conv_case(
    ci: usize,
    co: usize,
    win: Window,
    h: usize,
    w: usize,
    a: Activation,
    zp_in: i8,
    seed: u64,
    specials: bool,
) -> Result<(), TestCaseError> {
    let Some((oh, ow)) = win.out_dims(h, w) else {
        return Ok(());
    };
    let mut rng = Rng(seed);
    let per_out = ci * win.kh * win.kw;
    let p = ConvParams {
        in_channels: ci,
        h,
        w,
        out_channels: co,
        window: win,
        activation: a,
    };
    let g = conv_geometry(&p, ci * h * w, co * oh * ow, co * per_out).unwrap();
    let offset = (seed % 4) as usize;
    let wf: Vec<f32> = (0..co * per_out).map(|_| rng.f32(specials)).collect();
    let bf: Vec<f32> = (0..co).map(|_| rng.f32(false)).collect();
    let xf: Vec<f32> = (0..ci * h * w)
        .map(|_| match rng.next() % 97 {
            0 if specials => f32::INFINITY,
            1 if specials => f32::NEG_INFINITY,
            2 if specials => f32::NAN,
            _ => rng.f32(specials),
        })
        .collect();
    let (wb, bb) = (le_at(&wf, offset), le_at(&bf, 0));
    let (weights, bias) = (
        F32Data::from_le_bytes(&wb[offset..]),
        F32Data::from_le_bytes(&bb),
    );
    let mut want = vec![7.0f32; co * oh * ow];
    crate::kernels::conv2d_f32::reference(&g, a, &xf, weights, bias, &mut want);
    for path in paths() {
        let mut y = vec![7.0f32; co * oh * ow];
        if !conv2d_f32(path, &g, a, &xf, weights, bias, &mut y) {
            prop_assert_eq!(path, KernelPath::Reference);
            continue;
        }
        prop_assert!(same_f32(&y, &want), "f32 {:?}", path);
    }
    let w8: Vec<u8> = (0..co * per_out).map(|_| rng.i8() as u8).collect();
    let x8: Vec<i8> = (0..ci * h * w).map(|_| rng.i8()).collect();
    let (bias8, mult, shift) = random_requant(&mut rng, co);
    let q = PerChannelQuant {
        input_zp: zp_in,
        output: QuantParams {
            scale: 0.1,
            zero_point: rng.i8(),
        },
        multiplier: I32Data::from_le_bytes(&mult),
        shift: I8Data::from_le_bytes(&shift),
    };
    let (w8, bias8) = (I8Data::from_le_bytes(&w8), I32Data::from_le_bytes(&bias8));
    let mut want = vec![99i8; co * oh * ow];
    crate::kernels::conv2d_s8::reference(&g, a, &q, &x8, w8, bias8, &mut want);
    for path in paths() {
        let mut y = vec![99i8; co * oh * ow];
        conv2d_s8(path, &g, a, &q, &x8, w8, bias8, &mut y);
        prop_assert_eq!(&y, &want, "int8 {:?}", path);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The im2col tiles: enough input channels that one tile holds few pixels (or a single one),
    /// channel counts that are not multiples of the 4-filter block, pixel counts that are not
    /// multiples of the 3- and 2-pixel blocks, every `per_out mod 8` and `mod 16`.
    #[test]
    fn conv2d_tiles_match_the_reference(
        ci in prop_oneof![1usize..20, 20usize..200], co in 1usize..11, kh in 1usize..6,
        kw in 1usize..6, sh in 1usize..4, sw in 1usize..4, pads in [0usize..8, 0usize..8, 0usize..8, 0usize..8],
        h in 1usize..14, w in 1usize..14, relu_on: bool, zp_in: i8, seed: u64,
    ) {
        let win = Window {
            kh, kw, sh, sw,
            pad_top: pads[0] % kh, pad_bottom: pads[1] % kh,
            pad_left: pads[2] % kw, pad_right: pads[3] % kw,
        };
        conv_case(ci, co, win, h, w, act(relu_on), zp_in, seed, seed % 2 == 0)?;
    }
}

#[test]
fn conv2d_odd_shapes_match_the_reference() {
    let win = |kh, kw, sh, sw, p: [usize; 4]| Window {
        kh,
        kw,
        sh,
        sw,
        pad_top: p[0],
        pad_bottom: p[1],
        pad_left: p[2],
        pad_right: p[3],
    };
    let cases = [
        // A 10×4 kernel, asymmetric padding, stride 2×3.
        (3, 5, win(10, 4, 2, 3, [4, 5, 1, 2]), 17, 11),
        // Pointwise (the transpose im2col), odd channel counts.
        (13, 7, win(1, 1, 1, 1, [0; 4]), 9, 5),
        (5, 6, win(1, 1, 2, 1, [0; 4]), 6, 5),
        // Depthwise-like: one input channel, one output channel.
        (1, 1, win(3, 3, 1, 1, [1; 4]), 15, 13),
        (1, 1, win(3, 3, 2, 2, [0, 1, 0, 1]), 16, 16),
        // One im2col row of f32 just fits the tile (4096 = 8·512), and just does not (4104).
        (512, 5, win(2, 4, 1, 1, [1, 0, 2, 1]), 3, 5),
        (456, 5, win(3, 3, 1, 1, [1; 4]), 3, 4),
        // The i16 kernels' per-tile filter copy (`im2col::W_I16` = 1024 taps): a row of 1017
        // taps padded to 1024 (copied), 1024 exactly (copied), 1026 (padded to 1040: the i8
        // filters are read instead).
        (113, 5, win(3, 3, 1, 1, [1; 4]), 4, 5),
        (64, 6, win(4, 4, 1, 1, [1, 2, 2, 1]), 5, 4),
        (57, 6, win(3, 6, 1, 2, [1, 1, 3, 2]), 4, 9),
        // Their once-per-call widened input (`im2col::X_I16` = 16384 values): 16·32·32 fits
        // exactly, 16·33·32 does not (widened tap by tap in the im2col rows instead).
        (16, 6, win(3, 3, 1, 1, [1; 4]), 32, 32),
        (16, 5, win(3, 3, 2, 2, [0, 1, 0, 1]), 33, 32),
        // The pixels-in-lanes int8 kernels (`pixels_s8.rs`): odd channel counts (the last pair
        // holds one channel), filter counts that leave a partial block of 4 and of 8, rows
        // narrower than a segment, stride 2 (column phases).
        (13, 5, win(3, 3, 1, 1, [0, 0, 0, 1]), 6, 2),
        (5, 9, win(3, 3, 1, 1, [1; 4]), 13, 10),
        (7, 6, win(3, 3, 2, 2, [0, 1, 0, 1]), 9, 11),
        (3, 11, win(5, 3, 2, 3, [2, 1, 0, 2]), 12, 14),
        // Its input buffer: 8 channel pairs of 32 × 32 padded fill it (16384 values), 8 of
        // 33 × 32 do not; 56 tap pairs of 3×3 (504, odd ci) fit its weight block.
        (16, 2, win(3, 3, 1, 1, [1; 4]), 30, 30),
        (16, 2, win(3, 3, 1, 1, [1; 4]), 31, 30),
        (111, 3, win(3, 3, 1, 1, [1; 4]), 4, 5),
        // Past the int8 tile too (9·911 = 8199 > 8192): the blocked kernel runs.
        (911, 2, win(3, 3, 1, 1, [1; 4]), 2, 3),
    ];
    for (k, &(ci, co, w, h, wd)) in cases.iter().enumerate() {
        for seed in 0..4u64 {
            // The extreme input zero points too: the `vpdpbusd` path encodes `x + 128` and pads
            // with `zp + 128` (0 and 255 here).
            let zp = [-3, -128, 127, 0][seed as usize];
            let r = conv_case(
                ci,
                co,
                w,
                h,
                wd,
                act(seed % 2 == 1),
                zp,
                1000 * k as u64 + seed,
                seed < 2,
            );
            assert!(r.is_ok(), "case {k} seed {seed}: {r:?}");
        }
    }
}

/// The shapes of the benchmarked CNNs (`cnn:32,64/128`, `resnet8`: 3×3 "same" at stride 1 and 2,
/// 1×1 stride-2 shortcuts), whose channel and pixel counts fill the 4 × 4 AVX-512 blocks and the
/// 32-tap `vpdpbusd` chunks exactly or leave a remainder, with every input zero point class.
#[test]
fn conv2d_model_shapes_match_the_reference() {
    let same = |s: usize, p: [usize; 4]| Window {
        kh: 3,
        kw: 3,
        sh: s,
        sw: s,
        pad_top: p[0],
        pad_bottom: p[1],
        pad_left: p[2],
        pad_right: p[3],
    };
    let cases = [
        (1, 32, same(1, [1; 4]), 28, 28),
        (32, 64, same(1, [1; 4]), 14, 14),
        (16, 16, same(1, [1; 4]), 28, 28),
        (16, 32, same(2, [0, 1, 0, 1]), 28, 28),
        (32, 32, same(1, [1; 4]), 14, 14),
        (32, 64, same(2, [0, 1, 0, 1]), 14, 14),
        (64, 64, same(1, [1; 4]), 7, 7),
        (16, 32, Window::square(1, 2, 0), 28, 28),
        (32, 64, Window::square(1, 2, 0), 14, 14),
        (7, 13, same(1, [1; 4]), 9, 11),
    ];
    for (k, &(ci, co, win, h, w)) in cases.iter().enumerate() {
        for (n, zp) in [0i8, -128, 127, 5].into_iter().enumerate() {
            let seed = 7000 + 10 * k as u64 + n as u64;
            let a = [
                Activation::Relu,
                Activation::None,
                Activation::Relu,
                Activation::Relu6,
            ][n];
            let r = conv_case(ci, co, win, h, w, a, zp, seed, n < 2);
            assert!(r.is_ok(), "case {k} zp {zp}: {r:?}");
        }
    }
}

/// The 3×3 stride-1 f32 kernel with output pixels in the lanes (`pixels_f32.rs`, AVX-512):
/// channel counts that leave a partial group of 8, filter counts that leave 1 or 2 after the
/// blocks of 3, every split of the 2 padding columns and of the rows, outputs of one pixel, one
/// column and rows wider than a register, several bands (100 channels of 14 × 14: 3 rows per
/// band) and a row that does not fit a band (300 channels: the im2col kernel runs), with each
/// activation; the same for stride 2.
#[test]
fn conv2d_pixels_f32_shapes_match_the_reference() {
    let strided = |s: usize, p: [usize; 4]| Window {
        kh: 3,
        kw: 3,
        sh: s,
        sw: s,
        pad_top: p[0],
        pad_bottom: p[1],
        pad_left: p[2],
        pad_right: p[3],
    };
    let win = |p: [usize; 4]| strided(1, p);
    let cases = [
        // Stride 2 (AVX-512: the 4 phase planes), TF and PyTorch padding, odd sizes, several
        // bands, no padding at all.
        (8, 4, strided(2, [1; 4]), 9, 7),
        (13, 5, strided(2, [0, 1, 0, 1]), 10, 12),
        (23, 2, strided(2, [2, 0, 1, 0]), 5, 6),
        (9, 3, strided(2, [0; 4]), 7, 8),
        (11, 3, strided(2, [1, 1, 2, 0]), 6, 9),
        (30, 3, strided(2, [1; 4]), 28, 28),
        (300, 2, strided(2, [0, 1, 0, 1]), 6, 30),
        (8, 1, win([1; 4]), 1, 1),
        (9, 4, win([1; 4]), 5, 3),
        (13, 5, win([0, 2, 2, 0]), 6, 7),
        (23, 7, win([2, 0, 0, 2]), 4, 9),
        (8, 2, win([1; 4]), 2, 40),
        (17, 6, win([1; 4]), 17, 1),
        (16, 3, win([0, 0, 1, 1]), 3, 5),
        (100, 3, win([1; 4]), 14, 14),
        (300, 2, win([1; 4]), 3, 14),
        // Fewer than 8 channels and partial groups of 8 (the channels past `ci` skipped), on
        // AVX2 up to 16 channels (more go to im2col), several bands, the padding rows split
        // either way.
        (1, 5, win([1; 4]), 9, 17),
        (1, 9, win([1; 4]), 9, 17),
        (3, 8, win([0, 2, 1, 1]), 6, 15),
        (7, 10, win([2, 0, 2, 0]), 4, 14),
        (8, 8, win([1; 4]), 6, 16),
        (12, 9, win([1; 4]), 5, 21),
        (20, 5, win([0, 2, 1, 1]), 30, 20),
        (64, 6, win([2, 0, 0, 2]), 9, 14),
    ];
    let acts = [Activation::None, Activation::Relu, Activation::Relu6];
    for (k, &(ci, co, win, h, w)) in cases.iter().enumerate() {
        for (n, a) in acts.into_iter().enumerate() {
            let seed = 9000 + 10 * k as u64 + n as u64;
            let r = conv_case(ci, co, win, h, w, a, 0, seed, n != 1);
            assert!(r.is_ok(), "case {k} {a:?}: {r:?}");
        }
    }
}

/// The 2×2 stride-2 max pooling fast path against the general window loop, f32 bit for bit
/// (NaN first or later in a window, ±0.0 ties, odd sizes that drop a row or column) and int8.
#[test]
fn maxpool2x2_matches_the_window_loop() {
    use crate::kernels::params::PoolParams;
    let mut rng = Rng(99);
    for (c, h, w) in [
        (1, 2, 2),
        (3, 5, 7),
        (2, 28, 28),
        (4, 1, 9),
        (2, 9, 1),
        (5, 13, 6),
    ] {
        let p = PoolParams {
            channels: c,
            h,
            w,
            window: Window::square(2, 2, 0),
        };
        let Some((oh, ow)) = p.window.out_dims(h, w) else {
            continue;
        };
        let xf: Vec<f32> = (0..c * h * w)
            .map(|_| match rng.next() % 8 {
                0 => f32::NAN,
                1 => 0.0,
                2 => -0.0,
                _ => rng.f32(true),
            })
            .collect();
        let x8: Vec<i8> = (0..c * h * w).map(|_| rng.i8()).collect();
        let n = c * oh * ow;
        let (mut yf, mut wf) = (vec![1.0f32; n], vec![2.0f32; n]);
        crate::kernels::maxpool2d_f32(&p, &xf, &mut yf).unwrap();
        crate::kernels::maxpool2d_windows(&p, &xf, &mut wf, (oh, ow, h * w));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&yf), bits(&wf), "f32 {c}×{h}×{w}");
        let (mut y8, mut w8) = (vec![1i8; n], vec![2i8; n]);
        crate::kernels::maxpool2d_s8(&p, &x8, &mut y8).unwrap();
        crate::kernels::maxpool2d_windows(&p, &x8, &mut w8, (oh, ow, h * w));
        assert_eq!(y8, w8, "int8 {c}×{h}×{w}");
    }
}

/// The 8-lane requantization of `requant.rs` against [`crate::quant::Requantizer::apply`] and
/// [`requantize`] (exhaustively over edge values, then random).
#[cfg(target_arch = "x86_64")]
mod requant_x86 {
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::super::requant::{channels8, row_avx2, row_portable, Range8, RowQuant, Rq8};
    use super::super::x86::has_avx2;
    use crate::quant::{requantize, Requantizer};
    use core::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm256_storeu_si256};

    /// Values around every boundary of the arithmetic: the extremes, powers of two, three times
    /// powers of two and their neighbours (SRDHM and rounding-divide ties).
    fn edges() -> Vec<i32> {
        let mut v = std::vec![
            0,
            1,
            -1,
            2,
            -2,
            3,
            -3,
            i32::MAX,
            i32::MIN,
            i32::MAX - 1,
            i32::MIN + 1
        ];
        for e in 0..31 {
            let p = 1i32 << e;
            for d in [-1, 0, 1] {
                v.push(p.wrapping_add(d));
                v.push((-p).wrapping_add(d));
                v.push((3i32.wrapping_shl(e)).wrapping_add(d));
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// [`Rq8::apply`] of 8 values.
    fn apply8(q: &RowQuant, x: &[i32; 8]) -> [i32; 8] {
        let mut y = [0i32; 8];
        // SAFETY: the callers checked AVX2; both arrays hold 8 i32.
        unsafe {
            let k = Rq8::new(q);
            let v = k.apply(_mm256_loadu_si256(x.as_ptr().cast::<__m256i>()));
            _mm256_storeu_si256(y.as_mut_ptr().cast::<__m256i>(), v);
        }
        y
    }

    fn row(acc: &[i32], q: &RowQuant) -> Vec<i8> {
        let mut y = std::vec![0i8; acc.len()];
        // SAFETY: the callers checked AVX2.
        unsafe { row_avx2(acc, &mut y, q) };
        y
    }

    /// Every (x, multiplier) pair of edge values × every shift in `[−40, 40]` and the extremes:
    /// the lanes equal `Requantizer::apply`, and a whole row (zero points and clamps cycling
    /// through their edges) equals `requantize` and the portable row.
    #[test]
    fn rq8_equals_requantizer_on_edges() {
        if !has_avx2() {
            return;
        }
        let xs = edges();
        let zps = [-128i8, -127, -1, 0, 1, 5, 126, 127];
        let acts = [
            (-128, 127),
            (-300, 300),
            (0, 127),
            (-5, 6),
            (10, -10),
            (127, 127),
            (-128, -128),
        ];
        let mut n = 0u64;
        for (i, shift) in (-40..=40)
            .chain([i32::MIN, i32::MIN + 1, i32::MAX])
            .enumerate()
        {
            for (j, &m) in xs.iter().enumerate() {
                let (act_min, act_max) = acts[(i + j) % acts.len()];
                let q = RowQuant {
                    multiplier: m,
                    shift,
                    zp_out: zps[(i * 3 + j) % zps.len()],
                    act_min,
                    act_max,
                };
                let r = Requantizer::new(m, shift);
                for c in xs.chunks(8) {
                    let mut x = [0i32; 8];
                    x[..c.len()].copy_from_slice(c);
                    let got = apply8(&q, &x);
                    for l in 0..8 {
                        assert_eq!(got[l], r.apply(x[l]), "x={} m={m} shift={shift}", x[l]);
                    }
                    n += 8;
                }
                let want: Vec<i8> = xs
                    .iter()
                    .map(|&x| requantize(x, m, shift, i32::from(q.zp_out), act_min, act_max))
                    .collect();
                assert_eq!(row(&xs, &q), want, "m={m} shift={shift} {q:?}");
                let mut portable = std::vec![0i8; xs.len()];
                row_portable(&xs, &mut portable, &q);
                assert_eq!(portable, want);
            }
        }
        assert!(n > 2_000_000, "{n}");
    }

    /// [`channels8`] (8 channels, each lane its own bias, multiplier and shift) on edge values:
    /// accumulators and multipliers from [`edges`] spread over the lanes in rotating order, every
    /// i8 shift (the file's field; the oracle clamps it), bias 0 and ±1, output zero points and
    /// activation ranges cycling through their edges, against [`requantize`] lane by lane.
    #[test]
    fn channels8_equals_requantize_on_edges() {
        if !has_avx2() {
            return;
        }
        let xs = edges();
        let zps = [-128i8, -1, 0, 5, 127];
        let acts = [(-128, 127), (0, 127), (-5, 6), (10, -10), (-128, -128)];
        let mut n = 0u64;
        for (i, shift0) in (-128i32..=127).enumerate() {
            let (act_min, act_max) = acts[i % acts.len()];
            let zp_out = zps[(i / acts.len()) % zps.len()];
            // SAFETY: AVX2 checked above.
            let range = unsafe { Range8::new(zp_out, act_min, act_max) };
            for (j, m0) in xs.iter().step_by(3).enumerate() {
                let shift: [i8; 8] = core::array::from_fn(|l| (shift0 + 37 * l as i32) as i8);
                let m: [i32; 8] =
                    core::array::from_fn(|l| xs[(j * 3 + 11 * l) % xs.len()] ^ (l as i32 & *m0));
                let bias: [i32; 8] = core::array::from_fn(|l| (l as i32 % 3) - 1);
                for c in xs.chunks(8) {
                    let mut d = [0i32; 8];
                    d[..c.len()].copy_from_slice(c);
                    let bytes = |v: &[i32; 8]| -> Vec<u8> {
                        v.iter().flat_map(|x| x.to_le_bytes()).collect()
                    };
                    let shift_b: Vec<u8> = shift.iter().map(|&v| v as u8).collect();
                    let mut got = [0i8; 8];
                    // SAFETY: AVX2 checked above.
                    let ok = unsafe {
                        channels8(&d, (&bytes(&bias), &bytes(&m), &shift_b), &range, &mut got)
                    };
                    assert!(ok);
                    for l in 0..8 {
                        let want = requantize(
                            bias[l].wrapping_add(d[l]),
                            m[l],
                            i32::from(shift[l]),
                            i32::from(zp_out),
                            act_min,
                            act_max,
                        );
                        assert_eq!(got[l], want, "x={} m={} shift={}", d[l], m[l], shift[l]);
                    }
                    n += 8;
                }
            }
        }
        assert!(n > 1_000_000, "{n}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Random rows (every length, so the tail copy runs) against `requantize`.
        #[test]
        fn rq8_row_equals_requantize(
            acc in proptest::collection::vec(any::<i32>(), 0..41),
            small in proptest::collection::vec(-5000i32..5000, 0..19),
            m in prop_oneof![any::<i32>(), (1i32 << 30)..=i32::MAX, Just(i32::MIN)],
            shift in -40i32..40,
            zp_out: i8,
            act_min in -200i32..200,
            act_max in -200i32..200,
        ) {
            if !has_avx2() {
                return Ok(());
            }
            let q = RowQuant { multiplier: m, shift, zp_out, act_min, act_max };
            for a in [&acc, &small] {
                let want: Vec<i8> =
                    a.iter().map(|&x| requantize(x, m, shift, i32::from(zp_out), act_min, act_max)).collect();
                prop_assert_eq!(row(a, &q), want);
            }
        }
    }
}

/// The 8-lane int8 Add of `add.rs` against the reference element loop: TFLite's parameters for
/// random scales, zero points and activations, and raw parameters of any value (shifts and
/// multipliers at their extremes, zero points outside int8), on every length up to 70 (tails)
/// and from 256 to 299 (the gathers from the tables, and their tails).
#[cfg(target_arch = "x86_64")]
mod add_x86 {
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::super::x86::has_avx2;
    use crate::kernels::add_s8::add_s8_reference;
    use crate::kernels::params::AddS8Params;
    use crate::quant::add_s8_params;
    use crate::tensor::{Activation, QuantParams};

    fn check(p: &AddS8Params, a: &[i8], b: &[i8]) -> Result<(), TestCaseError> {
        let mut want = std::vec![0i8; a.len()];
        add_s8_reference(p, a, b, &mut want).unwrap();
        let mut got = std::vec![0i8; a.len()];
        // SAFETY: the callers checked AVX2.
        unsafe { super::super::add::add_s8_avx2(p, a, b, &mut got) };
        prop_assert_eq!(got, want, "{:?}", p);
        Ok(())
    }

    fn act() -> impl Strategy<Value = Activation> {
        prop_oneof![
            Just(Activation::None),
            Just(Activation::Relu),
            Just(Activation::Relu6)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn add_avx2_equals_reference_tflite_params(
            (a, b) in prop_oneof![0usize..71, 256usize..300].prop_flat_map(|n| (
                proptest::collection::vec(any::<i8>(), n),
                proptest::collection::vec(any::<i8>(), n),
            )),
            s in proptest::array::uniform3(-12.0f32..4.0),
            zp in proptest::array::uniform3(any::<i8>()),
            act in act(),
        ) {
            if !has_avx2() {
                return Ok(());
            }
            let q = |i: usize| QuantParams { scale: 2f32.powf(s[i]), zero_point: zp[i] };
            if let Some(p) = add_s8_params(q(0), q(1), q(2), act) {
                check(&p, &a, &b)?;
            }
        }

        #[test]
        fn add_avx2_equals_reference_any_params(
            (a, b) in prop_oneof![0usize..71, 256usize..300].prop_flat_map(|n| (
                proptest::collection::vec(any::<i8>(), n),
                proptest::collection::vec(any::<i8>(), n),
            )),
            zps in proptest::array::uniform3(prop_oneof![any::<i8>().prop_map(i32::from), any::<i32>()]),
            left_shift in prop_oneof![0i32..32, any::<i32>()],
            ms in proptest::array::uniform3(prop_oneof![(1i32 << 30)..=i32::MAX, any::<i32>(), Just(i32::MIN)]),
            shifts in proptest::array::uniform3(prop_oneof![-40i32..5, any::<i32>()]),
            acts in proptest::array::uniform2(prop_oneof![-130i32..130, any::<i32>()]),
        ) {
            if !has_avx2() {
                return Ok(());
            }
            let p = AddS8Params {
                input1_zp: zps[0],
                input2_zp: zps[1],
                output_zp: zps[2],
                left_shift,
                input1_multiplier: ms[0],
                input1_shift: shifts[0],
                input2_multiplier: ms[1],
                input2_shift: shifts[1],
                output_multiplier: ms[2],
                output_shift: shifts[2],
                act_min: acts[0],
                act_max: acts[1],
            };
            check(&p, &a, &b)?;
        }
    }

    /// Every input pair at once (65 536 elements) for a few TFLite parameter sets.
    #[test]
    fn add_avx2_all_pairs() {
        if !has_avx2() {
            return;
        }
        let q = |scale: f32, zero_point: i8| QuantParams { scale, zero_point };
        let a: Vec<i8> = (0..65536u32).map(|v| (v & 0xff) as u8 as i8).collect();
        let b: Vec<i8> = (0..65536u32).map(|v| (v >> 8) as u8 as i8).collect();
        for (x, y, o, act) in [
            (q(0.1, 0), q(0.1, 0), q(0.2, 0), Activation::None),
            (q(0.05, -7), q(0.3, 100), q(0.17, -128), Activation::Relu),
            (q(1.5, 127), q(0.001, -128), q(0.9, 3), Activation::Relu6),
        ] {
            check(&add_s8_params(x, y, o, act).unwrap(), &a, &b).unwrap();
        }
    }
}
