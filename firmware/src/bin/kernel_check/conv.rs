//! int8 Conv2d: the DSP kernel, the reference loop and the engine's dispatch on random layers,
//! then timed on the anchors' conv shapes (with the anchors' data recipe, so the output
//! checksums can be compared with the CMSIS-NN harness's).

use crate::Rng;
use denoiserep_core::kernels::params::{ConvParams, PerChannelQuant, Window};
use denoiserep_core::kernels::{
    conv2d_s8, conv2d_s8_dsp, conv2d_s8_reference, conv2d_s8_scratch_words, conv2d_s8_with_scratch,
};
use denoiserep_core::{Activation, I32Data, I8Data, QuantParams};
use denoiserep_firmware::{exit, ExitCode, InstructionCounter};

/// Random cases.
const CASES: u32 = 3000;
/// Bytes for a layer's weights (+3 of skew), bias, multipliers and shifts.
const DATA_BYTES: usize = 48 * 1024;
/// Largest input and output of a layer (bytes).
const MAX_ACT: usize = 25 * 1024;
/// Largest patch `ci·kh·kw` (the scratch, in words).
const MAX_K: usize = 64 * 9;

/// An anchor conv shape: short name, the C harness's layer index (its data seed), then
/// `ci, co, h, w`, the window.
struct Anchor {
    name: &'static str,
    seed_index: u32,
    ci: usize,
    co: usize,
    h: usize,
    w: usize,
    win: Window,
}

const fn anchor(
    name: &'static str,
    seed_index: u32,
    [ci, co, h, w]: [usize; 4],
    win: Window,
) -> Anchor {
    Anchor {
        name,
        seed_index,
        ci,
        co,
        h,
        w,
        win,
    }
}

/// The anchors' conv shapes (`../shared/anchors/cmsis-nn/c/harness.c`, layers 5–14 and 19).
const ANCHORS: [Anchor; 11] = [
    anchor(
        "3x3s1_1to32_28x28",
        5,
        [1, 32, 28, 28],
        Window::square(3, 1, 1),
    ),
    anchor(
        "3x3s1_32to64_14x14",
        6,
        [32, 64, 14, 14],
        Window::square(3, 1, 1),
    ),
    anchor(
        "3x3s1_3to16_32x32",
        7,
        [3, 16, 32, 32],
        Window::square(3, 1, 1),
    ),
    anchor(
        "3x3s1_16to16_32x32",
        8,
        [16, 16, 32, 32],
        Window::square(3, 1, 1),
    ),
    anchor(
        "3x3s1_32to32_16x16",
        9,
        [32, 32, 16, 16],
        Window::square(3, 1, 1),
    ),
    anchor(
        "3x3s1_64to64_8x8",
        10,
        [64, 64, 8, 8],
        Window::square(3, 1, 1),
    ),
    anchor(
        "3x3s2_16to32_32x32",
        11,
        [16, 32, 32, 32],
        Window::square(3, 2, 1),
    ),
    anchor(
        "3x3s2_32to64_16x16",
        12,
        [32, 64, 16, 16],
        Window::square(3, 2, 1),
    ),
    anchor(
        "1x1s1_64to64_25x5",
        13,
        [64, 64, 25, 5],
        Window::square(1, 1, 0),
    ),
    anchor(
        "1x1s2_16to32_32x32",
        14,
        [16, 32, 32, 32],
        Window::square(1, 2, 0),
    ),
    anchor(
        "10x4s2_1to64_49x10",
        19,
        [1, 64, 49, 10],
        Window {
            kh: 10,
            kw: 4,
            sh: 2,
            sw: 2,
            pad_top: 4,
            pad_bottom: 5,
            pad_left: 1,
            pad_right: 1,
        },
    ),
];

/// A layer's constant data (views into the data buffer).
struct Data<'a> {
    weights: I8Data<'a>,
    bias: I32Data<'a>,
    multiplier: I32Data<'a>,
    shift: I8Data<'a>,
}

/// `u8` bytes as `i8` values (same size and alignment).
fn as_i8(b: &mut [u8]) -> &mut [i8] {
    // SAFETY: u8 and i8 have the same size, alignment and validity (every bit pattern); the
    // returned slice reborrows `b` exclusively for its lifetime.
    unsafe { core::slice::from_raw_parts_mut(b.as_mut_ptr().cast::<i8>(), b.len()) }
}

