//! f32 Conv2d, 3 × 3 at stride 1, with 16 output pixels in the lanes of a 512-bit register
//! (AVX-512F; host only).
//!
//! The im2col kernel ([`super::im2col`]) copies the 9·ci taps of every output pixel into a row
//! before the dot products; on a 16 → 16 3×3 layer those copies (runs of 3 floats) were about a
//! third of the time. At stride 1 neighbouring output pixels read neighbouring input values, so
//! the taps need no copy when the input sits in a zero-padded buffer:
//!
//! - **Band, per block of output rows**: for output rows `oy0 .. oy0 + rows`, channel `i` of the
//!   band holds input rows `oy0 − pad_top .. oy0 + rows + 2 − pad_top` (zeros outside the
//!   input), each of the padded width `wp = w + 2` with `pad_left` zero columns in front (this
//!   kernel takes `pad_left + pad_right = 2`, i.e. `ow = w`: the "same" padding of ResNet- and
//!   VGG-style 3×3 layers). The band buffer is [`BUF`] floats on the stack; `rows` is as many
//!   as fit, and a shape that does not fit one row falls back.
//! - **Pixels**: band position `q = r·wp + c` (`r < rows`, `c < wp`) is output pixel
//!   `(oy0 + r, c)` when `c < w` (the 2 columns `c ≥ w` are junk lanes, computed and dropped).
//!   Its tap `(ky, kx)` of channel `i` is band value `i·band + q + ky·wp + kx`, so 16
//!   consecutive positions read 16 consecutive floats: one unaligned 64-byte load per tap,
//!   shared by [`F`] filters.
//!
//! **The documented order, per lane.** Term `j = (i·3 + ky)·3 + kx = 9i + t` of an output goes to
//! accumulation lane `j mod 8` (`crate::kernels`). Each output pixel keeps its 8 lanes as the
//! same lane of 8 registers, `acc[l][px]`; `l = (9i + t) mod 8 = (i + t) mod 8` is known at
//! compile time inside a group of 8 channels (`R = i mod 8` is a const parameter), so the 8 lane
//! registers of each filter stay in registers: `acc[f][l] = acc[f][l] + w · x` as a `vmulps`
//! (the weight broadcast from memory) and a `vaddps`, terms in increasing `j`, lanes starting at
//! `+0.0`. Then the fixed tree `((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))` as 7 whole-register adds,
//! `+ bias`, the activation as compares and selects (`x < 0 → 0`, `x > 6 → 6`: the scalar
//! `activate_f32`, NaN and −0.0 included), and the valid lanes, compressed together
//! (`vcompressps`), stored as consecutive output pixels. A padded tap adds `w · 0.0 = ±0.0`,
//! which leaves a lane unchanged because a lane never holds −0.0 (the dispatcher sends filters
//! with a non-finite weight to the reference loop), so the bits equal the reference's, which
//! skips the tap. Junk lanes may read anything (the next row, the next channel): they are
//! never stored.
//!
//! **Channels past `ci`** in the last group of 8 read a zero plane at the end of the band and
//! channel 0's weights (finite): the same `±0.0` terms, so one copy of the unrolled group serves
//! every `ci` (the wasted work is `(8 − ci mod 8)/ci` of a layer; 16, 32 and 64 channels have
//! none).
//!
//! **Registers**: [`F`] = 3 filters × 8 lanes = 24 accumulators, the input vector and products
//! in the 32 ZMM registers: per tap one input load, 3 broadcast loads, 3 `vmulps`, 3 `vaddps`
//! (48 multiply-adds). Left-over filters (`co mod 3`) run one at a time. An empty `asm!` after
//! each add pins the order of the instructions (see [`channel`]).
//!
//! Shapes it does not take (`false`, nothing written): other windows or strides,
//! `pad_left + pad_right ≠ 2`, fewer than 8 input channels (the few-tap kernel of
//! [`super::single`] runs those), a band row that does not fit [`BUF`].
//! Measured in `docs/kernels.md` (host part 9).

use core::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_cmp_ps_mask, _mm512_loadu_ps, _mm512_mask_mov_ps,
    _mm512_mask_storeu_ps, _mm512_maskz_compress_ps, _mm512_mul_ps, _mm512_set1_ps,
    _mm512_setzero_ps, _CMP_GT_OQ, _CMP_LT_OQ,
};

use crate::kernels::{ConvGeometry, LANES};
use crate::tensor::{Activation, F32Data};

/// Output pixels per register.
const PX: usize = 16;
/// Filters per pass: 24 accumulators of the 32 registers.
const F: usize = 3;
/// Taps per channel (3 × 3).
const T: usize = 9;
/// Channels per unrolled group: the lane pattern `(i + t) mod 8` repeats after 8 channels.
const GROUP: usize = 8;
/// Floats of the band buffer (32 KiB), past its `ci + 1` planes: the reads of the last
/// vector's junk lanes run up to `PX + 2` floats past the last plane.
const BUF: usize = 8192;
const SLACK: usize = 2 * PX;

