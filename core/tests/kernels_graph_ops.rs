//! The residual / depthwise-separable / classifier kernels (Add, AvgPool2d, Softmax, standalone
//! activations) against references written here: naive loops for f32 and pooling, and for int8
//! ADD and Softmax a transcription of TFLite's reference arithmetic in i64 (rounding written as
//! floor divisions, gemmlowp's fixed-point types as a small struct), separate from the kernels.

mod common;

use common::Rng;
use denoiserep_core::kernels::params::{AddS8Params, PoolParams, SoftmaxS8Params, Window};
use denoiserep_core::kernels::{self, MAX_POOL_COUNT, MAX_SOFTMAX_S8_DEPTH};
use denoiserep_core::quant::{activation_range, add_s8_params, dequantize, softmax_s8_params};
use denoiserep_core::{Activation, Error, QuantParams};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Reference arithmetic (TFLite / gemmlowp, double-rounding build), in i64.

/// `round(a·b / 2^31)`, ties toward +∞ (gemmlowp's nudge-and-truncate), `MIN·MIN → MAX`.
fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    ((a as i64 * b as i64 + (1 << 30)) >> 31) as i32
}

/// `x / 2^e` rounded to nearest, ties away from zero.
fn rdbp(x: i32, e: i32) -> i32 {
    assert!((0..=31).contains(&e), "exponent {e}");
    if e == 0 {
        return x;
    }
    let (mag, half) = ((x as i64).abs(), 1i64 << (e - 1));
    let q = (mag + half) >> e;
    (if x < 0 { -q } else { q }) as i32
}

/// `MultiplyByQuantizedMultiplierSmallerThanOneExp`.
fn mbqm_lt1(x: i32, m: i32, shift: i32) -> i32 {
    assert!(shift <= 0);
    rdbp(srdhm(x, m), -shift)
}

/// TFLite `reference_integer_ops::AddFunc`, with TFLite's offsets (`−zero_point`).
fn add_s8_ref(p: &AddS8Params, x: i8, y: i8) -> i8 {
    let (off1, off2) = (-p.input1_zp, -p.input2_zp);
    let v1 = (off1 + x as i32) as i64 * (1i64 << p.left_shift);
    let v2 = (off2 + y as i32) as i64 * (1i64 << p.left_shift);
    let (v1, v2) = (i32::try_from(v1).unwrap(), i32::try_from(v2).unwrap());
    let s1 = mbqm_lt1(v1, p.input1_multiplier, p.input1_shift);
    let s2 = mbqm_lt1(v2, p.input2_multiplier, p.input2_shift);
    let sum = i32::try_from(s1 as i64 + s2 as i64).unwrap();
    let raw = mbqm_lt1(sum, p.output_multiplier, p.output_shift) + p.output_zp;
    raw.max(p.act_min).min(p.act_max) as i8
}

/// A gemmlowp `FixedPoint<int32_t, bits>`: `raw / 2^(31 − bits)`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Fx {
    raw: i32,
    bits: i32,
}

impl Fx {
    fn new(raw: i32, bits: i32) -> Self {
        Fx { raw, bits }
    }
    fn one(bits: i32) -> Self {
        Fx::new(
            if bits == 0 {
                i32::MAX
            } else {
                1 << (31 - bits)
            },
            bits,
        )
    }
    fn add(self, o: Fx) -> Fx {
        assert_eq!(self.bits, o.bits);
        Fx::new(
            i32::try_from(self.raw as i64 + o.raw as i64).unwrap(),
            self.bits,
        )
    }
    fn sub(self, o: Fx) -> Fx {
        assert_eq!(self.bits, o.bits);
        Fx::new(
            i32::try_from(self.raw as i64 - o.raw as i64).unwrap(),
            self.bits,
        )
    }
    fn mul(self, o: Fx) -> Fx {
        Fx::new(srdhm(self.raw, o.raw), self.bits + o.bits)
    }
    /// Saturating, rounding multiply of the raw value by `2^e`, keeping the format.
    fn mul_pot(self, e: i32) -> Fx {
        let raw = if e >= 0 {
            (self.raw as i64 * (1i64 << e)).clamp(i32::MIN as i64, i32::MAX as i64) as i32
        } else {
            rdbp(self.raw, -e)
        };
        Fx::new(raw, self.bits)
    }
    fn rescale(self, bits: i32) -> Fx {
        Fx::new(self.mul_pot(self.bits - bits).raw, bits)
    }
}

/// gemmlowp `exp_on_interval_between_negative_one_quarter_and_0_excl`.
fn exp_quarter(a: Fx) -> Fx {
    assert_eq!(a.bits, 0);
    let c = Fx::new(1895147668, 0);
    let third = Fx::new(715827883, 0);
    let x = a.add(Fx::new(1 << 28, 0));
    let x2 = x.mul(x).rescale(0);
    let x3 = x2.mul(x).rescale(0);
    let x4 = x2.mul(x2).rescale(0);
    let x4_4 = x4.mul_pot(-2);
    let poly = x4_4.add(x3).mul(third).rescale(0).add(x2).mul_pot(-1);
    c.add(c.mul(x.add(poly)))
}

