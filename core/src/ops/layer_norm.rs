//! Layer normalization over the last dim, f32: inputs `x [.., D]`, `gamma [D]`, `beta [D]`,
//! output of `x`'s shape (`y = (x − μ) / sqrt(σ² + eps) · γ + β` per row; see the kernel for the
//! exact order). int8 graphs run it between Dequantize and Quantize.

use super::{expect_shape, In, Out, Values, ValuesMut};
use crate::error::{Error, Result};
use crate::format::graph::LayerNorm;
use crate::kernels::layer_norm_f32;
use crate::tensor::{DType, TensorInfo};

pub(super) fn prepare(
    index: u16,
    p: &LayerNorm,
    x: &TensorInfo,
    gamma: &TensorInfo,
    beta: &TensorInfo,
    output: &TensorInfo,
) -> Result<()> {
    if !(p.eps.is_finite() && p.eps > 0.0) {
        return Err(Error::OpBadParam { op: index });
    }
    let all_f32 = [x, gamma, beta, output]
        .iter()
        .all(|t| t.dtype == DType::F32);
    if !all_f32 {
        return Err(Error::OpUnsupportedDType { op: index });
    }
    if x.shape != output.shape {
        return Err(Error::ShapeMismatch { op: index });
    }
    let depth = x.shape.last();
    expect_shape(index, gamma, &[depth])?;
    expect_shape(index, beta, &[depth])
}

pub(super) fn eval(p: &LayerNorm, inputs: [&In<'_>; 3], output: Out<'_>) -> Result<()> {
    let [x, gamma, beta] = inputs;
    let (rows, depth) = (x.info.shape.rows(), x.info.shape.last());
    match (x.values, gamma.values, beta.values, output.values) {
        (Values::F32(x), Values::F32(g), Values::F32(b), ValuesMut::F32(y)) => {
            layer_norm_f32(rows, depth, p.eps, x, g, b, y)
        }
        _ => Err(Error::KernelBadArguments),
    }
}
