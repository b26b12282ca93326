//! `denoiserep report --demo DIR --out OUT`: the report of README's main command.
//!
//! Reads the folder `scripts/demo.sh` fills ([`demo`] documents the layout), checks that its
//! files agree with each other, compares every host dump with its device dump ([`parity`]) and
//! reads the firmware logs ([`device_log`]), then writes `OUT/REPORT.md` ([`markdown`]) with
//! two plots, `OUT/curves.png` (the baseline's epochs, then DenoiseRep's, phases shaded) and
//! `OUT/robustness.png` (top-1 vs input noise σ and under the corruptions, both runs).
//!
//! Exit status (through `main`): 0 when the report is written and every model's host and
//! device outputs are bit-identical; 2 for a missing or malformed file (named), and 2 — after
//! writing the report, whose table then shows ✗ and the first differing sample and field —
//! when host and device differ.

pub mod demo;
pub mod device_log;
pub mod machine;
pub mod markdown;
pub mod parity;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;

use crate::eval::{plots, EpochRecord};
use crate::run::write_atomic;
pub use demo::Demo;
pub use machine::Machine;

pub const REPORT_MD: &str = "REPORT.md";
pub const CURVES_PNG: &str = "curves.png";
pub const ROBUSTNESS_PNG: &str = "robustness.png";

/// What [`write`] produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Model files compared host against device.
    pub models: usize,
    /// `OUT/REPORT.md`.
    pub markdown: PathBuf,
    /// `stem: description` of every model whose host and device outputs differ.
    pub mismatches: Vec<String>,
}

/// Reads the demo folder `dir` and writes the report into `out` (created if missing).
pub fn write(dir: &Path, out: &Path) -> Result<Outcome> {
    let demo = Demo::read(dir)?;
    fs::create_dir_all(out).with_context(|| format!("--out {}: cannot create", out.display()))?;
    let generated = machine::now_unix();
    plot_curves(&demo, &out.join(CURVES_PNG))?;
    plot_robustness(&demo, &out.join(ROBUSTNESS_PNG))?;
    let text = markdown::render(&demo, &Machine::current(), generated);
    let markdown = out.join(REPORT_MD);
    write_atomic(&markdown, text.as_bytes())?;
    let mismatches = demo
        .models
        .iter()
        .filter(|m| !m.parity.identical())
        .map(|m| format!("{}: {}", m.stem, m.parity.describe()))
        .collect();
    Ok(Outcome {
        models: demo.models.len(),
        markdown,
        mismatches,
    })
}

/// The `report` command: [`write`], print where the report is, fail when host and device differ.
pub fn run(dir: &Path, out: &Path) -> Result<()> {
    let o = write(dir, out)?;
    if !o.mismatches.is_empty() {
        bail!(
            "host and device outputs differ ({}); report written to {}",
            o.mismatches.join("; "),
            o.markdown.display()
        );
    }
    println!(
        "{}: host and device bit-identical for all {} models",
        o.markdown.display(),
        o.models
    );
    Ok(())
}

/// The MLP baseline's curve, then its DenoiseRep's renumbered to continue it (it starts from the
/// baseline's weights).
pub fn joined_curve(demo: &Demo) -> Vec<EpochRecord> {
    let mut all = Vec::new();
    for run in demo.runs.iter().take(demo::REQUIRED_RUNS) {
        let offset = all.last().map_or(0, |r: &EpochRecord| r.epoch);
        all.extend(run.metrics.curve.iter().map(|r| EpochRecord {
            epoch: r.epoch + offset,
            ..r.clone()
        }));
    }
    all
}

fn plot_curves(demo: &Demo, path: &Path) -> Result<()> {
    let cfg = &demo.runs[0].config;
    let title = format!(
        "{} on {}: baseline, then DenoiseRep ({}) from it",
        cfg.arch.spec,
        cfg.data.name,
        demo.runs[1].config.train.regime.name()
    );
    plots::training_curves(path, &title, &joined_curve(demo))
}

fn plot_robustness(demo: &Demo, path: &Path) -> Result<()> {
    let series: Vec<_> = demo
        .runs
        .iter()
        .map(|r| plots::RobustnessSeries {
            name: r.label.to_string(),
            noise: r.metrics.noise_robustness.clone(),
            corruptions: r.metrics.corruptions.clone(),
        })
        .collect();
    let title = format!(
        "top-1 under input noise and corruptions, {} on {} (trainer, fused)",
        demo.runs[0].config.arch.spec, demo.runs[0].config.data.name
    );
    plots::robustness_all(path, &title, &series)
}

/// Reads a file, naming it when it is missing.
fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    if !path.exists() {
        bail!("{}: missing", path.display());
    }
    fs::read(path).with_context(|| format!("{}: cannot read", path.display()))
}

fn read_text(path: &Path) -> Result<String> {
    String::from_utf8(read_bytes(path)?)
        .with_context(|| format!("{}: not UTF-8 text", path.display()))
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    serde_json::from_slice(&read_bytes(path)?)
        .with_context(|| format!("{}: not the expected JSON", path.display()))
}
