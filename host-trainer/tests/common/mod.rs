//! Helpers shared by the integration tests that run the real `denoiserep` binary: a temp dir
//! removed on drop, running the binary, and finding temp files a write left behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_denoiserep");
/// A small synthetic data set (1×8×8 inputs, 4 classes, 256 train / 64 test samples).
pub const DATA: &str = "synthetic:1,8,8,4,256,64";

/// A fresh temp dir, unique per test binary, test name and process; removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let binary = module_path!().split("::").next().unwrap_or("test");
        let p =
            std::env::temp_dir().join(format!("denoiserep-{binary}-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.0.join(sub)
    }

    /// [`TempDir::path`] as a `String`, for argument lists.
    pub fn s(&self, sub: &str) -> String {
        self.path(sub).to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary with `args` (without the trainer's abort-after-epoch test hook).
pub fn run<S: AsRef<str>>(args: &[S]) -> Output {
    Command::new(BIN)
        .args(args.iter().map(|a| a.as_ref()))
        .env_remove(denoiserep_trainer::run::ABORT_ENV)
        .output()
        .expect("run denoiserep")
}

/// Its stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Temp files of atomic writes (`host-trainer/src/atomic.rs`: `.NAME.PID-N.tmp.EXT`, so `.tmp`
/// anywhere in the name) under `dir`, recursively; symbolic links are not followed.
pub fn leftover_temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let path = e.path();
        if e.file_name().to_string_lossy().contains(".tmp") {
            found.push(path.clone());
        }
        if e.file_type().unwrap().is_dir() {
            found.extend(leftover_temp_files(&path));
        }
    }
    found
}

/// Fails the test when [`leftover_temp_files`] finds any under `dir`.
pub fn assert_no_temp_files(dir: &Path) {
    let left = leftover_temp_files(dir);
    assert!(left.is_empty(), "temp files left behind: {left:?}");
}
