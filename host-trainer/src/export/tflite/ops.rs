//! The lowered core ops → TFLite builtin operators, one node at a time (see the table in
//! [`super`]). Tensors are created here with their TFLite shape ([`Layout`]), type and
//! quantization; weights are reordered by [`super::layout`].

use anyhow::{bail, Result};
use denoiserep_core::{Activation, QuantParams, WindowSpec};
use denoiserep_tflite_schema::tflite::{
    ActivationFunctionType, AddOptions, BuiltinOperator, BuiltinOptions, Conv2DOptions,
    DepthwiseConv2DOptions, FullyConnectedOptions, Padding, Pool2DOptions, QuantizationParameters,
    ReshapeOptions, SoftmaxOptions, TensorType,
};

use super::graph::Graph;
use super::layout::{blocks_chw_to_hwc, chw_to_hwc, pad_mode, Layout, PadMode};
use crate::export::int8::Int8Plan;
use crate::export::lower::{CoreGraph, CoreNode, CoreOp};

/// The numbers of the TFLite model: f32, or int8 with the plan the core's int8 export uses.
#[derive(Debug, Clone, Copy)]
pub enum Numbers<'a> {
    F32,
    Int8(&'a Int8Plan),
}

/// The TFLite operator version of `op` on float or int8 tensors (as TFLite's converter writes
/// them; TFLite-Micro does not read versions, TFLite's full runtime only checks they exist).
fn version(op: BuiltinOperator, int8: bool) -> i32 {
    use BuiltinOperator as B;
    match (op, int8) {
        (_, false) => 1,
        (B::Conv2d | B::DepthwiseConv2d, true) => 3,
        (B::FullyConnected, true) => 4,
        (B::Reshape, true) => 1,
        (_, true) => 2,
    }
}

/// Per-tensor asymmetric quantization.
fn per_tensor(q: QuantParams) -> QuantizationParameters {
    QuantizationParameters {
        scale: Some(vec![q.scale]),
        zero_point: Some(vec![i64::from(q.zero_point)]),
        ..Default::default()
    }
}

/// Per-channel symmetric quantization along `dimension` (zero points 0).
fn per_channel(scales: Vec<f32>, dimension: i32) -> QuantizationParameters {
    QuantizationParameters {
        zero_point: Some(vec![0; scales.len()]),
        scale: Some(scales),
        quantized_dimension: dimension,
        ..Default::default()
    }
}

fn fused(activation: Activation) -> ActivationFunctionType {
    match activation {
        Activation::None => ActivationFunctionType::None,
        Activation::Relu => ActivationFunctionType::Relu,
        Activation::Relu6 => ActivationFunctionType::Relu6,
    }
}

fn i32_of(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| anyhow::anyhow!("{v} does not fit TFLite's int32 fields"))
}

fn le_bytes<const N: usize, T: Copy>(values: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| f(v)).collect()
}

/// Why an op of [`has_builtin`] `false` is refused.
pub const NO_BUILTIN: &str = "has no TFLite builtin that computes it exactly as the core";

/// Whether TFLite has a builtin computing `op` exactly as the core (else the export refuses the
/// model: the ViT's LayerNorm, GELU, BatchMatMul, Transpose, Concat, Slice, MeanAxis).
pub fn has_builtin(op: &CoreOp) -> bool {
    !matches!(
        op,
        CoreOp::LayerNorm { .. }
            | CoreOp::Gelu
            | CoreOp::BatchMatMul { .. }
            | CoreOp::Transpose { .. }
            | CoreOp::Concat { .. }
            | CoreOp::MeanAxis { .. }
            | CoreOp::Slice { .. }
    )
}

/// Builds the TFLite graph of a [`CoreGraph`]: the map from core tensors to TFLite tensors and
/// their layouts, filled as the nodes are converted in order.
pub struct Converter<'a> {
    g: &'a CoreGraph,
    numbers: Numbers<'a>,
    pub graph: Graph,
    /// TFLite tensor and layout of each core tensor written so far.
    map: Vec<Option<(i32, Layout)>>,
}

/// A weighted op's weights in TFLite: the reordered values, the TFLite shape, the quantized
/// dimension.
struct WeightSpec<'w> {
    reorder: &'w dyn Fn(&[f32]) -> Vec<f32>,
    reorder_i8: &'w dyn Fn(&[i8]) -> Vec<i8>,
    shape: Vec<i32>,
    dimension: i32,
}

impl<'a> Converter<'a> {
    pub fn new(g: &'a CoreGraph, numbers: Numbers<'a>) -> Self {
        Self {
            g,
            numbers,
            graph: Graph::default(),
            map: vec![None; g.shapes.len()],
        }
    }

