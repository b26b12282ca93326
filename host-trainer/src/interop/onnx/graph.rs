//! An ONNX file decoded into the few operations the importer maps onto an architecture.
//!
//! Each ONNX node becomes at most one [`Op`] with its constants resolved (initializers, and
//! `Constant` nodes), in graph (topological) order:
//!
//! ```text
//! Conv                  → Op::Conv      W [O, I/g, kh, kw], B [O] (optional); pads, strides, group
//! Gemm                  → Op::Linear    W [out, in] (B transposed back when transB = 0; α, β
//!                                       folded into W and C), bias C [out] (optional)
//! MatMul (x, B [in, out]) → Op::Linear  W = Bᵀ, no bias …
//! Add (that output, c [out]) …          … which the Add of a constant then supplies
//! BatchNormalization    → Op::BatchNorm γ, β, running mean, running var, ε (inference mode)
//! Relu                  → Op::Relu;     Clip(min 0, max 6) → Op::Relu6, Clip(min 0) → Op::Relu
//! MaxPool, AveragePool  → window k×k / stride, no padding, floor mode
//! GlobalAveragePool     → Op::GlobalAvgPool ([N, C, H, W] → [N, C, 1, 1])
//! Flatten (axis 1), Reshape to [0 | −1 | 1, F | −1] → Op::Flatten
//! Add (two computed tensors) → Op::Add
//! Sub, Div by a constant (the input normalization) → Op::Sub, Op::Div
//! Pad (constant 0, H and W only) right before a Conv → added to that Conv's pads
//!                       (PyTorch's `nn.ZeroPad2d` for TF-"same" padding at stride 2)
//! Identity, Dropout     → no op: the output names the input
//! ```
//!
//! Anything else is refused by the first node's name and op type.

use std::collections::HashMap;
use std::fmt;

use anyhow::{bail, Context, Result};
use prost::Message;

use super::proto::{self, AttributeProto, DataType, ModelProto, NodeProto, TensorProto};

/// The op types [`decode`] accepts, as errors list them.
pub const SUPPORTED: &str = "Conv, Gemm, MatMul (+ Add of a bias), BatchNormalization, Relu, \
     Clip(0, 6), MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, Add, Sub/Div by a \
     constant (input normalization), zero Pad before a Conv, Identity, Dropout, Constant";

/// A float tensor: row-major `data` of shape `dims`.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

impl Param {
    /// `[r, c]` → `[c, r]`.
    pub fn transposed(&self) -> Param {
        let (r, c) = (self.dims[0], self.dims[1]);
        let mut data = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                data[j * r + i] = self.data[i * c + j];
            }
        }
        Param {
            dims: vec![c, r],
            data,
        }
    }

    fn scaled(mut self, s: f32) -> Param {
        if s != 1.0 {
            self.data.iter_mut().for_each(|v| *v *= s);
        }
        self
    }
}

/// A constant's values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A constant tensor (an initializer or a `Constant` node's value).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Const {
    pub(crate) dims: Vec<usize>,
    pub(crate) values: Values,
}

/// The ONNX node an op came from, for errors: `node 'conv1' (Conv)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub name: String,
    pub op_type: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node '{}' ({})", self.name, self.op_type)
    }
}

/// One decoded operation (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub enum OpKind {
    /// Zero `pads = [top, bottom, left, right]`.
    Conv {
        weight: Param,
        bias: Option<Param>,
        stride: [usize; 2],
        pads: [usize; 4],
        groups: usize,
    },
    /// `y = W·x + b`, `weight: [out, in]`.
    Linear {
        weight: Param,
        bias: Option<Param>,
    },
    BatchNorm {
        scale: Param,
        bias: Param,
        mean: Param,
        var: Param,
        eps: f64,
    },
    Relu,
    Relu6,
    MaxPool {
        kernel: [usize; 2],
        stride: [usize; 2],
    },
    AvgPool {
        kernel: [usize; 2],
        stride: [usize; 2],
    },
    GlobalAvgPool,
    /// `[N, …] → [N, F]`.
    Flatten,
    Add,
    /// `x − c`, `x / c` with a constant `c` (one value, or one per channel).
    Sub(Param),
    Div(Param),
    /// Zero padding `[top, bottom, left, right]`; folded into the Conv that reads it.
    Pad([usize; 4]),
}

