//! Atomic file writes: every file the trainer produces (checkpoints, run files, plots, model
//! files, dumps, the data cache) is written to a temp file in the same folder and renamed into
//! place, so a crash or a concurrent reader never sees a half-written file and an existing file
//! stays intact when a write fails.
//!
//! Temp names are unique per process *and* per call (`.NAME.PID-N.tmp.EXT`), so concurrent
//! writers of the same path — two tests loading `mnist` for the first time, say — never rename
//! each other's temp file away; the last rename wins with a complete file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

/// Writes `bytes` to `path` atomically (temp file, fsync, rename). The folder must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| {
        let mut f = fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(())
    })
}

/// Lets `write` produce the file at a temp path (same folder and extension as `path`), then
/// renames it to `path`. On any error the temp file is removed and `path` is left untouched.
pub fn write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    let result = write(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| {
            fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
    fn temp_names_keep_the_extension_and_differ_per_call() {
        let p = Path::new("/x/plot.png");
        let (a, b) = (temp_path(p), temp_path(p));
        assert_ne!(a, b);
        assert!(a.to_string_lossy().ends_with(".tmp.png"));
        assert_eq!(a.parent(), p.parent());
    }
}
