//! int8 depthwise convolution: the DSP kernel, the reference loop and the engine's dispatch on
//! random layers, then timed on the anchors' depthwise 3×3 shapes (their data recipe, so the
//! output checksum is comparable with CMSIS-NN's); and the DSP kernels' requantization
//! (`quant::Requantizer`) against `quant::requantize`, with its cost per call.

use crate::Rng;
use denoiserep_core::kernels::params::{DepthwiseParams, PerChannelQuant, Window};
use denoiserep_core::kernels::{
    depthwise_conv2d_s8, depthwise_conv2d_s8_dsp, depthwise_conv2d_s8_reference,
    depthwise_conv2d_s8_scratch_words,
};
use denoiserep_core::quant::{
    multiply_by_quantized_multiplier, requantize, requantize_fast, OutputRange, Requantizer,
};
use denoiserep_core::{Activation, I32Data, I8Data, QuantParams};
use denoiserep_firmware::{exit, ExitCode, InstructionCounter};

/// Random cases.
const CASES: u32 = 3000;
/// Random requantization triples (plus the edge values, all pairs).
const REQUANT_CASES: u32 = 300_000;
/// Requantizations per timed loop.
const REQUANT_CALLS: usize = 1000;

/// The anchors' depthwise shapes: `(name, channels, h, w, stride, (pad before, pad after) on
/// both axes, index in the anchors' layer table)` (the index seeds their xorshift32:
/// `0x12345678 + 0x9E3779B9 · (index + 1)`).
type Shape = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    (usize, usize),
    u32,
);
const SHAPES: [Shape; 4] = [
    ("dw3x3_s1_64ch_25x5", 64, 25, 5, 1, (1, 1), 15),
    ("dw3x3_s1_32ch_48x48", 32, 48, 48, 1, (1, 1), 16),
    ("dw3x3_s1_64ch_24x24", 64, 24, 24, 1, (1, 1), 17),
    ("dw3x3_s2_32ch_48x48", 32, 48, 48, 2, (1, 1), 18),
];

/// More depthwise shapes timed the same way (the anchors' recipe, seeds 100…), logged as
/// `depthwise_extra name=… cmsis_instructions=…` (not compared with a CMSIS-NN checksum):
/// mobilenet-v1:0.25's small planes, with the CMSIS-NN count of the mobilenet row of
/// `bench/cmsis-nn/counts.txt` whose shape they are (0: padded differently from the model).
/// `dw3x3_s2_128ch_6x6_same` and `dw3x3_s1_256ch_3x3` are exactly `mobilenet/23` and
/// `mobilenet/25` (TFLite SAME padding: none before, one after at stride 2).
const EXTRA_SHAPES: [(Shape, u64); 6] = [
    (("dw3x3_s1_128ch_6x6", 128, 6, 6, 1, (1, 1), 100), 335_000),
    (("dw3x3_s2_128ch_6x6", 128, 6, 6, 2, (1, 1), 101), 0),
    (("dw3x3_s1_256ch_3x3", 256, 3, 3, 1, (1, 1), 102), 152_920),
    (("dw3x3_s2_64ch_12x12", 64, 12, 12, 2, (1, 1), 103), 0),
    (("dw3x3_s1_64ch_12x12", 64, 12, 12, 1, (1, 1), 104), 706_560),
    (
        ("dw3x3_s2_128ch_6x6_same", 128, 6, 6, 2, (0, 1), 105),
        84_200,
    ),
];

/// One layer's arguments, in slices of the scratch buffer.
struct Case<'a> {
    p: DepthwiseParams,
    q: PerChannelQuant<'a>,
    input: &'a [i8],
    weights: I8Data<'a>,
    bias: I32Data<'a>,
}

/// Scratch words the strip kernel needs (`kernels::depthwise_conv2d_s8_scratch_words` of a
/// 3×3 stride-1 window).
const RING_WORDS: usize = depthwise_conv2d_s8_scratch_words(&Window::square(3, 1, 1));

