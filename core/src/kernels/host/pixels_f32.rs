//! f32 Conv2d, 3 × 3 at stride 1, with output pixels in the lanes of a vector register: 16 per
//! ZMM register on AVX-512F, 8 per YMM register on AVX2 (host only).
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
//!   Its tap `(ky, kx)` of channel `i` is band value `i·band + q + ky·wp + kx`, so 16 (8)
//!   consecutive positions read 16 (8) consecutive floats: one unaligned load per tap, shared
//!   by the filters of a pass.
//!
//! - **Stride 2** (AVX-512 only, any padding): the band holds the 4 phase planes of the padded
//!   input per channel, `plane_ab[r][k] = P[2r + a][2k + b]` (row and column parities `a`,
//!   `b`; `wp = ow + 1` columns): output pixel `(r, c)` reads tap `(ky, kx)` in plane
//!   `(ky mod 2, kx mod 2)` at row `r + ky/2`, column `c + kx/2`, again a fixed offset from its
//!   position, so 16 consecutive positions are one load ([`fill_band_s2`]).
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
//! (`vcompressps`; on AVX2 `vpermps` by a table and a masked store), stored as consecutive
//! output pixels. A padded tap adds `w · 0.0 = ±0.0`,
//! which leaves a lane unchanged because a lane never holds −0.0 (the dispatcher sends filters
//! with a non-finite weight to the reference loop), so the bits equal the reference's, which
//! skips the tap. Junk lanes may read anything (the next row, the next channel): they are
//! never stored.
//!
//! **Channels past `ci`** in the last group of 8 are skipped (a branch per channel, the same way
//! for the whole layer), so any `ci ≥ 1` runs one copy of the unrolled group.
//!
//! **Registers**: on AVX-512, [`F`] = 3 filters × 8 lanes = 24 accumulators, the input vector
//! and products in the 32 ZMM registers: per tap one input load, 3 broadcast loads, 3 `vmulps`,
//! 3 `vaddps` (48 multiply-adds); left-over filters (`co mod 3`) run one at a time. On AVX2 one
//! filter (8 of the 16 YMM registers), and per window row two loads and a shuffle for the 3
//! taps ([`channel_avx2`]); it runs for at most [`AVX2_MAX_CI`] channels, where it is faster
//! than the im2col kernel (and, for fewer than 8, than the few-tap kernel of [`super::single`]).
//! An empty `asm!` after each add pins the order of the instructions (see [`tap`]).
//!
//! Shapes it does not take (`false`, nothing written): other windows or strides, stride 1
//! with `pad_left + pad_right ≠ 2`, stride 2 on AVX2, more than [`AVX2_MAX_CI`] channels on
//! AVX2 (or fewer than 8 channels and 8 filters), a band row that does not fit [`BUF`].
//! Measured in `docs/kernels.md` (host parts 9 and 10).

use core::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_blendv_ps, _mm256_cmp_ps, _mm256_cmpgt_epi32,
    _mm256_cvtepu8_epi32, _mm256_loadu_ps, _mm256_maskstore_ps, _mm256_mul_ps,
    _mm256_permutevar8x32_ps, _mm256_set1_epi32, _mm256_set1_ps, _mm256_setr_epi32,
    _mm256_setzero_ps, _mm256_shuffle_ps, _mm256_storeu_ps, _mm_cvtsi64_si128,
};
use core::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_cmp_ps_mask, _mm512_loadu_ps, _mm512_mask_mov_ps,
    _mm512_mask_storeu_ps, _mm512_maskz_compress_ps, _mm512_mul_ps, _mm512_set1_ps,
    _mm512_setzero_ps, _CMP_GT_OQ, _CMP_LT_OQ,
};

use crate::kernels::{ConvGeometry, LANES};
use crate::tensor::{Activation, F32Data};

