//! Model metadata: everything a caller needs to feed the model and read its outputs.

use serde::{Deserialize, Serialize};

use crate::tensor::{F32Data, Precision, QuantParams};

/// Model-level description, stored before the layers in a model file.
///
/// Wire order is field order (postcard struct = fields back to back).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metadata<'a> {
    /// Human-readable model name (UTF-8).
    pub name: &'a str,
    /// Input shape `[C, H, W]` (row-major CHW, batch size 1). A flat input of `n` values is
    /// `[n, 1, 1]` followed by a `Flatten` layer, or `[1, 1, n]`.
    pub input_shape: [u16; 3],
    /// Number of classes: the length of the last layer's output (the logits).
    pub num_classes: u32,
    /// Index of the layer whose output is the embedding used for retrieval.
    pub embedding_layer: u16,
    /// Per-channel mean `μ[c]` (C values): the core feeds `(x − μ[c]) / σ[c]` to the first layer.
    #[serde(borrow)]
    pub input_mean: F32Data<'a>,
    /// Per-channel standard deviation `σ[c]` (C values, finite, > 0).
    #[serde(borrow)]
    pub input_std: F32Data<'a>,
    /// f32 or int8.
    pub precision: Precision,
    /// int8 models only: quantization of the normalized input
    /// (`q = clamp(round(x̂ / scale) + zero_point, −128, 127)`). `None` for f32 models.
    pub input_quant: Option<QuantParams>,
}
