//! The folder `scripts/demo.sh` writes, read into memory with every cross-check the report relies
//! on. Layout (`DIR` = `--demo`; `R` = a run folder: `baseline`, `denoiserep` and, when the
//! residual CNN was run too, `resnet-baseline`, `resnet-denoiserep`; `M` = `R-f32`, `R-int8`):
//!
//! | path | written by | holds |
//! |---|---|---|
//! | `DIR/R/` | `denoiserep train` | run dirs (`config.json`, `metrics.json`) |
//! | `DIR/M.dnrp`, `DIR/M.json` | `denoiserep export` | model file, export report |
//! | `DIR/M-host.json` | `denoiserep infer --json` | accuracy, mAP, Rank-1 through the core |
//! | `DIR/M-host.dnrd` | `denoiserep infer --limit N --dump` | host outputs of the device's inputs |
//! | `DIR/M-device.dnrd`, `DIR/M-device.log` | `firmware/run-qemu.sh` | device outputs, firmware log |
//! | `DIR/steps.tsv` (optional) | `scripts/demo.sh` | `name<TAB>start unix s<TAB>seconds` per step |
//! | `DIR/commands.txt` (optional) | `scripts/demo.sh` | the commands, one per line |

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::device_log::DeviceLog;
use super::parity::{self, Parity};
use crate::eval::Metrics;
use crate::export::{ExportPrecision, ExportReport};
use crate::infer::InferSummary;
use crate::run::{self, RunConfig};

/// The runs: folder name and the label used in the report. The first [`REQUIRED_RUNS`] (the
/// MLP pair) must exist; the residual CNN pair is read when its baseline folder exists (and then
/// both of its runs must be complete).
pub const RUNS: [(&str, &str); 4] = [
    ("baseline", "baseline"),
    ("denoiserep", "DenoiseRep"),
    ("resnet-baseline", "ResNet baseline"),
    ("resnet-denoiserep", "ResNet DenoiseRep"),
];
/// Runs every demo folder has.
pub const REQUIRED_RUNS: usize = 2;
/// The two precisions, as in file names.
pub const PRECISIONS: [&str; 2] = ["f32", "int8"];
pub const STEPS: &str = "steps.tsv";
pub const COMMANDS: &str = "commands.txt";

/// A training run of the demo.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// `baseline` or `denoiserep` (folder name).
    pub dir: PathBuf,
    pub label: &'static str,
    pub config: RunConfig,
    pub metrics: Metrics,
}

/// One exported model and everything measured on it.
#[derive(Debug, Clone)]
pub struct ModelRecord {
    /// Index into [`Demo::runs`].
    pub run: usize,
    /// `f32` or `int8`.
    pub precision: &'static str,
    /// File stem, e.g. `denoiserep-int8`.
    pub stem: String,
    pub export: ExportReport,
    pub host: InferSummary,
    pub device: DeviceLog,
    pub parity: Parity,
}

/// One timed step of the pipeline (`steps.tsv`).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    /// Unix seconds at its start.
    pub start: i64,
    pub seconds: f64,
}

/// Everything in a demo folder.
#[derive(Debug, Clone)]
pub struct Demo {
    pub dir: PathBuf,
    pub runs: Vec<RunRecord>,
    /// In run order, f32 then int8 per run (baseline f32, baseline int8, DenoiseRep f32, …).
    pub models: Vec<ModelRecord>,
    pub steps: Option<Vec<Step>>,
    pub commands: Option<Vec<String>>,
}

impl Demo {
    /// Reads the folder (see the module doc). A missing or malformed file is an error naming it;
    /// so is a file that contradicts another (a model re-exported after it was measured, a log
    /// of a different model). Host/device differences are not errors here: they are in
    /// [`ModelRecord::parity`].
    pub fn read(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!("--demo {}: no such folder", dir.display());
        }
        let with_resnet = dir.join(RUNS[REQUIRED_RUNS].0).exists();
        let n_runs = if with_resnet {
            RUNS.len()
        } else {
            REQUIRED_RUNS
        };
        let runs = RUNS[..n_runs]
            .iter()
            .map(|&(name, label)| read_run(&dir.join(name), label))
            .collect::<Result<Vec<_>>>()?;
        let mut models = Vec::new();
        for (r, run) in runs.iter().enumerate() {
            for precision in PRECISIONS {
                models.push(read_model(dir, r, run, precision)?);
            }
        }
        let steps = optional(&dir.join(STEPS), parse_steps)?;
        let commands = optional(&dir.join(COMMANDS), |t| {
            Ok(t.lines()
                .map(str::trim_end)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect())
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            runs,
            models,
            steps,
            commands,
        })
    }
}

fn read_run(dir: &Path, label: &'static str) -> Result<RunRecord> {
    let config = run::read_config(dir)?;
    let metrics_path = dir.join(run::METRICS);
    if !metrics_path.is_file() {
        bail!(
            "{}: missing (the run {} did not finish)",
            metrics_path.display(),
            dir.display()
        );
    }
    let metrics: Metrics = super::read_json(&metrics_path)?;
    Ok(RunRecord {
        dir: dir.to_path_buf(),
        label,
        config,
        metrics,
    })
}

