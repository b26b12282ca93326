//! The int8 model's input step: `kernels::normalize_quantize` (the engine's path: a fixed-point
//! `VCVT` on the Cortex-M4F) against `quant::quantize((x − mean) / std, q)` (`libm::roundf`),
//! bit for bit, on rounding ties and their neighbours, ±0, subnormals, ±∞, NaN, values past the
//! int8 and int16 ranges and random bit patterns, for several normalizations and zero points;
//! then timed on one 784-value plane (an MNIST digit).

use crate::Rng;
use denoiserep_core::kernels::normalize_quantize;
use denoiserep_core::quant::quantize;
use denoiserep_core::QuantParams;
use denoiserep_firmware::{exit, ExitCode, InstructionCounter};

/// Values per batch (the kernel runs on batches of 1..=BATCH values).
const BATCH: usize = 256;
/// Random bit patterns per parameter set.
const RANDOM: u32 = 20_000;

/// `(mean, std, scale)`: the identity (so `x` is the rounded value itself: exact ties), MNIST's
/// normalization with a typical input scale, and scales that make ties after the divisions.
const NORMS: [(f32, f32, f32); 5] = [
    (0.0, 1.0, 1.0),
    (0.0, 1.0, 0.5),
    (0.1307, 0.3081, 0.011_074_5),
    (0.5, 0.25, 1.0 / 255.0),
    (-3.0, 7.0, 3.0e-3),
];
const ZPS: [i8; 6] = [-128, -1, 0, 1, 127, -37];

/// The special values: ties `k + 0.5` and their neighbours, integers, ±0, subnormals, ±∞, NaN,
/// and values around 2^14, 2^15, 2^31 (the 16-bit saturation of the fast path).
fn special(i: u32) -> Option<f32> {
    let k = i as i32 / 3 - 300; // −300..=300 for i < 1803
    if i < 1803 {
        let tie = k as f32 + 0.5;
        return Some(match i % 3 {
            0 => tie,
            1 => f32::from_bits(tie.to_bits() + 1),
            _ => f32::from_bits(tie.to_bits() - 1),
        });
    }
    let fixed = [
        0.0,
        -0.0,
        1.0e-45,
        -1.0e-45,
        1.1754942e-38,
        f32::MIN_POSITIVE,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7FC0_1234),
        f32::from_bits(0xFF80_0001),
        f32::MAX,
        f32::MIN,
        16383.5,
        16384.5,
        -16384.5,
        32767.0,
        32767.5,
        32768.0,
        -32768.5,
        -32769.0,
        65536.0,
        2147483648.0,
        -2147483904.0,
        4.0e9,
        127.5,
        128.5,
        -128.5,
        -129.5,
        0.49999997,
        -0.49999997,
        0.5,
        -0.5,
        1.5,
        -1.5,
        255.49998,
        -255.50002,
    ];
    fixed.get((i - 1803) as usize).copied()
}

fn mismatch(i: usize, x: f32, norm: (f32, f32, f32), zp: i8, fast: i8, want: i8) -> ! {
    defmt::error!(
        "kernel_check MISMATCH quantize at={=usize} x_bits={=u32:#x} mean={=f32} std={=f32} scale={=f32} zp={=i8} fast={=i8} want={=i8}",
        i,
        x.to_bits(),
        norm.0,
        norm.1,
        norm.2,
        zp,
        fast,
        want
    );
    exit(ExitCode::RunFailed)
}

/// Runs the kernel on `x` and compares every value; returns the number compared.
fn check(x: &[f32], norm: (f32, f32, f32), zp: i8, out: &mut [i8; BATCH]) -> usize {
    let q = QuantParams {
        scale: norm.2,
        zero_point: zp,
    };
    let out = &mut out[..x.len()];
    out.fill(0x5A);
    normalize_quantize(x, norm.0, norm.1, q, out);
    for (i, (&v, &fast)) in x.iter().zip(out.iter()).enumerate() {
        let want = quantize((v - norm.0) / norm.1, q);
        if fast != want {
            mismatch(i, v, norm, zp, fast, want);
        }
    }
    x.len()
}

/// The cases, then the timing; exits on the first mismatch.
pub fn run(counter: &InstructionCounter) {
    let mut rng = Rng(0x0BAD_F00D);
    let mut x = [0f32; BATCH];
    let mut out = [0i8; BATCH];
    let mut cases = 0usize;
    for norm in NORMS {
        for zp in ZPS {
            // The specials in batches of varying length (1..=BATCH).
            let mut i = 0u32;
            loop {
                let len = 1 + rng.below(BATCH as u32) as usize;
                let mut n = 0;
                while n < len {
                    let Some(v) = special(i) else { break };
                    x[n] = v;
                    n += 1;
                    i += 1;
                }
                if n == 0 {
                    break;
                }
                cases += check(&x[..n], norm, zp, &mut out);
            }
            // Random bit patterns, and random values near the int8 range.
            let mut left = RANDOM as usize;
            while left > 0 {
                let n = left.min(BATCH);
                for v in x[..n].iter_mut() {
                    *v = if rng.below(2) == 0 {
                        f32::from_bits(rng.next())
                    } else {
                        (rng.below(1 << 20) as f32 - (1 << 19) as f32) / 1024.0
                    };
                }
                cases += check(&x[..n], norm, zp, &mut out);
                left -= n;
            }
        }
    }
    // Timed: one MNIST digit plane (784 values), the fast path and the `roundf` loop.
    let mut plane = [0f32; 784];
    for v in plane.iter_mut() {
        *v = rng.below(256) as f32 / 255.0;
    }
    let plane = core::hint::black_box(&plane);
    let mut y = [0i8; 784];
    let (mean, std, scale) = NORMS[2];
    let q = QuantParams {
        scale,
        zero_point: -14,
    };
    let t0 = counter.count();
    normalize_quantize(plane, mean, std, q, &mut y);
    let t1 = counter.count();
    for (o, &v) in y.iter_mut().zip(plane.iter()) {
        *o = quantize((v - mean) / std, q);
    }
    let t2 = counter.count();
    core::hint::black_box(&y);
    defmt::info!(
        "quantize cases={=usize} mismatches=0 values=784 fast_instructions={=u64} reference_instructions={=u64}",
        cases,
        t1 - t0,
        t2 - t1
    );
}
