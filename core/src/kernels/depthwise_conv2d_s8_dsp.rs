//! Depthwise 3×3 convolution, int8, CHW, with the Cortex-M4 DSP extension (ARMv7E-M:
//! `thumbv7em-*` only, `cfg(denoiserep_dsp)` from `core/build.rs`).
//!
//! Same result as [`super::depthwise_conv2d_s8_reference`], bit for bit, on every input it
//! accepts: per output `acc = bias[c] + Σ_{ky,kx} W[c][ky][kx] · (x[c][iy][ix] − zp_in)` over the
//! taps inside the input (padded taps add exactly 0), modulo 2^32 like the reference's
//! `wrapping_add`, then the reference's requantization ([`requantize_fast`], equal to
//! `quant::requantize` on every input). [`run`] first tries the strip kernel
//! (`depthwise_conv2d_s8_strip.rs`, strides 1–2, given its scratch); this file's word kernel
//! ([`run_words`]) runs when `kh = kw = 3` and `w ≥ 4` (any stride, any valid padding, any
//! `h`) where the strip kernel does not, and for the strip kernel's channels outside its fast
//! requantization domain; everything else goes to the Conv2d loop.
//!
//! Design, for CHW (each channel its own `h × w` plane; CMSIS-NN's NHWC kernel does 4 channels
//! at a time instead):
//!
//! - **One word per kernel row.** For an output pixel whose window starts at input column
//!   `ix0 = ox·sw − pad_left`, one unaligned 32-bit load at column `L = clamp(ix0, 0, w − 4)`
//!   (always inside the row, as `w ≥ 4`) holds every in-bounds tap of that kernel row: the taps
//!   are columns `ix0 … ix0 + 2` clipped to `[0, w)`, and `L ≤ max(ix0, 0)`,
//!   `min(ix0 + 2, w − 1) ≤ L + 3`. Two `SXTAB16` widen bytes 0,2 and 1,3 to i16 pairs with
//!   `−zp_in` added while widening (`x − zp_in ∈ [−255, 255]` fits); two `SMLAD` multiply them
//!   by the kernel row's weights placed at byte `j ↦ W[ky][j − d]` (0 outside `0..3`), with
//!   `d = ix0 − L ∈ [−2, 3]`. A byte whose weight is 0 (a padded tap, or a column of the word
//!   outside the window) adds exactly 0, so the sum is the reference's. Per kernel row: 1 load,
//!   2 `SXTAB16`, 2 `SMLAD` for 3 MACs.
//! - **Placements.** The weights of the six placements `d = −2 … 3` are packed once per channel
//!   (`[d][ky]` → two words, the i16 pairs for bytes 0,2 and 1,3). A kernel row outside the input
//!   (top / bottom padding) uses zero weights on row 0's data, so every output runs the same
//!   three-row code (those output rows build a table with the row's weights zeroed).
//! - **Two outputs per step.** At stride 1 outputs `ox` and `ox + 1` read the same words, with
//!   placements `d` and `d + 1` (`d + 1 ≤ 3`: the second window ends inside the row): per
//!   kernel row 1 load, 2 `SXTAB16`, 4 `SMLAD` for 6 MACs. At stride 2, two outputs inside the
//!   row read the words at `ix0` and `ix0 + 2`. Inside the row (`0 ≤ ix0 ≤ w − 4`) the
//!   placements are known (`d = 0`, `1`) and not searched.
//! - **Assembly for the MACs** of one and two outputs ([`Rows`]): the firmware's
//!   `opt-level = "s"` re-rolled the three kernel rows into a loop and spilled the widened words.
//! - **Requantization** with per-channel constants ([`Requantizer`], [`OutputRange`]), no
//!   branch.
//!
//! The only `unsafe`: the `asm!` blocks of [`Rows`], each reading 4 bytes at `L + 4 ≤ w` (or
//! `L + 6 ≤ w`) of rows whose length was checked once per output row, and the 24 or 48 bytes of
//! the placements it is given.

use super::params::PerChannelQuant;
use super::ConvGeometry;
use crate::quant::{activation_range, requantize_fast, OutputRange, Requantizer};
use crate::tensor::{Activation, I32Data, I8Data};

/// Placements `d = ix0 − L`, `d ∈ [−2, 3]`, stored at `d + 2`.
const PLACEMENTS: usize = 6;

