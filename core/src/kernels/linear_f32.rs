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
    let rows = layer.weights.as_bytes().chunks_exact(4 * n_in);
    for ((out, row), b) in output.iter_mut().zip(rows).zip(layer.bias.iter()) {
        let acc = dot_f32(crate::tensor::F32Data::from_le_bytes(row), input);
        *out = activate_f32(acc + b, layer.activation);
    }
    Ok(())
}
