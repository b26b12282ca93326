//! Sweeps that scale out: `compare --jobs N` (runs as child processes of this binary, N at a
//! time, each seed's baseline before that seed's arms) and `compare --collect` (read back the
//! runs of `--emit-commands` lines that ran elsewhere).
//!
//! A child runs exactly the command line `--emit-commands` prints for its run (plus `--resume`
//! or `--force` when the directory calls for it), so a run's bytes do not depend on how it was
//! started: the flags, the seed, the data order and `--threads` are the same.

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{mismatch, prepare, record, run, write_wall, Action, ArmRun, CompareRequest};
use super::{Outcome, Planned};
use super::{Role, LOG};
use crate::cli::shell_line;

/// Lines of a failed child's log shown on stderr.
pub const TAIL_LINES: usize = 15;

/// The last `n` lines of a text file (fewer when it is shorter; a note when unreadable).
pub fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(b) => {
            let text = String::from_utf8_lossy(&b);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("({}: cannot read: {e})", path.display()),
    }
}

/// Logical CPUs of this machine (1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A child process training one planned run.
struct Running {
    index: usize,
    child: Child,
    started: Instant,
    outcome: Outcome,
    log: PathBuf,
}

/// Starts the child of plan entry `p` with `req`'s resume/force, output appended to its log.
fn spawn(exe: &Path, p: &Planned, resume: bool, force: bool) -> Result<(Child, PathBuf)> {
    let dir = &p.req.out;
    fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create directory", dir.display()))?;
    let log_path = dir.join(LOG);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("{}: cannot open", log_path.display()))?;
    let mut args: Vec<String> = vec!["train".into()];
    args.extend(p.argv.iter().cloned());
    if resume {
        args.push("--resume".into());
    }
    if force {
        args.push("--force".into());
    }
    writeln!(
        log,
        "# denoiserep compare: {}",
        shell_line(std::iter::once(exe.to_string_lossy().into_owned()).chain(args.clone()))
    )?;
    let err = log.try_clone()?;
    let child = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    Ok((child, log_path))
}

