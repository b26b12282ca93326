//! Depthwise 2-D convolution (depth multiplier 1), int8 (TFLite-Micro arithmetic), CHW.

use super::params::{DepthwiseParams, PerChannelQuant};
use super::{conv2d_s8, depthwise_geometry};
use crate::error::{Error, Result};
use crate::tensor::{I32Data, I8Data};

/// TFLite-Micro's reference `DepthwiseConvPerChannel` with depth multiplier 1:
/// `acc[c][oy][ox] = bias[c] + Σ_{ky,kx} W[c][ky][kx] · (input[c][iy][ix] − q.input_zp)`,
/// `output[c][oy][ox] = clamp(MBQM(acc, q.multiplier[c], q.shift[c]) + zp_out, act_min,
/// act_max)` (MBQM = `MultiplyByQuantizedMultiplier`, the clamp range from
/// `activation_range(p.activation, q.output)`), `iy = oy·sh + ky − pad_top`,
/// `ix = ox·sw + kx − pad_left`; padded taps are skipped (they would read `input_zp` and add 0).
/// Shapes: `input` `[c][h][w]`, `weights` `[c][kh][kw]`, `bias`, `q.multiplier`, `q.shift`
/// `[c]`, `output` `[c][oh][ow]` with `(oh, ow) = p.window.out_dims(h, w)`.
///
/// TFLite adds the bias after the taps; the i32 sum wraps here (never panics) and is exact
/// whenever TFLite's is defined, so the order makes no difference. Each channel runs as a
/// 1 → 1-channel [`super::conv2d_s8`] with that channel's bias and requantization.
///
/// `Err(KernelBadArguments)` if a slice length does not match `p` or the window is invalid.
pub fn depthwise_conv2d_s8(
    p: &DepthwiseParams,
    q: &PerChannelQuant<'_>,
    input: &[i8],
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    output: &mut [i8],
) -> Result<()> {
    let g = depthwise_geometry(p, input.len(), output.len(), weights.len())?;
    let c = p.channels;
    if bias.len() != c || q.multiplier.len() != c || q.shift.len() != c {
        return Err(Error::KernelBadArguments);
    }
    if c == 0 {
        return Ok(());
    }
    let planes = input
        .chunks_exact(g.h * g.w)
        .zip(output.chunks_exact_mut(g.oh * g.ow));
    for (c, (x_c, y_c)) in planes.enumerate() {
        let (Some(w_c), Some(b_c), Some(multiplier), Some(shift)) = (
            weights.slice(c * g.per_out, g.per_out),
            bias.slice(c, 1),
            q.multiplier.slice(c, 1),
            q.shift.slice(c, 1),
        ) else {
            return Err(Error::KernelBadArguments);
        };
        let q_c = PerChannelQuant {
            multiplier,
            shift,
            ..*q
        };
        conv2d_s8::compute(&g, p.activation, &q_c, x_c, w_c, b_c, y_c);
    }
    Ok(())
}
