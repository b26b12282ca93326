//! A reference evaluator of ONNX graphs on tch tensors (f32 and int64), the oracle the ViT
//! import checks its mapping against ([`super::vit`]): whatever way an exporter spelled the
//! model (LayerNormalization or its decomposition, dynamic-batch `Shape` chains, `Split` or
//! `Slice`), the imported model must compute what the file computes.
//!
//! Every op follows the ONNX operator spec (numpy broadcasting; `MatMul` as `numpy.matmul`;
//! `Reshape` with `0` = copy the dim unless `allowzero`, `-1` = inferred; integer `Div`
//! truncates). Supported: [`SUPPORTED`]. An op outside it, a bad attribute or shape is an
//! error naming the node; nothing panics on any file (tch's fallible `f_` calls throughout),
//! no tensor may exceed [`MAX_ELEMENTS`] values (checked before an op can allocate it) and all
//! of them together [`MAX_TOTAL_ELEMENTS`].

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};
use tch::{Kind, Tensor};

use crate::export::onnx::proto::{GraphProto, ModelProto, NodeProto, TensorProto};
use crate::interop::onnx::graph::{attr, attr_float, attr_int, attr_ints, tensor, Const, Values};

/// The op types [`Evaluator`] runs, as errors list them.
pub const SUPPORTED: &str = "Add, Cast, Concat, Constant, ConstantOfShape, Conv, Div, Dropout, \
     Equal, Erf, Expand, Flatten, Gather, Gelu, Gemm, Identity, LayerNormalization, MatMul, Mul, \
     Pow, ReduceMean, Relu, Reshape, Shape, Slice, Softmax, Split, Sqrt, Squeeze, Sub, Tanh, \
     Transpose, Unsqueeze, Where";

/// The largest tensor (in values) any op may produce: 2²⁶ (256 MB of f32).
pub const MAX_ELEMENTS: i64 = 1 << 26;

/// The most values all of a run's tensors may hold together (they stay alive until the end):
/// 2²⁸ (1 GiB of f32). timm's default-size ViT on 4 samples holds about 2²¹.
pub const MAX_TOTAL_ELEMENTS: i64 = 1 << 28;

/// A graph ready to run: its nodes, constants and the default-domain opset.
pub struct Evaluator<'a> {
    graph: &'a GraphProto,
    opset: i64,
    consts: HashMap<String, Tensor>,
}

/// A constant as a tch tensor (f32 or int64).
pub(super) fn to_tensor(c: &Const) -> Result<Tensor> {
    let dims: Vec<i64> = c.dims.iter().map(|&d| d as i64).collect();
    let t = match &c.values {
        Values::F32(v) => Tensor::f_from_slice(v)?,
        Values::I64(v) => Tensor::f_from_slice(v)?,
    };
    Ok(t.f_reshape(dims)?)
}

fn decode(t: &TensorProto) -> Result<Tensor> {
    to_tensor(&tensor(t)?)
}

/// The model's default-domain (`""` / `ai.onnx`) opset version.
pub fn opset(model: &ModelProto) -> Result<i64> {
    model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
        .context("the model imports no default-domain (ai.onnx) opset")
}

fn numel(shape: &[i64]) -> Result<i64> {
    shape.iter().try_fold(1i64, |acc, &d| {
        if d < 0 {
            bail!("negative dim {d} in shape {shape:?}");
        }
        acc.checked_mul(d)
            .filter(|&n| n <= MAX_ELEMENTS)
            .with_context(|| {
                format!("shape {shape:?} exceeds the evaluator's {MAX_ELEMENTS} values")
            })
    })
}

/// numpy broadcasting of two shapes.
fn broadcast(a: &[i64], b: &[i64]) -> Result<Vec<i64>> {
    let n = a.len().max(b.len());
    let at = |s: &[i64], i: usize| {
        if i + s.len() < n {
            1
        } else {
            s[i + s.len() - n]
        }
    };
    (0..n)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            (x, y) => bail!("shapes {a:?} and {b:?} do not broadcast (dim {i}: {x} vs {y})"),
        })
        .collect()
}

