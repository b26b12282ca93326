//! Max pooling, f32, CHW.

use super::Chw;
use crate::error::Result;
use crate::layer::MaxPool2d;

/// `output[c][oy][ox] = max over the k × k window at (oy·s, ox·s)` (no padding). The maximum is
/// taken in row-major window order, replacing the running value only when `v > max`, so the
/// first element wins ties and NaN never replaces a number (a NaN in the first position stays).
/// `output` is `[c][oh][ow]`, `oh = (h − k)/s + 1`.
pub fn maxpool2d_f32(pool: &MaxPool2d, input: &[f32], dims: Chw, output: &mut [f32]) -> Result<()> {
    super::maxpool2d(pool, input, dims, output)
}
