//! A Vision Transformer exported with `torch.onnx.export` (timm's `VisionTransformer` or any
//! model of the same computation) mapped onto the trainer's `vit:P,D,H,L,R,POOL` arch.
//!
//! Exporters spell a ViT very differently: the TorchScript exporter at opset < 17 decomposes
//! LayerNorm into `ReduceMean, Sub, Pow, ReduceMean, Add(ε), Sqrt, Div, Mul(γ), Add(β)` and
//! builds every reshape from `Shape`/`Gather`/`Concat` chains when the batch is dynamic; opset
//! 17 has `LayerNormalization`; the dynamo exporter slices q, k, v with `Slice` and bakes the
//! class token into a batch-expanded constant. Matching every such spelling op by op would be
//! brittle, so the import works in two steps:
//!
//! 1. **The parameters, in graph order** ([`collect`]). Only the nodes that carry weights are
//!    recognized, however the rest is spelled:
//!    ```text
//!    Conv(x, W [D, C, P, P], b)                    patch_embed.proj (stride P, no padding)
//!    Concat(…, c [1|N, 1, D] or Expand(c, …), …)  cls_token (a batch-expanded c: all rows equal)
//!    Add(x, c [1, T, D] or [T, D])                 pos_embed
//!    LayerNormalization(x, γ, β; ε)                a LayerNorm, or its decomposition:
//!      Div(x − μ, Sqrt(Add(ReduceMean(…), ε))) → Mul(·, γ [D]) → Add(·, β [D])
//!    MatMul(x, B [in, out]) → Add(·, b [out])      a Linear, W = Bᵀ
//!    Gemm(x, B, C; transB, α, β)                   a Linear
//!    ```
//!    and must come in the order of `vit`'s nodes: `patch_embed.proj`, [`cls_token`],
//!    `pos_embed`, then per block `norm1, attn.qkv (D→3D), attn.proj (D→D), norm2, mlp.fc1
//!    (D→Hd), mlp.fc2 (Hd→D)` — or three D→D Linears q, k, v reading one tensor in place of
//!    qkv (concatenated into its rows) — then `norm` (cls) or `fc_norm` (mean) and `head`. The first that
//!    deviates is the error, naming its node. A leading `Sub`/`Div` of the graph input by
//!    constants is the input normalization, as for the CNNs.
//! 2. **The computation** ([`verify`]). Everything between the weights (attention's reshapes
//!    and transposes, the softmax and its scale, GELU, the residual adds, the pool) is checked
//!    by running both: the file on its own terms through the reference evaluator
//!    ([`super::eval`]) and the mapped model, on seeded random inputs. The head count is the
//!    divisor of D for which they agree best, within `|Δ| ≤ 10⁻⁴·max(1, max|logit|)`; if none does, the
//!    graph computes something else than a `vit` (a tanh GELU, post-norm blocks, another
//!    pool…) and the error says by how much.
//!
//! LayerNorm's ε must be timm's 10⁻⁶ (the arch's; PyTorch's default 10⁻⁵ would change every
//! output slightly, and unlike a BatchNorm's it cannot be folded into the weights).

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use super::eval::Evaluator;
use super::OnnxImport;
use crate::arch::vit::LAYER_NORM_EPS;
use crate::arch::Arch;
use crate::data::Normalization;
use crate::export::onnx::proto::{ModelProto, NodeProto};
use crate::interop::onnx::graph::{
    attr_float, attr_int, attr_ints, tensor, value_dims, Param, Values,
};
use crate::interop::onnx::mapping::per_channel;
use crate::model::{Grads, Mode, Model};
use crate::rng::Rng;

/// The op types whose presence sends a graph to this importer instead of the CNN mapping.
pub const MARKERS: [&str; 4] = ["LayerNormalization", "Softmax", "Erf", "Gelu"];

/// Seed of the verification inputs.
const VERIFY_SEED: u64 = 0x0056_4954;

/// One weight-carrying node found in the graph (see the module doc), with the node it came
/// from for errors.
#[derive(Debug, Clone)]
enum Found {
    Patch {
        weight: Param,
        bias: Option<Param>,
    },
    /// The class token and the constant it was read from (an initializer, through any
    /// `Identity`).
    Cls {
        value: Param,
        source: String,
    },
    Pos(Param),
    Norm {
        scale: Option<Param>,
        bias: Option<Param>,
        eps: f64,
    },
    Linear {
        /// `[out, in]`.
        weight: Param,
        bias: Option<Param>,
    },
}

