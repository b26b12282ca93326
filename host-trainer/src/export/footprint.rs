//! What a model costs on a device, read from the validated core model itself (so the figures
//! describe exactly the bytes that are written): parameters, multiply-accumulates per inference,
//! file bytes and arena bytes.

use anyhow::{anyhow, Result};
use denoiserep_core::{Layer, Model, PlannedLayer};
use serde::{Deserialize, Serialize};

/// Size and cost of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footprint {
    /// Weights plus biases (elements; int8 requantization multipliers and shifts are not
    /// parameters, they are counted in `file_bytes`).
    pub parameters: u64,
    /// Multiply-accumulates of one inference: `in·out` per Linear, `out_elements·in_channels·k²`
    /// per Conv2d (padding taps included); pooling, ReLU and Flatten do none.
    pub macs: u64,
    /// Length of the model file.
    pub file_bytes: u64,
    /// `Model::arena_size()`: the working memory [`Model::run`] needs.
    pub arena_bytes: u64,
}

/// Parameters and MACs of one planned layer.
pub fn layer_cost(p: &PlannedLayer<'_>) -> (u64, u64) {
    let out = p.output.shape.numel().unwrap_or(0) as u64;
    match p.layer {
        Layer::LinearF32(l) => (
            (l.weights.len() + l.bias.len()) as u64,
            u64::from(l.in_features) * u64::from(l.out_features),
        ),
        Layer::LinearS8(l) => (
            (l.weights.len() + l.bias.len()) as u64,
            u64::from(l.in_features) * u64::from(l.out_features),
        ),
        Layer::Conv2dF32(l) => (
            (l.weights.len() + l.bias.len()) as u64,
            out * u64::from(l.in_channels) * u64::from(l.kernel).pow(2),
        ),
        Layer::Conv2dS8(l) => (
            (l.weights.len() + l.bias.len()) as u64,
            out * u64::from(l.in_channels) * u64::from(l.kernel).pow(2),
        ),
        _ => (0, 0),
    }
}

/// The footprint of a model file (validated by the core).
pub fn footprint(bytes: &[u8]) -> Result<Footprint> {
    let model = Model::from_bytes(bytes).map_err(|e| anyhow!("{e}"))?;
    let (parameters, macs) = model
        .layers()
        .iter()
        .map(layer_cost)
        .fold((0, 0), |(p, m), (lp, lm)| (p + lp, m + lm));
    Ok(Footprint {
        parameters,
        macs,
        file_bytes: bytes.len() as u64,
        arena_bytes: model.arena_size() as u64,
    })
}