/// An axis attribute/input in `[-rank, rank)` → `[0, rank)`.
fn axis(a: i64, rank: usize) -> Result<i64> {
    let r = rank as i64;
    match a {
        _ if (-r..r).contains(&a) => Ok(if a < 0 { a + r } else { a }),
        _ => bail!("axis {a} is out of range for rank {rank}"),
    }
}

fn ints_of(t: &Tensor) -> Result<Vec<i64>> {
    if t.kind() != Kind::Int64 {
        bail!("an int64 tensor is expected, got {:?}", t.kind());
    }
    if t.numel() > 1024 {
        bail!("an index tensor of {} values is too long", t.numel());
    }
    Ok(Vec::<i64>::try_from(&t.f_flatten(0, -1)?)?)
}

impl<'a> Evaluator<'a> {
    /// Prepares `model`'s graph: decodes its initializers.
    pub fn new(model: &'a ModelProto) -> Result<Self> {
        let graph = model
            .graph
            .as_ref()
            .context("not an ONNX model: it holds no graph")?;
        let opset = opset(model)?;
        let mut consts = HashMap::new();
        for t in &graph.initializer {
            let name = t.name.clone().unwrap_or_default();
            let v = decode(t).with_context(|| format!("initializer '{name}'"))?;
            consts.insert(name, v);
        }
        Ok(Self {
            graph,
            opset,
            consts,
        })
    }

    /// Runs the graph on `input` (its one non-initializer input) and returns its first output.
    pub fn run(&self, input_name: &str, input: &Tensor) -> Result<Tensor> {
        let mut env: HashMap<&str, Tensor> = HashMap::new();
        env.insert(input_name, input.shallow_clone());
        let mut total = 0i64;
        for (k, node) in self.graph.node.iter().enumerate() {
            let name = node.name.clone().filter(|n| !n.is_empty());
            let origin = format!(
                "node '{}' ({})",
                name.unwrap_or_else(|| format!("#{k}")),
                node.op_type.as_deref().unwrap_or("")
            );
            let outs = self.node(node, &env).with_context(|| origin.clone())?;
            if outs.len() < node.output.iter().filter(|o| !o.is_empty()).count() {
                bail!(
                    "{origin}: gives {} outputs, the node names more",
                    outs.len()
                );
            }
            for (o, t) in node.output.iter().zip(outs) {
                if !o.is_empty() {
                    total = total.saturating_add(numel(&t.size()).with_context(|| origin.clone())?);
                    if total > MAX_TOTAL_ELEMENTS {
                        bail!(
                            "{origin}: the graph's tensors exceed the evaluator's \
                             {MAX_TOTAL_ELEMENTS} values in all"
                        );
                    }
                    env.insert(o.as_str(), t);
                }
            }
        }
        let out = self
            .graph
            .output
            .first()
            .and_then(|o| o.name.as_deref())
            .context("the ONNX graph has no output")?;
        match env.get(out) {
            Some(t) => Ok(t.shallow_clone()),
            None => bail!("no node computes the graph output '{out}'"),
        }
    }

