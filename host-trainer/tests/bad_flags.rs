//! Every flag of every subcommand refuses a bad value before any work: one table of
//! `(subcommand, bad flags, expected words)`; each row runs the real binary and must exit with
//! code 2, print `denoiserep: error: …` (one line, naming the flag and the value, no panic), and
//! leave its output path uncreated and the input fixtures untouched. No row loads data or trains
//! (the abort-after-epoch hook is set, so a row that wrongly trained would fail loudly).
//!
//! With `DENOISEREP_BAD_FLAGS_MD=FILE` the table is also written to FILE as markdown
//! (subcommand, flag, bad value, message), for `docs/reliability.md`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_no_temp_files, TempDir, BIN, DATA};

/// What each subcommand is given besides a row's flags (a pair is left out when the row sets
/// that flag itself). `{out}` is the row's output path, `{run}`, `{model}`, `{demo}` fixtures.
const BASE: &[(&str, &[(&str, &str)])] = &[
    (
        "train",
        &[
            ("--device", "cpu"),
            ("--data", DATA),
            ("--epochs", "1"),
            ("--out", "{out}"),
        ],
    ),
    ("eval", &[("--device", "cpu"), ("--run", "{run}")]),
    (
        "export",
        &[
            ("--run", "{run}"),
            ("--precision", "int8"),
            ("--out", "{out}.dnrp"),
        ],
    ),
    (
        "infer",
        &[
            ("--model", "{model}"),
            ("--data", DATA),
            ("--json", "{out}.json"),
        ],
    ),
    ("report", &[("--demo", "{demo}"), ("--out", "{out}")]),
    (
        "import",
        &[("--out", "{out}"), ("--data", DATA), ("--device", "cpu")],
    ),
    (
        "compare",
        &[
            ("--device", "cpu"),
            ("--data", DATA),
            ("--epochs", "1"),
            ("--extra-epochs", "2"),
            ("--out", "{out}"),
        ],
    ),
    ("", &[]),
];

const HUGE: &str = "1000000000000000";

