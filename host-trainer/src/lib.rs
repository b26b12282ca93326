//! denoiserep-trainer: DenoiseRep training, fusion and export on the host (tch).
//!
//! * [`arch`]: the `--arch` grammar and layer lists; [`model`]: backbone + denoisers + forwards;
//! * [`schedule`]: DDPM schedule and per-layer timesteps; [`denoiser`]: one denoising layer;
//! * [`fuse`]: the reverse step and its exact fusion; [`export`]: fused model → model file
//!   (f32, int8 PTQ); [`infer`]: model files run through `denoiserep-core` over a data set,
//!   [`infer_npy`]: over a NumPy batch;
//! * [`train`]: regimes and the loop; [`optim`]: Adam; [`evaluate`]: fused-model evaluation;
//! * [`run`]: run directories and the `train` / `eval` commands; [`cli`]: argument parsing;
//!   [`import`]: `denoiserep import`, PyTorch models (ONNX, state dicts) into run directories;
//!   [`runtime`]: libtorch's process-wide numerics settings (threads, MKL reproducibility);
//! * [`model_file`]: a core model held in owned buffers, encoded and checked by the core;
//!   [`interop`]: models from other formats (`denoiserep import MODEL.tflite`);
//! * [`report`]: `REPORT.md` of README's main command (`scripts/demo.sh`);
//! * [`compare`]: `denoiserep compare`, baseline vs DenoiseRep with controls over seeds;
//! * [`data`], [`eval`]: data sets and metrics; [`npy`]: NumPy `.npy` arrays in and out.
//!
//! Feature `torch` (default) gates everything that needs libtorch (or the plotting, CLI and ONNX
//! crates only that side uses). With `--no-default-features` the crate builds without libtorch
//! and holds [`data`] (every data parser), [`npy`], [`parallel`], [`rng`], [`atomic`], [`arch`],
//! [`schedule`], [`model_file`] and [`interop`]: the fuzz targets (`fuzz/`) use that.
pub mod arch;
pub mod atomic;
#[cfg(feature = "torch")]
pub mod augment;
#[cfg(feature = "torch")]
pub mod cli;
#[cfg(feature = "torch")]
pub mod compare;
pub mod data;
#[cfg(feature = "torch")]
pub mod denoiser;
#[cfg(feature = "torch")]
pub mod denoiser_fit;
#[cfg(feature = "torch")]
pub mod eval;
#[cfg(feature = "torch")]
pub mod evaluate;
#[cfg(feature = "torch")]
pub mod export;
#[cfg(feature = "torch")]
pub mod fuse;
#[cfg(feature = "torch")]
pub mod import;
#[cfg(feature = "torch")]
pub mod infer;
#[cfg(feature = "torch")]
pub mod infer_npy;
pub mod interop;
#[cfg(feature = "torch")]
pub mod model;
pub mod model_bytes;
pub mod model_file;
pub mod npy;
#[cfg(feature = "torch")]
pub mod optim;
#[cfg(feature = "torch")]
pub mod optimum;
pub mod parallel;
#[cfg(feature = "torch")]
pub mod report;
pub mod rng;
#[cfg(feature = "torch")]
pub mod run;
#[cfg(feature = "torch")]
pub mod runtime;
pub mod schedule;
#[cfg(feature = "torch")]
pub mod train;

pub use arch::{Arch, LayerSpec};
#[cfg(feature = "torch")]
pub use export::{FusedLayer, FusedModel};
#[cfg(feature = "torch")]
pub use model::{DenoiseSpec, Grads, Mode, Model};
