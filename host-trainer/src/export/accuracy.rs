//! What the device computes, measured on the host: a run's fused model exported exactly as
//! `denoiserep export` does by default (f32, and int8 calibrated by min/max on
//! [`DEFAULT_CALIB`](super::DEFAULT_CALIB) train samples chosen with seed 0), then run through
//! `denoiserep-core` over the test split. `compare` reports the int8 top-1 and the int8 − f32
//! drop per arm; [`cached`] keeps the result in the run folder (`device-accuracy.json`) next to
//! the CRC-32 of the `model.safetensors` it was measured on, so it is measured once per model.

use std::fs;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use denoiserep_core::Model as CoreModel;
use serde::{Deserialize, Serialize};
use tch::Device;

use super::{calibration_samples, quantize, to_f32, RangeMethod, DEFAULT_CALIB};
use crate::atomic::write_atomic;
use crate::eval;
use crate::infer::run_samples;
use crate::run;

/// File name in a run folder.
pub const FILE: &str = "device-accuracy.json";

/// Top-1 on the test split of a run's exported models, as `denoiserep-core` computes them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeviceAccuracy {
    /// The f32 model file (bit-identical to what the firmware computes).
    pub f32_accuracy: f64,
    /// The int8 model file.
    pub int8_accuracy: f64,
    /// Test samples run.
    pub samples: usize,
    /// Calibration samples of the int8 model.
    pub calibration_samples: usize,
    /// CRC-32 (ISO-HDLC) of the `model.safetensors` measured.
    pub model_crc32: u32,
}

impl DeviceAccuracy {
    /// int8 − f32 top-1 (negative: quantization costs accuracy).
    pub fn int8_drop(&self) -> f64 {
        self.int8_accuracy - self.f32_accuracy
    }
}

fn model_crc(dir: &Path) -> Result<u32> {
    let path = dir.join(run::MODEL);
    let bytes = fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&bytes))
}

/// Measures a finished run (`threads` inference threads for the core).
pub fn measure(dir: &Path, threads: usize) -> Result<DeviceAccuracy> {
    let model_crc32 = model_crc(dir)?;
    let (cfg, model) = run::load_run_model(dir, Device::Cpu)?;
    let data =
        run::load_data(&cfg.train).with_context(|| format!("the data of run {}", dir.display()))?;
    let fused = model.fused()?;
    let samples = calibration_samples(&data.train, DEFAULT_CALIB, 0);
    let files = [
        to_f32(&fused)?,
        quantize(&fused, &samples, RangeMethod::MinMax, false)?,
    ];
    let mut acc = [0.0; 2];
    for (file, a) in files.iter().zip(&mut acc) {
        let bytes = file.encode()?;
        let core = CoreModel::from_bytes(&bytes).map_err(|e| anyhow!("{e}"))?;
        let bar = indicatif::ProgressBar::hidden();
        let out = run_samples(&core, &data.test.x, threads, false, &bar)?;
        *a = eval::accuracy(&out.logits, data.num_classes, &data.test.y);
    }
    Ok(DeviceAccuracy {
        f32_accuracy: acc[0],
        int8_accuracy: acc[1],
        samples: data.test.len(),
        calibration_samples: samples.len() / data.sample_len().max(1),
        model_crc32,
    })
}

/// [`measure`], or the stored `device-accuracy.json` of the same `model.safetensors`; a new
/// measurement is written there (atomically).
pub fn cached(dir: &Path, threads: usize) -> Result<DeviceAccuracy> {
    let path = dir.join(FILE);
    if let Ok(bytes) = fs::read(&path) {
        if let Ok(stored) = serde_json::from_slice::<DeviceAccuracy>(&bytes) {
            if stored.model_crc32 == model_crc(dir)? {
                return Ok(stored);
            }
        }
    }
    let m = measure(dir, threads)
        .with_context(|| format!("measuring the exported models of run {}", dir.display()))?;
    let mut text = serde_json::to_vec_pretty(&m)?;
    text.push(b'\n');
    write_atomic(&path, &text)?;
    Ok(m)
}