impl Found {
    fn describe(&self) -> String {
        match self {
            Found::Patch { weight, .. } => format!("a patch convolution {:?}", weight.dims),
            Found::Cls { value, .. } => format!("a class token {:?}", value.dims),
            Found::Pos(p) => format!("a position embedding {:?}", p.dims),
            Found::Norm { .. } => "a LayerNorm".into(),
            Found::Linear { weight, .. } => {
                format!("a Linear {}→{}", weight.dims[1], weight.dims[0])
            }
        }
    }
}

struct Item {
    found: Found,
    origin: String,
    /// The computed tensor a Linear reads (to tell separate q, k, v projections of one input).
    input: String,
    /// The tensor the item's value flows out of (a Linear's or a norm's output, updated when
    /// its bias/γ/β node is found).
    output: String,
}

fn origin(k: usize, n: &NodeProto) -> String {
    format!(
        "node '{}' ({})",
        n.name
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("#{k}")),
        n.op_type.as_deref().unwrap_or("")
    )
}

/// The graph's constants (initializers, `Constant` nodes, `Identity` of a constant) as floats,
/// and which node produces each computed tensor.
struct Index<'a> {
    nodes: &'a [NodeProto],
    floats: HashMap<String, Param>,
    producer: HashMap<&'a str, usize>,
    /// `Identity` output → its input, for constants.
    alias: HashMap<String, String>,
}

impl<'a> Index<'a> {
    fn new(model: &'a ModelProto) -> Result<Self> {
        let g = model
            .graph
            .as_ref()
            .context("not an ONNX model: it holds no graph")?;
        let mut floats = HashMap::new();
        let as_param = |c: crate::interop::onnx::graph::Const| match c.values {
            Values::F32(data) => Some(Param { dims: c.dims, data }),
            Values::I64(_) => None,
        };
        for t in &g.initializer {
            let name = t.name.clone().unwrap_or_default();
            if let Some(p) = as_param(tensor(t).with_context(|| format!("initializer '{name}'"))?) {
                floats.insert(name, p);
            }
        }
        let mut producer = HashMap::new();
        let mut alias = HashMap::new();
        for (k, n) in g.node.iter().enumerate() {
            let op = n.op_type.as_deref().unwrap_or("");
            let out = n.output.first().map(String::as_str).unwrap_or("");
            match op {
                "Constant" => {
                    if let Some(t) =
                        crate::interop::onnx::graph::attr(n, "value").and_then(|a| a.t.as_ref())
                    {
                        let c = tensor(t).with_context(|| origin(k, n))?;
                        if let Some(p) = as_param(c) {
                            floats.insert(out.to_string(), p);
                        }
                    } else if let Some(a) = crate::interop::onnx::graph::attr(n, "value_float") {
                        let p = Param {
                            dims: vec![],
                            data: vec![a.f.unwrap_or(0.0)],
                        };
                        floats.insert(out.to_string(), p);
                    }
                }
                "Identity" => {
                    if let Some(p) = n.input.first().and_then(|i| floats.get(i)).cloned() {
                        floats.insert(out.to_string(), p);
                        alias.insert(out.to_string(), n.input[0].clone());
                    }
                }
                _ => {}
            }
            for o in &n.output {
                producer.insert(o.as_str(), k);
            }
        }
        Ok(Self {
            nodes: &g.node,
            floats,
            producer,
            alias,
        })
    }

    /// The constant `name` is an `Identity` chain of (or itself).
    fn root(&self, name: &str) -> String {
        let mut n = name;
        for _ in 0..self.nodes.len() + 1 {
            match self.alias.get(n) {
                Some(a) => n = a,
                None => break,
            }
        }
        n.to_string()
    }

    fn float(&self, name: Option<&String>) -> Option<&Param> {
        self.floats.get(name?.as_str())
    }

