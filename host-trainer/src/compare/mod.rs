//! `denoiserep compare`: baseline vs DenoiseRep at equal budget, with controls, over seeds.
//!
//! Per seed `s`, `DIR/seed-s/baseline` trains `--epochs E` from scratch; from that checkpoint
//! every arm trains `--extra-epochs E2` more epochs, all with the same data order (epoch `e` of
//! every arm draws its order from `mix(s, e + 2^32)`):
//!
//! | # | arm | train flags |
//! |---|---|---|
//! | (1) | `baseline-more` | `--regime baseline` |
//! | (2) | `null-control` | `--regime baseline --schedule label-guided` (CE in label-guided's B epochs only) |
//! | (3) | `penalty-control` | `--regime penalty-control --schedule label-guided` |
//! | (4) | `analytic-shrinkage` | `--regime label-free --denoiser-fit closed-form` (the L2-optimal denoisers, no training; backbone = the baseline's) |
//! | (5) | `label-free` | `--regime label-free` |
//! | (6) | `label-guided` | `--regime label-guided` |
//! | (7) | `label-guided-noise-grad` | `--regime label-guided --noise-grad` |
//!
//! plus one arm per `--variant NAME=FLAGS`. The shared options (`--lr`, `--lambda`,
//! `--phase-epochs` = E2/2 by default, …) go to every arm; an arm's own flags replace them.
//!
//! [`stats`] holds the statistics (paired differences, 95 % Student-t intervals) and the verdict
//! rule, [`report`] writes `compare.json` and `compare.md`, [`plot`] writes `compare.png`, and
//! [`dose`] `dose-response.png` when variants named `FAMILY-bBETA` sweep β. An arm
//! whose directory already holds a complete run with the same settings, trained after its
//! baseline, is reused; an unfinished one is resumed; anything else needs `--force`.
//!
//! [`Mode`] says how the runs come to be: trained here one after the other (`--jobs 1`, in this
//! process), as up to N child processes of this binary at a time ([`sweep`], `--jobs N`), by
//! hand or by a cluster from printed command lines ([`emit_commands`], `--emit-commands`), then
//! only read back (`--collect`). Every way trains every run with the same `train` flags, so the
//! results do not depend on the way.

pub mod arms;
pub mod dose;
pub mod plot;
pub mod report;
pub mod stats;
pub mod sweep;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::cli::rules;
use crate::eval::corrupt::{Corruption, CORRUPTIONS};
use crate::eval::Metrics;
use crate::run::{self, RunConfig, TrainRequest};
use crate::train::{backbone_epochs, LrSchedule, TrainConfig};

pub use arms::{Arm, Role};

/// File names in `DIR`.
pub const JSON: &str = "compare.json";
pub const MARKDOWN: &str = "compare.md";
pub const PNG: &str = "compare.png";
/// Written into an arm's run directory when it completes: its training wall time.
pub const WALL: &str = "wall.json";
/// In an arm's run directory when it ran as a child process (`--jobs N > 1`): the child's
/// stdout and stderr, appended per attempt.
pub const LOG: &str = "train.log";

/// Options of one comparison (everything `denoiserep compare` was given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub data: String,
    pub data_dir: PathBuf,
    pub test_fraction: f64,
    pub arch: String,
    pub seeds: Vec<u64>,
    pub epochs: usize,
    pub extra_epochs: usize,
    pub phase_epochs: usize,
    pub lr: f64,
    pub lr_schedule: LrSchedule,
    pub batch_size: usize,
    /// `--labels N` of every run (absent in files written before it existed: all labels).
    #[serde(default)]
    pub labels: Option<usize>,
    /// `--augment` of every run (absent in files written before it existed: none).
    #[serde(default)]
    pub augment: crate::augment::Augment,
    /// `--weight-decay` of every run (absent in files written before it existed: 0).
    #[serde(default)]
    pub weight_decay: f64,
    pub lambda: f64,
    pub t_stride: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    pub timesteps: usize,
    pub device: String,
    pub threads: Option<i32>,
    /// Equivalence margin of the verdict rule, in percentage points (`--equivalence-margin`;
    /// absent in files written before it existed: the default).
    #[serde(default = "default_margin_pp")]
    pub equivalence_margin_pp: f64,
}

