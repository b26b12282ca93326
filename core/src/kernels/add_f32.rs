//! Elementwise Add, f32 (residual connections).

use super::activate_f32;
use crate::error::{Error, Result};
use crate::tensor::Activation;

/// `output[i] = act(a[i] + b[i])` (one f32 addition, then [`activate_f32`]). All three slices
/// must have the same length (no broadcasting); `Err(KernelBadArguments)` otherwise.
pub fn add_f32(a: &[f32], b: &[f32], activation: Activation, output: &mut [f32]) -> Result<()> {
    if a.len() != b.len() || a.len() != output.len() {
        return Err(Error::KernelBadArguments);
    }
    for ((o, &x), &y) in output.iter_mut().zip(a).zip(b) {
        *o = activate_f32(x + y, activation);
    }
    Ok(())
}
