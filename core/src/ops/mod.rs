//! One file per op: `prepare` (checks parameters, dtypes and that the output tensor's shape is the
//! one the op computes; runs once at load) and `eval` (builds the kernel's parameter struct and
//! calls the kernel for the input's dtype). This module holds the dispatch on [`Op`] and the
//! typed tensor views the interpreter hands to `eval`.

mod activation;
#[cfg(feature = "ops-graph")]
mod add;
#[cfg(feature = "ops-attention")]
mod batch_matmul;
#[cfg(feature = "ops-graph")]
mod concat;
#[cfg(feature = "ops-conv")]
mod conv2d;
#[cfg(feature = "ops-conv")]
mod depthwise_conv2d;
mod dequantize;
#[cfg(feature = "ops-attention")]
mod gelu;
#[cfg(feature = "ops-attention")]
mod layer_norm;
mod linear;
#[cfg(feature = "ops-attention")]
mod lut;
#[cfg(feature = "ops-pool")]
mod mean;
#[cfg(feature = "ops-pool")]
mod mean_axis;
#[cfg(feature = "ops-pool")]
mod pool2d;
mod quantize;
mod reshape;
#[cfg(feature = "ops-graph")]
mod slice;
#[cfg(feature = "ops-attention")]
mod softmax;
#[cfg(feature = "ops-attention")]
mod transpose;
mod weights;

use crate::error::{Error, Result};
use crate::format::graph::{Node, Op};
use crate::tensor::{DType, TensorInfo};

/// Input values of an op, borrowed from the arena (read-only).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Values<'r> {
    /// f32 values.
    F32(&'r [f32]),
    /// int8 values.
    I8(&'r [i8]),
}

/// Output values of an op, borrowed from the arena.
#[derive(Debug)]
pub(crate) enum ValuesMut<'r> {
    /// f32 values.
    F32(&'r mut [f32]),
    /// int8 values.
    I8(&'r mut [i8]),
}

/// A tensor an op reads: its info and values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct In<'r> {
    pub info: TensorInfo,
    pub values: Values<'r>,
}

/// The tensor an op writes.
#[derive(Debug)]
pub(crate) struct Out<'r> {
    pub info: TensorInfo,
    pub values: ValuesMut<'r>,
}

/// How an op's output may share memory with its first input (for the planner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sharing {
    /// Its own buffer, disjoint from every live tensor.
    None,
    /// Always the same bytes as input 0 (Reshape).
    Alias,
    /// Input 0's bytes when input 0 is not needed afterwards (elementwise unary ops), else its
    /// own buffer; [`eval_in_place`] then runs on the output after a copy.
    InPlace,
}

/// How `op`'s output may share memory with its input. Every other op (Transpose, LayerNorm,
/// BatchMatMul, Concat, Slice, Lut, Quantize, …) writes a buffer disjoint from all its inputs:
/// the planner keeps an op's inputs live at the op that writes its output.
pub(crate) fn sharing(op: &Op<'_>) -> Sharing {
    match op {
        Op::Reshape => Sharing::Alias,
        Op::Activation(_) | Op::Gelu => Sharing::InPlace,
        _ => Sharing::None,
    }
}

