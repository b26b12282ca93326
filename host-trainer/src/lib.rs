//! denoiserep-trainer: DenoiseRep training, fusion and export on the host (tch).
pub mod data;
pub mod eval;
