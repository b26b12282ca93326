//! The arms of a comparison and how each becomes a `denoiserep train` invocation.
//!
//! Every run of a comparison — the from-scratch baseline, the seven built-in arms and the
//! `--variant`s — is described by `train` flags and parsed with the very clap definition of
//! `denoiserep train` ([`TrainArgs`]), so an arm means exactly what the same flags mean on the
//! command line.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::cli::TrainArgs;
use crate::run::TrainRequest;

/// What an arm is in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The from-scratch baseline every other arm starts from (`--epochs` epochs).
    Start,
    /// One of the four controls every other arm is compared with.
    Control,
    /// A built-in DenoiseRep arm (label-free, label-guided, label-guided with `--noise-grad`).
    Method,
    /// A `--variant NAME=FLAGS` arm.
    Variant,
}

/// One arm: a name (its run directory under `seed-S/`), its role and its `train` flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    pub name: String,
    pub role: Role,
    /// The arm's own `train` flags (the shared options and the per-seed ones come on top).
    pub flags: Vec<String>,
}

/// Run directory name of the from-scratch baseline.
pub const START: &str = "baseline";

/// The four controls, in the order (1), (2), (3), (4).
pub const CONTROLS: [&str; 4] = [
    "baseline-more",
    "null-control",
    "penalty-control",
    "analytic-shrinkage",
];

/// The built-in arms after the start: controls (1)–(4), then methods (5)–(7).
///
/// (4) `analytic-shrinkage` is label-free with `--denoiser-fit closed-form`: every denoiser set
/// to its exact L2 optimum `D*` from train-split moments, without gradient training — what
/// DenoiseRep's denoisers converge to. Label-free never trains the backbone and the closed-form
/// fit skips every epoch after the first, so its backbone is the seed's baseline, bit for bit;
/// it inherits the shared denoiser settings (`--t-stride`, `--beta-start`, `--beta-end`,
/// `--timesteps`).
pub fn builtin() -> Vec<Arm> {
    let arm = |name: &str, role, flags: &[&str]| Arm {
        name: name.into(),
        role,
        flags: flags.iter().map(|s| s.to_string()).collect(),
    };
    vec![
        arm(CONTROLS[0], Role::Control, &["--regime", "baseline"]),
        arm(
            CONTROLS[1],
            Role::Control,
            &["--regime", "baseline", "--schedule", "label-guided"],
        ),
        arm(
            CONTROLS[2],
            Role::Control,
            &["--regime", "penalty-control", "--schedule", "label-guided"],
        ),
        arm(
            CONTROLS[3],
            Role::Control,
            &["--regime", "label-free", "--denoiser-fit", "closed-form"],
        ),
        arm("label-free", Role::Method, &["--regime", "label-free"]),
        arm("label-guided", Role::Method, &["--regime", "label-guided"]),
        arm(
            "label-guided-noise-grad",
            Role::Method,
            &["--regime", "label-guided", "--noise-grad"],
        ),
    ]
}

/// `train` flags a variant may not set: the comparison sets them for every arm.
const FORBIDDEN: [(&str, &str); 13] = [
    ("--out", "each arm's run directory is DIR/seed-S/NAME"),
    ("--init", "every arm starts from the seed's baseline"),
    ("--import", "every arm starts from the seed's baseline"),
    ("--data", "the comparison's --data applies to every arm"),
    (
        "--data-dir",
        "the comparison's --data-dir applies to every arm",
    ),
    (
        "--test-fraction",
        "the comparison's --test-fraction applies to every arm",
    ),
    ("--arch", "every arm keeps the baseline's arch"),
    ("--seed", "the seeds are the comparison's"),
    (
        "--epochs",
        "every arm trains --extra-epochs epochs (equal budget)",
    ),
    ("--resume", "the comparison resumes unfinished arms itself"),
    ("--force", "pass --force to compare instead"),
    ("--device", "the comparison's --device applies to every arm"),
    (
        "--threads",
        "the comparison's --threads applies to every arm",
    ),
];

