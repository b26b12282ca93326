//! What a model costs on a device, read from the validated core model itself (so the figures
//! describe exactly the bytes that are written): parameters, multiply-accumulates per inference,
//! file bytes and arena bytes.

use anyhow::{anyhow, Result};
use denoiserep_core::format::graph::{Node, Op, Weights};
use denoiserep_core::Model;
use serde::{Deserialize, Serialize};

/// Size and cost of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footprint {
    /// Weights plus biases, plus the learned constants an op reads (a ViT's class token,
    /// position embeddings, LayerNorm `γ` and `β`), in elements. int8 requantization multipliers
    /// and shifts and GELU's lookup table are derived, not parameters; they are counted in
    /// `file_bytes`.
    pub parameters: u64,
    /// Multiply-accumulates of one inference: `rows·in·out` per Linear,
    /// `out_elements·in_channels·kh·kw` per Conv2d, `out_elements·kh·kw` per DepthwiseConv2d
    /// (padding taps included), `B·M·N·K` per BatchMatMul (`[B, M, K] × [B, K, N]`); Add,
    /// pooling, Mean, Reshape, normalization and activations do none.
    pub macs: u64,
    /// Length of the model file.
    pub file_bytes: u64,
    /// `Model::arena_size()`: the working memory [`Model::run`] needs.
    pub arena_bytes: u64,
}

fn weight_count(w: &Weights<'_>) -> u64 {
    match w {
        Weights::F32 { weights, bias } => (weights.len() + bias.len()) as u64,
        Weights::S8 { weights, bias, .. } => (weights.len() + bias.len()) as u64,
    }
}

/// True for a constant tensor of `model`: one that is neither the input nor an op's output.
fn is_constant(model: &Model<'_>, id: u16) -> bool {
    id != model.info().input && !model.nodes().any(|n| n.is_ok_and(|n| n.output == id))
}

/// Parameters and MACs of one op of `model`.
pub fn op_cost(model: &Model<'_>, node: &Node<'_>) -> (u64, u64) {
    let numel = |id: u16| model.tensor(id).and_then(|t| t.shape.numel()).unwrap_or(0) as u64;
    let input = node.inputs.ids().first().and_then(|&id| model.tensor(id));
    let out = numel(node.output);
    // Learned constants read by the op (not a Lut's derived table).
    let constants: u64 = match node.op {
        Op::Lut => 0,
        _ => node
            .inputs
            .ids()
            .iter()
            .filter(|&&id| is_constant(model, id))
            .map(|&id| numel(id))
            .sum(),
    };
    let (weights, macs) = match &node.op {
        Op::Linear(l) => {
            let in_features = input.map_or(0, |t| t.shape.last()) as u64;
            (weight_count(&l.weights), out * in_features)
        }
        Op::Conv2d(c) => {
            let ci = input.and_then(|t| t.shape.dim(0)).unwrap_or(0) as u64;
            let [kh, kw] = c.window.kernel.map(u64::from);
            (weight_count(&c.weights), out * ci * kh * kw)
        }
        Op::DepthwiseConv2d(c) => {
            let [kh, kw] = c.window.kernel.map(u64::from);
            (weight_count(&c.weights), out * kh * kw)
        }
        // `a` is [B, M, K] with or without adj_y: K is its last dim.
        Op::BatchMatMul(_) => (0, out * input.map_or(0, |t| t.shape.last()) as u64),
        _ => (0, 0),
    };
    (weights + constants, macs)
}

/// The footprint of a model file (validated by the core).
pub fn footprint(bytes: &[u8]) -> Result<Footprint> {
    let model = Model::from_bytes(bytes).map_err(|e| anyhow!("{e}"))?;
    let mut parameters = 0;
    let mut macs = 0;
    for node in model.nodes() {
        let node = node.map_err(|e| anyhow!("{e}"))?;
        let (p, m) = op_cost(&model, &node);
        parameters += p;
        macs += m;
    }
    Ok(Footprint {
        parameters,
        macs,
        file_bytes: bytes.len() as u64,
        arena_bytes: model.arena_size() as u64,
    })
}
