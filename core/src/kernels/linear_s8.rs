//! Fully connected layer, int8 (TFLite-Micro arithmetic).

use crate::error::{Error, Result};
use crate::layer::LinearS8;
use crate::quant::{activation_range, requantize};

/// `output[o] = clamp(requantize(Σ_i W[o][i] · (input[i] − zp_in) + b[o], M[o], shift[o]) + zp_out)`
/// with the clamp range from the fused activation. `W` is `[out][in]` int8, `b` int32.
/// `input.len()` must be `in_features`, `output.len()` must be `out_features`.
///
/// The accumulator is exact in i32 when the loader's overflow bound holds (see
/// `docs/quantization.md`); additions wrap rather than panic if a caller bypasses the loader.
pub fn linear_s8(layer: &LinearS8<'_>, input: &[i8], zp_in: i8, output: &mut [i8]) -> Result<()> {
    let n_in = layer.in_features as usize;
    let n_out = layer.out_features as usize;
    if n_in == 0
        || input.len() != n_in
        || output.len() != n_out
        || layer.bias.len() != n_out
        || layer.multiplier.len() != n_out
        || layer.shift.len() != n_out
        || Some(layer.weights.len()) != n_in.checked_mul(n_out)
    {
        return Err(Error::KernelBadArguments);
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    super::host::linear_s8(super::host::path(), layer, input, zp_in, output);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    reference(layer, input, zp_in, output);
    Ok(())
}

/// The one-row-at-a-time loop the device runs (and the host tests compare the fast paths with);
/// arguments as checked by [`linear_s8`].
pub(crate) fn reference(layer: &LinearS8<'_>, input: &[i8], zp_in: i8, output: &mut [i8]) {
    let n_in = input.len();
    let zp_in = i32::from(zp_in);
    let zp_out = i32::from(layer.output.zero_point);
    let (act_min, act_max) = activation_range(layer.activation, layer.output);
    let rows = layer.weights.as_bytes().chunks_exact(n_in);
    let per_channel = layer
        .bias
        .iter()
        .zip(layer.multiplier.iter())
        .zip(layer.shift.iter());
    for ((out, row), ((bias, multiplier), shift)) in output.iter_mut().zip(rows).zip(per_channel) {
        let mut acc = bias;
        for (&w, &x) in row.iter().zip(input) {
            acc = acc.wrapping_add(i32::from(w as i8) * (i32::from(x) - zp_in));
        }
        *out = requantize(acc, multiplier, i32::from(shift), zp_out, act_min, act_max);
    }
}
