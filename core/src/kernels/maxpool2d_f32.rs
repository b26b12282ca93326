//! Max pooling, f32, CHW.

use super::params::PoolParams;
use crate::error::Result;

/// `output[c][oy][ox] = max_{ky,kx} input[c][oy·sh + ky − pad_top][ox·sw + kx − pad_left]` over
/// the `kh × kw` window taps inside the input (padded taps are skipped, as in TFLite). The maximum
/// is taken in row-major window order, replacing the running value only when `v > max`, so the
/// first tap wins ties and NaN never replaces a number (a NaN first tap stays). `input` is
/// `[c][h][w]`, `output` `[c][oh][ow]` with `(oh, ow) = p.window.out_dims(h, w)`.
///
/// `Err(KernelBadArguments)` if a slice length does not match `p` or the window is invalid.
pub fn maxpool2d_f32(p: &PoolParams, input: &[f32], output: &mut [f32]) -> Result<()> {
    super::maxpool2d(p, input, output)
}
