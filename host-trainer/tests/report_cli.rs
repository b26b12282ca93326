//! End-to-end tests of `denoiserep infer --json` and `denoiserep report` (the real binary):
//! a tiny version of `scripts/demo.sh`'s folder is built on synthetic data — two trained runs,
//! four exports, four `infer --json`, host dumps — with device logs and dumps made from the
//! host's (the real device path is covered by the `tests` package). Then the report is checked,
//! and so are a host/device mismatch (✗, exit 2, the sample and field named), missing and
//! malformed files (exit 2 naming them) and a stale measurement.

mod common;

use common::{run, TempDir, DATA};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use denoiserep_core::Model;
use denoiserep_trainer::export::footprint::op_cost;

const MODELS: [&str; 4] = [
    "baseline-f32",
    "baseline-int8",
    "denoiserep-f32",
    "denoiserep-int8",
];
/// Samples "run on the device".
const DEVICE_SAMPLES: usize = 8;

/// Runs and expects success; returns (stdout, stderr).
fn ok(args: &[&str]) -> (String, String) {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{args:?} failed: {err}");
    (String::from_utf8_lossy(&o.stdout).into_owned(), err)
}

/// Expects exit code 2 and one stderr line `denoiserep: error: …` containing `needle`.
fn fails(args: &[&str], needle: &str) -> String {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.starts_with("denoiserep: error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    err
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A firmware log (`docs/firmware.md`) for `model` over `samples` samples, with made-up but
/// consistent counts: each layer costs `3·MACs + 100` instructions per sample.
fn fake_log(model: &[u8], samples: usize) -> String {
    let m = Model::from_bytes(model).unwrap();
    let info = m.info();
    let input: Vec<String> = m
        .input_info()
        .shape
        .dims()
        .iter()
        .map(|d| d.to_string())
        .collect();
    let mut log = String::from("INFO  board=mps2-an386 unit=instructions arena_capacity=1048576\n");
    let _ = writeln!(
        log,
        "INFO  model name={} precision={:?} ops={} tensors={} file_bytes={} arena_bytes={} input={} classes={} embedding_tensor={}",
        info.name,
        m.precision(),
        m.op_count(),
        m.tensor_count(),
        model.len(),
        m.arena_size(),
        input.join("x"),
        m.num_classes(),
        info.embedding
    );
    let costs: Vec<(String, u64)> = m
        .nodes()
        .map(|n| {
            let n = n.unwrap();
            (n.op.kind().name().to_string(), op_cost(&m, &n).1)
        })
        .collect();
    let per_sample: u64 = costs.iter().map(|(_, macs)| 3 * macs + 100).sum();
    for i in 0..samples {
        let _ = writeln!(log, "INFO  sample={i} instructions={per_sample}");
    }
    let n = samples as u64;
    let mut all_macs = 0;
    for (i, (kind, macs)) in costs.iter().enumerate() {
        all_macs += macs * n;
        let _ = writeln!(
            log,
            "INFO  op_total={i} kind={kind} samples={n} instructions={} macs={}",
            (3 * macs + 100) * n,
            macs * n
        );
    }
    let _ = writeln!(
        log,
        "INFO  done samples={n} instructions={} macs={all_macs}",
        per_sample * n
    );
    log.push_str("INFO  ram static_bytes=1131036 stack_peak_bytes=16780\n");
    log
}

/// The demo folder at `demo`, as `scripts/demo.sh` lays it out.
fn build_demo(tmp: &TempDir) -> PathBuf {
    let demo = tmp.path("demo");
    let d = |sub: &str| demo.join(sub).to_str().unwrap().to_string();
    std::fs::create_dir_all(&demo).unwrap();
    let (_, err) = ok(&[
        "train",
        "--device",
        "cpu",
        "--data",
        DATA,
        "--arch",
        "mlp:32,16",
        "--epochs",
        "2",
        "--out",
        &d("baseline"),
    ]);
    // Not a terminal: one plain line per epoch, then the evaluation.
    assert!(err.contains("epoch 1/2 baseline"), "{err}");
    assert!(err.contains("epoch 2/2 baseline"), "{err}");
    assert!(err.contains("evaluating the fused model"), "{err}");
    ok(&[
        "train",
        "--device",
        "cpu",
        "--regime",
        "label-guided",
        "--init",
        &d("baseline"),
        "--phase-epochs",
        "1",
        "--out",
        &d("denoiserep"),
    ]);
    for m in MODELS {
        let (run_dir, precision) = m.split_once('-').unwrap();
        let model = d(&format!("{m}.dnrp"));
        ok(&[
            "export",
            "--run",
            &d(run_dir),
            "--precision",
            precision,
            "--out",
            &model,
            "--calib",
            "100",
        ]);
        let (_, err) = ok(&[
            "infer",
            "--model",
            &model,
            "--data",
            DATA,
            "--json",
            &d(&format!("{m}-host.json")),
        ]);
        assert!(
            err.contains("infer: retrieval: 64 queries against a gallery of 256"),
            "{err}"
        );
        assert!(err.contains("infer: retrieval done in"), "{err}");
        ok(&[
            "infer",
            "--model",
            &model,
            "--data",
            DATA,
            "--limit",
            &DEVICE_SAMPLES.to_string(),
            "--no-retrieval",
            "--write-inputs",
            &d("inputs.dnri"),
            "--dump",
            &d(&format!("{m}-host.dnrd")),
        ]);
        // "The device": the same outputs, and a log of the same model.
        std::fs::copy(
            demo.join(format!("{m}-host.dnrd")),
            demo.join(format!("{m}-device.dnrd")),
        )
        .unwrap();
        let bytes = std::fs::read(&model).unwrap();
        std::fs::write(
            demo.join(format!("{m}-device.log")),
            fake_log(&bytes, DEVICE_SAMPLES),
        )
        .unwrap();
    }
    std::fs::write(
        demo.join("steps.tsv"),
        "# step\tstart (unix s)\tseconds\nsetup\t1764118923\t2.5\nbuild\t1764118926\t100.0\n",
    )
    .unwrap();
    std::fs::write(
        demo.join("commands.txt"),
        "denoiserep train --data mnist --out runs/demo/baseline\n",
    )
    .unwrap();
    demo
}

/// Copies the demo folder (files and the two run folders) to `to`.
fn copy_demo(from: &Path, to: &Path) {
    for sub in ["", "baseline", "denoiserep"] {
        std::fs::create_dir_all(to.join(sub)).unwrap();
        for e in std::fs::read_dir(from.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), to.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
}

fn png_size(path: &Path) -> (u32, u32) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (img.width(), img.height())
}

#[test]
fn report_of_a_demo_folder_and_its_failures() {
    let tmp = TempDir::new("demo");
    let demo = build_demo(&tmp);
    let demo_s = demo.to_str().unwrap();

    // infer --json: what infer measured, with the core's footprint of the file.
    let host = json(&demo.join("denoiserep-int8-host.json"));
    let export = json(&demo.join("denoiserep-int8.json"));
    assert_eq!(host["precision"], "int8");
    assert_eq!(host["data"], DATA);
    assert_eq!(host["samples"], 64);
    assert_eq!(host["gallery_samples"], 256);
    let acc = host["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    assert!(host["retrieval"]["map"].as_f64().unwrap() > 0.0);
    assert!(host["retrieval"]["rank1"].as_f64().unwrap() > 0.0);
    assert!(host["seconds"].as_f64().unwrap() > 0.0);
    for k in ["parameters", "macs", "file_bytes", "arena_bytes"] {
        assert_eq!(host[k], export[k], "{k}");
    }
    let file_len = std::fs::metadata(demo.join("denoiserep-int8.dnrp"))
        .unwrap()
        .len();
    assert_eq!(host["file_bytes"], file_len);

    // The report of a consistent folder.
    let out = tmp.path("report");
    let out_s = out.to_str().unwrap();
    let (stdout, _) = ok(&["report", "--demo", demo_s, "--out", out_s]);
    assert!(
        stdout.contains("host and device bit-identical for all 4 models"),
        "{stdout}"
    );
    let md = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    for m in MODELS {
        let (run_name, precision) = m.split_once('-').unwrap();
        let label = if run_name == "baseline" {
            "baseline"
        } else {
            "DenoiseRep"
        };
        let h = json(&demo.join(format!("{m}-host.json")));
        let top1 = format!("{:.2}%", 100.0 * h["test_accuracy"].as_f64().unwrap());
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {label} {precision} | {top1} |")))
            .unwrap_or_else(|| panic!("no row for {m} with top-1 {top1} in:\n{md}"));
        assert!(row.ends_with("| ✓ bit-identical, 8 samples |"), "{row}");
        // Instructions per inference = Σ (3·MACs + 100) over the layers; per MAC shown too.
        let e = json(&demo.join(format!("{m}.json")));
        let macs = e["macs"].as_u64().unwrap();
        let layers = e["layers"].as_array().unwrap().len() as u64;
        let per_inference = 3 * macs + 100 * layers;
        let per_mac = format!("{:.2}", per_inference as f64 / macs as f64);
        assert!(row.contains(&format!("| {per_mac} |")), "{row}");
    }
    assert!(md.contains(
        "f32: +0 parameters, +0 MACs, +0 file bytes, +0 arena bytes; int8: +0 parameters"
    ));
    assert!(
        md.contains("2025-11-26 01:02:03 UTC (pipeline start)"),
        "{md}"
    );
    assert!(md.contains("| pipeline time | 103 s"), "{md}");
    assert!(md.contains("| build | 100.0 |"), "{md}");
    assert!(md.contains("denoiserep train --data mnist --out runs/demo/baseline"));
    assert!(
        md.contains("256 train / 64 test samples of 1×8×8, 4 classes"),
        "{md}"
    );
    assert!(
        md.contains("| DenoiseRep | `label-guided` | 2 (1 A + 1 B) |"),
        "{md}"
    );
    assert!(
        md.contains("its backbone saw 3 epochs, the baseline's 2"),
        "{md}"
    );
    assert!(md.contains("`denoiserep compare`") && md.contains("docs/results.md"));
    assert!(md.contains("![training curves](curves.png)"));
    assert!(md.contains("![robustness](robustness.png)"));
    // Three panels: the label-guided run's records carry denoiser diagnostics.
    assert_eq!(png_size(&out.join("curves.png")), (1920, 520));
    // Two panels: the noise curve and the corruption bars (the demo's runs have both).
    assert_eq!(png_size(&out.join("robustness.png")), (1700, 600));

    // A device dump that differs in one value: the report is still written, with ✗ and the
    // first difference; the command fails.
    let bad = tmp.path("mismatch");
    copy_demo(&demo, &bad);
    let dump = bad.join("denoiserep-int8-device.dnrd");
    let mut bytes = std::fs::read(&dump).unwrap();
    let record_len = 4 + 16; // 4 logits + 16 embedding values, int8
    bytes[32 + 3 * record_len + 1] ^= 0x01;
    std::fs::write(&dump, bytes).unwrap();
    let bad_out = tmp.path("mismatch-report");
    let err = fails(
        &["report", "--demo", bad.to_str().unwrap(), "--out", bad_out.to_str().unwrap()],
        "host and device outputs differ (denoiserep-int8: 1 of 8 samples differ; first: sample 3 logits[1]: host ",
    );
    assert!(err.contains("report written to"), "{err}");
    let md = std::fs::read_to_string(bad_out.join("REPORT.md")).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| DenoiseRep int8 |"))
        .unwrap();
    assert!(
        row.contains("| ✗ 1 of 8 samples differ; first: sample 3 logits[1]"),
        "{row}"
    );
    assert!(md.contains("| ✓ bit-identical, 8 samples |"));

    // A missing file is named.
    let missing = tmp.path("missing");
    copy_demo(&demo, &missing);
    std::fs::remove_file(missing.join("baseline-f32-device.log")).unwrap();
    let ms = missing.to_str().unwrap();
    let o = tmp.s("missing-report");
    fails(
        &["report", "--demo", ms, "--out", &o],
        &format!(
            "{}: missing",
            missing.join("baseline-f32-device.log").display()
        ),
    );
    std::fs::remove_file(missing.join("denoiserep/metrics.json")).unwrap();
    fails(
        &["report", "--demo", ms, "--out", &o],
        "metrics.json: missing (the run",
    );
    fails(
        &["report", "--demo", &tmp.s("nowhere"), "--out", &o],
        "nowhere: no such folder",
    );

    // A malformed log line is named with the file and line number.
    let malformed = tmp.path("malformed");
    copy_demo(&demo, &malformed);
    let log = malformed.join("denoiserep-f32-device.log");
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("done samples="))
        .unwrap()
        + 1;
    std::fs::write(&log, text.replace("done samples=8", "done samples=eight")).unwrap();
    fails(
        &["report", "--demo", malformed.to_str().unwrap(), "--out", &o],
        &format!("{}: line {line}: ", log.display()),
    );
    // A log of another model.
    std::fs::copy(
        malformed.join("baseline-int8-device.log"),
        malformed.join("denoiserep-f32-device.log"),
    )
    .unwrap();
    fails(
        &["report", "--demo", malformed.to_str().unwrap(), "--out", &o],
        "a log of another model",
    );

    // A measurement of a model that was exported again since.
    let stale = tmp.path("stale");
    copy_demo(&demo, &stale);
    let host_json = stale.join("baseline-int8-host.json");
    let mut h = json(&host_json);
    h["file_bytes"] = serde_json::json!(h["file_bytes"].as_u64().unwrap() + 1);
    std::fs::write(&host_json, serde_json::to_vec(&h).unwrap()).unwrap();
    fails(
        &["report", "--demo", stale.to_str().unwrap(), "--out", &o],
        "the model was exported again",
    );
}

#[test]
fn infer_json_without_retrieval_and_into_a_missing_folder() {
    let tmp = TempDir::new("json");
    ok(&[
        "train",
        "--device",
        "cpu",
        "--data",
        DATA,
        "--arch",
        "mlp:16",
        "--epochs",
        "1",
        "--out",
        &tmp.s("run"),
    ]);
    ok(&[
        "export",
        "--run",
        &tmp.s("run"),
        "--precision",
        "f32",
        "--out",
        &tmp.s("m.dnrp"),
    ]);
    let (stdout, err) = ok(&[
        "infer",
        "--model",
        &tmp.s("m.dnrp"),
        "--data",
        DATA,
        "--limit",
        "10",
        "--no-retrieval",
        "--threads",
        "1",
        "--json",
        &tmp.s("m-host.json"),
    ]);
    assert!(!err.contains("retrieval"), "{err}");
    let j = json(&tmp.path("m-host.json"));
    assert_eq!(j["precision"], "f32");
    assert_eq!(j["samples"], 10);
    assert_eq!(j["threads"], 1);
    assert!(j["retrieval"].is_null());
    assert_eq!(j["gallery_samples"], 0);
    assert_eq!(j["model"], tmp.s("m.dnrp"));
    let printed = format!("{:.2}%", 100.0 * j["test_accuracy"].as_f64().unwrap());
    assert!(
        stdout.contains(&format!("test accuracy {printed} on 10 samples")),
        "{stdout}"
    );
    assert_eq!(j["macs"], 64 * 16 + 16 * 4);

    let target = tmp.path("no/such/m.json");
    fails(
        &[
            "infer",
            "--model",
            &tmp.s("m.dnrp"),
            "--data",
            DATA,
            "--json",
            target.to_str().unwrap(),
        ],
        "--json",
    );
    assert!(!target.exists());
}
