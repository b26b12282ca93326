//! An exported model held in owned buffers, encoded with the core's own encoder
//! (`denoiserep_core::encode`, `docs/model-format.md`) and checked with the core's own loader
//! before anything is written.

use anyhow::{anyhow, Result};
use denoiserep_core::{
    encode, encoded_len, Conv2dF32, Conv2dS8, Error as CoreError, F32Data, I32Data, I8Data, Layer,
    LinearF32, LinearS8, Metadata, Model, Precision, QuantParams,
};

/// One core layer whose tensors live in owned little-endian byte buffers.
///
/// `template` carries the geometry, activation and output quantization; its tensor fields are
/// empty and are replaced by views of the buffers in [`OwnedLayer::as_layer`].
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedLayer {
    pub template: Layer<'static>,
    pub weights: Vec<u8>,
    pub bias: Vec<u8>,
    pub multiplier: Vec<u8>,
    pub shift: Vec<u8>,
    /// What the layer is in trainer terms, for messages (`arch layer 3 Linear(256→128) + ReLU`).
    pub source: String,
}

impl OwnedLayer {
    /// A layer without tensors (ReLU, MaxPool2d, Flatten, GlobalAvgPool).
    pub fn plain(template: Layer<'static>, source: String) -> Self {
        Self {
            template,
            weights: Vec::new(),
            bias: Vec::new(),
            multiplier: Vec::new(),
            shift: Vec::new(),
            source,
        }
    }

    /// The core layer, borrowing the buffers.
    pub fn as_layer(&self) -> Layer<'_> {
        let w = &self.weights[..];
        let b = &self.bias[..];
        match self.template {
            Layer::LinearF32(l) => Layer::LinearF32(LinearF32 {
                weights: F32Data::from_le_bytes(w),
                bias: F32Data::from_le_bytes(b),
                ..l
            }),
            Layer::Conv2dF32(l) => Layer::Conv2dF32(Conv2dF32 {
                weights: F32Data::from_le_bytes(w),
                bias: F32Data::from_le_bytes(b),
                ..l
            }),
            Layer::LinearS8(l) => Layer::LinearS8(LinearS8 {
                weights: I8Data::from_le_bytes(w),
                bias: I32Data::from_le_bytes(b),
                multiplier: I32Data::from_le_bytes(&self.multiplier),
                shift: I8Data::from_le_bytes(&self.shift),
                ..l
            }),
            Layer::Conv2dS8(l) => Layer::Conv2dS8(Conv2dS8 {
                weights: I8Data::from_le_bytes(w),
                bias: I32Data::from_le_bytes(b),
                multiplier: I32Data::from_le_bytes(&self.multiplier),
                shift: I8Data::from_le_bytes(&self.shift),
                ..l
            }),
            other => other,
        }
    }
}

/// A whole model in owned buffers: the metadata fields and the layers.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    pub name: String,
    pub input_shape: [u16; 3],
    pub num_classes: u32,
    pub embedding_layer: u16,
    pub input_mean: Vec<u8>,
    pub input_std: Vec<u8>,
    pub precision: Precision,
    pub input_quant: Option<QuantParams>,
    pub layers: Vec<OwnedLayer>,
}

impl ModelFile {
    /// The core metadata, borrowing the buffers.
    pub fn metadata(&self) -> Metadata<'_> {
        Metadata {
            name: &self.name,
            input_shape: self.input_shape,
            num_classes: self.num_classes,
            embedding_layer: self.embedding_layer,
            input_mean: F32Data::from_le_bytes(&self.input_mean),
            input_std: F32Data::from_le_bytes(&self.input_std),
            precision: self.precision,
            input_quant: self.input_quant,
        }
    }

    /// The file bytes (`docs/model-format.md`), written by the core's encoder and accepted by the
    /// core's loader ([`Model::from_bytes`], which checks every shape, tensor length, multiplier
    /// and, for int8, that no int32 accumulator can overflow for any input). A rejected layer is
    /// named in trainer terms.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let layers: Vec<Layer<'_>> = self.layers.iter().map(OwnedLayer::as_layer).collect();
        let metadata = self.metadata();
        let len =
            encoded_len(&metadata, &layers).map_err(|e| anyhow!("encoding the model: {e}"))?;
        let mut bytes = vec![0u8; len];
        let n = encode(&metadata, &layers, &mut bytes)
            .map_err(|e| anyhow!("encoding the model: {e}"))?;
        bytes.truncate(n);
        Model::from_bytes(&bytes).map_err(|e| self.explain(e))?;
        Ok(bytes)
    }

    /// A core validation error as one line naming the layer.
    fn explain(&self, e: CoreError) -> anyhow::Error {
        match error_layer(&e).and_then(|i| self.layers.get(usize::from(i)).map(|l| (i, l))) {
            Some((i, l)) => anyhow!(
                "cannot export {} (core layer {i}, {}): {e}",
                l.source,
                l.template.kind()
            ),
            None => anyhow!("the exported model does not validate: {e}"),
        }
    }
}

/// The layer index carried by a core error, if any.
pub fn error_layer(e: &CoreError) -> Option<u16> {
    match *e {
        CoreError::DecodeUnknownLayerKind { layer }
        | CoreError::ShapeMismatch { layer }
        | CoreError::LayerBadParam { layer }
        | CoreError::LayerBadTensorLength { layer }
        | CoreError::LayerNonFiniteWeight { layer }
        | CoreError::LayerPrecisionMismatch { layer }
        | CoreError::LayerBadMultiplier { layer }
        | CoreError::LayerBadQuant { layer }
        | CoreError::LayerAccumulatorOverflow { layer } => Some(layer),
        _ => None,
    }
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes of i32 values.
pub fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Two's-complement bytes of i8 values.
pub fn i8_bytes(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}