    fn int8(&self) -> bool {
        matches!(self.numbers, Numbers::Int8(_))
    }

    /// The TFLite type and quantization of a tensor holding core tensor `t`'s values (or values
    /// quantized like them).
    fn activation_type(
        &self,
        t: u16,
        source: &str,
    ) -> Result<(TensorType, Option<QuantizationParameters>)> {
        Ok(match self.numbers {
            Numbers::F32 => (TensorType::Float32, None),
            Numbers::Int8(plan) => (TensorType::Int8, Some(per_tensor(plan.tensor(t, source)?))),
        })
    }

    /// A new activation tensor for core tensor `t` in `layout`.
    fn define(&mut self, t: u16, layout: Layout, name: String, source: &str) -> Result<i32> {
        let (type_, q) = self.activation_type(t, source)?;
        let id = self
            .graph
            .tensor(name, layout.tflite_shape(), type_, q, None)?;
        self.map[usize::from(t)] = Some((id, layout));
        Ok(id)
    }

    /// An intermediate tensor of `shape` quantized like core tensor `like`.
    fn intermediate(
        &mut self,
        like: u16,
        shape: Vec<i32>,
        name: String,
        source: &str,
    ) -> Result<i32> {
        let (type_, q) = self.activation_type(like, source)?;
        self.graph.tensor(name, shape, type_, q, None)
    }

    /// An int32 constant.
    fn int32_constant(&mut self, name: String, shape: Vec<i32>, values: &[i32]) -> Result<i32> {
        let bytes = le_bytes(values, i32::to_le_bytes);
        self.graph
            .tensor(name, shape, TensorType::Int32, None, Some(bytes))
    }

    /// The model input (core tensor 0).
    pub fn input(&mut self) -> Result<i32> {
        let dims = &self.g.shapes[0];
        let layout = Layout::of_core(dims).ok_or_else(|| {
            anyhow::anyhow!(
                "the model input has shape {dims:?}; TFLite export takes C×H×W or a vector"
            )
        })?;
        self.define(0, layout, "input".into(), "the model input")
    }

    /// The TFLite tensor and layout of core tensor `t` (written by an earlier op).
    pub fn tensor(&self, t: u16, node: &CoreNode) -> Result<(i32, Layout)> {
        match self.map.get(usize::from(t)).copied().flatten() {
            Some(v) => Ok(v),
            None if self
                .g
                .constants
                .get(usize::from(t))
                .is_some_and(Option::is_some) =>
            {
                bail!(
                    "{}: reads a constant tensor {t}; constants are not exported to TFLite",
                    node.source
                )
            }
            None => bail!(
                "{}: tensor {t} is read before it is written (a bug)",
                node.source
            ),
        }
    }

    /// The weight and bias tensors of weighted node `index`.
    fn weights(
        &mut self,
        index: usize,
        node: &CoreNode,
        weight: &[f32],
        bias: &[f32],
        spec: WeightSpec<'_>,
    ) -> Result<(i32, i32)> {
        let name = &node.name;
        let n_bias = vec![i32_of(bias.len())?];
        match self.numbers {
            Numbers::F32 => {
                let w = le_bytes(&(spec.reorder)(weight), f32::to_le_bytes);
                let w = self.graph.tensor(
                    format!("{name}/weights"),
                    spec.shape,
                    TensorType::Float32,
                    None,
                    Some(w),
                )?;
                let b = self.graph.tensor(
                    format!("{name}/bias"),
                    n_bias,
                    TensorType::Float32,
                    None,
                    Some(le_bytes(bias, f32::to_le_bytes)),
                )?;
                Ok((w, b))
            }
            Numbers::Int8(plan) => {
                let q = plan.weights(index, &node.source)?;
                let s_in = plan.tensor(node.inputs[0], &node.source)?.scale;
                let w = (spec.reorder_i8)(&q.weights);
                let w = self.graph.tensor(
                    format!("{name}/weights"),
                    spec.shape,
                    TensorType::Int8,
                    Some(per_channel(q.scales.clone(), spec.dimension)),
                    Some(w.iter().map(|&v| v as u8).collect()),
                )?;
                let bias_scales = q
                    .scales
                    .iter()
                    .map(|&sw| (f64::from(s_in) * f64::from(sw)) as f32)
                    .collect();
                let b = self.graph.tensor(
                    format!("{name}/bias"),
                    n_bias,
                    TensorType::Int32,
                    Some(per_channel(bias_scales, 0)),
                    Some(le_bytes(&q.bias, i32::to_le_bytes)),
                )?;
                Ok((w, b))
            }
        }
    }