/// Checks op `index` against its input and output tensors (arity already checked).
pub(crate) fn prepare(
    index: u16,
    node: &Node<'_>,
    inputs: &[TensorInfo],
    output: &TensorInfo,
) -> Result<()> {
    let one = || {
        inputs
            .first()
            .copied()
            .ok_or(Error::OpBadArity { op: index })
    };
    if !compiled_in(&node.op) {
        return Err(Error::OpNotCompiledIn { op: index });
    }
    match &node.op {
        Op::Linear(p) => linear::prepare(index, p, &one()?, output),
        #[cfg(feature = "ops-conv")]
        Op::Conv2d(p) => conv2d::prepare(index, p, &one()?, output),
        #[cfg(feature = "ops-conv")]
        Op::DepthwiseConv2d(p) => depthwise_conv2d::prepare(index, p, &one()?, output),
        #[cfg(feature = "ops-graph")]
        Op::Add(p) => match inputs {
            [a, b] => add::prepare(index, p, a, b, output),
            _ => Err(Error::OpBadArity { op: index }),
        },
        #[cfg(feature = "ops-pool")]
        Op::MaxPool2d(p) => pool2d::prepare(index, p, &one()?, output),
        #[cfg(feature = "ops-pool")]
        Op::AvgPool2d(p) => pool2d::prepare(index, p, &one()?, output),
        #[cfg(feature = "ops-pool")]
        Op::Mean => mean::prepare(index, &one()?, output),
        Op::Reshape => reshape::prepare(index, &one()?, output),
        #[cfg(feature = "ops-attention")]
        Op::Softmax(p) => softmax::prepare(index, p, &one()?, output),
        Op::Activation(_) => activation::prepare(index, &one()?, output),
        #[cfg(feature = "ops-attention")]
        Op::LayerNorm(p) => match inputs {
            [x, g, b] => layer_norm::prepare(index, p, x, g, b, output),
            _ => Err(Error::OpBadArity { op: index }),
        },
        #[cfg(feature = "ops-attention")]
        Op::Gelu => gelu::prepare(index, &one()?, output),
        #[cfg(feature = "ops-attention")]
        Op::Lut => match inputs {
            [x, table] => lut::prepare(index, x, table, output),
            _ => Err(Error::OpBadArity { op: index }),
        },
        #[cfg(feature = "ops-attention")]
        Op::BatchMatMul(p) => match inputs {
            [a, b] => batch_matmul::prepare(index, p, a, b, output),
            _ => Err(Error::OpBadArity { op: index }),
        },
        #[cfg(feature = "ops-attention")]
        Op::Transpose(p) => transpose::prepare(index, p, &one()?, output),
        Op::Quantize => quantize::prepare(index, &one()?, output),
        Op::Dequantize => dequantize::prepare(index, &one()?, output),
        #[cfg(feature = "ops-graph")]
        Op::Concat(p) => concat::prepare(index, p, inputs, output),
        #[cfg(feature = "ops-pool")]
        Op::MeanAxis(p) => mean_axis::prepare(index, p, &one()?, output),
        #[cfg(feature = "ops-graph")]
        Op::Slice(p) => slice::prepare(index, p, &one()?, output),
        // Only in builds without some op family: `compiled_in` refused the op above.
        #[allow(unreachable_patterns)]
        _ => Err(Error::OpNotCompiledIn { op: index }),
    }
}

/// Whether `op`'s family is compiled into this build (cargo features of `denoiserep-core`, all
/// on by default): `ops-conv` (Conv2d, DepthwiseConv2d), `ops-pool` (MaxPool2d, AvgPool2d, Mean,
/// MeanAxis), `ops-graph` (Add, Concat, Slice), `ops-attention` (Softmax, LayerNorm, Gelu, Lut,
/// BatchMatMul, Transpose). Linear, Activation, Reshape, Quantize and Dequantize are always in.
/// A model with an op that is not compiled in fails to load with
/// [`Error::OpNotCompiledIn`] naming the op, so a firmware trimmed to its model's op families
/// never meets an op it cannot run.
pub fn compiled_in(op: &Op<'_>) -> bool {
    match op {
        Op::Linear(_) | Op::Activation(_) | Op::Reshape | Op::Quantize | Op::Dequantize => true,
        Op::Conv2d(_) | Op::DepthwiseConv2d(_) => cfg!(feature = "ops-conv"),
        Op::MaxPool2d(_) | Op::AvgPool2d(_) | Op::Mean | Op::MeanAxis(_) => {
            cfg!(feature = "ops-pool")
        }
        Op::Add(_) | Op::Concat(_) | Op::Slice(_) => cfg!(feature = "ops-graph"),
        Op::Softmax(_)
        | Op::LayerNorm(_)
        | Op::Gelu
        | Op::Lut
        | Op::BatchMatMul(_)
        | Op::Transpose(_) => cfg!(feature = "ops-attention"),
    }
}

/// Bytes of arena scratch op `op` uses while it runs (0: none), the same on every target:
/// int8 Linear's widened input row (`linear::scratch_bytes`), Conv2d's im2col buffer
/// (`conv2d::scratch_bytes`, int8 and f32) and int8 depthwise 3×3's i16 ring
/// (`depthwise_conv2d::scratch_bytes`). The planner gives it a buffer live at
/// that op only; [`eval`] gets it as `scratch`.
pub(crate) fn scratch_bytes(op: &Op<'_>) -> usize {
    match op {
        Op::Linear(p) => linear::scratch_bytes(p),
        #[cfg(feature = "ops-conv")]
        Op::Conv2d(p) => conv2d::scratch_bytes(p),
        #[cfg(feature = "ops-conv")]
        Op::DepthwiseConv2d(p) => depthwise_conv2d::scratch_bytes(p),
        _ => 0,
    }
}

