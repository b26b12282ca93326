//! int8 Conv2d at stride 1 with output pixels in the vector lanes (AVX2; host only).
//!
//! The im2col kernels ([`super::im2col`]) copy every pixel's taps into a row and reduce each
//! (filter, pixel) dot product across the lanes of a register at the end. At stride 1 the taps
//! of 8 neighbouring output pixels are 8 neighbouring input values, so neither is needed:
//!
//! - **Input, once per call**: `x − zp_in` as i16, with the padding as explicit zeros (what a
//!   padded tap contributes), channels in pairs interleaved per pixel:
//!   `xp[m][y][x] = (x_{2m}[y][x], x_{2m+1}[y][x])` (`m < ⌈ci/2⌉`, a zero channel past an odd
//!   `ci`), rows of the padded width `wp = w + pad_left + pad_right`.
//! - **Filters, per block of [`F`] filters**: the same pairs of taps as one i32 each,
//!   `w[o][2m][ky][kx]` in the low half and `w[o][2m+1][ky][kx]` in the high half, for every
//!   tap pair `t = (m·kh + ky)·kw + kx`.
//! - **Micro-kernel**: a segment is 8 output pixels `ox0 .. ox0 + 8` of one output row `oy`
//!   (the last of a row may hold fewer). Tap pair `t` of the segment is one 32-byte load,
//!   `xp[m][oy + ky][ox0 + kx .. ox0 + kx + 8]`, and `vpmaddwd` with the broadcast weight pair
//!   gives the 8 pixels' `w₀·x₀ + w₁·x₁` (exact: `|w·x + w·x| ≤ 2·128·255`); `vpaddd` adds it to
//!   the filter's accumulator, which started at the bias. [`SEGS`] segments × [`F`] filters per
//!   pass share each weight broadcast and each input load: 8 accumulators, 2 input vectors and
//!   a weight vector in the 16 YMM registers. The sum is the reference's wrapping i32 sum in
//!   another order, which integer addition does not see.
//! - **Output**: each accumulator is 8 pixels of one filter: the row requantization of
//!   [`super::requant::Rq8`] (the reference's bits), then 8 bytes, or the segment's valid
//!   pixels at a row's end.
//!
//! Shapes it does not take (`false`, nothing written): strides other than 1, 1×1 windows (the
//! im2col kernel reads each value once there), one input channel ([`super::single`]), a padded
//! input over [`XP`] values, more than [`MAX_T`] tap pairs.

use core::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_dpwssd_epi32, _mm256_loadu_si256, _mm256_madd_epi16,
    _mm256_set1_epi32,
};

use super::pixels::Grid;
use super::requant::{store8, RowQuant, Rq8};
use super::single::pack_pair;
use crate::kernels::params::PerChannelQuant;
use crate::kernels::ConvGeometry;
use crate::quant::activation_range;
use crate::tensor::{Activation, I32Data, I8Data};

/// Filters per pass (AVX2: 16 YMM registers).
const F: usize = 4;
/// Segments (8 output pixels each) per pass (AVX2).
const SEGS: usize = 2;
/// Filters per pass with VNNI (32 registers: 16 accumulators, 2 input vectors, a weight).
const F_VNNI: usize = 8;
/// Capacity of the padded, paired input in i16 (32 KiB and a segment).
const XP: usize = 16384 + 16;
/// Most tap pairs `⌈ci/2⌉·kh·kw` (e.g. 113 channels of a 3×3 window).
const MAX_T: usize = 512;

/// `acc + (x₀·w₀ + x₁·w₁ per i32 lane)` for i16 pairs: how a path multiplies and adds.
trait PairMac {
    /// # Safety
    /// The CPU must have the implementation's target features.
    unsafe fn mac(acc: __m256i, x: __m256i, w: __m256i) -> __m256i;
}

/// AVX2: `vpmaddwd` then `vpaddd`.
struct Madd;

impl PairMac for Madd {
    #[inline(always)]
    unsafe fn mac(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))
    }
}

