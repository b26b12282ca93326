//! f32 Linear, Conv2d and DepthwiseConv2d: the Cortex-M4F fast paths (`kernels/f32_m4.rs`), the
//! reference loops and the engine's dispatch on random layers, bit for bit (a NaN only has to
//! match a NaN), then timed on a few shapes. Conv2d runs its fast path with the arena-style
//! scratch of `conv2d_f32_scratch_words` (1 in 8 cases one float short: the stack patch or the
//! reference loop), and the dispatch alternately with that scratch and without any.

use crate::Rng;
use denoiserep_core::kernels::params::{ConvParams, DepthwiseParams, LinearParams, Window};
use denoiserep_core::kernels::{
    conv2d_f32, conv2d_f32_m4, conv2d_f32_scratch_words, conv2d_f32_with_scratch,
    depthwise_conv2d_f32, depthwise_conv2d_f32_m4, linear_f32, linear_f32_m4, linear_f32_reference,
};
use denoiserep_core::{Activation, F32Data};
use denoiserep_firmware::{exit, ExitCode, InstructionCounter};

/// Random cases per kernel.
const CASES: u32 = 1500;
/// Largest input of a case (stack buffer), floats.
const MAX_INPUT: usize = 20_000;
/// Largest output of a case (stack buffers), floats.
const MAX_OUTPUT: usize = 20_000;
/// Largest conv scratch of a case (stack buffer), floats (`conv2d_f32_scratch_words`).
const MAX_SCRATCH: usize = 20_000;

/// The kernel under test, with its shape.
#[derive(Clone, Copy)]
enum Case {
    Linear(LinearParams),
    Conv(ConvParams),
    Depthwise(DepthwiseParams),
}

impl Case {
    /// `(input, weights, bias, output)` element counts.
    fn sizes(&self) -> Option<(usize, usize, usize, usize)> {
        match *self {
            Case::Linear(p) => Some((
                p.rows * p.in_features,
                p.in_features * p.out_features,
                p.out_features,
                p.rows * p.out_features,
            )),
            Case::Conv(p) => {
                let (oh, ow) = p.window.out_dims(p.h, p.w)?;
                let k = p.in_channels * p.window.kh * p.window.kw;
                Some((
                    p.in_channels * p.h * p.w,
                    p.out_channels * k,
                    p.out_channels,
                    p.out_channels * oh * ow,
                ))
            }
            Case::Depthwise(p) => {
                let (oh, ow) = p.window.out_dims(p.h, p.w)?;
                Some((
                    p.channels * p.h * p.w,
                    p.channels * p.window.kh * p.window.kw,
                    p.channels,
                    p.channels * oh * ow,
                ))
            }
        }
    }

    /// MACs, padded taps included.
    fn macs(&self) -> usize {
        match *self {
            Case::Linear(p) => p.rows * p.in_features * p.out_features,
            Case::Conv(p) => {
                let (_, _, _, n_y) = self.sizes().unwrap_or_default();
                n_y * p.in_channels * p.window.kh * p.window.kw
            }
            Case::Depthwise(p) => {
                let (_, _, _, n_y) = self.sizes().unwrap_or_default();
                n_y * p.window.kh * p.window.kw
            }
        }
    }

    /// Runs the reference loop (`which = 0`), the fast path (1) or the engine's dispatch (2);
    /// a conv's fast path gets `scratch`, its dispatch `scratch` when `with_scratch`, else
    /// none.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        which: u8,
        x: &[f32],
        w: F32Data<'_>,
        b: F32Data<'_>,
        y: &mut [f32],
        scratch: &mut [f32],
        with_scratch: bool,
    ) -> bool {
        let r = match (*self, which) {
            (Case::Linear(p), 0) => linear_f32_reference(&p, x, w, b, y),
            (Case::Linear(p), 1) => linear_f32_m4(&p, x, w, b, y),
            (Case::Linear(p), _) => linear_f32(&p, x, w, b, y),
            (Case::Conv(p), 0) => conv2d_f32_m4(&p, x, w, b, y, false, &mut []),
            (Case::Conv(p), 1) => conv2d_f32_m4(&p, x, w, b, y, true, scratch),
            (Case::Conv(p), _) if with_scratch => conv2d_f32_with_scratch(&p, x, w, b, y, scratch),
            (Case::Conv(p), _) => conv2d_f32(&p, x, w, b, y),
            (Case::Depthwise(p), 0) => depthwise_conv2d_f32_m4(&p, x, w, b, y, false),
            (Case::Depthwise(p), 1) => depthwise_conv2d_f32_m4(&p, x, w, b, y, true),
            (Case::Depthwise(p), _) => depthwise_conv2d_f32(&p, x, w, b, y),
        };
        r.is_ok()
    }
}

