//! Fully connected layer, f32.

use super::params::LinearParams;
use super::{activate_f32, dot_f32};
use crate::error::{Error, Result};
use crate::tensor::{Activation, F32Data};

/// `output[r][o] = act(dot(W[o], input[r]) + bias[o])` for `r < rows`, `o < out_features`:
/// `input` `[rows][in_features]`, `weights` `[out_features][in_features]`, `bias`
/// `[out_features]`, `output` `[rows][out_features]`. `dot` is the 8-lane sum over
/// `i = 0..in_features` (reduction order: `i`; see the module docs); each row is independent.
///
/// `Err(KernelBadArguments)` if `in_features == 0` or a slice length does not match `p`.
pub fn linear_f32(
    p: &LinearParams,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) -> Result<()> {
    check(p, input, weights, bias, output)?;
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    super::host::linear_f32(super::host::path(), p, input, weights, bias, output);
    #[cfg(denoiserep_fpu)]
    super::f32_m4::linear(p, input, weights, bias, output);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", denoiserep_fpu)))]
    reference(p, input, weights, bias, output);
    Ok(())
}

/// The argument check of [`linear_f32`]: `in_features > 0` and every slice length matches `p`.
pub(crate) fn check(
    p: &LinearParams,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &[f32],
) -> Result<()> {
    let (n_in, n_out) = (p.in_features, p.out_features);
    if n_in == 0
        || Some(input.len()) != p.rows.checked_mul(n_in)
        || Some(output.len()) != p.rows.checked_mul(n_out)
        || bias.len() != n_out
        || Some(weights.len()) != n_in.checked_mul(n_out)
        || !weights.is_whole()
    {
        return Err(Error::KernelBadArguments);
    }
    Ok(())
}

/// The one-output-at-a-time loop the device runs (and the host tests compare the fast paths
/// with); arguments as checked by [`linear_f32`].
pub(crate) fn reference(
    p: &LinearParams,
    input: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    output: &mut [f32],
) {
    if p.out_features == 0 {
        return;
    }
    let rows = input
        .chunks_exact(p.in_features)
        .zip(output.chunks_exact_mut(p.out_features));
    for (x, y) in rows {
        row(p.activation, x, weights, bias, y);
    }
}

/// One row: `y[o] = act(dot(W[o], x) + bias[o])`.
pub(crate) fn row(
    act: Activation,
    x: &[f32],
    weights: F32Data<'_>,
    bias: F32Data<'_>,
    y: &mut [f32],
) {
    let w_rows = weights.as_bytes().chunks_exact(4 * x.len());
    for ((out, w_row), b) in y.iter_mut().zip(w_rows).zip(bias.iter()) {
        let acc = dot_f32(F32Data::from_le_bytes(w_row), x);
        *out = activate_f32(acc + b, act);
    }
}
