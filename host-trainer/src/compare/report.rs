//! `compare.json` and `compare.md`: per-seed results, mean ± std per arm, paired differences
//! against the controls and the verdicts; and, secondary, the corruption, feature-noise and int8
//! accuracies per arm with
//! their paired differences against the null control.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::arms::{self, Arm, Role};
use super::stats::{self, Paired, Verdict};
use super::{ArmRun, Settings, METRICS};

/// The verdict rule, as written into both outputs.
pub const RULE: &str = "for each paired difference d_s = arm_s − control_s over the n seeds: mean \
d̄, sample std s_d, 95 % Student-t interval d̄ ± t(0.975, n − 1)·s_d/√n. Verdict: equivalent when \
the whole interval lies strictly inside ±m (m = the equivalence margin); otherwise better when it \
lies entirely above 0, worse when entirely below 0; otherwise (and always with fewer than 2 seeds) \
inconclusive. An arm beats all four controls on a metric when it is better than each of \
baseline-more (1), null-control (2), penalty-control (3) and analytic-shrinkage (4)";

/// The pre-declared primary comparison, as written into both outputs.
pub const PRIMARY: &str = "each DenoiseRep arm (label-free, label-guided, \
label-guided-noise-grad and every --variant) minus null-control (2), on top-1 accuracy; every \
other difference is secondary";

/// The primary metric and control.
pub const PRIMARY_METRIC: &str = "top1";
pub const PRIMARY_CONTROL: &str = arms::CONTROLS[1];

/// Mean and sample standard deviation (n − 1) of one metric over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    pub mean: Option<f64>,
    pub std: Option<f64>,
}

/// One arm over all seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmSummary {
    pub arm: String,
    pub role: Role,
    pub flags: Vec<String>,
    pub seeds: usize,
    pub epochs: usize,
    pub backbone_epochs: usize,
    pub wall_seconds_mean: Option<f64>,
    /// Metric key (`top1`, `map`, `rank1`, `robust_0_1`, `robust_0_3`) → mean ± std.
    pub metrics: BTreeMap<String, MeanStd>,
    /// Secondary metric key ([`Report::secondary`]) → mean ± std over the seeds that have it.
    #[serde(default, alias = "corruptions")]
    pub secondary: BTreeMap<String, MeanStd>,
}

/// Paired differences `arm − control` of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedEntry {
    pub arm: String,
    pub control: String,
    pub metric: String,
    /// True for the pre-declared primary comparison ([`PRIMARY`]); every other entry is
    /// secondary.
    pub primary: bool,
    #[serde(flatten)]
    pub paired: Paired,
}

/// Whether a DenoiseRep arm (built-in method or variant) beats all four controls on one
/// metric ([`RULE`]), and its verdict against the null control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmVerdict {
    pub arm: String,
    pub metric: String,
    pub beats_all_controls: bool,
    /// The verdict of `arm − null-control` on this metric.
    pub vs_null_control: Verdict,
    /// True on top-1: `vs_null_control` is then the primary comparison.
    pub primary: bool,
}

/// The primary comparison's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Primary {
    pub metric: String,
    pub control: String,
    /// The arms compared (the DenoiseRep arms of this comparison, in report order).
    pub arms: Vec<String>,
    pub description: String,
}

/// Everything in `compare.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub command: String,
    pub settings: Settings,
    /// Metric keys, in table order.
    pub metrics: Vec<String>,
    pub runs: Vec<ArmRun>,
    pub summary: Vec<ArmSummary>,
    /// Every arm after the start against every control before it in the list (so each control
    /// also appears against the earlier controls: (2) − (1) isolates the schedule, (3) − (2)
    /// the penalty), and against the start itself (what the E2 extra epochs changed).
    pub paired: Vec<PairedEntry>,
    pub verdicts: Vec<ArmVerdict>,
    /// Secondary metric keys ([`super::secondary_keys`]): corruptions (`kind:severity`),
    /// feature noise (`feature-noise:S`), `int8`, `int8-drop`, in that order.
    #[serde(default, alias = "corruptions")]
    pub secondary: Vec<String>,
    /// Secondary: every arm after the start (but the null control itself) minus the null
    /// control, each secondary metric, paired over the seeds where both runs have it
    /// (`metric` = its key; never primary).
    #[serde(default, alias = "corruption_paired")]
    pub secondary_paired: Vec<PairedEntry>,
    pub rule: String,
    pub primary: Primary,
    /// Two-sided coverage of every interval (0.95).
    pub confidence: f64,
    /// Wall seconds of this invocation (reused arms cost almost nothing here).
    pub wall_seconds: f64,
}

