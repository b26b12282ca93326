//! int8 Linear: the DSP kernel, the reference loop and the engine's dispatch on random layers,
//! then timed on the anchors' FC shapes.

use crate::Rng;
use denoiserep_core::kernels::params::{LinearParams, PerChannelQuant};
use denoiserep_core::kernels::{
    linear_s8_dsp, linear_s8_reference, linear_s8_scratch_words, linear_s8_with_scratch,
};
use denoiserep_core::{Activation, I32Data, I8Data, QuantParams};
use denoiserep_firmware::{exit, ExitCode, InstructionCounter};

/// Random cases.
const CASES: u32 = 4000;
/// The anchors' FC shapes `(in, out)`.
const SHAPES: [(usize, usize); 5] = [(784, 256), (256, 128), (128, 10), (640, 128), (128, 128)];

/// Largest `rows · in_features` of a case (stack buffer).
const MAX_INPUT: usize = 3 * 800;
/// Largest `rows · out_features` of a case (stack buffers).
const MAX_OUTPUT: usize = 3 * 256;
/// Scratch words for the widest row (the engine's arena scratch for the op).
const SCRATCH_WORDS: usize = linear_s8_scratch_words(800);

/// One layer: shape, activation, zero points, and the per-channel data encoded in `bytes`
/// (weights at `skew`, bias, multipliers, shifts).
struct Layer {
    rows: usize,
    n_in: usize,
    n_out: usize,
    act: Activation,
    zp_in: i8,
    output: QuantParams,
}

/// Byte layout of a layer's constant data in the scratch buffer: weights first (starting `skew`
/// bytes in, so misaligned like weights in a flash partition), then bias, multipliers, shifts.
struct Data<'a> {
    weights: I8Data<'a>,
    bias: I32Data<'a>,
    multiplier: I32Data<'a>,
    shift: I8Data<'a>,
}

/// The three kernels on one layer; `Err(index)` of the first differing output (or `usize::MAX`
/// when a kernel returned an error). `scratch`: the DSP kernel's and the dispatch's scratch
/// (the engine gives [`linear_s8_scratch_words`]; shorter makes both take the reference loop).
fn compare(
    l: &Layer,
    d: &Data<'_>,
    input: &[i8],
    y: &mut [[i8; MAX_OUTPUT]; 3],
    scratch: &mut [u32],
    counter: Option<&InstructionCounter>,
) -> Result<(u64, u64), usize> {
    let p = LinearParams {
        rows: l.rows,
        in_features: l.n_in,
        out_features: l.n_out,
        activation: l.act,
    };
    let q = PerChannelQuant {
        input_zp: l.zp_in,
        output: l.output,
        multiplier: d.multiplier,
        shift: d.shift,
    };
    let n_y = l.rows * l.n_out;
    let [y_ref, y_dsp, y_dispatch] = y;
    let (y_ref, y_dsp, y_dispatch) = (&mut y_ref[..n_y], &mut y_dsp[..n_y], &mut y_dispatch[..n_y]);
    y_ref.fill(0x55);
    y_dsp.fill(-0x56);
    y_dispatch.fill(0x33);
    let now = || counter.map_or(0, InstructionCounter::count);
    let t0 = now();
    let r1 = linear_s8_reference(&p, &q, input, d.weights, d.bias, y_ref);
    let t1 = now();
    let r2 = linear_s8_dsp(&p, &q, input, d.weights, d.bias, y_dsp, scratch);
    let t2 = now();
    // Stale widened words must not leak into the next call.
    scratch.fill(0xA5A5_A5A5);
    let r3 = linear_s8_with_scratch(&p, &q, input, d.weights, d.bias, y_dispatch, scratch);
    if r1.is_err() || r2.is_err() || r3.is_err() {
        return Err(usize::MAX);
    }
    for i in 0..n_y {
        if y_ref[i] != y_dsp[i] || y_ref[i] != y_dispatch[i] {
            return Err(i);
        }
    }
    Ok((t1 - t0, t2 - t1))
}

/// Writes a random layer's constant data into `buf` and returns its views, or `None` when it
/// does not fit. `extreme`: weights all −128 or 127 (saturating accumulators).
fn fill<'a>(
    rng: &mut Rng,
    buf: &'a mut [u8],
    l: &Layer,
    skew: usize,
    extreme: bool,
    anchor: bool,
) -> Option<Data<'a>> {
    let n_w = l.n_in.checked_mul(l.n_out)?;
    let (w, rest) = buf.split_at_mut_checked(skew + n_w)?;
    let (b, rest) = rest.split_at_mut_checked(4 * l.n_out)?;
    let (m, rest) = rest.split_at_mut_checked(4 * l.n_out)?;
    let (s, _) = rest.split_at_mut_checked(l.n_out)?;
    let w = &mut w[skew..];
    let big = rng.below(2) == 0;
    for v in w.iter_mut() {
        *v = if extreme {
            if big {
                0x80
            } else {
                0x7F
            }
        } else {
            rng.next() as u8
        };
    }
    for (o, ((b, m), s)) in b
        .chunks_exact_mut(4)
        .zip(m.chunks_exact_mut(4))
        .zip(s.iter_mut())
        .enumerate()
    {
        let (bias, mult, shift): (i32, i32, i8) = if anchor {
            // The anchors' recipe: bias in [−4096, 4095], multiplier in [2^30, 2^30 + 9e8],
            // shift −(6 + round(log2 √fan-in) + o mod 3).
            let log2_sqrt = (usize::BITS - l.n_in.leading_zeros()) as i32 / 2;
            (
                rng.below(8192) as i32 - 4096,
                (1 << 30) + rng.below(900_000_001) as i32,
                -(6 + log2_sqrt + (o % 3) as i32) as i8,
            )
        } else {
            let bias = match rng.below(6) {
                0 => i32::MAX - rng.below(1 << 16) as i32,
                1 => i32::MIN + rng.below(1 << 16) as i32,
                2 => rng.next() as i32,
                _ => rng.below(1 << 16) as i32 - (1 << 15),
            };
            let mult = match rng.below(6) {
                0 => 0,
                1 => 1 << 30,
                2 => i32::MAX,
                _ => (1 << 30) + rng.below(1 << 30) as i32,
            };
            let shift = match rng.below(6) {
                0 => -31,
                1 => 30,
                2 => rng.below(62) as i8 - 31,
                _ => -(rng.below(16) as i8),
            };
            (bias, mult, shift)
        };
        b.copy_from_slice(&bias.to_le_bytes());
        m.copy_from_slice(&mult.to_le_bytes());
        *s = shift as u8;
    }
    Some(Data {
        weights: I8Data::from_le_bytes(w),
        bias: I32Data::from_le_bytes(b),
        multiplier: I32Data::from_le_bytes(m),
        shift: I8Data::from_le_bytes(s),
    })
}

