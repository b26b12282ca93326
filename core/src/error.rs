//! The one error type of the core.
//!
//! Every variant is named after the phase that reports it: `Decode*` while reading the file,
//! `Model*` / `Layer*` / [`Error::ShapeMismatch`] while validating and planning it (prepare),
//! `Run*` / [`Error::ArenaTooSmall`] while running it, `Encode*` while writing a file, and `Kernel*`
//! when a kernel is called directly with inconsistent slices. Payloads are small and `Copy`
//! (a layer index), so the type needs no allocation. Each variant's doc comment is the sentence its
//! `Display` prints.

use core::fmt;

/// Short alias used throughout the crate.
pub type Result<T> = core::result::Result<T, Error>;

/// Everything that can go wrong in the core. Nothing in the core panics; it returns one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The model file ends before its header, a field or a tensor is complete.
    DecodeUnexpectedEnd,
    /// The model file does not start with the magic bytes `DNRP`.
    DecodeBadMagic,
    /// The model file has a format version this build does not read.
    DecodeUnsupportedVersion,
    /// The model file header has a nonzero reserved field.
    DecodeBadHeader,
    /// The body length in the header does not match the length of the model file.
    DecodeLengthMismatch,
    /// The CRC-32 of the model body does not match the header.
    DecodeBadCrc,
    /// A varint in the model body is malformed or too large for its type.
    DecodeBadVarint,
    /// The model name is not valid UTF-8.
    DecodeBadUtf8,
    /// A bool, option or enum tag in the model body has an unknown value.
    DecodeBadValue,
    /// The model body is malformed.
    DecodeMalformed,
    /// The model body has bytes left over after the last layer.
    DecodeTrailingBytes,
    /// The model has more layers than this build supports (`MAX_LAYERS`).
    DecodeTooManyLayers,
    /// A layer has a kind tag this build does not know.
    DecodeUnknownLayerKind {
        /// Index of the layer.
        layer: u16,
    },
    /// The model has no layers.
    ModelNoLayers,
    /// The model input shape has a zero or oversized dimension.
    ModelBadInputShape,
    /// The input normalization mean/std do not have one finite value per channel with std > 0.
    ModelBadNormalization,
    /// The input quantization is missing for an int8 model, present for an f32 model, or invalid.
    ModelBadInputQuant,
    /// The embedding layer index is not the index of a layer.
    ModelBadEmbeddingLayer,
    /// The number of classes does not match the length of the last layer's output.
    ModelBadNumClasses,
    /// A layer's input shape does not match what the previous layer produces.
    ShapeMismatch {
        /// Index of the layer.
        layer: u16,
    },
    /// A layer has an invalid parameter (zero size, zero stride, padding not below the kernel size).
    LayerBadParam {
        /// Index of the layer.
        layer: u16,
    },
    /// A layer's weight, bias or quantization tensor has the wrong length.
    LayerBadTensorLength {
        /// Index of the layer.
        layer: u16,
    },
    /// A layer's f32 weight or bias is NaN or infinite.
    LayerNonFiniteWeight {
        /// Index of the layer.
        layer: u16,
    },
    /// A layer's precision (f32 or int8) does not match the tensor it receives.
    LayerPrecisionMismatch {
        /// Index of the layer.
        layer: u16,
    },
    /// A layer's requantization multiplier or shift is out of range.
    LayerBadMultiplier {
        /// Index of the layer.
        layer: u16,
    },
    /// A layer's output quantization scale is not finite and positive.
    LayerBadQuant {
        /// Index of the layer.
        layer: u16,
    },
    /// A layer's int32 accumulator could overflow for some input.
    LayerAccumulatorOverflow {
        /// Index of the layer.
        layer: u16,
    },
    /// A tensor or arena size does not fit in memory addresses.
    ModelSizeOverflow,
    /// The input does not have C·H·W values.
    RunBadInputLength,
    /// The arena is smaller than `Model::arena_size()`.
    ArenaTooSmall,
    /// The output buffer is too small for the encoded model.
    EncodeBufferTooSmall,
    /// The encoded model body is larger than 4 GiB.
    EncodeTooLarge,
    /// A kernel was called with slices whose lengths do not match its parameters.
    KernelBadArguments,
    /// A sample or dump file does not start with its magic bytes (`DNRI` / `DNRD`).
    SamplesBadMagic,
    /// A sample or dump file has a version this build does not read.
    SamplesUnsupportedVersion,
    /// A sample or dump file header has an invalid field (reserved bits, element type, sizes).
    SamplesBadHeader,
    /// A sample or dump record does not have the length its header implies.
    SamplesBadLength,
    // planner
    /// An op has a tensor id out of range or more than `MAX_OP_INPUTS` inputs.
    PlanBadTensorId {
        /// Index of the op.
        op: usize,
    },
    /// An op writes a constant, the graph input or an already produced tensor, or reads a tensor
    /// that is neither a constant nor produced yet.
    PlanBadProducer {
        /// Index of the op.
        op: usize,
    },
    /// An alias or in-place op has no input, an input 0 of another byte size, or aliases a constant.
    PlanBadReuse {
        /// Index of the op.
        op: usize,
    },
    /// The graph input or an output is out of range or a constant, or an output is never produced.
    PlanBadGraphTensor,
    /// The planner's storage is too small (buffers, order, offsets) or its per-tensor slices differ in length.
    PlanCapacity,
    /// A buffer's lifetime ends before it starts.
    PlanBadLifetime {
        /// Index of the buffer.
        buffer: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        let (msg, layer) = match *self {
            DecodeUnexpectedEnd => (
                "the model file ends before its header, a field or a tensor is complete",
                None,
            ),
            DecodeBadMagic => ("the model file does not start with the magic bytes `DNRP`", None),
            DecodeUnsupportedVersion => (
                "the model file has a format version this build does not read",
                None,
            ),
            DecodeBadHeader => ("the model file header has a nonzero reserved field", None),
            DecodeLengthMismatch => (
                "the body length in the header does not match the length of the model file",
                None,
            ),
            DecodeBadCrc => ("the CRC-32 of the model body does not match the header", None),
            DecodeBadVarint => (
                "a varint in the model body is malformed or too large for its type",
                None,
            ),
            DecodeBadUtf8 => ("the model name is not valid UTF-8", None),
            DecodeBadValue => (
                "a bool, option or enum tag in the model body has an unknown value",
                None,
            ),
            DecodeMalformed => ("the model body is malformed", None),
            DecodeTrailingBytes => (
                "the model body has bytes left over after the last layer",
                None,
            ),
            DecodeTooManyLayers => (
                "the model has more layers than this build supports (`MAX_LAYERS`)",
                None,
            ),
            DecodeUnknownLayerKind { layer } => (
                "a layer has a kind tag this build does not know",
                Some(layer),
            ),
            ModelNoLayers => ("the model has no layers", None),
            ModelBadInputShape => (
                "the model input shape has a zero or oversized dimension",
                None,
            ),
            ModelBadNormalization => (
                "the input normalization mean/std do not have one finite value per channel with std > 0",
                None,
            ),
            ModelBadInputQuant => (
                "the input quantization is missing for an int8 model, present for an f32 model, or invalid",
                None,
            ),
            ModelBadEmbeddingLayer => (
                "the embedding layer index is not the index of a layer",
                None,
            ),
            ModelBadNumClasses => (
                "the number of classes does not match the length of the last layer's output",
                None,
            ),
            ShapeMismatch { layer } => (
                "a layer's input shape does not match what the previous layer produces",
                Some(layer),
            ),
            LayerBadParam { layer } => (
                "a layer has an invalid parameter (zero size, zero stride, padding not below the kernel size)",
                Some(layer),
            ),
            LayerBadTensorLength { layer } => (
                "a layer's weight, bias or quantization tensor has the wrong length",
                Some(layer),
            ),
            LayerNonFiniteWeight { layer } => (
                "a layer's f32 weight or bias is NaN or infinite",
                Some(layer),
            ),
            LayerPrecisionMismatch { layer } => (
                "a layer's precision (f32 or int8) does not match the tensor it receives",
                Some(layer),
            ),
            LayerBadMultiplier { layer } => (
                "a layer's requantization multiplier or shift is out of range",
                Some(layer),
            ),
            LayerBadQuant { layer } => (
                "a layer's output quantization scale is not finite and positive",
                Some(layer),
            ),
            LayerAccumulatorOverflow { layer } => (
                "a layer's int32 accumulator could overflow for some input",
                Some(layer),
            ),
            ModelSizeOverflow => (
                "a tensor or arena size does not fit in memory addresses",
                None,
            ),
            RunBadInputLength => ("the input does not have C·H·W values", None),
            ArenaTooSmall => ("the arena is smaller than `Model::arena_size()`", None),
            EncodeBufferTooSmall => (
                "the output buffer is too small for the encoded model",
                None,
            ),
            EncodeTooLarge => ("the encoded model body is larger than 4 GiB", None),
            KernelBadArguments => (
                "a kernel was called with slices whose lengths do not match its parameters",
                None,
            ),
            SamplesBadMagic => (
                "a sample or dump file does not start with its magic bytes (`DNRI` / `DNRD`)",
                None,
            ),
            SamplesUnsupportedVersion => (
                "a sample or dump file has a version this build does not read",
                None,
            ),
            SamplesBadHeader => (
                "a sample or dump file header has an invalid field (reserved bits, element type, sizes)",
                None,
            ),
            SamplesBadLength => (
                "a sample or dump record does not have the length its header implies",
                None,
            ),
            // planner
            PlanBadTensorId { op } => {
                return write!(
                    f,
                    "op {op}: an op has a tensor id out of range or more than `MAX_OP_INPUTS` inputs"
                )
            }
            PlanBadProducer { op } => {
                return write!(
                    f,
                    "op {op}: an op writes a constant, the graph input or an already produced tensor, \
                     or reads a tensor that is neither a constant nor produced yet"
                )
            }
            PlanBadReuse { op } => {
                return write!(
                    f,
                    "op {op}: an alias or in-place op has no input, an input 0 of another byte size, \
                     or aliases a constant"
                )
            }
            PlanBadGraphTensor => (
                "the graph input or an output is out of range or a constant, or an output is never produced",
                None,
            ),
            PlanCapacity => (
                "the planner's storage is too small (buffers, order, offsets) or its per-tensor slices differ in length",
                None,
            ),
            PlanBadLifetime { buffer } => {
                return write!(f, "buffer {buffer}: a buffer's lifetime ends before it starts")
            }
        };
        match layer {
            Some(i) => write!(f, "layer {i}: {msg}"),
            None => f.write_str(msg),
        }
    }
}

impl From<postcard::Error> for Error {
    fn from(e: postcard::Error) -> Self {
        match e {
            postcard::Error::DeserializeUnexpectedEnd => Error::DecodeUnexpectedEnd,
            postcard::Error::DeserializeBadVarint => Error::DecodeBadVarint,
            postcard::Error::DeserializeBadUtf8 => Error::DecodeBadUtf8,
            postcard::Error::DeserializeBadBool
            | postcard::Error::DeserializeBadOption
            | postcard::Error::DeserializeBadEnum
            | postcard::Error::SerdeDeCustom => Error::DecodeBadValue,
            postcard::Error::SerializeBufferFull => Error::EncodeBufferTooSmall,
            _ => Error::DecodeMalformed,
        }
    }
}

/// `core::error::Error`, so `?` converts into `anyhow::Error` / `Box<dyn Error>` on the host.
impl core::error::Error for Error {}