/// [`crate::kernels::conv2d_f32`] after its checks, for finite weights: see the module docs.
/// Returns `false` (writing nothing) for a shape it does not take.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx2,avx512f")]
pub(super) unsafe fn conv2d_f32(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) -> bool {
    let win = g.win;
    let same = win.pad_left + win.pad_right == 2;
    if win.kh != 3 || win.kw != 3 || win.sh != 1 || win.sw != 1 || !same || g.ci < GROUP {
        return false;
    }
    let (ci, h, w, co) = (g.ci, g.h, g.w, bias.len());
    let wp = w + 2;
    // Band rows per channel plane: `ci + 1` planes (the last one zeros) of `rows + 2` rows.
    let Some(rows_max) = (BUF / (ci + 1) / wp).checked_sub(2).filter(|&r| r > 0) else {
        return false;
    };
    let plane = g.oh * g.ow;
    let wb = weights.as_bytes();
    // The lengths every pointer below relies on (the caller checked them; a mismatch falls back).
    if input.len() < ci * h * w || output.len() < co * plane || wb.len() < 4 * co * g.per_out {
        return false;
    }
    if plane == 0 || co == 0 {
        return true;
    }
    let band = (rows_max.min(g.oh) + 2) * wp;
    let mut buf = [0.0f32; BUF + SLACK];
    let prm = Params {
        ci,
        wp,
        band,
        per_out: g.per_out,
        plane,
    };
    let mut oy0 = 0;
    while oy0 < g.oh {
        let rows = rows_max.min(g.oh - oy0);
        fill_band(g, input, oy0, rows, band, &mut buf);
        // Band positions `q .. q + 16`, the lanes that are output pixels, and the flat output
        // index of the first of them (`w` pixels per full row before `q`, then the row's part).
        let n_q = rows * wp;
        let mut q = 0;
        while q < n_q {
            let mut valid: __mmask16 = 0;
            for l in 0..PX.min(n_q - q) {
                if (q + l) % wp < w {
                    valid |= 1 << l;
                }
            }
            let first = (oy0 + q / wp) * w + (q % wp).min(w);
            let at = Pixels { q, valid, first };
            let mut o = 0;
            while o < co {
                if co - o >= F {
                    block::<F>(&prm, &buf, wb, o, &at, act, bias, output);
                    o += F;
                } else {
                    block::<1>(&prm, &buf, wb, o, &at, act, bias, output);
                    o += 1;
                }
            }
            q += PX;
        }
        oy0 += rows;
    }
    true
}

/// What every block of a call shares.
struct Params {
    ci: usize,
    /// Padded row width `w + 2`.
    wp: usize,
    /// Floats per channel plane of the band.
    band: usize,
    /// `9·ci` weights per filter.
    per_out: usize,
    /// Output pixels per filter, `oh·ow`.
    plane: usize,
}

/// 16 band positions from `q`: which lanes are output pixels (`valid`), and the flat output
/// index of the first valid one.
struct Pixels {
    q: usize,
    valid: __mmask16,
    first: usize,
}

/// Channel `i`'s band rows `r < rows + 2` at `buf[i·band + r·wp ..]`: input row
/// `oy0 + r − pad_top` behind `pad_left` zeros, zeros after it and for rows outside the input;
/// plane `ci` all zeros.
fn fill_band(
    g: &ConvGeometry,
    input: &[f32],
    oy0: usize,
    rows: usize,
    band: usize,
    buf: &mut [f32],
) {
    let (w, wp, pl) = (g.w, g.w + 2, g.win.pad_left);
    for (i, dst) in buf.chunks_exact_mut(band).take(g.ci + 1).enumerate() {
        let src = input.get(i * g.h * w..(i + 1) * g.h * w).unwrap_or(&[]);
        for (r, d) in dst.chunks_exact_mut(wp).take(rows + 2).enumerate() {
            let row = (oy0 + r)
                .checked_sub(g.win.pad_top)
                .and_then(|iy| src.get(iy * w..(iy + 1) * w));
            match row {
                Some(row) => {
                    d[..pl].fill(0.0);
                    d[pl..pl + w].copy_from_slice(row);
                    d[pl + w..].fill(0.0);
                }
                None => d.fill(0.0),
            }
        }
    }
}

