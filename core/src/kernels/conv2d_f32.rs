//! 2-D convolution, f32, CHW.

use super::{activate_f32, conv_geometry, lanes_sum, tap_range, Chw, ConvGeometry, LANES};
use crate::error::{Error, Result};
use crate::layer::Conv2dF32;

/// `output[o][oy][ox] = act(Σ W[o][i][ky][kx] · input[i][oy·s+ky−p][ox·s+kx−p] + b[o])`.
///
/// Reduction order: `j = (i·k + ky)·k + kx` (the weight's flat index within output channel `o`),
/// in the 8-lane order of the module docs. Taps that fall in the zero padding are skipped; with
/// finite weights this is bit-identical to adding `w · 0.0` (a lane never holds −0.0, so adding
/// ±0.0 leaves it unchanged), so an im2col implementation with explicit zeros gives the same bits.
///
/// `input` is `[in_channels][dims.h][dims.w]` (`dims.c` must equal `in_channels`); `output` is
/// `[out_channels][oh][ow]` with `oh = (h + 2p − k)/s + 1`, `ow` likewise.
pub fn conv2d_f32(
    layer: &Conv2dF32<'_>,
    input: &[f32],
    dims: Chw,
    output: &mut [f32],
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
    if !layer.weights.is_whole() || layer.bias.len() != co {
        return Err(Error::KernelBadArguments);
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if super::host::conv2d_f32(super::host::path(), layer, &g, input, dims, output) {
        return Ok(());
    }
    reference(layer, &g, input, dims, output);
    Ok(())
}

/// The pixel-at-a-time loop the device runs (the host falls back to it for non-finite weights,
/// and its tests compare the fast paths with it); arguments as checked by [`conv2d_f32`].
pub(crate) fn reference(
    layer: &Conv2dF32<'_>,
    g: &ConvGeometry,
    input: &[f32],
    dims: Chw,
    output: &mut [f32],
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
    let wb = layer.weights.as_bytes();
    let mut out_iter = output.iter_mut();
    for (o, b) in layer.bias.iter().enumerate() {
        let w_o = &wb[o * per_out * 4..(o + 1) * per_out * 4];
        for oy in 0..oh {
            let (ky_lo, ky_hi, y0) = tap_range(oy, s, p, k, h);
            for ox in 0..ow {
                let (kx_lo, kx_hi, x0) = tap_range(ox, s, p, k, w);
                let mut lanes = [0.0f32; LANES];
                for i in 0..ci {
                    let plane = &input[i * h * w..(i + 1) * h * w];
                    for ky in ky_lo..ky_hi {
                        let iy = (y0 + ky as isize) as usize;
                        let row = &plane[iy * w..(iy + 1) * w];
                        for kx in kx_lo..kx_hi {
                            let ix = (x0 + kx as isize) as usize;
                            let j = (i * k + ky) * k + kx;
                            let wv = f32::from_le_bytes([
                                w_o[4 * j],
                                w_o[4 * j + 1],
                                w_o[4 * j + 2],
                                w_o[4 * j + 3],
                            ]);
                            lanes[j % LANES] += wv * row[ix];
                        }
                    }
                }
                if let Some(out) = out_iter.next() {
                    *out = activate_f32(lanes_sum(&lanes) + b, layer.activation);
                }
            }
        }
    }
}