/// The three kernels (reference, DSP, dispatch with scratch) on one layer, then `conv2d_s8`
/// without scratch; `Err(index)` of the first differing output (`usize::MAX` when a kernel
/// returned an error). Returns the reference's and the DSP kernel's instruction counts.
#[allow(clippy::too_many_arguments)]
fn compare(
    p: &ConvParams,
    q: &PerChannelQuant<'_>,
    d: &Data<'_>,
    input: &[i8],
    ys: &mut [u8],
    n_y: usize,
    scratch: &mut [u32],
    counter: Option<&InstructionCounter>,
) -> Result<(u64, u64), usize> {
    let (y_ref, rest) = ys.split_at_mut(MAX_ACT);
    let (y_dsp, y_dispatch) = rest.split_at_mut(MAX_ACT);
    let (y_ref, y_dsp, y_dispatch) = (
        as_i8(&mut y_ref[..n_y]),
        as_i8(&mut y_dsp[..n_y]),
        as_i8(&mut y_dispatch[..n_y]),
    );
    y_ref.fill(0x55);
    y_dsp.fill(-0x56);
    y_dispatch.fill(0x33);
    let now = || counter.map_or(0, InstructionCounter::count);
    let t0 = now();
    let r1 = conv2d_s8_reference(p, q, input, d.weights, d.bias, y_ref);
    let t1 = now();
    let r2 = conv2d_s8_dsp(p, q, input, d.weights, d.bias, y_dsp, scratch);
    let t2 = now();
    let r3 = conv2d_s8_with_scratch(p, q, input, d.weights, d.bias, y_dispatch, scratch);
    if r1.is_err() || r2.is_err() || r3.is_err() {
        return Err(usize::MAX);
    }
    for i in 0..n_y {
        if y_ref[i] != y_dsp[i] || y_ref[i] != y_dispatch[i] {
            return Err(i);
        }
    }
    if counter.is_none() {
        // Without scratch the dispatch runs the reference: same bits.
        y_dispatch.fill(0x33);
        if conv2d_s8(p, q, input, d.weights, d.bias, y_dispatch).is_err() {
            return Err(usize::MAX);
        }
        if let Some(i) = (0..n_y).find(|&i| y_ref[i] != y_dispatch[i]) {
            return Err(i);
        }
    }
    Ok((t1 - t0, t2 - t1))
}

/// Random constant data for `co` channels of `k` weights (at `skew`) into `buf`, or `None` when
/// it does not fit. `extreme`: weights all −128 or all 127.
fn fill<'a>(
    rng: &mut Rng,
    buf: &'a mut [u8],
    co: usize,
    k: usize,
    skew: usize,
    extreme: bool,
) -> Option<Data<'a>> {
    let (w, rest) = buf.split_at_mut_checked(skew + co * k)?;
    let (b, rest) = rest.split_at_mut_checked(4 * co)?;
    let (m, rest) = rest.split_at_mut_checked(4 * co)?;
    let (s, _) = rest.split_at_mut_checked(co)?;
    let w = &mut w[skew..];
    let big = rng.below(2) == 0;
    for v in w.iter_mut() {
        *v = match (extreme, big) {
            (true, true) => 0x80,
            (true, false) => 0x7F,
            _ => rng.next() as u8,
        };
    }
    for ((b, m), s) in b
        .chunks_exact_mut(4)
        .zip(m.chunks_exact_mut(4))
        .zip(s.iter_mut())
    {
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

/// The anchors' data for layer `a` (xorshift32 seeded with `0x12345678 + 0x9E3779B9·(index + 1)`,
/// values from the top byte: input CHW, weights OIHW, then per channel a bias in
/// [−4096, 4095] and a multiplier in [2^30, 2^30 + 9e8]; shift −(6 + ⌊(⌊log2 K⌋ + 1) / 2⌋ + o mod
/// 3)), as `c/harness.c` draws them.
fn anchor_data<'a>(a: &Anchor, buf: &'a mut [u8], input: &mut [i8]) -> Option<Data<'a>> {
    let mut rng = Rng(0x1234_5678u32.wrapping_add(0x9E37_79B9u32.wrapping_mul(a.seed_index + 1)));
    let k = a.ci * a.win.kh * a.win.kw;
    for v in input.iter_mut() {
        *v = (rng.next() >> 24) as u8 as i8;
    }
    let (w, rest) = buf.split_at_mut_checked(a.co * k)?;
    let (b, rest) = rest.split_at_mut_checked(4 * a.co)?;
    let (m, rest) = rest.split_at_mut_checked(4 * a.co)?;
    let (s, _) = rest.split_at_mut_checked(a.co)?;
    for v in w.iter_mut() {
        *v = (rng.next() >> 24) as u8;
    }
    for b in b.chunks_exact_mut(4) {
        b.copy_from_slice(&(((rng.next() >> 19) as i32) - 4096).to_le_bytes());
    }
    let ilog2 = (usize::BITS - 1 - k.leading_zeros()) as i32;
    let lg = (ilog2 + 1) / 2;
    for (o, (m, s)) in m.chunks_exact_mut(4).zip(s.iter_mut()).enumerate() {
        let mult = 0x4000_0000 + ((rng.next() >> 2) % 900_000_000) as i32;
        m.copy_from_slice(&mult.to_le_bytes());
        *s = (-(6 + lg + (o % 3) as i32)) as i8 as u8;
    }
    Some(Data {
        weights: I8Data::from_le_bytes(w),
        bias: I32Data::from_le_bytes(b),
        multiplier: I32Data::from_le_bytes(m),
        shift: I8Data::from_le_bytes(s),
    })
}