fn default_margin_pp() -> f64 {
    stats::DEFAULT_MARGIN_PP
}

/// How the runs of a comparison come to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Train, resume or reuse every run, `jobs` at a time: 1 in this process, more as child
    /// processes of this binary ([`sweep::run_parallel`]).
    Run { jobs: usize },
    /// Print every run's `train` command line and nothing else ([`emit_commands`]).
    EmitCommands,
    /// Read the finished runs of earlier command lines ([`sweep::collect`]).
    Collect,
}

/// A comparison to run.
#[derive(Debug, Clone)]
pub struct CompareRequest {
    pub settings: Settings,
    /// `--variant` arms, in command-line order.
    pub variants: Vec<Arm>,
    pub out: PathBuf,
    pub force: bool,
    /// The command line, quoted for a POSIX shell (recorded in the outputs).
    pub command: String,
    /// Show the trainer's progress bars and per-epoch lines.
    pub progress: bool,
    pub mode: Mode,
}

/// How an arm's run came to be in this invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Trained,
    Resumed,
    Reused,
}

/// One seed's run of one arm, with its headline metrics (fractions in `[0, 1]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmRun {
    pub arm: String,
    pub seed: u64,
    /// Relative to `DIR`.
    pub dir: PathBuf,
    pub outcome: Outcome,
    /// Wall seconds of the training (+ evaluation) that produced the run; for a resumed run only
    /// the resumed part.
    pub wall_seconds: f64,
    pub epochs: usize,
    /// Epochs that trained the backbone with CE (label-guided: its B epochs).
    pub backbone_epochs: usize,
    pub metrics: HeadlineMetrics,
    /// The secondary metrics of [`secondary_keys`] the run has: top-1 under each corruption of
    /// `metrics.json` `corruptions` by [`Corruption::key`] (`salt-pepper:0.05`, …), under each
    /// feature-noise level of `metrics.json` `feature_noise` (`feature-noise:0.5`, …), and the
    /// exported int8 model's top-1 through the core and its drop from the exported f32 model's
    /// (`int8`, `int8-drop`; [`crate::export::accuracy`]). A run evaluated before a metric
    /// existed lacks it (re-evaluate it with `denoiserep eval`).
    #[serde(default, alias = "corruptions")]
    pub secondary: BTreeMap<String, f64>,
}

/// Key of the exported int8 model's top-1 (through the core).
pub const INT8_KEY: &str = "int8";
/// Key of the int8 − f32 top-1 of the exported models.
pub const INT8_DROP_KEY: &str = "int8-drop";

/// The key of a feature-noise level (`feature-noise:0.5`).
pub fn feature_noise_key(s: f64) -> String {
    format!("feature-noise:{s}")
}

/// The keys of the secondary metrics, in report order: the corruptions ([`CORRUPTIONS`]), the
/// feature-noise levels ([`run::FEATURE_NOISE_LEVELS`]), then [`INT8_KEY`] and [`INT8_DROP_KEY`].
pub fn secondary_keys() -> Vec<String> {
    CORRUPTIONS
        .iter()
        .map(Corruption::key)
        .chain(
            run::FEATURE_NOISE_LEVELS
                .iter()
                .map(|&s| feature_noise_key(s)),
        )
        .chain([INT8_KEY.to_string(), INT8_DROP_KEY.to_string()])
        .collect()
}

