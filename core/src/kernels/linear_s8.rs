//! Fully connected layer, int8 (TFLite-Micro arithmetic).

use super::params::{LinearParams, PerChannelQuant};
use crate::error::{Error, Result};
use crate::quant::{activation_range, requantize};
use crate::tensor::{Activation, I32Data, I8Data};

/// `acc[r][o] = bias[o] + Σ_i W[o][i] · (input[r][i] − q.input_zp)`,
/// `output[r][o] = clamp(MBQM(acc, q.multiplier[o], q.shift[o]) + zp_out, act_min, act_max)`
/// (TFLite-Micro's per-channel `FullyConnected`; the clamp range from
/// `activation_range(p.activation, q.output)`). `input` `[rows][in_features]`, `weights`
/// `[out_features][in_features]` int8, `bias`, `q.multiplier`, `q.shift` `[out_features]`,
/// `output` `[rows][out_features]`.
///
/// The accumulator is exact in i32 when the loader's overflow bound holds (see
/// `docs/quantization.md`); additions wrap rather than panic if a caller bypasses the loader.
pub fn linear_s8(
    p: &LinearParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) -> Result<()> {
    linear_s8_with_scratch(p, q, input, weights, bias, output, &mut [])
}

/// Words of scratch [`linear_s8_with_scratch`] uses on the Cortex-M4 DSP path for rows of
/// `in_features` inputs: the row's whole words widened to i16 pairs, `2·⌊in_features/4⌋`
/// (`linear_s8_dsp.rs`). The engine requests this much on every target (the host kernels ignore
/// it), so the arena the host reports is the arena the device needs.
pub const fn linear_s8_scratch_words(in_features: usize) -> usize {
    2 * (in_features / 4)
}

/// [`linear_s8`] with a scratch buffer, the engine's entry point. On `thumbv7em-*`
/// (`cfg(denoiserep_dsp)`) the DSP kernel (`linear_s8_dsp.rs`) runs when `scratch` holds at least
/// [`linear_s8_scratch_words`]`(p.in_features)` words, the reference loop otherwise; the host runs
/// its fast path and other targets the reference, both ignoring `scratch`. Same bits on every
/// path.
pub fn linear_s8_with_scratch(
    p: &LinearParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
    scratch: &mut [u32],
) -> Result<()> {
    // ARMv7E-M (Cortex-M4/M7): the DSP kernel, same bits (`linear_s8_dsp.rs`).
    #[cfg(denoiserep_dsp)]
    return checked(p, q, input, weights, bias, output, |p, q, x, w, b, y| {
        super::linear_s8_dsp::run(p, q, x, w, b, y, scratch)
    });
    #[cfg(not(denoiserep_dsp))]
    {
        let _ = scratch;
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        let run = host;
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let run = reference;
        checked(p, q, input, weights, bias, output, run)
    }
}

/// The host's runtime-selected kernel (AVX2 or portable; `kernels/host`).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn host(
    p: &LinearParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) {
    super::host::linear_s8(super::host::path(), p, q, input, weights, bias, output);
}

/// The one check every int8 Linear entry point shares: [`arguments_ok`] (else
/// `KernelBadArguments`), then `run` on the checked slices.
pub(crate) fn checked(
    p: &LinearParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
    run: impl FnOnce(&LinearParams, &PerChannelQuant<'_>, &[i8], I8Data<'_>, I32Data<'_>, &mut [i8]),
) -> Result<()> {
    if !arguments_ok(p, q, input, weights, bias, output) {
        return Err(Error::KernelBadArguments);
    }
    run(p, q, input, weights, bias, output);
    Ok(())
}

/// [`linear_s8`]'s checks: the slices match the parameters.
pub(crate) fn arguments_ok(
    p: &LinearParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &[i8],
) -> bool {
    let (n_in, n_out) = (p.in_features, p.out_features);
    n_in != 0
        && Some(input.len()) == p.rows.checked_mul(n_in)
        && Some(output.len()) == p.rows.checked_mul(n_out)
        && q.fits(bias.len(), n_out)
        && Some(weights.len()) == n_in.checked_mul(n_out)
}

/// [`linear_s8`] forced onto the one-output-at-a-time reference loop on every target: the
/// oracle the firmware's `kernel-check` binary compares the Cortex-M4 DSP kernel with.
#[doc(hidden)]
pub fn linear_s8_reference(
    p: &LinearParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) -> Result<()> {
    checked(p, q, input, weights, bias, output, reference)
}

/// The one-output-at-a-time loop the device runs (and the host tests compare the fast paths
/// with); arguments as checked by [`linear_s8`].
pub(crate) fn reference(
    p: &LinearParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) {
    if p.out_features == 0 {
        return;
    }
    let rows = input
        .chunks_exact(p.in_features)
        .zip(output.chunks_exact_mut(p.out_features));
    for (x, y) in rows {
        row(p.activation, q, x, weights, bias, y);
    }
}

/// One row: `y[o] = requantize(bias[o] + Σ_i W[o][i] · (x[i] − input_zp))`.
pub(crate) fn row(
    act: Activation,
    q: &PerChannelQuant<'_>,
    x: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    y: &mut [i8],
) {
    let zp_in = i32::from(q.input_zp);
    let zp_out = i32::from(q.output.zero_point);
    let (act_min, act_max) = activation_range(act, q.output);
    let w_rows = weights.as_bytes().chunks_exact(x.len());
    let per_channel = bias.iter().zip(q.multiplier.iter()).zip(q.shift.iter());
    for ((out, w_row), ((bias, multiplier), shift)) in y.iter_mut().zip(w_rows).zip(per_channel) {
        let mut acc = bias;
        for (&w, &xv) in w_row.iter().zip(x) {
            acc = acc.wrapping_add(i32::from(w as i8) * (i32::from(xv) - zp_in));
        }
        *out = requantize(acc, multiplier, i32::from(shift), zp_out, act_min, act_max);
    }
}