/// Filters per pass on AVX-512: 24 accumulators of the 32 registers.
const F: usize = 3;
/// Most input channels the AVX2 version takes. With one filter per pass (8 lane registers of
/// the 16) it reaches about the im2col kernel's multiply-add rate, so it wins where im2col
/// pays most per output: the copies and the horizontal tree of a short filter. On an Intel Xeon
/// (`conv_paths`, alternating binaries): 16 → 16 at 28 × 28 95 µs against 123 µs; 32 → 32 at
/// 14 × 14 103 against 91–97 µs and 64 → 64 at 7 × 7 112 against 89 µs, where the longer
/// filters amortize the tree and the 7-wide rows leave a quarter of the lanes idle. On an AMD
/// EPYC (Zen 3), 1 → 16 at 28 × 28: 14–15 µs against the few-tap kernel's 24 µs.
const AVX2_MAX_CI: usize = 16;
/// Taps per channel (3 × 3).
const T: usize = 9;
/// Channels per unrolled group: the lane pattern `(i + t) mod 8` repeats after 8 channels.
const GROUP: usize = 8;
/// Floats of the band buffer (32 KiB), past its `ci` planes: the reads of the last
/// vector's junk lanes run up to 18 floats past the last plane.
const BUF: usize = 8192;
const SLACK: usize = 32;

/// How one instruction set computes a block of filters over one register of pixels.
trait Kernel {
    /// Output pixels per register (at most 16).
    const PX: usize;
    /// Whether it has the stride-2 form.
    const STRIDE2: bool;
    /// Every filter over the band positions of `at`, in blocks: every channel, the tree, the
    /// bias, the activation and the store of the valid lanes. One call per register of pixels,
    /// so that the blocks share the set-up (a call per block spent about a fifth of the AVX2
    /// version's instructions on it).
    ///
    /// # Safety
    /// The CPU has the kernel's features; the lengths [`run`] checked.
    unsafe fn filters(c: &Call<'_>, at: &Pixels, output: &mut [f32]);
}

/// [`crate::kernels::conv2d_f32()`] after its checks, for finite weights, on AVX-512 (16 pixels,
/// 3 filters per pass): see the module docs. Returns `false` (writing nothing) for a shape it
/// does not take.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx2,avx512f")]
pub(super) unsafe fn conv2d_f32_avx512(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) -> bool {
    run::<Avx512>(g, act, input, weights, bias, output)
}

/// [`conv2d_f32_avx512`] on AVX2 (8 pixels, one filter per pass, stride 1), for at most
/// [`AVX2_MAX_CI`] input channels.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn conv2d_f32_avx2(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) -> bool {
    // Fewer than 8 channels and 8 filters (each channel of a depthwise layer runs as a 1 → 1
    // convolution): the band's set-up costs more than the few filters gain; the few-tap kernel.
    if g.ci > AVX2_MAX_CI || (g.ci < GROUP && bias.len() < GROUP) {
        return false;
    }
    run::<Avx2>(g, act, input, weights, bias, output)
}