    fn op(
        &mut self,
        op: BuiltinOperator,
        inputs: Vec<i32>,
        outputs: Vec<i32>,
        options: Option<BuiltinOptions>,
    ) -> Result<()> {
        let v = version(op, self.int8());
        self.graph.op(op, v, inputs, outputs, options)
    }

    /// The refusal of an op TFLite cannot compute exactly as the core.
    pub fn refuse(&self, index: usize, node: &CoreNode, why: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "cannot export {} to TFLite: op {index} '{}' ({}: {}) {why}",
            self.g.name,
            node.name,
            node.op.kind(),
            node.source
        )
    }

    /// A CHW input of a window op, or a refusal.
    fn chw(&self, index: usize, node: &CoreNode) -> Result<(i32, [usize; 3])> {
        match self.tensor(node.inputs[0], node)? {
            (id, Layout::Chw(d)) => Ok((id, d)),
            _ => Err(self.refuse(index, node, "reads a vector; it needs a C×H×W input")),
        }
    }

    /// `[oh, ow]` of the core output of `node`.
    fn out_hw(&self, node: &CoreNode) -> Result<[usize; 3]> {
        match *self.g.shapes[usize::from(node.output)] {
            [c, h, w] => Ok([c, h, w]),
            ref s => bail!("{}: output shape {s:?} is not C×H×W (a bug)", node.source),
        }
    }

    /// The padding of a conv: `SAME`/`VALID`, or an explicit PAD (with the input's zero point in
    /// int8, TFLite-Micro's PAD default) in front of a `VALID` op. Returns the tensor the conv
    /// reads and its padding.
    fn conv_padding(
        &mut self,
        node: &CoreNode,
        x: i32,
        [c, h, w]: [usize; 3],
        window: &WindowSpec,
    ) -> Result<(i32, Padding)> {
        let [_, oh, ow] = self.out_hw(node)?;
        match pad_mode(window, [h, w], [oh, ow]) {
            PadMode::Valid => Ok((x, Padding::Valid)),
            PadMode::Same => Ok((x, Padding::Same)),
            PadMode::Explicit([top, bottom, left, right]) => {
                let pads = [0, 0, top, bottom, left, right, 0, 0]
                    .map(i32_of)
                    .into_iter()
                    .collect::<Result<Vec<_>>>()?;
                let name = &node.name;
                let paddings =
                    self.int32_constant(format!("{name}/paddings"), vec![4, 2], &pads)?;
                let shape = Layout::Chw([c, h + top + bottom, w + left + right]).tflite_shape();
                let padded = self.intermediate(
                    node.inputs[0],
                    shape,
                    format!("{name}/padded"),
                    &node.source,
                )?;
                self.op(
                    BuiltinOperator::Pad,
                    vec![x, paddings],
                    vec![padded],
                    Some(BuiltinOptions::PadOptions(Box::default())),
                )?;
                Ok((padded, Padding::Valid))
            }
        }
    }

    /// Converts node `index` of the core graph.
    pub fn node(&mut self, index: usize, node: &CoreNode) -> Result<()> {
        let out = node.output;
        let out_layout = Layout::of_core(&self.g.shapes[usize::from(out)]);
        let name = node.name.clone();
        match &node.op {
            CoreOp::Conv2d {
                window,
                activation,
                out_channels,
                weight,
                bias,
            } => {
                let (x, [ci, h, w]) = self.chw(index, node)?;
                let (x, padding) = self.conv_padding(node, x, [ci, h, w], window)?;
                let [kh, kw] = window.kernel.map(usize::from);
                let block = [ci, kh, kw];
                let spec = WeightSpec {
                    reorder: &|v: &[f32]| blocks_chw_to_hwc(v, block),
                    reorder_i8: &|v: &[i8]| blocks_chw_to_hwc(v, block),
                    shape: [*out_channels, kh, kw, ci]
                        .map(i32_of)
                        .into_iter()
                        .collect::<Result<_>>()?,
                    dimension: 0,
                };
                let (wt, bt) = self.weights(index, node, weight, bias, spec)?;
                let y = self.define(out, Layout::Chw(self.out_hw(node)?), name, &node.source)?;
                let options = Conv2DOptions {
                    padding,
                    stride_h: i32::from(window.stride[0]),
                    stride_w: i32::from(window.stride[1]),
                    fused_activation_function: fused(*activation),
                    dilation_h_factor: 1,
                    dilation_w_factor: 1,
                    ..Default::default()
                };
                self.op(
                    BuiltinOperator::Conv2d,
                    vec![x, wt, bt],
                    vec![y],
                    Some(BuiltinOptions::Conv2DOptions(Box::new(options))),
                )
            }
            CoreOp::DepthwiseConv2d {
                window,
                activation,
                weight,
                bias,
            } => {
                let (x, [c, h, w]) = self.chw(index, node)?;
                let (x, padding) = self.conv_padding(node, x, [c, h, w], window)?;
                let [kh, kw] = window.kernel.map(usize::from);
                let dims = [c, kh, kw];
                let spec = WeightSpec {
                    reorder: &|v: &[f32]| chw_to_hwc(v, dims),
                    reorder_i8: &|v: &[i8]| chw_to_hwc(v, dims),
                    shape: [1, kh, kw, c]
                        .map(i32_of)
                        .into_iter()
                        .collect::<Result<_>>()?,
                    dimension: 3,
                };
                let (wt, bt) = self.weights(index, node, weight, bias, spec)?;
                let y = self.define(out, Layout::Chw(self.out_hw(node)?), name, &node.source)?;
                let options = DepthwiseConv2DOptions {
                    padding,
                    stride_h: i32::from(window.stride[0]),
                    stride_w: i32::from(window.stride[1]),
                    depth_multiplier: 1,
                    fused_activation_function: fused(*activation),
                    dilation_h_factor: 1,
                    dilation_w_factor: 1,
                };
                self.op(
                    BuiltinOperator::DepthwiseConv2d,
                    vec![x, wt, bt],
                    vec![y],
                    Some(BuiltinOptions::DepthwiseConv2DOptions(Box::new(options))),
                )
            }
            CoreOp::Linear {
                activation,
                out_features,
                weight,
                bias,
            } => {
                let (x, hwc_of, len) = match self.tensor(node.inputs[0], node)? {
                    (x, Layout::Flat { len, hwc_of }) => (x, hwc_of, len),
                    _ => {
                        return Err(self.refuse(index, node, "reads a C×H×W tensor, not a vector"))
                    }
                };
                // A Linear after a flatten of [C][H][W] reads TFLite's HWC order: its columns
                // are permuted the same way.
                let permute = |v: &[f32]| match hwc_of {
                    Some(d) => blocks_chw_to_hwc(v, d),
                    None => v.to_vec(),
                };
                let permute_i8 = |v: &[i8]| match hwc_of {
                    Some(d) => blocks_chw_to_hwc(v, d),
                    None => v.to_vec(),
                };
                let spec = WeightSpec {
                    reorder: &permute,
                    reorder_i8: &permute_i8,
                    shape: vec![i32_of(*out_features)?, i32_of(len)?],
                    dimension: 0,
                };
                let (wt, bt) = self.weights(index, node, weight, bias, spec)?;
                let y = self.define(
                    out,
                    Layout::Flat {
                        len: *out_features,
                        hwc_of: None,
                    },
                    name,
                    &node.source,
                )?;
                let options = FullyConnectedOptions {
                    fused_activation_function: fused(*activation),
                    ..Default::default()
                };
                self.op(
                    BuiltinOperator::FullyConnected,
                    vec![x, wt, bt],
                    vec![y],
                    Some(BuiltinOptions::FullyConnectedOptions(Box::new(options))),
                )
            }
            CoreOp::Add { activation } => {
                let (a, la) = self.tensor(node.inputs[0], node)?;
                let (b, lb) = self.tensor(node.inputs[1], node)?;
                if la != lb {
                    return Err(self.refuse(index, node, "adds tensors of different layouts"));
                }
                let y = self.define(out, la, name, &node.source)?;
                let options = AddOptions {
                    fused_activation_function: fused(*activation),
                    ..Default::default()
                };
                self.op(
                    BuiltinOperator::Add,
                    vec![a, b],
                    vec![y],
                    Some(BuiltinOptions::AddOptions(Box::new(options))),
                )
            }
            CoreOp::MaxPool2d { window } | CoreOp::AvgPool2d { window } => {
                let (x, [c, h, w]) = self.chw(index, node)?;
                let [_, oh, ow] = self.out_hw(node)?;
                let padding = match pad_mode(window, [h, w], [oh, ow]) {
                    PadMode::Valid => Padding::Valid,
                    PadMode::Same => Padding::Same,
                    PadMode::Explicit(p) => {
                        return Err(self.refuse(
                            index,
                            node,
                            &format!(
                                "has padding {p:?} (top, bottom, left, right), neither VALID nor \
                                 TensorFlow's SAME; TFLite pools have no other padding that leaves \
                                 padded taps out"
                            ),
                        ))
                    }
                };
                let [kh, kw] = window.kernel.map(i32::from);
                let [sh, sw] = window.stride.map(i32::from);
                let code = match node.op {
                    CoreOp::MaxPool2d { .. } => BuiltinOperator::MaxPool2d,
                    _ => BuiltinOperator::AveragePool2d,
                };
                let y = self.define(out, Layout::Chw([c, oh, ow]), name, &node.source)?;
                self.pool(code, x, y, padding, [kh, kw], [sh, sw])
            }
            CoreOp::Mean => {
                // Global average pooling: AVERAGE_POOL_2D over the whole H×W (VALID) → [1, 1,
                // 1, C], then RESHAPE → [1, C]. Not MEAN: TFLite-Micro's int8 MEAN rescales the
                // sum with a multiplier (`docs/quantization.md`, "Checked against
                // TFLite-Micro"), its AVERAGE_POOL_2D divides with rounding, as the core does.
                let (x, [c, h, w]) = self.chw(index, node)?;
                let pooled = self.intermediate(
                    node.inputs[0],
                    Layout::Chw([c, 1, 1]).tflite_shape(),
                    format!("{name}/pooled"),
                    &node.source,
                )?;
                self.pool(
                    BuiltinOperator::AveragePool2d,
                    x,
                    pooled,
                    Padding::Valid,
                    [i32_of(h)?, i32_of(w)?],
                    [1, 1],
                )?;
                let layout = Layout::Flat {
                    len: c,
                    hwc_of: None,
                };
                let y = self.define(out, layout, name.clone(), &node.source)?;
                self.reshape(&name, pooled, y, layout)
            }
            CoreOp::Reshape => {
                let (x, layout) = self.tensor(node.inputs[0], node)?;
                let Some(Layout::Flat { .. }) = out_layout else {
                    return Err(self.refuse(
                        index,
                        node,
                        "reshapes to something other than a vector (only flattening is exported)",
                    ));
                };
                let layout = layout.flattened();
                let y = self.define(out, layout, name.clone(), &node.source)?;
                self.reshape(&name, x, y, layout)
            }
            CoreOp::Activation { activation } => {
                let (x, layout) = self.tensor(node.inputs[0], node)?;
                let code = match activation {
                    Activation::Relu => BuiltinOperator::Relu,
                    Activation::Relu6 => BuiltinOperator::Relu6,
                    Activation::None => {
                        return Err(self.refuse(index, node, "is an identity activation"))
                    }
                };
                let y = self.define(out, layout, name, &node.source)?;
                self.op(code, vec![x], vec![y], None)
            }
            CoreOp::Softmax { beta } => {
                let (x, layout) = self.tensor(node.inputs[0], node)?;
                if !matches!(layout, Layout::Flat { .. }) {
                    return Err(self.refuse(index, node, "is taken over a C×H×W tensor"));
                }
                let y = self.define(out, layout, name, &node.source)?;
                self.op(
                    BuiltinOperator::Softmax,
                    vec![x],
                    vec![y],
                    Some(BuiltinOptions::SoftmaxOptions(Box::new(SoftmaxOptions {
                        beta: *beta,
                    }))),
                )
            }
            op => {
                debug_assert!(!has_builtin(op));
                Err(self.refuse(index, node, NO_BUILTIN))
            }
        }
    }

    fn pool(
        &mut self,
        code: BuiltinOperator,
        x: i32,
        y: i32,
        padding: Padding,
        [kh, kw]: [i32; 2],
        [sh, sw]: [i32; 2],
    ) -> Result<()> {
        let options = Pool2DOptions {
            padding,
            stride_w: sw,
            stride_h: sh,
            filter_width: kw,
            filter_height: kh,
            fused_activation_function: ActivationFunctionType::None,
        };
        self.op(
            code,
            vec![x],
            vec![y],
            Some(BuiltinOptions::Pool2DOptions(Box::new(options))),
        )
    }

    /// RESHAPE `x` → `y` of `layout` (the new shape both as the shape input and in the options).
    fn reshape(&mut self, name: &str, x: i32, y: i32, layout: Layout) -> Result<()> {
        let shape = layout.tflite_shape();
        let dims = vec![i32_of(shape.len())?];
        let s = self.int32_constant(format!("{name}/shape"), dims, &shape)?;
        self.op(
            BuiltinOperator::Reshape,
            vec![x, s],
            vec![y],
            Some(BuiltinOptions::ReshapeOptions(Box::new(ReshapeOptions {
                new_shape: Some(shape),
            }))),
        )
    }
}