/// Parses `--variant NAME=FLAGS`: `NAME` is `[A-Za-z0-9._-]+`, not a built-in arm's, and
/// `FLAGS` are `train` flags separated by whitespace (no quoting; no value holds a space).
pub fn parse_variant(spec: &str) -> Result<Arm> {
    let Some((name, flags)) = spec.split_once('=') else {
        bail!("--variant '{spec}': expected NAME=TRAIN FLAGS, e.g. 'lg-t4=--regime label-guided --t-stride 4'")
    };
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        bail!("--variant '{spec}': the name '{name}' must be letters, digits, '.', '_' or '-'");
    }
    if name == START || builtin().iter().any(|a| a.name == name) {
        bail!("--variant '{name}': the name is taken by a built-in arm; choose another");
    }
    let flags: Vec<String> = flags.split_whitespace().map(str::to_string).collect();
    if flags.is_empty() {
        bail!("--variant '{name}': no train flags after '='");
    }
    for f in &flags {
        let flag = f.split_once('=').map_or(f.as_str(), |(k, _)| k);
        if let Some((_, why)) = FORBIDDEN.iter().find(|(k, _)| *k == flag) {
            bail!("--variant '{name}': {flag} cannot be set per arm ({why})");
        }
    }
    Ok(Arm {
        name: name.into(),
        role: Role::Variant,
        flags,
    })
}

/// The run directory of `arm` for `seed`: `DIR/seed-S/NAME`.
pub fn run_dir(out: &Path, seed: u64, arm: &str) -> std::path::PathBuf {
    out.join(format!("seed-{seed}")).join(arm)
}

/// `denoiserep train`'s arguments alone, for parsing an arm's flags.
#[derive(Debug, Parser)]
#[command(name = "train", no_binary_name = true, disable_help_flag = true)]
struct TrainOnly {
    #[command(flatten)]
    args: TrainArgs,
}

/// `(arm flag, shared flag)`: an arm that sets the first drops the shared second, which `train`
/// does not accept beside it (`--t-list` gives the timesteps `--t-stride` would).
const DISPLACES: [(&str, &str); 1] = [("--t-list", "--t-stride")];

/// The `train` arguments of an arm: `arm_flags` on top of `shared` (flags the arm sets replace
/// the shared ones, and [`DISPLACES`] the ones they conflict with), followed by the per-run
/// `fixed` flags.
pub fn train_argv(
    shared: &[(String, String)],
    arm_flags: &[String],
    fixed: &[String],
) -> Vec<String> {
    let given = |flag: &str| {
        arm_flags
            .iter()
            .any(|f| f == flag || f.starts_with(&format!("{flag}=")))
    };
    let dropped = |flag: &str| {
        given(flag)
            || DISPLACES
                .iter()
                .any(|&(arm, shared)| shared == flag && given(arm))
    };
    let mut argv: Vec<String> = Vec::new();
    for (flag, value) in shared.iter().filter(|(f, _)| !dropped(f)) {
        argv.push(flag.clone());
        argv.push(value.clone());
    }
    argv.extend(arm_flags.iter().cloned());
    argv.extend(fixed.iter().cloned());
    argv
}

