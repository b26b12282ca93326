//! `denoiserep compare` scaled out: `--jobs N` (child processes), `--emit-commands` (command
//! lines run elsewhere) and `--collect` (read them back) give the same runs and the same
//! `compare.json` as a plain `compare`; a failing child is reported with its log tail while the
//! others finish; `--collect` names every missing run with the command that produces it.

mod common;

use common::{run, stderr, TempDir, DATA};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const ARMS: [&str; 8] = [
    "baseline",
    "baseline-more",
    "null-control",
    "penalty-control",
    "analytic-shrinkage",
    "label-free",
    "label-guided",
    "label-guided-noise-grad",
];
const SEEDS: [u64; 2] = [0, 1];

fn ok(args: &[String]) -> Output {
    let o = run(args);
    assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
    o
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A small comparison: 2 seeds × 8 runs on the synthetic data, one thread per run.
fn compare_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
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
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// `v` without the keys that hold wall-clock times, the command line, how a run came to be,
/// or per-epoch seconds (everything else must be identical).
fn without_times(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in [
                    "wall_seconds",
                    "wall_seconds_mean",
                    "command",
                    "outcome",
                    "seconds",
                ] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// Same `compare.json` (minus times) and, per run, the same model bytes and metrics.
fn assert_same_comparison(a: &Path, b: &Path) {
    assert_eq!(
        without_times(json(&a.join("compare.json"))),
        without_times(json(&b.join("compare.json"))),
        "compare.json of {} and {}",
        a.display(),
        b.display()
    );
    for seed in SEEDS {
        for arm in ARMS {
            let run = format!("seed-{seed}/{arm}");
            assert_eq!(
                std::fs::read(a.join(&run).join("model.safetensors")).unwrap(),
                std::fs::read(b.join(&run).join("model.safetensors")).unwrap(),
                "{run}: model bytes"
            );
            assert_eq!(
                without_times(json(&a.join(&run).join("metrics.json"))),
                without_times(json(&b.join(&run).join("metrics.json"))),
                "{run}: metrics"
            );
        }
    }
}

/// The lines of `--emit-commands` output that are commands (not `#` comments).
fn commands(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

/// Runs one emitted line through the shell (as a job array or GNU parallel would).
fn sh(line: &str) {
    let o = Command::new("sh")
        .arg("-c")
        .arg(line)
        .env_remove(denoiserep_trainer::run::ABORT_ENV)
        .output()
        .unwrap();
    assert!(o.status.success(), "{line}: {}", stderr(&o));
}

#[test]
fn jobs_and_emitted_commands_with_collect_equal_a_plain_compare() {
    let tmp = TempDir::new("modes");
    let (plain, par, hand) = (tmp.path("plain"), tmp.path("jobs2"), tmp.path("hand"));

    // 1. The plain comparison, in this process, one run at a time.
    let t = std::time::Instant::now();
    ok(&compare_args(&plain, &[]));
    let plain_s = t.elapsed().as_secs_f64();

    // 2. The same with two child processes at a time.
    let t = std::time::Instant::now();
    let o = ok(&compare_args(&par, &["--jobs", "2"]));
    let par_s = t.elapsed().as_secs_f64();
    let err = stderr(&o);
    assert_eq!(err.matches("in a child process, log ").count(), 16, "{err}");
    assert_eq!(err.matches(": trained in ").count(), 16, "{err}");
    // A seed's arms start only after its baseline finished.
    for seed in SEEDS {
        let done = err
            .find(&format!("seed {seed} baseline: trained in"))
            .unwrap();
        for arm in &ARMS[1..] {
            let start = err
                .find(&format!("seed {seed} {arm}: training"))
                .unwrap_or_else(|| panic!("seed {seed} {arm} never started: {err}"));
            assert!(
                start > done,
                "seed {seed} {arm} started before its baseline"
            );
        }
    }
    let log = std::fs::read_to_string(par.join("seed-1/label-guided/train.log")).unwrap();
    assert!(log.starts_with("# denoiserep compare: "), "{log}");
    assert!(log.contains("epoch 2/2"), "{log}");
    assert!(log.contains("test accuracy"), "{log}");
    assert_same_comparison(&plain, &par);
    eprintln!("plain compare {plain_s:.1} s, --jobs 2 {par_s:.1} s");

    // 3. The command lines: printed, nothing written.
    let o = ok(&compare_args(&hand, &["--emit-commands"]));
    assert!(!hand.exists(), "--emit-commands created {}", hand.display());
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("# denoiserep compare --data"),
        "{text}"
    );
    let stage2 = lines
        .iter()
        .position(|l| l.starts_with("# stage 2: arms"))
        .unwrap_or_else(|| panic!("no stage-2 comment: {text}"));
    let cmds = commands(&text);
    assert_eq!(cmds.len(), 16, "{text}");
    let exe = std::fs::canonicalize(common::BIN).unwrap();
    let hand_abs = std::fs::canonicalize(&tmp.0).unwrap().join("hand");
    for (i, line) in lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#'))
    {
        let baseline = i < stage2;
        let words: Vec<&str> = line.split(' ').collect();
        assert_eq!(
            std::fs::canonicalize(words[0]).unwrap(),
            exe,
            "not this binary: {line}"
        );
        assert_eq!(words[1], "train", "{line}");
        let value = |flag: &str| {
            words
                .iter()
                .position(|w| *w == flag)
                .map(|k| words[k + 1])
                .unwrap_or_else(|| panic!("no {flag} in {line}"))
        };
        for flag in [
            "--seed",
            "--threads",
            "--epochs",
            "--lr",
            "--batch-size",
            "--data",
            "--data-dir",
            "--device",
        ] {
            value(flag);
        }
        assert_eq!(value("--threads"), "1");
        assert!(Path::new(value("--data-dir")).is_absolute(), "{line}");
        let out = Path::new(value("--out"));
        assert!(out.is_absolute(), "{line}");
        let seed = value("--seed");
        assert!(
            out.starts_with(hand_abs.join(format!("seed-{seed}"))),
            "{line}"
        );
        assert_eq!(out.file_name().unwrap() == "baseline", baseline, "{line}");
        if baseline {
            assert!(!line.contains("--init"), "{line}");
        } else {
            let init = Path::new(value("--init"));
            assert_eq!(
                init,
                hand_abs.join(format!("seed-{seed}/baseline")),
                "{line}"
            );
        }
    }

    // 4. Run stage 1 and half of stage 2 by hand: --collect names every missing run with the
    //    command that produces it, exits 2 and writes nothing.
    let (done, left) = cmds.split_at(2 + 7);
    done.iter().for_each(|l| sh(l));
    let o = run(&compare_args(&hand, &["--collect"]));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("denoiserep: error: --collect: 7 of 16 runs are missing or unfinished"),
        "{err}"
    );
    for line in left {
        assert!(
            err.contains(&format!("produce it with: {line}")),
            "{line}\n{err}"
        );
    }
    assert!(
        err.contains("seed-1/label-guided-noise-grad: missing (no config.json)"),
        "{err}"
    );
    assert!(!hand.join("compare.json").exists());

    // 5. The rest, then --collect: the plain comparison's report and runs.
    left.iter().for_each(|l| sh(l));
    let o = ok(&compare_args(&hand, &["--collect"]));
    let err = stderr(&o);
    assert_eq!(
        err.matches(": reused (trained earlier in ").count(),
        16,
        "{err}"
    );
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("primary: label-guided − null-control on top-1: "),
        "{out}"
    );
    assert_same_comparison(&plain, &hand);
    let c = json(&hand.join("compare.json"));
    assert!(c["runs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "reused" && r["wall_seconds"].as_f64().unwrap() > 0.0));
    assert!(c["command"].as_str().unwrap().contains("--collect"));
}

#[test]
fn a_failing_child_shows_its_log_while_the_others_finish() {
    let tmp = TempDir::new("fail");
    let out = tmp.path("cmp");
    let mut args = compare_args(
        &out,
        &[
            "--jobs",
            "2",
            "--variant",
            "boom=--regime baseline --lr 1e30",
        ],
    );
    args[6] = "1".into(); // --seeds 1
    let o = run(&args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("compare [9/9] seed 0 boom: the child process failed"),
        "{err}"
    );
    // The tail of its log, indented, with the trainer's own error.
    assert!(
        err.contains("    denoiserep: error: training diverged: loss is NaN"),
        "{err}"
    );
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with(
            "denoiserep: error: 1 of 9 runs failed: seed 0 boom (exit status: 2; log "
        ),
        "{last}"
    );
    for arm in ARMS {
        assert!(
            out.join(format!("seed-0/{arm}/metrics.json")).is_file(),
            "{arm} did not finish"
        );
    }
    assert!(!out.join("seed-0/boom/metrics.json").exists());
    assert!(!out.join("compare.json").exists());
    // --collect names it too, with the command that would produce it.
    let mut collect = compare_args(
        &out,
        &["--variant", "boom=--regime baseline --lr 1e30", "--collect"],
    );
    collect[6] = "1".into();
    let o = run(&collect);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("1 of 9 runs are missing or unfinished"),
        "{err}"
    );
    assert!(
        err.contains("seed-0/boom: unfinished (no metrics.json); produce it with: "),
        "{err}"
    );
    assert!(err.contains("--lr 1e30"), "{err}");
}