/// One op: reads `inputs` (computed tensors only; constants are folded into the kind), writes
/// `output`.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub origin: Origin,
    pub kind: OpKind,
    pub inputs: Vec<String>,
    pub output: String,
}

/// A decoded graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// The graph input's name and its per-sample dims (`[C, H, W]` or `[D]`, batch dropped).
    pub input: String,
    pub input_dims: Vec<usize>,
    /// The first graph output (the class scores); other outputs are ignored.
    pub output: String,
    /// Its per-sample dims when the file gives them.
    pub output_dims: Option<Vec<usize>>,
    pub ops: Vec<Op>,
}

/// Decodes an ONNX file's bytes (see the module doc).
pub fn decode(bytes: &[u8]) -> Result<Graph> {
    let model =
        ModelProto::decode(bytes).context("not an ONNX model (protobuf decoding failed)")?;
    from_model(&model)
}

/// [`decode`] of an already decoded file.
pub fn from_model(model: &ModelProto) -> Result<Graph> {
    let Some(g) = &model.graph else {
        bail!("not an ONNX model: it holds no graph");
    };
    if g.node.is_empty() {
        bail!("the ONNX graph has no nodes");
    }
    let mut consts: HashMap<String, Const> = HashMap::new();
    for t in &g.initializer {
        let name = t.name.clone().unwrap_or_default();
        let c = tensor(t).with_context(|| format!("initializer '{name}'"))?;
        consts.insert(name, c);
    }
    let inputs: Vec<_> = g
        .input
        .iter()
        .filter(|v| !consts.contains_key(v.name.as_deref().unwrap_or("")))
        .collect();
    let [input] = inputs[..] else {
        bail!(
            "the ONNX graph has {} inputs that are not initializers; one (the samples) is expected",
            inputs.len()
        );
    };
    let input_name = input.name.clone().unwrap_or_default();
    let dims = value_dims(input).with_context(|| format!("graph input '{input_name}'"))?;
    let input_dims = match dims[..] {
        [_, ref rest @ ..] if (rest.len() == 1 || rest.len() == 3) => rest
            .iter()
            .map(|d| d.filter(|&d| d > 0).map(|d| d as usize))
            .collect::<Option<Vec<usize>>>()
            .with_context(|| {
                format!("graph input '{input_name}': every dim but the batch must be a fixed size")
            })?,
        _ => bail!(
            "graph input '{input_name}' has {} dims; [N, C, H, W] or [N, D] is expected",
            dims.len()
        ),
    };
    let Some(out) = g.output.first() else {
        bail!("the ONNX graph has no output");
    };
    let output = out.name.clone().unwrap_or_default();
    let output_dims = value_dims(out).ok().and_then(|d| {
        d.get(1..)?
            .iter()
            .map(|d| d.filter(|&d| d > 0).map(|d| d as usize))
            .collect()
    });

    let mut d = Decoder {
        consts,
        alias: HashMap::new(),
        ops: Vec::new(),
    };
    for (k, node) in g.node.iter().enumerate() {
        let origin = Origin {
            name: node
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("#{k}")),
            op_type: node.op_type.clone().unwrap_or_default(),
        };
        d.node(node, &origin).with_context(|| origin.to_string())?;
    }
    let output = d.resolve(&output);
    Ok(Graph {
        input: input_name,
        input_dims,
        output,
        output_dims,
        ops: fold_pads(d.ops)?,
    })
}

/// Folds each [`OpKind::Pad`] into the one Conv that reads it (its pads grow by the Pad's).
fn fold_pads(mut ops: Vec<Op>) -> Result<Vec<Op>> {
    while let Some(p) = ops.iter().position(|o| matches!(o.kind, OpKind::Pad(_))) {
        let pad = ops.remove(p);
        let OpKind::Pad(extra) = pad.kind else {
            unreachable!("found as a Pad")
        };
        let readers: Vec<usize> = (0..ops.len())
            .filter(|&k| ops[k].inputs.contains(&pad.output))
            .collect();
        let conv = match readers[..] {
            [k] => match &mut ops[k].kind {
                OpKind::Conv { pads, .. } => {
                    for (a, b) in pads.iter_mut().zip(extra) {
                        *a += b;
                    }
                    k
                }
                _ => bail!(
                    "{}: a Pad is supported only right before a Conv",
                    pad.origin
                ),
            },
            _ => bail!(
                "{}: a Pad is supported only when exactly one Conv reads it",
                pad.origin
            ),
        };
        ops[conv].inputs[0] = pad.inputs[0].clone();
    }
    Ok(ops)
}