/// A run's secondary metrics ([`ArmRun::secondary`]): what its `metrics.json` has (corruption
/// severities and feature-noise levels match to 1e-6) and, when given, its device accuracy.
pub fn secondary_values(
    m: &Metrics,
    device: Option<&crate::export::accuracy::DeviceAccuracy>,
) -> BTreeMap<String, f64> {
    let corruptions = CORRUPTIONS.iter().filter_map(|c| {
        m.corruptions
            .iter()
            .find(|p| p.kind == c.kind && (p.severity - c.severity).abs() < 1e-6)
            .map(|p| (c.key(), p.accuracy))
    });
    let feature = run::FEATURE_NOISE_LEVELS.iter().filter_map(|&s| {
        m.feature_noise
            .iter()
            .find(|p| p.s.is_some_and(|x| (x - s).abs() < 1e-6))
            .map(|p| (feature_noise_key(s), p.accuracy))
    });
    let int8 = device.into_iter().flat_map(|d| {
        [
            (INT8_KEY.to_string(), d.int8_accuracy),
            (INT8_DROP_KEY.to_string(), d.int8_drop()),
        ]
    });
    corruptions.chain(feature).chain(int8).collect()
}

/// The compared metrics of one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadlineMetrics {
    pub top1: f64,
    pub map: f64,
    pub rank1: f64,
    /// Top-1 with Gaussian input noise σ = 0.1 (pixel units).
    pub robust_0_1: f64,
    /// Top-1 with Gaussian input noise σ = 0.3.
    pub robust_0_3: f64,
}

/// A compared metric: key (JSON), label (tables) and accessor.
pub type MetricDef = (&'static str, &'static str, fn(&HeadlineMetrics) -> f64);

/// The metrics of a comparison, in table order.
pub const METRICS: [MetricDef; 5] = [
    ("top1", "top-1", |m| m.top1),
    ("map", "mAP", |m| m.map),
    ("rank1", "Rank-1", |m| m.rank1),
    ("robust_0_1", "σ=0.1", |m| m.robust_0_1),
    ("robust_0_3", "σ=0.3", |m| m.robust_0_3),
];

impl HeadlineMetrics {
    /// Reads them from a run's metrics; a missing σ is an error naming the run.
    pub fn from_metrics(m: &Metrics, dir: &Path) -> Result<Self> {
        let at = |sigma: f32| {
            m.noise_robustness
                .iter()
                .find(|p| (p.sigma - sigma).abs() < 1e-6)
                .map(|p| p.accuracy)
                .with_context(|| {
                    format!(
                        "{}: no robustness point at σ = {sigma}",
                        dir.join(run::METRICS).display()
                    )
                })
        };
        Ok(Self {
            top1: m.test_accuracy,
            map: m.retrieval_map,
            rank1: m.retrieval_rank1,
            robust_0_1: at(0.1)?,
            robust_0_3: at(0.3)?,
        })
    }
}

/// What `compare` produced.
#[derive(Debug, Clone)]
pub struct CompareOutcome {
    pub report: report::Report,
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub png: PathBuf,
}

/// Checks the options: 1 ..= [`rules::MAX_SEEDS`] seeds (no duplicates), `--epochs` and
/// `--extra-epochs` by [`rules::epochs`], and a phase length that gives label-guided a B epoch
/// (`1 ≤ P < E2`; an explicit `--phase-epochs` was checked by the same rule when parsed). The
/// options every arm gets are checked per arm by [`run::validate`] when the runs are planned.
pub fn validate(s: &Settings) -> Result<()> {
    rules::flag("--seeds", s.seeds.len(), rules::seeds)?;
    let mut sorted = s.seeds.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        bail!("--seed-list: seed {} appears twice", w[0]);
    }
    if s.arch.trim() == "autoencoder" {
        // Every compare statistic is a top-1 / retrieval / accuracy-under-noise difference.
        bail!(
            "--arch autoencoder: compare contrasts classification metrics (top-1, accuracy under \
             noise), which a reconstruction model has none of; train its regimes with \
             `denoiserep train` and compare their metrics.json reconstruction.anomaly.auc"
        );
    }
    rules::flag("--epochs", s.epochs, rules::epochs)?;
    rules::flag("--extra-epochs", s.extra_epochs, rules::epochs)?;
    rules::flag(
        "--equivalence-margin",
        s.equivalence_margin_pp,
        rules::equivalence_margin,
    )?;
    // Within the epoch rule's range once below --extra-epochs; a 0 is usually the default
    // (E2 / 2 of --extra-epochs 1), which this message explains.
    if s.phase_epochs == 0 || s.phase_epochs >= s.extra_epochs {
        bail!(
            "--phase-epochs {} with --extra-epochs {}: label-guided needs 1 ≤ phase < extra epochs to reach a B phase (default phase: extra epochs / 2, so --extra-epochs ≥ 2)",
            s.phase_epochs,
            s.extra_epochs
        );
    }
    Ok(())
}