/// Trains, resumes or reuses every planned run with up to `jobs` child processes of this binary
/// at a time. A seed's arms start only after its baseline finished. A failed run's log tail is
/// shown when it fails; the other runs go on (the arms of a failed baseline are skipped), and
/// the error at the end names every failed and skipped run. Returns the runs in plan order.
pub fn run_parallel(
    creq: &CompareRequest,
    planned: &[Planned],
    jobs: usize,
    threads: i32,
) -> Result<Vec<ArmRun>> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let cores = cores();
    if jobs * threads as usize > cores {
        eprintln!(
            "compare: note: --jobs {jobs} × --threads {threads} = {} libtorch threads on {cores} \
             logical CPUs (oversubscribed). Every run gets --threads {threads} whatever --jobs is, \
             so the results equal --jobs 1's; pass --threads {} to avoid oversubscription (one \
             --threads value per comparison: a CNN's bits depend on it)",
            jobs * threads as usize,
            (cores / jobs).max(1)
        );
    }
    let total = planned.len();
    let label = |i: usize| format!("[{}/{total}] {}", i + 1, planned[i].name());
    // Baselines first (they unblock their seed's arms); arms join as their baseline finishes.
    let mut ready: VecDeque<usize> = (0..total)
        .filter(|&i| planned[i].arm.role == Role::Start)
        .collect();
    let arms_of = |seed: u64| -> Vec<usize> {
        (0..total)
            .filter(|&i| planned[i].seed == seed && planned[i].arm.role != Role::Start)
            .collect()
    };
    let mut done: Vec<Option<ArmRun>> = vec![None; total];
    let mut failed: Vec<String> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut running: Vec<Running> = Vec::new();
    // A finished (or reused) run: its record, and its seed's arms when it is a baseline.
    let mut finish = |i: usize,
                      r: Result<ArmRun>,
                      ready: &mut VecDeque<usize>,
                      failed: &mut Vec<String>,
                      skipped: &mut Vec<String>| {
        match r {
            Ok(run) => {
                if planned[i].arm.role == Role::Start {
                    ready.extend(arms_of(planned[i].seed));
                }
                done[i] = Some(run);
            }
            Err(e) => {
                eprintln!("compare {}: failed: {e:#}", label(i));
                failed.push(format!("{} ({e:#})", planned[i].name()));
                if planned[i].arm.role == Role::Start {
                    skipped.extend(arms_of(planned[i].seed).iter().map(|&j| planned[j].name()));
                }
            }
        }
    };
    loop {
        while running.len() < jobs {
            let Some(i) = ready.pop_front() else { break };
            let p = &planned[i];
            match prepare(creq, p) {
                Ok(Action::Reuse) => {
                    let r = record(creq, p, Outcome::Reused, None, &label(i));
                    finish(i, r, &mut ready, &mut failed, &mut skipped);
                }
                Ok(Action::Train(req, outcome)) => match spawn(&exe, p, req.resume, req.force) {
                    Ok((child, log)) => {
                        eprintln!(
                            "compare {}: {} ({} epochs) in a child process, log {}…",
                            label(i),
                            if outcome == Outcome::Resumed {
                                "resuming"
                            } else {
                                "training"
                            },
                            req.cfg.epochs,
                            log.display()
                        );
                        running.push(Running {
                            index: i,
                            child,
                            started: Instant::now(),
                            outcome,
                            log,
                        });
                    }
                    Err(e) => finish(i, Err(e), &mut ready, &mut failed, &mut skipped),
                },
                Err(e) => finish(i, Err(e), &mut ready, &mut failed, &mut skipped),
            }
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut k = 0;
        while k < running.len() {
            let status = running[k]
                .child
                .try_wait()
                .with_context(|| format!("waiting for {}", label(running[k].index)))?;
            let Some(status) = status else {
                k += 1;
                continue;
            };
            let r = running.swap_remove(k);
            let i = r.index;
            let wall = r.started.elapsed().as_secs_f64();
            let result = if status.success() {
                write_wall(&planned[i].req.out, wall)
                    .and_then(|()| record(creq, &planned[i], r.outcome, Some(wall), &label(i)))
            } else {
                eprintln!(
                    "compare {}: the child process failed ({status}); last lines of {}:\n{}",
                    label(i),
                    r.log.display(),
                    tail(&r.log, TAIL_LINES)
                        .lines()
                        .map(|l| format!("    {l}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                Err(anyhow::anyhow!("{status}; log {}", r.log.display()))
            };
            finish(i, result, &mut ready, &mut failed, &mut skipped);
        }
    }
    if !failed.is_empty() {
        let mut msg = format!(
            "{} of {total} runs failed: {}",
            failed.len(),
            failed.join("; ")
        );
        if !skipped.is_empty() {
            msg.push_str(&format!(
                "; not started because their baseline failed: {}",
                skipped.join(", ")
            ));
        }
        bail!(msg);
    }
    done.into_iter()
        .enumerate()
        .map(|(i, r)| r.with_context(|| format!("internal: {} was never run", planned[i].name())))
        .collect()
}

/// `--collect`: the records of every planned run from its finished run directory, without
/// training anything. Every run must be complete, with the planned settings, and (for an arm)
/// started after its baseline finished; otherwise the error lists every run that is not, with
/// the command line that produces it.
pub fn collect(creq: &CompareRequest, planned: &[Planned]) -> Result<Vec<ArmRun>> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let mut problems = Vec::new();
    for p in planned {
        let dir = &p.req.out;
        let why = if !dir.join(run::CONFIG).is_file() {
            Some("missing (no config.json)".to_string())
        } else if !dir.join(run::METRICS).is_file() {
            Some("unfinished (no metrics.json)".to_string())
        } else {
            let base_model = p.req.cfg.init.as_ref().map(|b| b.join(run::MODEL));
            let stored = run::read_config(dir)?;
            mismatch(&stored, &p.req.cfg, base_model.as_deref(), dir)?
        };
        if let Some(why) = why {
            let line = shell_line(
                [exe.to_string_lossy().into_owned(), "train".into()]
                    .into_iter()
                    .chain(p.argv.iter().cloned()),
            );
            problems.push(format!("{}: {why}; produce it with: {line}", dir.display()));
        }
    }
    if !problems.is_empty() {
        bail!(
            "--collect: {} of {} runs are missing or unfinished (run them, e.g. from \
             --emit-commands, then --collect again):\n  {}",
            problems.len(),
            planned.len(),
            problems.join("\n  ")
        );
    }
    let total = planned.len();
    planned
        .iter()
        .enumerate()
        .map(|(i, p)| {
            record(
                creq,
                p,
                Outcome::Reused,
                None,
                &format!("[{}/{total}] {}", i + 1, p.name()),
            )
        })
        .collect()
}
