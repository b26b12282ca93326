//! A decoded ONNX [`Graph`] mapped onto one of the trainer's architectures.
//!
//! 1. **Normalization.** A leading `Sub(input, mean)` and/or `Div(·, std)` by constants (one
//!    value, or one per channel: what `denoiserep export --format onnx` writes) become the run's
//!    input normalization; without them the caller decides (mean 0, std 1 by default).
//! 2. **Architecture.** The spec is inferred from the ops ([`infer_spec`]): an `Add` of two
//!    computed tensors → `resnet8:F` (`F` = the first conv's channels); a depthwise conv →
//!    `ds-cnn` (first kernel 10×4) or `mobilenet-v1:ALPHA` (`ALPHA` = first conv's channels / 32;
//!    `,relu6` when the graph clips with Clip(0, 6));
//!    other convs → `cnn:C1,…/H1,…`; Linears only → `mlp:H1,…` (the hidden widths are the
//!    Linears' outputs but the last, whose output is the class count). Input shape: the graph
//!    input's `[C, H, W]`, or `[D]` as `[D, 1, 1]`.
//! 3. **Matching.** The arch's nodes are walked in execution order; node `k` is matched to an
//!    unused op that reads the tensor(s) node `k`'s inputs were matched to and has the same
//!    kind and shape (weights, kernel, stride, pads, groups, pool window). Each match binds
//!    node `k`'s output to the op's output tensor. Two cases match no op:
//!    * a BatchNorm the file does not have (the exporter folded it into the conv before it,
//!      `torch.onnx.export(…, do_constant_folding=True)` in eval mode): it becomes the identity,
//!      `γ = 1, β = 0, μ = 0, σ² = 1 − ε`, so `(x − 0)/√(σ² + ε)·1 + 0 = x`;
//!    * an `mlp`'s leading Flatten when the graph input is already `[N, D]`.
//!
//!    A BatchNorm whose `ε` differs from the arch's (PyTorch's 1e-5) keeps its output exactly:
//!    `σ²' = σ² + ε_onnx − ε_arch`, so `σ²' + ε_arch = σ² + ε_onnx`.
//!
//!    The first node that fits nothing is the error: the first unused op reading the tensor,
//!    named with its op type, and what the architecture expected there. At the end the last
//!    node must produce the graph's first output and every op must have been matched.

use std::collections::HashMap;

use anyhow::{bail, Result};

use super::graph::{Graph, Op, OpKind, Origin, Param};
use crate::arch::{Arch, LayerSpec, Src};
use crate::data::Normalization;

/// The result of mapping: the architecture, its `state_dict` (every parameter and BatchNorm
/// running statistic, by name; `num_batches_tracked` is left to the caller) and the input
/// normalization the graph itself applies, if any.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub arch: Arch,
    pub tensors: Vec<(String, Param)>,
    pub normalization: Option<Normalization>,
}

/// Maps `g` (see the module doc).
pub fn map(g: &Graph) -> Result<Mapped> {
    let input_shape = match g.input_dims[..] {
        [c, h, w] => [c, h, w],
        [d] => [d, 1, 1],
        _ => bail!(
            "graph input dims {:?}: [C, H, W] or [D] per sample",
            g.input_dims
        ),
    };
    let mut used = vec![false; g.ops.len()];
    let (x0, normalization) = normalization(g, input_shape[0], &mut used)?;
    let body: Vec<&Op> = g
        .ops
        .iter()
        .zip(&used)
        .filter(|(_, &u)| !u)
        .map(|(o, _)| o)
        .collect();
    let (spec, classes) = infer_spec(&body)?;
    if let Some(d) = &g.output_dims {
        if d[..] != [classes] {
            bail!(
                "graph output '{}' has dims {d:?} per sample; the last Linear gives {classes} \
                 class scores",
                g.output
            );
        }
    }
    let arch = Arch::parse(&spec, input_shape, classes).map_err(|e| {
        anyhow::anyhow!("the graph looks like arch {spec} on {input_shape:?} inputs, but: {e:#}")
    })?;
    let tensors = Matcher::new(g, &arch, used).run(x0)?;
    Ok(Mapped {
        arch,
        tensors,
        normalization,
    })
}

/// Consumers of each tensor (op indices, graph order).
fn consumers(g: &Graph) -> HashMap<&str, Vec<usize>> {
    let mut m: HashMap<&str, Vec<usize>> = HashMap::new();
    for (k, op) in g.ops.iter().enumerate() {
        for i in &op.inputs {
            m.entry(i.as_str()).or_default().push(k);
        }
    }
    m
}