fn mismatch(what: &str, p: &ConvParams, zp_in: i8, at: usize) -> ! {
    let win = p.window;
    defmt::error!(
        "kernel_check MISMATCH conv {=str} ci={=usize} co={=usize} h={=usize} w={=usize} k={=usize}x{=usize} s={=usize},{=usize} pad={=usize},{=usize},{=usize},{=usize} zp_in={=i8} at={=usize}",
        what,
        p.in_channels,
        p.out_channels,
        p.h,
        p.w,
        win.kh,
        win.kw,
        win.sh,
        win.sw,
        win.pad_top,
        win.pad_bottom,
        win.pad_left,
        win.pad_right,
        zp_in,
        at
    );
    exit(ExitCode::RunFailed)
}

/// A random window: kernel 1–5 per side, stride 1–3, each pad below its kernel side
/// (asymmetric in general).
fn window(rng: &mut Rng) -> Window {
    let kh = 1 + rng.below(5) as usize;
    let kw = 1 + rng.below(5) as usize;
    let pad = |rng: &mut Rng, k: usize| rng.below(k as u32) as usize;
    Window {
        kh,
        kw,
        sh: 1 + rng.below(3) as usize,
        sw: 1 + rng.below(3) as usize,
        pad_top: pad(rng, kh),
        pad_bottom: pad(rng, kh),
        pad_left: pad(rng, kw),
        pad_right: pad(rng, kw),
    }
}