/// The dims of a graph input/output: `Some(size)` or `None` for a symbolic dim.
pub(crate) fn value_dims(v: &proto::ValueInfoProto) -> Result<Vec<Option<i64>>> {
    use proto::tensor_shape_proto::dimension::Value;
    let Some(proto::type_proto::Value::TensorType(t)) =
        v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        bail!("not a tensor");
    };
    if let Some(e) = t.elem_type {
        if e != DataType::Float as i32 {
            bail!("element type {e} is not float (1)");
        }
    }
    let shape = t.shape.as_ref().context("no shape")?;
    Ok(shape
        .dim
        .iter()
        .map(|d| match d.value {
            Some(Value::DimValue(n)) => Some(n),
            _ => None,
        })
        .collect())
}

/// Decodes a tensor: float (`raw_data` little-endian or `float_data`) or int64.
pub(crate) fn tensor(t: &TensorProto) -> Result<Const> {
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).with_context(|| format!("negative dim {d}")))
        .collect::<Result<Vec<usize>>>()?;
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .with_context(|| format!("dims {dims:?}: the value count overflows"))?;
    let ty = t.data_type.unwrap_or(0);
    let values = if ty == DataType::Float as i32 {
        let v: Vec<f32> = match &t.raw_data {
            Some(raw) => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            None => t.float_data.clone(),
        };
        let got = t.raw_data.as_ref().map_or(v.len(), |r| r.len() / 4);
        if got != n || t.raw_data.as_ref().is_some_and(|r| r.len() % 4 != 0) {
            bail!("dims {dims:?} need {n} float values, the tensor holds {got}");
        }
        Values::F32(v)
    } else if ty == DataType::Int64 as i32 {
        let v: Vec<i64> = match &t.raw_data {
            Some(raw) => raw
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect(),
            None => t.int64_data.clone(),
        };
        if v.len() != n {
            bail!(
                "dims {dims:?} need {n} int64 values, the tensor holds {}",
                v.len()
            );
        }
        Values::I64(v)
    } else {
        bail!("data type {ty} is not supported (float or int64 expected; external data neither)");
    };
    Ok(Const { dims, values })
}

/// Refuses a node of any domain but the default one (`""` or `ai.onnx`): custom-domain ops
/// (`com.microsoft`, …) have semantics this importer does not know.
pub(crate) fn check_domain(node: &NodeProto) -> Result<()> {
    match node.domain.as_deref() {
        None | Some("") | Some("ai.onnx") => Ok(()),
        Some(d) => bail!("domain '{d}' is not supported (ai.onnx only)"),
    }
}

pub(crate) fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
}

pub(crate) fn attr_int(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).and_then(|a| a.i).unwrap_or(default)
}

pub(crate) fn attr_float(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).and_then(|a| a.f).unwrap_or(default)
}

pub(crate) fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

/// A pair attribute (`strides`, `kernel_shape`) as `[usize; 2]`, all positive.
fn pair(node: &NodeProto, name: &str, default: Option<[usize; 2]>) -> Result<[usize; 2]> {
    match attr_ints(node, name) {
        None => default.with_context(|| format!("attribute '{name}' is missing")),
        Some(v) => match v[..] {
            [a, b] if a > 0 && b > 0 => Ok([a as usize, b as usize]),
            _ => bail!("attribute '{name}' = {v:?}: two positive values expected (2-D)"),
        },
    }
}