    fn node(&self, node: &NodeProto, env: &HashMap<&str, Tensor>) -> Result<Vec<Tensor>> {
        crate::interop::onnx::graph::check_domain(node)?;
        let get = |i: usize| -> Result<Tensor> {
            let name = node
                .input
                .get(i)
                .filter(|n| !n.is_empty())
                .with_context(|| format!("input {i} is missing"))?;
            env.get(name.as_str())
                .or_else(|| self.consts.get(name))
                .map(Tensor::shallow_clone)
                .with_context(|| format!("input {i} ('{name}') is computed nowhere before"))
        };
        let opt = |i: usize| -> Result<Option<Tensor>> {
            match node.input.get(i).map(String::as_str) {
                None | Some("") => Ok(None),
                Some(_) => get(i).map(Some),
            }
        };
        let binary = |f: fn(&Tensor, &Tensor) -> Result<Tensor, tch::TchError>| -> Result<Tensor> {
            let (a, b) = (get(0)?, get(1)?);
            numel(&broadcast(&a.size(), &b.size())?)?;
            if a.kind() != b.kind() {
                bail!("input types differ ({:?}, {:?})", a.kind(), b.kind());
            }
            Ok(f(&a, &b)?)
        };
        let op = node.op_type.as_deref().unwrap_or("");
        let one = |t: Tensor| Ok(vec![t]);
        match op {
            "Identity" | "Dropout" => one(get(0)?),
            "Constant" => {
                let t = if let Some(t) = attr(node, "value").and_then(|a| a.t.as_ref()) {
                    decode(t)?
                } else if let Some(a) = attr(node, "value_float") {
                    Tensor::f_from_slice(&[a.f.unwrap_or(0.0)])?.f_reshape([0i64; 0])?
                } else if let Some(a) = attr(node, "value_floats") {
                    Tensor::f_from_slice(&a.floats)?
                } else if let Some(a) = attr(node, "value_int") {
                    Tensor::f_from_slice(&[a.i.unwrap_or(0)])?.f_reshape([0i64; 0])?
                } else if let Some(a) = attr(node, "value_ints") {
                    Tensor::f_from_slice(&a.ints)?
                } else {
                    bail!("a Constant needs value, value_float(s) or value_int(s)");
                };
                one(t)
            }
            "Add" => one(binary(Tensor::f_add)?),
            "Sub" => one(binary(Tensor::f_sub)?),
            "Mul" => one(binary(Tensor::f_mul)?),
            "Div" => {
                let t = binary(|a, b| match a.kind() {
                    Kind::Int64 => a.f_div_tensor_mode(b, "trunc"),
                    _ => a.f_div(b),
                })?;
                one(t)
            }
            "Pow" => {
                let (a, b) = (get(0)?, get(1)?);
                numel(&broadcast(&a.size(), &b.size())?)?;
                one(a.f_pow(&b.f_to_kind(a.kind())?)?)
            }
            "Equal" => one(binary(Tensor::f_eq_tensor)?),
            "Where" => {
                let (c, a, b) = (get(0)?, get(1)?, get(2)?);
                let s = broadcast(&broadcast(&c.size(), &a.size())?, &b.size())?;
                numel(&s)?;
                if c.kind() != Kind::Bool {
                    bail!("the condition is {:?}, not bool", c.kind());
                }
                one(a.f_where_self(&c, &b)?)
            }
            "Sqrt" => one(float(get(0)?)?.f_sqrt()?),
            "Erf" => one(float(get(0)?)?.f_erf()?),
            "Tanh" => one(float(get(0)?)?.f_tanh()?),
            "Relu" => one(float(get(0)?)?.f_relu()?),
            "Gelu" => {
                let approx = attr(node, "approximate")
                    .and_then(|a| a.s.clone())
                    .map(|s| String::from_utf8_lossy(&s).to_string())
                    .unwrap_or_else(|| "none".into());
                if approx != "none" && approx != "tanh" {
                    bail!("approximate = '{approx}' (none or tanh)");
                }
                one(float(get(0)?)?.f_gelu(&approx)?)
            }
            "Softmax" => {
                let x = float(get(0)?)?;
                let rank = x.dim();
                let default = if self.opset >= 13 { -1 } else { 1 };
                let a = axis(attr_int(node, "axis", default), rank)?;
                if self.opset < 13 && a != rank as i64 - 1 {
                    bail!(
                        "opset {} Softmax over axis {a} of {rank} (the last axis only)",
                        self.opset
                    );
                }
                one(x.f_softmax(a, Kind::Float)?)
            }
            "Cast" => {
                let kind = match attr_int(node, "to", 0) {
                    1 => Kind::Float,
                    7 => Kind::Int64,
                    9 => Kind::Bool,
                    t => bail!("Cast to type {t} (float 1, int64 7 or bool 9)"),
                };
                one(get(0)?.f_to_kind(kind)?)
            }
            "Shape" => {
                let s = get(0)?.size();
                let r = s.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let start = clamp(attr_int(node, "start", 0));
                let end = clamp(attr_int(node, "end", r));
                one(Tensor::f_from_slice(&s[start..end.max(start)])?)
            }
            "ConstantOfShape" => {
                let shape = ints_of(&get(0)?)?;
                numel(&shape)?;
                let v = match attr(node, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => decode(t)?,
                    None => Tensor::f_from_slice(&[0f32])?,
                };
                if v.numel() != 1 {
                    bail!("value must hold one element");
                }
                one(v
                    .f_reshape([1i64])?
                    .f_expand(shape.as_slice(), false)?
                    .f_contiguous()?)
            }
            "Reshape" => {
                let x = get(0)?;
                let mut shape = ints_of(&get(1)?)?;
                let allowzero = attr_int(node, "allowzero", 0) != 0;
                let size = x.size();
                for (i, d) in shape.iter_mut().enumerate() {
                    if *d == 0 && !allowzero {
                        *d = *size.get(i).with_context(|| {
                            format!(
                                "shape {i} is 0 (copy) but the input has rank {}",
                                size.len()
                            )
                        })?;
                    }
                }
                one(x.f_reshape(shape.as_slice())?)
            }
            "Flatten" => {
                let x = get(0)?;
                let s = x.size();
                let a = match attr_int(node, "axis", 1) {
                    a if a == s.len() as i64 => a,
                    a => axis(a, s.len())?,
                } as usize;
                let outer: i64 = s[..a].iter().product();
                let inner: i64 = s[a..].iter().product();
                one(x.f_reshape([outer, inner])?)
            }
            "Transpose" => {
                let x = get(0)?;
                let r = x.dim() as i64;
                let perm = attr_ints(node, "perm").unwrap_or_else(|| (0..r).rev().collect());
                let mut seen = perm.clone();
                seen.sort_unstable();
                if seen != (0..r).collect::<Vec<_>>() {
                    bail!("perm {perm:?} is not a permutation of the {r} axes");
                }
                one(x.f_permute(perm.as_slice())?)
            }
            "Squeeze" | "Unsqueeze" => {
                let x = get(0)?;
                let axes = match (self.opset >= 13, attr_ints(node, "axes")) {
                    (false, Some(a)) => Some(a),
                    (true, _) => opt(1)?.map(|t| ints_of(&t)).transpose()?,
                    (false, None) => None,
                };
                if op == "Squeeze" {
                    let s = x.size();
                    let axes = match axes {
                        Some(a) => a
                            .iter()
                            .map(|&a| axis(a, s.len()))
                            .collect::<Result<Vec<_>>>()?,
                        None => (0..s.len() as i64)
                            .filter(|&i| s[i as usize] == 1)
                            .collect(),
                    };
                    if let Some(a) = axes.iter().find(|&&a| s[a as usize] != 1) {
                        bail!("axis {a} of shape {s:?} is not 1");
                    }
                    let keep: Vec<i64> = (0..s.len())
                        .filter(|i| !axes.contains(&(*i as i64)))
                        .map(|i| s[i])
                        .collect();
                    one(x.f_reshape(keep.as_slice())?)
                } else {
                    let axes = axes.context("Unsqueeze needs axes")?;
                    let r = x.dim() + axes.len();
                    let mut axes = axes
                        .iter()
                        .map(|&a| axis(a, r))
                        .collect::<Result<Vec<_>>>()?;
                    axes.sort_unstable();
                    let mut y = x;
                    for a in axes {
                        y = y.f_unsqueeze(a)?;
                    }
                    one(y)
                }
            }
            "Concat" => {
                let ts = (0..node.input.len()).map(get).collect::<Result<Vec<_>>>()?;
                let first = ts.first().context("no inputs")?;
                let a = axis(attr_int(node, "axis", i64::MIN), first.dim())?;
                let total: i64 = ts.iter().map(|t| t.numel() as i64).sum();
                numel(&[total])?;
                one(Tensor::f_cat(&ts, a)?)
            }
            "Gather" => {
                let x = get(0)?;
                let idx = get(1)?;
                let a = axis(attr_int(node, "axis", 0), x.dim())?;
                let n = x.size()[a as usize];
                let flat = ints_of(&idx)?;
                let fixed: Vec<i64> = flat
                    .iter()
                    .map(|&i| match i {
                        _ if (-n..n).contains(&i) => Ok(if i < 0 { i + n } else { i }),
                        _ => bail!("index {i} is out of range for dim {a} of size {n}"),
                    })
                    .collect::<Result<_>>()?;
                // The index tensor's shape replaces dim `a`.
                let mut shape = x.size();
                shape.splice(a as usize..a as usize + 1, idx.size());
                numel(&shape)?;
                let picked = x.f_index_select(a, &Tensor::f_from_slice(&fixed)?)?;
                one(picked.f_reshape(shape.as_slice())?)
            }
            "Slice" => {
                if self.opset < 10 {
                    bail!("opset {} Slice (attributes) is not supported", self.opset);
                }
                let x = get(0)?;
                let starts = ints_of(&get(1)?)?;
                let ends = ints_of(&get(2)?)?;
                let r = x.dim();
                let axes = match opt(3)? {
                    Some(t) => ints_of(&t)?,
                    None => (0..starts.len() as i64).collect(),
                };
                let steps = match opt(4)? {
                    Some(t) => ints_of(&t)?,
                    None => vec![1; starts.len()],
                };
                if [ends.len(), axes.len(), steps.len()] != [starts.len(); 3] {
                    bail!("starts, ends, axes and steps differ in length");
                }
                let mut y = x;
                for i in 0..starts.len() {
                    let a = axis(axes[i], r)?;
                    let n = y.size()[a as usize];
                    if steps[i] <= 0 {
                        bail!("step {} (positive steps only)", steps[i]);
                    }
                    let clamp = |v: i64| (if v < 0 { v.saturating_add(n) } else { v }).clamp(0, n);
                    let (s, e) = (clamp(starts[i]), clamp(ends[i]));
                    y = y.f_slice(a, s, e.max(s), steps[i])?;
                }
                one(y)
            }
            "Split" => {
                let x = get(0)?;
                let a = axis(attr_int(node, "axis", 0), x.dim())?;
                let n = x.size()[a as usize];
                let outputs = node.output.len() as i64;
                let sizes = match (self.opset >= 13, attr_ints(node, "split")) {
                    (false, Some(s)) => s,
                    (true, _) if opt(1)?.is_some() => ints_of(&get(1)?)?,
                    _ => {
                        let parts = attr_int(node, "num_outputs", outputs).max(1);
                        let each = (n + parts - 1) / parts;
                        (0..parts).map(|i| each.min(n - i * each).max(0)).collect()
                    }
                };
                if sizes.iter().any(|&s| s < 0) || sizes.iter().sum::<i64>() != n {
                    bail!("split sizes {sizes:?} do not add up to dim {a} ({n})");
                }
                Ok(x.f_split_with_sizes(sizes.as_slice(), a)?)
            }
            "Expand" => {
                let x = get(0)?;
                let shape = ints_of(&get(1)?)?;
                let s = broadcast(&x.size(), &shape)?;
                numel(&s)?;
                let mut lead = vec![1i64; s.len() - x.dim()];
                lead.extend(x.size());
                one(x
                    .f_reshape(lead.as_slice())?
                    .f_expand(s.as_slice(), false)?)
            }
            "ReduceMean" => {
                let x = float(get(0)?)?;
                let r = x.dim();
                let axes = match (self.opset >= 18, attr_ints(node, "axes")) {
                    (false, a) => a,
                    (true, _) => opt(1)?.map(|t| ints_of(&t)).transpose()?,
                };
                let axes: Vec<i64> = match axes {
                    Some(a) if !a.is_empty() => {
                        a.iter().map(|&a| axis(a, r)).collect::<Result<_>>()?
                    }
                    _ if attr_int(node, "noop_with_empty_axes", 0) != 0 => return one(x),
                    _ => (0..r as i64).collect(),
                };
                let keep = attr_int(node, "keepdims", 1) != 0;
                one(x.f_mean_dim(axes.as_slice(), keep, Kind::Float)?)
            }
            "MatMul" => {
                let (a, b) = (float(get(0)?)?, float(get(1)?)?);
                let (sa, sb) = (a.size(), b.size());
                if sa.is_empty() || sb.is_empty() {
                    bail!("MatMul of a scalar");
                }
                let lead = |s: &[i64]| s[..s.len().saturating_sub(2)].to_vec();
                let mut out = broadcast(&lead(&sa), &lead(&sb))?;
                out.push(if sa.len() > 1 { sa[sa.len() - 2] } else { 1 });
                out.push(if sb.len() > 1 { sb[sb.len() - 1] } else { 1 });
                numel(&out)?;
                one(a.f_matmul(&b)?)
            }
            "Gemm" => {
                let (mut a, mut b) = (float(get(0)?)?, float(get(1)?)?);
                if a.dim() != 2 || b.dim() != 2 {
                    bail!(
                        "Gemm of {:?} and {:?} (matrices expected)",
                        a.size(),
                        b.size()
                    );
                }
                if attr_int(node, "transA", 0) != 0 {
                    a = a.f_tr()?;
                }
                if attr_int(node, "transB", 0) != 0 {
                    b = b.f_tr()?;
                }
                numel(&[a.size()[0], b.size()[1]])?;
                let alpha = f64::from(attr_float(node, "alpha", 1.0));
                let mut y = a.f_matmul(&b)?.f_mul_scalar(alpha)?;
                if let Some(c) = opt(2)? {
                    let beta = f64::from(attr_float(node, "beta", 1.0));
                    numel(&broadcast(&y.size(), &c.size())?)?;
                    y = y.f_add(&float(c)?.f_mul_scalar(beta)?)?;
                }
                one(y)
            }
            "LayerNormalization" => {
                let x = float(get(0)?)?;
                let a = axis(attr_int(node, "axis", -1), x.dim())? as usize;
                let eps = f64::from(attr_float(node, "epsilon", 1e-5));
                let shape: Vec<i64> = x.size()[a..].to_vec();
                let scale = float(get(1)?)?;
                let bias = opt(2)?.map(float).transpose()?;
                for p in std::iter::once(&scale).chain(bias.as_ref()) {
                    numel(&broadcast(&shape, &p.size())?)?;
                }
                let y = x.f_layer_norm(&shape, None::<Tensor>, None::<Tensor>, eps, false)?;
                let y = y.f_mul(&scale)?;
                one(match bias {
                    Some(b) => y.f_add(&b)?,
                    None => y,
                })
            }
            "Conv" => {
                let x = float(get(0)?)?;
                let w = float(get(1)?)?;
                let b = opt(2)?.map(float).transpose()?;
                if x.dim() != 4 || w.dim() != 4 {
                    bail!(
                        "2-D convolutions only (input {:?}, weight {:?})",
                        x.size(),
                        w.size()
                    );
                }
                if let Some(a) = attr(node, "auto_pad").and_then(|a| a.s.clone()) {
                    let s = String::from_utf8_lossy(&a).to_string();
                    if s != "NOTSET" && s != "VALID" {
                        bail!("auto_pad = {s} is not supported (export with explicit pads)");
                    }
                }
                let pair = |name: &str| -> Result<Vec<i64>> {
                    match attr_ints(node, name) {
                        None => Ok(vec![1, 1]),
                        Some(v) if v.len() == 2 && v.iter().all(|&x| x > 0) => Ok(v),
                        Some(v) => bail!("{name} {v:?}: two positive values expected"),
                    }
                };
                let (stride, dil) = (pair("strides")?, pair("dilations")?);
                let pads = attr_ints(node, "pads").unwrap_or_else(|| vec![0; 4]);
                let [t, l, bo, r] = pads[..] else {
                    bail!("pads {pads:?}: four values expected");
                };
                if pads.iter().any(|&p| !(0..=1024).contains(&p)) {
                    bail!("pads {pads:?} out of range");
                }
                let group = attr_int(node, "group", 1);
                if group < 1 {
                    bail!("group {group}");
                }
                let x = x.f_constant_pad_nd([l, r, t, bo])?;
                let (xs, ws) = (x.size(), w.size());
                numel(&[xs[0], ws[0], xs[2], xs[3]])?;
                one(x.f_conv2d(
                    &w,
                    b.as_ref(),
                    stride.as_slice(),
                    [0i64, 0],
                    dil.as_slice(),
                    group,
                )?)
            }
            _ => bail!("op type '{op}' is not supported by the ONNX evaluator ({SUPPORTED})"),
        }
    }
}

