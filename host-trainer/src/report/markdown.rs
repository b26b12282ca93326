//! `REPORT.md`: the text of the report (see `README.md`, "The main command's output").

use std::fmt::Write;

use super::demo::{Demo, ModelRecord, RunRecord};
use super::machine::{utc, Machine};
use super::{CURVES_PNG, ROBUSTNESS_PNG};

/// The whole report. `generated` is the Unix time the report was written (the date shown when
/// `steps.tsv` does not give the pipeline's start).
pub fn render(demo: &Demo, machine: &Machine, generated: i64) -> String {
    let mut s = String::new();
    header(&mut s, demo, machine, generated);
    main_table(&mut s, demo);
    trainer_table(&mut s, demo);
    plots(&mut s);
    device_ops(&mut s, demo);
    caveats(&mut s, demo);
    steps(&mut s, demo);
    s
}

fn header(s: &mut String, demo: &Demo, machine: &Machine, generated: i64) {
    let (base, dr) = (&demo.runs[0], &demo.runs[1]);
    let data = &base.config.data;
    let device = &demo.models[0].device;
    let device_samples = demo
        .models
        .iter()
        .map(|m| m.device.samples)
        .min()
        .unwrap_or(0);
    let start = demo
        .steps
        .as_ref()
        .and_then(|st| st.iter().map(|x| x.start).min());
    let _ = writeln!(s, "# DenoiseRep on the edge: demo report\n");
    let _ = writeln!(
        s,
        "`scripts/demo.sh` trained a baseline `{arch}` on `{data}`, then DenoiseRep \
         (`{regime}`) from it; fused both and exported each as f32 and int8; evaluated the four \
         model files on the host through `denoiserep-core`; ran them on the emulated Cortex-M4F \
         ({board}) and compared the device's outputs with the host's byte for byte.\n",
        arch = base.config.arch.spec,
        data = base.config.train.data,
        regime = dr.config.train.regime.name(),
        board = device.board,
    );
    if let (Some(rb), Some(rd)) = (demo.runs.get(2), demo.runs.get(3)) {
        let _ = writeln!(
            s,
            "The same pipeline ran for a residual CNN, `{}` (baseline, then DenoiseRep `{}` from \
             it; BatchNorm folded into the convolutions at export, after the denoisers).\n",
            rb.config.arch.spec,
            rd.config.train.regime.name(),
        );
    }
    let _ = writeln!(s, "| | |\n|---|---|");
    let date = match start {
        Some(t) => format!("{} (pipeline start)", utc(t)),
        None => format!("{} (report written; no `steps.tsv`)", utc(generated)),
    };
    let _ = writeln!(s, "| date | {date} |");
    let _ = writeln!(s, "| machine | {} |", machine.describe());
    let total = demo.steps.as_ref().and_then(|st| {
        let first = st.iter().map(|x| x.start).min()?;
        let end = st
            .iter()
            .map(|x| x.start as f64 + x.seconds)
            .fold(f64::NEG_INFINITY, f64::max);
        Some(end - first as f64)
    });
    let _ = match total {
        Some(t) => writeln!(
            s,
            "| pipeline time | {t:.0} s ({:.1} min) from setup to the last device run, build included (steps below) |",
            t / 60.0
        ),
        None => writeln!(s, "| pipeline time | not recorded (no `steps.tsv`) |"),
    };
    let [c, h, w] = data.shape;
    let _ = writeln!(
        s,
        "| data | `{}`: {} train / {} test samples of {c}×{h}×{w}, {} classes (split seed {}) |",
        data.name,
        thousands(data.n_train as u64),
        thousands(data.n_test as u64),
        data.num_classes,
        base.config.train.data_seed
    );
    let _ = writeln!(
        s,
        "| device | {} (QEMU), counts in emulated {}, {} test samples per model |",
        device.board,
        device.unit,
        thousands(device_samples)
    );
    let v = &base.config.versions;
    let _ = writeln!(
        s,
        "| software | denoiserep {}, tch {}, libtorch {}; training on {} |",
        v.denoiserep, v.tch, v.libtorch, base.config.device
    );
    let _ = writeln!(s, "| files | `{}` |\n", demo.dir.display());
}