/// The `train` options every arm gets, as `(flag, value)` pairs.
fn shared_flags(s: &Settings) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("--lr", s.lr.to_string()),
        ("--batch-size", s.batch_size.to_string()),
        (
            "--lr-schedule",
            match s.lr_schedule {
                LrSchedule::Constant => "constant".into(),
                LrSchedule::Cosine => "cosine".into(),
            },
        ),
        ("--lambda", s.lambda.to_string()),
        ("--phase-epochs", s.phase_epochs.to_string()),
        ("--t-stride", s.t_stride.to_string()),
        ("--beta-start", s.beta_start.to_string()),
        ("--beta-end", s.beta_end.to_string()),
        ("--timesteps", s.timesteps.to_string()),
        ("--test-fraction", s.test_fraction.to_string()),
    ]
    .into_iter()
    .map(|(f, v)| (f.to_string(), v))
    .collect();
    v.push(("--data-dir".into(), path_arg(&s.data_dir)));
    if let Some(n) = s.labels {
        v.push(("--labels".into(), n.to_string()));
    }
    if s.augment != crate::augment::Augment::default() {
        v.push(("--augment".into(), s.augment.to_string()));
    }
    if s.weight_decay != 0.0 {
        v.push(("--weight-decay".into(), s.weight_decay.to_string()));
    }
    v
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The per-run flags: data, device, threads (when given), seed, epochs, init and out.
fn fixed_flags(
    s: &Settings,
    threads: Option<i32>,
    seed: u64,
    epochs: usize,
    init: Option<&Path>,
    out: &Path,
) -> Vec<String> {
    let mut v = vec![
        "--data".to_string(),
        s.data.clone(),
        "--device".into(),
        s.device.clone(),
        "--seed".into(),
        seed.to_string(),
        "--epochs".into(),
        epochs.to_string(),
        "--out".into(),
        path_arg(out),
    ];
    if let Some(t) = threads {
        v.extend(["--threads".into(), t.to_string()]);
    }
    if let Some(i) = init {
        v.extend(["--init".into(), path_arg(i)]);
    }
    v
}

/// Every arm of this comparison after the start, in report order.
pub fn all_arms(variants: &[Arm]) -> Vec<Arm> {
    let mut v = arms::builtin();
    v.extend(variants.iter().cloned());
    v
}

/// `path` made absolute against the current directory (it need not exist).
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path)
        .with_context(|| format!("{}: cannot make the path absolute", path.display()))
}

/// A `--data` spec with its folder or file made absolute (`idx:DIR`, `cifar10:DIR`,
/// `csv:FILE`); other specs unchanged.
pub fn absolute_data_spec(spec: &str) -> Result<String> {
    match spec.split_once(':') {
        Some((kind @ ("idx" | "cifar10" | "csv"), arg)) if !arg.is_empty() => Ok(format!(
            "{kind}:{}",
            absolute(Path::new(arg))?.to_string_lossy()
        )),
        _ => Ok(spec.to_string()),
    }
}

/// The libtorch thread count every run of the comparison gets: `--threads`, else libtorch's
/// default for this machine (its physical core count), whatever `--jobs` is.
pub fn effective_threads(s: &Settings) -> i32 {
    s.threads.unwrap_or_else(|| tch::get_num_threads().max(1))
}