/// True for the arms the primary comparison is about: built-in DenoiseRep arms and variants.
fn is_method(role: Role) -> bool {
    matches!(role, Role::Method | Role::Variant)
}

impl Report {
    /// Computes the statistics of `runs` (every arm × every seed of `settings`).
    pub fn new(
        settings: Settings,
        command: String,
        arms: Vec<Arm>,
        runs: Vec<ArmRun>,
        wall_seconds: f64,
    ) -> Self {
        let margin = settings.equivalence_margin_pp / 100.0;
        let series = |arm: &str, f: fn(&super::HeadlineMetrics) -> f64| -> Vec<f64> {
            settings
                .seeds
                .iter()
                .filter_map(|s| runs.iter().find(|r| r.arm == arm && r.seed == *s))
                .map(|r| f(&r.metrics))
                .collect()
        };
        let secondary_keys = super::secondary_keys();
        let summary = arms
            .iter()
            .map(|a| {
                let mine: Vec<&ArmRun> = runs.iter().filter(|r| r.arm == a.name).collect();
                let walls: Vec<f64> = mine.iter().map(|r| r.wall_seconds).collect();
                ArmSummary {
                    arm: a.name.clone(),
                    role: a.role,
                    flags: a.flags.clone(),
                    seeds: mine.len(),
                    epochs: mine.first().map_or(0, |r| r.epochs),
                    backbone_epochs: mine.first().map_or(0, |r| r.backbone_epochs),
                    wall_seconds_mean: stats::mean(&walls),
                    metrics: METRICS
                        .iter()
                        .map(|(k, _, f)| {
                            let xs = series(&a.name, *f);
                            (
                                k.to_string(),
                                MeanStd {
                                    mean: stats::mean(&xs),
                                    std: stats::sample_std(&xs),
                                },
                            )
                        })
                        .collect(),
                    secondary: secondary_keys
                        .iter()
                        .map(|k| {
                            let xs: Vec<f64> = mine
                                .iter()
                                .filter_map(|r| r.secondary.get(k).copied())
                                .collect();
                            (
                                k.clone(),
                                MeanStd {
                                    mean: stats::mean(&xs),
                                    std: stats::sample_std(&xs),
                                },
                            )
                        })
                        .collect(),
                }
            })
            .collect();
        let mut paired = Vec::new();
        let mut verdicts = Vec::new();
        for a in arms.iter().filter(|a| a.role != Role::Start) {
            let mut controls: Vec<&str> = match a.role {
                Role::Control => arms::CONTROLS
                    .iter()
                    .take_while(|c| **c != a.name)
                    .copied()
                    .collect(),
                _ => arms::CONTROLS.to_vec(),
            };
            controls.push(arms::START);
            for (k, _, f) in METRICS {
                let mut mine = Vec::new();
                let mut vs_null = Verdict::Inconclusive;
                for c in &controls {
                    let p = stats::paired(&series(&a.name, f), &series(c, f), margin);
                    if *c != arms::START {
                        mine.push(p.clone());
                    }
                    if *c == PRIMARY_CONTROL {
                        vs_null = p.verdict;
                    }
                    paired.push(PairedEntry {
                        arm: a.name.clone(),
                        control: c.to_string(),
                        metric: k.into(),
                        primary: is_method(a.role) && *c == PRIMARY_CONTROL && k == PRIMARY_METRIC,
                        paired: p,
                    });
                }
                if is_method(a.role) {
                    verdicts.push(ArmVerdict {
                        arm: a.name.clone(),
                        metric: k.into(),
                        beats_all_controls: stats::beats_all(&mine),
                        vs_null_control: vs_null,
                        primary: k == PRIMARY_METRIC,
                    });
                }
            }
        }
        // Corruptions: seed-aligned pairs over the seeds where both runs have the value (runs
        // evaluated before a metric existed lack it).
        let secondary_at = |arm: &str, seed: u64, key: &str| {
            runs.iter()
                .find(|r| r.arm == arm && r.seed == seed)
                .and_then(|r| r.secondary.get(key).copied())
        };
        let mut secondary_paired = Vec::new();
        for a in arms
            .iter()
            .filter(|a| a.role != Role::Start && a.name != PRIMARY_CONTROL)
        {
            for key in &secondary_keys {
                let (mut xs, mut cs) = (Vec::new(), Vec::new());
                for &seed in &settings.seeds {
                    if let (Some(x), Some(c)) = (
                        secondary_at(&a.name, seed, key),
                        secondary_at(PRIMARY_CONTROL, seed, key),
                    ) {
                        xs.push(x);
                        cs.push(c);
                    }
                }
                secondary_paired.push(PairedEntry {
                    arm: a.name.clone(),
                    control: PRIMARY_CONTROL.into(),
                    metric: key.clone(),
                    primary: false,
                    paired: stats::paired(&xs, &cs, margin),
                });
            }
        }
        let primary = Primary {
            metric: PRIMARY_METRIC.into(),
            control: PRIMARY_CONTROL.into(),
            arms: arms
                .iter()
                .filter(|a| is_method(a.role))
                .map(|a| a.name.clone())
                .collect(),
            description: PRIMARY.into(),
        };
        Self {
            command,
            metrics: METRICS.iter().map(|(k, _, _)| k.to_string()).collect(),
            settings,
            runs,
            summary,
            paired,
            verdicts,
            secondary: secondary_keys,
            secondary_paired,
            rule: RULE.into(),
            primary,
            confidence: stats::CONFIDENCE,
            wall_seconds,
        }
    }

