//! End-to-end tests of the `denoiserep` binary on synthetic data in temp dirs.

mod common;

use common::{run, stderr, TempDir, BIN, DATA};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use tch::Tensor;

fn ok(args: &[&str]) -> Output {
    let o = run(args);
    assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
    o
}

/// Runs and expects exit code 2 with exactly one error line containing `needle`.
fn fails(args: &[&str], needle: &str) -> String {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.starts_with("denoiserep: error: "), "{err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected '{needle}' in: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    err
}

fn train(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--device",
        "cpu",
        "--data",
        DATA,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

fn metrics(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap()
}

/// Metrics without the wall-clock `seconds` of each curve row.
fn metrics_no_time(dir: &Path) -> serde_json::Value {
    let mut m = metrics(dir);
    for r in m["curve"].as_array_mut().unwrap() {
        r.as_object_mut().unwrap().remove("seconds");
    }
    m
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn baseline_then_label_free_label_guided_penalty_control() {
    let tmp = TempDir::new("regimes");
    let base = tmp.path("base");
    let o = train(&base, &["--epochs", "2", "--arch", "cnn:4/16"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("test accuracy"));
    for f in [
        "config.json",
        "metrics.json",
        "model.safetensors",
        "curves.png",
        "robustness.png",
    ] {
        assert!(base.join(f).is_file(), "missing {f}");
    }
    assert!(!base.join("checkpoint.safetensors").exists());
    let m = metrics(&base);
    for key in ["test_accuracy", "retrieval_map", "retrieval_rank1"] {
        let v = m[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    let sigmas: Vec<f64> = m["noise_robustness"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sigma"].as_f64().unwrap())
        .collect();
    assert_eq!(sigmas.len(), 5);
    // The corruption list: kind, severity, accuracy; gaussian σ = 0.5 is the noise point.
    let corruptions: Vec<(String, f64)> = m["corruptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let a = p["accuracy"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&a), "{p}");
            (
                p["kind"].as_str().unwrap().to_string(),
                p["severity"].as_f64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("gaussian", 0.5),
        ("salt-pepper", 0.05),
        ("salt-pepper", 0.1),
        ("salt-pepper", 0.2),
        ("occlusion", 0.25),
        ("occlusion", 0.5),
        ("blur", 1.0),
        ("blur", 2.0),
    ];
    assert_eq!(corruptions.len(), want.len());
    for ((k, s), (wk, ws)) in corruptions.iter().zip(want) {
        assert!(k == wk && (s - ws).abs() < 1e-6, "{k} {s}");
    }
    assert_eq!(
        m["corruptions"][0]["accuracy"],
        m["noise_robustness"][4]["accuracy"]
    );
    assert_eq!(m["curve"].as_array().unwrap().len(), 2);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(base.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["arch"]["spec"], "cnn:4/16");
    assert_eq!(cfg["train"]["regime"], "baseline");
    assert_eq!(cfg["normalization"]["mean"].as_array().unwrap().len(), 1);
    let bt = tensors(&base.join("model.safetensors"));
    let mut names: Vec<&String> = bt.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "0.bias",
            "0.weight",
            "4.bias",
            "4.weight",
            "6.bias",
            "6.weight",
            "normalization.mean",
            "normalization.std"
        ]
    );
    assert_eq!(bt["0.weight"].size(), [4, 1, 3, 3]);

    let b = base.to_str().unwrap();
    let lf = tmp.path("lf");
    train(
        &lf,
        &["--regime", "label-free", "--init", b, "--epochs", "2"],
    );
    let lt = tensors(&lf.join("model.safetensors"));
    for k in [
        "0.weight", "0.bias", "4.weight", "4.bias", "6.weight", "6.bias",
    ] {
        assert!(lt[k].equal(&bt[k]), "label-free changed {k}");
    }
    for layer in [0, 4, 6] {
        let d = &lt[&format!("denoisers.{layer}.D")];
        assert!(
            d.abs().sum(tch::Kind::Float).double_value(&[]) > 0.0,
            "D of layer {layer} untrained"
        );
    }
    let lcfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lf.join("config.json")).unwrap()).unwrap();
    let ts: Vec<u64> = lcfg["timesteps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["t"].as_u64().unwrap())
        .collect();
    assert_eq!(ts, [3, 2, 1]);

    let lg = tmp.path("lg");
    train(
        &lg,
        &[
            "--regime",
            "label-guided",
            "--init",
            b,
            "--phase-epochs",
            "1",
            "--epochs",
            "3",
        ],
    );
    let phases: Vec<String> = metrics(&lg)["curve"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["phase"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(phases, ["A", "B", "A"]);
    let gt = tensors(&lg.join("model.safetensors"));
    assert!(
        !gt["4.weight"].equal(&bt["4.weight"]),
        "label-guided B did not train W"
    );

    let pc = tmp.path("pc");
    train(
        &pc,
        &[
            "--regime",
            "penalty-control",
            "--init",
            b,
            "--epochs",
            "1",
            "--lambda",
            "0.1",
        ],
    );
    let pt = tensors(&pc.join("model.safetensors"));
    assert!(!pt.keys().any(|k| k.starts_with("denoisers.")));
    assert!(metrics(&pc)["curve"][0]["noise_loss"].as_f64().unwrap() > 0.0);

    // `eval` re-evaluates and rewrites metrics.json with the same numbers and curve.
    let before = metrics(&lg);
    std::fs::remove_file(lg.join("metrics.json")).unwrap();
    ok(&["eval", "--run", lg.to_str().unwrap(), "--device", "cpu"]);
    assert_eq!(metrics(&lg)["test_accuracy"], before["test_accuracy"]);
    assert_eq!(metrics(&lg)["retrieval_map"], before["retrieval_map"]);
    assert_eq!(metrics(&lg)["curve"].as_array().unwrap().len(), 0);
}

#[test]
fn seeded_cpu_runs_are_reproducible_and_resume_is_exact() {
    let tmp = TempDir::new("repro");
    let (a, b, c) = (tmp.path("a"), tmp.path("b"), tmp.path("c"));
    train(&a, &["--epochs", "2", "--seed", "7"]);
    train(&b, &["--epochs", "2", "--seed", "7"]);
    assert_eq!(metrics_no_time(&a), metrics_no_time(&b));
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );

    // Crash after epoch 1 (test hook), then resume: identical to the uninterrupted run.
    let mut args = vec![
        "train", "--device", "cpu", "--data", DATA, "--epochs", "2", "--seed", "7",
    ];
    args.extend(["--out", c.to_str().unwrap()]);
    let o = Command::new(BIN)
        .args(&args)
        .env(denoiserep_trainer::run::ABORT_ENV, "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(c.join("checkpoint.safetensors").is_file() && !c.join("metrics.json").exists());
    fails(&args, "holds an unfinished run; pass --resume");
    ok(&[
        "train",
        "--resume",
        "--device",
        "cpu",
        "--out",
        c.to_str().unwrap(),
    ]);
    assert_eq!(metrics_no_time(&a), metrics_no_time(&c));
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(c.join("model.safetensors")).unwrap()
    );
    let resume_c = [
        "train",
        "--resume",
        "--device",
        "cpu",
        "--out",
        c.to_str().unwrap(),
    ];
    fails(&resume_c, "already complete");
    // A kill between metrics.json and the checkpoint's removal leaves both: --resume cleans up.
    std::fs::copy(
        c.join("model.safetensors"),
        c.join("checkpoint.safetensors"),
    )
    .unwrap();
    let err = fails(&resume_c, "already complete");
    assert!(
        err.contains("removed the leftover checkpoint.safetensors"),
        "{err}"
    );
    assert!(!c.join("checkpoint.safetensors").exists());
}

/// The root cause of a load-dependent CI failure (issue 10): MKL's SGEMM gave different bits at
/// 1 and 2 threads, and with MKL's dynamic threading on, a busy machine changed the thread count
/// mid-run. With strict CNR (`runtime::pin_mkl`) and an explicit thread count the bytes do not
/// depend on the thread count at all. This data set is large enough for MKL to split its GEMMs
/// (the 8×8 one is not): with `MKL_CBWR=""` in the environment this test fails.
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let tmp = TempDir::new("threads");
    let data = "synthetic:1,28,28,10,1024,128";
    let (one, two) = (tmp.path("one"), tmp.path("two"));
    for (dir, t) in [(&one, "1"), (&two, "2")] {
        ok(&[
            "train",
            "--device",
            "cpu",
            "--data",
            data,
            "--epochs",
            "1",
            "--seed",
            "7",
            "--threads",
            t,
            "--out",
            dir.to_str().unwrap(),
        ]);
    }
    assert_eq!(
        std::fs::read(one.join("model.safetensors")).unwrap(),
        std::fs::read(two.join("model.safetensors")).unwrap(),
        "the weights after one epoch differ between --threads 1 and --threads 2"
    );
    assert_eq!(metrics_no_time(&one), metrics_no_time(&two));
}

#[test]
fn complete_runs_need_force() {
    let tmp = TempDir::new("force");
    let a = tmp.path("a");
    train(&a, &["--epochs", "1"]);
    let args = [
        "train",
        "--device",
        "cpu",
        "--data",
        DATA,
        "--epochs",
        "1",
        "--out",
        a.to_str().unwrap(),
    ];
    fails(
        &args,
        "holds a complete run (metrics.json exists); pass --force",
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    ok(&forced);
}

#[test]
fn divergence_stops_with_epoch_and_step() {
    let tmp = TempDir::new("nan");
    let out = tmp.path("nan");
    let args = [
        "train",
        "--device",
        "cpu",
        "--data",
        DATA,
        "--lr",
        "1e30",
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    let err = fails(&args, "training diverged: loss is NaN at epoch 1 step");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!out.join("metrics.json").exists());
}

#[test]
fn bad_input_gets_one_clear_line_and_exit_2() {
    let tmp = TempDir::new("bad");
    let out = tmp.path("x");
    let o = out.to_str().unwrap();
    let base = ["train", "--device", "cpu", "--data", DATA, "--out", o];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    fails(
        &with(&["--regime", "label-free"]),
        "--regime label-free needs a trained backbone: pass --init RUN_DIR (a baseline run) or --import FILE.safetensors",
    );
    fails(
        &with(&["--regime", "penalty-control"]),
        "--regime penalty-control needs a trained backbone",
    );
    fails(
        &with(&["--arch", "mlp:64,x"]),
        "arch 'mlp:64,x': hidden width 2 ('x') is not a positive whole number",
    );
    fails(
        &with(&["--arch", "resnet"]),
        "arch 'resnet': unknown kind 'resnet'",
    );
    fails(&with(&["--arch", "cnn:4,4,4,4"]), "conv block 4");
    fails(
        &with(&["--regime", "label-free", "--init", "/nonexistent/run"]),
        "--init /nonexistent/run: /nonexistent/run: not a run directory",
    );
    fails(
        &with(&["--regime", "label-guided", "--t-stride", "400"]),
        "--t-stride 400 with 3 denoised layers gives timestep 1200",
    );
    fails(
        &with(&["--import", "/nonexistent/w.safetensors"]),
        "/nonexistent/w.safetensors: no such file",
    );
    fails(
        &[
            "train",
            "--device",
            "cpu",
            "--data",
            "nosuchkind:abc",
            "--out",
            o,
        ],
        "nosuchkind",
    );
    let tab = [
        "train",
        "--device",
        "cpu",
        "--data",
        "synthetic:12,1,1,3,60,30",
        "--arch",
        "cnn",
        "--out",
        o,
    ];
    fails(&tab, "cnn needs image inputs");
    assert!(!out.join("metrics.json").exists() && !out.join("config.json").exists());
    fails(
        &["eval", "--run", "/nonexistent/run"],
        "not a run directory",
    );
}

#[test]
fn import_pytorch_sequential_weights() {
    let tmp = TempDir::new("import");
    let base = tmp.path("base");
    train(&base, &["--epochs", "1", "--arch", "mlp:16,8"]);
    // A file as PyTorch would save it: nn.Sequential names only.
    let t = tensors(&base.join("model.safetensors"));
    let only: Vec<(String, Tensor)> = t
        .iter()
        .filter(|(k, _)| !k.starts_with("normalization."))
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect();
    let file = tmp.path("w.safetensors");
    Tensor::write_safetensors(&only, &file).unwrap();
    let f = file.to_str().unwrap();
    let lf = tmp.path("lf");
    train(
        &lf,
        &[
            "--regime",
            "label-free",
            "--import",
            f,
            "--arch",
            "mlp:16,8",
            "--epochs",
            "1",
        ],
    );
    assert!(tensors(&lf.join("model.safetensors"))["3.weight"].equal(&t["3.weight"]));

    // Wrong shape and wrong names are rejected with the tensor named.
    let bad = tmp.path("bad.safetensors");
    let mut wrong = only
        .iter()
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect::<Vec<_>>();
    wrong.retain(|(k, _)| k != "3.weight");
    wrong.push((
        "3.weight".into(),
        Tensor::zeros([8, 15], (tch::Kind::Float, tch::Device::Cpu)),
    ));
    Tensor::write_safetensors(&wrong, &bad).unwrap();
    let args = [
        "train",
        "--device",
        "cpu",
        "--data",
        DATA,
        "--arch",
        "mlp:16,8",
        "--import",
        bad.to_str().unwrap(),
    ];
    let o = tmp.path("o");
    let mut a = args.to_vec();
    a.extend(["--out", o.to_str().unwrap()]);
    fails(
        &a,
        "tensor '3.weight' has shape [8, 15], Linear(16→8) expects [8, 16]",
    );
    let mut renamed = only
        .iter()
        .map(|(k, v)| (k.replace("5.", "7."), v.shallow_clone()))
        .collect::<Vec<_>>();
    renamed.sort_by(|x, y| x.0.cmp(&y.0));
    Tensor::write_safetensors(&renamed, &bad).unwrap();
    fails(
        &a,
        "tensor(s) '7.bias', '7.weight' do not belong to arch mlp:16,8",
    );
}