/// Peels a leading `Sub(input, mean)` / `Div(·, std)`; returns the tensor the body reads and
/// the normalization (`None` without either op).
fn normalization(
    g: &Graph,
    channels: usize,
    used: &mut [bool],
) -> Result<(String, Option<Normalization>)> {
    let cons = consumers(g);
    let only = |t: &str| match cons.get(t).map(Vec::as_slice) {
        Some(&[k]) => Some(k),
        _ => None,
    };
    let per_channel = |p: &Param, o: &Origin| per_channel(p, channels, o);
    let mut x = g.input.clone();
    let mut mean = None;
    let mut std = None;
    if let Some(k) = only(&x) {
        if let OpKind::Sub(c) = &g.ops[k].kind {
            mean = Some(per_channel(c, &g.ops[k].origin)?);
            used[k] = true;
            x = g.ops[k].output.clone();
        }
    }
    if let Some(k) = only(&x) {
        if let OpKind::Div(c) = &g.ops[k].kind {
            let s = per_channel(c, &g.ops[k].origin)?;
            if s.iter().any(|&v| !(v.is_finite() && v > 0.0)) {
                bail!("{}: the std values must be positive", g.ops[k].origin);
            }
            std = Some(s);
            used[k] = true;
            x = g.ops[k].output.clone();
        }
    }
    let norm = match (mean, std) {
        (None, None) => None,
        (m, s) => Some(Normalization {
            mean: m.unwrap_or_else(|| vec![0.0; channels]),
            std: s.unwrap_or_else(|| vec![1.0; channels]),
        }),
    };
    Ok((x, norm))
}

/// A normalization constant `p` (of node `o`) as one value per channel: one value for all, or
/// `channels` values in a shape with at most one dim ≠ 1.
pub(crate) fn per_channel(
    p: &Param,
    channels: usize,
    o: &dyn std::fmt::Display,
) -> Result<Vec<f32>> {
    let n = p.data.len();
    let shaped = p.dims.iter().filter(|&&d| d != 1).count() <= 1;
    match n {
        1 => Ok(vec![p.data[0]; channels]),
        _ if n == channels && shaped => Ok(p.data.clone()),
        _ => bail!(
            "{o}: the constant has dims {:?}; one value or one per channel ({channels}) is \
             expected",
            p.dims
        ),
    }
}

/// The arch spec and class count the ops suggest (see the module doc).
fn infer_spec(ops: &[&Op]) -> Result<(String, usize)> {
    let convs: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|o| matches!(o.kind, OpKind::Conv { .. }))
        .collect();
    let linears: Vec<usize> = ops
        .iter()
        .filter_map(|o| match &o.kind {
            OpKind::Linear { weight, .. } => Some(weight.dims[0]),
            _ => None,
        })
        .collect();
    let Some((&classes, hidden)) = linears.split_last() else {
        bail!(
            "no Gemm or MatMul in the graph: every architecture ends in a Linear giving the \
             class scores"
        );
    };
    let join = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let out_channels = |o: &Op| match &o.kind {
        OpKind::Conv { weight, .. } => weight.dims[0],
        _ => 0,
    };
    let residual = ops.iter().any(|o| o.kind == OpKind::Add);
    let depthwise = convs
        .iter()
        .any(|o| matches!(o.kind, OpKind::Conv { groups, .. } if groups > 1));
    let spec = match convs.first() {
        Some(first) if residual => format!("resnet8:{}", out_channels(first)),
        Some(first) if depthwise => match &first.kind {
            OpKind::Conv { weight, .. } if weight.dims[2..] == [10, 4] => "ds-cnn".to_string(),
            _ => {
                let relu6 = ops.iter().any(|o| o.kind == OpKind::Relu6);
                let act = if relu6 { ",relu6" } else { "" };
                format!("mobilenet-v1:{}{act}", out_channels(first) as f64 / 32.0)
            }
        },
        Some(_) => format!(
            "cnn:{}/{}",
            join(&convs.iter().map(|o| out_channels(o)).collect::<Vec<_>>()),
            join(hidden)
        ),
        None if residual => bail!(
            "{}: a residual Add without convolutions matches no architecture",
            ops.iter()
                .find(|o| o.kind == OpKind::Add)
                .expect("an Add")
                .origin
        ),
        None if hidden.is_empty() => bail!(
            "a single Linear (no hidden layer) matches no architecture: mlp needs at least one \
             hidden Linear + ReLU"
        ),
        None => format!("mlp:{}", join(hidden)),
    };
    Ok((spec, classes))
}

