//! `compare.json` and `compare.md`: per-seed results, mean ± std per arm, paired differences
//! against the controls and the verdicts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::arms::{self, Arm, Role};
use super::stats::{self, Paired};
use super::{ArmRun, Settings, METRICS};

/// The verdict rule, as written into both outputs.
pub const RULE: &str = "an arm beats all three controls on a metric when, against each of \
baseline-more (1), null-control (2) and penalty-control (3), the mean paired per-seed difference \
is > 0 and at least ⌈0.8·K⌉ of the K seeds are better (a difference with |d| < 1e-9 is a tie)";

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
}

/// Paired differences `arm − control` of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedEntry {
    pub arm: String,
    pub control: String,
    pub metric: String,
    #[serde(flatten)]
    pub paired: Paired,
}

/// Whether a non-control arm beats all three controls on one metric ([`RULE`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub arm: String,
    pub metric: String,
    pub beats_all_controls: bool,
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
    pub verdicts: Vec<Verdict>,
    pub rule: String,
    /// Wall seconds of this invocation (reused arms cost almost nothing here).
    pub wall_seconds: f64,
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
        let series = |arm: &str, f: fn(&super::HeadlineMetrics) -> f64| -> Vec<f64> {
            settings
                .seeds
                .iter()
                .filter_map(|s| runs.iter().find(|r| r.arm == arm && r.seed == *s))
                .map(|r| f(&r.metrics))
                .collect()
        };
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
                for c in &controls {
                    let p = stats::paired(&series(&a.name, f), &series(c, f));
                    if *c != arms::START {
                        mine.push(p.clone());
                    }
                    paired.push(PairedEntry {
                        arm: a.name.clone(),
                        control: c.to_string(),
                        metric: k.into(),
                        paired: p,
                    });
                }
                if a.role != Role::Control {
                    verdicts.push(Verdict {
                        arm: a.name.clone(),
                        metric: k.into(),
                        beats_all_controls: stats::beats_all(&mine),
                    });
                }
            }
        }
        Self {
            command,
            metrics: METRICS.iter().map(|(k, _, _)| k.to_string()).collect(),
            settings,
            runs,
            summary,
            paired,
            verdicts,
            rule: RULE.into(),
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

/// `+0.12 ± 0.05 (4/1)`: mean ± std in percentage points, then seeds better/worse.
fn pp(p: &Paired) -> String {
    let mean = p.mean.map_or("–".into(), |m| format!("{:+.2}", 100.0 * m));
    let std = p
        .std
        .map_or(String::new(), |s| format!(" ± {:.2}", 100.0 * s));
    format!("{mean}{std} ({}/{})", p.better, p.worse)
}

fn control_number(c: &str) -> usize {
    arms::CONTROLS
        .iter()
        .position(|x| *x == c)
        .map_or(0, |i| i + 1)
}

/// The whole `compare.md`.
pub fn markdown(r: &Report) -> String {
    let s = &r.settings;
    let k = s.seeds.len();
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
         λ {}, t-stride {}, β {}…{} over T = {}. Device {}, threads {}. Wall time of this \
         invocation {:.1} s (arms reused from an earlier invocation count only their loading).\n",
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
        s.lambda,
        s.t_stride,
        s.beta_start,
        s.beta_end,
        s.timesteps,
        s.device,
        s.threads.map_or("libtorch default".into(), |t| t.to_string()),
        r.wall_seconds
    );

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
        "## Mean ± std over {k} seeds (%)\n\nTop-1 on the test split, retrieval mAP and Rank-1 \
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
        "\n## Paired differences vs the controls (percentage points)\n\nPer seed `arm − control`, \
         then mean ± std over seeds; `(b/w)` = seeds better / worse (the rest tied, |d| < 1e-9)."
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
        header(&mut o, "arm");
        for a in &r.summary {
            if r.paired_of(&a.arm, c, "top1").is_none() {
                continue;
            }
            let _ = write!(o, "| {} |", a.arm);
            for (key, _, _) in METRICS {
                let _ = write!(
                    o,
                    " {} |",
                    r.paired_of(&a.arm, c, key).map_or("–".into(), pp)
                );
            }
            o.push('\n');
        }
    }

    let _ = writeln!(
        o,
        "\n## Verdict\n\nRule: {} (here ⌈0.8·{k}⌉ = {}).\n",
        RULE,
        stats::required_better(k)
    );
    for v in &r.verdicts {
        let label = METRICS
            .iter()
            .find(|(key, _, _)| *key == v.metric)
            .map_or(v.metric.as_str(), |(_, l, _)| l);
        let parts: Vec<String> = arms::CONTROLS
            .iter()
            .filter_map(|c| {
                r.paired_of(&v.arm, c, &v.metric).map(|p| {
                    format!(
                        "({}) {} {}",
                        control_number(c),
                        pp(p),
                        if stats::beats(p) { "✓" } else { "✗" }
                    )
                })
            })
            .collect();
        let _ = writeln!(
            o,
            "- **{}**, {label}: {} — {}",
            v.arm,
            if v.beats_all_controls {
                "**beats all three controls**"
            } else {
                "does not beat all three controls"
            },
            parts.join(", ")
        );
    }
    o
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
            lambda: 0.01,
            t_stride: 1,
            beta_start: 1e-4,
            beta_end: 2e-3,
            timesteps: 1000,
            device: "cpu".into(),
            threads: Some(1),
        }
    }

    /// Runs whose every metric is `top1[seed]`.
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
            })
            .collect()
    }

    #[test]
    fn report_of_hand_made_numbers() {
        let control = [0.90, 0.91, 0.92, 0.93, 0.94];
        let mut all = runs("baseline", &[0.8; 5]);
        for c in arms::CONTROLS {
            all.extend(runs(c, &control));
        }
        // +1 pp on 4 seeds, −1 pp on one: mean +0.6 pp, 4/5 better → beats all three.
        all.extend(runs("label-free", &[0.91, 0.92, 0.93, 0.94, 0.93]));
        // Equal to the controls: tied everywhere.
        all.extend(runs("label-guided", &control));
        // 3/5 better with a big mean: not enough seeds.
        all.extend(runs(
            "label-guided-noise-grad",
            &[0.99, 0.99, 0.99, 0.92, 0.93],
        ));
        let arms: Vec<Arm> = std::iter::once(Arm {
            name: "baseline".into(),
            role: Role::Start,
            flags: vec![],
        })
        .chain(arms::builtin())
        .collect();
        let r = Report::new(settings(5), "denoiserep compare …".into(), arms, all, 9.0);
        let lf = r.paired_of("label-free", "null-control", "map").unwrap();
        assert_eq!((lf.better, lf.worse, lf.tied), (4, 1, 0));
        assert!((lf.mean.unwrap() - 0.006).abs() < 1e-12);
        let lg = r
            .paired_of("label-guided", "baseline-more", "top1")
            .unwrap();
        assert_eq!((lg.better, lg.worse, lg.tied), (0, 0, 5));
        let verdict = |arm: &str| {
            r.verdicts
                .iter()
                .filter(|v| v.arm == arm)
                .map(|v| v.beats_all_controls)
                .collect::<Vec<_>>()
        };
        assert_eq!(verdict("label-free"), [true; 5]);
        assert_eq!(verdict("label-guided"), [false; 5]);
        assert_eq!(verdict("label-guided-noise-grad"), [false; 5]);
        // Every arm is also paired with the start (a reference outside the verdict).
        let start = r.paired_of("label-guided", "baseline", "top1").unwrap();
        assert!((start.mean.unwrap() - 0.12).abs() < 1e-12);
        assert!(r.paired_of("baseline-more", "baseline", "map").is_some());
        assert!(r
            .paired_of("baseline-more", "null-control", "map")
            .is_none());
        let s = r.summary.iter().find(|a| a.arm == "null-control").unwrap();
        assert!((s.metrics["top1"].mean.unwrap() - 0.92).abs() < 1e-12);
        // Sample std of 0.90..0.94 step 0.01: √(0.001/4).
        assert!((s.metrics["top1"].std.unwrap() - 0.00025f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.wall_seconds_mean, Some(3.0));
        let md = markdown(&r);
        assert!(md.contains("| null-control (2) | 92.00 ± 1.58 |"), "{md}");
        assert!(md.contains("| label-free | +0.60 ± 0.89 (4/1) |"), "{md}");
        assert!(md.contains("- **label-free**, top-1: **beats all three controls** — (1) +0.60"));
        assert!(md.contains("- **label-guided**, mAP: does not beat all three controls"));
        assert!(md.contains("⌈0.8·5⌉ = 4"));
    }
}