    /// The paired entry of `arm` vs `control` on `metric`.
    pub fn paired_of(&self, arm: &str, control: &str, metric: &str) -> Option<&Paired> {
        self.paired
            .iter()
            .find(|p| p.arm == arm && p.control == control && p.metric == metric)
            .map(|p| &p.paired)
    }
}

/// Writes `compare.json` (pretty, atomic).
pub fn write_json(path: &Path, r: &Report) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(r)?;
    bytes.push(b'\n');
    crate::atomic::write_atomic(path, &bytes)
}

/// Writes `compare.md` (atomic).
pub fn write_markdown(path: &Path, r: &Report) -> Result<()> {
    crate::atomic::write_atomic(path, markdown(r).as_bytes())
}

/// `96.20 ± 0.10` (percent); `–` when missing.
fn pct(m: &MeanStd) -> String {
    match (m.mean, m.std) {
        (Some(a), Some(s)) => format!("{:.2} ± {:.2}", 100.0 * a, 100.0 * s),
        (Some(a), None) => format!("{:.2}", 100.0 * a),
        _ => "–".into(),
    }
}

/// A signed number of percentage points from a fraction: `+0.12`; `–` when missing.
fn signed_pp(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{:+.2}", 100.0 * v))
}

/// The columns of a paired-difference row: mean, std, 95 % interval, t quantile, seeds
/// better/worse, verdict.
fn paired_cells(p: &Paired) -> String {
    let ci = match (p.ci_low, p.ci_high) {
        (Some(lo), Some(hi)) => format!("[{}, {}]", signed_pp(Some(lo)), signed_pp(Some(hi))),
        _ => "–".into(),
    };
    format!(
        "{} | {} | {} | {} | {}/{} | {} |",
        signed_pp(p.mean),
        p.std.map_or("–".into(), |s| format!("{:.2}", 100.0 * s)),
        ci,
        p.t_quantile.map_or("–".into(), |t| format!("{t:.3}")),
        p.better,
        p.worse,
        p.verdict.word()
    )
}

const PAIRED_HEADER: &str =
    "| mean Δ (pp) | std (pp) | 95 % CI (pp) | t(0.975, n−1) | seeds better/worse | verdict |";
const PAIRED_RULE: &str = "---:|---:|---:|---:|---:|---|";

fn control_number(c: &str) -> usize {
    arms::CONTROLS
        .iter()
        .position(|x| *x == c)
        .map_or(0, |i| i + 1)
}

fn metric_label(key: &str) -> &str {
    METRICS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map_or(key, |(_, l, _)| l)
}