    /// The node producing `name` if it has op type `op`.
    fn made_by(&self, name: &str, op: &str) -> Option<&'a NodeProto> {
        let n = &self.nodes[*self.producer.get(name)?];
        (n.op_type.as_deref() == Some(op)).then_some(n)
    }

    /// `(computed operand, constant operand)` of a binary node with exactly one constant.
    fn split<'n>(&self, n: &'n NodeProto) -> Option<(&'n str, &Param)> {
        match (self.float(n.input.first()), self.float(n.input.get(1))) {
            (None, Some(c)) => Some((n.input[0].as_str(), c)),
            (Some(c), None) => Some((n.input[1].as_str(), c)),
            _ => None,
        }
    }

    /// ε of a decomposed LayerNorm whose `Div(x − μ, s)` has divisor `s`:
    /// `s = Sqrt(Add(ReduceMean(…), ε))`.
    fn decomposed_eps(&self, divisor: &str) -> Option<f64> {
        let sqrt = self.made_by(divisor, "Sqrt")?;
        let add = self.made_by(sqrt.input.first()?, "Add")?;
        let (var, eps) = self.split(add)?;
        self.made_by(var, "ReduceMean")?;
        (eps.data.len() == 1).then(|| f64::from(eps.data[0]))
    }
}

/// A vector constant with `n` values in a shape with at most one dim ≠ 1 (`[n]`, `[1, 1, n]`).
fn vector_of(p: &Param, n: usize) -> bool {
    p.data.len() == n && p.dims.iter().filter(|&&d| d != 1).count() <= 1
}

/// Step 1 of the module doc: the weight-carrying nodes in graph order.
fn collect(ix: &Index<'_>) -> Result<Vec<Item>> {
    let mut items: Vec<Item> = Vec::new();
    // Output tensor → item index, for the bias/γ/β that follow.
    let mut at: HashMap<String, usize> = HashMap::new();
    for (k, n) in ix.nodes.iter().enumerate() {
        let op = n.op_type.as_deref().unwrap_or("");
        let out = n.output.first().cloned().unwrap_or_default();
        let here = || origin(k, n);
        let mut new: Vec<Found> = Vec::new();
        match op {
            "Conv" => {
                let weight = ix
                    .float(n.input.get(1))
                    .with_context(|| format!("{}: the weight must be a constant", here()))?
                    .clone();
                let p = weight.dims.get(2).copied().unwrap_or(0);
                let square = weight.dims.len() == 4 && weight.dims[3] == p && p > 0;
                let stride = attr_ints(n, "strides").unwrap_or_else(|| vec![1, 1]);
                let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
                let dil = attr_ints(n, "dilations").unwrap_or_else(|| vec![1, 1]);
                if !square
                    || stride != [p as i64; 2]
                    || pads.iter().any(|&x| x != 0)
                    || dil.iter().any(|&x| x != 1)
                    || attr_int(n, "group", 1) != 1
                {
                    bail!(
                        "{}: a ViT's patch embedding is a P×P convolution with stride P, no \
                         padding, dilation or groups; this one has weight {:?}, strides \
                         {stride:?}, pads {pads:?}",
                        here(),
                        weight.dims
                    );
                }
                let bias = ix.float(n.input.get(2)).cloned();
                new.push(Found::Patch { weight, bias });
            }
            "MatMul" => {
                if let Some(b) = ix.float(n.input.get(1)) {
                    if b.dims.len() != 2 {
                        bail!(
                            "{}: a weight of dims {:?} (a matrix expected)",
                            here(),
                            b.dims
                        );
                    }
                    let weight = b.transposed();
                    new.push(Found::Linear { weight, bias: None });
                }
            }
            "Gemm" => {
                let b = ix
                    .float(n.input.get(1))
                    .with_context(|| format!("{}: the weight B must be a constant", here()))?;
                if b.dims.len() != 2 || attr_int(n, "transA", 0) != 0 {
                    bail!(
                        "{}: B dims {:?}, transA: a plain Linear expected",
                        here(),
                        b.dims
                    );
                }
                let w = match attr_int(n, "transB", 0) {
                    0 => b.transposed(),
                    _ => b.clone(),
                };
                let scale = |mut p: Param, s: f32| {
                    p.data.iter_mut().for_each(|v| *v *= s);
                    p
                };
                let weight = scale(w, attr_float(n, "alpha", 1.0));
                let bias = ix
                    .float(n.input.get(2))
                    .map(|c| scale(c.clone(), attr_float(n, "beta", 1.0)));
                if let Some(c) = &bias {
                    if !vector_of(c, weight.dims[0]) {
                        bail!(
                            "{}: bias dims {:?} for {} outputs",
                            here(),
                            c.dims,
                            weight.dims[0]
                        );
                    }
                }
                new.push(Found::Linear { weight, bias });
            }
            "LayerNormalization" => {
                let a = attr_int(n, "axis", -1);
                if a != -1 && a != 2 {
                    bail!(
                        "{}: axis {a}; a ViT normalizes the last (feature) axis",
                        here()
                    );
                }
                let scale = ix
                    .float(n.input.get(1))
                    .with_context(|| format!("{}: the scale must be a constant", here()))?
                    .clone();
                let bias = ix.float(n.input.get(2)).cloned();
                let eps = f64::from(attr_float(n, "epsilon", 1e-5));
                new.push(Found::Norm {
                    scale: Some(scale),
                    bias,
                    eps,
                });
            }
            "Div" => {
                if let Some(eps) = n.input.get(1).and_then(|d| ix.decomposed_eps(d)) {
                    new.push(Found::Norm {
                        scale: None,
                        bias: None,
                        eps,
                    });
                }
            }
            "Mul" | "Add" => {
                let Some((x, c)) = ix.split(n) else { continue };
                let owner = at.get(x).copied();
                let target = owner.map(|i| &mut items[i].found);
                let claimed = match (op, target) {
                    (
                        "Mul",
                        Some(Found::Norm {
                            scale: s @ None,
                            bias: None,
                            ..
                        }),
                    ) => {
                        *s = Some(c.clone());
                        true
                    }
                    ("Add", Some(Found::Norm { bias: b @ None, .. })) => {
                        *b = Some(c.clone());
                        true
                    }
                    (
                        "Add",
                        Some(Found::Linear {
                            weight,
                            bias: b @ None,
                        }),
                    ) if vector_of(c, weight.dims[0]) => {
                        *b = Some(c.clone());
                        true
                    }
                    _ => false,
                };
                if let (true, Some(i)) = (claimed, owner) {
                    items[i].output = out.clone();
                    at.insert(out.clone(), i);
                } else if op == "Add" && c.dims.len() >= 2 && c.dims[c.dims.len() - 2] > 1 {
                    new.push(Found::Pos(c.clone()));
                }
            }
            "Concat" => {
                for i in &n.input {
                    let name = match ix.made_by(i, "Expand") {
                        Some(e) => e.input.first().cloned().unwrap_or_default(),
                        None => i.clone(),
                    };
                    if let Some(c) = ix.float(Some(&name)) {
                        new.push(Found::Cls {
                            value: c.clone(),
                            source: ix.root(&name),
                        });
                    }
                }
            }
            _ => {}
        }
        for found in new {
            at.insert(out.clone(), items.len());
            let input = match op {
                "MatMul" | "Gemm" => n.input.first().cloned().unwrap_or_default(),
                _ => String::new(),
            };
            items.push(Item {
                found,
                origin: here(),
                input,
                output: out.clone(),
            });
        }
    }
    Ok(items)
}