/// The [`TrainRequest`] of [`train_argv`]`(shared, arm_flags, fixed)`, parsed by `train`'s own
/// definition. `what` names the arm in errors.
pub fn request(
    what: &str,
    shared: &[(String, String)],
    arm_flags: &[String],
    fixed: &[String],
    progress: bool,
) -> Result<TrainRequest> {
    let argv = train_argv(shared, arm_flags, fixed);
    let args = match TrainOnly::try_parse_from(&argv) {
        Ok(t) => t.args,
        Err(e) => bail!("{what}: {}", crate::cli::clap_message(&e)),
    };
    args.request(progress).with_context(|| what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{backbone_epochs, EpochSchedule, Regime};

    fn fixed() -> Vec<String> {
        [
            "--epochs", "4", "--seed", "3", "--out", "/tmp/x", "--device", "cpu",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn arm_flags_replace_shared_ones_and_mean_what_train_means() {
        let shared = vec![
            ("--lambda".to_string(), "0.01".to_string()),
            ("--phase-epochs".to_string(), "2".to_string()),
        ];
        let v = parse_variant("lg-l1=--regime label-guided --lambda 1 --noise-grad").unwrap();
        let r = request("variant 'lg-l1'", &shared, &v.flags, &fixed(), false).unwrap();
        assert_eq!(r.cfg.regime, Regime::LabelGuided);
        assert_eq!(r.cfg.lambda, 1.0);
        assert_eq!(r.cfg.phase_epochs, 2);
        assert!(r.cfg.noise_grad);
        assert_eq!((r.cfg.epochs, r.cfg.seed), (4, 3));
        // --t-list displaces the shared --t-stride (train rejects both).
        let shared_t = vec![("--t-stride".to_string(), "1".to_string())];
        let v = parse_variant("strong=--regime label-free --t-list 1,1,1").unwrap();
        let argv = train_argv(&shared_t, &v.flags, &fixed());
        assert!(!argv.iter().any(|a| a == "--t-stride"), "{argv:?}");
        let r = request("variant 'strong'", &shared_t, &v.flags, &fixed(), false).unwrap();
        assert_eq!(r.cfg.denoise.t_list, Some(vec![1, 1, 1]));
        let v = parse_variant("plain=--regime label-free").unwrap();
        assert!(train_argv(&shared_t, &v.flags, &fixed()).contains(&"--t-stride".to_string()));
        let null = &builtin()[1];
        let r = request("null-control", &shared, &null.flags, &fixed(), false).unwrap();
        assert_eq!(r.cfg.schedule, EpochSchedule::LabelGuided);
        assert_eq!(r.cfg.regime, Regime::Baseline);
        let shrink = &builtin()[3];
        assert_eq!(shrink.name, "analytic-shrinkage");
        let r = request(
            "analytic-shrinkage",
            &shared,
            &shrink.flags,
            &fixed(),
            false,
        )
        .unwrap();
        assert_eq!(r.cfg.regime, Regime::LabelFree);
        assert_eq!(r.cfg.denoiser_fit, crate::train::DenoiserFit::ClosedForm);
        assert_eq!(backbone_epochs(&r.cfg), 0);
        // `--flag=value` also replaces the shared value.
        let v = parse_variant("x=--regime label-guided --lambda=0.5").unwrap();
        let r = request("x", &shared, &v.flags, &fixed(), false).unwrap();
        assert_eq!(r.cfg.lambda, 0.5);
    }

    #[test]
    fn bad_variants_are_rejected_with_their_name() {
        let cases = [
            ("nameless", "expected NAME=TRAIN FLAGS"),
            ("=--regime label-free", "must be letters"),
            ("a b=--regime label-free", "must be letters"),
            ("label-guided=--lambda 1", "taken by a built-in arm"),
            ("baseline=--lambda 1", "taken by a built-in arm"),
            ("analytic-shrinkage=--lambda 1", "taken by a built-in arm"),
            ("e=", "no train flags"),
            (
                "o=--regime label-guided --out /tmp/x",
                "--out cannot be set per arm",
            ),
            ("s=--seed=3", "--seed cannot be set per arm"),
            ("ep=--epochs 3", "equal budget"),
        ];
        for (spec, needle) in cases {
            let e = format!("{:#}", parse_variant(spec).unwrap_err());
            assert!(e.contains(needle), "{spec}: {e}");
        }
        let v = parse_variant("typo=--regime label-guided --t-strid 4").unwrap();
        let e = format!(
            "{:#}",
            request("variant 'typo'", &[], &v.flags, &fixed(), false).unwrap_err()
        );
        assert!(
            e.starts_with("variant 'typo': unexpected argument '--t-strid'"),
            "{e}"
        );
        let v = parse_variant("bad=--regime sideways").unwrap();
        let e = format!(
            "{:#}",
            request("variant 'bad'", &[], &v.flags, &fixed(), false).unwrap_err()
        );
        assert!(e.contains("variant 'bad'") && e.contains("sideways"), "{e}");
    }
}