/// gemmlowp `exp_on_negative_values` for Q5.26 input.
fn exp_neg_q5(a: Fx) -> Fx {
    assert_eq!(a.bits, 5);
    let quarter = Fx::new(1 << 24, 5);
    let r = Fx::new(a.raw & ((1 << 24) - 1), 5).sub(quarter);
    let mut result = exp_quarter(r.rescale(0));
    let remainder = r.sub(a).raw;
    let table = [
        (24, 1672461947),
        (25, 1302514674),
        (26, 790015084),
        (27, 290630308),
        (28, 39332535),
        (29, 720401),
        (30, 242),
    ];
    for (bit, m) in table {
        if remainder & (1 << bit) != 0 {
            result = result.mul(Fx::new(m, 0));
        }
    }
    if a.raw == 0 {
        Fx::one(0)
    } else {
        result
    }
}

/// gemmlowp `one_over_one_plus_x_for_x_in_0_1`.
fn one_over_one_plus(a: Fx) -> Fx {
    let s = a.raw as i64 + i32::MAX as i64;
    let half = Fx::new(((s + if s >= 0 { 1 } else { -1 }) / 2) as i32, 0);
    let mut x = Fx::new(1515870810, 2).add(half.mul(Fx::new(-1010580540, 2)));
    for _ in 0..3 {
        let hx = half.mul(x);
        let one_minus = Fx::one(2).sub(hx);
        x = x.add(x.mul(one_minus).rescale(2));
    }
    Fx::new(x.raw, 1).rescale(0)
}

/// TFLite `reference_ops::Softmax` (int8 → int8) for one row.
fn softmax_s8_ref(p: &SoftmaxS8Params, x: &[i8]) -> Vec<i8> {
    let max = *x.iter().max().unwrap() as i32;
    let scaled = |v: i8| -> Option<Fx> {
        let diff = v as i32 - max;
        (diff >= p.diff_min).then(|| {
            let shifted = diff as i64 * (1i64 << p.input_left_shift);
            Fx::new(
                srdhm(i32::try_from(shifted).unwrap(), p.input_multiplier),
                5,
            )
        })
    };
    let mut sum = Fx::new(0, 12);
    for &v in x {
        if let Some(d) = scaled(v) {
            sum = sum.add(exp_neg_q5(d).rescale(12));
        }
    }
    // GetReciprocal(sum, 12).
    let clz = (sum.raw as u32).leading_zeros() as i32;
    let bits_over_unit = 12 - clz;
    let normalized = ((sum.raw as u64) << clz) as i64 - (1i64 << 31);
    let scale = one_over_one_plus(Fx::new(normalized as i32, 0));
    let exponent = bits_over_unit + 31 - 8;
    assert!(
        (0..=31).contains(&exponent),
        "TFLite would abort: exponent {exponent}"
    );
    x.iter()
        .map(|&v| match scaled(v) {
            Some(d) => {
                let unsat = rdbp(scale.mul(exp_neg_q5(d)).raw, exponent);
                (unsat - 128).clamp(-128, 127) as i8
            }
            None => -128,
        })
        .collect()
}

fn tree(l: &[f32; 8]) -> f32 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

#[allow(clippy::manual_clamp)] // spelled out: the comparisons are the reference
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

fn act_from(i: u8) -> Activation {
    [Activation::None, Activation::Relu, Activation::Relu6][(i % 3) as usize]
}

/// The in-bounds taps of every window, naive: walk the full `kh × kw` window on signed
/// coordinates and skip what falls outside. Returns `[c][oh][ow]` lists of values.
fn windows<T: Copy>(p: &PoolParams, input: &[T]) -> Vec<Vec<T>> {
    let win = p.window;
    let oh = (p.h + win.pad_top + win.pad_bottom - win.kh) / win.sh + 1;
    let ow = (p.w + win.pad_left + win.pad_right - win.kw) / win.sw + 1;
    let mut out = Vec::new();
    for c in 0..p.channels {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut taps = Vec::new();
                for ky in 0..win.kh {
                    for kx in 0..win.kw {
                        let iy = (oy * win.sh + ky) as isize - win.pad_top as isize;
                        let ix = (ox * win.sw + kx) as isize - win.pad_left as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < p.h && (ix as usize) < p.w {
                            taps.push(input[(c * p.h + iy as usize) * p.w + ix as usize]);
                        }
                    }
                }
                out.push(taps);
            }
        }
    }
    out
}

