//! ONNX files, read without libtorch (the fuzz crate builds this): the protobuf schema subset
//! ([`proto`], also what `denoiserep export --format onnx` writes), the decoder of a graph into
//! the few ops the CNN/MLP architectures have ([`graph`]) and their mapping onto an arch with
//! its `state_dict` ([`mapping`]). `denoiserep import MODEL.onnx` (`crate::import::onnx`) loads
//! the result into a trainer model; ViT graphs take its own route there.

pub mod graph;
pub mod mapping;
pub mod proto;