/// Weights of one kernel row in one placement: the i16 pairs for bytes 0,2 and 1,3 of the word.
type RowWeights = [u32; 2];
/// The three kernel rows of one placement.
type Placement = [RowWeights; 3];

/// True when [`run`] handles `g`: a 3×3 kernel (one channel) that the strip kernel
/// (`depthwise_conv2d_s8_strip.rs`: strides 1 or 2, padded rows up to `MAX_PADDED_W` wide,
/// given its scratch) or this file's word kernel (planes at least 4 wide) takes.
pub(crate) fn supports(g: &ConvGeometry) -> bool {
    super::depthwise_conv2d_s8_strip::supports(g) || supports_words(g)
}

/// The depthwise convolution on arguments checked by [`super::depthwise_conv2d_s8`], for a
/// geometry [`supports`] accepts: the strip kernel where it applies and `scratch` holds its
/// ring, then here, one plane at a time, its channels outside its fast domain (the word kernel
/// on planes ≥ 4 wide, else the Conv2d loop); else [`run_words`]. The fallback runs after the
/// strip kernel has returned, so their stack frames do not add up.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
    scratch: &mut [u32],
) {
    use super::depthwise_conv2d_s8_strip as strip;
    let Some(slow) = strip::run(g, act, q, input, weights, bias, output, scratch) else {
        if supports_words(g) {
            run_words(g, act, q, input, weights, bias, output);
        } else {
            super::depthwise_conv2d_s8::per_channel(
                g,
                act,
                q,
                input,
                weights,
                bias,
                output,
                super::conv2d_s8::compute,
            );
        }
        return;
    };
    if !slow {
        return;
    }
    let (plane, out_plane) = (g.h * g.w, g.oh * g.ow);
    let channels = bias.len();
    for c in 0..channels {
        let (Some(b), Some(m), Some(s)) = (bias.get(c), q.multiplier.get(c), q.shift.get(c)) else {
            return;
        };
        if strip::fast(b, m, i32::from(s)) {
            continue;
        }
        let (Some(x), Some(y), Some(w_c), Some(b_c), Some(multiplier), Some(shift)) = (
            input.get(c * plane..(c + 1) * plane),
            output.get_mut(c * out_plane..(c + 1) * out_plane),
            weights.slice(c * 9, 9),
            bias.slice(c, 1),
            q.multiplier.slice(c, 1),
            q.shift.slice(c, 1),
        ) else {
            return;
        };
        let q_c = PerChannelQuant {
            multiplier,
            shift,
            ..*q
        };
        if supports_words(g) {
            run_words(g, act, &q_c, x, w_c, b_c, y);
        } else {
            super::conv2d_s8::compute(g, act, &q_c, x, w_c, b_c, y);
        }
    }
}

/// True when [`run_words`] handles `g`: a 3×3 kernel over planes at least 4 wide (one channel).
pub(crate) fn supports_words(g: &ConvGeometry) -> bool {
    g.ci == 1 && g.win.kh == 3 && g.win.kw == 3 && g.w >= 4
}

/// The six placements `d = −2 … 3` of the kernel row `k`: byte `j` of the word gets
/// `k[j − d]` (0 outside `0..3`); each as the i16 pairs (bytes 0,2) and (bytes 1,3). Written out
/// (`u(t)` = `k[t]` as an i16 in a halfword):
/// `d = −2`: `[k2, 0, 0, 0]`; `−1`: `[k1, k2, 0, 0]`; `0`: `[k0, k1, k2, 0]`;
/// `1`: `[0, k0, k1, k2]`; `2`: `[0, 0, k0, k1]`; `3`: `[0, 0, 0, k0]`.
#[inline(always)]
fn placements(k: [u8; 3]) -> [RowWeights; PLACEMENTS] {
    let [k0, k1, k2] = k.map(|v| u32::from(v as i8 as i16 as u16));
    [
        [k2, 0],
        [k1, k2],
        [k0 | k2 << 16, k1],
        [k1 << 16, k0 | k2 << 16],
        [k0 << 16, k1 << 16],
        [0, k0 << 16],
    ]
}

/// Zero weights in every placement: a kernel row outside the input.
const ZERO: [RowWeights; PLACEMENTS] = [[0; 2]; PLACEMENTS];

