//! int8 elementwise Add: the engine's dispatch `kernels::add_s8` (the DSP loop, one `SMMULR` per
//! multiplier, for the parameters `quant::add_s8_params` produces) against
//! `kernels::add_s8_reference`, bit for bit, on random scales, zero points and activations with
//! every input pair at the edges and random data; out-of-contract parameters (which must take
//! the reference loop) too; then timed on ResNet-8's first residual add (16×32×32 elements).

use crate::Rng;
use denoiserep_core::kernels::params::AddS8Params;
use denoiserep_core::kernels::{add_s8, add_s8_reference};
use denoiserep_core::quant::add_s8_params;
use denoiserep_core::{Activation, QuantParams};
use denoiserep_firmware::{exit, ExitCode, InstructionCounter};

/// Random parameter sets.
const CASES: u32 = 3000;
/// Elements of the timed add.
const TIMED: usize = 16 * 32 * 32;
/// Elements of each buffer: every input pair once.
const PAIRS: usize = 1 << 16;

/// A scale log-uniform in about `[2^-12, 2^2]`.
fn scale(rng: &mut Rng) -> f32 {
    let mantissa = 1.0 + rng.below(1 << 20) as f32 / (1 << 20) as f32;
    // 2^exp for exp in −12..=2, built from the exponent bits.
    let exp = rng.below(15) as i32 - 12;
    mantissa * f32::from_bits(((127 + exp) as u32) << 23)
}

fn mismatch(p: &AddS8Params, x1: i8, x2: i8, got: i8, want: i8) -> ! {
    defmt::error!(
        "kernel_check MISMATCH add x1={=i8} x2={=i8} got={=i8} want={=i8} zp1={=i32} zp2={=i32} zp_out={=i32} ls={=i32} m1={=i32} s1={=i32} m2={=i32} s2={=i32} m_out={=i32} s_out={=i32} act={=i32}..{=i32}",
        x1, x2, got, want, p.input1_zp, p.input2_zp, p.output_zp, p.left_shift,
        p.input1_multiplier, p.input1_shift, p.input2_multiplier, p.input2_shift,
        p.output_multiplier, p.output_shift, p.act_min, p.act_max
    );
    exit(ExitCode::RunFailed)
}

/// Both kernels on `a`, `b`; exits on the first difference. Returns the elements compared.
fn compare(p: &AddS8Params, a: &[i8], b: &[i8], y: &mut [i8], y_ref: &mut [i8]) -> usize {
    let (y, y_ref) = (&mut y[..a.len()], &mut y_ref[..a.len()]);
    y.fill(0x55);
    y_ref.fill(-0x56);
    if add_s8(p, a, b, y).is_err() || add_s8_reference(p, a, b, y_ref).is_err() {
        exit(ExitCode::RunFailed)
    }
    for (i, (&got, &want)) in y.iter().zip(y_ref.iter()).enumerate() {
        if got != want {
            mismatch(p, a[i], b[i], got, want);
        }
    }
    a.len()
}

/// The random cases, then the timing; exits on the first mismatch.
pub fn run(counter: &InstructionCounter, buf: &mut [u8]) {
    if buf.len() < 4 * PAIRS {
        exit(ExitCode::ModelDoesNotFit)
    }
    let (a, rest) = buf.split_at_mut(PAIRS);
    let (b, rest) = rest.split_at_mut(PAIRS);
    let (y, rest) = rest.split_at_mut(PAIRS);
    let (y_ref, _) = rest.split_at_mut(PAIRS);
    let to_i8 = |s: &mut [u8]| -> &mut [i8] {
        // SAFETY: i8 and u8 have the same size, alignment and valid bit patterns.
        unsafe { core::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<i8>(), s.len()) }
    };
    let (a, b, y, y_ref) = (to_i8(a), to_i8(b), to_i8(y), to_i8(y_ref));
    let mut rng = Rng(0xADD5_0001);
    let zps = [-128i8, 127, 0, -1, 1];
    let (mut cases, mut elements) = (0u32, 0usize);
    for case in 0..CASES {
        let q = |rng: &mut Rng| QuantParams {
            scale: scale(rng),
            zero_point: rng.i8_from(&zps),
        };
        let (qa, qb, qo) = (q(&mut rng), q(&mut rng), q(&mut rng));
        let act = match rng.below(3) {
            0 => Activation::None,
            1 => Activation::Relu,
            _ => Activation::Relu6,
        };
        let Some(mut p) = add_s8_params(qa, qb, qo, act) else {
            continue; // a multiplier out of TFLite's range: the loader refuses such models
        };
        if case % 10 == 7 {
            // Out of contract: must take the reference loop (and agree with it).
            match rng.below(3) {
                0 => p.left_shift = 21 + rng.below(11) as i32,
                1 => p.input1_zp = 128 + rng.below(1000) as i32,
                _ => p.input2_zp = -129 - rng.below(1000) as i32,
            }
        }
        // Every input pair once (65 536 elements) for a few sets, random data for the rest.
        let n = if case % 100 == 0 {
            for (i, (x1, x2)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
                *x1 = (i >> 8) as u8 as i8;
                *x2 = i as u8 as i8;
            }
            PAIRS
        } else {
            let n = rng.below(200) as usize;
            for (x1, x2) in a.iter_mut().zip(b.iter_mut()).take(n) {
                *x1 = rng.i8();
                *x2 = rng.i8();
            }
            n
        };
        elements += compare(&p, &a[..n], &b[..n], y, y_ref);
        cases += 1;
    }
    // Timed: ResNet-8's first residual add, typical scales.
    let p = add_s8_params(
        QuantParams {
            scale: 0.031,
            zero_point: -128,
        },
        QuantParams {
            scale: 0.047,
            zero_point: -12,
        },
        QuantParams {
            scale: 0.055,
            zero_point: -128,
        },
        Activation::Relu,
    );
    let Some(p) = p else {
        exit(ExitCode::RunFailed)
    };
    let (a, b, y, y_ref) = (
        &mut a[..TIMED],
        &mut b[..TIMED],
        &mut y[..TIMED],
        &mut y_ref[..TIMED],
    );
    for (x1, x2) in a.iter_mut().zip(b.iter_mut()) {
        *x1 = rng.i8();
        *x2 = rng.i8();
    }
    let t0 = counter.count();
    let r1 = add_s8_reference(&p, a, b, y_ref);
    let t1 = counter.count();
    let r2 = add_s8(&p, a, b, y);
    let t2 = counter.count();
    if r1.is_err() || r2.is_err() || y != y_ref {
        exit(ExitCode::RunFailed)
    }
    defmt::info!(
        "add cases={=u32} elements={=usize} mismatches=0 timed={=usize} reference_instructions={=u64} dsp_instructions={=u64}",
        cases,
        elements,
        TIMED,
        t1 - t0,
        t2 - t1
    );
}