/// The whole `compare.md`.
pub fn markdown(r: &Report) -> String {
    let s = &r.settings;
    let k = s.seeds.len();
    let m = s.equivalence_margin_pp;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# denoiserep compare: {} on {}, {} seed{}\n",
        s.arch,
        s.data,
        k,
        if k == 1 { "" } else { "s" }
    );
    let _ = writeln!(o, "```sh\n{}\n```\n", r.command);
    let seeds: Vec<String> = s.seeds.iter().map(u64::to_string).collect();
    let _ = writeln!(
        o,
        "Seeds {}; baseline epochs from scratch: {}; then every arm trains {} more epochs from \
         it (same data order per epoch index); label-guided phase length: {} epochs. lr {} ({}), batch {}, \
         augment {}, weight decay {}, λ {}, t-stride {}, β {}…{} over T = {}. Device {}, threads {}. Equivalence margin ±{} pp. \
         Wall time of this invocation {:.1} s (arms reused from an earlier invocation count only \
         their loading).\n",
        seeds.join(", "),
        s.epochs,
        s.extra_epochs,
        s.phase_epochs,
        s.lr,
        match s.lr_schedule {
            crate::train::LrSchedule::Constant => "constant",
            crate::train::LrSchedule::Cosine => "cosine",
        },
        s.batch_size,
        s.augment,
        s.weight_decay,
        s.lambda,
        s.t_stride,
        s.beta_start,
        s.beta_end,
        s.timesteps,
        s.device,
        s.threads.map_or("libtorch default".into(), |t| t.to_string()),
        m,
        r.wall_seconds
    );

    if let Some(n) = s.labels {
        let _ = writeln!(
            o,
            "Labels: every backbone (baselines included) trained with cross-entropy on {n} \
             class-stratified labelled train samples (`--labels {n}`); denoisers fitted on the \
             whole train split.\n"
        );
    }

    // The primary comparison first: it is what the experiment is about.
    let _ = writeln!(
        o,
        "## Primary comparison (pre-declared)\n\nTop-1 of each DenoiseRep arm minus the \
         null-control (2), paired over the {k} seeds (percentage points): mean, sample std, 95 % \
         Student-t interval (n − 1 degrees of freedom). Rule: {RULE}; here m = {m} pp.{}\n",
        if k < 10 {
            " With fewer than 10 seeds the intervals are wide: 10 seeds are the recommended \
             headline setting."
        } else {
            ""
        }
    );
    let _ = writeln!(o, "| arm | n {PAIRED_HEADER}\n|---|---:|{PAIRED_RULE}");
    for e in r.paired.iter().filter(|e| e.primary) {
        let _ = writeln!(
            o,
            "| {} | {} | {}",
            e.arm,
            e.paired.n,
            paired_cells(&e.paired)
        );
    }

    let header = |o: &mut String, first: &str| {
        let _ = write!(o, "| {first} |");
        for (_, label, _) in METRICS {
            let _ = write!(o, " {label} |");
        }
        let _ = write!(o, "\n|---|");
        for _ in METRICS {
            let _ = write!(o, "---:|");
        }
        o.push('\n');
    };
    let _ = writeln!(
        o,
        "\n## Mean ± std over {k} seeds (%)\n\nTop-1 on the test split, retrieval mAP and Rank-1 \
         (queries: test, gallery: train, cosine), top-1 under Gaussian input noise σ = 0.1 and \
         0.3. Sample std (n − 1).\n"
    );
    header(&mut o, "arm");
    for a in &r.summary {
        let _ = write!(o, "| {} |", arm_label(a));
        for (key, _, _) in METRICS {
            let _ = write!(o, " {} |", a.metrics.get(key).map_or("–".into(), pct));
        }
        o.push('\n');
    }

    let _ = writeln!(
        o,
        "\n## Arms\n\n| arm | flags | epochs | backbone epochs | wall s (mean) |\n|---|---|---:|---:|---:|"
    );
    for a in &r.summary {
        let _ = writeln!(
            o,
            "| {} | `{}` | {} | {} | {} |",
            arm_label(a),
            a.flags.join(" "),
            a.epochs,
            a.backbone_epochs,
            a.wall_seconds_mean
                .map_or("–".into(), |w| format!("{w:.1}"))
        );
    }

    let _ = writeln!(
        o,
        "\n## Paired differences vs the controls (secondary, percentage points)\n\nEvery other \
         difference: per seed `arm − control`, then mean, sample std, 95 % Student-t interval, \
         seeds better/worse (the rest tied, |d| < 1e-9) and the verdict of the rule above. These \
         are secondary: with this many comparisons some `better` or `worse` calls are expected \
         by chance (2.5 % each under no true difference, docs/trainer.md)."
    );
    for c in arms::CONTROLS.into_iter().chain([arms::START]) {
        if c == arms::START {
            let _ = writeln!(
                o,
                "\n### vs baseline (the start: no extra epochs; a reference, not a control)\n"
            );
        } else {
            let _ = writeln!(o, "\n### vs {c} ({})\n", control_number(c));
        }
        let _ = writeln!(o, "| arm | metric {PAIRED_HEADER}\n|---|---|{PAIRED_RULE}");
        for e in r.paired.iter().filter(|e| e.control == c) {
            let _ = writeln!(
                o,
                "| {} | {}{} | {}",
                e.arm,
                metric_label(&e.metric),
                if e.primary { " (primary)" } else { "" },
                paired_cells(&e.paired)
            );
        }
    }

    let _ = writeln!(
        o,
        "\n## Verdict\n\nRule: {RULE} (m = {m} pp). Primary: {PRIMARY}.\n"
    );
    for v in &r.verdicts {
        let parts: Vec<String> = arms::CONTROLS
            .iter()
            .filter_map(|c| {
                r.paired_of(&v.arm, c, &v.metric).map(|p| {
                    format!(
                        "({}) {} {}",
                        control_number(c),
                        signed_pp(p.mean),
                        p.verdict.word()
                    )
                })
            })
            .collect();
        let _ = writeln!(
            o,
            "- **{}**, {}{}: {} — {}",
            v.arm,
            metric_label(&v.metric),
            if v.primary {
                " (primary: vs null-control)"
            } else {
                ""
            },
            if v.beats_all_controls {
                "**beats all four controls**"
            } else {
                "does not beat all four controls"
            },
            parts.join(", ")
        );
    }
    secondary_markdown(&mut o, r);
    o
}

