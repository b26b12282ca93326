//! Calibration for int8 export: the real range of every tensor that gets its own quantization.
//!
//! The float model (the fused weights, [`FusedModel`]) runs in tch, in batches of
//! [`CALIB_BATCH`], over the calibration samples (raw inputs, normalized here exactly as the
//! trainer and the core do). Observed tensors: the normalized model input and the output of every
//! Linear / Conv2d *after its fused ReLU* (the tensor the int8 layer writes). ReLU, MaxPool2d and
//! Flatten keep their input's quantization, so they need no range of their own.
//!
//! Range of a tensor over all its values in all samples:
//!
//! * [`RangeMethod::MinMax`]: `[min, max]`;
//! * [`RangeMethod::Percentile`]`(P)`, `50 < P ≤ 100`: `[v_lo, v_hi]` where, with the `n` values
//!   sorted ascending `v_1 ≤ … ≤ v_n`, `lo = max(1, ⌈n·(100 − P)/100⌉)` and
//!   `hi = max(1, ⌈n·P/100⌉)` (1-based; `P = 100` is min/max). Outliers beyond the range saturate
//!   at −128/127 in the int8 model instead of stretching the scale.
//!
//! The quantizer then widens every range to include 0 (`docs/quantization.md` §9).

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tch::{Device, Tensor};

use crate::cli::rules;
use crate::evaluate::to_tensor;
use crate::export::fused::{FusedLayer, FusedModel};
use crate::export::lower::{Lowering, Step};

/// Calibration samples per tch forward.
pub const CALIB_BATCH: usize = 256;

/// How a tensor's range is taken from its observed values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangeMethod {
    /// Smallest and largest value.
    MinMax,
    /// The `(100 − P)`-th and `P`-th percentiles, `50 < P ≤ 100`.
    Percentile(f64),
}

impl RangeMethod {
    /// `MinMax` for `None`, else a `Percentile` checked by [`rules::calib_percentile`].
    pub fn from_percentile(p: Option<f64>) -> Result<Self> {
        match p {
            None => Ok(Self::MinMax),
            Some(p) => Ok(Self::Percentile(rules::flag(
                "--calib-percentile",
                p,
                rules::calib_percentile,
            )?)),
        }
    }
}

/// Observed ranges `(min, max)` of the normalized input and of each lowered step's output
/// (`None` for steps without weights).
#[derive(Debug, Clone, PartialEq)]
pub struct Ranges {
    pub input: (f32, f32),
    pub outputs: Vec<Option<(f32, f32)>>,
}

/// Collects the values (percentile) or the running min/max (min/max) of one tensor.
enum Observer {
    MinMax(Option<(f32, f32)>),
    Values(Vec<Tensor>),
}

impl Observer {
    fn new(method: RangeMethod) -> Self {
        match method {
            RangeMethod::MinMax => Self::MinMax(None),
            RangeMethod::Percentile(_) => Self::Values(Vec::new()),
        }
    }

    fn observe(&mut self, t: &Tensor) {
        match self {
            Self::MinMax(r) => {
                let (lo, hi) = (
                    t.min().double_value(&[]) as f32,
                    t.max().double_value(&[]) as f32,
                );
                *r = Some(match *r {
                    None => (lo, hi),
                    Some((a, b)) => (a.min(lo), b.max(hi)),
                });
            }
            Self::Values(v) => v.push(t.flatten(0, -1).to_device(Device::Cpu)),
        }
    }

    fn finish(self, method: RangeMethod) -> Result<(f32, f32)> {
        match (self, method) {
            (Self::MinMax(Some(r)), _) => Ok(r),
            (Self::Values(v), RangeMethod::Percentile(p)) if !v.is_empty() => {
                let all = Tensor::cat(&v, 0);
                let n = all.numel() as f64;
                let rank = |q: f64| ((n * q / 100.0).ceil() as i64).clamp(1, n as i64);
                let kth = |k: i64| all.kthvalue(k, 0, false).0.double_value(&[]) as f32;
                Ok((kth(rank(100.0 - p)), kth(rank(p))))
            }
            _ => bail!("calibration saw no values"),
        }
    }
}

