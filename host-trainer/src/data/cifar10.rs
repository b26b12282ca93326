//! `cifar10:DIR`: the CIFAR-10 binary version (`cifar-10-binary.tar.gz`, unpacked).
//!
//! `DIR` (or its `cifar-10-batches-bin/` subfolder, as the archive unpacks) holds
//! `data_batch_1.bin` … `data_batch_5.bin` (train) and `test_batch.bin` (test). Each file is a
//! sequence of 3073-byte records: one label byte (0–9), then 3072 pixel bytes, the 32×32 red
//! plane, then green, then blue (CHW). Samples become `[3, 32, 32]` with values `byte / 255`.
//! Train batches may be missing (at least one must exist); a note on stderr lists those used.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{Dataset, Split};

/// Pixel bytes per record, `3 · 32 · 32`.
pub const PIXELS: usize = 3 * 32 * 32;
/// Bytes per record: the label byte and the pixels.
pub const RECORD: usize = 1 + PIXELS;
/// Number of classes.
pub const CLASSES: usize = 10;

/// Appends the records of one batch file to `split`. Errors state the byte offset; any byte
/// string gives `Ok` or `Err`, never a panic (and `split` is unchanged on `Err`).
pub fn decode_batch(bytes: &[u8], split: &mut Split) -> Result<()> {
    if bytes.is_empty() {
        bail!("empty file, expected 3073-byte records (1 label byte + 3072 pixel bytes)");
    }
    if bytes.len() % RECORD != 0 {
        let last = bytes.len() - bytes.len() % RECORD;
        bail!(
            "{} bytes is not a whole number of 3073-byte records (1 label byte + 3072 pixel bytes): the record at byte offset {last} is truncated to {} bytes",
            bytes.len(),
            bytes.len() - last
        );
    }
    if let Some(r) = bytes
        .chunks_exact(RECORD)
        .position(|r| r[0] as usize >= CLASSES)
    {
        bail!(
            "label {} at byte offset {} (record {r}) is not a CIFAR-10 class 0–9",
            bytes[r * RECORD],
            r * RECORD
        );
    }
    split.x.reserve(bytes.len() / RECORD * PIXELS);
    for r in bytes.chunks_exact(RECORD) {
        split.y.push(r[0] as u32);
        split.x.extend(r[1..].iter().map(|&b| b as f32 / 255.0));
    }
    Ok(())
}

/// Loads a CIFAR-10 binary directory (see the module doc).
pub fn load(dir: &Path) -> Result<Dataset> {
    if !dir.is_dir() {
        bail!("{}: no such directory", dir.display());
    }
    let nested = dir.join("cifar-10-batches-bin");
    let root: PathBuf =
        if !dir.join("test_batch.bin").exists() && nested.join("test_batch.bin").exists() {
            nested
        } else {
            dir.to_path_buf()
        };
    let mut train = Split::default();
    let mut used = Vec::new();
    for i in 1..=5 {
        let path = root.join(format!("data_batch_{i}.bin"));
        if path.is_file() {
            read_into(&path, &mut train)?;
            used.push(i);
        }
    }
    if used.is_empty() {
        bail!(
            "{}: no train batch data_batch_1.bin … data_batch_5.bin found",
            root.display()
        );
    }
    if used.len() < 5 {
        eprintln!("[data] cifar10: using train batches {used:?} of 1–5 (others missing)");
    }
    let mut test = Split::default();
    let test_path = root.join("test_batch.bin");
    if !test_path.is_file() {
        bail!("{}: missing", test_path.display());
    }
    read_into(&test_path, &mut test)?;
    Ok(Dataset {
        name: format!("cifar10:{}", dir.display()),
        shape: [3, 32, 32],
        num_classes: CLASSES,
        train,
        test,
        value_range: Some((0.0, 1.0)),
    })
}

fn read_into(path: &Path, split: &mut Split) -> Result<()> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    decode_batch(&bytes, split).with_context(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_records_chw() {
        let mut bytes = vec![7u8];
        bytes.extend((0..PIXELS).map(|i| (i / 1024) as u8 * 100)); // R=0, G=100, B=200
        bytes.push(2);
        bytes.extend(std::iter::repeat_n(255, PIXELS));
        let mut s = Split::default();
        decode_batch(&bytes, &mut s).unwrap();
        assert_eq!(s.y, vec![7, 2]);
        assert_eq!(s.sample(0)[0], 0.0);
        assert_eq!(s.sample(0)[1024], 100.0 / 255.0);
        assert_eq!(s.sample(0)[3071], 200.0 / 255.0);
        assert_eq!(s.sample(1)[5], 1.0);
    }

    #[test]
    fn rejects_truncated_and_bad_label() {
        let mut s = Split::default();
        let e = decode_batch(&vec![0u8; RECORD + 10], &mut s).unwrap_err();
        assert!(
            format!("{e:#}").contains("byte offset 3073 is truncated to 10 bytes"),
            "{e:#}"
        );
        let mut b = vec![0u8; 2 * RECORD];
        b[RECORD] = 10;
        let e = decode_batch(&b, &mut s).unwrap_err();
        assert!(
            format!("{e:#}").contains("label 10 at byte offset 3073 (record 1)"),
            "{e:#}"
        );
        assert!(s.is_empty());
        assert!(decode_batch(&[], &mut s).is_err());
    }
}
