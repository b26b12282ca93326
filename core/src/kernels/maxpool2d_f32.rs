//! Max pooling, f32, CHW.

use super::{window_out_dim, Chw};
use crate::error::{Error, Result};
use crate::layer::MaxPool2d;

/// `output[c][oy][ox] = max over the k × k window at (oy·s, ox·s)` (no padding). The maximum is
/// taken in row-major window order, replacing the running value only when `v > max`, so the
/// first element wins ties and NaN never replaces a number (a NaN in the first position stays).
/// `output` is `[c][oh][ow]`, `oh = (h − k)/s + 1`.
pub fn maxpool2d_f32(pool: &MaxPool2d, input: &[f32], dims: Chw, output: &mut [f32]) -> Result<()> {
    let (k, s) = (pool.kernel as usize, pool.stride as usize);
    let oh = window_out_dim(dims.h, k, s, 0).ok_or(Error::KernelBadArguments)?;
    let ow = window_out_dim(dims.w, k, s, 0).ok_or(Error::KernelBadArguments)?;
    if Some(input.len()) != dims.numel()
        || Some(output.len()) != dims.c.checked_mul(oh).and_then(|n| n.checked_mul(ow))
    {
        return Err(Error::KernelBadArguments);
    }
    let (h, w) = (dims.h, dims.w);
    let mut out_iter = output.iter_mut();
    for plane in input.chunks_exact(h * w) {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = plane[oy * s * w + ox * s];
                for ky in 0..k {
                    let row = &plane[(oy * s + ky) * w + ox * s..][..k];
                    for &v in row {
                        if v > m {
                            m = v;
                        }
                    }
                }
                if let Some(out) = out_iter.next() {
                    *out = m;
                }
            }
        }
    }
    Ok(())
}
