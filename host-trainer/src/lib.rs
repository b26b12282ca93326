//! denoiserep-trainer: DenoiseRep training, fusion and export on the host (tch).
//!
//! * [`arch`]: the `--arch` grammar and layer lists; [`model`]: backbone + denoisers + forwards;
//! * [`schedule`]: DDPM schedule and per-layer timesteps; [`denoiser`]: one denoising layer;
//! * [`fuse`]: the reverse step and its exact fusion; [`export`]: fused model → model file
//!   (f32, int8 PTQ); [`infer`]: model files run through `denoiserep-core`;
//! * [`train`]: regimes and the loop; [`optim`]: Adam; [`evaluate`]: fused-model evaluation;
//! * [`run`]: run directories and the `train` / `eval` commands; [`cli`]: argument parsing;
//!   [`runtime`]: libtorch's process-wide numerics settings (threads, MKL reproducibility);
//! * [`report`]: `REPORT.md` of README's main command (`scripts/demo.sh`);
//! * [`compare`]: `denoiserep compare`, baseline vs DenoiseRep with controls over seeds;
//! * [`data`], [`eval`]: data sets and metrics.
pub mod arch;
pub mod atomic;
pub mod cli;
pub mod compare;
pub mod data;
pub mod denoiser;
pub mod eval;
pub mod evaluate;
pub mod export;
pub mod fuse;
pub mod infer;
pub mod model;
pub mod optim;
pub mod report;
pub mod rng;
pub mod run;
pub mod runtime;
pub mod schedule;
pub mod train;

pub use arch::{Arch, LayerSpec};
pub use export::{FusedLayer, FusedModel};
pub use model::{DenoiseSpec, Grads, Mode, Model};