/// The three kernels on one layer, outputs into `y0`, `y1`, `y2` (each `c·oh·ow` long): the
/// reference, the DSP kernels with `scratch` (the strip kernel when it holds its ring, with
/// the word kernel for its other channels) and the dispatch without scratch (the word
/// kernel); `Err(index)` of the first differing output (`usize::MAX`: a kernel returned an
/// error), else the instructions of the reference and of the DSP kernels.
fn compare(
    l: &Case<'_>,
    ys: [&mut [i8]; 3],
    scratch: &mut [u32],
    counter: Option<&InstructionCounter>,
) -> Result<(u64, u64), usize> {
    let [y_ref, y_dsp, y_dispatch] = ys;
    y_ref.fill(0x55);
    y_dsp.fill(-0x56);
    y_dispatch.fill(0x33);
    let now = || counter.map_or(0, InstructionCounter::count);
    let t0 = now();
    let r1 = depthwise_conv2d_s8_reference(&l.p, &l.q, l.input, l.weights, l.bias, y_ref);
    let t1 = now();
    scratch.fill(0xA5A5_5A5A); // the kernel must not rely on the scratch's contents
    let r2 = depthwise_conv2d_s8_dsp(&l.p, &l.q, l.input, l.weights, l.bias, y_dsp, scratch);
    let t2 = now();
    let r3 = depthwise_conv2d_s8(&l.p, &l.q, l.input, l.weights, l.bias, y_dispatch);
    if r1.is_err() || r2.is_err() || r3.is_err() {
        return Err(usize::MAX);
    }
    for i in 0..y_ref.len() {
        if y_ref[i] != y_dsp[i] || y_ref[i] != y_dispatch[i] {
            return Err(i);
        }
    }
    Ok((t1 - t0, t2 - t1))
}

fn mismatch(what: &str, p: &DepthwiseParams, at: usize) -> ! {
    let w = p.window;
    defmt::error!(
        "depthwise MISMATCH {=str} c={=usize} h={=usize} w={=usize} k={=usize}x{=usize} s={=usize},{=usize} pad={=usize},{=usize},{=usize},{=usize} at={=usize}",
        what, p.channels, p.h, p.w, w.kh, w.kw, w.sh, w.sw, w.pad_top, w.pad_bottom, w.pad_left, w.pad_right, at
    );
    exit(ExitCode::RunFailed)
}

/// Splits `buf` into the layer's data: input (`c·h·w`), weights at `skew` (`c·kh·kw`), bias,
/// multipliers (4 B each), shifts, and three outputs (`c·oh·ow`). `None` when it does not fit.
#[allow(clippy::type_complexity)]
fn split(
    buf: &mut [u8],
    n_in: usize,
    n_w: usize,
    c: usize,
    n_out: usize,
    skew: usize,
) -> Option<(
    &mut [u8],
    &mut [u8],
    &mut [u8],
    &mut [u8],
    &mut [u8],
    [&mut [i8]; 3],
)> {
    let (x, rest) = buf.split_at_mut_checked(n_in)?;
    let (w, rest) = rest.split_at_mut_checked(skew + n_w)?;
    let (b, rest) = rest.split_at_mut_checked(4 * c)?;
    let (m, rest) = rest.split_at_mut_checked(4 * c)?;
    let (s, rest) = rest.split_at_mut_checked(c)?;
    let (y0, rest) = rest.split_at_mut_checked(n_out)?;
    let (y1, rest) = rest.split_at_mut_checked(n_out)?;
    let (y2, _) = rest.split_at_mut_checked(n_out)?;
    let i8s = |y: &mut [u8]| -> &mut [i8] {
        // SAFETY: u8 and i8 have the same size and alignment; every bit pattern is valid.
        unsafe { core::slice::from_raw_parts_mut(y.as_mut_ptr().cast::<i8>(), y.len()) }
    };
    Some((x, &mut w[skew..], b, m, s, [i8s(y0), i8s(y1), i8s(y2)]))
}

fn as_i8(x: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment; every bit pattern is valid.
    unsafe { core::slice::from_raw_parts(x.as_ptr().cast::<i8>(), x.len()) }
}