/// `(subcommand, bad flags, words the error must contain)`.
#[rustfmt::skip]
const ROWS: &[(&str, &[&str], &str)] = &[
    // ---- train
    ("train", &["--threads", "0"], "--threads 0: must be a whole number from 1 to 1024"),
    ("train", &["--threads", "-1"], "--threads -1: must be a whole number from 1 to 1024"),
    ("train", &["--threads", "100000"], "--threads 100000: must be"),
    ("train", &["--threads", "x"], "--threads x: must be a whole number"),
    ("train", &["--epochs", "0"], "--epochs 0: must be a whole number from 1 to 100000"),
    ("train", &["--epochs", HUGE], "--epochs 1000000000000000: must be"),
    ("train", &["--epochs", "-3"], "--epochs -3: must be"),
    ("train", &["--batch-size", "0"], "--batch-size 0: must be a whole number from 1 to"),
    ("train", &["--batch-size", HUGE], "--batch-size 1000000000000000: must be"),
    ("train", &["--labels", "0"], "--labels 0: must be at least 1"),
    ("train", &["--labels", "-5"], "--labels -5: must be"),
    ("train", &["--labels", "100000"], "--labels 100000: data 'synthetic:1,8,8,4,256,64' has only 256 train samples"),
    ("train", &["--lr", "0"], "--lr 0: must be a positive finite number"),
    ("train", &["--lr", "-1"], "--lr -1: must be a positive finite number"),
    ("train", &["--lr", "NaN"], "--lr NaN: must be a positive finite number"),
    ("train", &["--lr", "inf"], "--lr inf: must be a positive finite number"),
    ("train", &["--lambda", "-0.5"], "--lambda -0.5: must be a finite number ≥ 0"),
    ("train", &["--lambda", "nan"], "--lambda nan: must be a finite number ≥ 0"),
    ("train", &["--lambda", "inf"], "--lambda inf: must be a finite number ≥ 0"),
    ("train", &["--phase-epochs", "0"], "--phase-epochs 0: must be a whole number"),
    ("train", &["--t-stride", "0"], "--t-stride 0: must be a whole number from 1 to"),
    ("train", &["--t-stride", HUGE], "--t-stride 1000000000000000: must be"),
    ("train", &["--t-stride", "2000", "--regime", "label-guided"],
        "--t-stride 2000 is above --timesteps 1000"),
    ("train", &["--t-list", ""], "--t-list '': must be a comma-separated list"),
    ("train", &["--t-list", "1,0,1"], "--t-list 1,0,1: must be a comma-separated list"),
    ("train", &["--t-list", "1,x"], "--t-list 1,x: must be a comma-separated list"),
    ("train", &["--t-list", "1,1,1", "--t-stride", "2"], "cannot be used with"),
    ("train", &["--t-list", "5,5,5", "--timesteps", "4"],
        "--t-list: timestep 5 is above --timesteps 4"),
    ("train", &["--denoiser-fit", "magic"], "invalid value 'magic' for '--denoiser-fit"),
    ("train", &["--denoiser-lr", "0"], "--denoiser-lr 0: must be a positive finite number"),
    ("train", &["--denoiser-lr", "nan"], "--denoiser-lr nan: must be a positive finite number"),
    ("train", &["--denoiser-precondition", "diag"],
        "invalid value 'diag' for '--denoiser-precondition"),
    ("train", &["--timesteps", "0"], "--timesteps 0: must be a whole number from 1 to"),
    ("train", &["--timesteps", HUGE], "--timesteps 1000000000000000: must be"),
    ("train", &["--beta-start", "0"], "--beta-start 0: must be a number strictly between 0 and 1"),
    ("train", &["--beta-start", "1"], "--beta-start 1: must be a number strictly between"),
    ("train", &["--beta-start", "nan"], "--beta-start nan: must be a number strictly between"),
    ("train", &["--beta-end", "1.5"], "--beta-end 1.5: must be a number strictly between"),
    ("train", &["--beta-end", "-0.1"], "--beta-end -0.1: must be a number strictly between"),
    ("train", &["--beta-start", "0.01", "--beta-end", "0.001"],
        "--beta-start 0.01 is above --beta-end 0.001"),
    ("train", &["--test-fraction", "0"], "--test-fraction 0: must be a number strictly between"),
    ("train", &["--test-fraction", "1"], "--test-fraction 1: must be a number strictly between"),
    ("train", &["--test-fraction", "-0.2"], "--test-fraction -0.2: must be"),
    ("train", &["--data", ""], "--data '': must not be empty"),
    ("train", &["--data", "foo:bar"], "--data foo:bar: unknown kind 'foo'"),
    ("train", &["--data", "mnist:x"], "--data mnist:x: mnist takes no argument"),
    ("train", &["--data", "idx:/nonexistent"], "/nonexistent: no such directory"),
    ("train", &["--data", "cifar10:"], "--data cifar10:: expected cifar10:DIR"),
    ("train", &["--data", "csv:/nonexistent.csv"], "/nonexistent.csv: no such file"),
    ("train", &["--data", "synthetic:1,2"], "expected six positive numbers"),
    ("train", &["--data", "synthetic:1,8,8,4,1000000000000,64"], "synthetic data of more than"),
    ("train", &["--data-dir", ""], "--data-dir '': must not be empty"),
    ("train", &["--arch", ""], "--arch '': must not be empty"),
    ("train", &["--arch", "foo"], "--arch foo: arch 'foo': unknown kind 'foo'"),
    ("train", &["--arch", "mlp:0"], "hidden width 1 is 0"),
    ("train", &["--arch", "mlp:64,x"], "hidden width 2 ('x')"),
    ("train", &["--arch", "mlp:10000000"], "width 10000000 is above"),
    ("train", &["--regime", "sideways"], "invalid value 'sideways' for '--regime"),
    ("train", &["--device", "tpu"], "invalid value 'tpu' for '--device"),
    ("train", &["--lr-schedule", "step"], "invalid value 'step' for '--lr-schedule"),
    ("train", &["--schedule", "label-guided", "--regime", "label-guided"],
        "--schedule label-guided applies to --regime baseline or penalty-control"),
    ("train", &["--regime", "label-free"], "--regime label-free needs a trained backbone"),
    ("train", &["--out", ""], "--out '': must not be empty"),
    ("train", &["--init", ""], "--init '': must not be empty"),
    ("train", &["--init", "/nonexistent/run"],
        "--init /nonexistent/run: /nonexistent/run: not a run directory"),
    ("train", &["--import", "/nonexistent.safetensors"],
        "--import /nonexistent.safetensors: no such file"),
    ("train", &["--seed", "-1"],
        "--seed -1: must be a whole number from 0 to 18446744073709551615"),
    ("train", &["--seed", "18446744073709551616"],
        "--seed 18446744073709551616: must be a whole number"),
    ("train", &["--fuse-noise", "x"], "--fuse-noise x: must be a whole number from 0 to"),
    ("train", &["--bogus"], "unexpected argument '--bogus'"),
    // ---- eval
    ("eval", &["--run", ""], "--run '': must not be empty"),
    ("eval", &["--run", "/nonexistent/run"],
        "--run /nonexistent/run: not a run directory (no config.json)"),
    ("eval", &["--feature-noise", "-1"], "--feature-noise -1: must be a finite number ≥ 0"),
    ("eval", &["--feature-noise", "inf"], "--feature-noise inf: must be a finite number ≥ 0"),
    ("eval", &["--feature-noise", "x"], "--feature-noise x: must be a finite number ≥ 0"),
    ("eval", &["--threads", "0"], "--threads 0: must be a whole number from 1 to 1024"),
    ("eval", &["--threads", "2000"], "--threads 2000: must be"),
    ("eval", &["--data", ""], "--data '': must not be empty"),
    ("eval", &["--data", "foo:bar"], "--data foo:bar: unknown kind 'foo'"),
    ("eval", &["--device", "tpu"], "invalid value 'tpu' for '--device"),
    // ---- export
    ("export", &["--run", ""], "--run '': must not be empty"),
    ("export", &["--run", "/nonexistent/run"], "--run /nonexistent/run: not a run directory"),
    ("export", &["--out", ""], "--out '': must not be empty"),
    ("export", &["--out", "/nonexistent/dir/m.dnrp"], "folder /nonexistent/dir does not exist"),
    ("export", &["--out", "{out}.json"], "must not end in .json"),
    ("export", &["--precision", "f16"], "invalid value 'f16' for '--precision"),
    ("export", &["--format", "onnx"], "--format onnx writes f32 models only"),
    ("export", &["--format", "tf"], "invalid value 'tf' for '--format"),
    ("export", &["--tflite-io", "float"], "--tflite-io float: only with --format tflite --precision int8"),
    ("export", &["--format", "tflite", "--precision", "f32", "--tflite-io", "float"],
        "--tflite-io float: only with --format tflite --precision int8"),
    ("export", &["--tflite-io", "uint8"], "invalid value 'uint8' for '--tflite-io"),
    ("export", &["--calib", "0"], "--calib 0: must be at least 1"),
    ("export", &["--calib", "-5"], "--calib -5: must be at least 1"),
    ("export", &["--calib-percentile", "50"],
        "--calib-percentile 50: must be above 50 and at most 100"),
    ("export", &["--calib-percentile", "40"], "--calib-percentile 40: must be above 50"),
    ("export", &["--calib-percentile", "100.5"], "--calib-percentile 100.5: must be above 50"),
    ("export", &["--calib-percentile", "nan"], "--calib-percentile nan: must be above 50"),
    ("export", &["--threads", "0"], "--threads 0: must be a whole number from 1 to 1024"),
    ("export", &["--calib-seed", "-1"], "--calib-seed -1: must be a whole number from 0 to"),
    // ---- infer
    ("infer", &["--model", ""], "--model '': must not be empty"),
    ("infer", &["--model", "/nonexistent.dnrp"], "--model /nonexistent.dnrp: no such file"),
    (
        "infer",
        &["--model", "{v2model}"],
        "v2.dnrp: the model file has format version 2; this build reads only version 3: export \
         the model again",
    ),
    ("infer", &["--data", ""], "--data '': must not be empty"),
    ("infer", &["--data", "foo:bar"], "--data foo:bar: unknown kind 'foo'"),
    ("infer", &["--data", "idx:/nonexistent"], "no such directory"),
    ("infer", &["--data-dir", ""], "--data-dir '': must not be empty"),
    ("infer", &["--test-fraction", "0"], "--test-fraction 0: must be a number strictly between"),
    ("infer", &["--test-fraction", "1"], "--test-fraction 1: must be"),
    ("infer", &["--limit", "0"], "--limit 0: must be at least 1"),
    ("infer", &["--data-seed", "1.5"], "--data-seed 1.5: must be a whole number from 0 to"),
    ("infer", &["--threads", "0"], "--threads 0: must be a whole number from 1 to 1024"),
    ("infer", &["--threads", "5000"], "--threads 5000: must be a whole number from 1 to 1024"),
    ("infer", &["--json", ""], "--json '': must not be empty"),
    ("infer", &["--json", "/nonexistent/dir/r.json"], "folder /nonexistent/dir does not exist"),
    ("infer", &["--dump", "/nonexistent/dir/d.dnrd"], "--dump /nonexistent/dir/d.dnrd: folder"),
    ("infer", &["--write-inputs", ""], "--write-inputs '': must not be empty"),
    // ---- report
    ("report", &["--demo", ""], "--demo '': must not be empty"),
    ("report", &["--demo", "/nonexistent/demo"], "--demo /nonexistent/demo: no such folder"),
    ("report", &["--out", ""], "--out '': must not be empty"),
    // ---- compare
    ("compare", &["--seeds", "0"], "--seeds 0: must be a whole number from 1 to 1000"),
    ("compare", &["--seeds", HUGE], "--seeds 1000000000000000: must be"),
    ("compare", &["--seeds", "-2"], "--seeds -2: must be"),
    ("compare", &["--seed-list", "1,1"], "--seed-list: seed 1 appears twice"),
    ("compare", &["--seed-list", ""], "--seed-list '': must be a whole number from 0 to"),
    ("compare", &["--seed-list", "1,-2"], "--seed-list -2: must be a whole number from 0 to"),
    ("compare", &["--epochs", "0"], "--epochs 0: must be a whole number from 1 to 100000"),
    ("compare", &["--epochs", HUGE], "--epochs 1000000000000000: must be"),
    ("compare", &["--extra-epochs", "0"], "--extra-epochs 0: must be a whole number"),
    ("compare", &["--phase-epochs", "0"], "--phase-epochs 0: must be a whole number"),
    ("compare", &["--phase-epochs", "2"], "label-guided needs 1 ≤ phase < extra epochs"),
    ("compare", &["--lr", "0"], "--lr 0: must be a positive finite number"),
    ("compare", &["--lambda", "-1"], "--lambda -1: must be a finite number ≥ 0"),
    ("compare", &["--batch-size", "0"], "--batch-size 0: must be"),
    ("compare", &["--labels", "0"], "--labels 0: must be at least 1"),
    ("compare", &["--t-stride", "0"], "--t-stride 0: must be"),
    ("compare", &["--timesteps", "0"], "--timesteps 0: must be"),
    ("compare", &["--beta-start", "2"], "--beta-start 2: must be a number strictly between"),
    ("compare", &["--beta-end", "0"], "--beta-end 0: must be a number strictly between"),
    ("compare", &["--beta-start", "0.01", "--beta-end", "0.001"],
        "baseline: --beta-start 0.01 is above --beta-end 0.001"),
    ("compare", &["--test-fraction", "1"], "--test-fraction 1: must be"),
    ("compare", &["--threads", "0"], "--threads 0: must be a whole number from 1 to 1024"),
    ("compare", &["--data", ""], "--data '': must not be empty"),
    ("compare", &["--data", "foo:bar"], "--data foo:bar: unknown kind 'foo'"),
    ("compare", &["--data-dir", ""], "--data-dir '': must not be empty"),
    ("compare", &["--arch", ""], "--arch '': must not be empty"),
    ("compare", &["--arch", "foo"], "--arch foo: arch 'foo': unknown kind"),
    ("compare", &["--variant", "abc"], "--variant 'abc': expected NAME=TRAIN FLAGS"),
    ("compare", &["--variant", "analytic-shrinkage=--lambda 1"],
        "--variant 'analytic-shrinkage': the name is taken by a built-in arm"),
    ("compare", &["--variant", "x=--lambda -1"],
        "variant 'x': --lambda -1: must be a finite number ≥ 0"),
    ("compare", &["--variant", "x=--epochs 3"], "--variant 'x': --epochs cannot be set per arm"),
    ("compare", &["--variant", "x=--t-strid 4"], "variant 'x': unexpected argument '--t-strid'"),
    ("compare", &["--out", ""], "--out '': must not be empty"),
    ("compare", &["--jobs", "0"], "--jobs 0: must be a whole number from 1 to"),
    ("compare", &["--jobs", "-1"], "--jobs -1: must be a whole number from 1 to"),
    ("compare", &["--jobs", "x"], "--jobs x: must be a whole number from 1 to"),
    ("compare", &["--jobs", "100000"], "--jobs 100000: must be a whole number from 1 to"),
    ("compare", &["--jobs", HUGE], "logical CPUs)"),
    ("compare", &["--equivalence-margin", "0"],
        "--equivalence-margin 0: must be a number of percentage points above 0 and at most 100"),
    ("compare", &["--equivalence-margin", "-0.2"], "--equivalence-margin -0.2: must be a number"),
    ("compare", &["--equivalence-margin", "nan"], "--equivalence-margin nan: must be a number"),
    ("compare", &["--equivalence-margin", "inf"], "--equivalence-margin inf: must be a number"),
    ("compare", &["--equivalence-margin", "101"], "--equivalence-margin 101: must be a number"),
    ("compare", &["--equivalence-margin", "x"], "--equivalence-margin x: must be a number"),
    ("compare", &["--emit-commands", "--collect"],
        "the argument '--emit-commands' cannot be used with '--collect'"),
    ("compare", &["--emit-commands", "--jobs", "2"],
        "the argument '--emit-commands' cannot be used with '--jobs <N>'"),
    ("compare", &["--collect", "--force"], "the argument '--collect' cannot be used with '--force'"),
    ("compare", &["--collect", "--jobs", "2"],
        "the argument '--collect' cannot be used with '--jobs <N>'"),
    // ---- import (MODEL is positional; `{onnx}` is a file named .onnx, never read by a row)
    ("import", &["/nonexistent/m.onnx"], "<MODEL> /nonexistent/m.onnx: no such file"),
    ("import", &[], "the following required arguments were not provided"),
    ("import", &["{model}"], "unsupported model file extension 'dnrp'"),
    ("import", &["{onnx}", "--out", ""], "--out '': must not be empty"),
    ("import", &["{onnx}", "--out", "/nonexistent/dir/run"], "folder /nonexistent/dir does not exist"),
    ("import", &["{onnx}", "--arch", "foo"], "--arch foo: arch 'foo': unknown kind 'foo'"),
    ("import", &["{onnx}", "--data", ""], "--data '': must not be empty"),
    ("import", &["{onnx}", "--data", "foo:bar"], "--data foo:bar: unknown kind 'foo'"),
    ("import", &["{onnx}", "--data", "idx:/nonexistent"], "no such directory"),
    ("import", &["{onnx}", "--out", "{out}", "--device", "cpu", "{onnx}"],
        "unexpected argument"),
    ("import", &["{onnx}", "--test-fraction", "0"], "--test-fraction 0: must be a number strictly"),
    ("import", &["{onnx}", "--seed", "-1"], "--seed -1: must be a whole number from 0 to"),
    ("import", &["{onnx}", "--mean", "x"], "--mean x: must be a finite number"),
    ("import", &["{onnx}", "--mean", "nan"], "--mean nan: must be a finite number"),
    ("import", &["{onnx}", "--std", "0"], "--std 0: must be a positive finite number"),
    ("import", &["{onnx}", "--std", "1,-2"], "--std -2: must be a positive finite number"),
    ("import", &["{onnx}", "--mean", "0,0", "--std", "1,1,1"],
        "--mean has 2 values and --std 3: give one value or one per channel to each"),
    ("import", &["{onnx}", "--device", "tpu"], "invalid value 'tpu' for '--device"),
    ("import", &["{onnx}", "--threads", "0"], "--threads 0: must be a whole number from 1 to 1024"),
    // ---- no subcommand, unknown subcommand
    ("", &[], "no subcommand given; expected one of train, eval, export, infer, report, compare, \
        import"),
    ("", &["bogus"], "unrecognized subcommand 'bogus'"),
];