fn pool_params(
    channels: usize,
    h: usize,
    w: usize,
    (kh, kw, sh, sw): (usize, usize, usize, usize),
    pads: [usize; 4],
) -> PoolParams {
    PoolParams {
        channels,
        h,
        w,
        window: Window {
            kh,
            kw,
            sh,
            sw,
            pad_top: pads[0].min(kh - 1),
            pad_bottom: pads[1].min(kh - 1),
            pad_left: pads[2].min(kw - 1),
            pad_right: pads[3].min(kw - 1),
        },
    }
}

fn qp(scale: f32, zero_point: i8) -> QuantParams {
    QuantParams { scale, zero_point }
}

/// A scale `2^e · m` for `e ∈ [−12, 2]`, `m ∈ [1, 2)`.
fn scale_from(e: i32, m: f32) -> f32 {
    libm::ldexpf(1.0 + m.clamp(0.0, 0.999), e)
}

// ---------------------------------------------------------------------------------------------
// Hand-checked cases.

#[test]
fn add_f32_applies_the_activation() {
    let (a, b) = ([1.0f32, -3.0, 4.0, 0.5], [2.0f32, 1.0, 4.0, -0.5]);
    let mut y = [0.0f32; 4];
    kernels::add_f32(&a, &b, Activation::None, &mut y).unwrap();
    assert_eq!(y, [3.0, -2.0, 8.0, 0.0]);
    kernels::add_f32(&a, &b, Activation::Relu, &mut y).unwrap();
    assert_eq!(y, [3.0, 0.0, 8.0, 0.0]);
    kernels::add_f32(&a, &b, Activation::Relu6, &mut y).unwrap();
    assert_eq!(y, [3.0, 0.0, 6.0, 0.0]);
    assert_eq!(
        kernels::add_f32(&a, &b[..3], Activation::None, &mut y),
        Err(Error::KernelBadArguments)
    );
    assert_eq!(
        kernels::add_f32(&a, &b, Activation::None, &mut y[..3]),
        Err(Error::KernelBadArguments)
    );
}

#[test]
fn add_s8_hand_checked() {
    // All scales 1, zero points 0: y = x1 + x2, saturating at the int8 limits.
    let q = qp(1.0, 0);
    let p = add_s8_params(q, q, q, Activation::None).unwrap();
    let (a, b) = ([1i8, -5, 100, -100, 0], [2i8, 3, 100, -100, 0]);
    let mut y = [0i8; 5];
    kernels::add_s8(&p, &a, &b, &mut y).unwrap();
    assert_eq!(y, [3, -2, 127, -128, 0]);
    // Different scales and zero points: in1 0.5/zp 10, in2 0.25/zp −4, out 0.1/zp 3.
    // x1 = 14 → 2.0, x2 = 0 → 1.0: 3.0 / 0.1 + 3 = 33.
    let p = add_s8_params(qp(0.5, 10), qp(0.25, -4), qp(0.1, 3), Activation::None).unwrap();
    kernels::add_s8(&p, &[14], &[0], &mut y[..1]).unwrap();
    assert_eq!(y[0], 33);
    // ReLU: −2.0 + −1.0 clamps to the output zero point.
    let p = add_s8_params(qp(0.5, 10), qp(0.25, -4), qp(0.1, 3), Activation::Relu).unwrap();
    kernels::add_s8(&p, &[6], &[-8], &mut y[..1]).unwrap();
    assert_eq!(y[0], 3);
    assert_eq!(
        kernels::add_s8(&p, &[1, 2], &[1], &mut y[..2]),
        Err(Error::KernelBadArguments)
    );
}

#[test]
fn add_s8_equals_the_tflite_transcription_on_every_input_pair() {
    let cases = [
        (qp(0.05, -3), qp(0.05, 7), qp(0.1, 0), Activation::None),
        (
            qp(0.0123, 17),
            qp(0.0371, -90),
            qp(0.047, 5),
            Activation::Relu,
        ),
        (
            qp(1.7, -128),
            qp(0.002, 127),
            qp(0.9, -20),
            Activation::Relu6,
        ),
        (qp(0.02, 0), qp(0.02, 0), qp(0.015, -128), Activation::Relu6),
    ];
    for (i1, i2, o, act) in cases {
        let p = add_s8_params(i1, i2, o, act).unwrap();
        let a: Vec<i8> = (0..65536).map(|i| (i >> 8) as u8 as i8).collect();
        let b: Vec<i8> = (0..65536).map(|i| i as u8 as i8).collect();
        let mut y = vec![0i8; 65536];
        kernels::add_s8(&p, &a, &b, &mut y).unwrap();
        for i in 0..65536 {
            assert_eq!(
                y[i],
                add_s8_ref(&p, a[i], b[i]),
                "{p:?} x = {} y = {}",
                a[i],
                b[i]
            );
        }
    }
}