/// One planned run: its arm, seed, train request and `train` command line.
pub struct Planned {
    pub arm: Arm,
    pub seed: u64,
    /// The request as `compare --jobs 1` trains it in this process (paths as given).
    pub req: TrainRequest,
    /// `train`'s arguments for a child process or a printed command: every flag explicit,
    /// paths absolute, `--threads` the comparison's effective count.
    pub argv: Vec<String>,
}

impl Planned {
    /// What a run is called in progress lines and errors: `seed S ARM`.
    pub fn name(&self) -> String {
        format!("seed {} {}", self.seed, self.arm.name)
    }
}

/// The from-scratch baseline of every seed.
fn start_arm(arch: &str) -> Arm {
    Arm {
        name: arms::START.into(),
        role: Role::Start,
        flags: vec![
            "--regime".into(),
            "baseline".into(),
            "--arch".into(),
            arch.to_string(),
        ],
    }
}

/// Builds every run's request and command line up front, so a bad variant or option fails
/// before any training. Order: per seed, its baseline, then its arms in report order.
pub fn plan(req: &CompareRequest, threads: i32) -> Result<Vec<Planned>> {
    let s = &req.settings;
    let shared = shared_flags(s);
    // The same settings with absolute paths, for command lines that run anywhere.
    let mut abs = s.clone();
    abs.data_dir = absolute(&s.data_dir)?;
    abs.data = absolute_data_spec(&s.data)?;
    let abs_shared = shared_flags(&abs);
    let abs_out = absolute(&req.out)?;
    let start = start_arm(&s.arch);
    let mut out = Vec::new();
    for &seed in &s.seeds {
        let base_dir = arms::run_dir(&req.out, seed, arms::START);
        let abs_base = arms::run_dir(&abs_out, seed, arms::START);
        let runs = std::iter::once((start.clone(), s.epochs, None)).chain(
            all_arms(&req.variants)
                .into_iter()
                .map(|a| (a, s.extra_epochs, Some(()))),
        );
        for (arm, epochs, init) in runs {
            let what = match arm.role {
                Role::Start => "baseline".to_string(),
                Role::Variant => format!("variant '{}'", arm.name),
                _ => format!("arm '{}'", arm.name),
            };
            let dir = arms::run_dir(&req.out, seed, &arm.name);
            let fixed = fixed_flags(
                s,
                s.threads,
                seed,
                epochs,
                init.map(|()| base_dir.as_path()),
                &dir,
            );
            let r = arms::request(&what, &shared, &arm.flags, &fixed, req.progress)?;
            run::validate(&r.cfg).with_context(|| what.clone())?;
            let abs_fixed = fixed_flags(
                &abs,
                Some(threads),
                seed,
                epochs,
                init.map(|()| abs_base.as_path()),
                &arms::run_dir(&abs_out, seed, &arm.name),
            );
            let argv = arms::train_argv(&abs_shared, &arm.flags, &abs_fixed);
            out.push(Planned {
                arm,
                seed,
                req: r,
                argv,
            });
        }
    }
    Ok(out)
}

/// The arms of the report: the start, then [`all_arms`].
fn report_arms(variants: &[Arm]) -> Vec<Arm> {
    std::iter::once(Arm {
        name: arms::START.into(),
        role: Role::Start,
        flags: vec!["--regime".into(), "baseline".into()],
    })
    .chain(all_arms(variants))
    .collect()
}