/// The bands, the pixel registers and the filter blocks of one call.
///
/// # Safety
/// The CPU has `K`'s features.
#[inline(always)]
unsafe fn run<K: Kernel>(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) -> bool {
    let win = g.win;
    let s1 = win.sh == 1 && win.sw == 1 && win.pad_left + win.pad_right == 2;
    let s2 = K::STRIDE2 && win.sh == 2 && win.sw == 2;
    if win.kh != 3 || win.kw != 3 || !(s1 || s2) || g.ci == 0 {
        return false;
    }
    let (ci, h, w, co) = (g.ci, g.h, g.w, bias.len());
    // Band positions per row (`w + 2` columns of the padded input at stride 1, `ow + 1` per
    // column phase at stride 2) and band floats per output row; `ci` channel bands of
    // `rows + 2` rows (stride 1) or 4 phase planes of `rows + 1` rows.
    let (wp, per_row, extra_rows) = if s2 {
        (g.ow + 1, 4 * (g.ow + 1), 1)
    } else {
        (w + 2, w + 2, 2)
    };
    let Some(rows_max) = (BUF / ci / per_row)
        .checked_sub(extra_rows)
        .filter(|&r| r > 0)
    else {
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
    let band = (rows_max.min(g.oh) + extra_rows) * per_row;
    let mut buf = [0.0f32; BUF + SLACK];
    // Stride 2: tap `(ky, kx)` reads phase plane `(ky mod 2, kx mod 2)` (of `band / 4` floats),
    // rows `ky / 2` and columns `kx / 2` further.
    let taps = core::array::from_fn(|t| {
        let (ky, kx) = (t / 3, t % 3);
        (2 * (ky % 2) + kx % 2) * (band / 4) + (ky / 2) * wp + kx / 2
    });
    let prm = Params {
        ci,
        wp,
        band,
        per_out: g.per_out,
        plane,
        s2,
        taps,
    };
    let mut oy0 = 0;
    while oy0 < g.oh {
        let rows = rows_max.min(g.oh - oy0);
        if s2 {
            fill_band_s2(g, input, oy0, rows, (band, wp), &mut buf);
        } else {
            fill_band(g, input, oy0, rows, band, &mut buf);
        }
        // One register of pixels through every filter, then the next (chunks of registers
        // inside a filter loop, to keep a block's weights in L1, measured no faster).
        let call = Call {
            prm: &prm,
            buf: &buf,
            wb,
            act,
            bias,
        };
        let n_q = rows * wp;
        let mut q = 0;
        while q < n_q {
            let at = Pixels::at(q, n_q, wp, g.ow, oy0, K::PX);
            K::filters(&call, &at, output);
            q += K::PX;
        }
        oy0 += rows;
    }
    true
}

/// What every block of a call shares.
struct Params {
    ci: usize,
    /// Band positions per row: the padded width `w + 2` at stride 1, `ow + 1` at stride 2.
    wp: usize,
    /// Floats per channel plane of the band.
    band: usize,
    /// `9·ci` weights per filter.
    per_out: usize,
    /// Output pixels per filter, `oh·ow`.
    plane: usize,
    /// Stride 2 (the band holds 4 column and row phase planes per channel).
    s2: bool,
    /// Stride 2: band offset of tap `t` from a pixel's position.
    taps: [usize; T],
}

/// One band's call to the blocks: the shape, the filled band, the weights (`[co][ci][3][3]`
/// as little-endian bytes), the activation and the biases.
struct Call<'a> {
    prm: &'a Params,
    buf: &'a [f32],
    wb: &'a [u8],
    act: Activation,
    bias: F32Data<'a>,
}

/// One register's band positions from `q` (16 or 8): which lanes are output pixels (`valid`),
/// and the flat output index of the first valid one.
struct Pixels {
    q: usize,
    valid: u16,
    first: usize,
}

impl Pixels {
    /// The `px` band positions from `q` of a band of `n_q = rows·wp` positions whose first row
    /// is output row `oy0`, for outputs `w` wide: lane `l` is an output pixel when
    /// `q + l < n_q` and its column `(q + l) mod wp < w`; the first valid one is flat output
    /// pixel `(oy0 + ⌊q/wp⌋)·w + min(q mod wp, w)` (`w` pixels per full row before `q`, then
    /// the row's part).
    fn at(q: usize, n_q: usize, wp: usize, w: usize, oy0: usize, px: usize) -> Self {
        let (r, c0) = (q / wp, q % wp);
        let mut valid = 0u16;
        let mut c = c0;
        for l in 0..px.min(n_q - q) {
            if c < w {
                valid |= 1 << l;
            }
            c += 1;
            if c == wp {
                c = 0;
            }
        }
        Self {
            q,
            valid,
            first: (oy0 + r) * w + c0.min(w),
        }
    }
}