/// How a case's values are drawn.
#[derive(Clone, Copy, PartialEq)]
enum Values {
    /// Uniform in ±2.
    Plain,
    /// Plain, with ±0.0, subnormals, ±∞, NaN, 1e30 and 1e-30 mixed in (1 in 6).
    Special,
    /// Inputs ±0.0 only, biases ±0.0 (the sign of a zero result).
    Zeros,
    /// Inputs and biases −0.0, weights positive: every product is −0.0 (a sum that starts at
    /// its first product instead of `+0.0` is −0.0; the reference's is +0.0).
    NegZeros,
}

fn value(rng: &mut Rng, v: Values, finite: bool) -> f32 {
    let plain = (rng.next() >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0;
    match v {
        Values::Plain => plain,
        Values::NegZeros => -0.0,
        Values::Zeros => {
            if rng.below(2) == 0 {
                0.0
            } else {
                -0.0
            }
        }
        Values::Special => match rng.below(if finite { 12 } else { 16 }) {
            0 => 0.0,
            1 => -0.0,
            2 => f32::from_bits(rng.next() & 0x807F_FFFF), // subnormal (or ±0)
            3 => 1.0e30,
            4 => -1.0e-30,
            12 => f32::INFINITY,
            13 => f32::NEG_INFINITY,
            14 => f32::NAN,
            15 => f32::from_bits(0x7FC0_0000 | rng.next()), // NaN with a payload
            _ => plain,
        },
    }
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn name(c: &Case) -> &'static str {
    match c {
        Case::Linear(_) => "linear",
        Case::Conv(_) => "conv",
        Case::Depthwise(_) => "depthwise",
    }
}

fn mismatch(c: &Case, what: &str, at: usize, skew: usize) -> ! {
    let (a, b, d) = match *c {
        Case::Linear(p) => (p.rows, p.in_features, p.out_features),
        Case::Conv(p) => (p.in_channels, p.h * 1000 + p.w, p.out_channels),
        Case::Depthwise(p) => (p.channels, p.h * 1000 + p.w, 0),
    };
    let win = match *c {
        Case::Linear(_) => Window::square(1, 1, 0),
        Case::Conv(p) => p.window,
        Case::Depthwise(p) => p.window,
    };
    defmt::error!(
        "kernel_check MISMATCH f32 {=str} {=str} a={=usize} b={=usize} c={=usize} k={=usize}x{=usize} s={=usize}x{=usize} pad={=usize},{=usize},{=usize},{=usize} skew={=usize} at={=usize}",
        name(c),
        what,
        a,
        b,
        d,
        win.kh,
        win.kw,
        win.sh,
        win.sw,
        win.pad_top,
        win.pad_bottom,
        win.pad_left,
        win.pad_right,
        skew,
        at
    );
    exit(ExitCode::RunFailed)
}

/// Buffers of one case.
struct Bufs {
    x: [f32; MAX_INPUT],
    y: [[f32; MAX_OUTPUT]; 3],
    scratch: [f32; MAX_SCRATCH],
}

/// Fills the case's data (weights at byte `skew` of `buf`, then the bias), runs the three paths
/// and compares them; returns the reference's and the fast path's instruction counts. A conv's
/// scratch is `conv2d_f32_scratch_words` floats (one short with `short`), filled with garbage
/// (a signalling NaN) before each path.
#[allow(clippy::too_many_arguments)]
fn check(
    rng: &mut Rng,
    c: &Case,
    v: Values,
    finite_w: bool,
    skew: usize,
    (short, with_scratch): (bool, bool),
    buf: &mut [u8],
    bufs: &mut Bufs,
    counter: Option<&InstructionCounter>,
) -> (u64, u64) {
    let Some((n_x, n_w, n_b, n_y)) = c.sizes() else {
        mismatch(c, "shape", 0, skew)
    };
    let n_s = match c {
        Case::Conv(p) => conv2d_f32_scratch_words(p).saturating_sub(usize::from(short)),
        _ => 0,
    };
    if n_x > MAX_INPUT
        || n_y > MAX_OUTPUT
        || n_s > MAX_SCRATCH
        || skew + 4 * (n_w + n_b) > buf.len()
    {
        exit(ExitCode::ModelDoesNotFit)
    }
    let (wb, rest) = buf[skew..].split_at_mut(4 * n_w);
    let bb = &mut rest[..4 * n_b];
    let wv = match v {
        Values::Zeros | Values::NegZeros => Values::Plain,
        _ => v,
    };
    for ch in wb.chunks_exact_mut(4) {
        let w = value(rng, wv, finite_w);
        let w = if v == Values::NegZeros { w.abs() } else { w };
        ch.copy_from_slice(&w.to_le_bytes());
    }
    for ch in bb.chunks_exact_mut(4) {
        ch.copy_from_slice(&value(rng, v, finite_w).to_le_bytes());
    }
    let x = &mut bufs.x[..n_x];
    for e in x.iter_mut() {
        *e = value(rng, v, false);
    }
    let (w, b) = (F32Data::from_le_bytes(wb), F32Data::from_le_bytes(bb));
    let now = || counter.map_or(0, InstructionCounter::count);
    let mut spent = [0u64; 3];
    for (which, (y, t)) in bufs.y.iter_mut().zip(spent.iter_mut()).enumerate() {
        let y = &mut y[..n_y];
        y.fill(f32::from_bits(0x7F80_0001 + which as u32)); // a signalling NaN: never an output
        let scratch = &mut bufs.scratch[..n_s];
        scratch.fill(f32::from_bits(0x7F80_0001));
        let t0 = now();
        if !c.run(which as u8, x, w, b, y, scratch, with_scratch) {
            mismatch(c, "error", which, skew);
        }
        *t = now() - t0;
    }
    let [r, f, d] = &bufs.y;
    for i in 0..n_y {
        if !same(r[i], f[i]) {
            mismatch(c, "fast", i, skew);
        }
        if !same(f[i], d[i]) {
            mismatch(c, "dispatch", i, skew);
        }
    }
    (spent[0], spent[1])
}

fn act(rng: &mut Rng) -> Activation {
    match rng.below(3) {
        0 => Activation::None,
        1 => Activation::Relu,
        _ => Activation::Relu6,
    }
}

/// A random window: kernel 1–4 per side, stride 1–3, each pad below the kernel.
fn window(rng: &mut Rng) -> Window {
    let (kh, kw) = (1 + rng.below(4) as usize, 1 + rng.below(4) as usize);
    Window {
        kh,
        kw,
        sh: 1 + rng.below(3) as usize,
        sw: 1 + rng.below(3) as usize,
        pad_top: rng.below(kh as u32) as usize,
        pad_bottom: rng.below(kh as u32) as usize,
        pad_left: rng.below(kw as u32) as usize,
        pad_right: rng.below(kw as u32) as usize,
    }
}

/// A conv with a filter longer than the stack patch (the arena scratch's reason): 8–64 input
/// channels, 3×3 (half of them), 1×1 or any 1–5 per side, strides 1–3, any padding below the
/// kernel, 1–9 output channels, planes up to 9×9 (odd and even pixel counts).
fn long_conv(rng: &mut Rng) -> Case {
    let mut win = window(rng);
    match rng.below(4) {
        0 | 1 => (win.kh, win.kw) = (3, 3),
        2 => (win.kh, win.kw) = (1, 1),
        _ => (win.kh, win.kw) = (1 + rng.below(5) as usize, 1 + rng.below(5) as usize),
    }
    win.pad_top %= win.kh;
    win.pad_bottom %= win.kh;
    win.pad_left %= win.kw;
    win.pad_right %= win.kw;
    Case::Conv(ConvParams {
        in_channels: 8 + rng.below(57) as usize,
        h: win.kh.max(1 + rng.below(9) as usize),
        w: win.kw.max(1 + rng.below(9) as usize),
        out_channels: 1 + rng.below(9) as usize,
        window: win,
        activation: act(rng),
    })
}

/// A 3×3 window with strides 1–3 and paddings 0–2 (the 3×3 row kernel's plan: a left padding
/// of 0 or 1, a right padding the last pixel may or may not reach; the others fall back).
fn window3x3(rng: &mut Rng) -> Window {
    Window {
        kh: 3,
        kw: 3,
        sh: 1 + rng.below(3) as usize,
        sw: 1 + rng.below(3) as usize,
        pad_top: rng.below(3) as usize,
        pad_bottom: rng.below(3) as usize,
        pad_left: rng.below(3) as usize,
        pad_right: rng.below(3) as usize,
    }
}

/// Planes for [`window3x3`]: 1–70 per side (short planes: most rows are border rows, more of
/// them than the border table holds; wide ones: past the 64-float zero row), at least the
/// window with its padding.
fn plane3x3(rng: &mut Rng, win: &Window) -> (usize, usize) {
    let side = |rng: &mut Rng| {
        if rng.below(2) == 0 {
            1 + rng.below(8) as usize
        } else {
            1 + rng.below(70) as usize
        }
    };
    let h = side(rng).max(3usize.saturating_sub(win.pad_top + win.pad_bottom));
    let w = side(rng).max(3usize.saturating_sub(win.pad_left + win.pad_right));
    (h, w)
}

/// A 1×1 or 3×3 conv with 8–64 input channels (a multiple of 8: `K` a multiple of 8) and 1–40
/// output channels: weights of at most `SMALL_WEIGHTS` floats are copied 4-aligned into the
/// scratch, larger ones are read in place (aligned or not, with `skew`).
fn pointwise(rng: &mut Rng) -> Case {
    let k = if rng.below(2) == 0 { 1 } else { 3 };
    let p = if k == 3 { rng.below(2) as usize } else { 0 };
    Case::Conv(ConvParams {
        in_channels: 8 * (1 + rng.below(8) as usize),
        h: k.max(1 + rng.below(7) as usize),
        w: k.max(1 + rng.below(7) as usize),
        out_channels: 1 + rng.below(40) as usize,
        window: Window::square(k, 1 + rng.below(2) as usize, p),
        activation: act(rng),
    })
}

/// The random cases of all three kernels, then the timed shapes; exits on the first mismatch.
pub fn run(counter: &InstructionCounter, buf: &mut [u8]) {
    // Large: on the stack of `run` only while it runs (kernel-check's stack is not limited).
    let mut bufs = Bufs {
        x: [0.0; MAX_INPUT],
        y: [[0.0; MAX_OUTPUT]; 3],
        scratch: [0.0; MAX_SCRATCH],
    };
    let mut rng = Rng(0x0BAD_F00D);
    let (mut cases, mut macs) = (0u32, 0u64);
    for case in 0..3 * CASES {
        let c = match case % 3 {
            0 => {
                let wide = case % 60 == 0;
                Case::Linear(LinearParams {
                    rows: 1 + rng.below(3) as usize,
                    in_features: if wide {
                        100 + rng.below(701) as usize
                    } else {
                        1 + rng.below(70) as usize
                    },
                    out_features: rng.below(if wide { 5 } else { 10 }) as usize,
                    activation: act(&mut rng),
                })
            }
            1 if case % 12 == 4 => long_conv(&mut rng),
            1 if case % 12 == 7 => pointwise(&mut rng),
            1 if case % 12 == 10 => {
                // One input channel, 3×3: the row kernel (conv3x3) with one plane for every
                // output channel.
                let win = window3x3(&mut rng);
                let (h, w) = plane3x3(&mut rng, &win);
                Case::Conv(ConvParams {
                    in_channels: 1,
                    h,
                    w,
                    out_channels: rng.below(5) as usize,
                    window: win,
                    activation: act(&mut rng),
                })
            }
            2 if case % 12 == 8 => {
                // The 3×3 row kernel over every channel, all plan cases and fallbacks.
                let win = window3x3(&mut rng);
                let (h, w) = plane3x3(&mut rng, &win);
                Case::Depthwise(DepthwiseParams {
                    channels: rng.below(4) as usize,
                    h,
                    w,
                    window: win,
                    activation: act(&mut rng),
                })
            }
            1 => {
                let mut win = window(&mut rng);
                // Some filters longer than the stack patch.
                let ci = if case % 30 == 1 {
                    15
                } else {
                    1 + rng.below(6) as usize
                };
                if ci == 15 {
                    win.kh = 3;
                    win.kw = 3;
                    win.pad_top %= 3;
                    win.pad_bottom %= 3;
                    win.pad_left %= 3;
                    win.pad_right %= 3;
                }
                Case::Conv(ConvParams {
                    in_channels: ci,
                    h: win.kh.max(1 + rng.below(9) as usize),
                    w: win.kw.max(1 + rng.below(9) as usize),
                    out_channels: rng.below(6) as usize,
                    window: win,
                    activation: act(&mut rng),
                })
            }
            _ => {
                let mut win = window(&mut rng);
                // Some wide 3×3 planes: the 3×3 path's runs of interior pixels then take
                // several calls (32 floats of zero row per call).
                let wide = case % 48 == 2;
                // Narrow 3×3 planes (1–14 wide): the zero-padded strips of the 3×3 path.
                let narrow = case % 12 == 5;
                if wide || narrow {
                    win.kh = 3;
                    win.kw = 3;
                    win.pad_top %= 3;
                    win.pad_bottom %= 3;
                    win.pad_left %= 3;
                    win.pad_right %= 3;
                }
                Case::Depthwise(DepthwiseParams {
                    channels: rng.below(5) as usize,
                    h: win.kh.max(1 + rng.below(10) as usize),
                    w: if wide {
                        30 + rng.below(70) as usize
                    } else if narrow {
                        3.max(1 + rng.below(14) as usize)
                    } else {
                        win.kw.max(1 + rng.below(10) as usize)
                    },
                    window: win,
                    activation: act(&mut rng),
                })
            }
        };
        let v = match rng.below(9) {
            0 | 1 => Values::Special,
            2 | 3 => Values::Zeros,
            4 => Values::NegZeros,
            _ => Values::Plain,
        };
        // 1 in 8 special cases may have non-finite weights (the conv fast path falls back).
        let finite_w = v != Values::Special || rng.below(8) != 0;
        let skew = rng.below(4) as usize;
        let scratch = (rng.below(8) == 0, case % 2 == 0);
        check(
            &mut rng, &c, v, finite_w, skew, scratch, buf, &mut bufs, None,
        );
        cases += 1;
        macs += c.macs() as u64;
    }
    defmt::info!(
        "f32_check cases={=u32} macs={=u64} mismatches=0",
        cases,
        macs
    );
    let conv = |ci, co, hw, k, s, p| {
        Case::Conv(ConvParams {
            in_channels: ci,
            h: hw,
            w: hw,
            out_channels: co,
            window: Window::square(k, s, p),
            activation: Activation::Relu,
        })
    };
    let dw = |c, hw, k, s, p| {
        Case::Depthwise(DepthwiseParams {
            channels: c,
            h: hw,
            w: hw,
            window: Window::square(k, s, p),
            activation: Activation::Relu,
        })
    };
    let lin = |n_in, n_out| {
        Case::Linear(LinearParams {
            rows: 1,
            in_features: n_in,
            out_features: n_out,
            activation: Activation::Relu,
        })
    };
    let dw_ds_cnn = Case::Depthwise(DepthwiseParams {
        channels: 64,
        h: 25,
        w: 5,
        window: Window::square(3, 1, 1),
        activation: Activation::Relu,
    });
    let shapes: [(&str, Case); 18] = [
        ("linear_784x64", lin(784, 64)),
        ("linear_64x10", lin(64, 10)),
        ("linear_784x256", lin(784, 256)),
        ("linear_256x128", lin(256, 128)),
        ("linear_128x10", lin(128, 10)),
        ("conv3x3_1to8_28", conv(1, 8, 28, 3, 1, 1)),
        ("conv3x3_8to16_14", conv(8, 16, 14, 3, 1, 1)),
        ("conv3x3s2_8to16_28", conv(8, 16, 28, 3, 2, 1)),
        ("conv1x1_64to64_8", conv(64, 64, 8, 1, 1, 0)),
        ("conv3x3_16to16_32", conv(16, 16, 32, 3, 1, 1)),
        ("conv3x3_32to32_16", conv(32, 32, 16, 3, 1, 1)),
        ("conv3x3_64to64_8", conv(64, 64, 8, 3, 1, 1)),
        ("conv3x3s2_16to32_32", conv(16, 32, 32, 3, 2, 1)),
        ("conv1x1_16to32_24", conv(16, 32, 24, 1, 1, 0)),
        ("conv1x1_128to128_6", conv(128, 128, 6, 1, 1, 0)),
        ("dw3x3_32_24", dw(32, 24, 3, 1, 1)),
        ("dw3x3s2_32_24", dw(32, 24, 3, 2, 1)),
        ("dw3x3_64_25x5", dw_ds_cnn),
    ];
    for (name, c) in shapes {
        let c = core::hint::black_box(c);
        for skew in [0usize, 1] {
            let (r, f) = check(
                &mut rng,
                &c,
                Values::Plain,
                true,
                skew,
                (false, true),
                buf,
                &mut bufs,
                Some(counter),
            );
            defmt::info!(
                "f32 name={=str} skew={=usize} macs={=usize} reference_instructions={=u64} fast_instructions={=u64}",
                name,
                skew,
                c.macs(),
                r,
                f
            );
        }
    }
}
