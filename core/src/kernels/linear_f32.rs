//! Fully connected layer, f32.

use super::{activate_f32, dot_f32};
use crate::error::{Error, Result};
use crate::layer::LinearF32;

/// `output[o] = act(dot(W[o], input) + b[o])` for `o < out_features`, where `dot` is the 8-lane
/// sum over `i = 0..in_features` (reduction order: `i`; see the module docs) and `W` is
/// `[out][in]`. `input.len()` must be `in_features`, `output.len()` must be `out_features`.
pub fn linear_f32(layer: &LinearF32<'_>, input: &[f32], output: &mut [f32]) -> Result<()> {
    let n_in = layer.in_features as usize;
    let n_out = layer.out_features as usize;
    if n_in == 0
        || input.len() != n_in
        || output.len() != n_out
        || layer.bias.len() != n_out
        || Some(layer.weights.len()) != n_in.checked_mul(n_out)
        || !layer.weights.is_whole()
    {
        return Err(Error::KernelBadArguments);
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    super::host::linear_f32(super::host::path(), layer, input, output);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    reference(layer, input, output);
    Ok(())
}

/// The one-row-at-a-time loop the device runs (and the host tests compare the fast paths with);
/// arguments as checked by [`linear_f32`].
pub(crate) fn reference(layer: &LinearF32<'_>, input: &[f32], output: &mut [f32]) {
    let rows = layer.weights.as_bytes().chunks_exact(4 * input.len());
    for ((out, row), b) in output.iter_mut().zip(rows).zip(layer.bias.iter()) {
        let acc = dot_f32(crate::tensor::F32Data::from_le_bytes(row), input);
        *out = activate_f32(acc + b, layer.activation);
    }
}