/// The random cases, the anchor shapes (timed), then the requantization check; exits on the
/// first mismatch.
pub fn run(counter: &InstructionCounter, buf: &mut [u8]) {
    let mut rng = Rng(0x0D3B_7C01);
    let mut ring = [0u32; RING_WORDS];
    let zps = [-128i8, 127, 0, -1, 1];
    let (mut cases, mut macs) = (0u32, 0u64);
    while cases < CASES {
        let c = 1 + rng.below(9) as usize;
        // Mostly small planes; sometimes rows up to 64 wide, across the strip kernel's limit
        // (padded rows of 55) into the word kernel's range.
        let h = 1 + rng.below(12) as usize;
        let w = if rng.below(8) == 0 {
            1 + rng.below(64) as usize
        } else {
            1 + rng.below(12) as usize
        };
        // Mostly 3×3; sometimes another kernel (the dispatch's fallback).
        let (kh, kw) = if rng.below(8) == 0 {
            (1 + rng.below(4) as usize, 1 + rng.below(4) as usize)
        } else {
            (3, 3)
        };
        // Strides 1–2 (the strip kernel), sometimes 3 (the word kernel).
        let stride = |rng: &mut Rng| {
            if rng.below(10) == 0 {
                3
            } else {
                1 + rng.below(2) as usize
            }
        };
        let (sh, sw) = (stride(&mut rng), stride(&mut rng));
        let pad = |rng: &mut Rng, k: usize| (rng.below(3) as usize).min(k - 1);
        let window = Window {
            kh,
            kw,
            sh,
            sw,
            pad_top: pad(&mut rng, kh),
            pad_bottom: pad(&mut rng, kh),
            pad_left: pad(&mut rng, kw),
            pad_right: pad(&mut rng, kw),
        };
        let Some((oh, ow)) = window.out_dims(h, w) else {
            continue;
        };
        let act = match rng.below(3) {
            0 => Activation::None,
            1 => Activation::Relu,
            _ => Activation::Relu6,
        };
        let p = DepthwiseParams {
            channels: c,
            h,
            w,
            window,
            activation: act,
        };
        let extreme = rng.below(8) == 0;
        let skew = rng.below(4) as usize;
        let (n_in, n_w, n_out) = (c * h * w, c * kh * kw, c * oh * ow);
        let Some((x, wt, b, m, s, ys)) = split(buf, n_in, n_w, c, n_out, skew) else {
            exit(ExitCode::ModelDoesNotFit)
        };
        let (x_big, w_big) = (rng.below(2) == 0, rng.below(2) == 0);
        for v in x.iter_mut() {
            *v = match (extreme, x_big) {
                (true, true) => 127,
                (true, false) => 0x80,
                _ => rng.next() as u8,
            };
        }
        for v in wt.iter_mut() {
            *v = match (extreme, w_big) {
                (true, true) => 0x7F,
                (true, false) => 0x80,
                _ => rng.next() as u8,
            };
        }
        for ((b, m), s) in b
            .chunks_exact_mut(4)
            .zip(m.chunks_exact_mut(4))
            .zip(s.iter_mut())
        {
            let bias = match rng.below(8) {
                0 => i32::MAX - rng.below(1 << 16) as i32,
                1 => i32::MIN + rng.below(1 << 16) as i32,
                2 => rng.next() as i32,
                // Around the strip kernel's fast-path limit |bias| ≤ 2^29.
                3 => (1 << 29) - 1 + rng.below(3) as i32,
                4 => -(1 << 29) + 1 - rng.below(3) as i32,
                _ => rng.below(1 << 16) as i32 - (1 << 15),
            };
            let mult = match rng.below(7) {
                0 => 0,
                1 => 1 << 30,
                2 => i32::MAX,
                // Negative: outside what the loader accepts, but the kernels take it.
                3 => -(1 << 30) - rng.below(1 << 30) as i32,
                _ => (1 << 30) + rng.below(1 << 30) as i32,
            };
            let shift = match rng.below(7) {
                0 => -31,
                1 => 30,
                2 => rng.below(62) as i8 - 31,
                // Around the strip kernel's fast requantization's limit (shift ≥ −20).
                3 => -19 - rng.below(3) as i8,
                _ => -(rng.below(16) as i8),
            };
            b.copy_from_slice(&bias.to_le_bytes());
            m.copy_from_slice(&mult.to_le_bytes());
            *s = shift as u8;
        }
        let l = Case {
            p,
            q: PerChannelQuant {
                input_zp: rng.i8_from(&zps),
                output: QuantParams {
                    scale: [0.02f32, 0.5, 1.0e-3][rng.below(3) as usize],
                    zero_point: rng.i8_from(&zps),
                },
                multiplier: I32Data::from_le_bytes(m),
                shift: I8Data::from_le_bytes(s),
            },
            input: as_i8(x),
            weights: I8Data::from_le_bytes(wt),
            bias: I32Data::from_le_bytes(b),
        };
        // Mostly the strip kernel's ring; sometimes one word short (the word kernel).
        let words = if rng.below(8) == 0 {
            RING_WORDS - 1
        } else {
            RING_WORDS
        };
        if let Err(at) = compare(&l, ys, &mut ring[..words], None) {
            mismatch("random", &l.p, at);
        }
        cases += 1;
        macs += (n_out * kh * kw) as u64;
    }
    defmt::info!(
        "depthwise_check cases={=u32} macs={=u64} mismatches=0",
        cases,
        macs
    );
    anchors(counter, buf);
    requant(counter);
}