/// Filters `o .. o + NF` over the 16 band positions of `at`: every channel group, the tree, the
/// bias, the activation and the store of the valid lanes.
///
/// # Safety
/// AVX-512F; the lengths checked in [`conv2d_f32`]; `o + NF ≤ co`; `buf` holds `ci + 1` planes
/// of `band` floats and [`SLACK`] more.
#[target_feature(enable = "avx2,avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn block<const NF: usize>(
    prm: &Params,
    buf: &[f32],
    wb: &[u8],
    o: usize,
    at: &Pixels,
    act: Activation,
    bias: F32Data<'_>,
    output: &mut [f32],
) {
    let mut acc = [[_mm512_setzero_ps(); LANES]; NF];
    let filters: [*const u8; NF] =
        core::array::from_fn(|f| wb.as_ptr().add(4 * (o + f) * prm.per_out));
    let x0 = buf.as_ptr().add(at.q);
    let zeros = x0.add(prm.ci * prm.band);
    let mut i0 = 0;
    while i0 < prm.ci {
        let active = (prm.ci - i0).min(GROUP);
        // Channel `i0 + c` of the group: its band plane (from `q`) and its weights; a channel
        // past `ci` reads the zero plane and channel 0's weights.
        let ch = |c: usize| -> (*const f32, [*const u8; NF]) {
            if c < active {
                let i = i0 + c;
                (
                    x0.add(i * prm.band),
                    filters.map(|f| f.wrapping_add(4 * T * i)),
                )
            } else {
                (zeros, filters)
            }
        };
        channel::<0, NF>(&mut acc, ch(0), prm.wp);
        channel::<1, NF>(&mut acc, ch(1), prm.wp);
        channel::<2, NF>(&mut acc, ch(2), prm.wp);
        channel::<3, NF>(&mut acc, ch(3), prm.wp);
        channel::<4, NF>(&mut acc, ch(4), prm.wp);
        channel::<5, NF>(&mut acc, ch(5), prm.wp);
        channel::<6, NF>(&mut acc, ch(6), prm.wp);
        channel::<7, NF>(&mut acc, ch(7), prm.wp);
        i0 += GROUP;
    }
    let n = at.valid.count_ones();
    let store: __mmask16 = if n >= 16 { !0 } else { (1 << n) - 1 };
    for (f, lanes) in acc.iter().enumerate() {
        let [a0, a1, a2, a3, a4, a5, a6, a7] = *lanes;
        let s = _mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
            _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)),
        );
        let y = activate(
            _mm512_add_ps(s, _mm512_set1_ps(bias.get(o + f).unwrap_or(0.0))),
            act,
        );
        // SAFETY: the `n` stored values are output pixels `first .. first + n` of filter
        // `o + f`: `(o + f)·plane + first + n ≤ co·plane ≤ output.len()`.
        _mm512_mask_storeu_ps(
            output.as_mut_ptr().add((o + f) * prm.plane + at.first),
            store,
            _mm512_maskz_compress_ps(at.valid, y),
        );
    }
}

/// The 9 taps of one channel for `NF` filters, channel `R` (mod 8) of its group:
/// `acc[f][(R + t) mod 8] += W[f][t] · x[t]` in increasing `t = 3·ky + kx`, `x[t]` the 16
/// floats at `x + ky·wp + kx`. Written out tap by tap (a `for t in 0..9` loop was left rolled,
/// with the accumulators in memory).
///
/// # Safety
/// AVX-512F; `x .. x + 2·wp + 2 + 16` lies inside the band buffer, and every filter pointer has
/// 9 weights.
#[target_feature(enable = "avx2,avx512f")]
#[inline]
unsafe fn channel<const R: usize, const NF: usize>(
    acc: &mut [[__m512; LANES]; NF],
    (x, w): (*const f32, [*const u8; NF]),
    wp: usize,
) {
    macro_rules! taps {
        ($($t:literal)*) => {$(
            tap::<NF>(acc, x.add(($t / 3) * wp + $t % 3), &w, $t, (R * T + $t) % LANES);
        )*};
    }
    taps!(0 1 2 3 4 5 6 7 8);
}

/// One tap `t` for `NF` filters: `acc[f][lane] += W[f][t] · x` (16 floats at `x`).
///
/// # Safety
/// AVX-512F; 16 floats at `x`; every filter pointer has `t + 1` weights.
#[target_feature(enable = "avx2,avx512f")]
#[inline]
unsafe fn tap<const NF: usize>(
    acc: &mut [[__m512; LANES]; NF],
    x: *const f32,
    w: &[*const u8; NF],
    t: usize,
    lane: usize,
) {
    let xv = _mm512_loadu_ps(x);
    for f in 0..NF {
        let wv = _mm512_set1_ps(w[f].add(4 * t).cast::<f32>().read_unaligned());
        acc[f][lane] = _mm512_add_ps(acc[f][lane], _mm512_mul_ps(wv, xv));
        // A compiler barrier (no instruction) that takes the new sum in a register: this tap's
        // adds happen before the next tap's loads. Without it LLVM computed all 216 products
        // of a channel group first, spilled them to the stack and added them at the end (the
        // kernel ran at half the im2col kernel's speed).
        // SAFETY: an empty asm block; the register keeps its value.
        core::arch::asm!(
            "/* {0} */",
            inout(zmm_reg) acc[f][lane],
            options(nostack, preserves_flags)
        );
    }
}

/// [`crate::kernels::activate_f32`] on 16 values: the same compares, so NaN and −0.0 pass as
/// they do there.
#[target_feature(enable = "avx2,avx512f")]
#[inline]
fn activate(y: __m512, act: Activation) -> __m512 {
    let zero = _mm512_setzero_ps();
    match act {
        Activation::None => y,
        Activation::Relu => _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask::<_CMP_LT_OQ>(y, zero), zero),
        Activation::Relu6 => {
            let six = _mm512_set1_ps(6.0);
            let y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask::<_CMP_LT_OQ>(y, zero), zero);
            _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, six), six)
        }
    }
}