#[test]
fn avg_pool_hand_checked() {
    // 1 × 3 × 3, 2 × 2 window, stride 1, pad 1 left/top only (asymmetric).
    let p = PoolParams {
        channels: 1,
        h: 3,
        w: 3,
        window: Window {
            kh: 2,
            kw: 2,
            sh: 2,
            sw: 2,
            pad_top: 1,
            pad_bottom: 0,
            pad_left: 1,
            pad_right: 0,
        },
    };
    let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    let mut y = [0.0f32; 4];
    kernels::avg_pool2d_f32(&p, &x, &mut y).unwrap();
    // Windows: {1}, {2,3}, {4,7}, {5,6,8,9}.
    assert_eq!(y, [1.0, 2.5, 5.5, 7.0]);
    let xq = [1i8, 2, 3, 4, 5, 6, 7, 8, 9];
    let mut yq = [0i8; 4];
    kernels::avg_pool2d_s8(&p, &xq, &mut yq).unwrap();
    // 2.5 → 3 and 5.5 → 6 (half away from zero).
    assert_eq!(yq, [1, 3, 6, 7]);
    let xn = [-1i8, -2, -3, -4, -5, -6, -7, -8, -9];
    kernels::avg_pool2d_s8(&p, &xn, &mut yq).unwrap();
    assert_eq!(yq, [-1, -3, -6, -7]);
    assert_eq!(
        kernels::avg_pool2d_f32(&p, &x[..8], &mut y),
        Err(Error::KernelBadArguments)
    );
    assert_eq!(
        kernels::avg_pool2d_s8(&p, &xq, &mut yq[..3]),
        Err(Error::KernelBadArguments)
    );
    let mut bad = p;
    bad.window.pad_top = 2; // pad ≥ k
    assert_eq!(
        kernels::avg_pool2d_f32(&bad, &x, &mut y),
        Err(Error::KernelBadArguments)
    );
}

#[test]
fn avg_pool_s8_rejects_windows_whose_sum_could_overflow() {
    let side = 4200; // 4200² > MAX_POOL_COUNT
    assert!(side * side > MAX_POOL_COUNT);
    let p = PoolParams {
        channels: 1,
        h: side,
        w: side,
        window: Window::square(side, 1, 0),
    };
    let x = vec![0i8; side * side];
    let mut y = [0i8; 1];
    assert_eq!(
        kernels::avg_pool2d_s8(&p, &x, &mut y),
        Err(Error::KernelBadArguments)
    );
}

#[test]
fn softmax_f32_hand_checked() {
    let x = [1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0];
    let mut y = [0.0f32; 6];
    kernels::softmax_f32(2, 3, 1.0, &x, &mut y).unwrap();
    let z: f64 = [1.0f64, 2.0, 3.0].iter().map(|v| (v - 3.0).exp()).sum();
    for i in 0..3 {
        assert!((y[i] as f64 - ((i as f64 + 1.0 - 3.0).exp() / z)).abs() < 1e-6);
        assert!((y[3 + i] - 1.0 / 3.0).abs() < 1e-7);
    }
    assert_eq!(
        kernels::softmax_f32(2, 3, 1.0, &x[..5], &mut y[..5]),
        Err(Error::KernelBadArguments)
    );
    assert_eq!(
        kernels::softmax_f32(usize::MAX, 2, 1.0, &x, &mut y),
        Err(Error::KernelBadArguments)
    );
    kernels::softmax_f32(0, 0, 1.0, &[], &mut []).unwrap();
}

#[test]
fn softmax_s8_hand_checked() {
    // All-equal inputs: each probability 1/depth → 256/depth − 128.
    for depth in [1usize, 2, 3, 4, 10, 100, 256, 511] {
        let p = softmax_s8_params(1.0, 0.1, 1, depth).unwrap();
        let x = vec![17i8; depth];
        let mut y = vec![0i8; depth];
        kernels::softmax_s8(&p, &x, &mut y).unwrap();
        let want = (256.0 / depth as f64 - 128.0).round().min(127.0);
        for &v in &y {
            assert!(
                (v as f64 - want).abs() <= 1.0,
                "depth {depth}: {v} vs {want}"
            );
        }
        assert_eq!(y, softmax_s8_ref(&p, &x));
    }
    // One dominant logit: 127 there, −128 elsewhere.
    let p = softmax_s8_params(1.0, 0.5, 1, 5).unwrap();
    let x = [-100i8, 120, -50, 0, 3];
    let mut y = [0i8; 5];
    kernels::softmax_s8(&p, &x, &mut y).unwrap();
    assert_eq!(y, [-128, 127, -128, -128, -128]);
    // Two equal maxima and the rest far below: 1/2 each → 0.
    kernels::softmax_s8(&p, &[120, -100, 120, -100, -100], &mut y).unwrap();
    assert_eq!(y, [0, -128, 0, -128, -128]);
    // Lengths, depth limit, diff_min > 0.
    assert_eq!(
        kernels::softmax_s8(&p, &x[..4], &mut y[..4]),
        Err(Error::KernelBadArguments)
    );
    let mut deep = p;
    deep.depth = MAX_SOFTMAX_S8_DEPTH + 1;
    let big = vec![0i8; MAX_SOFTMAX_S8_DEPTH + 1];
    let mut big_out = big.clone();
    assert_eq!(
        kernels::softmax_s8(&deep, &big, &mut big_out),
        Err(Error::KernelBadArguments)
    );
    let mut pos = p;
    pos.diff_min = 1;
    assert_eq!(
        kernels::softmax_s8(&pos, &x, &mut y),
        Err(Error::KernelBadArguments)
    );
}

