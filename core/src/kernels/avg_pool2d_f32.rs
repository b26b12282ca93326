//! Average pooling, f32 (padded taps are not counted).

use super::params::PoolParams;
use super::{lanes_sum, pool_geometry, pool_taps, LANES};
use crate::error::Result;

/// `output[c][oy][ox]` = the mean of the in-bounds taps of the window at
/// `(oy·sh − pad_top, ox·sw − pad_left)` (TFLite AVERAGE_POOL_2D: padded taps are skipped and not
/// counted). Input `[c][h][w]`, output `[c][oh][ow]` with `(oh, ow) = window.out_dims(h, w)`.
///
/// Order: the `n` in-bounds taps, numbered `j = 0 … n−1` in row-major window order, are summed in
/// the 8-lane order of the module docs (`lane[j mod 8]`, fixed tree), then one f32 division
/// `sum / n` (`n` is exact in f32). Every valid window has `n ≥ 1`. A fused activation is a
/// separate [`super::activation_f32`] (TFLite's clamp after the mean is the same).
///
/// `Err(KernelBadArguments)` if the window is invalid for `h × w` or a slice length differs from
/// `c·h·w` / `c·oh·ow`.
pub fn avg_pool2d_f32(p: &PoolParams, input: &[f32], output: &mut [f32]) -> Result<()> {
    let (oh, ow) = pool_geometry(p, input.len(), output.len())?;
    let (h, w, win) = (p.h, p.w, p.window);
    let mut out = output.iter_mut();
    for plane in input.chunks_exact(h * w) {
        for oy in 0..oh {
            let (y0, y1) = pool_taps(oy, win.sh, win.pad_top, win.kh, h);
            for ox in 0..ow {
                let (x0, x1) = pool_taps(ox, win.sw, win.pad_left, win.kw, w);
                let mut lanes = [0.0f32; LANES];
                let mut j = 0usize;
                for y in y0..y1 {
                    for &v in &plane[y * w + x0..y * w + x1] {
                        lanes[j % LANES] += v;
                        j += 1;
                    }
                }
                if let Some(o) = out.next() {
                    *o = lanes_sum(&lanes) / j as f32;
                }
            }
        }
    }
    Ok(())
}
