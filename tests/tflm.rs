//! TFLite-Micro's own interpreter as an oracle: `tests/tflm/run_tflm.py` in the project's
//! `.venv-tflm` (installed by `scripts/setup.sh`, part `tflm`). A test calls [`python_or_skip`]
//! first: without the venv it prints a loud SKIPPED banner (and counts the skip in the device
//! ledger), unless CI or `DENOISEREP_REQUIRE_DEVICE=1` is set, where it fails, like the QEMU tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::device::device_required;

/// The venv's python, or `None` after a SKIPPED banner naming `test` (a panic under CI).
pub fn python_or_skip(test: &str) -> Option<PathBuf> {
    let python = crate::repo_root().join(".venv-tflm/bin/python");
    let ok = python.exists()
        && Command::new(&python)
            .args(["-c", "import tflite_micro"])
            .output()
            .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if device_required() {
        panic!(
            "{test}: TFLite-Micro's interpreter (.venv-tflm with tflite-micro) is missing, and CI \
             or DENOISEREP_REQUIRE_DEVICE=1 is set: run bash scripts/setup.sh tflm"
        );
    }
    crate::device::ledger_skip(test);
    let _ = writeln!(
        std::io::stderr(),
        "\n######################################################################\n\
         # SKIPPED {test}: TFLite-Micro's interpreter (.venv-tflm) not found,\n\
         # the TFLite-Micro comparison was NOT run.\n\
         # Install it: bash scripts/setup.sh tflm\n\
         ######################################################################\n"
    );
    None
}

/// What `run_tflm.py` printed: the number of samples and the tensors' details (JSON).
pub struct TflmRun {
    /// Output `k` of every sample, as the `.npy` bytes TFLite-Micro's outputs were saved to.
    pub outputs: Vec<PathBuf>,
    /// The JSON line `run_tflm.py` printed (input and output details).
    pub details: String,
}

/// Runs `model` (a `.tflite`) through TFLite-Micro on the samples of `inputs` (a `.npy`, batch
/// first, the model's input dtype), writing `prefix.k.npy` for each of its `outputs` outputs.
/// Panics with TFLite-Micro's own message when it refuses the model or the inputs.
pub fn run(python: &Path, model: &Path, inputs: &Path, prefix: &Path, outputs: usize) -> TflmRun {
    let script = crate::repo_root().join("tests/tflm/run_tflm.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(model)
        .arg(inputs)
        .arg(prefix)
        .arg(outputs.to_string())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "TFLite-Micro failed on {}:\n{}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    TflmRun {
        outputs: (0..outputs)
            .map(|k| PathBuf::from(format!("{}.{k}.npy", prefix.display())))
            .collect(),
        details: String::from_utf8_lossy(&out.stdout).trim().to_string(),
    }
}