#[test]
fn softmax_s8_at_the_largest_depth_and_shift() {
    // depth 511, all equal: the sum of exps is 511 (just under 512), exponent 31.
    let p = softmax_s8_params(1.0, 0.05, 2, MAX_SOFTMAX_S8_DEPTH).unwrap();
    let x: Vec<i8> = (0..2 * MAX_SOFTMAX_S8_DEPTH)
        .map(|i| {
            if i < MAX_SOFTMAX_S8_DEPTH {
                -7
            } else {
                (i % 3) as i8
            }
        })
        .collect();
    let mut y = vec![0i8; x.len()];
    kernels::softmax_s8(&p, &x, &mut y).unwrap();
    for (row_x, row_y) in x
        .chunks(MAX_SOFTMAX_S8_DEPTH)
        .zip(y.chunks(MAX_SOFTMAX_S8_DEPTH))
    {
        assert_eq!(row_y, softmax_s8_ref(&p, row_x).as_slice());
    }
    // Capped multiplier (shift 31, diff_min 0): only the maxima count.
    let p = softmax_s8_params(1e9, 1.0, 1, 4).unwrap();
    assert_eq!((p.input_left_shift, p.diff_min), (31, 0));
    let mut y = [0i8; 4];
    kernels::softmax_s8(&p, &[5, 5, 4, -128], &mut y).unwrap();
    assert_eq!(y, [0, 0, -128, -128]);
    assert_eq!(y.to_vec(), softmax_s8_ref(&p, &[5, 5, 4, -128]));
}

#[test]
fn clamp_and_activation_in_place() {
    let q = qp(0.05, -20);
    let (lo, hi) = activation_range(Activation::Relu6, q);
    assert_eq!((lo, hi), (-20, 100));
    let mut x = [-128i8, -21, -20, 0, 100, 101, 127];
    kernels::clamp_s8(&mut x, lo, hi);
    assert_eq!(x, [-20, -20, -20, 0, 100, 100, 100]);
    let mut x = [-128i8, 0, 127];
    kernels::clamp_s8(&mut x, 5, -5); // lo > hi: hi
    assert_eq!(x, [-5, -5, -5]);
    kernels::clamp_s8(&mut x, i32::MIN, i32::MAX);
    assert_eq!(x, [-5, -5, -5]);
    let mut f = [-1.0f32, -0.0, 0.5, 6.5, f32::NAN];
    kernels::activation_f32(&mut f, Activation::Relu6);
    assert_eq!(&f[..4], &[0.0, -0.0, 0.5, 6.0]);
    assert!(f[4].is_nan());
    assert!(f[1].is_sign_negative());
    let mut g = [-1.0f32, 7.0];
    kernels::activation_f32(&mut g, Activation::None);
    assert_eq!(g, [-1.0, 7.0]);
    kernels::activation_f32(&mut g, Activation::Relu);
    assert_eq!(g, [0.0, 7.0]);
}

#[test]
fn softmax_s8_equals_the_transcription_on_many_rows() {
    // Many seeded rows: differences of one rounding step (e.g. truncating instead of rounding a
    // term of the sum) only show on the rows that sit at an output rounding boundary.
    let mut rng = Rng(0x5EED_50F7);
    for case in 0..3000 {
        let depth = 1 + (rng.next_u64() % 40) as usize;
        let beta = [1.0f32, 0.5, 2.0, 1.3][case % 4];
        let scale = scale_from(-((rng.next_u64() % 9) as i32), rng.uniform(0.0, 1.0));
        let p = softmax_s8_params(beta, scale, 1, depth).unwrap();
        let spread = 1 + (rng.next_u64() % 8) as i32;
        let x: Vec<i8> = rng
            .i8s(depth)
            .into_iter()
            .map(|v| (v as i32 >> (8 - spread)) as i8)
            .collect();
        let mut y = vec![0i8; depth];
        kernels::softmax_s8(&p, &x, &mut y).unwrap();
        assert_eq!(y, softmax_s8_ref(&p, &x), "{p:?} x = {x:?}");
    }
}