fn main_table(s: &mut String, demo: &Demo) {
    let unit = &demo.models[0].device.unit;
    let _ = writeln!(s, "## Results\n");
    let _ = writeln!(
        s,
        "| model | top-1 | mAP | Rank-1 | MACs | params | file bytes | arena bytes | device {unit} / inference | {unit} / MAC | host == device |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|");
    for m in &demo.models {
        let h = &m.host;
        let fp = &h.footprint;
        let (map, rank1) = match h.retrieval {
            Some(r) => (pct(r.map), pct(r.rank1)),
            None => ("—".into(), "—".into()),
        };
        let per_mac = m.device.per_mac().map_or("—".into(), |x| format!("{x:.2}"));
        let parity = if m.parity.identical() {
            format!("✓ bit-identical, {} samples", m.parity.samples)
        } else {
            format!("✗ {}", m.parity.describe())
        };
        let _ = writeln!(
            s,
            "| {} | {} | {map} | {rank1} | {} | {} | {} | {} | {} | {per_mac} | {parity} |",
            label(demo, m),
            pct(h.test_accuracy),
            thousands(fp.macs),
            thousands(fp.parameters),
            thousands(fp.file_bytes),
            thousands(fp.arena_bytes),
            thousands(m.device.per_inference().round() as u64),
        );
    }
    let m0 = &demo.models[0].host;
    let _ = writeln!(
        s,
        "\nHost columns: `denoiserep infer` through `denoiserep-core` (the code the device runs) on \
         the {} test samples; retrieval: each test sample queries the {} train samples by cosine \
         similarity of the embedding (int8: dequantized). MACs, params, bytes: read from the core \
         model. Device: the firmware's own count over the samples it ran, divided by them (and by \
         their MACs); host == device compares the logits and embeddings of those samples bit for bit.\n",
        thousands(m0.samples as u64),
        thousands(m0.gallery_samples as u64),
    );
    let overheads: Vec<_> = demo.models.iter().filter(|m| m.run == 1).collect();
    let line = overheads
        .iter()
        .map(|m| {
            let d = &m.export.denoiserep_overhead;
            format!(
                "{}: {:+} parameters, {:+} MACs, {:+} file bytes, {:+} arena bytes",
                m.precision, d.parameters, d.macs, d.file_bytes, d.arena_bytes
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let _ = writeln!(
        s,
        "**DenoiseRep overhead after fusion** (the fused model vs the same run's backbone without \
         its denoisers, exported the same way; `{}.json`): {line}.\n",
        overheads
            .iter()
            .map(|m| m.stem.as_str())
            .collect::<Vec<_>>()
            .join(".json`, `")
    );
}

fn trainer_table(s: &mut String, demo: &Demo) {
    let _ = writeln!(
        s,
        "## The trainer's own numbers (tch, fused model, float)\n"
    );
    let _ = writeln!(
        s,
        "| run | regime | epochs | training s | top-1 | mAP | Rank-1 | top-1 at σ = 0.1 | top-1 at σ = 0.3 |"
    );
    let _ = writeln!(s, "|---|---|---|--:|--:|--:|--:|--:|--:|");
    for run in &demo.runs {
        let m = &run.metrics;
        let train_s: f64 = m.curve.iter().map(|r| r.seconds).sum();
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {train_s:.1} | {} | {} | {} | {} | {} |",
            run.label,
            run.config.train.regime.name(),
            epochs(run),
            pct(m.test_accuracy),
            pct(m.retrieval_map),
            pct(m.retrieval_rank1),
            noise(run, 0.1),
            noise(run, 0.3),
        );
    }
    let f32_dr = demo
        .models
        .iter()
        .find(|m| m.run == 1 && m.precision == "f32");
    if let Some(m) = f32_dr {
        let tch = demo.runs[1].metrics.test_accuracy;
        let _ = writeln!(
            s,
            "\nσ: Gaussian noise added to the raw inputs (pixels in [0, 1]), the trainer's fixed \
             protocol (all levels in `robustness.png`). DenoiseRep f32 through the core: {} vs {} \
             in the trainer (Δ {:+.2} points; the same fused function, float summation order \
             differs).",
            pct(m.host.test_accuracy),
            pct(tch),
            100.0 * (m.host.test_accuracy - tch)
        );
    }
    let _ = writeln!(s);
}

fn plots(s: &mut String) {
    let _ = writeln!(s, "## Plots\n");
    let _ = writeln!(
        s,
        "[`{CURVES_PNG}`]({CURVES_PNG}): losses and accuracy per epoch, the baseline's epochs \
         then DenoiseRep's (shaded by phase: `A` trains the denoisers, `B` the backbone through \
         the fused weights).\n\n![training curves]({CURVES_PNG})\n"
    );
    let _ = writeln!(
        s,
        "[`{ROBUSTNESS_PNG}`]({ROBUSTNESS_PNG}): top-1 vs input-noise σ and, when the runs \
         have them, under the corruptions of `eval` (bars), baseline vs DenoiseRep (trainer, fused \
         model).\n\n![robustness]({ROBUSTNESS_PNG})\n"
    );
}

fn device_ops(s: &mut String, demo: &Demo) {
    let unit = &demo.models[0].device.unit;
    let _ = writeln!(s, "## Device, per op\n");
    let _ = writeln!(
        s,
        "Mean per inference over the device samples (op 0 includes the input normalization \
         and, for int8, its quantization).\n"
    );
    let _ = writeln!(
        s,
        "| model | op | kind | MACs | {unit} | {unit} / MAC |\n|---|--:|---|--:|--:|--:|"
    );
    for m in &demo.models {
        let n = m.device.samples as f64;
        for l in &m.device.ops {
            let per_mac = if l.macs > 0 {
                format!("{:.2}", l.count as f64 / l.macs as f64)
            } else {
                "—".into()
            };
            let _ = writeln!(
                s,
                "| {} | {} | `{}` | {} | {} | {per_mac} |",
                label(demo, m),
                l.index,
                l.kind,
                thousands((l.macs as f64 / n).round() as u64),
                thousands((l.count as f64 / n).round() as u64),
            );
        }
    }
    let _ = writeln!(s);
}

fn caveats(s: &mut String, demo: &Demo) {
    let (base, dr) = (&demo.runs[0], &demo.runs[1]);
    let count = |run: &RunRecord, phase: &str| {
        run.metrics
            .curve
            .iter()
            .filter(|r| r.phase == phase)
            .count()
    };
    let base_epochs = base.metrics.curve.len();
    let (a, b) = (count(dr, "A"), count(dr, "B"));
    let _ = writeln!(s, "## What this does and does not show\n");
    let _ = writeln!(
        s,
        "- **One seed** (`--seed {}`): differences of a few tenths of a point between rows are \
         within seed-to-seed variation.",
        base.config.train.seed
    );
    let _ = writeln!(
        s,
        "- **Not an equal budget.** DenoiseRep starts from the baseline's weights and trains \
         {a} more epoch(s) of denoisers (phase A) and {b} more epoch(s) of the backbone \
         (phase B): its backbone saw {} epochs, the baseline's {base_epochs}. A difference \
         between the baseline and DenoiseRep rows includes those extra epochs, not only the \
         denoisers.",
        base_epochs + b
    );
    let _ = writeln!(
        s,
        "- **The controlled comparison** (equal budget, same data order, a null control that \
         trains the backbone for exactly DenoiseRep's phase-B epochs, a penalty control, several \
         seeds, paired differences) is `denoiserep compare`; its results are in \
         `docs/results.md`."
    );
    let _ = writeln!(
        s,
        "- **What this does show:** after fusion DenoiseRep costs nothing at inference (the \
         overhead line), int8 vs f32 accuracy through the real inference code, and that the \
         device computes exactly what the host computes."
    );
    let _ = writeln!(
        s,
        "- Device counts are QEMU's emulated {} (`-icount shift=0`), not Cortex-M4 cycles: they \
         rank kernels and track regressions; real silicon adds pipeline and flash wait states.\n",
        demo.models[0].device.unit
    );
}

fn steps(s: &mut String, demo: &Demo) {
    if let Some(steps) = &demo.steps {
        let _ = writeln!(s, "## Steps\n\n| step | seconds |\n|---|--:|");
        for st in steps {
            let _ = writeln!(s, "| {} | {:.1} |", st.name, st.seconds);
        }
        let _ = writeln!(s);
    }
    if let Some(cmds) = &demo.commands {
        let _ = writeln!(s, "## Commands\n\n```sh");
        for c in cmds {
            let _ = writeln!(s, "{c}");
        }
        let _ = writeln!(s, "```");
    }
}

fn label(demo: &Demo, m: &ModelRecord) -> String {
    format!("{} {}", demo.runs[m.run].label, m.precision)
}

/// `baseline`: "5"; label-guided: "6 (3 A + 3 B)".
fn epochs(run: &RunRecord) -> String {
    let c = &run.metrics.curve;
    let mut phases: Vec<(String, usize)> = Vec::new();
    for r in c {
        match phases.iter_mut().find(|(p, _)| *p == r.phase) {
            Some((_, n)) => *n += 1,
            None => phases.push((r.phase.clone(), 1)),
        }
    }
    if phases.len() <= 1 {
        return c.len().to_string();
    }
    let parts: Vec<String> = phases.iter().map(|(p, n)| format!("{n} {p}")).collect();
    format!("{} ({})", c.len(), parts.join(" + "))
}

/// Top-1 at noise level `sigma` from the run's metrics, or "—".
fn noise(run: &RunRecord, sigma: f32) -> String {
    run.metrics
        .noise_robustness
        .iter()
        .find(|p| (p.sigma - sigma).abs() < 1e-6)
        .map_or("—".into(), |p| pct(p.accuracy))
}

/// `0.9625` → `96.25%`.
fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(234_752), "234,752");
        assert_eq!(thousands(1_462_440), "1,462,440");
        assert_eq!(pct(0.9625), "96.25%");
    }
}
