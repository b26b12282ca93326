//! The one error type of the core.
//!
//! Every variant is named after the phase that reports it: `Decode*` while reading the file,
//! `Model*` / `Graph*` / `Op*` while validating and planning it (prepare),
//! `Run*` / [`Error::ArenaTooSmall`] while running it, `Encode*` while writing a file, and `Kernel*`
//! when a kernel is called directly with inconsistent slices. Payloads are small and `Copy`
//! (an op or tensor index), so the type needs no allocation. Each variant's doc comment is the sentence its
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
    /// The model file has format version `found`; this build reads only
    /// [`FORMAT_VERSION`](crate::format::FORMAT_VERSION): export the model again with this build.
    DecodeUnsupportedVersion {
        /// The version in the file's header.
        found: u16,
    },
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
    /// A bool, option, enum tag or shape in the model body has an invalid value.
    DecodeBadValue,
    /// The model body is malformed.
    DecodeMalformed,
    /// The model body has bytes left over after the last op.
    DecodeTrailingBytes,
    /// The model has more tensors than this `Model` has room for (its capacity `T`).
    DecodeTooManyTensors,
    /// An op has a kind tag this build does not know.
    DecodeUnknownOpKind {
        /// Index of the op.
        op: u16,
    },
    /// An op has more inputs than the format allows (4).
    DecodeTooManyInputs {
        /// Index of the op.
        op: u16,
    },
    /// The model has no ops.
    ModelNoOps,
    /// The input tensor id is not a tensor, is a constant, or its dtype cannot be fed.
    ModelBadInput,
    /// The input normalization mean/std do not have 1 or dim-0 finite values with std > 0.
    ModelBadNormalization,
    /// The logits or embedding tensor id is not a tensor produced by an op (or the input), or
    /// one is f32 and the other int8.
    ModelBadOutputs,
    /// A tensor's int8 quantization scale is not finite and positive, or a constant tensor's
    /// data does not have one element per value.
    ModelBadTensor {
        /// Index of the tensor.
        tensor: u16,
    },
    /// An op reads or writes a tensor id that is not in the tensor table.
    GraphBadTensorId {
        /// Index of the op.
        op: u16,
    },
    /// An op reads a tensor that no earlier op produced (and that is neither the input nor a
    /// constant).
    GraphTensorNotProduced {
        /// Index of the op.
        op: u16,
    },
    /// An op writes a tensor that already has a producer (an earlier op, the input, a constant).
    GraphTwoProducers {
        /// Index of the op.
        op: u16,
    },
    /// An op has the wrong number of inputs for its kind.
    OpBadArity {
        /// Index of the op.
        op: u16,
    },
    /// An op's tensor shapes do not chain (input shape not accepted, or the output tensor's shape
    /// is not the one the op computes).
    ShapeMismatch {
        /// Index of the op.
        op: u16,
    },
    /// An op has an invalid parameter (zero size, zero stride, padding not below the kernel size,
    /// an axis or permutation that does not fit the input's rank, a scale that is not finite and
    /// positive).
    OpBadParam {
        /// Index of the op.
        op: u16,
    },
    /// An op's weight, bias, quantization or lookup-table tensor has the wrong length.
    OpBadTensorLength {
        /// Index of the op.
        op: u16,
    },
    /// An op's f32 weight or bias (or parameter) is NaN or infinite.
    OpNonFiniteWeight {
        /// Index of the op.
        op: u16,
    },
    /// The op's kind is not compiled into this build of the core (its op family's cargo
    /// feature, `ops-conv`, `ops-pool`, `ops-graph` or `ops-attention`, is off).
    OpNotCompiledIn {
        /// Index of the op.
        op: u16,
    },
    /// An op does not support the dtype of one of its tensors (or its weights' dtype does not
    /// match the input's).
    OpUnsupportedDType {
        /// Index of the op.
        op: u16,
    },
    /// An op's requantization multiplier or shift is out of range (or cannot be derived from its
    /// tensors' scales).
    OpBadMultiplier {
        /// Index of the op.
        op: u16,
    },
    /// An op's int32 accumulator could overflow for some input.
    OpAccumulatorOverflow {
        /// Index of the op.
        op: u16,
    },
    /// A tensor or arena size does not fit in memory addresses.
    ModelSizeOverflow,
    /// The input does not have as many values as the input tensor.
    RunBadInputLength,
    /// An already quantized (int8) input was given to a model whose input tensor is not int8.
    RunInputNotInt8,
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
    /// The planner's storage is too small (buffers, order, offsets), its per-tensor slices differ in
    /// length, or the graph has more than `u16::MAX` ops.
    PlanCapacity,
    /// A buffer's lifetime ends before it starts.
    PlanBadLifetime {
        /// Index of the buffer.
        buffer: usize,
    },
    /// The loading scratch given to `Model::from_bytes_in_place_with_scratch` is shorter than
    /// `LOAD_SCRATCH_PER_TENSOR` bytes per tensor of the model plus
    /// `LOAD_SCRATCH_PER_SCRATCH_OP` per op with arena scratch (Conv2d).
    LoadScratchTooSmall {
        /// Bytes the model needs.
        need: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        let (msg, at) = match *self {
            DecodeUnexpectedEnd => (
                "the model file ends before its header, a field or a tensor is complete",
                None,
            ),
            DecodeBadMagic => ("the model file does not start with the magic bytes `DNRP`", None),
            DecodeUnsupportedVersion { found } => {
                return write!(
                    f,
                    "the model file has format version {found}; this build reads only version {}: \
                     export the model again with this build (`denoiserep export --run DIR`)",
                    crate::format::FORMAT_VERSION
                )
            }
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
                "a bool, option, enum tag or shape in the model body has an invalid value",
                None,
            ),
            DecodeMalformed => ("the model body is malformed", None),
            DecodeTrailingBytes => ("the model body has bytes left over after the last op", None),
            DecodeTooManyTensors => (
                "the model has more tensors than this `Model` has room for (its capacity `T`)",
                None,
            ),
            DecodeUnknownOpKind { op } => (
                "the op has a kind tag this build does not know",
                Some(("op", op)),
            ),
            DecodeTooManyInputs { op } => (
                "the op has more inputs than the format allows (4)",
                Some(("op", op)),
            ),
            ModelNoOps => ("the model has no ops", None),
            ModelBadInput => (
                "the input tensor id is not a tensor, is a constant, or its dtype cannot be fed",
                None,
            ),
            ModelBadNormalization => (
                "the input normalization mean/std do not have 1 or dim-0 finite values with std > 0",
                None,
            ),
            ModelBadOutputs => (
                "the logits or embedding tensor id is not a tensor produced by an op (or the input), or one is f32 and the other int8",
                None,
            ),
            ModelBadTensor { tensor } => (
                "the tensor's int8 scale is not finite and positive, or its constant data has the wrong length",
                Some(("tensor", tensor)),
            ),
            GraphBadTensorId { op } => (
                "the op reads or writes a tensor id that is not in the tensor table",
                Some(("op", op)),
            ),
            GraphTensorNotProduced { op } => (
                "the op reads a tensor that no earlier op produced (and that is neither the input nor a constant)",
                Some(("op", op)),
            ),
            GraphTwoProducers { op } => (
                "the op writes a tensor that already has a producer (an earlier op, the input, a constant)",
                Some(("op", op)),
            ),
            OpBadArity { op } => (
                "the op has the wrong number of inputs for its kind",
                Some(("op", op)),
            ),
            ShapeMismatch { op } => (
                "the op's tensor shapes do not chain (input shape not accepted, or the output tensor's shape is not the one the op computes)",
                Some(("op", op)),
            ),
            OpBadParam { op } => (
                "the op has an invalid parameter (zero size, zero stride, padding not below the kernel size, an axis or permutation that does not fit the input's rank, a scale that is not finite and positive)",
                Some(("op", op)),
            ),
            OpBadTensorLength { op } => (
                "the op's weight, bias, quantization or lookup-table tensor has the wrong length",
                Some(("op", op)),
            ),
            OpNonFiniteWeight { op } => (
                "the op's f32 weight, bias or parameter is NaN or infinite",
                Some(("op", op)),
            ),
            OpNotCompiledIn { op } => (
                "the op's kind is not compiled into this build (its op family's cargo feature of denoiserep-core is off: ops-conv, ops-pool, ops-graph or ops-attention)",
                Some(("op", op)),
            ),
            OpUnsupportedDType { op } => (
                "the op does not support the dtype of one of its tensors (or its weights' dtype does not match the input's)",
                Some(("op", op)),
            ),
            OpBadMultiplier { op } => (
                "the op's requantization multiplier or shift is out of range (or cannot be derived from its tensors' scales)",
                Some(("op", op)),
            ),
            OpAccumulatorOverflow { op } => (
                "the op's int32 accumulator could overflow for some input",
                Some(("op", op)),
            ),
            ModelSizeOverflow => (
                "a tensor or arena size does not fit in memory addresses",
                None,
            ),
            RunBadInputLength => (
                "the input does not have as many values as the input tensor",
                None,
            ),
            RunInputNotInt8 => (
                "an int8 input was given to a model whose input tensor is not int8",
                None,
            ),
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
                "the planner's storage is too small (buffers, order, offsets), its per-tensor slices differ in length, or the graph has more than 65535 ops",
                None,
            ),
            PlanBadLifetime { buffer } => {
                return write!(f, "buffer {buffer}: a buffer's lifetime ends before it starts")
            }
            LoadScratchTooSmall { need } => {
                return write!(
                    f,
                    "the loading scratch is too small: this model needs {need} bytes \
                     (`LOAD_SCRATCH_PER_TENSOR` per tensor, `LOAD_SCRATCH_PER_SCRATCH_OP` per \
                     Conv2d)"
                )
            }
        };
        match at {
            Some((what, i)) => write!(f, "{what} {i}: {msg}"),
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