/// Runs the comparison by its [`Mode`] (`Run` or `Collect`): trains, resumes or reuses every
/// arm of every seed, or reads them back, then writes `compare.json`, `compare.md` and
/// `compare.png` into `DIR`.
pub fn compare(req: &CompareRequest) -> Result<CompareOutcome> {
    let started = Instant::now();
    validate(&req.settings)?;
    let threads = effective_threads(&req.settings);
    let planned = plan(req, threads)?;
    let runs = match req.mode {
        Mode::EmitCommands => {
            bail!("internal: --emit-commands writes no report (see compare::emit_commands)")
        }
        Mode::Collect => sweep::collect(req, &planned)?,
        Mode::Run { jobs } => {
            fs::create_dir_all(&req.out)
                .with_context(|| format!("--out {}: cannot create directory", req.out.display()))?;
            if jobs > 1 {
                sweep::run_parallel(req, &planned, jobs, threads)?
            } else {
                let total = planned.len();
                let mut runs = Vec::with_capacity(total);
                for (i, p) in planned.iter().enumerate() {
                    let label = format!("[{}/{total}] {}", i + 1, p.name());
                    runs.push(ensure_run(req, p, &label)?);
                }
                runs
            }
        }
    };
    let mut settings = req.settings.clone();
    settings.arch = canonical_arch(&req.out, &settings)?;
    let report = report::Report::new(
        settings,
        req.command.clone(),
        report_arms(&req.variants),
        runs,
        started.elapsed().as_secs_f64(),
    );
    let json = req.out.join(JSON);
    let markdown = req.out.join(MARKDOWN);
    let png = req.out.join(PNG);
    plot::compare_png(&png, &report)?;
    let dose_png = req.out.join(dose::PNG);
    if !dose::dose_response_png(&dose_png, &report)? && dose_png.exists() {
        // A stale plot from an earlier invocation with other variants.
        fs::remove_file(&dose_png).with_context(|| format!("removing {}", dose_png.display()))?;
    }
    report::write_markdown(&markdown, &report)?;
    report::write_json(&json, &report)?;
    Ok(CompareOutcome {
        report,
        json,
        markdown,
        png,
    })
}

/// `--emit-commands`: every run as one shell line `BIN train …` (`BIN` this binary's absolute
/// path; every flag explicit, paths absolute), the baselines first, then the arms, each stage
/// under a comment line. Nothing is trained, written or created.
pub fn emit_commands(req: &CompareRequest) -> Result<String> {
    validate(&req.settings)?;
    let threads = effective_threads(&req.settings);
    let planned = plan(req, threads)?;
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let line = |p: &Planned| {
        crate::cli::shell_line(
            [exe.to_string_lossy().into_owned(), "train".into()]
                .into_iter()
                .chain(p.argv.iter().cloned()),
        )
    };
    let (starts, rest): (Vec<&Planned>, Vec<&Planned>) =
        planned.iter().partition(|p| p.arm.role == Role::Start);
    let mut o = String::new();
    o.push_str(&format!("# {}\n", req.command));
    o.push_str(&format!(
        "# {} runs: {} baselines, then {} arms; afterwards run the same compare command with \
         --collect instead of --emit-commands\n",
        planned.len(),
        starts.len(),
        rest.len()
    ));
    o.push_str("# stage 1: baselines (independent of each other)\n");
    for p in starts {
        o.push_str(&line(p));
        o.push('\n');
    }
    o.push_str(
        "# stage 2: arms (independent of each other; each needs its seed's baseline from stage 1 to be complete)\n",
    );
    for p in rest {
        o.push_str(&line(p));
        o.push('\n');
    }
    Ok(o)
}

/// The canonical arch of the first seed's baseline (e.g. `mlp` → `mlp:256,128`).
fn canonical_arch(out: &Path, s: &Settings) -> Result<String> {
    let seed = s.seeds.first().copied().unwrap_or(0);
    let cfg = run::read_config(&arms::run_dir(out, seed, arms::START))?;
    Ok(cfg.arch.spec)
}

