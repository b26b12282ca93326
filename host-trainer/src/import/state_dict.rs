//! A PyTorch `state_dict` (read from safetensors) loaded into a trainer [`Model`]: the one loader
//! of `denoiserep import MODEL.safetensors` and `denoiserep train --import FILE.safetensors`.

use std::collections::HashMap;

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use crate::data::Normalization;
use crate::model::Model;

/// Name prefix of a DenoiseRep run's denoiser tensors (`denoisers.k.*`).
pub const DENOISERS: &str = "denoisers.";
/// Names of the input normalization a trainer run stores beside the backbone (`[C]` each).
pub const MEAN: &str = "normalization.mean";
pub const STD: &str = "normalization.std";

/// Copies `tensors` into `model`'s backbone ([`Model::load_backbone`]: every `state_dict` name
/// of the arch present with its shape, no other name but `denoisers.*` and `normalization.*`;
/// `source` names the file in errors). When `tensors` holds `normalization.mean` and
/// `normalization.std` (`[C]`, `C` = the input channels) they become the model's input
/// normalization `x' = (x − mean[c]) / std[c]` and `Some` of it is returned; else the model's
/// normalization is left as it is and `None` is returned.
pub fn load_state_dict(
    model: &mut Model,
    tensors: &HashMap<String, Tensor>,
    source: &str,
) -> Result<Option<Normalization>> {
    model.load_backbone(tensors, source)?;
    let (Some(mean), Some(std)) = (tensors.get(MEAN), tensors.get(STD)) else {
        if tensors.contains_key(MEAN) || tensors.contains_key(STD) {
            bail!("{source}: holds only one of {MEAN} and {STD}; both or neither");
        }
        return Ok(None);
    };
    let channels = model.arch.input_shape[0];
    let values = |t: &Tensor| -> Result<Vec<f32>> {
        Ok(Vec::<f32>::try_from(
            &t.to_kind(Kind::Float).flatten(0, -1),
        )?)
    };
    let norm = Normalization {
        mean: values(mean)?,
        std: values(std)?,
    };
    if norm.mean.len() != channels || norm.std.len() != channels {
        bail!("{source}: {MEAN}/{STD} must have {channels} values (one per channel)");
    }
    if norm.std.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
        bail!("{source}: {STD} must be positive");
    }
    model.normalization = norm.clone();
    Ok(Some(norm))
}

/// The names of `tensors` that are a DenoiseRep run's denoisers (sorted).
pub fn denoiser_names(tensors: &HashMap<String, Tensor>) -> Vec<&str> {
    let mut v: Vec<&str> = tensors
        .keys()
        .map(String::as_str)
        .filter(|k| k.starts_with(DENOISERS))
        .collect();
    v.sort_unstable();
    v
}