/// The anchors' shapes with their data recipe (`../shared/anchors/cmsis-nn/c/harness.c`):
/// xorshift32 seeded per layer, bytes `next >> 24`, input CHW then weights `[c][ky][kx]`, then per
/// channel the bias `(next >> 19) − 4096`, then per channel multiplier
/// `2^30 + (next >> 2) mod 9e8` and shift `−(6 + 2 + c mod 3)`; zero points −128 in, −3 out.
fn anchors(counter: &InstructionCounter, buf: &mut [u8]) {
    let mut ring = [0u32; RING_WORDS];
    let all = SHAPES.iter().map(|s| (s, "depthwise", None));
    let all = all.chain(
        EXTRA_SHAPES
            .iter()
            .map(|(s, cmsis)| (s, "depthwise_extra", Some(*cmsis))),
    );
    for (&(name, c, h, w, s, (before, after), index), tag, cmsis) in all {
        let (c, h, w, s) = core::hint::black_box((c, h, w, s));
        let window = Window {
            pad_top: before,
            pad_left: before,
            pad_bottom: after,
            pad_right: after,
            ..Window::square(3, s, 0)
        };
        let Some((oh, ow)) = window.out_dims(h, w) else {
            continue;
        };
        let mut rng = Rng(0x1234_5678u32.wrapping_add(0x9E37_79B9u32.wrapping_mul(index + 1)));
        let (n_in, n_w, n_out) = (c * h * w, c * 9, c * oh * ow);
        let Some((x, wt, b, m, sh, ys)) = split(buf, n_in, n_w, c, n_out, 0) else {
            defmt::warn!(
                "depthwise name={=str} does not fit this board's arena",
                name
            );
            continue;
        };
        for v in x.iter_mut().chain(wt.iter_mut()) {
            *v = (rng.next() >> 24) as u8;
        }
        for b in b.chunks_exact_mut(4) {
            b.copy_from_slice(&((rng.next() >> 19) as i32 - 4096).to_le_bytes());
        }
        for (o, (m, sh)) in m.chunks_exact_mut(4).zip(sh.iter_mut()).enumerate() {
            let mult = (1 << 30) + ((rng.next() >> 2) % 900_000_000) as i32;
            m.copy_from_slice(&mult.to_le_bytes());
            *sh = (-(8 + (o % 3) as i32)) as i8 as u8;
        }
        let l = Case {
            p: DepthwiseParams {
                channels: c,
                h,
                w,
                window,
                activation: Activation::None,
            },
            q: PerChannelQuant {
                input_zp: -128,
                output: QuantParams {
                    scale: 0.02,
                    zero_point: -3,
                },
                multiplier: I32Data::from_le_bytes(m),
                shift: I8Data::from_le_bytes(sh),
            },
            input: as_i8(x),
            weights: I8Data::from_le_bytes(wt),
            bias: I32Data::from_le_bytes(b),
        };
        // Twice, keeping the smaller count of each.
        let [y0, y1, y2] = ys;
        let mut best = (u64::MAX, u64::MAX);
        for _ in 0..2 {
            match compare(&l, [&mut *y0, &mut *y1, &mut *y2], &mut ring, Some(counter)) {
                Ok((r, d)) => best = (best.0.min(r), best.1.min(d)),
                Err(at) => mismatch(name, &l.p, at),
            }
        }
        // FNV-1a over the output in CHW order, as the anchors' harness prints it.
        let fnv = y1.iter().fold(2_166_136_261u32, |h, &v| {
            (h ^ u32::from(v as u8)).wrapping_mul(16_777_619)
        });
        match cmsis {
            None => defmt::info!(
                "{=str} name={=str} macs={=usize} reference_instructions={=u64} dsp_instructions={=u64} checksum={=u32:08x}",
                tag,
                name,
                n_out * 9,
                best.0,
                best.1,
                fnv
            ),
            Some(cmsis) => defmt::info!(
                "{=str} name={=str} macs={=usize} reference_instructions={=u64} dsp_instructions={=u64} cmsis_instructions={=u64} checksum={=u32:08x}",
                tag,
                name,
                n_out * 9,
                best.0,
                best.1,
                cmsis,
                fnv
            ),
        }
    }
}