/// Why an existing run cannot be reused as it is: `None` when it can.
/// `base_model` is the `--init` run's `model.safetensors`: a run whose `config.json` is older
/// was trained from an earlier baseline.
fn mismatch(
    stored: &RunConfig,
    wanted: &TrainConfig,
    base_model: Option<&Path>,
    dir: &Path,
) -> Result<Option<String>> {
    let mut wanted = wanted.clone();
    if wanted.init.is_some() {
        // Both come from the --init run.
        wanted.arch = stored.train.arch.clone();
        wanted.data_seed = stored.train.data_seed;
    } else if let Ok(a) = Arch::parse(&wanted.arch, stored.data.shape, stored.data.num_classes) {
        wanted.arch = a.spec;
    }
    // Paths compare as absolute paths (against the current directory): a run trained from a
    // printed command line or a child process (absolute paths) matches the same run planned
    // from relative paths, and older runs with relative paths still match.
    let normalize = |c: &mut TrainConfig| -> Result<()> {
        c.data = absolute_data_spec(&c.data)?;
        c.data_dir = absolute(&c.data_dir)?;
        c.init = c.init.as_deref().map(absolute).transpose()?;
        c.import = c.import.as_deref().map(absolute).transpose()?;
        Ok(())
    };
    let mut stored_train = stored.train.clone();
    normalize(&mut stored_train)?;
    normalize(&mut wanted)?;
    let (a, b) = (
        serde_json::to_value(&stored_train)?,
        serde_json::to_value(&wanted)?,
    );
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        bail!("internal: a train config is not a JSON object")
    };
    let differ: Vec<&str> = b
        .iter()
        .filter(|(k, v)| a.get(*k) != Some(v))
        .map(|(k, _)| k.as_str())
        .collect();
    if !differ.is_empty() {
        return Ok(Some(format!(
            "holds a run with different settings ({})",
            differ.join(", ")
        )));
    }
    if let Some(base) = base_model {
        let when = |p: &Path| -> Result<SystemTime> {
            fs::metadata(p)
                .and_then(|m| m.modified())
                .with_context(|| format!("{}: cannot read its modification time", p.display()))
        };
        if when(&dir.join(run::CONFIG))? < when(base)? {
            return Ok(Some(format!(
                "holds a run started before its baseline {} was (re)trained",
                base.parent().unwrap_or(base).display()
            )));
        }
    }
    Ok(None)
}

#[derive(Debug, Serialize, Deserialize)]
struct Wall {
    seconds: f64,
}

/// What to do with a planned run ([`prepare`]).
pub enum Action {
    /// Its directory holds a complete run with the same settings.
    Reuse,
    /// Train it with this request (`resume` or `force` set as needed).
    Train(Box<TrainRequest>, Outcome),
}

/// True when `dir` holds files other than [`LOG`] and [`WALL`] (which a run attempt that died
/// before its `config.json` may leave).
fn has_foreign_files(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name() != LOG && e.file_name() != WALL)
        })
        .unwrap_or(true)
}

/// Decides whether a planned run is reused, resumed, trained or retrained (`--force`); an error
/// names the directory when it holds something else and `--force` was not given.
pub fn prepare(creq: &CompareRequest, p: &Planned) -> Result<Action> {
    let dir = p.req.out.clone();
    let base_model = p.req.cfg.init.as_ref().map(|b| b.join(run::MODEL));
    let complete = dir.join(run::METRICS).is_file();
    let has_config = dir.join(run::CONFIG).is_file();
    let mut req = p.req.clone();
    let mut outcome = Outcome::Trained;
    if has_config {
        let stored = run::read_config(&dir)?;
        match mismatch(&stored, &req.cfg, base_model.as_deref(), &dir)? {
            None if complete => return Ok(Action::Reuse),
            None => {
                req.resume = true;
                outcome = Outcome::Resumed;
            }
            Some(_) if creq.force => req.force = true,
            Some(why) => bail!("{}: {why}; pass --force to retrain it", dir.display()),
        }
    } else if dir.exists() && has_foreign_files(&dir) {
        if !creq.force {
            bail!(
                "{}: exists and is not a run directory of this comparison; pass --force to overwrite it",
                dir.display()
            );
        }
        req.force = true;
    }
    Ok(Action::Train(Box::new(req), outcome))
}