/// ONNX `pads = [top, left, bottom, right]` → `[top, bottom, left, right]`.
fn pads(node: &NodeProto) -> Result<[usize; 4]> {
    if let Some(a) = attr(node, "auto_pad").and_then(|a| a.s.clone()) {
        let s = String::from_utf8_lossy(&a).to_string();
        if s != "NOTSET" && s != "VALID" {
            bail!("auto_pad = {s} is not supported (export with explicit pads)");
        }
    }
    match attr_ints(node, "pads") {
        None => Ok([0; 4]),
        Some(v) => match v[..] {
            [t, l, b, r] if v.iter().all(|&p| p >= 0) => {
                Ok([t as usize, b as usize, l as usize, r as usize])
            }
            _ => bail!("attribute 'pads' = {v:?}: four non-negative values expected (2-D)"),
        },
    }
}

fn no_dilation(node: &NodeProto) -> Result<()> {
    match attr_ints(node, "dilations") {
        Some(d) if d.iter().any(|&x| x != 1) => bail!("dilations {d:?} are not supported (1 only)"),
        _ => Ok(()),
    }
}

struct Decoder {
    consts: HashMap<String, Const>,
    /// Output of an Identity/Dropout → the tensor it passes through.
    alias: HashMap<String, String>,
    ops: Vec<Op>,
}

impl Decoder {
    fn resolve(&self, name: &str) -> String {
        let mut n = name;
        while let Some(a) = self.alias.get(n) {
            n = a;
        }
        n.to_string()
    }

    /// The constant `name` as floats, if it is one.
    fn float(&self, name: &str) -> Option<Param> {
        match self.consts.get(name)? {
            Const {
                dims,
                values: Values::F32(v),
            } => Some(Param {
                dims: dims.clone(),
                data: v.clone(),
            }),
            _ => None,
        }
    }

    fn need_float(&self, node: &NodeProto, i: usize, what: &str) -> Result<Param> {
        let name = node.input.get(i).map(String::as_str).unwrap_or("");
        self.float(name).with_context(|| {
            format!("input {i} ('{name}', {what}) must be a float initializer or Constant")
        })
    }