/// `Requantizer` / `OutputRange` against `multiply_by_quantized_multiplier` / `requantize` on
/// every pair of edge values × shifts −33…33 and on random triples, then the cost per call.
fn requant(counter: &InstructionCounter) {
    let mut edges = [0i32; 11 + 31 * 6];
    let base = [
        0,
        1,
        -1,
        2,
        -2,
        i32::MAX,
        i32::MIN,
        i32::MAX - 1,
        i32::MIN + 1,
        3,
        -3,
    ];
    edges[..11].copy_from_slice(&base);
    for e in 0..31 {
        let p = 1i32 << e;
        let at = 11 + 6 * e as usize;
        edges[at..at + 6].copy_from_slice(&[
            p.wrapping_sub(1),
            p,
            p.wrapping_add(1),
            (-p).wrapping_sub(1),
            -p,
            (-p).wrapping_add(1),
        ]);
    }
    let mut n = 0u32;
    let check = |x: i32, m: i32, s: i32, zp: i32, lo: i32, hi: i32| {
        let r = Requantizer::new(m, s);
        let ok = r.apply(x) == multiply_by_quantized_multiplier(x, m, s)
            && requantize_fast(x, &r, &OutputRange::new(zp, lo, hi))
                == requantize(x, m, s, zp, lo, hi);
        if !ok {
            defmt::error!(
                "requant MISMATCH x={=i32} m={=i32} shift={=i32} zp={=i32} lo={=i32} hi={=i32}",
                x,
                m,
                s,
                zp,
                lo,
                hi
            );
            exit(ExitCode::RunFailed);
        }
    };
    for s in -33..=33 {
        for &m in edges.iter().step_by(3) {
            for &x in &edges {
                check(x, m, s, -3, -128, 127);
                n += 1;
            }
        }
    }
    let mut rng = Rng(0x5EED_0001);
    for i in 0..REQUANT_CASES {
        let x = match i % 3 {
            0 => rng.next() as i32,
            1 => (rng.next() as i32) >> rng.below(32),
            _ => edges[rng.below(edges.len() as u32) as usize],
        };
        let m = match rng.below(4) {
            0 => rng.next() as i32,
            1 => (1 << 30) + (rng.next() >> 2) as i32,
            2 => edges[rng.below(edges.len() as u32) as usize],
            _ => 0,
        };
        let s = rng.below(67) as i32 - 33;
        let zp = i32::from(rng.i8());
        let (lo, hi) = match rng.below(3) {
            0 => (-128, 127),
            1 => (i32::from(rng.i8()), 127),
            _ => (i32::from(rng.i8()), i32::from(rng.i8())),
        };
        check(x, m, s, zp, lo, hi);
        n += 1;
    }
    // Cost per call, on the anchors' recipe (multipliers ≥ 2^30, shifts −8…−13).
    let mut acc = [0i32; REQUANT_CALLS];
    let mut ms = [0i32; REQUANT_CALLS];
    let mut ss = [0i8; REQUANT_CALLS];
    for ((a, m), s) in acc.iter_mut().zip(ms.iter_mut()).zip(ss.iter_mut()) {
        *a = (rng.next() as i32) >> 12;
        *m = (1 << 30) + (rng.next() % 900_000_000) as i32;
        *s = -8 - rng.below(6) as i8;
    }
    let mut out = [0i8; REQUANT_CALLS];
    let (acc, ms, ss) = core::hint::black_box((&acc, &ms, &ss));
    let range = core::hint::black_box(OutputRange::new(-3, -128, 127));
    let t0 = counter.count();
    for (((o, &a), &m), &s) in out.iter_mut().zip(acc).zip(ms).zip(ss) {
        *o = requantize(a, m, i32::from(s), -3, -128, 127);
    }
    let t1 = counter.count();
    let want = core::hint::black_box(out);
    for (((o, &a), &m), &s) in out.iter_mut().zip(acc).zip(ms).zip(ss) {
        *o = requantize_fast(a, &Requantizer::new(m, i32::from(s)), &range);
    }
    let t2 = counter.count();
    let fast = core::hint::black_box(out);
    let r = core::hint::black_box(Requantizer::new(ms[0], i32::from(ss[0])));
    for (o, &a) in out.iter_mut().zip(acc) {
        *o = requantize_fast(a, &r, &range);
    }
    let t3 = counter.count();
    if want != fast {
        defmt::error!("requant MISMATCH in the timed loop");
        exit(ExitCode::RunFailed);
    }
    defmt::info!(
        "requant cases={=u32} mismatches=0 calls={=usize} reference_instructions={=u64} fast_instructions={=u64} fast_per_channel_instructions={=u64}",
        n,
        REQUANT_CALLS,
        t1 - t0,
        t2 - t1,
        t3 - t2
    );
}
