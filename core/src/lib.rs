//! # denoiserep-core
//!
//! A `#![no_std]`, allocation-free graph interpreter and model format for DenoiseRep-fused
//! networks, in f32 and int8 (TensorFlow Lite Micro arithmetic). The same source runs on the host
//! and on a Cortex-M4F and gives bit-identical results.
//!
//! - [`format`]: the model file, version 2 (`docs/model-format.md`): header + CRC-32 + postcard
//!   body (model info, tensor table, ops with input/output tensor ids), decoded zero-copy from a
//!   `&[u8]` (flash) and written by [`encode`] into a `&mut [u8]`.
//! - [`Model`]: [`Model::from_bytes`] validates the graph and plans an exact arena (liveness +
//!   greedy placement, as tflite-micro); [`Model::run`] evaluates into a caller's arena of
//!   [`Model::arena_size`] bytes and returns the logits and the embedding;
//!   [`Model::run_with`] also calls back after every op.
//! - `ops/` (private): one file per op, `prepare` + `eval`; [`kernels`]: one kernel per file
//!   (`conv2d_s8`, `depthwise_conv2d_f32`, …) taking small parameter structs.
//! - [`quant`]: the int8 arithmetic (`docs/quantization.md`).
//! - [`samples`]: input-sample and output-dump files (`docs/dump-format.md`), shared by the
//!   host's `denoiserep infer --dump` and the firmware so both write the same bytes.
//! - [`Error`]: the one error type; nothing panics on any input bytes.
//!
//! ```
//! use denoiserep_core::format::graph::{Inputs, Linear, ModelInfo, Node, Op, TensorDesc, Weights};
//! use denoiserep_core::{encode, encoded_len, Activation, DType, F32Data, Graph, Model, Shape};
//! // y = 2·x + 1 on a single value: tensor 0 (input) → Linear → tensor 1.
//! let (w, b) = (2.0f32.to_le_bytes(), 1.0f32.to_le_bytes());
//! let (mean, std) = (0.0f32.to_le_bytes(), 1.0f32.to_le_bytes());
//! let t = |n| TensorDesc { shape: Shape::new(&[n]).unwrap(), dtype: DType::F32, data: None };
//! let graph = Graph {
//!     info: ModelInfo {
//!         name: "affine", input: 0, logits: 1, embedding: 1,
//!         input_mean: F32Data::from_le_bytes(&mean), input_std: F32Data::from_le_bytes(&std),
//!     },
//!     tensors: &[t(1), t(1)],
//!     nodes: &[Node {
//!         op: Op::Linear(Linear {
//!             activation: Activation::None,
//!             weights: Weights::F32 {
//!                 weights: F32Data::from_le_bytes(&w), bias: F32Data::from_le_bytes(&b),
//!             },
//!         }),
//!         inputs: Inputs::new(&[0]).unwrap(),
//!         output: 1,
//!     }],
//! };
//! let mut file = [0u8; 128];
//! let n = encode(&graph, &mut file)?;
//! assert_eq!(n, encoded_len(&graph)?);
//! let model = Model::from_bytes(&file[..n])?;
//! let mut arena = [0u8; 16];
//! let out = model.run(&[3.0], &mut arena[..model.arena_size()])?;
//! assert_eq!(out.logits.get_f32(0), Some(7.0));
//! # Ok::<(), denoiserep_core::Error>(())
//! ```
#![no_std]
#![deny(missing_docs)]

#[cfg(test)]
extern crate std;

mod arena;
mod error;
pub mod fixedpoint;
pub mod format;
mod interpreter;
pub mod kernels;
mod ops;
pub mod planner;
pub mod quant;
pub mod samples;
mod tensor;

pub use arena::{align_up, ARENA_ALIGN};

/// The math of the f32 Softmax, GELU and LayerNorm kernels in this build: `"libm"` (default:
/// `libm::expf` / `erff` / `sqrtf` and a division per element) or `"fast"` (the `fast-math`
/// feature: micromath approximations, `kernels::fast_math`). The two give different bits, so
/// host and device must be built alike to agree: the firmware logs it (`math=`) and the host's
/// device tests refuse a firmware whose math differs from theirs.
pub const MATH: &str = if cfg!(feature = "fast-math") {
    "fast"
} else {
    "libm"
};
pub use error::{Error, Result};
pub use format::graph::{OpKind, WindowSpec};
pub use format::{encode, encoded_len, file_len, Graph, FORMAT_VERSION, MAGIC};
pub use interpreter::{
    Model, Outputs, Step, LOAD_SCRATCH_PER_SCRATCH_OP, LOAD_SCRATCH_PER_TENSOR, MAX_TENSORS,
};
pub use quant::{multiply_by_quantized_multiplier, quantize_multiplier, requantize};
pub use samples::{DumpHeader, DumpValues, InputHeader};
pub use tensor::{
    Activation, DType, F32Data, I32Data, I8Data, Precision, QuantParams, Shape, TensorData,
    TensorInfo, TensorView, MAX_RANK,
};