/// The label of a secondary metric key (`salt-pepper:0.05` → `salt-pepper p=0.05`,
/// `feature-noise:1` → `feature noise S=1`, `int8` → `int8 (core)`); the key itself when it is
/// not one of the protocol's.
fn secondary_label(key: &str) -> String {
    if let Some(c) = crate::eval::corrupt::CORRUPTIONS
        .iter()
        .find(|c| c.key() == key)
    {
        return c.label();
    }
    match key {
        super::INT8_KEY => "int8 (core)".into(),
        super::INT8_DROP_KEY => "int8 − f32".into(),
        _ => match key.strip_prefix("feature-noise:") {
            Some(s) => format!("feature noise S={s}"),
            None => key.to_string(),
        },
    }
}

/// The secondary section of `compare.md`: mean ± std per arm and secondary metric, then every
/// arm minus the null control per metric.
fn secondary_markdown(o: &mut String, r: &Report) {
    if r.secondary.is_empty() {
        return;
    }
    let k = r.settings.seeds.len();
    let _ = writeln!(
        o,
        "\n## Robustness and deployment (secondary)\n\nTop-1 (%) on the test split: under each \
         corruption of `eval` (docs/trainer.md, \"Evaluation and outputs\") — Gaussian noise, \
         salt-and-pepper (fraction p of pixels), one black square per image (side as % of the \
         image side), Gaussian blur (σ in pixels); under feature noise N(0, S²) added to every \
         weighted layer's input (the positive control, docs/trainer.md \"Feature-noise positive \
         control\"); and of the run exported to int8 (min/max calibration on 1,000 train \
         samples) as `denoiserep-core` computes it, with its difference from the exported f32 \
         model (`int8 − f32`, pp). Mean ± sample std over the {k} seeds; runs evaluated before \
         a metric existed count as missing (`denoiserep eval --run DIR` adds them).\n"
    );
    let _ = write!(o, "| arm |");
    for key in &r.secondary {
        let _ = write!(o, " {} |", secondary_label(key));
    }
    let _ = write!(o, "\n|---|");
    for _ in &r.secondary {
        let _ = write!(o, "---:|");
    }
    o.push('\n');
    for a in &r.summary {
        let _ = write!(o, "| {} |", arm_label(a));
        for key in &r.secondary {
            let _ = write!(o, " {} |", a.secondary.get(key).map_or("–".into(), pct));
        }
        o.push('\n');
    }
    let _ = writeln!(
        o,
        "\n### vs {PRIMARY_CONTROL} ({}), per secondary metric (percentage points)\n\n\
         Per seed `arm − {PRIMARY_CONTROL}`, with the interval and verdict of the rule above; \
         none of these is primary, and with this many comparisons some `better` or `worse` calls \
         are expected by chance.\n",
        control_number(PRIMARY_CONTROL)
    );
    let _ = writeln!(
        o,
        "| arm | metric | n {PAIRED_HEADER}\n|---|---|---:|{PAIRED_RULE}"
    );
    for e in &r.secondary_paired {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {}",
            e.arm,
            secondary_label(&e.metric),
            e.paired.n,
            paired_cells(&e.paired)
        );
    }
}