/// The full argument list of row `i`: subcommand, the base pairs the row does not set, the
/// row's flags; placeholders filled in.
fn argv(tmp: &TempDir, i: usize, sub: &str, bad: &[&str]) -> Vec<String> {
    let base = BASE
        .iter()
        .find(|(s, _)| *s == sub)
        .expect("a known subcommand")
        .1;
    let mut v: Vec<&str> = Vec::new();
    if !sub.is_empty() {
        v.push(sub);
    }
    for (flag, value) in base {
        if !bad.contains(flag) {
            v.extend([*flag, *value]);
        }
    }
    v.extend(bad);
    v.iter()
        .map(|a| {
            a.replace("{out}", &tmp.s(&format!("o{i}")))
                .replace("{run}", &tmp.s("run"))
                .replace("{v2model}", &tmp.s("v2.dnrp"))
                .replace("{model}", &tmp.s("model.dnrp"))
                .replace("{onnx}", &tmp.s("model.onnx"))
                .replace("{demo}", &tmp.s("demo"))
        })
        .collect()
}

/// What went wrong with row `i`, if anything.
fn check(tmp: &TempDir, i: usize) -> Result<String, String> {
    let (sub, bad, needle) = ROWS[i];
    let args = argv(tmp, i, sub, bad);
    let o = Command::new(BIN)
        .args(&args)
        .env(denoiserep_trainer::run::ABORT_ENV, "1")
        .output()
        .expect("run denoiserep");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let mut faults = Vec::new();
    if o.status.code() != Some(2) {
        faults.push(format!("exit code {:?}", o.status.code()));
    }
    if !err.starts_with("denoiserep: error: ") || err.lines().count() != 1 {
        faults.push("not one 'denoiserep: error: ' line".into());
    }
    let needle = needle.replace("{out}", &tmp.s(&format!("o{i}")));
    if !err.contains(&needle) {
        faults.push(format!("no '{needle}'"));
    }
    if err.contains("panicked") {
        faults.push("panicked".into());
    }
    let prefix = format!("o{i}");
    let created: Vec<String> = std::fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n == &prefix || n.starts_with(&format!("{prefix}.")))
        .collect();
    if !created.is_empty() {
        faults.push(format!("created {created:?}"));
    }
    if faults.is_empty() {
        Ok(err.trim_end().to_string())
    } else {
        Err(format!(
            "{args:?}: {}\n    stderr: {err}",
            faults.join("; ")
        ))
    }
}