/// Wall seconds of a finished run trained earlier: its [`WALL`] file, else (a run trained from
/// a printed command line) the sum of its epochs' seconds in `metrics.json` (training only).
fn earlier_wall(dir: &Path, metrics: &Metrics) -> Result<f64> {
    match fs::read(dir.join(WALL)) {
        Ok(b) => Ok(serde_json::from_slice::<Wall>(&b)
            .with_context(|| format!("{}: invalid JSON", dir.join(WALL).display()))?
            .seconds),
        Err(_) => Ok(metrics.curve.iter().map(|r| r.seconds).sum()),
    }
}

/// Writes [`WALL`] into a run directory.
pub fn write_wall(dir: &Path, seconds: f64) -> Result<()> {
    let mut bytes = serde_json::to_vec(&Wall { seconds })?;
    bytes.push(b'\n');
    run::write_atomic(&dir.join(WALL), &bytes)
}

/// The record of a finished run: its headline metrics and settings; `wall` is `None` for a
/// reused run (then read by [`earlier_wall`]). Prints the run's result line.
pub fn record(
    creq: &CompareRequest,
    p: &Planned,
    outcome: Outcome,
    wall: Option<f64>,
    label: &str,
) -> Result<ArmRun> {
    let dir = p.req.out.clone();
    let metrics: Metrics = serde_json::from_slice(
        &fs::read(dir.join(run::METRICS))
            .with_context(|| format!("{}: cannot read", dir.join(run::METRICS).display()))?,
    )
    .with_context(|| format!("{}: invalid JSON", dir.join(run::METRICS).display()))?;
    let wall = match wall {
        Some(w) => w,
        None => earlier_wall(&dir, &metrics)?,
    };
    let m = HeadlineMetrics::from_metrics(&metrics, &dir)?;
    let cfg = run::read_config(&dir)?.train;
    let threads = creq.settings.threads.unwrap_or(1).max(1) as usize;
    let device = crate::export::accuracy::cached(&dir, threads)
        .with_context(|| format!("{label}: int8 and f32 device accuracy"))?;
    eprintln!(
        "compare {label}: {} — top-1 {:.2}% mAP {:.2}% Rank-1 {:.2}% σ=0.1 {:.2}% σ=0.3 {:.2}%",
        match outcome {
            Outcome::Trained => format!("trained in {wall:.1} s"),
            Outcome::Resumed => format!("resumed, finished in {wall:.1} s"),
            Outcome::Reused => format!("reused (trained earlier in {wall:.1} s)"),
        },
        100.0 * m.top1,
        100.0 * m.map,
        100.0 * m.rank1,
        100.0 * m.robust_0_1,
        100.0 * m.robust_0_3,
    );
    eprintln!(
        "compare {label}: device (core) top-1 f32 {:.2}% int8 {:.2}% (int8 − f32 {:+.2} pp)",
        100.0 * device.f32_accuracy,
        100.0 * device.int8_accuracy,
        100.0 * device.int8_drop()
    );
    Ok(ArmRun {
        arm: p.arm.name.clone(),
        seed: p.seed,
        dir: dir
            .strip_prefix(&creq.out)
            .map(Path::to_path_buf)
            .unwrap_or(dir.clone()),
        outcome,
        wall_seconds: wall,
        epochs: cfg.epochs,
        backbone_epochs: backbone_epochs(&cfg),
        metrics: m,
        secondary: secondary_values(&metrics, Some(&device)),
    })
}

/// Trains (in this process), resumes or reuses one planned run and returns its record.
fn ensure_run(creq: &CompareRequest, p: &Planned, label: &str) -> Result<ArmRun> {
    match prepare(creq, p)? {
        Action::Reuse => record(creq, p, Outcome::Reused, None, label),
        Action::Train(req, outcome) => {
            let dir = req.out.clone();
            eprintln!(
                "compare {label}: {} ({} epochs)…",
                if outcome == Outcome::Resumed {
                    "resuming"
                } else {
                    "training"
                },
                req.cfg.epochs
            );
            let s = run::train(*req).with_context(|| format!("{label}: {}", dir.display()))?;
            write_wall(&dir, s.seconds)?;
            record(creq, p, outcome, Some(s.seconds), label)
        }
    }
}