fn arm_label(a: &ArmSummary) -> String {
    match a.role {
        Role::Start => format!("{} (start)", a.arm),
        Role::Control => format!("{} ({})", a.arm, control_number(&a.arm)),
        Role::Method | Role::Variant => a.arm.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{HeadlineMetrics, Outcome};
    use crate::train::LrSchedule;

    fn settings(seeds: usize) -> Settings {
        Settings {
            data: "synthetic".into(),
            data_dir: "data".into(),
            test_fraction: 0.2,
            arch: "mlp:16".into(),
            seeds: (0..seeds as u64).collect(),
            epochs: 1,
            extra_epochs: 2,
            phase_epochs: 1,
            lr: 2e-3,
            lr_schedule: LrSchedule::Cosine,
            batch_size: 32,
            labels: None,
            augment: Default::default(),
            weight_decay: 0.0,
            lambda: 0.01,
            t_stride: 1,
            beta_start: 1e-4,
            beta_end: 2e-3,
            timesteps: 1000,
            device: "cpu".into(),
            threads: Some(1),
            equivalence_margin_pp: 0.2,
        }
    }

    /// Runs whose every metric and every corruption accuracy is `top1[seed]`.
    fn runs(arm: &str, top1: &[f64]) -> Vec<ArmRun> {
        top1.iter()
            .enumerate()
            .map(|(s, &v)| ArmRun {
                arm: arm.into(),
                seed: s as u64,
                dir: format!("seed-{s}/{arm}").into(),
                outcome: Outcome::Trained,
                wall_seconds: 1.0 + s as f64,
                epochs: 2,
                backbone_epochs: 1,
                metrics: HeadlineMetrics {
                    top1: v,
                    map: v,
                    rank1: v,
                    robust_0_1: v,
                    robust_0_3: v,
                },
                secondary: crate::compare::secondary_keys()
                    .into_iter()
                    .map(|k| (k, v))
                    .collect(),
            })
            .collect()
    }

    fn builtin_arms() -> Vec<Arm> {
        std::iter::once(Arm {
            name: "baseline".into(),
            role: Role::Start,
            flags: vec![],
        })
        .chain(arms::builtin())
        .collect()
    }

    #[test]
    fn dose_response_families_and_plot() {
        use crate::compare::dose;
        let control = [0.90, 0.91, 0.92];
        let mut all = runs("baseline", &[0.8; 3]);
        for c in arms::CONTROLS {
            all.extend(runs(c, &control));
        }
        let mut arms_list = builtin_arms();
        for (name, v) in [
            ("lg-b0.1", 0.85),
            ("lg-b0.001", 0.92),
            ("lg-b0.01", 0.90),
            ("solo-b0.1", 0.5),
        ] {
            all.extend(runs(name, &[v; 3]));
            arms_list.push(Arm {
                name: name.into(),
                role: Role::Variant,
                flags: vec![],
            });
        }
        let r = Report::new(settings(3), "c".into(), arms_list, all.clone(), 1.0);
        let fams = dose::families(&r);
        assert_eq!(fams.len(), 1, "one β alone is no family: {fams:?}");
        let betas: Vec<f64> = fams[0].points.iter().map(|p| p.0).collect();
        assert_eq!(
            (fams[0].name.as_str(), betas),
            ("lg", vec![0.001, 0.01, 0.1])
        );
        let dir = std::env::temp_dir().join(format!("denoiserep-dose-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join(dose::PNG);
        assert!(dose::dose_response_png(&png, &r).unwrap());
        let bytes = std::fs::read(&png).unwrap();
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!((img.width(), img.height()), (1500, 1100));
        // Without a family nothing is drawn.
        let plain = Report::new(settings(3), "c".into(), builtin_arms(), all, 1.0);
        assert!(!dose::dose_response_png(&dir.join("none.png"), &plain).unwrap());
        assert!(!dir.join("none.png").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn report_of_hand_made_numbers() {
        let control = [0.90, 0.91, 0.92, 0.93, 0.94];
        let mut all = runs("baseline", &[0.8; 5]);
        for c in arms::CONTROLS {
            all.extend(runs(c, &control));
        }
        // +1 pp ± 0.07 on every seed: better than all four controls.
        all.extend(runs("label-free", &[0.91, 0.921, 0.929, 0.94, 0.951]));
        // Equal to the controls on every seed: equivalent.
        all.extend(runs("label-guided", &control));
        // +1 pp on 4 seeds, −1 pp on one (the old ⌈0.8·n⌉ rule's "beats"): inconclusive.
        all.extend(runs(
            "label-guided-noise-grad",
            &[0.91, 0.92, 0.93, 0.94, 0.93],
        ));
        let r = Report::new(
            settings(5),
            "denoiserep compare …".into(),
            builtin_arms(),
            all,
            9.0,
        );
        let ng = r
            .paired_of("label-guided-noise-grad", "null-control", "map")
            .unwrap();
        assert_eq!((ng.better, ng.worse, ng.tied, ng.n), (4, 1, 0, 5));
        assert!((ng.mean.unwrap() - 0.006).abs() < 1e-12);
        // diffs +1, +1, +1, +1, −1 pp: s_d = √(0.00032 / 4) = 0.0089443, so
        // 0.006 ± t(0.975, 4) · s_d / √5 = 0.006 ± 2.7764451 · 0.004.
        let half = 2.776_445_1 * 0.004;
        assert!((ng.ci_low.unwrap() - (0.006 - half)).abs() < 1e-8);
        assert!((ng.ci_high.unwrap() - (0.006 + half)).abs() < 1e-8);
        assert_eq!((ng.verdict, ng.margin), (Verdict::Inconclusive, 0.002));
        let lg = r
            .paired_of("label-guided", "baseline-more", "top1")
            .unwrap();
        assert_eq!((lg.better, lg.worse, lg.tied), (0, 0, 5));
        assert_eq!(lg.verdict, Verdict::Equivalent);
        let lf = r
            .paired_of("label-free", "penalty-control", "rank1")
            .unwrap();
        assert_eq!(lf.verdict, Verdict::Better);
        let verdict = |arm: &str| {
            r.verdicts
                .iter()
                .filter(|v| v.arm == arm)
                .map(|v| (v.beats_all_controls, v.vs_null_control))
                .collect::<Vec<_>>()
        };
        assert_eq!(verdict("label-free"), [(true, Verdict::Better); 5]);
        assert_eq!(verdict("label-guided"), [(false, Verdict::Equivalent); 5]);
        assert_eq!(
            verdict("label-guided-noise-grad"),
            [(false, Verdict::Inconclusive); 5]
        );
        // Primary: the three methods vs the null control on top-1, nothing else.
        let primary: Vec<(&str, &str, &str)> = r
            .paired
            .iter()
            .filter(|e| e.primary)
            .map(|e| (e.arm.as_str(), e.control.as_str(), e.metric.as_str()))
            .collect();
        assert_eq!(
            primary,
            [
                ("label-free", "null-control", "top1"),
                ("label-guided", "null-control", "top1"),
                ("label-guided-noise-grad", "null-control", "top1"),
            ]
        );
        assert_eq!(
            r.verdicts.iter().filter(|v| v.primary).count(),
            3,
            "one primary verdict per method"
        );
        assert_eq!(r.primary.arms.len(), 3);
        assert_eq!(r.confidence, 0.95);
        // Every arm is also paired with the start (a reference outside the verdict).
        let start = r.paired_of("label-guided", "baseline", "top1").unwrap();
        assert!((start.mean.unwrap() - 0.12).abs() < 1e-12);
        assert!(r.paired_of("baseline-more", "baseline", "map").is_some());
        assert!(r
            .paired_of("baseline-more", "null-control", "map")
            .is_none());
        // Corruptions: every arm but the start and the null control against the null control,
        // per corruption, all secondary; the same numbers as the headline metrics here.
        assert_eq!(r.secondary.len(), 12);
        assert_eq!(r.secondary_paired.len(), 6 * 12);
        assert!(r
            .secondary_paired
            .iter()
            .all(|e| !e.primary && e.control == "null-control" && e.arm != "null-control"));
        let blur = r
            .secondary_paired
            .iter()
            .find(|e| e.arm == "label-guided-noise-grad" && e.metric == "blur:2")
            .unwrap();
        assert_eq!(blur.paired, *ng);
        let s = r.summary.iter().find(|a| a.arm == "label-free").unwrap();
        assert!((s.secondary["occlusion:0.5"].mean.unwrap() - 0.9302).abs() < 1e-12);
        let s = r.summary.iter().find(|a| a.arm == "null-control").unwrap();
        assert!((s.metrics["top1"].mean.unwrap() - 0.92).abs() < 1e-12);
        // Sample std of 0.90..0.94 step 0.01: √(0.001/4).
        assert!((s.metrics["top1"].std.unwrap() - 0.00025f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.wall_seconds_mean, Some(3.0));
        let md = markdown(&r);
        for needle in [
            "| null-control (2) | 92.00 ± 1.58 |",
            "## Primary comparison (pre-declared)",
            // Primary table: arm, n, mean, std, CI, t, better/worse, verdict.
            "| label-guided-noise-grad | 5 | +0.60 | 0.89 | [-0.51, +1.71] | 2.776 | 4/1 | inconclusive |",
            "| label-guided | 5 | +0.00 | 0.00 | [+0.00, +0.00] | 2.776 | 0/0 | equivalent |",
            "## Paired differences vs the controls (secondary, percentage points)",
            "| label-free | top-1 (primary) | +1.02 |",
            "| label-free | mAP | +1.02 |",
            "- **label-free**, top-1 (primary: vs null-control): **beats all four controls** — (1) +1.02 better, (2) +1.02 better, (3) +1.02 better, (4) +1.02 better",
            "- **label-guided**, mAP: does not beat all four controls — (1) +0.00 equivalent",
            "| analytic-shrinkage (4) | 92.00 ± 1.58 |",
            "### vs analytic-shrinkage (4)",
            "## Robustness and deployment (secondary)",
            "| arm | gaussian σ=0.5 | salt-pepper p=0.05 | salt-pepper p=0.1 | salt-pepper p=0.2 | occlusion 25 % | occlusion 50 % | blur σ=1 px | blur σ=2 px | feature noise S=0.5 | feature noise S=1 | int8 (core) | int8 − f32 |",
            "| label-free | feature noise S=1 | 5 |",
            "| label-free | 93.02 ± 1.60 | 93.02 ± 1.60 |",
            "| label-guided-noise-grad | salt-pepper p=0.2 | 5 | +0.60 | 0.89 | [-0.51, +1.71] | 2.776 | 4/1 | inconclusive |",
            "| analytic-shrinkage | blur σ=2 px | 5 | +0.00 |",
            "here m = 0.2 pp",
            "10 seeds are the recommended",
        ] {
            assert!(md.contains(needle), "compare.md lacks '{needle}':\n{md}");
        }
        assert!(!md.contains("equals"), "{md}");
    }

    #[test]
    fn corruptions_pair_by_seed_over_the_runs_that_have_them() {
        let mut all = runs("baseline", &[0.8; 3]);
        for c in arms::CONTROLS {
            all.extend(runs(c, &[0.90, 0.91, 0.92]));
        }
        all.extend(runs("label-free", &[0.93, 0.50, 0.95]));
        all.extend(runs("label-guided", &[0.9; 3]));
        // label-free seed 1 and every label-guided-noise-grad run were evaluated before
        // corruptions existed.
        all.iter_mut()
            .filter(|r| (r.arm == "label-free" && r.seed == 1) || r.arm == "label-guided")
            .for_each(|r| r.secondary.clear());
        all.extend(runs("label-guided-noise-grad", &[0.9; 3]));
        all.iter_mut()
            .filter(|r| r.arm == "label-guided-noise-grad")
            .for_each(|r| r.secondary.clear());
        let r = Report::new(settings(3), "c".into(), builtin_arms(), all, 1.0);
        let lf = r
            .secondary_paired
            .iter()
            .find(|e| e.arm == "label-free" && e.metric == "salt-pepper:0.1")
            .unwrap();
        // Seeds 0 and 2 only: +3 pp each (not seed 1's −41 pp headline value).
        assert_eq!(lf.paired.n, 2);
        assert!(lf.paired.diffs.iter().all(|d| (d - 0.03).abs() < 1e-12));
        let s = r.summary.iter().find(|a| a.arm == "label-free").unwrap();
        assert!((s.secondary["blur:1"].mean.unwrap() - 0.94).abs() < 1e-12);
        let none = r
            .secondary_paired
            .iter()
            .find(|e| e.arm == "label-guided" && e.metric == "blur:1")
            .unwrap();
        assert_eq!(
            (none.paired.n, none.paired.verdict),
            (0, Verdict::Inconclusive)
        );
        let md = markdown(&r);
        assert!(
            md.contains("| label-guided | – | – | – | – | – | – | – | – |"),
            "{md}"
        );
        assert!(
            md.contains("| label-guided | blur σ=1 px | 0 | – | – | – | – | 0/0 | inconclusive |"),
            "{md}"
        );
    }

    #[test]
    fn one_seed_gives_no_interval_and_no_verdict_but_inconclusive() {
        let mut all = runs("baseline", &[0.8]);
        for c in arms::CONTROLS {
            all.extend(runs(c, &[0.9]));
        }
        for a in ["label-free", "label-guided", "label-guided-noise-grad"] {
            all.extend(runs(a, &[0.99]));
        }
        let r = Report::new(settings(1), "c".into(), builtin_arms(), all, 1.0);
        assert!(r
            .paired
            .iter()
            .all(|e| e.paired.ci_low.is_none() && e.paired.verdict == Verdict::Inconclusive));
        assert!(r.verdicts.iter().all(|v| !v.beats_all_controls));
        let md = markdown(&r);
        assert!(
            md.contains("| label-free | 1 | +9.00 | – | – | – | 1/0 | inconclusive |"),
            "{md}"
        );
    }
}
