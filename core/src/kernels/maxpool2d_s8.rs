//! Max pooling, int8, CHW (same quantization in and out).

use super::Chw;
use crate::error::Result;
use crate::layer::MaxPool2d;

/// `output[c][oy][ox] = max over the k × k window at (oy·s, ox·s)` (no padding). Works on the
/// quantized values directly (max commutes with the monotonic dequantization).
/// `output` is `[c][oh][ow]`, `oh = (h − k)/s + 1`.
pub fn maxpool2d_s8(pool: &MaxPool2d, input: &[i8], dims: Chw, output: &mut [i8]) -> Result<()> {
    super::maxpool2d(pool, input, dims, output)
}
