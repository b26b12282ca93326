//! End-to-end tests of `denoiserep export` and `denoiserep infer` (the real binary, synthetic data,
//! temp dirs): outputs, model.json (DenoiseRep adds zero parameters, MACs and bytes), dumps, and
//! every kind of bad input (one error line, exit code 2, nothing half-written), and `--format
//! onnx` (its report; int8 refused).

mod common;

use common::{assert_no_temp_files, run, TempDir, BIN, DATA};
use std::path::Path;
use std::process::Command;

use denoiserep_core::{DumpHeader, DumpValues, InputHeader, Model};

fn show<S: AsRef<str>>(args: &[S]) -> Vec<&str> {
    args.iter().map(|a| a.as_ref()).collect()
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Expects exit code 2 and exactly one stderr line `denoiserep: error: …` containing `needle`.
fn fails<S: AsRef<str>>(args: &[S], needle: &str) -> String {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let args = show(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.starts_with("denoiserep: error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected '{needle}' in: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn train(out: &str, extra: &[&str]) {
    let mut args = vec!["train", "--device", "cpu", "--out", out];
    args.extend_from_slice(extra);
    ok(&args);
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn export_f32_and_int8_then_infer_with_dumps() {
    let tmp = TempDir::new("e2e");
    train(
        &tmp.s("base"),
        &["--data", DATA, "--arch", "mlp:32,16", "--epochs", "2"],
    );
    let base = tmp.s("base");
    train(
        &tmp.s("lg"),
        &[
            "--regime",
            "label-guided",
            "--init",
            &base,
            "--phase-epochs",
            "1",
        ],
    );
    let run_metrics = json(&tmp.path("lg/metrics.json"));

    for (precision, file) in [("f32", "m32.dnrp"), ("int8", "m8.dnrp")] {
        let out = ok(&[
            "export",
            "--run",
            &tmp.s("lg"),
            "--precision",
            precision,
            "--out",
            &tmp.s(file),
            "--calib",
            "200",
        ]);
        assert!(
            out.contains("DenoiseRep adds 0 parameters, 0 MACs, 0 bytes"),
            "{out}"
        );
        let report = json(&tmp.path(file).with_extension("json"));
        assert_eq!(report["precision"], precision);
        assert_eq!(report["regime"], "label-guided");
        // mlp:32,16 on 8×8 inputs, 4 classes: 64·32+32 + 32·16+16 + 16·4+4 parameters.
        let params = 64 * 32 + 32 + 32 * 16 + 16 + 16 * 4 + 4;
        assert_eq!(report["parameters"], params);
        assert_eq!(report["macs"], 64 * 32 + 32 * 16 + 16 * 4);
        let bytes = std::fs::read(tmp.path(file)).unwrap();
        assert_eq!(report["file_bytes"], bytes.len());
        let model = Model::from_bytes(&bytes).unwrap();
        assert_eq!(report["arena_bytes"], model.arena_size());
        // DenoiseRep costs nothing after fusion: the baseline has the same figures.
        assert_eq!(report["baseline"]["parameters"], report["parameters"]);
        assert_eq!(report["baseline"]["macs"], report["macs"]);
        assert_eq!(report["baseline"]["file_bytes"], report["file_bytes"]);
        assert_eq!(report["baseline"]["arena_bytes"], report["arena_bytes"]);
        for k in ["parameters", "macs", "file_bytes", "arena_bytes"] {
            assert_eq!(report["denoiserep_overhead"][k], 0, "{k}");
        }
        // Reshape (the Flatten), then three Linear ops with the ReLUs fused; tensor 3 is the
        // second hidden Linear's output.
        assert_eq!(report["layers"].as_array().unwrap().len(), 4);
        assert_eq!(report["layers"][1]["kind"], "linear");
        assert_eq!(report["layers"][1]["inputs"], serde_json::json!([1]));
        assert_eq!(report["embedding_tensor"], 3);
        match precision {
            "f32" => assert!(report["calibration"].is_null()),
            _ => assert_eq!(report["calibration"]["samples"], 200),
        }
    }
    let f32_bytes = json(&tmp.path("m32.json"))["file_bytes"].as_u64().unwrap();
    let int8_bytes = json(&tmp.path("m8.json"))["file_bytes"].as_u64().unwrap();
    assert!(int8_bytes * 3 < f32_bytes, "{int8_bytes} vs {f32_bytes}");

    // infer f32: the core's accuracy is the trainer's (tch) accuracy on the fused model, up to
    // one sample; the dump holds the 64 test samples.
    let out = ok(&[
        "infer",
        "--model",
        &tmp.s("m32.dnrp"),
        "--data",
        DATA,
        "--dump",
        &tmp.s("d32.bin"),
        "--write-inputs",
        &tmp.s("in.bin"),
    ]);
    assert!(out.contains("retrieval mAP"), "{out}");
    let acc: f64 = out
        .split("test accuracy ")
        .nth(1)
        .and_then(|s| s.split('%').next())
        .unwrap()
        .parse()
        .unwrap();
    let trainer_acc = 100.0 * run_metrics["test_accuracy"].as_f64().unwrap();
    assert!(
        (acc - trainer_acc).abs() <= 100.0 / 64.0 + 1e-9,
        "{acc} vs {trainer_acc}"
    );
    let dump = std::fs::read(tmp.path("d32.bin")).unwrap();
    let h = DumpHeader::decode(&dump).unwrap();
    assert_eq!((h.n_samples, h.logits_len, h.embedding_len), (64, 4, 16));
    assert_eq!(h.values, DumpValues::F32);
    assert_eq!(Some(dump.len()), h.file_len());
    let inputs = std::fs::read(tmp.path("in.bin")).unwrap();
    let ih = InputHeader::decode(&inputs).unwrap();
    assert_eq!((ih.n_samples, ih.sample_len), (64, 64));
    assert_eq!(Some(inputs.len()), ih.file_len());

    // infer int8 on the first 10 samples: an int8 dump of 10 records (4 + 16 bytes each).
    let out = ok(&[
        "infer",
        "--model",
        &tmp.s("m8.dnrp"),
        "--data",
        DATA,
        "--limit",
        "10",
        "--no-retrieval",
        "--dump",
        &tmp.s("d8.bin"),
    ]);
    assert!(
        out.contains("on 10 samples") && !out.contains("mAP"),
        "{out}"
    );
    let dump = std::fs::read(tmp.path("d8.bin")).unwrap();
    let h = DumpHeader::decode(&dump).unwrap();
    assert!(matches!(h.values, DumpValues::I8 { .. }));
    assert_eq!(dump.len(), 32 + 10 * 20);
    // The same bytes with any number of threads.
    for threads in ["1", "3"] {
        let other = tmp.s(&format!("d8-{threads}.bin"));
        ok(&[
            "infer",
            "--model",
            &tmp.s("m8.dnrp"),
            "--data",
            DATA,
            "--limit",
            "10",
            "--no-retrieval",
            "--threads",
            threads,
            "--dump",
            &other,
        ]);
        assert_eq!(std::fs::read(&other).unwrap(), dump, "--threads {threads}");
    }
    assert_no_temp_files(&tmp.0);
}

#[test]
fn unfinished_run_exports_its_last_epoch_with_a_warning() {
    let tmp = TempDir::new("unfinished");
    let o = Command::new(BIN)
        .args([
            "train", "--device", "cpu", "--data", DATA, "--arch", "mlp:8", "--epochs", "3", "--out",
        ])
        .arg(tmp.path("run"))
        .env(denoiserep_trainer::run::ABORT_ENV, "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "the test hook stops training");
    assert!(!tmp.path("run/metrics.json").exists());
    let o = run(&[
        "export",
        "--run",
        &tmp.s("run"),
        "--precision",
        "int8",
        "--out",
        &tmp.s("m.dnrp"),
        "--calib",
        "5000",
    ]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("denoiserep: warning: run ") && err.contains("is unfinished"),
        "{err}"
    );
    assert!(
        err.contains("the train split has only 256 samples"),
        "{err}"
    );
    assert_eq!(json(&tmp.path("m.json"))["calibration"]["samples"], 256);
    Model::from_bytes(&std::fs::read(tmp.path("m.dnrp")).unwrap()).unwrap();
}

#[test]
fn bad_input_gives_one_line_and_exit_code_2() {
    let tmp = TempDir::new("bad");
    train(
        &tmp.s("mlp"),
        &["--data", DATA, "--arch", "mlp:8", "--epochs", "1"],
    );
    train(
        &tmp.s("cnn"),
        &["--data", DATA, "--arch", "cnn:2/", "--epochs", "1"],
    );
    let out = tmp.s("m.dnrp");
    let export = |run: &str| {
        vec![
            "export".to_string(),
            "--run".into(),
            run.to_string(),
            "--precision".into(),
            "int8".into(),
            "--out".into(),
            out.clone(),
        ]
    };
    let fails_v = |v: Vec<String>, needle: &str| fails(&v, needle);

    // Not a run directory.
    fails_v(export(&tmp.s("nowhere")), "not a run directory");
    // A run directory without a checkpoint (model.safetensors).
    std::fs::create_dir_all(tmp.path("empty")).unwrap();
    std::fs::copy(tmp.path("mlp/config.json"), tmp.path("empty/config.json")).unwrap();
    fails_v(export(&tmp.s("empty")), "no model.safetensors");
    // A checkpoint from another architecture.
    std::fs::copy(
        tmp.path("mlp/model.safetensors"),
        tmp.path("cnn/model.safetensors"),
    )
    .unwrap();
    fails_v(export(&tmp.s("cnn")), "do not belong to arch cnn:2/");
    // Bad options.
    let mut v = export(&tmp.s("mlp"));
    v.extend(["--calib-percentile".into(), "40".into()]);
    fails_v(v, "--calib-percentile 40");
    fails(
        &[
            "export",
            "--run",
            &tmp.s("mlp"),
            "--precision",
            "f32",
            "--out",
            &tmp.s("m.json"),
        ],
        "must not end in .json",
    );
    // A failed export leaves an existing model file alone and no temp file behind.
    std::fs::write(&out, b"previous").unwrap();
    fails_v(export(&tmp.s("cnn")), "do not belong to arch");
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
    assert_no_temp_files(&tmp.0);

    ok(&[
        "export",
        "--run",
        &tmp.s("mlp"),
        "--precision",
        "f32",
        "--out",
        &out,
    ]);
    // A model file that fails validation: the core's typed error, naming the file.
    let good = std::fs::read(&out).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(tmp.path("crc.dnrp"), &bad).unwrap();
    let infer = |model: &str, data: &str| {
        vec![
            "infer".to_string(),
            "--model".into(),
            model.to_string(),
            "--data".into(),
            data.to_string(),
        ]
    };
    let e = fails_v(
        infer(&tmp.s("crc.dnrp"), DATA),
        "the CRC-32 of the model body does not match the header",
    );
    assert!(e.contains("crc.dnrp"), "{e}");
    std::fs::write(tmp.path("short.dnrp"), &good[..good.len() / 2]).unwrap();
    fails_v(
        infer(&tmp.s("short.dnrp"), DATA),
        "does not match the length of the model file",
    );
    std::fs::write(tmp.path("text.dnrp"), b"hello").unwrap();
    fails_v(infer(&tmp.s("text.dnrp"), DATA), "ends before its header");
    fails_v(
        infer(&tmp.s("missing.dnrp"), DATA),
        "missing.dnrp: no such file",
    );
    // A data set whose input shape does not match the model.
    fails_v(
        infer(&out, "synthetic:1,6,6,4,64,16"),
        "has shape [1, 6, 6] and 4 classes, model",
    );
    fails_v(
        infer(&out, "synthetic:1,8,8,3,64,16"),
        "expects [1, 8, 8] and 4",
    );
}

#[test]
fn onnx_export_writes_its_report_and_refuses_int8() {
    let tmp = TempDir::new("onnx");
    train(
        &tmp.s("mlp"),
        &["--data", DATA, "--arch", "mlp:8", "--epochs", "1"],
    );
    let out = ok(&[
        "export",
        "--run",
        &tmp.s("mlp"),
        "--precision",
        "f32",
        "--format",
        "onnx",
        "--out",
        &tmp.s("m.onnx"),
    ]);
    assert!(out.contains("mlp:8 f32 ONNX (baseline)"), "{out}");
    let report = json(&tmp.path("m.json"));
    assert_eq!(report["format"], "onnx");
    assert_eq!(report["precision"], "f32");
    let bytes = std::fs::read(tmp.path("m.onnx")).unwrap();
    assert_eq!(report["file_bytes"], bytes.len());
    // 64·8+8 + 8·4+4 parameters as f32 plus the graph: more bytes than the weights alone.
    assert!(
        bytes.len() > 4 * (64 * 8 + 8 + 8 * 4 + 4),
        "{}",
        bytes.len()
    );
    // ModelProto field 1 (ir_version) comes first: 0x08 then varint 8.
    assert_eq!(&bytes[..2], [0x08, 0x08]);
    // The default format is still the core's.
    ok(&[
        "export",
        "--run",
        &tmp.s("mlp"),
        "--precision",
        "f32",
        "--out",
        &tmp.s("d.dnrp"),
    ]);
    assert_eq!(json(&tmp.path("d.json"))["format"], "dnrp");
    Model::from_bytes(&std::fs::read(tmp.path("d.dnrp")).unwrap()).unwrap();

    fails(
        &[
            "export",
            "--run",
            &tmp.s("mlp"),
            "--precision",
            "int8",
            "--format",
            "onnx",
            "--out",
            &tmp.s("q.onnx"),
        ],
        "--format onnx writes f32 models only (got --precision int8)",
    );
    assert!(!tmp.path("q.onnx").exists() && !tmp.path("q.json").exists());
    assert_no_temp_files(&tmp.0);
}

/// `--format tflite`: int8 and f32 files (identifier `TFL3`), the printed line, the report
/// (format, file bytes, the input normalization), and a ViT refused with one line naming the op,
/// nothing written.
#[test]
fn tflite_export_writes_its_report_and_refuses_a_vit() {
    let tmp = TempDir::new("tflite");
    train(
        &tmp.s("mlp"),
        &["--data", DATA, "--arch", "mlp:8", "--epochs", "1"],
    );
    for precision in ["int8", "f32"] {
        let file = tmp.s(&format!("{precision}.tflite"));
        let out = ok(&[
            "export",
            "--run",
            &tmp.s("mlp"),
            "--precision",
            precision,
            "--format",
            "tflite",
            "--out",
            &file,
            "--calib",
            "64",
        ]);
        assert!(out.contains(&format!("mlp:8 {precision} TFLite")), "{out}");
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(&bytes[4..8], b"TFL3");
        let report = json(&tmp.path(&format!("{precision}.json")));
        assert_eq!(report["format"], "tflite");
        assert_eq!(report["file_bytes"], bytes.len());
        assert_eq!(report["input_mean"].as_array().unwrap().len(), 1);
        assert_eq!(report["input_std"].as_array().unwrap().len(), 1);
        assert_eq!(report["input_quant"].is_null(), precision == "f32");
    }
    train(
        &tmp.s("vit"),
        &["--data", DATA, "--arch", "vit:4,16,2,1,2", "--epochs", "1"],
    );
    let err = fails(
        &[
            "export",
            "--run",
            &tmp.s("vit"),
            "--precision",
            "f32",
            "--format",
            "tflite",
            "--out",
            &tmp.s("v.tflite"),
        ],
        "to TFLite: op ",
    );
    assert!(
        err.contains("(Transpose") && err.contains("LayerNorm"),
        "{err}"
    );
    assert!(!tmp.path("v.tflite").exists() && !tmp.path("v.json").exists());
    assert_no_temp_files(&tmp.0);
}
