//! The input layout of the pixels-in-lanes Conv2d kernels ([`super::pixels_s8`],
//! [`super::pixels_f32`]): the taps of 8 neighbouring output pixels are 8 consecutive elements.
//!
//! The input is copied once per call into a stack buffer, padded (the padding as explicit
//! zeros: what a padded tap contributes) and split by column phase: padded column `c` of padded
//! row `y` of channel group `m` sits at
//!
//! `((m·hp + y)·rl + (c mod sw)·wq + ⌊c / sw⌋)·E`
//!
//! with `hp × wp` the padded size, `wq = ⌈wp / sw⌉` the columns per phase, `rl = sw·wq` the
//! elements of a row and `E` the elements per pixel (2 for int8: two channels interleaved, 1 for
//! f32). Output pixel `ox` reads padded column `sw·ox + kx`: phase `kx mod sw`, index
//! `ox + ⌊kx / sw⌋`, so at any stride the pixels `ox0 .. ox0 + 8` of one tap are consecutive:
//! segment `(oy, ox0)` starts at `base = (sh·oy·rl + ox0)·E`, and tap `(m, ky, kx)` is
//! `base + off` with `off = ((m·hp + ky)·rl + (kx mod sw)·wq + ⌊kx / sw⌋)·E`, for every segment.
//! A segment's last pixels may lie past its output row; their lanes are computed from whatever
//! follows and never written.

use crate::kernels::ConvGeometry;

/// Output pixels per segment (one 8-lane vector).
pub(super) const SEG: usize = 8;

/// The layout of one call (see the module docs).
#[derive(Clone, Copy, Debug)]
pub(super) struct Grid {
    /// Padded rows per channel group.
    pub hp: usize,
    /// Columns per phase.
    pub wq: usize,
    /// Elements of a padded row (`sw·wq`), per element of a pixel.
    pub rl: usize,
    /// Elements per pixel (`E`).
    pub e: usize,
    /// Elements the buffer must hold: every element a segment load can reach.
    pub len: usize,
    /// Output segments per output row.
    pub per_row: usize,
}

impl Grid {
    /// The layout of `g` with `groups` channel groups of `e` elements per pixel, or `None` when
    /// a size overflows or a load could reach past `cap` elements.
    pub(super) fn new(g: &ConvGeometry, groups: usize, e: usize, cap: usize) -> Option<Self> {
        let win = g.win;
        let hp = g.h.checked_add(win.pad_top)?.checked_add(win.pad_bottom)?;
        let wp = g.w.checked_add(win.pad_left)?.checked_add(win.pad_right)?;
        let (sh, sw) = (win.sh.max(1), win.sw.max(1));
        let wq = wp.div_ceil(sw);
        let rl = sw.checked_mul(wq)?;
        let per_row = g.ow.div_ceil(SEG);
        let grid = Self {
            hp,
            wq,
            rl,
            e,
            len: 0,
            per_row,
        };
        if groups == 0 || g.oh == 0 || g.ow == 0 || win.kh == 0 || win.kw == 0 {
            return Some(grid);
        }
        // The furthest element any load reads: the last segment's base, the last tap's offset,
        // then one segment of pixels.
        let last_base = sh
            .checked_mul(g.oh - 1)?
            .checked_mul(rl)?
            .checked_add((per_row - 1) * SEG)?
            .checked_mul(e)?;
        let last_off = grid.offset(groups - 1, win.kh - 1, win.kw - 1, sw)?;
        let len = last_base.checked_add(last_off)?.checked_add(SEG * e)?;
        let data = groups.checked_mul(hp)?.checked_mul(rl)?.checked_mul(e)?;
        let len = len.max(data);
        (len <= cap).then_some(Self { len, ..grid })
    }

    /// Offset of tap `(m, ky, kx)` from a segment's base (stride `sw`).
    #[inline(always)]
    pub(super) fn offset(&self, m: usize, ky: usize, kx: usize, sw: usize) -> Option<usize> {
        let row = m
            .checked_mul(self.hp)?
            .checked_add(ky)?
            .checked_mul(self.rl)?;
        let col = (kx % sw) * self.wq + kx / sw;
        row.checked_add(col)?.checked_mul(self.e)
    }

    /// Segment `s` of `g`'s output, row-major: `(base, output row, first column, valid pixels)`.
    #[inline(always)]
    pub(super) fn segment(&self, g: &ConvGeometry, s: usize) -> (usize, usize, usize, usize) {
        let (oy, ox0) = (s / self.per_row, (s % self.per_row) * SEG);
        let base = (g.win.sh * oy * self.rl + ox0) * self.e;
        (base, oy, ox0, (g.ow - ox0).min(SEG))
    }