/// AVX-512 VNNI: `vpdpwssd`, the same two products and the add in one instruction (no
/// saturation: the `s` variant is `vpdpwssds`).
struct Dpwssd;

impl PairMac for Dpwssd {
    #[inline(always)]
    unsafe fn mac(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        _mm256_dpwssd_epi32(acc, x, w)
    }
}

/// `dst[m·W + k] = pack_pair(w[2m][k], w[2m + 1][k])` for a filter `w` of `W`-tap channels (the
/// second channel of the last pair 0 when the count is odd). A fixed `W` lets the compiler
/// vectorize the full pairs.
#[inline(always)]
fn pack_pairs<const W: usize>(w: &[u8], dst: &mut [i32]) {
    let mut src = w.chunks_exact(2 * W);
    let mut out = dst.chunks_exact_mut(W);
    // `src` first: when it runs out, `zip` must not have taken the odd channel's chunk of `out`.
    for (s, d) in (&mut src).zip(&mut out) {
        let (a, b) = s.split_at(W);
        for k in 0..W {
            d[k] = pack_pair(a[k], b[k]);
        }
    }
    if let Some(d) = out.next() {
        for (d, &a) in d.iter_mut().zip(src.remainder()) {
            *d = pack_pair(a, 0);
        }
    }
}

/// [`pack_pairs`] for any channel size `window`.
fn pack_pairs_any(window: usize, w: &[u8], dst: &mut [i32]) {
    let mut channels = w.chunks_exact(window);
    for d in dst.chunks_exact_mut(window) {
        let lo = channels.next().unwrap_or(&[]);
        let hi = channels.next().unwrap_or(&[]);
        for (k, (d, &a)) in d.iter_mut().zip(lo).enumerate() {
            *d = pack_pair(a, hi.get(k).copied().unwrap_or(0));
        }
    }
}

/// [`crate::kernels::conv2d_s8`] after its checks, for the shapes of the module docs (AVX2).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn conv2d_s8_avx2(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) -> bool {
    conv2d_s8::<Madd, F, SEGS>(g, act, q, input, weights, bias, output)
}

/// [`conv2d_s8_avx2`] with `vpdpwssd`.
///
/// # Safety
/// The CPU must support AVX-512F, BW, VL and VNNI.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn conv2d_s8_vnni(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) -> bool {
    conv2d_s8::<Dpwssd, F_VNNI, SEGS>(g, act, q, input, weights, bias, output)
}