/// What an arch node expects, for errors (`Conv2d(1→8, 3×3, stride [1, 1], pads [1, 1, 1, 1])`).
fn expected(spec: &LayerSpec) -> String {
    match *spec {
        LayerSpec::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            groups,
        } => format!(
            "a Conv({in_channels}→{out_channels}, kernel {kernel:?}, stride {stride:?}, pads \
             [top, bottom, left, right] {padding:?}, group {groups})"
        ),
        LayerSpec::Linear {
            in_features,
            out_features,
        } => format!("a Gemm/MatMul({in_features}→{out_features})"),
        LayerSpec::BatchNorm2d { channels, .. } => {
            format!("a BatchNormalization({channels}) or nothing (folded)")
        }
        LayerSpec::Relu => "a Relu".into(),
        LayerSpec::Relu6 => "a Clip(0, 6) (ReLU6)".into(),
        LayerSpec::MaxPool2d { kernel, stride } => {
            format!("a MaxPool(kernel {kernel}×{kernel}, stride {stride})")
        }
        LayerSpec::AvgPool2d { kernel, stride } => {
            format!("an AveragePool(kernel {kernel:?}, stride {stride:?})")
        }
        LayerSpec::GlobalAvgPool => "a GlobalAveragePool followed by Flatten/Reshape".into(),
        LayerSpec::Add => "an Add of the residual branch and the shortcut".into(),
        LayerSpec::Flatten => "a Flatten (or Reshape to [N, F])".into(),
        other => format!("{} (not importable from ONNX)", other.kind()),
    }
}

/// What an op is, for errors: its kind and shape.
fn found(op: &Op) -> String {
    match &op.kind {
        OpKind::Conv {
            weight,
            stride,
            pads,
            groups,
            ..
        } => format!(
            "weight {:?}, stride {stride:?}, pads [top, bottom, left, right] {pads:?}, group \
             {groups}",
            weight.dims
        ),
        OpKind::Linear { weight, .. } => format!("weight [out, in] {:?}", weight.dims),
        OpKind::BatchNorm { scale, .. } => format!("{} channels", scale.data.len()),
        OpKind::MaxPool { kernel, stride } | OpKind::AvgPool { kernel, stride } => {
            format!("kernel {kernel:?}, stride {stride:?}")
        }
        _ => "that op".into(),
    }
}

/// The walk of step 3 (module doc).
struct Matcher<'a> {
    g: &'a Graph,
    arch: &'a Arch,
    used: Vec<bool>,
    consumers: HashMap<&'a str, Vec<usize>>,
    tensors: Vec<(String, Param)>,
}

/// How an op matched a node.
enum Fit {
    /// The op computes the node: its output is the node's.
    Op(usize),
    /// Two ops do (GlobalAveragePool + Flatten): the second's output is the node's.
    Pair(usize, usize),
}

impl<'a> Matcher<'a> {
    fn new(g: &'a Graph, arch: &'a Arch, used: Vec<bool>) -> Self {
        Self {
            g,
            arch,
            used,
            consumers: consumers(g),
            tensors: Vec::new(),
        }
    }