/// Runs the float model over `samples` (`n × C·H·W` raw values) and returns the observed ranges.
/// `progress` shows a bar on stderr.
pub fn calibrate(
    model: &FusedModel,
    lowering: &Lowering,
    samples: &[f32],
    method: RangeMethod,
    progress: bool,
) -> Result<Ranges> {
    let len: usize = model.input_shape.iter().product();
    let n = samples.len() / len.max(1);
    if n == 0 {
        bail!("calibration needs at least one sample");
    }
    let params: Vec<Option<(Tensor, Tensor)>> = lowering
        .steps
        .iter()
        .map(|s| weights(&model.layers[s.layer]))
        .collect();
    let mut input = Observer::new(method);
    let mut outputs: Vec<Option<Observer>> = params
        .iter()
        .map(|p| p.as_ref().map(|_| Observer::new(method)))
        .collect();
    let bar = progress_bar(n, progress);
    tch::no_grad(|| {
        for chunk in samples[..n * len].chunks(CALIB_BATCH * len) {
            let mut h = to_tensor(chunk, model.input_shape, &model.normalization, Device::Cpu);
            input.observe(&h);
            for ((step, p), obs) in lowering.steps.iter().zip(&params).zip(&mut outputs) {
                h = apply(&model.layers[step.layer], step, p.as_ref(), &h);
                if let Some(o) = obs {
                    o.observe(&h);
                }
            }
            bar.inc((chunk.len() / len) as u64);
        }
    });
    bar.finish_and_clear();
    Ok(Ranges {
        input: input.finish(method)?,
        outputs: outputs
            .into_iter()
            .map(|o| o.map(|o| o.finish(method)).transpose())
            .collect::<Result<_>>()?,
    })
}

fn progress_bar(n: usize, progress: bool) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(n as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("calibrating [{bar:30}] {pos}/{len} samples ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// `(weight, bias)` tensors of a weighted layer, shaped as in PyTorch.
fn weights(layer: &FusedLayer) -> Option<(Tensor, Tensor)> {
    match layer {
        FusedLayer::Linear {
            in_features,
            out_features,
            weight,
            bias,
        } => Some((
            Tensor::from_slice(weight).view([*out_features as i64, *in_features as i64]),
            Tensor::from_slice(bias),
        )),
        FusedLayer::Conv2d {
            in_channels,
            out_channels,
            kernel,
            weight,
            bias,
            ..
        } => {
            let k = *kernel as i64;
            Some((
                Tensor::from_slice(weight).view([*out_channels as i64, *in_channels as i64, k, k]),
                Tensor::from_slice(bias),
            ))
        }
        _ => None,
    }
}

/// One lowered step in tch (float reference of what the int8 layer approximates).
fn apply(layer: &FusedLayer, step: &Step, p: Option<&(Tensor, Tensor)>, h: &Tensor) -> Tensor {
    let out = match (layer, p) {
        (FusedLayer::Linear { .. }, Some((w, b))) => h.linear(w, Some(b)),
        (
            FusedLayer::Conv2d {
                stride, padding, ..
            },
            Some((w, b)),
        ) => {
            let (s, p) = (*stride as i64, *padding as i64);
            h.conv2d(w, Some(b), [s, s], [p, p], [1, 1], 1)
        }
        (FusedLayer::Relu, _) => h.relu(),
        (FusedLayer::MaxPool2d { kernel, stride }, _) => {
            let (k, s) = (*kernel as i64, *stride as i64);
            h.max_pool2d([k, k], [s, s], [0, 0], [1, 1], false)
        }
        (FusedLayer::Flatten, _) => h.flatten(1, -1),
        (_, None) => unreachable!("weighted layer without tensors"),
    };
    if step.relu {
        out.relu()
    } else {
        out
    }
}

/// The float model's per-step outputs for normalized inputs `x: [N, C, H, W]` (tests compare them
/// with the trainer's fused forward).
pub fn forward_steps(model: &FusedModel, lowering: &Lowering, x: &Tensor) -> Vec<Tensor> {
    tch::no_grad(|| {
        let mut h = x.shallow_clone();
        let mut outs = Vec::new();
        for step in &lowering.steps {
            let layer = &model.layers[step.layer];
            h = apply(layer, step, weights(layer).as_ref(), &h);
            outs.push(h.shallow_clone());
        }
        outs
    })
}
