//! `denoiserep compare` end to end on synthetic data, and the label-guided epoch schedule of the
//! null control.

mod common;

use common::{run, stderr, TempDir, BIN, DATA};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use denoiserep_trainer::arch::Arch;
use denoiserep_trainer::data::{synthetic, Normalization, SyntheticSpec};
use denoiserep_trainer::model::{DenoiseSpec, Model};
use denoiserep_trainer::schedule::ScheduleSpec;
use denoiserep_trainer::train::{
    backbone_epochs, EpochSchedule, LrSchedule, Regime, TrainConfig, Trainer,
};
use serde_json::Value;
use tch::{Device, Tensor};

const ARMS: [&str; 9] = [
    "baseline",
    "baseline-more",
    "null-control",
    "penalty-control",
    "analytic-shrinkage",
    "label-free",
    "label-guided",
    "label-guided-noise-grad",
    "lg-t2",
];
const METRICS: [&str; 5] = ["top1", "map", "rank1", "robust_0_1", "robust_0_3"];

fn ok(args: &[&str]) -> Output {
    let o = run(args);
    assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
    o
}

/// Runs and expects exit code 2 with one error line containing `needle`.
fn fails(args: &[&str], needle: &str) -> String {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains("denoiserep: error: "), "{err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected '{needle}' in: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn compare_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "compare",
        "--data",
        DATA,
        "--arch",
        "mlp:16",
        "--seeds",
        "2",
        "--epochs",
        "1",
        "--extra-epochs",
        "2",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--variant",
        "lg-t2=--regime label-guided --t-stride 2",
        "--out",
        out,
    ];
    v.extend_from_slice(extra);
    v
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn compare_writes_every_arm_and_statistics_and_reuses_them() {
    let tmp = TempDir::new("full");
    let out = tmp.path("cmp");
    let out_s = out.to_str().unwrap();
    let o = ok(&compare_args(out_s, &[]));
    let err = stderr(&o);
    assert_eq!(count(&err, ": trained in "), 18, "{err}");

    // Layout: DIR/seed-S/ARM complete runs, plus the three outputs.
    for seed in [0, 1] {
        for arm in ARMS {
            let d = out.join(format!("seed-{seed}")).join(arm);
            for f in [
                "config.json",
                "metrics.json",
                "model.safetensors",
                "wall.json",
            ] {
                assert!(d.join(f).is_file(), "missing {}", d.join(f).display());
            }
        }
    }
    for f in ["compare.json", "compare.md", "compare.png"] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let png = image::open(out.join("compare.png")).unwrap();
    assert!(png.width() >= 1000 && png.height() >= 600);

    let c = json(&out.join("compare.json"));
    assert_eq!(c["settings"]["arch"], "mlp:16");
    assert_eq!(c["settings"]["phase_epochs"], 1);
    assert_eq!(c["settings"]["seeds"], serde_json::json!([0, 1]));
    assert!(c["command"]
        .as_str()
        .unwrap()
        .starts_with("denoiserep compare --data"));
    assert!(c["command"]
        .as_str()
        .unwrap()
        .contains("'lg-t2=--regime label-guided --t-stride 2'"));
    let runs = c["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 18);
    let run_of = |arm: &str, seed: u64| {
        runs.iter()
            .find(|r| r["arm"] == arm && r["seed"] == seed)
            .unwrap_or_else(|| panic!("no run {arm} seed {seed}"))
    };
    // Every run's metrics are its metrics.json's; epochs and backbone epochs per arm.
    let budget = [
        ("baseline", 1, 1),
        ("baseline-more", 2, 2),
        ("null-control", 2, 1),
        ("penalty-control", 2, 1),
        ("analytic-shrinkage", 2, 0),
        ("label-free", 2, 0),
        ("label-guided", 2, 1),
        ("label-guided-noise-grad", 2, 1),
        ("lg-t2", 2, 1),
    ];
    for seed in [0u64, 1] {
        for (arm, epochs, backbone) in budget {
            let r = run_of(arm, seed);
            let m = json(&out.join(format!("seed-{seed}/{arm}/metrics.json")));
            assert_eq!(r["metrics"]["top1"], m["test_accuracy"], "{arm}");
            assert_eq!(r["metrics"]["map"], m["retrieval_map"], "{arm}");
            assert_eq!(r["metrics"]["rank1"], m["retrieval_rank1"], "{arm}");
            assert_eq!(
                r["metrics"]["robust_0_3"],
                m["noise_robustness"][3]["accuracy"]
            );
            assert_eq!(r["epochs"], epochs, "{arm}");
            assert_eq!(r["backbone_epochs"], backbone, "{arm}");
            assert!(r["wall_seconds"].as_f64().unwrap() > 0.0);
            assert_eq!(r["outcome"], "trained");
            // Every corruption of metrics.json, by its kind:severity key.
            let cs = m["corruptions"].as_array().unwrap();
            assert_eq!(cs.len(), 8, "{arm}");
            for p in cs {
                let key = format!(
                    "{}:{}",
                    p["kind"].as_str().unwrap(),
                    p["severity"].as_f64().unwrap() as f32
                );
                assert_eq!(r["secondary"][&key], p["accuracy"], "{arm} {key}");
            }
            assert_eq!(cs[0]["accuracy"], m["noise_robustness"][4]["accuracy"]);
            // Feature noise at S = 0.5 and 1 from metrics.json; int8 and its drop from the
            // exported models, cached beside the run.
            let fnoise = m["feature_noise"].as_array().unwrap();
            assert_eq!(fnoise.len(), 2, "{arm}");
            for (p, s) in fnoise.iter().zip(["0.5", "1"]) {
                assert_eq!(r["secondary"][format!("feature-noise:{s}")], p["accuracy"]);
            }
            let dev = json(&out.join(format!("seed-{seed}/{arm}/device-accuracy.json")));
            assert_eq!(r["secondary"]["int8"], dev["int8_accuracy"], "{arm}");
            let drop =
                dev["int8_accuracy"].as_f64().unwrap() - dev["f32_accuracy"].as_f64().unwrap();
            assert!((r["secondary"]["int8-drop"].as_f64().unwrap() - drop).abs() < 1e-12);
            // The core's f32 model computes what the trainer's fused model computes, up to a
            // rounding-level difference that may flip at most one near-tie argmax.
            let n = dev["samples"].as_f64().unwrap();
            let gap = (dev["f32_accuracy"].as_f64().unwrap()
                - m["test_accuracy"].as_f64().unwrap())
            .abs();
            assert!(
                gap <= 1.0 / n + 1e-12,
                "{arm}: core f32 vs trainer top-1 differ by {gap}"
            );
        }
        // The analytic-shrinkage control: closed-form denoisers after one fit epoch (the other
        // is skipped), the backbone exactly the seed's baseline.
        let shrink = json(&out.join(format!("seed-{seed}/analytic-shrinkage/metrics.json")));
        assert_eq!(shrink["curve"].as_array().unwrap().len(), 1);
        assert!(!shrink["denoisers"].as_array().unwrap().is_empty());
        let cfg = json(&out.join(format!("seed-{seed}/analytic-shrinkage/config.json")));
        assert_eq!(
            (&cfg["train"]["regime"], &cfg["train"]["denoiser_fit"]),
            (&Value::from("label-free"), &Value::from("closed-form"))
        );
        let tensors = |arm: &str| -> HashMap<String, Tensor> {
            Tensor::read_safetensors(out.join(format!("seed-{seed}/{arm}/model.safetensors")))
                .unwrap()
                .into_iter()
                .collect()
        };
        let (base, shr) = (tensors("baseline"), tensors("analytic-shrinkage"));
        assert!(!base.is_empty());
        for (name, t) in &base {
            assert!(shr[name].equal(t), "analytic-shrinkage {name} differs");
        }
        assert!(shr.keys().any(|k| k.starts_with("denoisers.")));
        // The null control trains only label-guided's B epoch (epoch 2 of 2) with CE.
        let null = json(&out.join(format!("seed-{seed}/null-control/metrics.json")));
        let curve = null["curve"].as_array().unwrap();
        assert_eq!(curve.len(), 1);
        assert_eq!(
            (curve[0]["epoch"].as_u64(), curve[0]["phase"].as_str()),
            (Some(2), Some("baseline"))
        );
        let cfg = json(&out.join(format!("seed-{seed}/null-control/config.json")));
        assert_eq!(cfg["train"]["schedule"], "label-guided");
        assert_eq!(cfg["train"]["regime"], "baseline");
        let lg = json(&out.join(format!("seed-{seed}/label-guided/metrics.json")));
        let phases: Vec<&str> = lg["curve"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["phase"].as_str().unwrap())
            .collect();
        assert_eq!(phases, ["A", "B"]);
        let v = json(&out.join(format!("seed-{seed}/lg-t2/config.json")));
        assert_eq!(v["train"]["denoise"]["t_stride"], 2);
    }

    // Summary: mean and sample std over the two seeds, recomputed here.
    let summary = c["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 9);
    for s in summary {
        let arm = s["arm"].as_str().unwrap();
        for k in METRICS {
            let (a, b) = (
                run_of(arm, 0)["metrics"][k].as_f64().unwrap(),
                run_of(arm, 1)["metrics"][k].as_f64().unwrap(),
            );
            let mean = s["metrics"][k]["mean"].as_f64().unwrap();
            let std = s["metrics"][k]["std"].as_f64().unwrap();
            assert!((mean - (a + b) / 2.0).abs() < 1e-12, "{arm} {k}");
            assert!(
                (std - (a - b).abs() / 2f64.sqrt()).abs() < 1e-12,
                "{arm} {k}"
            );
        }
    }
    // Paired differences of every non-control arm against the four controls, per metric.
    let paired = c["paired"].as_array().unwrap();
    for arm in [
        "label-free",
        "label-guided",
        "label-guided-noise-grad",
        "lg-t2",
    ] {
        for ctl in [
            "baseline-more",
            "null-control",
            "penalty-control",
            "analytic-shrinkage",
        ] {
            for k in METRICS {
                let p = paired
                    .iter()
                    .find(|p| p["arm"] == arm && p["control"] == ctl && p["metric"] == k)
                    .unwrap_or_else(|| panic!("no pair {arm} {ctl} {k}"));
                let d: Vec<f64> = [0u64, 1]
                    .iter()
                    .map(|&s| {
                        run_of(arm, s)["metrics"][k].as_f64().unwrap()
                            - run_of(ctl, s)["metrics"][k].as_f64().unwrap()
                    })
                    .collect();
                // (serde_json's default float parsing may differ in the last bit.)
                let got: Vec<f64> = p["diffs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                assert_eq!(got.len(), 2);
                assert!(
                    got.iter().zip(&d).all(|(a, b)| (a - b).abs() < 1e-12),
                    "{got:?} {d:?}"
                );
                let n = |key: &str| p[key].as_u64().unwrap() as usize;
                assert_eq!(n("better") + n("worse") + n("tied"), 2);
                assert_eq!(n("better"), d.iter().filter(|x| **x >= 1e-9).count());
                let mean = (d[0] + d[1]) / 2.0;
                assert!((p["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
                // 95 % interval over 2 seeds: mean ± t(0.975, 1) · s / √2, s = |d0 − d1| / √2.
                assert_eq!(p["n"], 2);
                assert!((p["t_quantile"].as_f64().unwrap() - 12.706_204_7).abs() < 1e-6);
                let half = 12.706_204_7 * (d[0] - d[1]).abs() / 2.0;
                let (lo, hi) = (
                    p["ci_low"].as_f64().unwrap(),
                    p["ci_high"].as_f64().unwrap(),
                );
                assert!(
                    (lo - (mean - half)).abs() < 1e-8 && (hi - (mean + half)).abs() < 1e-8,
                    "{arm} {ctl} {k}: [{lo}, {hi}], want {mean} ± {half}, d {d:?}"
                );
                assert_eq!(p["margin"], 0.002);
                let verdict = if -0.002 < lo && hi < 0.002 {
                    "equivalent"
                } else if lo > 0.0 {
                    "better"
                } else if hi < 0.0 {
                    "worse"
                } else {
                    "inconclusive"
                };
                assert_eq!(p["verdict"], verdict, "{arm} {ctl} {k}");
                assert_eq!(
                    p["primary"],
                    ctl == "null-control" && k == "top1",
                    "{arm} {ctl} {k}"
                );
            }
        }
    }
    // The penalty control is also paired with the two controls before it, analytic-shrinkage
    // with the three (and the start).
    assert!(paired
        .iter()
        .any(|p| p["arm"] == "penalty-control" && p["control"] == "null-control"));
    assert_eq!(
        paired
            .iter()
            .filter(|p| p["arm"] == "analytic-shrinkage")
            .count(),
        4 * 5
    );
    // Secondary: 8 corruptions, 2 feature-noise levels, int8 and its drop; every arm after the
    // start but the null control, minus the null control, per metric, paired by seed.
    assert_eq!(c["secondary"].as_array().unwrap().len(), 12);
    let cp = c["secondary_paired"].as_array().unwrap();
    assert_eq!(cp.len(), 7 * 12);
    for p in cp {
        let (arm, key) = (p["arm"].as_str().unwrap(), p["metric"].as_str().unwrap());
        assert_eq!(p["control"], "null-control");
        assert_eq!(p["primary"], false);
        let d: Vec<f64> = [0u64, 1]
            .iter()
            .map(|&s| {
                run_of(arm, s)["secondary"][key].as_f64().unwrap()
                    - run_of("null-control", s)["secondary"][key]
                        .as_f64()
                        .unwrap()
            })
            .collect();
        let got: Vec<f64> = p["diffs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert!(
            got.len() == 2 && got.iter().zip(&d).all(|(a, b)| (a - b).abs() < 1e-12),
            "{arm} {key}: {got:?} {d:?}"
        );
    }
    // The first control is paired only with the start (a reference outside the verdict).
    let first: Vec<&Value> = paired
        .iter()
        .filter(|p| p["arm"] == "baseline-more")
        .collect();
    assert_eq!(first.len(), 5);
    assert!(first.iter().all(|p| p["control"] == "baseline"));
    assert_eq!(c["verdicts"].as_array().unwrap().len(), 4 * 5);
    // Only the DenoiseRep arms' top-1 against the null control is primary.
    assert_eq!(
        paired.iter().filter(|p| p["primary"] == true).count(),
        4,
        "{paired:?}"
    );
    assert_eq!(c["primary"]["control"], "null-control");
    assert_eq!(c["primary"]["metric"], "top1");
    assert_eq!(c["confidence"], 0.95);
    assert_eq!(c["settings"]["equivalence_margin_pp"], 0.2);
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    for needle in [
        "## Mean ± std over 2 seeds (%)",
        "| null-control (2) |",
        "### vs penalty-control (3)",
        "### vs analytic-shrinkage (4)",
        "| analytic-shrinkage (4) |",
        "## Robustness and deployment (secondary)",
        "| lg-t2 | int8 − f32 | 2 | ",
        "| lg-t2 | occlusion 50 % | 2 | ",
        "### vs baseline (the start",
        "## Primary comparison (pre-declared)",
        "| lg-t2 | 2 | ",
        "Rule: for each paired difference d_s = arm_s − control_s",
        "here m = 0.2 pp",
        "(secondary, percentage points)",
        "| lg-t2 | top-1 (primary) |",
        "- **lg-t2**, mAP:",
        "denoiserep compare --data",
    ] {
        assert!(md.contains(needle), "compare.md lacks '{needle}':\n{md}");
    }

    // Same command again: every arm reused, same numbers.
    let o = ok(&compare_args(out_s, &[]));
    let err = stderr(&o);
    assert_eq!(count(&err, ": reused"), 18, "{err}");
    assert_eq!(count(&err, "training"), 0, "{err}");
    let again = json(&out.join("compare.json"));
    for key in ["summary", "paired", "verdicts", "secondary_paired"] {
        assert_eq!(again[key], c[key], "{key}");
    }
    for (a, b) in again["runs"].as_array().unwrap().iter().zip(runs) {
        assert_eq!(a["outcome"], "reused");
        assert_eq!(
            (&a["metrics"], &a["wall_seconds"]),
            (&b["metrics"], &b["wall_seconds"])
        );
    }

    // A new variant trains only itself; other settings are refused without --force.
    let o = ok(&compare_args(
        out_s,
        &[
            "--variant",
            "lg-l1=--regime label-guided --lambda 1 --noise-grad",
        ],
    ));
    let err = stderr(&o);
    assert_eq!(count(&err, ": trained in "), 2, "{err}");
    assert_eq!(count(&err, ": reused"), 18, "{err}");
    let e = fails(
        &compare_args(out_s, &["--lambda", "0.5"]),
        "different settings (lambda)",
    );
    assert!(
        e.contains("seed-0/baseline") && e.contains("--force"),
        "{e}"
    );
}

#[test]
fn interrupted_arm_is_resumed() {
    let tmp = TempDir::new("resume");
    let out = tmp.path("cmp");
    let mut args = compare_args(out.to_str().unwrap(), &[]);
    args[6] = "1"; // --seeds 1
                   // The hook stops the first run that finishes its epoch 2: baseline-more (the baseline has 1).
    let o = Command::new(BIN)
        .args(&args)
        .env(denoiserep_trainer::run::ABORT_ENV, "2")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let more = out.join("seed-0/baseline-more");
    assert!(more.join("checkpoint.safetensors").is_file() && !more.join("metrics.json").exists());
    let o = ok(&args);
    let err = stderr(&o);
    assert!(err.contains("seed 0 baseline: reused"), "{err}");
    assert!(err.contains("seed 0 baseline-more: resuming"), "{err}");
    assert!(more.join("metrics.json").is_file());
    assert!(!more.join("checkpoint.safetensors").exists());
}

#[test]
fn bad_compare_options_exit_2_naming_the_problem() {
    let tmp = TempDir::new("bad");
    let out = tmp.path("cmp");
    let o = out.to_str().unwrap();
    let e = fails(
        &compare_args(o, &["--variant", "oops=--regime label-guided --out /tmp/x"]),
        "--variant 'oops': --out cannot be set per arm",
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    fails(
        &compare_args(o, &["--variant", "typo=--regime label-guided --t-strid 4"]),
        "variant 'typo': unexpected argument '--t-strid'",
    );
    fails(
        &compare_args(o, &["--variant", "neg=--regime label-guided --lambda -1"]),
        "variant 'neg'",
    );
    fails(
        &compare_args(o, &["--variant", "lg-t2=--regime label-free"]),
        "--variant 'lg-t2': given twice",
    );
    let mut args = compare_args(o, &[]);
    args[6] = "0";
    fails(&args, "--seeds 0: must be a whole number from 1 to");
    let mut args = compare_args(o, &[]);
    args[10] = "0";
    fails(&args, "--extra-epochs 0: must be a whole number from 1 to");
    let mut args = compare_args(o, &[]);
    args[10] = "1";
    fails(&args, "label-guided needs 1 ≤ phase < extra epochs");
    // Nothing was trained or created for any of them.
    assert!(!out.exists());
}

fn tiny_trainer(epochs: usize) -> Trainer {
    let data = synthetic(&SyntheticSpec::default(), 1).unwrap();
    tch::manual_seed(5);
    let arch = Arch::parse("mlp:16,8", data.shape, data.num_classes).unwrap();
    let model = Model::new(
        arch,
        Normalization::from_split(&data.train, data.shape),
        Device::Cpu,
    );
    let cfg = TrainConfig {
        data: "synthetic".into(),
        test_fraction: 0.2,
        data_dir: "data".into(),
        arch: "mlp:16,8".into(),
        regime: Regime::Baseline,
        epochs,
        batch_size: 64,
        labels: None,
        lr: 1e-2,
        lr_schedule: LrSchedule::Cosine,
        lambda: 0.01,
        phase_epochs: 2,
        schedule: EpochSchedule::LabelGuided,
        denoise: DenoiseSpec {
            schedule: ScheduleSpec::default(),
            t_stride: 1,
            t_list: None,
            fuse_noise: None,
        },
        denoiser_fit: Default::default(),
        denoiser_lr: None,
        denoiser_precondition: Default::default(),
        noise_grad: false,
        seed: 3,
        data_seed: 3,
        init: None,
        import: None,
        normal_classes: None,
        augment: Default::default(),
        weight_decay: 0.0,
    };
    let mut t = Trainer::new(cfg, model, &data);
    t.progress = false;
    t
}

fn backbone(t: &Trainer) -> HashMap<String, Tensor> {
    t.model
        .backbone_params()
        .into_iter()
        .map(|(n, p)| (n, p.detach().copy()))
        .collect()
}

fn same(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> bool {
    a.len() == b.len() && a.iter().all(|(n, t)| b[n].equal(t))
}

#[test]
fn label_guided_schedule_skips_a_epochs_without_touching_the_backbone() {
    // Phases of 2 over 6 epochs: A A B B A A → epochs 3 and 4 (1-based) train.
    let mut t = tiny_trainer(6);
    assert_eq!(backbone_epochs(&t.cfg), 2);
    for e in 0..6 {
        let before = backbone(&t);
        let r = t.run_epoch(e).unwrap();
        let trains = e == 2 || e == 3;
        assert_eq!(r.is_some(), trains, "epoch {e}");
        assert_eq!(same(&before, &backbone(&t)), !trains, "epoch {e}");
        assert_eq!(t.epochs_done, e + 1);
    }
    let epochs: Vec<usize> = t.curve.iter().map(|r| r.epoch).collect();
    assert_eq!(epochs, [3, 4]);
    assert!(t.curve.iter().all(|r| r.phase == "baseline"));
    // Adam stepped only in the two trained epochs (512 train samples / 64 = 8 steps each).
    assert_eq!(t.backbone_opt.steps, 2 * 8);
}

#[test]
fn train_schedule_option_is_checked_and_resumes_exactly() {
    let tmp = TempDir::new("schedule");
    let (a, b) = (tmp.path("a"), tmp.path("b"));
    let args = |out: &Path| -> Vec<String> {
        [
            "train",
            "--device",
            "cpu",
            "--data",
            DATA,
            "--arch",
            "mlp:16",
            "--schedule",
            "label-guided",
            "--phase-epochs",
            "1",
            "--epochs",
            "4",
            "--seed",
            "2",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.to_str().unwrap().to_string()])
        .collect()
    };
    let av = args(&a);
    ok(&av.iter().map(String::as_str).collect::<Vec<_>>());
    let m = json(&a.join("metrics.json"));
    let epochs: Vec<u64> = m["curve"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [2, 4]);
    // Killed right after epoch 3 (a skipped one), then resumed: identical model.
    let bv = args(&b);
    let o = Command::new(BIN)
        .args(&bv)
        .env(denoiserep_trainer::run::ABORT_ENV, "3")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    ok(&[
        "train",
        "--resume",
        "--device",
        "cpu",
        "--out",
        b.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
    let c = tmp.path("c");
    let c = c.to_str().unwrap();
    fails(
        &[
            "train",
            "--device",
            "cpu",
            "--data",
            DATA,
            "--schedule",
            "label-guided",
            "--regime",
            "label-guided",
            "--out",
            c,
        ],
        "--schedule label-guided applies to --regime baseline or penalty-control",
    );
    fails(
        &[
            "train",
            "--device",
            "cpu",
            "--data",
            DATA,
            "--schedule",
            "label-guided",
            "--epochs",
            "2",
            "--phase-epochs",
            "2",
            "--out",
            c,
        ],
        "has no backbone epoch",
    );
}