    fn optional_float(&self, node: &NodeProto, i: usize, what: &str) -> Result<Option<Param>> {
        match node.input.get(i).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(_) => self.need_float(node, i, what).map(Some),
        }
    }

    /// The computed (non-constant) input `i`.
    fn computed(&self, node: &NodeProto, i: usize) -> Result<String> {
        let name = node
            .input
            .get(i)
            .with_context(|| format!("input {i} is missing"))?;
        if self.consts.contains_key(name) {
            bail!("input {i} ('{name}') is a constant; a computed tensor is expected");
        }
        Ok(self.resolve(name))
    }

    fn push(
        &mut self,
        node: &NodeProto,
        origin: &Origin,
        kind: OpKind,
        inputs: Vec<String>,
    ) -> Result<()> {
        let output = node
            .output
            .first()
            .filter(|o| !o.is_empty())
            .context("no output")?;
        self.ops.push(Op {
            origin: origin.clone(),
            kind,
            inputs,
            output: output.clone(),
        });
        Ok(())
    }

    fn node(&mut self, node: &NodeProto, origin: &Origin) -> Result<()> {
        check_domain(node)?;
        let one = |s: &Self| s.computed(node, 0).map(|x| vec![x]);
        match origin.op_type.as_str() {
            "Constant" => {
                let out = node.output.first().context("no output")?;
                let value = match attr(node, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => tensor(t)?,
                    None => match (attr(node, "value_float"), attr(node, "value_ints")) {
                        (Some(a), _) => Const {
                            dims: vec![],
                            values: Values::F32(vec![a.f.unwrap_or(0.0)]),
                        },
                        (_, Some(a)) => Const {
                            dims: vec![a.ints.len()],
                            values: Values::I64(a.ints.clone()),
                        },
                        _ => bail!(
                            "only 'value', 'value_float' and 'value_ints' constants are supported"
                        ),
                    },
                };
                self.consts.insert(out.clone(), value);
            }
            "Identity" | "Dropout" => {
                let x = self.computed(node, 0)?;
                let out = node.output.first().context("no output")?;
                self.alias.insert(out.clone(), x);
            }
            "Conv" => {
                no_dilation(node)?;
                let weight = self.need_float(node, 1, "weight")?;
                if weight.dims.len() != 4 {
                    bail!(
                        "weight dims {:?}: a 2-D convolution [O, I/g, kh, kw] is expected",
                        weight.dims
                    );
                }
                let kernel = pair(node, "kernel_shape", Some([weight.dims[2], weight.dims[3]]))?;
                if kernel != [weight.dims[2], weight.dims[3]] {
                    bail!(
                        "kernel_shape {kernel:?} differs from the weight's {:?}",
                        weight.dims
                    );
                }
                let kind = OpKind::Conv {
                    bias: self.optional_float(node, 2, "bias")?,
                    weight,
                    stride: pair(node, "strides", Some([1, 1]))?,
                    pads: pads(node)?,
                    groups: usize::try_from(attr_int(node, "group", 1))
                        .unwrap_or(0)
                        .max(1),
                };
                let x = one(self)?;
                self.push(node, origin, kind, x)?;
            }
            "Gemm" => {
                if attr_int(node, "transA", 0) != 0 {
                    bail!("transA = 1 is not supported");
                }
                let b = self.need_float(node, 1, "weight B")?;
                if b.dims.len() != 2 {
                    bail!("B dims {:?}: a matrix is expected", b.dims);
                }
                let weight = match attr_int(node, "transB", 0) {
                    0 => b.transposed(),
                    _ => b,
                };
                let weight = weight.scaled(attr_float(node, "alpha", 1.0));
                let bias = self
                    .optional_float(node, 2, "bias C")?
                    .map(|c| c.scaled(attr_float(node, "beta", 1.0)));
                let x = one(self)?;
                self.push(node, origin, OpKind::Linear { weight, bias }, x)?;
            }
            "MatMul" => {
                let b = self.need_float(node, 1, "weight B")?;
                if b.dims.len() != 2 {
                    bail!("B dims {:?}: a matrix [in, out] is expected", b.dims);
                }
                let x = one(self)?;
                self.push(
                    node,
                    origin,
                    OpKind::Linear {
                        weight: b.transposed(),
                        bias: None,
                    },
                    x,
                )?;
            }
            "Add" => {
                let names: Vec<&str> = node.input.iter().map(String::as_str).collect();
                let [a, b] = names[..] else {
                    bail!("{} inputs; two are expected", names.len());
                };
                match (self.float(a), self.float(b)) {
                    (None, None) => {
                        let ins = vec![self.resolve(a), self.resolve(b)];
                        self.push(node, origin, OpKind::Add, ins)?;
                    }
                    (Some(c), None) | (None, Some(c)) => {
                        let x = self.resolve(if self.consts.contains_key(a) { b } else { a });
                        self.bias_of_matmul(node, &x, c)?;
                    }
                    (Some(_), Some(_)) => bail!("both inputs are constants"),
                }
            }
            "Sub" | "Div" => {
                let c = self.need_float(node, 1, "the normalization constant")?;
                let x = one(self)?;
                let kind = if origin.op_type == "Sub" {
                    OpKind::Sub(c)
                } else {
                    OpKind::Div(c)
                };
                self.push(node, origin, kind, x)?;
            }
            "BatchNormalization" => {
                if attr_int(node, "training_mode", 0) != 0 {
                    bail!("training_mode = 1: export the model in eval mode (model.eval())");
                }
                let kind = OpKind::BatchNorm {
                    scale: self.need_float(node, 1, "scale γ")?,
                    bias: self.need_float(node, 2, "bias β")?,
                    mean: self.need_float(node, 3, "running mean")?,
                    var: self.need_float(node, 4, "running variance")?,
                    eps: f64::from(attr_float(node, "epsilon", 1e-5)),
                };
                let x = one(self)?;
                self.push(node, origin, kind, x)?;
            }
            "Relu" => {
                let x = one(self)?;
                self.push(node, origin, OpKind::Relu, x)?;
            }
            "Clip" => {
                let bound = |i: usize, a: &str| -> Result<Option<f32>> {
                    if let Some(v) = attr(node, a).and_then(|a| a.f) {
                        return Ok(Some(v));
                    }
                    Ok(match self.optional_float(node, i, a)? {
                        None => None,
                        Some(p) if p.data.len() == 1 => Some(p.data[0]),
                        Some(p) => bail!("{a} has {} values; a scalar is expected", p.data.len()),
                    })
                };
                let kind = match (bound(1, "min")?, bound(2, "max")?) {
                    (Some(lo), Some(hi)) if lo == 0.0 && hi == 6.0 => OpKind::Relu6,
                    (Some(0.0), None) => OpKind::Relu,
                    (lo, hi) => bail!(
                        "Clip(min {lo:?}, max {hi:?}) is not supported: only Clip(0, 6) (ReLU6) \
                         and Clip(0) (ReLU)"
                    ),
                };
                let x = one(self)?;
                self.push(node, origin, kind, x)?;
            }
            "MaxPool" | "AveragePool" => {
                no_dilation(node)?;
                if attr_int(node, "ceil_mode", 0) != 0 {
                    bail!("ceil_mode = 1 is not supported (floor mode only)");
                }
                if pads(node)? != [0; 4] {
                    bail!("padded pooling is not supported (pads must be 0)");
                }
                if node.output.len() > 1 && node.output[1..].iter().any(|o| !o.is_empty()) {
                    bail!("the Indices output is not supported");
                }
                let kernel = pair(node, "kernel_shape", None)?;
                let stride = pair(node, "strides", Some([1, 1]))?;
                let kind = if origin.op_type == "MaxPool" {
                    OpKind::MaxPool { kernel, stride }
                } else {
                    OpKind::AvgPool { kernel, stride }
                };
                let x = one(self)?;
                self.push(node, origin, kind, x)?;
            }
            "GlobalAveragePool" => {
                let x = one(self)?;
                self.push(node, origin, OpKind::GlobalAvgPool, x)?;
            }
            "Flatten" => {
                let axis = attr_int(node, "axis", 1);
                if axis != 1 {
                    bail!("axis = {axis} is not supported (1: keep the batch dim)");
                }
                let x = one(self)?;
                self.push(node, origin, OpKind::Flatten, x)?;
            }
            "Reshape" => {
                let name = node.input.get(1).map(String::as_str).unwrap_or("");
                let shape = match self.consts.get(name) {
                    Some(Const {
                        values: Values::I64(v),
                        ..
                    }) => v.clone(),
                    _ => bail!(
                        "the target shape '{name}' must be an int64 initializer or Constant \
                         (export with fixed shapes, or use torch.flatten(x, 1))"
                    ),
                };
                // A named F is the file's own business (a wrong one makes it invalid); the Linear
                // that reads the features is checked against the architecture.
                if !matches!(shape[..], [-1..=1, f] if f == -1 || f > 0) {
                    bail!("target shape {shape:?} is not a flatten to [N, F]");
                }
                let x = one(self)?;
                self.push(node, origin, OpKind::Flatten, x)?;
            }
            "Pad" => {
                let mode = attr(node, "mode")
                    .and_then(|a| a.s.clone())
                    .unwrap_or_default();
                if !mode.is_empty() && mode != b"constant" {
                    bail!(
                        "mode '{}' is not supported (constant zeros only)",
                        String::from_utf8_lossy(&mode)
                    );
                }
                if let Some(v) = self.optional_float(node, 2, "constant_value")? {
                    if v.data.iter().any(|&x| x != 0.0) {
                        bail!("a non-zero constant_value is not supported");
                    }
                }
                if node.input.get(3).is_some_and(|a| !a.is_empty()) {
                    bail!("the axes input is not supported (pad all four dims)");
                }
                let name = node.input.get(1).map(String::as_str).unwrap_or("");
                let pads = match (self.consts.get(name), attr_ints(node, "pads")) {
                    (
                        Some(Const {
                            values: Values::I64(v),
                            ..
                        }),
                        _,
                    ) => v.clone(),
                    (None, Some(v)) => v,
                    _ => bail!("the pads '{name}' must be an int64 initializer or Constant"),
                };
                let [0, 0, t, l, 0, 0, b, r] = pads[..] else {
                    bail!("pads {pads:?}: only H and W of [N, C, H, W] may be padded");
                };
                if [t, l, b, r].iter().any(|&p| p < 0) {
                    bail!("pads {pads:?}: negative pads (cropping) are not supported");
                }
                let kind = OpKind::Pad([t, b, l, r].map(|p| p as usize));
                let x = one(self)?;
                self.push(node, origin, kind, x)?;
            }
            _ => bail!("unsupported op type (supported: {SUPPORTED})"),
        }
        Ok(())
    }

    /// `Add(x, c)` after `x = MatMul(·, B)`: `c` becomes that Linear's bias.
    fn bias_of_matmul(&mut self, node: &NodeProto, x: &str, c: Param) -> Result<()> {
        let used_elsewhere = self.ops.iter().any(|o| o.inputs.iter().any(|i| i == x));
        let Some(op) = self.ops.iter_mut().rev().find(|o| o.output == x) else {
            bail!("adding a constant is supported only as the bias of a MatMul");
        };
        match &mut op.kind {
            OpKind::Linear { weight, bias } if bias.is_none() && !used_elsewhere => {
                let out = weight.dims[0];
                if c.data.len() != out {
                    bail!(
                        "bias has {} values, the MatMul gives {out} features",
                        c.data.len()
                    );
                }
                *bias = Some(Param {
                    dims: vec![out],
                    data: c.data,
                });
                op.output = node.output.first().context("no output")?.clone();
                Ok(())
            }
            _ => bail!(
                "adding a constant is supported only as the bias of a MatMul (whose output \
                 nothing else reads)"
            ),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::proto::tensor_shape_proto::{dimension, Dimension};
    use super::proto::{
        type_proto, AttributeType, GraphProto, TensorShapeProto, TypeProto, ValueInfoProto,
    };
    use super::*;

    /// Found by the `onnx` fuzz target: dims whose product overflows `usize` were multiplied
    /// unchecked (a panic with overflow checks, a wrong count without).
    #[test]
    fn dims_whose_product_overflows_are_an_error() {
        let t = TensorProto {
            dims: vec![1 << 40, 1 << 40],
            data_type: Some(DataType::Float as i32),
            raw_data: Some(vec![0; 16]),
            ..Default::default()
        };
        let e = tensor(&t).unwrap_err();
        assert!(format!("{e:#}").contains("overflows"), "{e:#}");
    }

    /// A float initializer (raw little-endian data).
    pub(crate) fn init(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
        TensorProto {
            name: Some(name.into()),
            dims: dims.to_vec(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            ..Default::default()
        }
    }

    pub(crate) fn node(
        op: &str,
        name: &str,
        ins: &[&str],
        out: &str,
        attrs: Vec<AttributeProto>,
    ) -> NodeProto {
        NodeProto {
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: vec![out.into()],
            name: Some(name.into()),
            op_type: Some(op.into()),
            attribute: attrs,
            ..Default::default()
        }
    }

    pub(crate) fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Int as i32),
            i: Some(v),
            ..Default::default()
        }
    }

    pub(crate) fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
        let dim = |(k, &d): (usize, &i64)| Dimension {
            value: Some(if k == 0 {
                dimension::Value::DimParam("N".into())
            } else {
                dimension::Value::DimValue(d)
            }),
            denotation: None,
        };
        ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: Some(DataType::Float as i32),
                    shape: Some(TensorShapeProto {
                        dim: dims.iter().enumerate().map(dim).collect(),
                    }),
                })),
                denotation: None,
            }),
            doc_string: None,
        }
    }

    pub(crate) fn model(
        nodes: Vec<NodeProto>,
        inits: Vec<TensorProto>,
        input: &[i64],
        output: &[i64],
    ) -> Vec<u8> {
        ModelProto {
            ir_version: Some(8),
            graph: Some(GraphProto {
                node: nodes,
                initializer: inits,
                input: vec![value("x", input)],
                output: vec![value("y", output)],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn gemm_without_trans_b_and_matmul_add_become_linears() {
        // Gemm B [in 2, out 3] (transB = 0): W = Bᵀ; MatMul B2 [3, 2] + Add c: W = B2ᵀ, b = c.
        let bytes = model(
            vec![
                node("Gemm", "fc1", &["x", "B", "C"], "h", vec![int("transB", 0)]),
                node("Relu", "act", &["h"], "r", vec![]),
                node("MatMul", "fc2", &["r", "B2"], "m", vec![]),
                node("Add", "fc2_bias", &["m", "c"], "y", vec![]),
            ],
            vec![
                init("B", &[2, 3], &[1., 2., 3., 4., 5., 6.]),
                init("C", &[3], &[0.5, 0.5, 0.5]),
                init("B2", &[3, 2], &[1., 2., 3., 4., 5., 6.]),
                init("c", &[2], &[7., 8.]),
            ],
            &[1, 2],
            &[1, 2],
        );
        let g = decode(&bytes).unwrap();
        assert_eq!(g.input_dims, [2]);
        assert_eq!(g.output_dims, Some(vec![2]));
        assert_eq!(g.ops.len(), 3);
        let OpKind::Linear { weight, bias } = &g.ops[0].kind else {
            panic!("{:?}", g.ops[0])
        };
        assert_eq!(weight.dims, [3, 2]);
        assert_eq!(weight.data, [1., 4., 2., 5., 3., 6.]);
        assert_eq!(bias.as_ref().unwrap().data, [0.5; 3]);
        let OpKind::Linear { weight, bias } = &g.ops[2].kind else {
            panic!("{:?}", g.ops[2])
        };
        assert_eq!(weight.data, [1., 3., 5., 2., 4., 6.]);
        assert_eq!(bias.as_ref().unwrap().data, [7., 8.]);
        assert_eq!(g.ops[2].output, "y");
        assert_eq!(g.output, "y");
    }

    #[test]
    fn clip_reshape_identity_and_float_data() {
        let shape = TensorProto {
            name: Some("shape".into()),
            dims: vec![2],
            data_type: Some(DataType::Int64 as i32),
            int64_data: vec![0, -1],
            ..Default::default()
        };
        let w = TensorProto {
            name: Some("w".into()),
            dims: vec![2, 4],
            data_type: Some(DataType::Float as i32),
            float_data: vec![1.0; 8],
            ..Default::default()
        };
        let six = init("six", &[], &[6.0]);
        let zero = init("zero", &[], &[0.0]);
        let bytes = model(
            vec![
                node("Clip", "clip", &["x", "zero", "six"], "a", vec![]),
                node("Identity", "id", &["a"], "b", vec![]),
                node("Reshape", "flat", &["b", "shape"], "c", vec![]),
                node("Gemm", "fc", &["c", "w"], "y", vec![int("transB", 1)]),
            ],
            vec![shape, w, six, zero],
            &[1, 1, 2, 2],
            &[1, 2],
        );
        let g = decode(&bytes).unwrap();
        let kinds: Vec<&OpKind> = g.ops.iter().map(|o| &o.kind).collect();
        assert_eq!(kinds[0], &OpKind::Relu6);
        assert_eq!(kinds[1], &OpKind::Flatten);
        // The Identity is gone: the Reshape reads the Clip's output.
        assert_eq!(g.ops[1].inputs, ["a"]);
        assert!(matches!(kinds[2], OpKind::Linear { weight, .. } if weight.dims == [2, 4]));
    }

    #[test]
    fn unsupported_nodes_and_garbage_are_named() {
        let bytes = model(
            vec![node("Sigmoid", "gate", &["x"], "y", vec![])],
            vec![],
            &[1, 4],
            &[1, 4],
        );
        let e = format!("{:#}", decode(&bytes).unwrap_err());
        assert!(
            e.contains("node 'gate' (Sigmoid)") && e.contains("unsupported op type"),
            "{e}"
        );
        let e = format!("{:#}", decode(b"\xff\xff\xff not protobuf").unwrap_err());
        assert!(e.contains("not an ONNX model"), "{e}");
        let clip = model(
            vec![node("Clip", "c", &["x", "lo"], "y", vec![])],
            vec![init("lo", &[], &[-1.0])],
            &[1, 4],
            &[1, 4],
        );
        let e = format!("{:#}", decode(&clip).unwrap_err());
        assert!(
            e.contains("node 'c' (Clip)") && e.contains("Clip(0, 6)"),
            "{e}"
        );
        // Raw data shorter than the dims say.
        let mut short = init("w", &[2, 2], &[1.0; 3]);
        short.name = Some("w".into());
        let bad = model(
            vec![node("MatMul", "mm", &["x", "w"], "y", vec![])],
            vec![short],
            &[1, 2],
            &[1, 2],
        );
        let e = format!("{:#}", decode(&bad).unwrap_err());
        assert!(
            e.contains("initializer 'w'") && e.contains("need 4 float values"),
            "{e}"
        );
    }
}
