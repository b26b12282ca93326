//! Atomic file writes: every file the trainer produces (checkpoints, run files, plots, model
//! files, dumps, the data cache) is written to a temp file in the same folder and renamed into
//! place, so a crash or a concurrent reader never sees a half-written file and an existing file
//! stays intact when a write fails.
//!
//! Temp names are unique per process *and* per call (`.NAME.PID-N.tmp.EXT`), so concurrent
//! writers of the same path — two tests loading `mnist` for the first time, say — never rename
//! each other's temp file away; the last rename wins with a complete file.
//!
//! **Durability.** The temp file is fsynced before the rename and its folder after it, so after a
//! crash or power loss `path` holds either the old or the new complete file, never an empty one
//! (ext4 and xfs may otherwise persist the rename before the data). A process killed between the
//! two leaves its temp file behind: [`remove_stale_temps`] clears those (`train --resume` does).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context, Result};

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync of the folder). The
/// folder must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| {
        fs::File::create(tmp)?.write_all(bytes)?;
        Ok(())
    })
}

/// Lets `write` produce the file at a temp path (same folder and extension as `path`), then
/// fsyncs it, renames it to `path` and fsyncs the folder. On any error the temp file is removed
/// and `path` is left untouched.
pub fn write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    let result = write(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| sync_file(&tmp))
        .and_then(|()| {
            test_pause("temp-written", path);
            fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    test_pause("renamed", path);
    sync_dir(path)
}

/// fsyncs the file at `path` (its data and metadata).
fn sync_file(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", path.display()))
}

/// fsyncs the folder holding `path`, making a rename into it durable. A no-op where folders
/// cannot be opened for syncing (not Unix).
fn sync_dir(path: &Path) -> Result<()> {
    if !cfg!(unix) {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing folder {}", dir.display()))
}

/// True when `name` is a temp name that [`write_with`] makes for the file `target`
/// (`.TARGET_STEM.PID-N.tmp[.EXT]`).
pub fn is_temp_of(name: &str, target: &str) -> bool {
    let stem = Path::new(target)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(rest) = name.strip_prefix(&format!(".{stem}.")) else {
        return false;
    };
    let Some((id, tail)) = rest.split_once(".tmp") else {
        return false;
    };
    let ext = Path::new(target)
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let id_ok = id.split_once('-').is_some_and(|(pid, n)| {
        !pid.is_empty()
            && !n.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && n.bytes().all(|b| b.is_ascii_digit())
    });
    id_ok && tail == ext
}

/// Removes the temp files of `targets` that a killed writer left in `dir`; returns how many.
/// Only for folders one process writes at a time (a run directory): a live writer's temp file
/// would be removed too.
pub fn remove_stale_temps(dir: &Path, targets: &[&str]) -> Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading folder {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("reading folder {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if targets.iter().any(|t| is_temp_of(&name, t)) {
            fs::remove_file(entry.path())
                .with_context(|| format!("removing stale temp file {}", entry.path().display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Test hook for the kill-and-resume tests: with `DENOISEREP_TEST_PAUSE=POINT:FILE:K`, the K-th
/// (1-based) write of a file named FILE stops at POINT (`temp-written`: the temp file is complete
/// and synced, not yet renamed; `renamed`: renamed, folder not yet synced), prints
/// `denoiserep: test pause at POINT FILE K` on stderr and sleeps, so the test can SIGKILL the
/// process at exactly that moment. Unset (always, outside tests), it costs one env lookup.
pub const PAUSE_ENV: &str = "DENOISEREP_TEST_PAUSE";

fn test_pause(point: &str, path: &Path) {
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let Ok(spec) = std::env::var(PAUSE_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, ':');
    let (Some(p), Some(file), Some(k)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    if name.as_deref() != Some(file) {
        return;
    }
    // Count each write once (at its first point), whichever point is asked for.
    let n = if point == "temp-written" {
        WRITES.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        WRITES.load(Ordering::SeqCst)
    };
    if p == point && k.parse() == Ok(n) {
        eprintln!("denoiserep: test pause at {point} {file} {n}");
        std::thread::sleep(std::time::Duration::from_secs(600));
    }
}

/// `.NAME.PID-N.tmp.EXT` beside `path` (the extension is kept for writers that pick a format
/// from it, e.g. the PNG encoder).
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    path.with_file_name(format!(".{stem}.{}-{n}.tmp{ext}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_of_one_path_all_succeed_with_a_complete_file() {
        let dir = std::env::temp_dir().join(format!("denoiserep-atomic-{}", std::process::id()));
        let path = dir.join("cache.bin");
        fs::create_dir_all(&dir).unwrap();
        let handles: Vec<_> = (0..8u8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || write_atomic(&path, &[i; 4096]))
            })
            .collect();
        for h in handles {
            h.join().expect("writer thread").expect("atomic write");
        }
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|&b| b == bytes[0]));
        // No temp file is left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp() {
        let dir =
            std::env::temp_dir().join(format!("denoiserep-atomic-fail-{}", std::process::id()));
        let path = dir.join("model.dnrp");
        fs::create_dir_all(&dir).unwrap();
        write_atomic(&path, b"old").unwrap();
        let err = write_with(&path, |_| anyhow::bail!("interrupted")).unwrap_err();
        assert!(format!("{err:#}").contains("interrupted"));
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temp_names_are_recognized_and_only_they_are_removed_as_stale() {
        let t = temp_path(Path::new("/x/checkpoint.safetensors"));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert!(is_temp_of(name, "checkpoint.safetensors"), "{name}");
        assert!(!is_temp_of(name, "model.safetensors"));
        assert!(!is_temp_of(
            "checkpoint.safetensors",
            "checkpoint.safetensors"
        ));
        assert!(!is_temp_of(
            ".checkpoint.12-x.tmp.safetensors",
            "checkpoint.safetensors"
        ));
        assert!(!is_temp_of(
            ".checkpoint.12-3.tmp.json",
            "checkpoint.safetensors"
        ));
        assert!(is_temp_of(".config.12-3.tmp.json", "config.json"));

        let dir = std::env::temp_dir().join(format!("denoiserep-stale-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for f in [
            ".checkpoint.77-0.tmp.safetensors",
            ".model.77-1.tmp.safetensors",
            "checkpoint.safetensors",
            ".other.77-2.tmp.bin",
        ] {
            fs::write(dir.join(f), b"x").unwrap();
        }
        let n = remove_stale_temps(&dir, &["checkpoint.safetensors", "model.safetensors"]);
        assert_eq!(n.unwrap(), 2);
        let mut left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".other.77-2.tmp.bin", "checkpoint.safetensors"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temp_names_keep_the_extension_and_differ_per_call() {
        let p = Path::new("/x/plot.png");
        let (a, b) = (temp_path(p), temp_path(p));
        assert_ne!(a, b);
        assert!(a.to_string_lossy().ends_with(".tmp.png"));
        assert_eq!(a.parent(), p.parent());
    }
}