#[test]
fn ten_seeds_are_planned_with_every_flag_explicit_even_without_threads() {
    let tmp = TempDir::new("ten");
    let out = tmp.path("cmp");
    let args: Vec<String> = compare_args(&out, &["--emit-commands"])
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !(15..=16).contains(i)) // no --threads 1
        .map(|(i, a)| if i == 6 { "10".into() } else { a })
        .collect();
    assert!(!args.iter().any(|a| a == "--threads"), "{args:?}");
    let o = ok(&args);
    assert!(!out.exists());
    let text = String::from_utf8(o.stdout).unwrap();
    let cmds = commands(&text);
    assert_eq!(cmds.len(), 10 * 8, "{text}");
    for (k, line) in cmds.iter().enumerate() {
        // Baselines of seeds 0–9 first, then the arms.
        let words: Vec<&str> = line.split(' ').collect();
        let out = words[words.iter().position(|w| *w == "--out").unwrap() + 1];
        assert_eq!(out.ends_with("/baseline"), k < 10, "{line}");
        let threads = words
            .iter()
            .position(|w| *w == "--threads")
            .map(|i| words[i + 1].parse::<i32>().unwrap())
            .unwrap_or_else(|| panic!("no --threads: {line}"));
        assert!(threads >= 1, "{line}");
    }
    assert!(cmds[9].contains("--seed 9 "), "{}", cmds[9]);
}

#[test]
fn augment_and_weight_decay_reach_every_run() {
    let tmp = TempDir::new("recipe");
    let out = tmp.path("cmp");
    let o = ok(&compare_args(
        &out,
        &[
            "--emit-commands",
            "--augment",
            "shift:2",
            "--weight-decay",
            "0.05",
        ],
    ));
    let text = String::from_utf8(o.stdout).unwrap();
    let cmds = commands(&text);
    assert_eq!(cmds.len(), 2 * 8, "{text}");
    for line in &cmds {
        assert!(line.contains(" --augment shift:2 "), "{line}");
        assert!(line.contains(" --weight-decay 0.05 "), "{line}");
    }
    // The defaults add neither flag (runs of earlier comparisons stay reusable).
    let o = ok(&compare_args(&out, &["--emit-commands"]));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(!text.contains("--augment"), "{text}");
    assert!(!text.contains("--weight-decay"), "{text}");
}
