//! Checks shared by the weighted ops (Linear, Conv2d, DepthwiseConv2d): exact tensor lengths,
//! finite f32 values, valid requantization, dtypes matching the weights, and no int32
//! accumulator overflow for any int8 input.

use super::{per_channel_quant, In, Out, Values, ValuesMut};
use crate::error::{Error, Result};
use crate::format::graph::Weights;
use crate::kernels::params::PerChannelQuant;
use crate::quant::multiplier_is_valid;
use crate::tensor::{DType, F32Data, I32Data, I8Data, TensorInfo};

/// Checks `w` for an op with `n_out` output channels of `per_out` weights each, reading `input`
/// and writing `output`: f32 weights need f32 tensors, int8 weights int8 tensors.
///
/// int8: for each output channel the accumulator `b + Σ w·(x − zp_in)` stays inside i32 for every
/// int8 input `x` — and, when the channel's shift is positive, inside `i32::MAX >> shift` so the
/// left shift of requantization is exact.
pub(super) fn check(
    index: u16,
    w: &Weights<'_>,
    n_out: usize,
    per_out: usize,
    input: &TensorInfo,
    output: &TensorInfo,
) -> Result<()> {
    let op = index;
    let n_w = n_out.checked_mul(per_out).ok_or(Error::ModelSizeOverflow)?;
    match (w, input.dtype, output.dtype) {
        (Weights::F32 { weights, bias }, DType::F32, DType::F32) => {
            if !weights.is_whole()
                || weights.len() != n_w
                || !bias.is_whole()
                || bias.len() != n_out
            {
                return Err(Error::OpBadTensorLength { op });
            }
            if !weights.iter().chain(bias.iter()).all(f32::is_finite) {
                return Err(Error::OpNonFiniteWeight { op });
            }
            Ok(())
        }
        (
            Weights::S8 {
                weights,
                bias,
                multiplier,
                shift,
            },
            DType::I8(q_in),
            DType::I8(_),
        ) => {
            if weights.len() != n_w
                || !bias.is_whole()
                || bias.len() != n_out
                || !multiplier.is_whole()
                || multiplier.len() != n_out
                || shift.len() != n_out
            {
                return Err(Error::OpBadTensorLength { op });
            }
            let d_min = -128 - i64::from(q_in.zero_point);
            let d_max = 127 - i64::from(q_in.zero_point);
            let rows = weights.as_bytes().chunks_exact(per_out.max(1));
            let per_channel = bias.iter().zip(multiplier.iter()).zip(shift.iter());
            for (row, ((bias, multiplier), shift)) in rows.zip(per_channel) {
                if !multiplier_is_valid(multiplier, i32::from(shift)) {
                    return Err(Error::OpBadMultiplier { op });
                }
                let (mut lo, mut hi) = (i64::from(bias), i64::from(bias));
                for &w in row {
                    let w = i64::from(w as i8);
                    let (a, b) = (w * d_min, w * d_max);
                    lo = lo.saturating_add(a.min(b));
                    hi = hi.saturating_add(a.max(b));
                }
                let limit = i64::from(i32::MAX >> shift.max(0));
                if hi > limit || lo < -limit - 1 {
                    return Err(Error::OpAccumulatorOverflow { op });
                }
            }
            Ok(())
        }
        _ => Err(Error::OpUnsupportedDType { op }),
    }
}

/// Number of output channels of `w` (its bias length).
pub(super) fn out_channels(w: &Weights<'_>) -> usize {
    match w {
        Weights::F32 { bias, .. } => bias.len(),
        Weights::S8 { bias, .. } => bias.len(),
    }
}

/// Runs a weighted op: `f32(x, weights, bias, y)` for f32 weights and tensors, or
/// `s8(quant, x, weights, bias, y)` for int8 ones (the per-channel requantization built from the
/// input and output tensors); `KernelBadArguments` for any other combination.
pub(super) fn eval<F, S>(
    w: &Weights<'_>,
    input: &In<'_>,
    output: Out<'_>,
    f32: F,
    s8: S,
) -> Result<()>
where
    F: FnOnce(&[f32], F32Data<'_>, F32Data<'_>, &mut [f32]) -> Result<()>,
    S: FnOnce(&PerChannelQuant<'_>, &[i8], I8Data<'_>, I32Data<'_>, &mut [i8]) -> Result<()>,
{
    match (w, input.values, output.values) {
        (Weights::F32 { weights, bias }, Values::F32(x), ValuesMut::F32(y)) => {
            f32(x, *weights, *bias, y)
        }
        (
            Weights::S8 {
                weights,
                bias,
                multiplier,
                shift,
            },
            Values::I8(x),
            ValuesMut::I8(y),
        ) => {
            let q = per_channel_quant(&input.info, &output.info, *multiplier, *shift)?;
            s8(&q, x, *weights, *bias, y)
        }
        _ => Err(Error::KernelBadArguments),
    }
}
