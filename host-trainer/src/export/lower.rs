//! Lowering: the trainer's layer list → the core's layer list, before a precision is chosen.
//!
//! The only change is that a ReLU directly after a Linear or Conv2d is fused into that layer
//! (`activation: Relu`; int8: the output clamp starts at the zero point), so the core model has
//! one layer fewer per hidden block. Every other layer maps one to one. The embedding (the output
//! of the trainer's `embedding_layer`) is the output of the core layer that absorbed it.

use crate::export::fused::{FusedLayer, FusedModel};

/// One layer of the core model: `fused.layers[layer]`, followed by a fused ReLU when `relu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Index into [`FusedModel::layers`] of the layer this step computes.
    pub layer: usize,
    /// True when the next trainer layer (a ReLU) is fused into this one.
    pub relu: bool,
}

impl Step {
    /// The trainer layer indices this step covers (`layer`, plus `layer + 1` for a fused ReLU).
    pub fn sources(&self) -> std::ops::RangeInclusive<usize> {
        self.layer..=self.layer + usize::from(self.relu)
    }
}

/// The lowered layer list and the index of the core layer whose output is the embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lowering {
    pub steps: Vec<Step>,
    pub embedding: usize,
}

/// Lowers `model`'s layers (see the module doc).
pub fn lower(model: &FusedModel) -> Lowering {
    let layers = &model.layers;
    let mut steps = Vec::new();
    let mut k = 0;
    while k < layers.len() {
        let weighted = matches!(
            layers[k],
            FusedLayer::Linear { .. } | FusedLayer::Conv2d { .. }
        );
        let relu = weighted && matches!(layers.get(k + 1), Some(FusedLayer::Relu));
        steps.push(Step { layer: k, relu });
        k += 1 + usize::from(relu);
    }
    let embedding = steps
        .iter()
        .position(|s| s.sources().contains(&model.embedding_layer))
        .unwrap_or(steps.len().saturating_sub(1));
    Lowering { steps, embedding }
}

/// A short description of trainer layer `k` for messages, e.g. `Linear(784→256)`.
pub fn describe(layer: &FusedLayer) -> String {
    match layer {
        FusedLayer::Linear {
            in_features,
            out_features,
            ..
        } => format!("Linear({in_features}→{out_features})"),
        FusedLayer::Conv2d {
            in_channels,
            out_channels,
            kernel,
            ..
        } => format!("Conv2d({in_channels}→{out_channels}, {kernel}×{kernel})"),
        FusedLayer::Relu => "ReLU".into(),
        FusedLayer::MaxPool2d { kernel, stride } => format!("MaxPool2d({kernel}, stride {stride})"),
        FusedLayer::Flatten => "Flatten".into(),
    }
}

/// `arch layer 3 Linear(256→128) + ReLU` for a step.
pub fn describe_step(model: &FusedModel, step: &Step) -> String {
    let mut s = format!(
        "arch layer {} {}",
        step.layer,
        describe(&model.layers[step.layer])
    );
    if step.relu {
        s.push_str(" + ReLU");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::data::Normalization;

    fn skeleton(spec: &str, shape: [usize; 3]) -> FusedModel {
        let arch = Arch::parse(spec, shape, 10).unwrap();
        let layers = arch
            .nodes
            .iter()
            .map(|n| match n.spec {
                crate::LayerSpec::Linear {
                    in_features,
                    out_features,
                } => FusedLayer::Linear {
                    in_features,
                    out_features,
                    weight: vec![],
                    bias: vec![],
                },
                crate::LayerSpec::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    ..
                } => FusedLayer::Conv2d {
                    in_channels,
                    out_channels,
                    kernel: kernel[0],
                    stride: stride[0],
                    padding: padding[0],
                    weight: vec![],
                    bias: vec![],
                },
                crate::LayerSpec::Relu => FusedLayer::Relu,
                crate::LayerSpec::MaxPool2d { kernel, stride } => {
                    FusedLayer::MaxPool2d { kernel, stride }
                }
                crate::LayerSpec::Flatten => FusedLayer::Flatten,
                other => unreachable!("mlp/cnn have no {other:?}"),
            })
            .collect();
        FusedModel {
            arch: arch.spec,
            input_shape: shape,
            num_classes: 10,
            normalization: Normalization {
                mean: vec![0.0; shape[0]],
                std: vec![1.0; shape[0]],
            },
            layers,
            embedding_layer: arch.embedding_layer,
        }
    }

    #[test]
    fn mlp_relus_fuse_and_embedding_follows() {
        // 0 Flatten, 1 Linear, 2 ReLU, 3 Linear, 4 ReLU (embedding), 5 Linear.
        let m = skeleton("mlp:256,128", [1, 28, 28]);
        let l = lower(&m);
        let got: Vec<(usize, bool)> = l.steps.iter().map(|s| (s.layer, s.relu)).collect();
        assert_eq!(got, vec![(0, false), (1, true), (3, true), (5, false)]);
        assert_eq!(l.embedding, 2);
        assert_eq!(
            describe_step(&m, &l.steps[2]),
            "arch layer 3 Linear(256→128) + ReLU"
        );
    }

    #[test]
    fn cnn_without_hidden_widths_embeds_the_flatten() {
        // 0 Conv, 1 ReLU, 2 MaxPool, 3 Flatten (embedding), 4 Linear.
        let m = skeleton("cnn:8/", [1, 8, 8]);
        let l = lower(&m);
        let got: Vec<(usize, bool)> = l.steps.iter().map(|s| (s.layer, s.relu)).collect();
        assert_eq!(got, vec![(0, true), (2, false), (3, false), (4, false)]);
        assert_eq!(l.embedding, 2);
    }
}