#[test]
fn fixed_point_functions_equal_the_transcription() {
    use denoiserep_core::fixedpoint;
    // Every 61st Q5.26 value in [−32, 0], and every 61st Q0.31 value in [0, 1).
    let mut a = 0i64;
    while a >= i32::MIN as i64 {
        let (got, want) = (
            fixedpoint::exp_on_negative_values(a as i32, 5),
            exp_neg_q5(Fx::new(a as i32, 5)),
        );
        assert_eq!(got, want.raw, "exp({a})");
        a -= 61 * 1021;
    }
    let mut x = 0i64;
    while x <= i32::MAX as i64 {
        let got = fixedpoint::one_over_one_plus_x_for_x_in_0_1(x as i32);
        assert_eq!(
            got,
            one_over_one_plus(Fx::new(x as i32, 0)).raw,
            "1/(1 + {x})"
        );
        x += 61 * 1021;
    }
}

// ---------------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn add_f32_matches_reference(n in 0usize..70, act in 0u8..3, seed: u64) {
        let mut rng = Rng(seed);
        let (a, b) = (rng.vec(n, -8.0, 8.0), rng.vec(n, -8.0, 8.0));
        let mut y = vec![0.0; n];
        kernels::add_f32(&a, &b, act_from(act), &mut y).unwrap();
        for i in 0..n {
            prop_assert_eq!(y[i].to_bits(), act_ref(a[i] + b[i], act_from(act)).to_bits());
        }
        let mut y1 = vec![0.0; n + 1];
        prop_assert_eq!(kernels::add_f32(&a, &b, act_from(act), &mut y1), Err(Error::KernelBadArguments));
    }

    #[test]
    fn add_s8_matches_transcription_and_real_addition(
        e1 in -12i32..3, m1 in 0.0f32..1.0, z1: i8,
        e2 in -12i32..3, m2 in 0.0f32..1.0, z2: i8,
        eo in -12i32..3, mo in 0.0f32..1.0, zo: i8,
        act in 0u8..3, n in 1usize..200, seed: u64,
    ) {
        let (i1, i2, o) = (qp(scale_from(e1, m1), z1), qp(scale_from(e2, m2), z2), qp(scale_from(eo, mo), zo));
        let p = add_s8_params(i1, i2, o, act_from(act));
        prop_assert!(p.is_some()); // m_out < 1 for every scale in this range
        let p = p.unwrap();
        let mut rng = Rng(seed);
        let (a, b) = (rng.i8s(n), rng.i8s(n));
        let mut y = vec![0i8; n];
        kernels::add_s8(&p, &a, &b, &mut y).unwrap();
        let (lo, hi) = activation_range(act_from(act), o);
        for i in 0..n {
            prop_assert_eq!(y[i], add_s8_ref(&p, a[i], b[i]));
            // Within about one output step of the real sum, clamped to the activation range.
            let real = dequantize(a[i], i1) as f64 + dequantize(b[i], i2) as f64;
            let want = (real / o.scale as f64 + zo as f64).clamp(lo as f64, hi as f64);
            prop_assert!((y[i] as f64 - want).abs() <= 0.51 + 1e-3, "{} vs {}", y[i], want);
        }
        prop_assert_eq!(kernels::add_s8(&p, &a, &b[1..], &mut y[1..]), Err(Error::KernelBadArguments));
    }

    #[test]
    fn add_s8_never_panics_on_arbitrary_params(
        f in proptest::array::uniform12(any::<i32>()), x: i8, y: i8,
    ) {
        let p = AddS8Params {
            input1_zp: f[0], input2_zp: f[1], output_zp: f[2], left_shift: f[3],
            input1_multiplier: f[4], input1_shift: f[5], input2_multiplier: f[6],
            input2_shift: f[7], output_multiplier: f[8], output_shift: f[9],
            act_min: f[10], act_max: f[11],
        };
        let mut out = [0i8];
        kernels::add_s8(&p, &[x], &[y], &mut out).unwrap();
    }

    #[test]
    fn avg_pool_matches_naive_reference(
        c in 0usize..3, h in 1usize..9, w in 1usize..9,
        kh in 1usize..5, kw in 1usize..5, sh in 1usize..4, sw in 1usize..4,
        pads in proptest::array::uniform4(0usize..4), seed: u64,
    ) {
        let p = pool_params(c, h, w, (kh, kw, sh, sw), pads);
        let win = p.window;
        let fits = h + win.pad_top + win.pad_bottom >= kh && w + win.pad_left + win.pad_right >= kw;
        let mut rng = Rng(seed);
        let x = rng.vec(c * h * w, -4.0, 4.0);
        let xq = rng.i8s(c * h * w);
        if !fits {
            let mut y = vec![0.0; 1];
            prop_assert_eq!(kernels::avg_pool2d_f32(&p, &x, &mut y), Err(Error::KernelBadArguments));
            let mut yq = vec![0i8; 1];
            prop_assert_eq!(kernels::avg_pool2d_s8(&p, &xq, &mut yq), Err(Error::KernelBadArguments));
            return Ok(());
        }
        let taps = windows(&p, &x);
        let mut y = vec![0.0f32; taps.len()];
        kernels::avg_pool2d_f32(&p, &x, &mut y).unwrap();
        for (i, t) in taps.iter().enumerate() {
            prop_assert!(!t.is_empty());
            let mut lanes = [0.0f32; 8];
            for (j, v) in t.iter().enumerate() {
                lanes[j % 8] += v;
            }
            prop_assert_eq!(y[i].to_bits(), (tree(&lanes) / t.len() as f32).to_bits());
            let mean = t.iter().map(|&v| v as f64).sum::<f64>() / t.len() as f64;
            prop_assert!((y[i] as f64 - mean).abs() < 1e-5);
        }
        let taps = windows(&p, &xq);
        let mut yq = vec![0i8; taps.len()];
        kernels::avg_pool2d_s8(&p, &xq, &mut yq).unwrap();
        for (i, t) in taps.iter().enumerate() {
            let sum: i64 = t.iter().map(|&v| v as i64).sum();
            let n = t.len() as i64;
            // Nearest integer, ties away from zero, in exact rational arithmetic.
            let want = if sum >= 0 { (2 * sum + n).div_euclid(2 * n) } else { -((-2 * sum + n).div_euclid(2 * n)) };
            prop_assert_eq!(yq[i] as i64, want.clamp(-128, 127));
        }
        let mut long = vec![0i8; taps.len() + 1];
        prop_assert_eq!(kernels::avg_pool2d_s8(&p, &xq, &mut long), Err(Error::KernelBadArguments));
    }

    #[test]
    fn softmax_f32_matches_reference(rows in 0usize..4, depth in 1usize..40, beta in 0.1f32..3.0, seed: u64) {
        let mut rng = Rng(seed);
        let x = rng.vec(rows * depth, -10.0, 10.0);
        let mut y = vec![0.0f32; rows * depth];
        kernels::softmax_f32(rows, depth, beta, &x, &mut y).unwrap();
        for r in 0..rows {
            let row = &x[r * depth..(r + 1) * depth];
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a });
            let e: Vec<f32> = row.iter().map(|&v| libm::expf(beta * (v - m))).collect();
            let mut lanes = [0.0f32; 8];
            for (j, v) in e.iter().enumerate() {
                lanes[j % 8] += v;
            }
            let s = tree(&lanes);
            let z: f64 = row.iter().map(|&v| ((beta as f64) * (v as f64 - m as f64)).exp()).sum();
            for c in 0..depth {
                prop_assert_eq!(y[r * depth + c].to_bits(), (e[c] / s).to_bits());
                let exact = ((beta as f64) * (row[c] as f64 - m as f64)).exp() / z;
                prop_assert!((y[r * depth + c] as f64 - exact).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn softmax_s8_matches_transcription(
        rows in 1usize..4, depth in 1usize..64, beta in 0.05f32..4.0,
        e in -10i32..1, m in 0.0f32..1.0, seed: u64, spread in 1u32..9,
    ) {
        let scale = scale_from(e, m);
        let p = softmax_s8_params(beta, scale, rows, depth);
        prop_assume!(p.is_some());
        let p = p.unwrap();
        let mut rng = Rng(seed);
        // Narrow or wide logit ranges, so both many-equal and dominant-logit rows occur.
        let x: Vec<i8> = rng.i8s(rows * depth).into_iter().map(|v| (v as i32 >> (8 - spread.min(8))) as i8).collect();
        let mut y = vec![0i8; rows * depth];
        kernels::softmax_s8(&p, &x, &mut y).unwrap();
        for r in 0..rows {
            let (xr, yr) = (&x[r * depth..(r + 1) * depth], &y[r * depth..(r + 1) * depth]);
            let want = softmax_s8_ref(&p, xr);
            prop_assert_eq!(yr, want.as_slice());
            // And close to the real softmax (output step 1/256).
            let mx = *xr.iter().max().unwrap() as f64;
            let z: f64 = xr.iter().map(|&v| (beta as f64 * scale as f64 * (v as f64 - mx)).exp()).sum();
            for c in 0..depth {
                let prob = (beta as f64 * scale as f64 * (xr[c] as f64 - mx)).exp() / z;
                let want = (prob * 256.0 - 128.0).min(127.0);
                prop_assert!((yr[c] as f64 - want).abs() <= 1.0, "{} vs {}", yr[c], want);
            }
        }
    }

    #[test]
    fn softmax_s8_never_panics_on_arbitrary_params(
        mult: i32, shift: i32, diff_min in -100_000i32..=0, depth in 1usize..=MAX_SOFTMAX_S8_DEPTH, seed: u64,
    ) {
        let p = SoftmaxS8Params { rows: 1, depth, input_multiplier: mult, input_left_shift: shift, diff_min };
        let x = Rng(seed).i8s(depth);
        let mut y = vec![0i8; depth];
        kernels::softmax_s8(&p, &x, &mut y).unwrap();
    }

    #[test]
    fn clamp_s8_matches_reference(x: Vec<i8>, lo in -300i32..300, hi in -300i32..300) {
        let mut y = x.clone();
        kernels::clamp_s8(&mut y, lo, hi);
        for (a, b) in x.iter().zip(&y) {
            let want = (*a as i32).max(lo).min(hi).clamp(-128, 127);
            prop_assert_eq!(*b as i32, want);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Golden vectors from TFLite-Micro's interpreter (core/tests/golden/tflm_graph_ops.py).

/// Parses `float.hex()` output (`[-]0x1.<hex>p<exp>` or `0x0.0p+0`).
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

fn tflm_act(code: i32) -> Activation {
    match code {
        0 => Activation::None,
        1 => Activation::Relu,
        3 => Activation::Relu6,
        _ => panic!("activation {code}"),
    }
}

#[test]
fn golden_vectors_from_the_tflite_micro_interpreter() {
    let text = include_str!("golden/tflm_graph_ops.txt");
    let mut counts = [0usize; 3];
    for (line_no, line) in text.lines().enumerate() {
        let mut t = line.split_whitespace();
        let kind = t.next().unwrap();
        let mut next = || t.next().unwrap();
        match kind {
            "add" => {
                let mut q = || {
                    let s = parse_hex_float(next());
                    qp(s, next().parse().unwrap())
                };
                let (i1, i2, o) = (q(), q(), q());
                let act = tflm_act(next().parse().unwrap());
                let n: usize = next().parse().unwrap();
                let v: Vec<i8> = (0..3 * n).map(|_| next().parse().unwrap()).collect();
                let p = add_s8_params(i1, i2, o, act).unwrap();
                let mut y = vec![0i8; n];
                kernels::add_s8(&p, &v[..n], &v[n..2 * n], &mut y).unwrap();
                assert_eq!(y, &v[2 * n..], "line {}", line_no + 1);
                counts[0] += 1;
            }
            "softmax" => {
                let beta = parse_hex_float(next());
                let s_in = parse_hex_float(next());
                let _zp_in: i32 = next().parse().unwrap(); // softmax ignores the input zero point
                let rows: usize = next().parse().unwrap();
                let depth: usize = next().parse().unwrap();
                let v: Vec<i8> = (0..2 * rows * depth)
                    .map(|_| next().parse().unwrap())
                    .collect();
                let p = softmax_s8_params(beta, s_in, rows, depth).unwrap();
                let mut y = vec![0i8; rows * depth];
                let (x, want) = v.split_at(rows * depth);
                kernels::softmax_s8(&p, x, &mut y).unwrap();
                assert_eq!(y, want, "line {}", line_no + 1);
                counts[1] += 1;
            }
            "avgpool" => {
                let mut u = || -> usize { next().parse().unwrap() };
                let (c, h, w, kh, kw, sh, sw, same) = (u(), u(), u(), u(), u(), u(), u(), u());
                // TFLite SAME: total pad max((out − 1)·s + k − in, 0), the smaller half first.
                let pads = |n: usize, k: usize, s: usize| -> (usize, usize) {
                    if same == 0 {
                        return (0, 0);
                    }
                    let out = n.div_ceil(s);
                    let total = ((out - 1) * s + k).saturating_sub(n);
                    (total / 2, total - total / 2)
                };
                let ((pt, pb), (pl, pr)) = (pads(h, kh, sh), pads(w, kw, sw));
                let window = Window {
                    kh,
                    kw,
                    sh,
                    sw,
                    pad_top: pt,
                    pad_bottom: pb,
                    pad_left: pl,
                    pad_right: pr,
                };
                let p = PoolParams {
                    channels: c,
                    h,
                    w,
                    window,
                };
                let (oh, ow) = window.out_dims(h, w).unwrap();
                let v: Vec<i8> = (0..c * (h * w + oh * ow))
                    .map(|_| next().parse().unwrap())
                    .collect();
                let (x, want) = v.split_at(c * h * w);
                let mut y = vec![0i8; want.len()];
                kernels::avg_pool2d_s8(&p, x, &mut y).unwrap();
                assert_eq!(y, want, "line {}", line_no + 1);
                counts[2] += 1;
            }
            other => panic!("unknown case {other}"),
        }
    }
    assert!(counts.iter().all(|&n| n >= 40), "{counts:?}");
}