/// The ViT's shape and `state_dict`, from the items in `vit`'s node order.
struct Layout {
    patch: usize,
    dim: usize,
    depth: usize,
    hidden: usize,
    cls: bool,
    classes: usize,
    tensors: Vec<(String, Param)>,
}

fn layout(items: &[Item], [c, h, w]: [usize; 3]) -> Result<Layout> {
    let mut it = items.iter().peekable();
    let Some(first) = it.next() else {
        bail!("the graph has no weights: no patch convolution, LayerNorm or Linear");
    };
    let Found::Patch { weight, bias } = &first.found else {
        bail!(
            "{}: {} comes first; a ViT starts with its patch convolution",
            first.origin,
            first.found.describe()
        );
    };
    let (dim, patch) = (weight.dims[0], weight.dims[2]);
    if weight.dims[1] != c || h % patch != 0 || w % patch != 0 {
        bail!(
            "{}: patch convolution {:?} on {c}×{h}×{w} inputs (C = {c} and a patch dividing H \
             and W expected)",
            first.origin,
            weight.dims
        );
    }
    let ones = |n: usize, v: f32| Param {
        dims: vec![n],
        data: vec![v; n],
    };
    let mut tensors = vec![
        ("patch_embed.proj.weight".to_string(), weight.clone()),
        (
            "patch_embed.proj.bias".to_string(),
            bias.clone().unwrap_or_else(|| ones(dim, 0.0)),
        ),
    ];
    let vector = |p: &Param, n: usize, what: &str, o: &str| -> Result<Param> {
        if !vector_of(p, n) {
            bail!("{o}: {what} has dims {:?}; {n} values expected", p.dims);
        }
        Ok(Param {
            dims: vec![n],
            data: p.data.clone(),
        })
    };
    let patches = (h / patch) * (w / patch);
    let mut cls = false;
    if let Some(Item {
        found: Found::Cls { value: p, .. },
        origin,
        ..
    }) = it.peek()
    {
        let rows = p.data.len() / dim.max(1);
        let first = p.data.get(..dim).unwrap_or_default();
        if p.data.len() != rows * dim
            || p.dims.last() != Some(&dim)
            || p.data.chunks(dim).any(|r| r != first)
        {
            bail!(
                "{origin}: a class token of dims {:?} (D = {dim} values, repeated per sample)",
                p.dims
            );
        }
        tensors.push((
            "cls_token".into(),
            Param {
                dims: vec![1, 1, dim],
                data: first.to_vec(),
            },
        ));
        cls = true;
        it.next();
    }
    let tokens = patches + usize::from(cls);
    match it.next() {
        Some(Item {
            found: Found::Pos(p),
            origin,
            ..
        }) => {
            let shaped = matches!(p.dims[..], [1, t, d] | [t, d] if t == tokens && d == dim);
            if !shaped {
                bail!(
                    "{origin}: a position embedding of dims {:?}; [1, {tokens}, {dim}] expected \
                     ({patches} patches{})",
                    p.dims,
                    if cls { " and the class token" } else { "" }
                );
            }
            let data = p.data.clone();
            tensors.push((
                "pos_embed".into(),
                Param {
                    dims: vec![1, tokens, dim],
                    data,
                },
            ));
        }
        other => bail!(
            "{}: the position embedding (an Add of a [1, {tokens}, {dim}] constant) is expected \
             after the patch embedding{}",
            other.map_or("the end of the graph".into(), |i| format!(
                "{} ({})",
                i.origin,
                i.found.describe()
            )),
            if cls { " and the class token" } else { "" }
        ),
    }
    let rest: Vec<&Item> = it.collect();
    let (blocks, tail) = rest.split_at(rest.len().saturating_sub(2));
    let norm = |item: &Item, name: &str, tensors: &mut Vec<(String, Param)>| -> Result<()> {
        let Found::Norm { scale, bias, eps } = &item.found else {
            bail!(
                "{}: {} where the ViT has LayerNorm '{name}'",
                item.origin,
                item.found.describe()
            );
        };
        if (eps - LAYER_NORM_EPS).abs() > 1e-9 {
            bail!(
                "{}: LayerNorm '{name}' has ε = {:e}; the vit arch uses timm's {LAYER_NORM_EPS:e} \
                 (nn.LayerNorm(eps=1e-6)), and ε cannot be folded into the weights",
                item.origin,
                *eps as f32
            );
        }
        let s = scale.as_ref().map_or(Ok(ones(dim, 1.0)), |p| {
            vector(p, dim, "the scale γ", &item.origin)
        })?;
        let b = bias.as_ref().map_or(Ok(ones(dim, 0.0)), |p| {
            vector(p, dim, "the bias β", &item.origin)
        })?;
        tensors.push((format!("{name}.weight"), s));
        tensors.push((format!("{name}.bias"), b));
        Ok(())
    };
    let linear = |item: &Item,
                  name: &str,
                  (o, i): (usize, usize),
                  tensors: &mut Vec<(String, Param)>|
     -> Result<()> {
        match &item.found {
            Found::Linear { weight, bias } if weight.dims == [o, i] => {
                tensors.push((format!("{name}.weight"), weight.clone()));
                let b = bias
                    .as_ref()
                    .map_or(Ok(ones(o, 0.0)), |p| vector(p, o, "the bias", &item.origin))?;
                tensors.push((format!("{name}.bias"), b));
                Ok(())
            }
            f => bail!(
                "{}: {} where the ViT has Linear '{name}' ({i}→{o})",
                item.origin,
                f.describe()
            ),
        }
    };
    // Blocks: norm1, the attention's input projection — one qkv Linear D→3D (timm), or three
    // D→D Linears q, k, v reading the same tensor (separate projections, as `denoiserep
    // export --format onnx` and many hand-written ViTs have them; concatenated here into
    // timm's qkv rows q | k | v) — then proj, norm2, fc1, fc2.
    let at = |j: usize| -> Result<&Item> {
        blocks.get(j).copied().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: a ViT block has norm1, qkv (or q, k, v), proj, norm2, fc1, fc2; the graph's \
                 weight-carrying nodes end in the middle of a block",
                tail.first()
                    .map_or("the end of the graph".into(), |i| i.origin.clone())
            )
        })
    };
    let square = |j: usize| match blocks.get(j).map(|i| &i.found) {
        Some(Found::Linear { weight, .. }) => weight.dims == [dim, dim],
        _ => false,
    };
    let (mut j, mut depth, mut hidden) = (0, 0, 0);
    while j < blocks.len() {
        let p = format!("blocks.{depth}");
        norm(at(j)?, &format!("{p}.norm1"), &mut tensors)?;
        let q = j + 1;
        let separate = square(q)
            && square(q + 1)
            && square(q + 2)
            && square(q + 3)
            && blocks[q + 1].input == blocks[q].input
            && blocks[q + 2].input == blocks[q].input;
        if separate {
            let mut w = Vec::with_capacity(3 * dim * dim);
            let mut b = Vec::with_capacity(3 * dim);
            for item in &blocks[q..q + 3] {
                let Found::Linear { weight, bias } = &item.found else {
                    unreachable!("checked by `square`")
                };
                w.extend_from_slice(&weight.data);
                let bias = bias.as_ref().map_or(Ok(ones(dim, 0.0)), |p| {
                    vector(p, dim, "the bias", &item.origin)
                })?;
                b.extend_from_slice(&bias.data);
            }
            tensors.push((
                format!("{p}.attn.qkv.weight"),
                Param {
                    dims: vec![3 * dim, dim],
                    data: w,
                },
            ));
            tensors.push((
                format!("{p}.attn.qkv.bias"),
                Param {
                    dims: vec![3 * dim],
                    data: b,
                },
            ));
            j = q + 3;
        } else {
            linear(
                at(q)?,
                &format!("{p}.attn.qkv"),
                (3 * dim, dim),
                &mut tensors,
            )?;
            j = q + 1;
        }
        linear(at(j)?, &format!("{p}.attn.proj"), (dim, dim), &mut tensors)?;
        norm(at(j + 1)?, &format!("{p}.norm2"), &mut tensors)?;
        if depth == 0 {
            hidden = match &at(j + 2)?.found {
                Found::Linear { weight, .. } => weight.dims[0],
                _ => 0,
            };
        }
        linear(
            at(j + 2)?,
            &format!("{p}.mlp.fc1"),
            (hidden, dim),
            &mut tensors,
        )?;
        linear(
            at(j + 3)?,
            &format!("{p}.mlp.fc2"),
            (dim, hidden),
            &mut tensors,
        )?;
        j += 4;
        depth += 1;
    }
    if depth == 0 || tail.len() < 2 {
        bail!(
            "{}: after the embeddings the graph has {} weight-carrying nodes; a ViT has at least \
             one block (norm1, qkv, proj, norm2, fc1, fc2) and 2 at the end (the final \
             LayerNorm, the head)",
            rest.first()
                .map_or("the end of the graph".into(), |i| i.origin.clone()),
            rest.len()
        );
    }
    norm(tail[0], if cls { "norm" } else { "fc_norm" }, &mut tensors)?;
    let classes = match &tail[1].found {
        Found::Linear { weight, .. } => weight.dims[0],
        f => bail!(
            "{}: {} where the ViT has its head Linear",
            tail[1].origin,
            f.describe()
        ),
    };
    linear(tail[1], "head", (classes, dim), &mut tensors)?;
    Ok(Layout {
        patch,
        dim,
        depth,
        hidden,
        cls,
        classes,
        tensors,
    })
}

