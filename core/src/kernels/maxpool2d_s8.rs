//! Max pooling, int8, CHW (same quantization in and out).

use super::params::PoolParams;
use crate::error::Result;

/// `output[c][oy][ox] = max_{ky,kx} input[c][oy·sh + ky − pad_top][ox·sw + kx − pad_left]` over
/// the `kh × kw` window taps inside the input (padded taps are skipped, as in TFLite's int8
/// `MaxPool`). Works on the quantized values directly (max commutes with the monotonic
/// dequantization). `input` is `[c][h][w]`, `output` `[c][oh][ow]` with
/// `(oh, ow) = p.window.out_dims(h, w)`.
///
/// `Err(KernelBadArguments)` if a slice length does not match `p` or the window is invalid.
pub fn maxpool2d_s8(p: &PoolParams, input: &[i8], output: &mut [i8]) -> Result<()> {
    super::maxpool2d(p, input, output)
}