    /// Copies `input` (`ci` planes of `h × w`) into `buf` in the layout of the module docs:
    /// channel `i` is element `i mod E` of group `⌊i / E⌋`, converted by `f`. `buf` must start
    /// zeroed (the padding, the phase tails, a group's missing channel).
    #[inline(always)]
    pub(super) fn fill<T: Copy, U: Copy>(
        &self,
        g: &ConvGeometry,
        input: &[T],
        buf: &mut [U],
        f: impl Fn(T) -> U,
    ) {
        let (win, e) = (g.win, self.e);
        let sw = win.sw.max(1);
        if g.w == 0 {
            return;
        }
        if sw == 1 && e == 2 {
            self.fill_pairs(g, input, buf, f);
            return;
        }
        for (r, src) in input.chunks_exact(g.w).take(g.ci * g.h).enumerate() {
            let (i, y) = (r / g.h, r % g.h);
            let row = ((i / e) * self.hp + y + win.pad_top) * self.rl;
            if sw == 1 {
                let s = (row + win.pad_left) * e + i % e;
                let Some(dst) = buf.get_mut(s..s + e * (g.w - 1) + 1) else {
                    continue;
                };
                for (d, &v) in dst.iter_mut().step_by(e).zip(src) {
                    *d = f(v);
                }
                continue;
            }
            // Phase `ph` holds the padded columns `c ≡ ph (mod sw)`: input columns
            // `x0, x0 + sw, …` with `x0 + pad_left ≡ ph`.
            for ph in 0..sw {
                let x0 = (ph + sw - win.pad_left % sw) % sw;
                let c0 = x0 + win.pad_left;
                let s = (row + ph * self.wq + c0 / sw) * e + i % e;
                let Some(dst) = buf.get_mut(s..) else {
                    continue;
                };
                let src = src.get(x0..).unwrap_or(&[]).iter().step_by(sw);
                for (d, &v) in dst.iter_mut().step_by(e).zip(src) {
                    *d = f(v);
                }
            }
        }
    }

    /// [`Self::fill`] for stride 1 and two channels per pixel (the int8 kernel's layout): row
    /// `y` of channels `2m` and `2m + 1` becomes one run of `2·w` elements, `f(a[x])` then
    /// `f(b[x])` for each column `x`, written 16 columns at a time from fixed-size arrays so
    /// that the compiler emits vector widening and interleaving (element by element, the copy
    /// was a fifth of a 16 → 16-channel 3×3 layer on AVX2). An odd last channel fills only
    /// the even elements; the odd ones stay zero.
    #[inline(always)]
    fn fill_pairs<T: Copy, U: Copy>(
        &self,
        g: &ConvGeometry,
        input: &[T],
        buf: &mut [U],
        f: impl Fn(T) -> U,
    ) {
        /// Columns per unrolled step.
        const K: usize = 16;
        let (win, w) = (g.win, g.w);
        let plane = g.h * w;
        let row_of = |i: usize, y: usize| input.get(i * plane + y * w..i * plane + (y + 1) * w);
        for m in 0..g.ci.div_ceil(2) {
            for y in 0..g.h {
                let s = ((m * self.hp + y + win.pad_top) * self.rl + win.pad_left) * 2;
                let (Some(dst), Some(a)) = (buf.get_mut(s..s + 2 * w), row_of(2 * m, y)) else {
                    continue;
                };
                let Some(b) = row_of(2 * m + 1, y).filter(|_| 2 * m + 1 < g.ci) else {
                    for (d, &v) in dst.iter_mut().step_by(2).zip(a) {
                        *d = f(v);
                    }
                    continue;
                };
                let mut dc = dst.chunks_exact_mut(2 * K);
                let (mut ac, mut bc) = (a.chunks_exact(K), b.chunks_exact(K));
                for ((d, a), b) in (&mut dc).zip(&mut ac).zip(&mut bc) {
                    let (Ok(d), Ok(a), Ok(b)) = (
                        <&mut [U; 2 * K]>::try_from(d),
                        <&[T; K]>::try_from(a),
                        <&[T; K]>::try_from(b),
                    ) else {
                        continue;
                    };
                    for k in 0..K {
                        d[2 * k] = f(a[k]);
                        d[2 * k + 1] = f(b[k]);
                    }
                }
                let tail = dc.into_remainder().chunks_exact_mut(2);
                for ((d, &x), &y) in tail.zip(ac.remainder()).zip(bc.remainder()) {
                    d[0] = f(x);
                    d[1] = f(y);
                }
            }
        }
    }
}
