//! Average pooling, int8 (same quantization in and out), exactly TFLite's.

use super::params::PoolParams;
use super::sum_s8::sum_s8;
use super::{pool_geometry, pool_taps, MAX_POOL_COUNT};
use crate::error::{Error, Result};

/// `output[c][oy][ox]` = the rounded mean of the in-bounds taps of the window at
/// `(oy·sh − pad_top, ox·sw − pad_left)`, bit for bit TFLite's
/// `reference_integer_ops::AveragePool` for int8 (output quantization = input quantization):
/// `acc` = the i32 sum of the `n` in-bounds taps (padded taps are not counted),
/// `acc > 0 ? (acc + n/2) / n : (acc − n/2) / n` (truncating division, i.e. half away from zero),
/// then clamped to `[−128, 127]`. TFLite then clamps to the fused activation range; that is a
/// separate [`super::clamp_s8`] here (the same result, as the activation range lies in
/// `[−128, 127]`). Input `[c][h][w]`, output `[c][oh][ow]`, `(oh, ow) = window.out_dims(h, w)`.
///
/// `Err(KernelBadArguments)` if the window is invalid for `h × w`, a slice length differs from
/// `c·h·w` / `c·oh·ow`, or a window can cover more than [`MAX_POOL_COUNT`] input taps
/// (`min(kh, h) · min(kw, w)`, so the i32 sum cannot overflow).
pub fn avg_pool2d_s8(p: &PoolParams, input: &[i8], output: &mut [i8]) -> Result<()> {
    let (oh, ow) = pool_geometry(p, input.len(), output.len())?;
    let (h, w, win) = (p.h, p.w, p.window);
    let max_taps = win.kh.min(h).checked_mul(win.kw.min(w));
    if max_taps.is_none_or(|n| n > MAX_POOL_COUNT) {
        return Err(Error::KernelBadArguments);
    }
    let mut out = output.iter_mut();
    for plane in input.chunks_exact(h * w) {
        for oy in 0..oh {
            let (y0, y1) = pool_taps(oy, win.sh, win.pad_top, win.kh, h);
            for ox in 0..ow {
                let (x0, x1) = pool_taps(ox, win.sw, win.pad_left, win.kw, w);
                let acc = if x0 == 0 && x1 == w {
                    // Whole rows (global pooling): one contiguous run.
                    sum_s8(plane.get(y0 * w..y1 * w).unwrap_or(&[]))
                } else {
                    let mut acc = 0i32;
                    for y in y0..y1 {
                        for &v in &plane[y * w + x0..y * w + x1] {
                            acc += i32::from(v);
                        }
                    }
                    acc
                };
                // n ≥ 1 for every valid window; `max(1)` only keeps this total.
                let n = ((y1 - y0) * (x1 - x0)).max(1) as i32;
                let avg = if acc > 0 {
                    (acc + n / 2) / n
                } else {
                    (acc - n / 2) / n
                };
                if let Some(o) = out.next() {
                    *o = avg.clamp(-128, 127) as i8;
                }
            }
        }
    }
    Ok(())
}