/// A leading `Sub`/`Div` of the graph input by constants (see [`super::mapping`]).
fn normalization(
    ix: &Index<'_>,
    input: &str,
    channels: usize,
) -> Result<(Option<Normalization>, Vec<String>)> {
    let only = |t: &str| {
        let users: Vec<usize> = (0..ix.nodes.len())
            .filter(|&k| ix.nodes[k].input.iter().any(|i| i == t))
            .collect();
        match users[..] {
            [k] => Some(k),
            _ => None,
        }
    };
    let mut x = input.to_string();
    let (mut mean, mut std) = (None, None);
    let mut names = Vec::new();
    for (op, slot) in [("Sub", &mut mean), ("Div", &mut std)] {
        let Some(k) = only(&x) else { break };
        let n = &ix.nodes[k];
        if n.op_type.as_deref() != Some(op) || n.input.first() != Some(&x) {
            continue;
        }
        if let Some(c) = ix.float(n.input.get(1)) {
            *slot = Some(per_channel(c, channels, &origin(k, n))?);
            names.push(ix.root(&n.input[1]));
            x = n.output.first().cloned().unwrap_or_default();
        }
    }
    if let Some(s) = &std {
        if s.iter().any(|&v| !(v.is_finite() && v > 0.0)) {
            bail!("the input normalization's std values must be positive");
        }
    }
    let norm = match (mean, std) {
        (None, None) => None,
        (m, s) => Some(Normalization {
            mean: m.unwrap_or_else(|| vec![0.0; channels]),
            std: s.unwrap_or_else(|| vec![1.0; channels]),
        }),
    };
    Ok((norm, names))
}