fn read_model(
    dir: &Path,
    r: usize,
    run: &RunRecord,
    precision: &'static str,
) -> Result<ModelRecord> {
    let name = run
        .dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let stem = format!("{name}-{precision}");
    let path = |suffix: &str| dir.join(format!("{stem}{suffix}"));

    let export_path = path(".json");
    let export: ExportReport = super::read_json(&export_path)?;
    let export_precision = match export.precision {
        ExportPrecision::F32 => "f32",
        ExportPrecision::Int8 => "int8",
    };
    if export_precision != precision || export.regime != run.config.train.regime.name() {
        bail!(
            "{}: a {} {} export, expected {precision} of the {} run {}",
            export_path.display(),
            export.regime,
            export_precision,
            run.config.train.regime.name(),
            run.dir.display()
        );
    }

    let host_path = path("-host.json");
    let host: InferSummary = super::read_json(&host_path)?;
    if host.precision != precision {
        bail!(
            "{}: precision {}, expected {precision}",
            host_path.display(),
            host.precision
        );
    }
    if host.footprint != export.footprint {
        bail!(
            "{}: footprint {:?} differs from {}'s {:?}: the model was exported again after \
             `denoiserep infer` measured it; run the demo again",
            host_path.display(),
            host.footprint,
            export_path.display(),
            export.footprint
        );
    }

    let log_path = path("-device.log");
    let device = DeviceLog::read(&log_path)?;
    let log_precision = if precision == "f32" { "F32" } else { "Int8" };
    if device.precision != log_precision
        || device.file_bytes != export.footprint.file_bytes
        || device.arena_bytes != export.footprint.arena_bytes
    {
        bail!(
            "{}: the firmware ran a {} model of {} file bytes and {} arena bytes; {} describes a \
             {log_precision} model of {} and {}: a log of another model",
            log_path.display(),
            device.precision,
            device.file_bytes,
            device.arena_bytes,
            export_path.display(),
            export.footprint.file_bytes,
            export.footprint.arena_bytes
        );
    }
    if let Some(math) = device.math.as_deref().filter(|m| *m != host.math) {
        bail!(
            "{}: the firmware ran math={math}, {} ran math={}: the outputs of libm and fast-math \
             builds differ by construction; build the firmware and the trainer both with or both \
             without `fast-math`",
            log_path.display(),
            host_path.display(),
            host.math
        );
    }
    if device.macs != export.footprint.macs * device.samples {
        bail!(
            "{}: macs={} over {} samples, {} says {} per inference",
            log_path.display(),
            device.macs,
            device.samples,
            export_path.display(),
            export.footprint.macs
        );
    }

    let (host_dump, device_dump) = (path("-host.dnrd"), path("-device.dnrd"));
    let parity = parity::compare_files(&host_dump, &device_dump)?;
    if u64::from(parity.samples) != device.samples {
        bail!(
            "{}: {} samples, {} ran {}",
            device_dump.display(),
            parity.samples,
            log_path.display(),
            device.samples
        );
    }
    Ok(ModelRecord {
        run: r,
        precision,
        stem,
        export,
        host,
        device,
        parity,
    })
}

/// `parse(text)` of the file when it exists; `None` when it does not.
fn optional<T>(path: &Path, parse: impl FnOnce(&str) -> Result<T>) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = super::read_text(path)?;
    parse(&text)
        .with_context(|| path.display().to_string())
        .map(Some)
}

/// `steps.tsv`: `name<TAB>start<TAB>seconds` per line; `#` lines are comments.
pub fn parse_steps(text: &str) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let parsed = match f[..] {
            [name, start, seconds] if !name.is_empty() => start
                .trim()
                .parse::<i64>()
                .ok()
                .zip(seconds.trim().parse::<f64>().ok().filter(|s| *s >= 0.0))
                .map(|(start, seconds)| Step {
                    name: name.to_string(),
                    start,
                    seconds,
                }),
            _ => None,
        };
        match parsed {
            Some(s) => steps.push(s),
            None => bail!(
                "line {}: '{line}' is not 'name<TAB>start unix seconds<TAB>seconds'",
                i + 1
            ),
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_and_reject() {
        let s = parse_steps("# step\tstart\tseconds\nbuild\t100\t12.5\n\ntrain\t113\t3\n").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0],
            Step {
                name: "build".into(),
                start: 100,
                seconds: 12.5
            }
        );
        let e = parse_steps("build\t100\n").unwrap_err().to_string();
        assert!(e.starts_with("line 1: 'build\t100'"), "{e}");
        assert!(parse_steps("x\t1\t-2\n").is_err());
        assert!(parse_steps("x\tnow\t2\n").is_err());
    }
}