    fn run(mut self, x0: String) -> Result<Vec<(String, Param)>> {
        let arch = self.arch;
        let mut out: Vec<String> = Vec::with_capacity(arch.nodes.len());
        for node in &arch.nodes {
            let ins: Vec<String> = node
                .inputs
                .iter()
                .map(|s| match *s {
                    Src::Input => x0.clone(),
                    Src::Node(i) => out[i].clone(),
                })
                .collect();
            let readers: Vec<usize> = self
                .consumers
                .get(ins[0].as_str())
                .map(|v| {
                    v.iter()
                        .copied()
                        .filter(|&k| !self.used[k])
                        .filter(|&k| ins.iter().all(|t| self.g.ops[k].inputs.contains(t)))
                        .collect()
                })
                .unwrap_or_default();
            let fit = readers
                .iter()
                .find_map(|&k| self.fits(&node.spec, k).transpose());
            let t = match fit.transpose()? {
                Some(Fit::Op(k)) => {
                    self.take(&node.name, &node.spec, k)?;
                    self.g.ops[k].output.clone()
                }
                Some(Fit::Pair(a, b)) => {
                    self.used[a] = true;
                    self.used[b] = true;
                    self.g.ops[b].output.clone()
                }
                None => match node.spec {
                    LayerSpec::BatchNorm2d { channels, eps, .. } => {
                        self.identity_bn(&node.name, channels, eps);
                        ins[0].clone()
                    }
                    LayerSpec::Flatten
                        if node.inputs == [Src::Input] && self.g.input_dims.len() == 1 =>
                    {
                        ins[0].clone()
                    }
                    _ => {
                        let what = expected(&node.spec);
                        let here = format!(
                            "arch {} expects {what} (its node '{}') reading tensor '{}'",
                            self.arch.spec, node.name, ins[0]
                        );
                        // The first unused op reading the tensor is the one that does not fit.
                        let first = self
                            .consumers
                            .get(ins[0].as_str())
                            .and_then(|v| v.iter().copied().find(|&k| !self.used[k]));
                        match first {
                            Some(k) => {
                                let op = &self.g.ops[k];
                                bail!("{} does not fit: {here}; found {}", op.origin, found(op))
                            }
                            None => bail!("the graph ends early: {here}, which nothing reads"),
                        }
                    }
                },
            };
            out.push(t);
        }
        let last = out.last().map(String::as_str).unwrap_or("");
        if let Some(k) = (0..self.g.ops.len()).find(|&k| !self.used[k]) {
            bail!(
                "{} is not part of arch {} (every node of it is matched; the graph has more)",
                self.g.ops[k].origin,
                self.arch.spec
            );
        }
        if last != self.g.output {
            bail!(
                "arch {} ends in tensor '{last}', but the graph's first output is '{}'",
                self.arch.spec,
                self.g.output
            );
        }
        Ok(self.tensors)
    }

    /// Whether op `k` computes a node of `spec` (`None`: it does not).
    fn fits(&self, spec: &LayerSpec, k: usize) -> Result<Option<Fit>> {
        let op = &self.g.ops[k];
        let yes = match (spec, &op.kind) {
            (
                LayerSpec::Conv2d {
                    stride,
                    padding,
                    groups,
                    ..
                },
                OpKind::Conv {
                    weight,
                    bias,
                    stride: s,
                    pads,
                    groups: g,
                },
            ) => {
                let (w, b) = spec.param_shapes().expect("a conv has parameters");
                dims_eq(&weight.dims, &w)
                    && bias.as_ref().is_none_or(|b2| dims_eq(&b2.dims, &b))
                    && s == stride
                    && pads == padding
                    && g == groups
            }
            (LayerSpec::Linear { .. }, OpKind::Linear { weight, bias }) => {
                let (w, b) = spec.param_shapes().expect("a Linear has parameters");
                dims_eq(&weight.dims, &w)
                    && bias
                        .as_ref()
                        .is_none_or(|b2| b2.data.len() == b[0] as usize)
            }
            (
                LayerSpec::BatchNorm2d { channels, .. },
                OpKind::BatchNorm {
                    scale,
                    bias,
                    mean,
                    var,
                    ..
                },
            ) => {
                if [scale, bias, mean, var]
                    .iter()
                    .any(|p| p.data.len() != *channels)
                {
                    bail!(
                        "{}: γ, β, mean and variance must have {channels} values each (the \
                         channels of the conv before it)",
                        op.origin
                    );
                }
                true
            }
            (LayerSpec::Relu, OpKind::Relu) | (LayerSpec::Relu6, OpKind::Relu6) => true,
            (
                LayerSpec::MaxPool2d { kernel, stride },
                OpKind::MaxPool {
                    kernel: k2,
                    stride: s2,
                },
            ) => *k2 == [*kernel; 2] && *s2 == [*stride; 2],
            (
                LayerSpec::AvgPool2d { kernel, stride },
                OpKind::AvgPool {
                    kernel: k2,
                    stride: s2,
                },
            ) => k2 == kernel && s2 == stride,
            (LayerSpec::Add, OpKind::Add) | (LayerSpec::Flatten, OpKind::Flatten) => true,
            (LayerSpec::GlobalAvgPool, OpKind::GlobalAvgPool) => {
                let flat = self
                    .consumers
                    .get(op.output.as_str())
                    .and_then(|v| match v[..] {
                        [f] if self.g.ops[f].kind == OpKind::Flatten => Some(f),
                        _ => None,
                    });
                return Ok(flat.map(|f| Fit::Pair(k, f)));
            }
            _ => false,
        };
        Ok(yes.then_some(Fit::Op(k)))
    }