/// Float ops refuse int64 inputs instead of computing on them.
fn float(t: Tensor) -> Result<Tensor> {
    match t.kind() {
        Kind::Float => Ok(t),
        k => Err(anyhow!("a float tensor is expected, got {k:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::onnx::proto::{
        AttributeProto, GraphProto, OperatorSetIdProto, ValueInfoProto,
    };

    fn node(op: &str, ins: &[&str], outs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            op_type: Some(op.into()),
            name: Some(format!("n_{op}")),
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: outs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs,
            ..Default::default()
        }
    }

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            ints: v.to_vec(),
            r#type: Some(7),
            ..Default::default()
        }
    }

    fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            i: Some(v),
            r#type: Some(2),
            ..Default::default()
        }
    }

    fn init_i64(name: &str, v: &[i64]) -> TensorProto {
        TensorProto {
            name: Some(name.into()),
            dims: vec![v.len() as i64],
            data_type: Some(7),
            int64_data: v.to_vec(),
            ..Default::default()
        }
    }

    /// Runs `nodes` (the last output named `y`) at `opset` on `x`.
    fn run(
        opset: i64,
        nodes: Vec<NodeProto>,
        inits: Vec<TensorProto>,
        x: &Tensor,
    ) -> Result<Tensor> {
        let model = ModelProto {
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(opset),
            }],
            graph: Some(GraphProto {
                node: nodes,
                initializer: inits,
                output: vec![ValueInfoProto {
                    name: Some("y".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        Evaluator::new(&model)?.run("x", x)
    }

    fn arange(shape: &[i64]) -> Tensor {
        let n: i64 = shape.iter().product();
        Tensor::arange(n, (Kind::Float, tch::Device::Cpu)).reshape(shape)
    }

    #[test]
    fn reshape_copies_zero_dims_and_infers_minus_one() {
        let x = arange(&[2, 3, 4]);
        let y = run(
            17,
            vec![node("Reshape", &["x", "s"], &["y"], vec![])],
            vec![init_i64("s", &[0, -1])],
            &x,
        )
        .unwrap();
        assert_eq!(y.size(), [2, 12]);
        // allowzero = 1: a 0 is a real zero-sized dim, which 24 values cannot fill.
        let e = run(
            17,
            vec![node(
                "Reshape",
                &["x", "s"],
                &["y"],
                vec![int("allowzero", 1)],
            )],
            vec![init_i64("s", &[0, -1])],
            &x,
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("node 'n_Reshape' (Reshape)"),
            "{e:#}"
        );
    }

    #[test]
    fn gather_takes_negative_indices_and_keeps_the_index_shape() {
        let x = arange(&[3, 2]);
        let idx = TensorProto {
            name: Some("i".into()),
            dims: vec![],
            data_type: Some(7),
            int64_data: vec![-1],
            ..Default::default()
        };
        let y = run(
            13,
            vec![node("Gather", &["x", "i"], &["y"], vec![])],
            vec![idx],
            &x,
        )
        .unwrap();
        // A scalar index drops the axis: row 2 of [[0, 1], [2, 3], [4, 5]].
        assert_eq!(y.size(), [2]);
        assert_eq!(Vec::<f32>::try_from(&y).unwrap(), [4.0, 5.0]);
        let bad = init_i64("i", &[3]);
        let e = run(
            13,
            vec![node("Gather", &["x", "i"], &["y"], vec![])],
            vec![bad],
            &x,
        );
        assert!(format!("{:#}", e.unwrap_err()).contains("index 3 is out of range"));
    }

    #[test]
    fn slice_clamps_ends_and_split_divides_evenly() {
        let x = arange(&[1, 6]);
        let y = run(
            13,
            vec![node("Slice", &["x", "s", "e", "a"], &["y"], vec![])],
            vec![
                init_i64("s", &[-4]),
                init_i64("e", &[i64::MAX]),
                init_i64("a", &[1]),
            ],
            &x,
        )
        .unwrap();
        assert_eq!(
            Vec::<f32>::try_from(&y.flatten(0, -1)).unwrap(),
            [2.0, 3.0, 4.0, 5.0]
        );
        // opset 13 Split without sizes: equal parts; the second output is y.
        let y = run(
            13,
            vec![node(
                "Split",
                &["x"],
                &["a", "y", "c"],
                vec![int("axis", 1)],
            )],
            vec![],
            &x,
        )
        .unwrap();
        assert_eq!(Vec::<f32>::try_from(&y.flatten(0, -1)).unwrap(), [2.0, 3.0]);
    }

    #[test]
    fn integer_division_truncates_and_types_must_agree() {
        let x = Tensor::from_slice(&[7i64, -7]);
        let y = run(
            13,
            vec![node("Div", &["x", "d"], &["y"], vec![])],
            vec![init_i64("d", &[2, 2])],
            &x,
        )
        .unwrap();
        assert_eq!(Vec::<i64>::try_from(&y).unwrap(), [3, -3]);
        let e = run(
            13,
            vec![node("Add", &["x", "x2"], &["y"], vec![])],
            vec![],
            &x,
        );
        assert!(format!("{:#}", e.unwrap_err()).contains("'x2') is computed nowhere"));
    }

    #[test]
    fn squeeze_reads_axes_from_an_attribute_before_opset_13_and_an_input_after() {
        let x = arange(&[1, 3, 1]);
        let old = run(
            11,
            vec![node("Squeeze", &["x"], &["y"], vec![ints("axes", &[0])])],
            vec![],
            &x,
        )
        .unwrap();
        assert_eq!(old.size(), [3, 1]);
        let new = run(
            13,
            vec![node("Squeeze", &["x", "a"], &["y"], vec![])],
            vec![init_i64("a", &[-1])],
            &x,
        )
        .unwrap();
        assert_eq!(new.size(), [1, 3]);
        let e = run(
            13,
            vec![node("Squeeze", &["x", "a"], &["y"], vec![])],
            vec![init_i64("a", &[1])],
            &x,
        );
        assert!(format!("{:#}", e.unwrap_err()).contains("is not 1"));
    }

    #[test]
    fn huge_shapes_are_refused_before_allocating() {
        let x = arange(&[1]);
        let e = run(
            13,
            vec![node("ConstantOfShape", &["s"], &["y"], vec![])],
            vec![init_i64("s", &[1 << 20, 1 << 20])],
            &x,
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("exceeds the evaluator's"),
            "{e:#}"
        );
        let e = run(
            13,
            vec![node("Expand", &["x", "s"], &["y"], vec![])],
            vec![init_i64("s", &[1 << 14, 1 << 14])],
            &x,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("exceeds"), "{e:#}");
    }

    /// A Gather of many indices from a large tensor is refused before `index_select` could
    /// allocate its output (here 1024 copies of 2²⁵ values: 128 GiB, which the allocator would
    /// refuse with another error, or overcommit and fault on).
    #[test]
    fn a_gather_too_large_is_refused_before_allocating() {
        let x = Tensor::zeros([1, 1 << 25], (Kind::Float, tch::Device::Cpu));
        let e = run(
            13,
            vec![node("Gather", &["x", "i"], &["y"], vec![])],
            vec![init_i64("i", &[0; 1024])],
            &x,
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("exceeds the evaluator's"),
            "{e:#}"
        );
    }

    /// Ten tensors of 2²⁵ values each (under the per-tensor limit; `Expand` views, so the
    /// test allocates nothing), 2.5 × the total: refused.
    #[test]
    fn the_tensors_of_a_run_have_a_total_budget() {
        let x = arange(&[1]);
        let nodes: Vec<NodeProto> = (0..10)
            .map(|i| {
                let out = if i == 9 {
                    "y".to_string()
                } else {
                    format!("v{i}")
                };
                node("Expand", &["x", "s"], &[&out], vec![])
            })
            .collect();
        let e = run(13, nodes, vec![init_i64("s", &[1 << 25])], &x).unwrap_err();
        assert!(format!("{e:#}").contains("values in all"), "{e:#}");
    }

    #[test]
    fn unknown_ops_name_the_node_and_list_the_supported_ones() {
        let e = run(
            17,
            vec![node("Hardmax", &["x"], &["y"], vec![])],
            vec![],
            &arange(&[2]),
        );
        let e = format!("{:#}", e.unwrap_err());
        assert!(
            e.contains("node 'n_Hardmax' (Hardmax)") && e.contains("LayerNormalization"),
            "{e}"
        );
    }
}