/// `proto` with every float initializer of more than one value replaced by seeded `N(0, 0.5²)`
/// values — except those in `keep` (the input normalization) — and the class token's `cls`
/// drawn once and repeated per row (a batch-expanded constant stays one token).
fn randomized(proto: &ModelProto, keep: &[String], cls: Option<(&str, usize)>) -> ModelProto {
    let mut out = proto.clone();
    let mut rng = Rng::new(VERIFY_SEED ^ 0x5EED);
    if let Some(g) = out.graph.as_mut() {
        for t in &mut g.initializer {
            let name = t.name.clone().unwrap_or_default();
            let Ok(c) = tensor(t) else { continue };
            let Values::F32(v) = c.values else { continue };
            if v.len() <= 1 || keep.contains(&name) {
                continue;
            }
            let row = match cls {
                Some((n, d)) if n == name && d > 0 => d,
                _ => v.len(),
            };
            let first: Vec<f32> = (0..row).map(|_| (rng.normal() * 0.5) as f32).collect();
            let values: Vec<f32> = (0..v.len()).map(|i| first[i % row]).collect();
            t.raw_data = Some(values.iter().flat_map(|x| x.to_le_bytes()).collect());
            t.float_data.clear();
        }
    }
    out
}

/// Reads a ViT graph (see the module doc) into a model on `device`.
pub fn read(model: &ModelProto, device: Device) -> Result<OnnxImport> {
    let g = model
        .graph
        .as_ref()
        .context("not an ONNX model: it holds no graph")?;
    let ix = Index::new(model)?;
    let inputs: Vec<_> = g
        .input
        .iter()
        .filter(|v| !ix.floats.contains_key(v.name.as_deref().unwrap_or("")))
        .collect();
    let [input] = inputs[..] else {
        bail!(
            "the ONNX graph has {} inputs that are not initializers; one (the images) is expected",
            inputs.len()
        );
    };
    let input_name = input.name.clone().unwrap_or_default();
    let dims = value_dims(input).with_context(|| format!("graph input '{input_name}'"))?;
    let shape: [usize; 3] = match dims[..] {
        [_, Some(c), Some(h), Some(w)] if c > 0 && h > 0 && w > 0 => {
            [c as usize, h as usize, w as usize]
        }
        _ => bail!(
            "graph input '{input_name}' has dims {dims:?}; a ViT takes [N, C, H, W] with fixed \
             C, H, W"
        ),
    };
    let batch = match dims[0] {
        Some(n) if (1..=64).contains(&n) => n,
        _ => 4,
    };
    let items = collect(&ix)?;
    let l = layout(&items, shape)?;
    let (normalization, keep) = normalization(&ix, &input_name, shape[0])?;
    let probe = Probe {
        input_name,
        shape,
        batch,
        normalization: normalization.clone(),
    };
    let (imported, heads) = verify(model, &probe, &l, device, None)?;
    // The same graph with random weights: every path between them now matters (a trained or
    // freshly initialized model can hide a difference in a branch whose weights are small).
    let cls = items.iter().find_map(|i| match &i.found {
        Found::Cls { source, .. } => Some((source.as_str(), l.dim)),
        _ => None,
    });
    let random = randomized(model, &keep, cls);
    let rx = Index::new(&random)?;
    let rl = layout(&collect(&rx)?, shape)?;
    verify(&random, &probe, &rl, Device::Cpu, Some(heads)).context(
        "with seeded random values in place of the file's weights (which checks the graph's \
         computation, not only these weights)",
    )?;
    Ok(OnnxImport {
        model: imported,
        normalization,
    })
}