/// The 16-byte header of a format-2 model file (magic, version 2, reserved, body length, CRC):
/// the version is checked before anything after it, so this is all a loader reads.
const V2_HEADER: &[u8] = b"DNRP\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

/// The input fixtures: a run directory (only its config.json, which is all the parser looks
/// for), a model file, a format-2 model file and a demo folder. No row may change them.
fn fixtures(tmp: &TempDir) {
    std::fs::create_dir_all(tmp.path("run")).unwrap();
    std::fs::write(tmp.path("run/config.json"), "{}").unwrap();
    std::fs::write(tmp.path("model.dnrp"), "not a model").unwrap();
    std::fs::write(tmp.path("model.onnx"), "not read").unwrap();
    std::fs::write(tmp.path("v2.dnrp"), V2_HEADER).unwrap();
    std::fs::create_dir_all(tmp.path("demo")).unwrap();
}

fn fixtures_untouched(tmp: &TempDir) {
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&tmp.path("run")), ["config.json"]);
    assert_eq!(std::fs::read(tmp.path("run/config.json")).unwrap(), b"{}");
    assert_eq!(
        std::fs::read(tmp.path("model.dnrp")).unwrap(),
        b"not a model"
    );
    assert_eq!(std::fs::read(tmp.path("model.onnx")).unwrap(), b"not read");
    assert_eq!(std::fs::read(tmp.path("v2.dnrp")).unwrap(), V2_HEADER);
    assert!(names(&tmp.path("demo")).is_empty());
    assert_eq!(
        names(&tmp.0),
        ["demo", "model.dnrp", "model.onnx", "run", "v2.dnrp"]
    );
    assert_no_temp_files(&tmp.0);
}