fn mismatch(what: &str, l: &Layer, at: usize) -> ! {
    defmt::error!(
        "kernel_check MISMATCH {=str} rows={=usize} in={=usize} out={=usize} zp_in={=i8} zp_out={=i8} at={=usize}",
        what,
        l.rows,
        l.n_in,
        l.n_out,
        l.zp_in,
        l.output.zero_point,
        at
    );
    exit(ExitCode::RunFailed)
}

/// The random cases, then the anchor shapes (timed); exits on the first mismatch.
pub fn run(counter: &InstructionCounter, buf: &mut [u8]) {
    let mut input = [0i8; MAX_INPUT];
    let mut y = [[0i8; MAX_OUTPUT]; 3];
    let mut scratch = [0u32; SCRATCH_WORDS];
    let mut rng = Rng(0x1234_5678);
    let zps = [-128i8, 127, 0, -1, 1];
    let (mut cases, mut macs) = (0u32, 0u64);
    for case in 0..CASES {
        let rows = 1 + rng.below(3) as usize;
        let wide = case % 50 == 0;
        let n_in = if wide {
            100 + rng.below(701) as usize
        } else {
            1 + rng.below(70) as usize
        };
        let n_out = if wide {
            1 + rng.below(33) as usize
        } else {
            rng.below(10) as usize
        };
        let act = match rng.below(3) {
            0 => Activation::None,
            1 => Activation::Relu,
            _ => Activation::Relu6,
        };
        let l = Layer {
            rows,
            n_in,
            n_out,
            act,
            zp_in: rng.i8_from(&zps),
            output: QuantParams {
                scale: [0.02f32, 0.5, 1.0e-3][rng.below(3) as usize],
                zero_point: rng.i8_from(&zps),
            },
        };
        let extreme = rng.below(8) == 0;
        let skew = rng.below(4) as usize;
        let x = &mut input[..rows * n_in];
        let x_big = rng.below(2) == 0;
        for v in x.iter_mut() {
            *v = if extreme {
                if x_big {
                    127
                } else {
                    -128
                }
            } else {
                rng.i8()
            };
        }
        let Some(d) = fill(&mut rng, buf, &l, skew, extreme, false) else {
            exit(ExitCode::ModelDoesNotFit)
        };
        // Every 16th case with a scratch one word short: the fallback to the reference loop.
        let words = linear_s8_scratch_words(n_in);
        let words = if case % 16 == 5 {
            words.saturating_sub(1)
        } else {
            words
        };
        if let Err(at) = compare(&l, &d, x, &mut y, &mut scratch[..words], None) {
            mismatch("random", &l, at);
        }
        cases += 1;
        macs += (rows * n_in * n_out) as u64;
    }
    defmt::info!(
        "kernel_check cases={=u32} macs={=u64} mismatches=0",
        cases,
        macs
    );
    for (n_in, n_out) in SHAPES {
        // Opaque to the optimizer: no specialisation on the shape (as the anchors' harness).
        let (n_in, n_out) = core::hint::black_box((n_in, n_out));
        let l = Layer {
            rows: 1,
            n_in,
            n_out,
            act: Activation::None,
            zp_in: -128,
            output: QuantParams {
                scale: 0.02,
                zero_point: -3,
            },
        };
        for v in input[..n_in].iter_mut() {
            *v = rng.i8();
        }
        let Some(d) = fill(&mut rng, buf, &l, 0, false, true) else {
            defmt::warn!(
                "fc in={=usize} out={=usize} does not fit this board's arena",
                n_in,
                n_out
            );
            continue;
        };
        // Twice: the second run is the one reported (the first may include cold effects on
        // hardware; under QEMU both agree to within one tick).
        let mut best = (u64::MAX, u64::MAX);
        for _ in 0..2 {
            let words = linear_s8_scratch_words(n_in);
            match compare(
                &l,
                &d,
                &input[..n_in],
                &mut y,
                &mut scratch[..words],
                Some(counter),
            ) {
                Ok((r, s)) => best = (best.0.min(r), best.1.min(s)),
                Err(at) => mismatch("anchor", &l, at),
            }
        }
        defmt::info!(
        "fc in={=usize} out={=usize} macs={=usize} reference_instructions={=u64} dsp_instructions={=u64}",
        n_in,
        n_out,
        n_in * n_out,
        best.0,
        best.1
    );
    }
}