/// Runs a prepared op whose output does not share memory with its inputs; `scratch` holds the
/// op's [`scratch_bytes`] (4-aligned, disjoint from its inputs and output; empty for none).
pub(crate) fn eval(
    node: &Node<'_>,
    inputs: &[In<'_>],
    output: Out<'_>,
    scratch: &mut [u8],
) -> Result<()> {
    let one = || inputs.first().copied().ok_or(Error::KernelBadArguments);
    match &node.op {
        Op::Linear(p) => linear::eval(p, &one()?, output, scratch),
        #[cfg(feature = "ops-conv")]
        Op::Conv2d(p) => conv2d::eval(p, &one()?, output, scratch),
        #[cfg(feature = "ops-conv")]
        Op::DepthwiseConv2d(p) => depthwise_conv2d::eval(p, &one()?, output, scratch),
        #[cfg(feature = "ops-graph")]
        Op::Add(p) => match inputs {
            [a, b] => add::eval(p, a, b, output),
            _ => Err(Error::KernelBadArguments),
        },
        #[cfg(feature = "ops-pool")]
        Op::MaxPool2d(p) => pool2d::eval_max(p, &one()?, output),
        #[cfg(feature = "ops-pool")]
        Op::AvgPool2d(p) => pool2d::eval_avg(p, &one()?, output),
        #[cfg(feature = "ops-pool")]
        Op::Mean => mean::eval(&one()?, output),
        #[cfg(feature = "ops-attention")]
        Op::Softmax(p) => softmax::eval(p, &one()?, output),
        #[cfg(feature = "ops-attention")]
        Op::LayerNorm(p) => match inputs {
            [x, g, b] => layer_norm::eval(p, [x, g, b], output),
            _ => Err(Error::KernelBadArguments),
        },
        #[cfg(feature = "ops-attention")]
        Op::Lut => match inputs {
            [x, table] => lut::eval(x, table, output),
            _ => Err(Error::KernelBadArguments),
        },
        #[cfg(feature = "ops-attention")]
        Op::BatchMatMul(p) => match inputs {
            [a, b] => batch_matmul::eval(p, a, b, output),
            _ => Err(Error::KernelBadArguments),
        },
        #[cfg(feature = "ops-attention")]
        Op::Transpose(p) => transpose::eval(p, &one()?, output),
        Op::Quantize => quantize::eval(&one()?, output),
        Op::Dequantize => dequantize::eval(&one()?, output),
        #[cfg(feature = "ops-graph")]
        Op::Concat(p) => concat::eval(p, inputs, output),
        #[cfg(feature = "ops-pool")]
        Op::MeanAxis(p) => mean_axis::eval(p, &one()?, output),
        #[cfg(feature = "ops-graph")]
        Op::Slice(p) => slice::eval(p, &one()?, output),
        #[allow(unreachable_patterns)]
        _ => Err(Error::KernelBadArguments),
    }
}

/// Runs an op that works in place on its output (which already holds the input's values).
pub(crate) fn eval_in_place(node: &Node<'_>, output: Out<'_>) -> Result<()> {
    match &node.op {
        Op::Activation(p) => activation::eval_in_place(p, output),
        #[cfg(feature = "ops-attention")]
        Op::Gelu => gelu::eval_in_place(output),
        Op::Reshape => Ok(()),
        _ => Err(Error::KernelBadArguments),
    }
}

/// `Ok` when `t` has exactly `shape`'s dims, else `ShapeMismatch`.
pub(crate) fn expect_shape(index: u16, t: &TensorInfo, dims: &[usize]) -> Result<()> {
    let same = t.shape.rank() == dims.len()
        && t.shape
            .dims()
            .iter()
            .zip(dims)
            .all(|(&a, &b)| a as usize == b);
    if same {
        Ok(())
    } else {
        Err(Error::ShapeMismatch { op: index })
    }
}

#[cfg(any(feature = "ops-pool", feature = "ops-graph"))]
/// `input` viewed around dim `axis` as `[outer][len][inner]`, or `OpBadParam` when `axis` is not
/// below the rank. (A validated tensor's element count fits `usize`, so the products do too.)
pub(crate) fn axis_dims(
    index: u16,
    input: &TensorInfo,
    axis: u8,
) -> Result<crate::kernels::params::AxisDims> {
    let dims = input.shape.dims();
    let axis = usize::from(axis);
    let len = *dims.get(axis).ok_or(Error::OpBadParam { op: index })? as usize;
    let product = |d: &[u32]| {
        d.iter()
            .try_fold(1usize, |n, &v| n.checked_mul(v as usize))
            .ok_or(Error::ModelSizeOverflow)
    };
    Ok(crate::kernels::params::AxisDims {
        outer: product(dims.get(..axis).unwrap_or(&[]))?,
        len,
        inner: product(dims.get(axis + 1..).unwrap_or(&[]))?,
    })
}

#[cfg(any(feature = "ops-pool", feature = "ops-graph"))]
/// `Ok` when `output` has `input`'s dims with dim `axis` replaced by `len`, or — for `len == 1`
/// and an input of rank > 1 — `input`'s dims without dim `axis`; else `ShapeMismatch`.
pub(crate) fn expect_axis_shape(
    index: u16,
    input: &TensorInfo,
    axis: usize,
    len: usize,
    output: &TensorInfo,
) -> Result<()> {
    let rank = input.shape.rank();
    let mut kept = [0usize; crate::tensor::MAX_RANK];
    let mut dropped = [0usize; crate::tensor::MAX_RANK];
    let mut n_dropped = 0;
    for (i, (k, &d)) in kept.iter_mut().zip(input.shape.dims()).enumerate() {
        *k = if i == axis { len } else { d as usize };
        if i != axis {
            if let Some(slot) = dropped.get_mut(n_dropped) {
                *slot = d as usize;
            }
            n_dropped += 1;
        }
    }
    let keeps = expect_shape(index, output, kept.get(..rank).unwrap_or(&[])).is_ok();
    let drops = len == 1
        && rank > 1
        && expect_shape(index, output, dropped.get(..n_dropped).unwrap_or(&[])).is_ok();
    if keeps || drops {
        Ok(())
    } else {
        Err(Error::ShapeMismatch { op: index })
    }
}

/// `Ok` when input and output dtypes are equal (int8: same quantization), else
/// `OpUnsupportedDType`.
pub(crate) fn same_dtype(index: u16, a: &TensorInfo, b: &TensorInfo) -> Result<()> {
    if a.dtype == b.dtype {
        Ok(())
    } else {
        Err(Error::OpUnsupportedDType { op: index })
    }
}

#[cfg(any(feature = "ops-conv", feature = "ops-pool"))]
/// A windowed op's geometry: input `(c, h, w)` and output `(oh, ow)`; `ShapeMismatch` for a
/// non-rank-3 input or a window that does not fit, `OpBadParam` for a zero kernel/stride or a
/// padding not below the kernel.
pub(crate) fn window_geometry(
    index: u16,
    spec: &crate::format::graph::WindowSpec,
    input: &TensorInfo,
) -> Result<(crate::kernels::params::Window, [usize; 5])> {
    let w = spec.window();
    let bad_param = w.kh == 0
        || w.kw == 0
        || w.sh == 0
        || w.sw == 0
        || w.pad_top >= w.kh
        || w.pad_bottom >= w.kh
        || w.pad_left >= w.kw
        || w.pad_right >= w.kw;
    if bad_param {
        return Err(Error::OpBadParam { op: index });
    }
    let (c, h, wd) = input
        .shape
        .as_chw()
        .ok_or(Error::ShapeMismatch { op: index })?;
    let (oh, ow) = w
        .out_dims(h, wd)
        .ok_or(Error::ShapeMismatch { op: index })?;
    Ok((w, [c, h, wd, oh, ow]))
}

/// The per-channel requantization of an int8 weighted op reading `input` and writing `output`
/// (their zero point and quantization, the op's multipliers and shifts), or
/// `KernelBadArguments` when either tensor is not int8.
pub(crate) fn per_channel_quant<'w>(
    input: &TensorInfo,
    output: &TensorInfo,
    multiplier: crate::tensor::I32Data<'w>,
    shift: crate::tensor::I8Data<'w>,
) -> Result<crate::kernels::params::PerChannelQuant<'w>> {
    match (input.dtype, output.dtype) {
        (DType::I8(i), DType::I8(o)) => Ok(crate::kernels::params::PerChannelQuant {
            input_zp: i.zero_point,
            output: o,
            multiplier,
            shift,
        }),
        _ => Err(Error::KernelBadArguments),
    }
}