    /// Marks op `k` used and records its parameters under node `name`.
    fn take(&mut self, name: &str, spec: &LayerSpec, k: usize) -> Result<()> {
        self.used[k] = true;
        let g = self.g;
        let op = &g.ops[k];
        match &op.kind {
            OpKind::Conv { weight, bias, .. } | OpKind::Linear { weight, bias } => {
                let out = weight.dims[0];
                let bias = bias.clone().unwrap_or(Param {
                    dims: vec![out],
                    data: vec![0.0; out],
                });
                self.tensors
                    .push((format!("{name}.weight"), weight.clone()));
                self.tensors.push((
                    format!("{name}.bias"),
                    Param {
                        dims: vec![out],
                        ..bias
                    },
                ));
            }
            OpKind::BatchNorm {
                scale,
                bias,
                mean,
                var,
                eps,
            } => {
                let LayerSpec::BatchNorm2d { eps: arch_eps, .. } = *spec else {
                    unreachable!("matched as a BatchNorm");
                };
                let shift = eps - arch_eps;
                let var_data: Vec<f32> = var
                    .data
                    .iter()
                    .map(|&v| (f64::from(v) + shift) as f32)
                    .collect();
                if var_data.iter().any(|&v| v.is_nan() || v < 0.0) {
                    bail!(
                        "{}: a running variance plus ε = {eps} is below the arch's ε = {arch_eps}",
                        op.origin
                    );
                }
                let n = var.data.len();
                let flat = |p: &Param| Param {
                    dims: vec![n],
                    data: p.data.clone(),
                };
                self.tensors.push((format!("{name}.weight"), flat(scale)));
                self.tensors.push((format!("{name}.bias"), flat(bias)));
                self.tensors
                    .push((format!("{name}.running_mean"), flat(mean)));
                self.tensors.push((
                    format!("{name}.running_var"),
                    Param {
                        dims: vec![n],
                        data: var_data,
                    },
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// A BatchNorm the file folded away: the identity (module doc).
    fn identity_bn(&mut self, name: &str, channels: usize, eps: f64) {
        let v = |x: f32| Param {
            dims: vec![channels],
            data: vec![x; channels],
        };
        self.tensors.push((format!("{name}.weight"), v(1.0)));
        self.tensors.push((format!("{name}.bias"), v(0.0)));
        self.tensors.push((format!("{name}.running_mean"), v(0.0)));
        self.tensors
            .push((format!("{name}.running_var"), v(identity_var(eps))));
    }
}

/// The running variance of an identity BatchNorm: `1 − ε` in f32, so that `σ² + ε` rounds to
/// exactly 1 in f32 (and within 1 ulp in f64) and `(x − 0)/√(σ² + ε)` is `x`.
pub fn identity_var(eps: f64) -> f32 {
    (1.0 - eps) as f32
}

fn dims_eq(a: &[usize], b: &[i64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| x as i64 == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::onnx::proto::{AttributeProto, AttributeType};
    use crate::import::onnx::graph::decode;
    use crate::import::onnx::graph::tests::{init, int, model, node};

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Ints as i32),
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    /// `cnn:2/` on a 1×4×4 input: Conv 3×3 pad 1 (kernel `k`), [BatchNormalization], Relu,
    /// MaxPool 2, Flatten, Gemm → 3 classes.
    fn cnn(k: i64, bn: bool) -> Vec<u8> {
        let mut nodes = vec![node(
            "Conv",
            "conv",
            &["x", "w", "b"],
            "c",
            vec![ints("pads", &[1, 1, 1, 1]), ints("kernel_shape", &[k, k])],
        )];
        let mut relu_in = "c";
        if bn {
            nodes.push(node(
                "BatchNormalization",
                "bn",
                &["c", "g", "beta", "mu", "var"],
                "n",
                vec![],
            ));
            relu_in = "n";
        }
        nodes.extend([
            node("Relu", "relu", &[relu_in], "r", vec![]),
            node(
                "MaxPool",
                "pool",
                &["r"],
                "p",
                vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
            ),
            node("Flatten", "flat", &["p"], "f", vec![int("axis", 1)]),
            node(
                "Gemm",
                "fc",
                &["f", "fw", "fb"],
                "y",
                vec![int("transB", 1)],
            ),
        ]);
        let kk = (k * k) as usize;
        model(
            nodes,
            vec![
                init("w", &[2, 1, k, k], &vec![0.1; 2 * kk]),
                init("b", &[2], &[0.0, 1.0]),
                init("g", &[2], &[2.0, 3.0]),
                init("beta", &[2], &[0.1, 0.2]),
                init("mu", &[2], &[0.3, 0.4]),
                init("var", &[2], &[0.5, 0.6]),
                init("fw", &[3, 8], &[0.2; 24]),
                init("fb", &[3], &[0.0; 3]),
            ],
            &[1, 1, 4, 4],
            &[1, 3],
        )
    }

    #[test]
    fn identity_batch_norm_is_exact_in_f32() {
        for eps in [1e-5, 1e-3, 1e-6] {
            assert_eq!(identity_var(eps) + eps as f32, 1.0, "ε = {eps}");
        }
    }

    #[test]
    fn conv_chain_maps_to_cnn_and_misfits_are_named() {
        let m = map(&decode(&cnn(3, false)).unwrap()).unwrap();
        assert_eq!(m.arch.spec, "cnn:2/");
        assert_eq!((m.arch.input_shape, m.arch.num_classes), ([1, 4, 4], 3));
        assert!(m.normalization.is_none());
        let names: Vec<&str> = m.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["0.weight", "0.bias", "4.weight", "4.bias"]);
        assert_eq!(m.tensors[1].1.data, [0.0, 1.0]);
        // cnn has no BatchNorm: the BatchNormalization is where the graph stops fitting.
        let e = format!("{:#}", map(&decode(&cnn(3, true)).unwrap()).unwrap_err());
        assert!(
            e.contains("node 'bn' (BatchNormalization) does not fit")
                && e.contains("expects a Relu (its node '1')"),
            "{e}"
        );
        // A 5×5 kernel is not cnn's 3×3.
        let e = format!("{:#}", map(&decode(&cnn(5, false)).unwrap()).unwrap_err());
        assert!(
            e.contains("node 'conv' (Conv) does not fit") && e.contains("kernel [3, 3]"),
            "{e}"
        );
    }

    #[test]
    fn batch_norm_epsilon_is_moved_into_the_variance() {
        // A conv → BN → ReLU stem is resnet8's; here only the BN's arithmetic is checked.
        let op = |eps: f64| Op {
            origin: Origin {
                name: "bn".into(),
                op_type: "BatchNormalization".into(),
            },
            kind: OpKind::BatchNorm {
                scale: Param {
                    dims: vec![1],
                    data: vec![1.0],
                },
                bias: Param {
                    dims: vec![1],
                    data: vec![0.0],
                },
                mean: Param {
                    dims: vec![1],
                    data: vec![0.0],
                },
                var: Param {
                    dims: vec![1],
                    data: vec![0.5],
                },
                eps,
            },
            inputs: vec!["x".into()],
            output: "y".into(),
        };
        let arch = Arch::parse("resnet8:2", [1, 8, 8], 2).unwrap();
        let spec = arch.nodes[1].spec;
        for (eps, want) in [(1e-3, 0.5 + 1e-3 - 1e-5), (1e-5, 0.5)] {
            let g = Graph {
                input: "x".into(),
                input_dims: vec![1, 8, 8],
                output: "y".into(),
                output_dims: None,
                ops: vec![op(eps)],
            };
            let mut m = Matcher::new(&g, &arch, vec![false]);
            m.take("bn1", &spec, 0).unwrap();
            let var = &m.tensors[3];
            assert_eq!(var.0, "bn1.running_var");
            assert_eq!(var.1.data, [want as f32]);
        }
        // σ² + ε_onnx below the arch's ε: no variance gives that output.
        let mut bad = Graph {
            input: "x".into(),
            input_dims: vec![1, 8, 8],
            output: "y".into(),
            output_dims: None,
            ops: vec![op(1e-6)],
        };
        if let OpKind::BatchNorm { var, .. } = &mut bad.ops[0].kind {
            var.data = vec![0.0];
        }
        let e = Matcher::new(&bad, &arch, vec![false])
            .take("bn1", &spec, 0)
            .unwrap_err();
        assert!(
            e.to_string().contains("node 'bn' (BatchNormalization)"),
            "{e}"
        );
    }
}