/// Step 2 of the module doc: the head count whose model computes the graph's logits most
/// closely, within the tolerance (`only`: that head count alone). Returns the model and its
/// head count.
/// What [`verify`] feeds the graph and the model: the graph input's name, the sample shape,
/// the batch, the input normalization.
struct Probe {
    input_name: String,
    shape: [usize; 3],
    batch: i64,
    normalization: Option<Normalization>,
}

fn verify(
    proto: &ModelProto,
    probe: &Probe,
    l: &Layout,
    device: Device,
    only: Option<usize>,
) -> Result<(Model, usize)> {
    let (input_name, shape, batch) = (probe.input_name.as_str(), probe.shape, probe.batch);
    let normalization = probe.normalization.clone();
    let [c, h, w] = shape;
    let mut rng = Rng::new(VERIFY_SEED);
    let n = batch as usize * c * h * w;
    let x: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    let x = Tensor::from_slice(&x).reshape([batch, c as i64, h as i64, w as i64]);
    let want = Evaluator::new(proto)?
        .run(input_name, &x)
        .context("running the graph with the reference evaluator")?;
    if want.size() != [batch, l.classes as i64] || want.kind() != Kind::Float {
        bail!(
            "the graph's output has shape {:?}; [{batch}, {}] class scores expected",
            want.size(),
            l.classes
        );
    }
    let norm = normalization.unwrap_or(Normalization {
        mean: vec![0.0; c],
        std: vec![1.0; c],
    });
    let per_c = |v: &[f32]| Tensor::from_slice(v).reshape([1, c as i64, 1, 1]);
    let xn = (&x - per_c(&norm.mean)) / per_c(&norm.std);
    let scale = f64::max(1.0, want.abs().max().double_value(&[]));
    let tol = 1e-4 * scale;
    let ratio = l.hidden as f64 / l.dim as f64;
    let pool = if l.cls { "cls" } else { "mean" };
    let tensors: HashMap<String, Tensor> = l
        .tensors
        .iter()
        .map(|(k, p)| {
            let dims: Vec<i64> = p.dims.iter().map(|&d| d as i64).collect();
            let t = Tensor::from_slice(&p.data).reshape(dims);
            (k.clone(), t)
        })
        .collect();
    let mut tried = Vec::new();
    // Every divisor is tried and the closest kept: an untrained ViT's nearly uniform attention
    // can bring a wrong head count within the tolerance too, never closer than the right one.
    let mut best: Option<(Model, f64, usize)> = None;
    for heads in (1..=l.dim).filter(|hd| l.dim % hd == 0 && only.is_none_or(|o| o == *hd)) {
        let spec = format!(
            "vit:{},{},{heads},{},{ratio},{pool}",
            l.patch, l.dim, l.depth
        );
        let arch = Arch::parse(&spec, shape, l.classes)
            .with_context(|| format!("the graph looks like {spec}"))?;
        let mut model = Model::new(arch, norm.clone(), device);
        let mut ts: HashMap<String, Tensor> = tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.to_device(device)))
            .collect();
        for (name, t) in model.backbone_buffers() {
            ts.entry(name).or_insert_with(|| t.copy());
        }
        model.load_backbone(&ts, "the ONNX initializers")?;
        let got = tch::no_grad(|| {
            model
                .forward(&xn.to_device(device), Mode::Plain, Grads::NONE, false)
                .logits
                .to_device(Device::Cpu)
        });
        let diff = (&got - &want).abs().max().double_value(&[]);
        tried.push(format!("{heads} heads: {diff:.3e}"));
        if best.as_ref().is_none_or(|(_, d, _)| diff < *d) {
            best = Some((model, diff, heads));
        }
    }
    if let Some((model, _, heads)) = best.filter(|(_, d, _)| *d <= tol) {
        return Ok((model, heads));
    }
    bail!(
        "the graph's weights fit vit:{},{},H,{},{ratio},{pool} but no head count H reproduces its \
         output on {batch} random inputs (largest difference per H: {}; tolerance {tol:.1e}): \
         the graph computes something else between its weights (GELU, LayerNorm placement, \
         attention or pooling) than timm's VisionTransformer",
        l.patch,
        l.dim,
        l.depth,
        tried.join(", ")
    )
}
