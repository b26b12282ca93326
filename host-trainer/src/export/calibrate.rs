//! Calibration for int8 export: the real range of every tensor that gets its own quantization.
//!
//! The float model is the lowered graph's **f32 model file run by `denoiserep-core`** (the same
//! code the device runs, so there is no second forward to keep in step): every calibration sample
//! (raw input) goes through [`Model::run_with`], which shows the output of every op. Observed
//! tensors: the normalized model input and every op's output (after its fused activation: the
//! tensor the int8 op writes). Ops that keep their input's quantization (pooling, Mean, Reshape,
//! standalone activations) are observed too but their ranges are not used.
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

use anyhow::{anyhow, bail, Result};
use denoiserep_core::{Model, TensorData, TensorView};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::rules;
use crate::export::float::graph_f32;
use crate::export::lower::CoreGraph;

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

/// Observed range `(min, max)` of every core tensor, by tensor id (`None` for a tensor no op
/// wrote).
pub type Ranges = Vec<Option<(f32, f32)>>;

/// Collects the values (percentile) or the running min/max (min/max) of one tensor.
enum Observer {
    MinMax(Option<(f32, f32)>),
    Values(Vec<f32>),
}

impl Observer {
    fn new(method: RangeMethod) -> Self {
        match method {
            RangeMethod::MinMax => Self::MinMax(None),
            RangeMethod::Percentile(_) => Self::Values(Vec::new()),
        }
    }

    fn observe(&mut self, t: &TensorView<'_>) {
        if let TensorData::F32(values) = t.data {
            self.observe_values(values);
        }
    }

    fn observe_values(&mut self, values: &[f32]) {
        match self {
            Self::MinMax(r) => {
                for &v in values {
                    *r = Some(match *r {
                        None => (v, v),
                        Some((a, b)) => (a.min(v), b.max(v)),
                    });
                }
            }
            Self::Values(all) => all.extend_from_slice(values),
        }
    }

    fn finish(self, method: RangeMethod) -> Option<(f32, f32)> {
        match (self, method) {
            (Self::MinMax(r), _) => r,
            (Self::Values(mut v), RangeMethod::Percentile(p)) if !v.is_empty() => {
                let n = v.len();
                let rank = |q: f64| ((n as f64 * q / 100.0).ceil() as usize).clamp(1, n) - 1;
                let (lo, hi) = (rank(100.0 - p), rank(p));
                let lo_v = *v.select_nth_unstable_by(lo, f32::total_cmp).1;
                let hi_v = *v.select_nth_unstable_by(hi, f32::total_cmp).1;
                Some((lo_v, hi_v))
            }
            _ => None,
        }
    }
}

/// Runs the f32 model of `graph` through the core over `samples` (raw, `n × input` values) and
/// returns the observed range of every tensor. `progress` shows a bar on stderr.
pub fn calibrate(
    graph: &CoreGraph,
    samples: &[f32],
    method: RangeMethod,
    progress: bool,
) -> Result<Ranges> {
    let file = graph_f32(graph)?.encode()?;
    let model = Model::from_bytes(&file).map_err(|e| anyhow!("{e}"))?;
    let len = model.input_len();
    let n = samples.len() / len.max(1);
    if n == 0 {
        bail!("calibration needs at least one sample");
    }
    let mut observers: Vec<Observer> = (0..model.tensor_count())
        .map(|_| Observer::new(method))
        .collect();
    let outputs: Vec<u16> = model
        .nodes()
        .map(|node| node.map(|n| n.output))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("{e}"))?;
    let input = usize::from(model.info().input);
    let (mean, std) = (&graph.mean, &graph.std);
    let per = len / mean.len().max(1);
    let mut normalized = vec![0.0f32; len];
    let mut arena = vec![0u8; model.arena_size()];
    let bar = progress_bar(n, progress);
    for sample in samples[..n * len].chunks_exact(len) {
        // The normalized input, computed as the core does: (x − μ[c]) / σ[c] in f32.
        for (i, (o, &x)) in normalized.iter_mut().zip(sample).enumerate() {
            let c = (i / per.max(1)).min(mean.len().saturating_sub(1));
            *o = (x - mean[c]) / std[c];
        }
        observers[input].observe_values(&normalized);
        model
            .run_with(sample, &mut arena, |step| {
                if let Some(o) = outputs
                    .get(step.index)
                    .and_then(|&t| observers.get_mut(usize::from(t)))
                {
                    o.observe(&step.output);
                }
            })
            .map_err(|e| anyhow!("calibration run: {e}"))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let ranges: Ranges = observers.into_iter().map(|o| o.finish(method)).collect();
    for (t, r) in ranges.iter().enumerate() {
        if let Some((lo, hi)) = r {
            if !(lo.is_finite() && hi.is_finite()) {
                bail!("calibration: tensor {t} has a non-finite range [{lo}, {hi}]");
            }
        }
    }
    Ok(ranges)
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