/// The kernel, with `M` as its multiply-add.
///
/// # Safety
/// The CPU must support AVX2 and `M`'s target features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn conv2d_s8<M: PairMac, const F: usize, const SEGS: usize>(
    g: &ConvGeometry,
    act: Activation,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) -> bool {
    let win = g.win;
    let (kh, kw) = (win.kh, win.kw);
    // Stride 2 ran slower here than in the im2col kernels (AVX2 ≈ equal, VNNI 1.4–1.7×
    // slower on resnet8's layers: 14-pixel rows fill 2 segments of 8, and `vpdpbusd` does
    // twice the work of `vpdpwssd`).
    if kh * kw < 2 || g.ci < 2 || win.sh != 1 || win.sw != 1 {
        return false;
    }
    let pairs = g.ci.div_ceil(2);
    let taps = pairs * kh * kw;
    let Some(grid) = Grid::new(g, pairs, 2, XP) else {
        return false;
    };
    if taps > MAX_T {
        return false;
    }
    let (oh, ow, co) = (g.oh, g.ow, bias.len());
    let plane = oh * ow;
    let wb = weights.as_bytes();
    if plane == 0 || co == 0 {
        return true;
    }
    if input.len() < g.ci * g.h * g.w || wb.len() < co * g.per_out || output.len() < co * plane {
        return false;
    }

    // The padded input, channels paired per pixel, split by column phase.
    let zp = i16::from(q.input_zp);
    // Only the `grid.len` elements that loads reach are cleared, so that a small layer does not
    // clear 32 KiB on every call.
    let mut store = core::mem::MaybeUninit::<[i16; XP]>::uninit();
    let xp: &mut [i16] = {
        let p = store.as_mut_ptr().cast::<i16>();
        // SAFETY: `grid.len ≤ XP` (`Grid::new`); the elements are zeroed before the slice
        // that reads them exists.
        core::ptr::write_bytes(p, 0, grid.len);
        core::slice::from_raw_parts_mut(p, grid.len)
    };
    grid.fill(g, input, xp, |v| i16::from(v) - zp);
    // Offset (in i16) of tap pair `t` from a segment's base.
    let mut offsets = [0usize; MAX_T];
    let mut t = 0;
    for m in 0..pairs {
        for ky in 0..kh {
            for kx in 0..kw {
                offsets[t] = grid.offset(m, ky, kx, win.sw).unwrap_or(0);
                t += 1;
            }
        }
    }
    let offsets = &offsets[..taps];

    let range = activation_range(act, q.output);
    let per_out = g.per_out;
    let segments = oh * grid.per_row;
    let mut wpk = [[0i32; MAX_T]; F];
    let xb = xp.as_ptr();
    let mut o0 = 0;
    while o0 < co {
        let nf = F.min(co - o0);
        // Filters past `nf` keep channel 0's constants; their rows are not written.
        let mut rq = [Rq8::new(&RowQuant::of(q, 0, range)); F];
        let mut b = [0i32; F];
        for f in 0..F {
            let w_f = &mut wpk[f][..taps];
            if f >= nf {
                w_f.fill(0);
                continue;
            }
            let o = o0 + f;
            let w_o = &wb[o * per_out..(o + 1) * per_out];
            if kh * kw == 9 {
                pack_pairs::<9>(w_o, w_f);
            } else {
                pack_pairs_any(kh * kw, w_o, w_f);
            }
            b[f] = bias.get(o).unwrap_or(0);
            rq[f] = Rq8::new(&RowQuant::of(q, o, range));
        }
        let mut s = 0;
        while s < segments {
            // The last pass of an odd count computes its segment twice and writes it once.
            let seg: [(usize, usize, usize, usize); SEGS] =
                core::array::from_fn(|k| grid.segment(g, (s + k).min(segments - 1)));
            let base: [usize; SEGS] = core::array::from_fn(|k| seg[k].0);
            let mut acc: [[__m256i; SEGS]; F] =
                core::array::from_fn(|f| [_mm256_set1_epi32(b[f]); SEGS]);
            for (t, &off) in offsets.iter().enumerate() {
                // SAFETY: `base[k] + off + 16 ≤ grid.len ≤ XP` (`Grid::new`).
                let x: [__m256i; SEGS] = core::array::from_fn(|k| {
                    _mm256_loadu_si256(xb.add(base[k] + off).cast::<__m256i>())
                });
                for f in 0..F {
                    let w = _mm256_set1_epi32(wpk[f][t]);
                    for k in 0..SEGS {
                        acc[f][k] = M::mac(acc[f][k], x[k], w);
                    }
                }
            }
            for f in 0..nf {
                let o = o0 + f;
                for k in 0..SEGS.min(segments - s) {
                    let (_, oy, ox0, n) = seg[k];
                    let at = o * plane + oy * ow + ox0;
                    let v = rq[f].requantize(acc[f][k]);
                    if n == 8 {
                        if let Some(y) = output.get_mut(at..at + 8) {
                            // SAFETY: `y` holds 8 bytes.
                            store8(v, y.as_mut_ptr());
                        }
                    } else {
                        let mut tmp = [0i8; 8];
                        // SAFETY: `tmp` holds 8 bytes.
                        store8(v, tmp.as_mut_ptr());
                        if let Some(y) = output.get_mut(at..at + n) {
                            y.copy_from_slice(&tmp[..n]);
                        }
                    }
                }
            }
            s += SEGS;
        }
        o0 += nf;
    }
    true
}