/// Channel `i`'s band rows `r < rows + 2` at `buf[i·band + r·wp ..]`: input row
/// `oy0 + r − pad_top` behind `pad_left` zeros, zeros after it and for rows outside the input.
fn fill_band(
    g: &ConvGeometry,
    input: &[f32],
    oy0: usize,
    rows: usize,
    band: usize,
    buf: &mut [f32],
) {
    let (w, wp, pl) = (g.w, g.w + 2, g.win.pad_left);
    for (i, dst) in buf.chunks_exact_mut(band).take(g.ci).enumerate() {
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

/// Stride 2: channel `i`'s band holds the 4 phase planes of the padded input `P` (`P[y][x]` =
/// input row `y − pad_top`, column `x − pad_left`, zero outside), plane `2a + b` at
/// `buf[i·band + (2a + b)·band/4 ..]` with `plane[r][k] = P[2(oy0 + r) + a][2k + b]` for
/// `r < rows + 1`, `k < wp = ow + 1`. Output pixel `(oy0 + r, c)` then
/// reads tap `(ky, kx)` at `(2·(ky mod 2) + kx mod 2)·band/4 + (r + ky/2)·wp + c + kx/2`.
fn fill_band_s2(
    g: &ConvGeometry,
    input: &[f32],
    oy0: usize,
    rows: usize,
    (band, wp): (usize, usize),
    buf: &mut [f32],
) {
    let (h, w) = (g.h, g.w);
    let (pt, pl) = (g.win.pad_top, g.win.pad_left);
    let quarter = band / 4;
    for (i, dst) in buf.chunks_exact_mut(band).take(g.ci).enumerate() {
        let src = input.get(i * h * w..(i + 1) * h * w).unwrap_or(&[]);
        for (a, planes) in dst.chunks_exact_mut(2 * quarter).enumerate() {
            let (p0, p1) = planes.split_at_mut(quarter);
            let rows_ab = p0.chunks_exact_mut(wp).zip(p1.chunks_exact_mut(wp));
            for (r, (d0, d1)) in rows_ab.take(rows + 1).enumerate() {
                d0.fill(0.0);
                d1.fill(0.0);
                let row = (2 * (oy0 + r) + a)
                    .checked_sub(pt)
                    .and_then(|iy| src.get(iy * w..(iy + 1) * w));
                let Some(row) = row else {
                    continue;
                };
                // Input column `x` is padded column `x + pad_left`: phase `(x + pl) mod 2`,
                // column `(x + pl) / 2`. So the input's pairs `(x₂ₘ, x₂ₘ₊₁)` go to two
                // contiguous runs (a loop the compiler vectorizes; element by element with a
                // bounds check each, this fill was a quarter of a 16 → 32 stride-2 layer).
                let (even, odd) = if pl % 2 == 0 {
                    (d0.get_mut(pl / 2..), d1.get_mut(pl / 2..))
                } else {
                    (d1.get_mut(pl / 2..), d0.get_mut(pl.div_ceil(2)..))
                };
                let (Some(even), Some(odd)) = (even, odd) else {
                    continue;
                };
                for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(row.chunks_exact(2)) {
                    *e = pair[0];
                    *o = pair[1];
                }
                if w % 2 == 1 {
                    if let Some(e) = even.get_mut(w / 2) {
                        *e = row[w - 1];
                    }
                }
            }
        }
    }
}

/// Every channel of a block, in groups of 8 with the phase `R = i mod 8` as a const parameter
/// of `$channel` (`$channel::<R, NF>(&mut acc, (x, w), wp)`: `x` the channel's band plane from
/// position `q`, `w` its weights in each filter). Full groups step the pointers channel by
/// channel; in a last, partial group the channels past `ci` are skipped.
macro_rules! channel_groups {
    ($prm:expr, $buf:expr, $at:expr, $filters:expr, $acc:expr, $channel:ident, $nf:ident $(, $s2:ident)?) => {{
        macro_rules! group {
            ($ch:expr, $active:expr) => {
                $channel::<0, $nf $(, $s2)?>(&mut $acc, $ch(0), $prm);
                group!(@if $ch, $active, 1);
                group!(@if $ch, $active, 2);
                group!(@if $ch, $active, 3);
                group!(@if $ch, $active, 4);
                group!(@if $ch, $active, 5);
                group!(@if $ch, $active, 6);
                group!(@if $ch, $active, 7);
            };
            (@if $ch:expr, $active:expr, $r:literal) => {
                if $r < $active {
                    $channel::<$r, $nf $(, $s2)?>(&mut $acc, $ch($r), $prm);
                }
            };
        }
        let x0 = $buf.as_ptr().add($at.q);
        let (mut x, mut w) = (x0, $filters);
        let full = $prm.ci - $prm.ci % GROUP;
        let mut i0 = 0;
        while i0 < full {
            let mut next = |_: usize| -> (*const f32, [*const u8; $nf]) {
                let now = (x, w);
                x = x.add($prm.band);
                w = w.map(|f| f.wrapping_add(4 * T));
                now
            };
            group!(next, GROUP);
            i0 += GROUP;
        }
        if i0 < $prm.ci {
            let ch = |c: usize| -> (*const f32, [*const u8; $nf]) {
                (x.add(c * $prm.band), w.map(|f| f.wrapping_add(4 * T * c)))
            };
            group!(ch, $prm.ci - i0);
        }
    }};
}

/// AVX-512F: 16 pixels per ZMM register, [`F`] = 3 filters per block.
struct Avx512;

impl Kernel for Avx512 {
    const PX: usize = 16;
    const STRIDE2: bool = true;
    unsafe fn filters(c: &Call<'_>, at: &Pixels, output: &mut [f32]) {
        filters_avx512(c, at, output)
    }
}

/// [`Kernel::filters`] on AVX-512: blocks of [`F`] filters, then one at a time.
///
/// # Safety
/// AVX-512F; as [`Kernel::filters`].
#[target_feature(enable = "avx2,avx512f")]
unsafe fn filters_avx512(c: &Call<'_>, at: &Pixels, output: &mut [f32]) {
    let co = c.bias.len();
    let mut o = 0;
    macro_rules! blocks {
        ($s2:literal) => {{
            while o + F <= co {
                block::<F, $s2>(c, o, at, output);
                o += F;
            }
            while o < co {
                block::<1, $s2>(c, o, at, output);
                o += 1;
            }
        }};
    }
    if c.prm.s2 {
        blocks!(true)
    } else {
        blocks!(false)
    }
}

/// Filters `o .. o + NF` over the 16 band positions of `at`: every channel group, the tree, the
/// bias, the activation and the store of the valid lanes.
///
/// # Safety
/// AVX-512F; the lengths checked in [`run`]; `o + NF ≤ co`; `buf` holds `ci` planes
/// of `band` floats and [`SLACK`] more.
#[target_feature(enable = "avx2,avx512f")]
#[inline]
unsafe fn block<const NF: usize, const S2: bool>(
    c: &Call<'_>,
    o: usize,
    at: &Pixels,
    output: &mut [f32],
) {
    let mut acc = [[_mm512_setzero_ps(); LANES]; NF];
    let filters: [*const u8; NF] =
        core::array::from_fn(|f| c.wb.as_ptr().add(4 * (o + f) * c.prm.per_out));
    channel_groups!(c.prm, c.buf, at, filters, acc, channel, NF, S2);
    let n = at.valid.count_ones();
    let store: __mmask16 = if n >= 16 { !0 } else { (1 << n) - 1 };
    for (f, lanes) in acc.iter().enumerate() {
        let [a0, a1, a2, a3, a4, a5, a6, a7] = *lanes;
        let s = _mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
            _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)),
        );
        let y = activate(
            _mm512_add_ps(s, _mm512_set1_ps(c.bias.get(o + f).unwrap_or(0.0))),
            c.act,
        );
        // SAFETY: the `n` stored values are output pixels `first .. first + n` of filter
        // `o + f`: `(o + f)·plane + first + n ≤ co·plane ≤ output.len()`.
        _mm512_mask_storeu_ps(
            output.as_mut_ptr().add((o + f) * c.prm.plane + at.first),
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
unsafe fn channel<const R: usize, const NF: usize, const S2: bool>(
    acc: &mut [[__m512; LANES]; NF],
    (x, w): (*const f32, [*const u8; NF]),
    prm: &Params,
) {
    let wp = prm.wp;
    macro_rules! taps {
        ($($t:literal)*) => {$(
            let off = if S2 { prm.taps[$t] } else { ($t / 3) * wp + $t % 3 };
            tap::<NF>(acc, x.add(off), &w, $t, (R * T + $t) % LANES);
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

/// AVX2: 8 pixels per YMM register, one filter per block (8 lane accumulators; two filters
/// would take all 16 registers).
struct Avx2;

impl Kernel for Avx2 {
    const PX: usize = 8;
    // Tried: three loads per window row from the phase planes, one filter per pass: 16 → 32
    // at 28 × 28 took 70 µs against the im2col kernel's 50 µs.
    const STRIDE2: bool = false;
    unsafe fn filters(c: &Call<'_>, at: &Pixels, output: &mut [f32]) {
        filters_avx2(c, at, output)
    }
}

/// [`Kernel::filters`] on AVX2: one filter at a time.
///
/// # Safety
/// AVX2; as [`Kernel::filters`].
#[target_feature(enable = "avx2")]
unsafe fn filters_avx2(c: &Call<'_>, at: &Pixels, output: &mut [f32]) {
    for o in 0..c.bias.len() {
        block_avx2::<1>(c, o, at, output);
    }
}

/// [`block`] on AVX2 for the 8 band positions of `at`; the valid lanes compressed by
/// [`store_valid_avx2`].
///
/// # Safety
/// AVX2; as [`block`].
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn block_avx2<const NF: usize>(c: &Call<'_>, o: usize, at: &Pixels, output: &mut [f32]) {
    let mut acc = [[_mm256_setzero_ps(); LANES]; NF];
    let filters: [*const u8; NF] =
        core::array::from_fn(|f| c.wb.as_ptr().add(4 * (o + f) * c.prm.per_out));
    channel_groups!(c.prm, c.buf, at, filters, acc, channel_avx2, NF);
    for (f, lanes) in acc.iter().enumerate() {
        let [a0, a1, a2, a3, a4, a5, a6, a7] = *lanes;
        let s = _mm256_add_ps(
            _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
            _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)),
        );
        let y = activate_avx2(
            _mm256_add_ps(s, _mm256_set1_ps(c.bias.get(o + f).unwrap_or(0.0))),
            c.act,
        );
        store_valid_avx2(
            output.as_mut_ptr().add((o + f) * c.prm.plane + at.first),
            y,
            at.valid,
        );
    }
}

/// For each 8-bit lane mask, the indices of its set lanes in increasing order, packed one per
/// byte from the low byte (`vpermps` indices for a compress).
const COMPRESS8: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut m = 0;
    while m < 256 {
        let (mut packed, mut k, mut l) = (0u64, 0, 0);
        while l < 8 {
            if m & (1 << l) != 0 {
                packed |= (l as u64) << (8 * k);
                k += 1;
            }
            l += 1;
        }
        t[m] = packed;
        m += 1;
    }
    t
};

/// The lanes of `y` set in `valid` (bits 0–7), compressed together and stored at `out ..`:
/// one store when all 8 are valid, else a `vpermps` by [`COMPRESS8`] and a masked store of
/// the first `popcount(valid)` lanes (no branch per lane).
///
/// # Safety
/// AVX2; `popcount(valid)` floats at `out` are writable.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn store_valid_avx2(out: *mut f32, y: __m256, valid: u16) {
    let valid = valid & 0xFF;
    if valid == 0xFF {
        _mm256_storeu_ps(out, y);
        return;
    }
    let idx = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(COMPRESS8[usize::from(valid)] as i64));
    let n = _mm256_set1_epi32(valid.count_ones() as i32);
    let first_n = _mm256_cmpgt_epi32(n, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(out, first_n, _mm256_permutevar8x32_ps(y, idx));
}

/// [`channel`] on AVX2: per row `ky` of the window, two unaligned loads give taps `kx = 0` and
/// `kx = 2` (`a` = 8 floats from `x + ky·wp`, `c` = from 2 floats further), and one `vshufps`
/// makes `kx = 1` from them: in each 128-bit half, `[a1, a2, c1, c2]` (a shuffle port that the
/// multiplies and adds do not use; a third load was often split across cache lines, and
/// `vperm2f128` + two `vpalignr` kept the shuffle port busier than the arithmetic).
///
/// # Safety
/// AVX2; `x .. x + 2·wp + 10` lies inside the band buffer, and every filter pointer has 9
/// weights.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn channel_avx2<const R: usize, const NF: usize>(
    acc: &mut [[__m256; LANES]; NF],
    (x, w): (*const f32, [*const u8; NF]),
    prm: &Params,
) {
    let wp = prm.wp;
    macro_rules! rows {
        ($($ky:literal)*) => {$(
            let row = x.add($ky * wp);
            let a = _mm256_loadu_ps(row);
            let c = _mm256_loadu_ps(row.add(2));
            let b = _mm256_shuffle_ps::<0b10_01_10_01>(a, c);
            tap_avx2::<NF>(acc, a, &w, 3 * $ky, (R * T + 3 * $ky) % LANES);
            tap_avx2::<NF>(acc, b, &w, 3 * $ky + 1, (R * T + 3 * $ky + 1) % LANES);
            tap_avx2::<NF>(acc, c, &w, 3 * $ky + 2, (R * T + 3 * $ky + 2) % LANES);
        )*};
    }
    rows!(0 1 2);
}

/// [`tap`] on AVX2: `acc[f][lane] += W[f][t] · xv`.
///
/// # Safety
/// AVX2; every filter pointer has `t + 1` weights.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn tap_avx2<const NF: usize>(
    acc: &mut [[__m256; LANES]; NF],
    xv: __m256,
    w: &[*const u8; NF],
    t: usize,
    lane: usize,
) {
    for f in 0..NF {
        let wv = _mm256_set1_ps(w[f].add(4 * t).cast::<f32>().read_unaligned());
        acc[f][lane] = _mm256_add_ps(acc[f][lane], _mm256_mul_ps(wv, xv));
        // The barrier of [`tap`].
        // SAFETY: an empty asm block; the register keeps its value.
        core::arch::asm!(
            "/* {0} */",
            inout(ymm_reg) acc[f][lane],
            options(nostack, preserves_flags)
        );
    }
}

/// [`activate`] on 8 values.
#[target_feature(enable = "avx2")]
#[inline]
fn activate_avx2(y: __m256, act: Activation) -> __m256 {
    let zero = _mm256_setzero_ps();
    let below = |y: __m256| _mm256_blendv_ps(y, zero, _mm256_cmp_ps::<_CMP_LT_OQ>(y, zero));
    match act {
        Activation::None => y,
        Activation::Relu => below(y),
        Activation::Relu6 => {
            let six = _mm256_set1_ps(6.0);
            let y = below(y);
            _mm256_blendv_ps(y, six, _mm256_cmp_ps::<_CMP_GT_OQ>(y, six))
        }
    }
}