/// The table `[d][ky]` from the three kernel rows' placements `t[ky][d]` (written out: no copy
/// loop).
#[inline(always)]
fn table(t: [&[RowWeights; PLACEMENTS]; 3]) -> [Placement; PLACEMENTS] {
    let [a, b, c] = t;
    [
        [a[0], b[0], c[0]],
        [a[1], b[1], c[1]],
        [a[2], b[2], c[2]],
        [a[3], b[3], c[3]],
        [a[4], b[4], c[4]],
        [a[5], b[5], c[5]],
    ]
}

/// The three input rows of an output row, each exactly `w ≥ 4` bytes (checked once by
/// [`Rows::new`], so the loads of [`Rows::words`] need only `l + 4 ≤ w`).
struct Rows<'a> {
    r: [*const i8; 3],
    w: usize,
    _rows: core::marker::PhantomData<&'a [i8]>,
}

impl<'a> Rows<'a> {
    /// `None` unless every row is `w ≥ 4` bytes long.
    fn new(rows: [&'a [i8]; 3], w: usize) -> Option<Self> {
        (w >= 4 && rows.iter().all(|r| r.len() == w)).then(|| Self {
            r: rows.map(<[i8]>::as_ptr),
            w,
            _rows: core::marker::PhantomData,
        })
    }

    /// `acc + Σ_ky` of one output from the words at column `l` with the placement `p`
    /// (`acc` alone if `l + 4 > w`): per kernel row one load, two `SXTAB16`, two weight loads
    /// and two `SMLAD`, in assembly (LLVM spilled the widened words in a Rust version).
    #[inline(always)]
    fn one(&self, l: usize, p: &Placement, off: u32, acc: i32) -> i32 {
        if l + 4 > self.w {
            return acc;
        }
        let (r0, r1, r2) = (
            self.r[0].wrapping_add(l),
            self.r[1].wrapping_add(l),
            self.r[2].wrapping_add(l),
        );
        let mut a0 = acc;
        // SAFETY: reads 4 bytes at `r_k + l` — each pointer starts a live row of `w` bytes
        // borrowed for `'a` (checked in `new`) and `l + 4 ≤ w` (checked above) — and the 24
        // bytes of `p`. ARMv7-M allows unaligned `LDR`. Registers: only the operands; SMLAD may
        // set the sticky Q flag, nothing else.
        unsafe {
            core::arch::asm!(
                "ldr {x}, [{r0}]",
                "sxtab16 {e}, {off}, {x}",
                "sxtab16 {x}, {off}, {x}, ror #8",
                "ldr {t}, [{p}]",
                "smlad {a0}, {e}, {t}, {a0}",
                "ldr {t}, [{p}, #4]",
                "smlad {a0}, {x}, {t}, {a0}",
                "ldr {x}, [{r1}]",
                "sxtab16 {e}, {off}, {x}",
                "sxtab16 {x}, {off}, {x}, ror #8",
                "ldr {t}, [{p}, #8]",
                "smlad {a0}, {e}, {t}, {a0}",
                "ldr {t}, [{p}, #12]",
                "smlad {a0}, {x}, {t}, {a0}",
                "ldr {x}, [{r2}]",
                "sxtab16 {e}, {off}, {x}",
                "sxtab16 {x}, {off}, {x}, ror #8",
                "ldr {t}, [{p}, #16]",
                "smlad {a0}, {e}, {t}, {a0}",
                "ldr {t}, [{p}, #20]",
                "smlad {a0}, {x}, {t}, {a0}",
                r0 = in(reg) r0,
                r1 = in(reg) r1,
                r2 = in(reg) r2,
                p = in(reg) p.as_ptr(),
                off = in(reg) off,
                a0 = inout(reg) a0,
                x = out(reg) _,
                e = out(reg) _,
                t = out(reg) _,
                options(readonly, nostack),
            );
        }
        a0
    }

    /// Two outputs at stride 2 with the placement `p` (`d = 0`): the words at columns `l` and
    /// `l + 2` (`(acc, acc)` if `l + 6 > w`): per kernel row two loads, four `SXTAB16`, two
    /// weight loads and four `SMLAD` (6 MACs), in assembly.
    #[inline(always)]
    fn two_apart(&self, l: usize, p: &Placement, off: u32, acc: i32) -> (i32, i32) {
        if l + 6 > self.w {
            return (acc, acc);
        }
        let (r0, r1, r2) = (
            self.r[0].wrapping_add(l),
            self.r[1].wrapping_add(l),
            self.r[2].wrapping_add(l),
        );
        let (mut a0, mut a1) = (acc, acc);
        // SAFETY: reads 4 bytes at `r_k + l` and at `r_k + l + 2` — each pointer starts a live
        // row of `w` bytes borrowed for `'a` (checked in `new`) and `l + 6 ≤ w` (checked above)
        // — and the 24 bytes of `p`. ARMv7-M allows unaligned `LDR`. Registers: only the
        // operands; SMLAD may set the sticky Q flag, nothing else.
        unsafe {
            core::arch::asm!(
                "ldr {w0}, [{p}]",
                "ldr {w1}, [{p}, #4]",
                "ldr {x}, [{r0}]",
                "sxtab16 {e}, {off}, {x}",
                "sxtab16 {x}, {off}, {x}, ror #8",
                "smlad {a0}, {e}, {w0}, {a0}",
                "smlad {a0}, {x}, {w1}, {a0}",
                "ldr {x}, [{r0}, #2]",
                "sxtab16 {e}, {off}, {x}",
                "sxtab16 {x}, {off}, {x}, ror #8",
                "smlad {a1}, {e}, {w0}, {a1}",
                "smlad {a1}, {x}, {w1}, {a1}",
                "ldr {w0}, [{p}, #8]",
                "ldr {w1}, [{p}, #12]",
                "ldr {x}, [{r1}]",
                "sxtab16 {e}, {off}, {x}",
                "sxtab16 {x}, {off}, {x}, ror #8",
                "smlad {a0}, {e}, {w0}, {a0}",
                "smlad {a0}, {x}, {w1}, {a0}",
                "ldr {x}, [{r1}, #2]",
                "sxtab16 {e}, {off}, {x}",
                "sxtab16 {x}, {off}, {x}, ror #8",
                "smlad {a1}, {e}, {w0}, {a1}",
                "smlad {a1}, {x}, {w1}, {a1}",
                "ldr {w0}, [{p}, #16]",
                "ldr {w1}, [{p}, #20]",
                "ldr {x}, [{r2}]",
                "sxtab16 {e}, {off}, {x}",
                "sxtab16 {x}, {off}, {x}, ror #8",
                "smlad {a0}, {e}, {w0}, {a0}",
                "smlad {a0}, {x}, {w1}, {a0}",
                "ldr {x}, [{r2}, #2]",
                "sxtab16 {e}, {off}, {x}",
                "sxtab16 {x}, {off}, {x}, ror #8",
                "smlad {a1}, {e}, {w0}, {a1}",
                "smlad {a1}, {x}, {w1}, {a1}",
                r0 = in(reg) r0,
                r1 = in(reg) r1,
                r2 = in(reg) r2,
                p = in(reg) p.as_ptr(),
                off = in(reg) off,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                x = out(reg) _,
                e = out(reg) _,
                w0 = out(reg) _,
                w1 = out(reg) _,
                options(readonly, nostack),
            );
        }
        (a0, a1)
    }

    /// Two outputs from the same words at column `l`, with the placements `pq[0]` (first) and
    /// `pq[1]` (second) (`(acc, acc)` if `l + 4 > w`): per kernel row one load, two `SXTAB16`,
    /// four weight loads and four `SMLAD` (6 MACs), in assembly.
    #[inline(always)]
    fn two(&self, l: usize, pq: &[Placement; 2], off: u32, acc: i32) -> (i32, i32) {
        if l + 4 > self.w {
            return (acc, acc);
        }
        let (r0, r1, r2) = (
            self.r[0].wrapping_add(l),
            self.r[1].wrapping_add(l),
            self.r[2].wrapping_add(l),
        );
        let (mut a0, mut a1) = (acc, acc);
        // SAFETY: reads 4 bytes at `r_k + l` — each pointer starts a live row of `w` bytes
        // borrowed for `'a` (checked in `new`) and `l + 4 ≤ w` (checked above) — and the 48
        // bytes of `pq` (the second placement at +24). ARMv7-M allows unaligned `LDR`.
        // Registers: only the operands; SMLAD may set the sticky Q flag, nothing else.
        unsafe {
            core::arch::asm!(
                "ldr {x}, [{r0}]",
                "sxtab16 {e}, {off}, {x}",
                "sxtab16 {x}, {off}, {x}, ror #8",
                "ldr {t}, [{p}]",
                "smlad {a0}, {e}, {t}, {a0}",
                "ldr {t}, [{p}, #4]",
                "smlad {a0}, {x}, {t}, {a0}",
                "ldr {t}, [{p}, #24]",
                "smlad {a1}, {e}, {t}, {a1}",
                "ldr {t}, [{p}, #28]",
                "smlad {a1}, {x}, {t}, {a1}",
                "ldr {x}, [{r1}]",
                "sxtab16 {e}, {off}, {x}",
                "sxtab16 {x}, {off}, {x}, ror #8",
                "ldr {t}, [{p}, #8]",
                "smlad {a0}, {e}, {t}, {a0}",
                "ldr {t}, [{p}, #12]",
                "smlad {a0}, {x}, {t}, {a0}",
                "ldr {t}, [{p}, #32]",
                "smlad {a1}, {e}, {t}, {a1}",
                "ldr {t}, [{p}, #36]",
                "smlad {a1}, {x}, {t}, {a1}",
                "ldr {x}, [{r2}]",
                "sxtab16 {e}, {off}, {x}",
                "sxtab16 {x}, {off}, {x}, ror #8",
                "ldr {t}, [{p}, #16]",
                "smlad {a0}, {e}, {t}, {a0}",
                "ldr {t}, [{p}, #20]",
                "smlad {a0}, {x}, {t}, {a0}",
                "ldr {t}, [{p}, #40]",
                "smlad {a1}, {e}, {t}, {a1}",
                "ldr {t}, [{p}, #44]",
                "smlad {a1}, {x}, {t}, {a1}",
                r0 = in(reg) r0,
                r1 = in(reg) r1,
                r2 = in(reg) r2,
                p = in(reg) pq.as_ptr(),
                off = in(reg) off,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                x = out(reg) _,
                e = out(reg) _,
                t = out(reg) _,
                options(readonly, nostack),
            );
        }
        (a0, a1)
    }
}

/// The word kernel on arguments checked by [`super::depthwise_conv2d_s8`], for a geometry
/// [`supports_words`] accepts (`g` is one channel's: `ci = 1`, `per_out = 9`).
pub(crate) fn run_words(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) {
    let (h, w, oh, ow, win) = (g.h, g.w, g.oh, g.ow, g.win);
    if !supports_words(g) || h == 0 || oh == 0 || ow == 0 {
        return;
    }
    let off = u32::from((-i32::from(q.input_zp)) as u16) * 0x0001_0001;
    let (act_min, act_max) = activation_range(act, q.output);
    let range = OutputRange::new(i32::from(q.output.zero_point), act_min, act_max);
    let (sh, sw) = (win.sh, win.sw);
    let (pt, pl) = (win.pad_top as isize, win.pad_left as isize);
    let last = w as isize - 4;
    // `L = clamp(ix0, 0, w − 4)` and the placement index `ix0 − L + 2` (`w ≥ 4`).
    let at = |ix0: isize| {
        let l = if ix0 < 0 {
            0
        } else if ix0 > last {
            last
        } else {
            ix0
        };
        (l as usize, (ix0 - l + 2) as usize)
    };
    let per_channel = input
        .chunks_exact(h * w)
        .zip(output.chunks_exact_mut(oh * ow))
        .zip(weights.as_bytes().chunks_exact(9))
        .zip(bias.iter().zip(q.multiplier.iter()).zip(q.shift.iter()));
    for (((plane, out), k), ((b, m), s)) in per_channel {
        let requant = Requantizer::new(m, i32::from(s));
        // `tab[d + 2][ky]`: kernel row `ky` placed at `d`.
        let [t0, t1, t2] = match k {
            [a, b, c, d, e, f, g, h, i] => [
                placements([*a, *b, *c]),
                placements([*d, *e, *f]),
                placements([*g, *h, *i]),
            ],
            _ => return, // never: `chunks_exact(9)`
        };
        let full = table([&t0, &t1, &t2]);
        let mut out_rows = out.chunks_exact_mut(ow);
        for oy in 0..oh {
            let Some(y) = out_rows.next() else { return };
            let iy0 = (oy * sh) as isize - pt;
            // A kernel row outside the input reads row 0 with zero weights.
            let valid = |ky: usize| (0..h as isize).contains(&(iy0 + ky as isize));
            let row = |ky: usize| {
                let iy = if valid(ky) {
                    (iy0 + ky as isize) as usize
                } else {
                    0
                };
                plane.get(iy * w..iy * w + w).unwrap_or(&[])
            };
            let inside = valid(0) && valid(2);
            let three = if inside {
                // The three rows at once: one slice of `3w` bytes.
                plane
                    .get(iy0 as usize * w..)
                    .and_then(|r| r.get(..3 * w))
                    .map(|r| r.split_at(w))
                    .map(|(r0, r12)| (r0, r12.split_at(w)))
                    .map(|(r0, (r1, r2))| [r0, r1, r2])
            } else {
                Some([row(0), row(1), row(2)])
            };
            let Some(rows) = three.and_then(|r| Rows::new(r, w)) else {
                return; // never: the rows are `w` long (`input` is `c·h·w`, checked)
            };
            let masked;
            let tab = if inside {
                &full
            } else {
                let pick = |ky: usize, t| if valid(ky) { t } else { &ZERO };
                masked = table([pick(0, &t0), pick(1, &t1), pick(2, &t2)]);
                &masked
            };
            let mut ix0 = -pl;
            let mut rest = &mut y[..];
            if sw == 1 {
                // Outputs `ox`, `ox + 1` from the words at `L = clamp(ix0, 0, w − 4)`, with
                // placements `d = ix0 − L` and `d + 1 ≤ 3` (the second window ends inside the
                // row: `ix0 + 1 ≤ w − 1`, so `d + 1 = ix0 + 1 − L ≤ 3` when `L = w − 4`).
                let mut pairs = y.chunks_exact_mut(2);
                let placements = |d: usize| {
                    let t = tab.get(d..d + 2)?;
                    <&[Placement; 2]>::try_from(t).ok()
                };
                // The placements of a pair inside the row (`d = 0, 1`).
                let inner = placements(2);
                for y01 in &mut pairs {
                    // Inside the row (`0 ≤ ix0 ≤ w − 4`): `L = ix0`, placements 0 and 1.
                    let (l, pq) = if (0..=last).contains(&ix0) {
                        (ix0 as usize, inner)
                    } else {
                        let (l, d) = at(ix0);
                        (l, placements(d))
                    };
                    if let (Some(pq), [y0, y1]) = (pq, y01) {
                        let (a0, a1) = rows.two(l, pq, off, b);
                        *y0 = requantize_fast(a0, &requant, &range);
                        *y1 = requantize_fast(a1, &requant, &range);
                    }
                    ix0 += 2;
                }
                rest = pairs.into_remainder();
            }
            let single = |ix0: isize| {
                let (l, p) = if (0..=last).contains(&ix0) {
                    (ix0 as usize, tab.get(2))
                } else {
                    let (l, d) = at(ix0);
                    (l, tab.get(d))
                };
                p.map(|p| requantize_fast(rows.one(l, p, off, b), &requant, &range))
            };
            if sw == 2 {
                // Two outputs per step: the words at `ix0` and `ix0 + 2` when both windows are
                // inside the row (`0 ≤ ix0`, `ix0 + 6 ≤ w`), else one at a time.
                let mut pairs = rest.chunks_exact_mut(2);
                for y01 in &mut pairs {
                    if let [y0, y1] = y01 {
                        if ix0 >= 0 && ix0 + 2 <= last {
                            if let Some(p) = tab.get(2) {
                                let (a0, a1) = rows.two_apart(ix0 as usize, p, off, b);
                                *y0 = requantize_fast(a0, &requant, &range);
                                *y1 = requantize_fast(a1, &requant, &range);
                            }
                        } else {
                            *y0 = single(ix0).unwrap_or(*y0);
                            *y1 = single(ix0 + 2).unwrap_or(*y1);
                        }
                    }
                    ix0 += 4;
                }
                rest = pairs.into_remainder();
            }
            // Other strides (every output), or the odd last output.
            for y0 in rest.iter_mut() {
                *y0 = single(ix0).unwrap_or(*y0);
                ix0 += sw as isize;
            }
        }
    }
}
