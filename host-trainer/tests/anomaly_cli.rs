//! `--arch autoencoder` end to end: the reconstruction regime, the held-out-class anomaly setup
//! (`--normal-classes`), the AUC in `metrics.json` and the summary, a DenoiseRep regime on top,
//! export (f32, int8) and `infer`'s reconstruction path; and the refusals.
//!
//! The data is easy on purpose: every synthetic class is its own random prototype plus noise, so
//! an autoencoder fitted on classes 0-2 reconstructs class 3 (an unseen prototype) badly.

mod common;

use common::{run, stderr, TempDir};
use std::path::Path;
use std::process::Output;

const DATA: &str = "synthetic:1,8,8,4,384,96";

fn ok(args: &[&str]) -> String {
    let o: Output = run(args);
    assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(args: &[&str], needle: &str) {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected '{needle}' in: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn metrics(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn autoencoder_anomaly_auc_train_denoiserep_export_infer() {
    let tmp = TempDir::new("ae");
    let base = tmp.s("base");
    let common = [
        "--device",
        "cpu",
        "--data",
        DATA,
        "--arch",
        "autoencoder",
        "--threads",
        "2",
    ];
    let mut args = vec![
        "train",
        "--out",
        &base,
        "--normal-classes",
        "0-2",
        "--epochs",
        "8",
    ];
    args.extend(common);
    let out = ok(&args);
    assert!(out.contains("anomaly ROC AUC"), "{out}");
    assert!(
        !out.contains("test accuracy"),
        "no accuracy for a reconstruction model: {out}"
    );
    let m = metrics(Path::new(&base));
    let a = &m["reconstruction"]["anomaly"];
    let auc = a["auc"].as_f64().unwrap();
    assert!(auc > 0.9, "AUC {auc} on an easy held-out class");
    assert_eq!(a["normal_classes"], serde_json::json!([0, 1, 2]));
    assert_eq!(
        (a["n_normal"].as_u64(), a["n_anomalous"].as_u64()),
        (Some(72), Some(24))
    );
    assert!(a["mse_anomalous"].as_f64().unwrap() > a["mse_normal"].as_f64().unwrap());
    assert!(m["test_accuracy"].is_null(), "{}", m["test_accuracy"]);
    assert_eq!(m["noise_robustness"], serde_json::json!([]));
    assert_eq!(m["reconstruction"]["noise"].as_array().unwrap().len(), 5);
    // The reconstruction loss fell and is the per-epoch test number.
    let curve = m["curve"].as_array().unwrap();
    let first = curve[0]["test_mse"].as_f64().unwrap();
    let last = curve.last().unwrap()["test_mse"].as_f64().unwrap();
    assert!(last < first, "test MSE {first} → {last}");
    assert!(curve[0]["train_accuracy"].is_null());
    assert!(Path::new(&base).join("curves.png").is_file());

    // A DenoiseRep regime on the trained autoencoder (no labels needed; the normal classes
    // come from --init).
    let lf = tmp.s("lf");
    let mut args = vec![
        "train",
        "--out",
        &lf,
        "--regime",
        "label-free",
        "--init",
        &base,
        "--epochs",
        "1",
        "--denoiser-fit",
        "closed-form",
    ];
    args.extend(common);
    ok(&args);
    let m2 = metrics(Path::new(&lf));
    let auc2 = m2["reconstruction"]["anomaly"]["auc"].as_f64().unwrap();
    assert!(auc2 > 0.9, "label-free AUC {auc2}");
    assert_eq!(m2["denoisers"].as_array().unwrap().len(), 10);

    // `eval` rewrites the same numbers (metrics.json with nulls reads back).
    let out = ok(&["eval", "--run", &lf, "--device", "cpu"]);
    assert!(out.contains("anomaly ROC AUC"), "{out}");
    assert_eq!(
        metrics(Path::new(&lf))["reconstruction"]["anomaly"]["auc"].as_f64(),
        Some(auc2)
    );

    // Export, then the core's reconstructions: the AUC of its scores matches the trainer's.
    for precision in ["f32", "int8"] {
        let file = tmp.s(&format!("ae-{precision}.dnrp"));
        ok(&[
            "export",
            "--run",
            &lf,
            "--precision",
            precision,
            "--out",
            &file,
            "--calib",
            "100",
        ]);
        let json = tmp.s(&format!("infer-{precision}.json"));
        let out = ok(&[
            "infer",
            "--model",
            &file,
            "--data",
            DATA,
            "--normal-classes",
            "0-2",
            "--json",
            &json,
            "--threads",
            "2",
        ]);
        assert!(out.contains("anomaly ROC AUC"), "{out}");
        let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let core_auc = j["reconstruction"]["auc"].as_f64().unwrap();
        assert!(j["test_accuracy"].is_null());
        let tol = if precision == "f32" { 1e-3 } else { 0.05 };
        assert!(
            (core_auc - auc2).abs() < tol,
            "{precision}: core AUC {core_auc} vs trainer {auc2}"
        );
    }
}

#[test]
fn anomaly_flags_are_refused_where_they_make_no_sense() {
    let tmp = TempDir::new("ae-bad");
    let out = tmp.s("x");
    let t = |extra: &[&str], needle: &str| {
        let mut args = vec![
            "train", "--device", "cpu", "--data", DATA, "--out", &out, "--epochs", "1",
        ];
        args.extend_from_slice(extra);
        fails(&args, needle);
    };
    t(
        &["--arch", "autoencoder", "--normal-classes", "0-3"],
        "no anomalies",
    );
    t(
        &["--arch", "autoencoder", "--normal-classes", "0,7"],
        "class 7 does not exist",
    );
    t(
        &["--arch", "autoencoder", "--normal-classes", "2-1"],
        "--normal-classes",
    );
    t(
        &["--arch", "mlp", "--normal-classes", "0-2"],
        "needs a reconstruction model",
    );
    t(
        &["--arch", "autoencoder", "--labels", "10"],
        "uses no labels",
    );
    assert!(
        !Path::new(&out).join("config.json").exists(),
        "refused before writing"
    );
}
