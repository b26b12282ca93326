//! The fused model as plain CPU `f32` arrays: what the exporter turns into the core's model
//! format. Evaluating these layers in order on normalized inputs gives exactly the fused forward
//! ([`Mode::Fused`](crate::model::Mode::Fused)); [`Model::plain`] gives the backbone alone (the
//! baseline the exporter compares against).

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use crate::arch::LayerSpec;
use crate::data::Normalization;
use crate::model::{Grads, Mode, Model};

/// One layer of the fused model. Weights are row-major and contiguous.
#[derive(Debug, Clone, PartialEq)]
pub enum FusedLayer {
    /// `y = W·x + b`; `weight` is `[out_features, in_features]`.
    Linear {
        in_features: usize,
        out_features: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
    /// Cross-correlation as in PyTorch; `weight` is `[out_channels, in_channels, kernel, kernel]`,
    /// zero padding `padding` on every side.
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
    Relu,
    /// No padding, floor mode.
    MaxPool2d {
        kernel: usize,
        stride: usize,
    },
    /// `[C, H, W] → [C·H·W]` in CHW order.
    Flatten,
}

/// The fused model: normalize `(x − mean[c]) / std[c]` (CHW input), then `layers` in order.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedModel {
    pub arch: String,
    pub input_shape: [usize; 3],
    pub num_classes: usize,
    pub normalization: Normalization,
    pub layers: Vec<FusedLayer>,
    /// Index of the layer whose output is the embedding.
    pub embedding_layer: usize,
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    let flat = t
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .flatten(0, -1);
    Vec::<f32>::try_from(&flat).context("copying a fused tensor to the host")
}

impl Model {
    /// The fused layer list (denoisers folded into the weights; the plain backbone when the
    /// model has no denoisers).
    pub fn fused(&self) -> Result<FusedModel> {
        self.layer_arrays(Mode::Fused)
    }

    /// The backbone alone, denoisers ignored ([`Mode::Plain`]): the baseline a fused model is
    /// compared with (same layers and shapes, the backbone's own weights).
    pub fn plain(&self) -> Result<FusedModel> {
        self.layer_arrays(Mode::Plain)
    }

    /// The layer list with the weights a forward in `mode` uses ([`Mode::Unfused`] uses the
    /// backbone weights, like [`Mode::Plain`]).
    fn layer_arrays(&self, mode: Mode) -> Result<FusedModel> {
        if !self.arch.is_chain() {
            anyhow::bail!(
                "export of arch {} is not supported yet (a graph with branches)",
                self.arch.spec
            );
        }
        let params = tch::no_grad(|| self.layer_params(mode, Grads::NONE));
        let layers = self
            .arch
            .nodes
            .iter()
            .zip(&params)
            .map(|(node, p)| {
                Ok(match (node.spec, p) {
                    (
                        LayerSpec::Linear {
                            in_features,
                            out_features,
                        },
                        Some((w, b)),
                    ) => FusedLayer::Linear {
                        in_features,
                        out_features,
                        weight: to_vec(w)?,
                        bias: to_vec(b)?,
                    },
                    (
                        LayerSpec::Conv2d {
                            in_channels,
                            out_channels,
                            kernel: [kernel, kw],
                            stride: [stride, sw],
                            padding: [padding, pb, pl, pr],
                            groups: 1,
                        },
                        Some((w, b)),
                    ) if kw == kernel && sw == stride && [pb, pl, pr] == [padding; 3] => {
                        FusedLayer::Conv2d {
                            in_channels,
                            out_channels,
                            kernel,
                            stride,
                            padding,
                            weight: to_vec(w)?,
                            bias: to_vec(b)?,
                        }
                    }
                    (LayerSpec::Relu, _) => FusedLayer::Relu,
                    (LayerSpec::MaxPool2d { kernel, stride }, _) => {
                        FusedLayer::MaxPool2d { kernel, stride }
                    }
                    (LayerSpec::Flatten, _) => FusedLayer::Flatten,
                    (spec, _) => anyhow::bail!(
                        "export of {} (node '{}' of arch {}) is not supported yet",
                        spec.kind(),
                        node.name,
                        self.arch.spec
                    ),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FusedModel {
            arch: self.arch.spec.clone(),
            input_shape: self.arch.input_shape,
            num_classes: self.arch.num_classes,
            normalization: self.normalization.clone(),
            layers,
            embedding_layer: self.arch.embedding_layer,
        })
    }
}
