//! 2-D convolution, int8 (TFLite-Micro arithmetic), CHW.

use super::{conv_geometry, tap_range, Chw, ConvGeometry};
use crate::error::{Error, Result};
use crate::layer::Conv2dS8;
use crate::quant::{activation_range, requantize};

/// `output[o][oy][ox] = clamp(requantize(Σ W[o][i][ky][kx] · (input[i][iy][ix] − zp_in) + b[o],
/// M[o], shift[o]) + zp_out)`, `iy = oy·s + ky − p`, `ix = ox·s + kx − p`; padded taps contribute 0
/// (they read `zp_in`, as in tflite). Geometry as [`super::conv2d_f32`].
pub fn conv2d_s8(
    layer: &Conv2dS8<'_>,
    input: &[i8],
    dims: Chw,
    zp_in: i8,
    output: &mut [i8],
) -> Result<()> {
    let co = layer.out_channels as usize;
    let g = conv_geometry(
        (layer.in_channels as usize, co),
        (
            layer.kernel as usize,
            layer.stride as usize,
            layer.padding as usize,
        ),
        dims,
        input.len(),
        output.len(),
        layer.weights.len(),
    )?;
    if layer.bias.len() != co || layer.multiplier.len() != co || layer.shift.len() != co {
        return Err(Error::KernelBadArguments);
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    super::host::conv2d_s8(super::host::path(), layer, &g, input, dims, zp_in, output);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    reference(layer, &g, input, dims, zp_in, output);
    Ok(())
}

/// The pixel-at-a-time loop the device runs (and the host tests compare the fast paths with);
/// arguments as checked by [`conv2d_s8`].
pub(crate) fn reference(
    layer: &Conv2dS8<'_>,
    g: &ConvGeometry,
    input: &[i8],
    dims: Chw,
    zp_in: i8,
    output: &mut [i8],
) {
    let ConvGeometry {
        ci,
        k,
        s,
        p,
        oh,
        ow,
        per_out,
    } = *g;
    let (h, w) = (dims.h, dims.w);
    let zp_in = i32::from(zp_in);
    let zp_out = i32::from(layer.output.zero_point);
    let (act_min, act_max) = activation_range(layer.activation, layer.output);
    let wb = layer.weights.as_bytes();
    let per_channel = layer
        .bias
        .iter()
        .zip(layer.multiplier.iter())
        .zip(layer.shift.iter());
    let mut out_iter = output.iter_mut();
    for (o, ((bias, multiplier), shift)) in per_channel.enumerate() {
        let w_o = &wb[o * per_out..(o + 1) * per_out];
        for oy in 0..oh {
            let (ky_lo, ky_hi, y0) = tap_range(oy, s, p, k, h);
            for ox in 0..ow {
                let (kx_lo, kx_hi, x0) = tap_range(ox, s, p, k, w);
                let mut acc = bias;
                for i in 0..ci {
                    let plane = &input[i * h * w..(i + 1) * h * w];
                    for ky in ky_lo..ky_hi {
                        let iy = (y0 + ky as isize) as usize;
                        let row = &plane[iy * w..(iy + 1) * w];
                        let w_row = &w_o[(i * k + ky) * k..(i * k + ky + 1) * k];
                        for kx in kx_lo..kx_hi {
                            let x = i32::from(row[(x0 + kx as isize) as usize]);
                            acc = acc.wrapping_add(i32::from(w_row[kx] as i8) * (x - zp_in));
                        }
                    }
                }
                if let Some(out) = out_iter.next() {
                    *out = requantize(acc, multiplier, i32::from(shift), zp_out, act_min, act_max);
                }
            }
        }
    }
}