/// The random cases, then the anchor shapes (timed); exits on the first mismatch.
pub fn run(counter: &InstructionCounter, buf: &mut [u8]) {
    let Some((data_buf, rest)) = buf.split_at_mut_checked(DATA_BYTES) else {
        exit(ExitCode::ModelDoesNotFit)
    };
    let Some((input_buf, rest)) = rest.split_at_mut_checked(MAX_ACT) else {
        exit(ExitCode::ModelDoesNotFit)
    };
    let Some((ys, _)) = rest.split_at_mut_checked(3 * MAX_ACT) else {
        exit(ExitCode::ModelDoesNotFit)
    };
    let input_buf = as_i8(input_buf);
    let mut scratch = [0u32; MAX_K];
    let mut rng = Rng(0x0C0F_FEE5);
    let zps = [-128i8, 127, 0, -1, 1];
    let (mut cases, mut macs, mut short_scratch, mut pointwise) = (0u32, 0u64, 0u32, 0u32);
    for _ in 0..CASES {
        // One case in 3 is 1×1 (the pointwise kernel, `conv1x1_s8_dsp.rs`) with up to 48 input
        // channels: every `K mod 4`, 1–36 blocks of 4 pixels and a partial last block, strides
        // 1–3 (the stride-1 gather and the strided one).
        let one_by_one = rng.below(3) == 0;
        let ci = 1 + rng.below(if one_by_one { 48 } else { 9 }) as usize;
        let co = 1 + rng.below(9) as usize;
        let h = 1 + rng.below(12) as usize;
        let w = 1 + rng.below(12) as usize;
        // A window that fits the padded input (kernel 1–5 per side, even past the input).
        let (win, (oh, ow)) = loop {
            let win = if one_by_one {
                Window {
                    kh: 1,
                    kw: 1,
                    sh: 1 + rng.below(3) as usize,
                    sw: 1 + rng.below(3) as usize,
                    pad_top: 0,
                    pad_bottom: 0,
                    pad_left: 0,
                    pad_right: 0,
                }
            } else {
                window(&mut rng)
            };
            if let Some(dims) = win.out_dims(h, w) {
                break (win, dims);
            }
        };
        pointwise += u32::from(win.kh == 1 && win.kw == 1);
        let act = match rng.below(3) {
            0 => Activation::None,
            1 => Activation::Relu,
            _ => Activation::Relu6,
        };
        let p = ConvParams {
            in_channels: ci,
            h,
            w,
            out_channels: co,
            window: win,
            activation: act,
        };
        let zp_in = rng.i8_from(&zps);
        let output = QuantParams {
            scale: [0.02f32, 0.5, 1.0e-3][rng.below(3) as usize],
            zero_point: rng.i8_from(&zps),
        };
        let k = ci * win.kh * win.kw;
        let extreme = rng.below(8) == 0;
        let skew = rng.below(4) as usize;
        let x = &mut input_buf[..ci * h * w];
        let x_big = rng.below(2) == 0;
        for v in x.iter_mut() {
            *v = match (extreme, x_big) {
                (true, true) => 127,
                (true, false) => -128,
                _ => rng.i8(),
            };
        }
        let Some(d) = fill(&mut rng, data_buf, co, k, skew, extreme) else {
            exit(ExitCode::ModelDoesNotFit)
        };
        let q = PerChannelQuant {
            input_zp: zp_in,
            output,
            multiplier: d.multiplier,
            shift: d.shift,
        };
        // One case in 16 with a scratch one word short: both entry points run the reference
        // (a 1×1 layer the general DSP kernel, whose scratch is half the pointwise one's).
        let words = if rng.below(16) == 0 {
            short_scratch += 1;
            conv2d_s8_scratch_words(&p) - 1
        } else {
            conv2d_s8_scratch_words(&p)
        };
        let n_y = co * oh * ow;
        if let Err(at) = compare(&p, &q, &d, x, ys, n_y, &mut scratch[..words], None) {
            mismatch("random", &p, zp_in, at);
        }
        cases += 1;
        macs += (n_y * k) as u64;
    }
    defmt::info!(
        "kernel_check conv cases={=u32} macs={=u64} short_scratch={=u32} pointwise={=u32} mismatches=0",
        cases,
        macs,
        short_scratch,
        pointwise
    );
    for a in &ANCHORS {
        let (oh, ow) = a.win.out_dims(a.h, a.w).unwrap_or((0, 0));
        let p = ConvParams {
            in_channels: a.ci,
            h: a.h,
            w: a.w,
            out_channels: a.co,
            window: a.win,
            activation: Activation::None,
        };
        // Opaque to the optimizer: no specialisation on the shape (as the anchors' harness).
        let p = core::hint::black_box(p);
        let n_x = a.ci * a.h * a.w;
        let Some(d) = anchor_data(a, data_buf, &mut input_buf[..n_x]) else {
            defmt::warn!("conv name={=str} does not fit this board's arena", a.name);
            continue;
        };
        let q = PerChannelQuant {
            input_zp: -128,
            output: QuantParams {
                scale: 0.02,
                zero_point: -3,
            },
            multiplier: d.multiplier,
            shift: d.shift,
        };
        let n_y = a.co * oh * ow;
        let words = conv2d_s8_scratch_words(&p);
        let mut best = (u64::MAX, u64::MAX);
        for _ in 0..2 {
            let x = &input_buf[..n_x];
            match compare(&p, &q, &d, x, ys, n_y, &mut scratch[..words], Some(counter)) {
                Ok((r, s)) => best = (best.0.min(r), best.1.min(s)),
                Err(at) => mismatch(a.name, &p, -128, at),
            }
        }
        // FNV-1a over the output in CHW order, as the C harness prints it.
        let mut fnv = 2_166_136_261u32;
        for &v in &ys[..n_y] {
            fnv = (fnv ^ u32::from(v)).wrapping_mul(16_777_619);
        }
        defmt::info!(
            "conv name={=str} macs={=usize} reference_instructions={=u64} dsp_instructions={=u64} checksum={=u32:08x}",
            a.name,
            n_y * a.ci * a.win.kh * a.win.kw,
            best.0,
            best.1,
            fnv
        );
    }
}