/// `a` as it would be typed in a shell, for the markdown table.
fn quoted(a: &str) -> String {
    denoiserep_trainer::cli::shell_line([a.to_string()])
}

fn markdown(tmp: &TempDir, messages: &[String]) -> String {
    let root = tmp.0.to_string_lossy().into_owned();
    // Markdown code, or a dash for nothing; `|` escaped for the table.
    let cell = |t: String| {
        if t.is_empty() {
            "—".to_string()
        } else {
            format!("`{}`", t.replace('|', "\\|"))
        }
    };
    let mut md = String::from(
        "| subcommand | flag | bad value | message (after `denoiserep: error: `) |\n|---|---|---|---|\n",
    );
    for (i, ((sub, bad, _), msg)) in ROWS.iter().zip(messages).enumerate() {
        let flag = bad.first().copied().unwrap_or("");
        let value: Vec<String> = bad
            .iter()
            .skip(1)
            .map(|a| quoted(&a.replace("{out}", "OUT")))
            .collect();
        let msg = msg
            .trim_start_matches("denoiserep: error: ")
            .replace(&tmp.s(&format!("o{i}")), "OUT")
            .replace(&root, "$TMP")
            .replace('|', "\\|");
        md.push_str(&format!(
            "| {} | {} | {} | {msg} |\n",
            if sub.is_empty() { "(none)" } else { sub },
            cell(flag.to_string()),
            cell(value.join(" ")),
        ));
    }
    md
}

#[test]
fn every_bad_flag_of_every_subcommand_exits_2_before_any_work() {
    let tmp = TempDir::new("matrix");
    fixtures(&tmp);
    // Rows run four at a time (each is a process start and nothing else).
    let results: Vec<Result<String, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|k| {
                let tmp = &tmp;
                s.spawn(move || {
                    (k..ROWS.len())
                        .step_by(4)
                        .map(|i| (i, check(tmp, i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("row thread"))
            .collect();
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, r)| r).collect()
    });
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} rows failed:\n{}",
        failed.len(),
        ROWS.len(),
        failed
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    fixtures_untouched(&tmp);
    // Every subcommand has rows.
    for (sub, _) in BASE {
        assert!(ROWS.iter().any(|(s, _, _)| s == sub), "no rows for '{sub}'");
    }
    if let Some(path) = std::env::var_os("DENOISEREP_BAD_FLAGS_MD") {
        let messages: Vec<String> = results.into_iter().map(Result::unwrap).collect();
        std::fs::write(path, markdown(&tmp, &messages)).unwrap();
    }
}
