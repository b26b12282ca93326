//! `idx:DIR`: the MNIST-family IDX layout (MNIST, Fashion-MNIST, KMNIST, EMNIST, …).
//!
//! `DIR` holds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
//! `t10k-labels-idx1-ubyte`, each optionally gzip-compressed with a `.gz` suffix. An IDX file is
//! `00 00 <type> <ndims>`, then `ndims` big-endian `u32` sizes, then the elements, row-major.
//! Only type `0x08` (unsigned byte) is accepted: images are `n × H × W` (any `H`, `W`), labels `n`.
//! Images become `[1, H, W]` samples with values `byte / 255`; the file's train/test split is kept;
//! the class count is `1 + the largest train label`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{Dataset, Split};

/// The four file names (without the optional `.gz`).
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Largest decompressed size accepted from a `.gz` file (guards against gzip bombs).
pub const MAX_DECOMPRESSED: u64 = 4 << 30;

/// A decoded IDX array of unsigned bytes, borrowing the file's element bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray<'a> {
    /// Sizes from the header, outermost first.
    pub dims: Vec<usize>,
    /// The `dims.iter().product()` elements, row-major.
    pub data: &'a [u8],
    /// Byte offset of the first element in the file (`4 + 4 · ndims`).
    pub data_offset: usize,
}

/// Decodes an uncompressed IDX byte string. Errors state the problem and its byte offset; any
/// byte string gives `Ok` or `Err`, never a panic.
pub fn decode(bytes: &[u8]) -> Result<IdxArray<'_>> {
    if bytes.len() < 4 {
        bail!("{} bytes is shorter than the 4-byte IDX magic", bytes.len());
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!(
            "bad IDX magic {:02x} {:02x} at byte offset 0 (expected 00 00; a gzip file needs the .gz suffix or gzip magic 1f 8b)",
            bytes[0],
            bytes[1]
        );
    }
    if bytes[2] != 0x08 {
        let name = match bytes[2] {
            0x09 => "i8",
            0x0B => "i16",
            0x0C => "i32",
            0x0D => "f32",
            0x0E => "f64",
            _ => "unknown",
        };
        bail!(
            "element type 0x{:02x} ({name}) at byte offset 2: only unsigned bytes (0x08) are supported",
            bytes[2]
        );
    }
    let ndims = bytes[3] as usize;
    if ndims == 0 {
        bail!("0 dimensions at byte offset 3");
    }
    let data_offset = 4 + 4 * ndims;
    if bytes.len() < data_offset {
        bail!(
            "truncated header: {ndims} dimensions need {data_offset} header bytes, the file has {}",
            bytes.len()
        );
    }
    let dims: Vec<usize> = bytes[4..data_offset]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let Some(len) = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
        bail!("dimensions {dims:?} at byte offset 4 overflow the address space");
    };
    let have = bytes.len() - data_offset;
    if have < len {
        bail!(
            "truncated: dimensions {dims:?} need {len} data bytes from byte offset {data_offset}, the file ends after {have} (at byte offset {})",
            bytes.len()
        );
    }
    if have > len {
        bail!(
            "oversized: {} unexpected trailing bytes from byte offset {} (dimensions {dims:?} need {len} data bytes)",
            have - len,
            data_offset + len
        );
    }
    Ok(IdxArray {
        dims,
        data: &bytes[data_offset..],
        data_offset,
    })
}

/// Returns `bytes` unchanged, or gunzipped when they start with the gzip magic `1f 8b`
/// (at most [`MAX_DECOMPRESSED`] bytes).
pub fn gunzip_if_gz(bytes: Vec<u8>) -> Result<Vec<u8>> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    let mut dec = flate2::read::MultiGzDecoder::new(&bytes[..]).take(MAX_DECOMPRESSED + 1);
    dec.read_to_end(&mut out).map_err(|e| {
        anyhow::anyhow!(
            "corrupt gzip data after {} decompressed bytes: {e}",
            out.len()
        )
    })?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        bail!("gzip data decompresses to more than {MAX_DECOMPRESSED} bytes");
    }
    Ok(out)
}

/// Reads `dir/name`, else `dir/name.gz`; returns the path used and the (decompressed) bytes.
pub fn read_maybe_gz(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>)> {
    let plain = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    let path = if plain.is_file() {
        plain
    } else if gz.is_file() {
        gz
    } else {
        bail!("neither {} nor {} exists", plain.display(), gz.display());
    };
    let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = gunzip_if_gz(bytes).with_context(|| path.display().to_string())?;
    Ok((path, bytes))
}

/// Loads an IDX directory (see the module doc).
pub fn load(dir: &Path) -> Result<Dataset> {
    if !dir.is_dir() {
        bail!("{}: no such directory", dir.display());
    }
    let (train, shape, classes) = load_pair(dir, FILES[0], FILES[1], None)?;
    let (test, test_shape, _) = load_pair(dir, FILES[2], FILES[3], Some(classes))?;
    if test_shape != shape {
        bail!(
            "{}: test images are {}×{}, train images {}×{}",
            dir.join(FILES[2]).display(),
            test_shape[1],
            test_shape[2],
            shape[1],
            shape[2]
        );
    }
    Ok(Dataset {
        name: format!("idx:{}", dir.display()),
        shape,
        num_classes: classes,
        train,
        test,
        value_range: Some((0.0, 1.0)),
    })
}

/// Loads one images/labels pair. `classes` is the train class count when loading the test pair
/// (its labels must be below it); for the train pair it is computed and returned.
fn load_pair(
    dir: &Path,
    images: &str,
    labels: &str,
    classes: Option<usize>,
) -> Result<(Split, [usize; 3], usize)> {
    let (ipath, ibytes) = read_maybe_gz(dir, images)?;
    let img = decode(&ibytes).with_context(|| ipath.display().to_string())?;
    if img.dims.len() != 3 {
        bail!(
            "{}: {} dimensions {:?} at byte offset 3, expected 3 (count, height, width)",
            ipath.display(),
            img.dims.len(),
            img.dims
        );
    }
    let (lpath, lbytes) = read_maybe_gz(dir, labels)?;
    let lab = decode(&lbytes).with_context(|| lpath.display().to_string())?;
    if lab.dims.len() != 1 {
        bail!(
            "{}: {} dimensions {:?} at byte offset 3, expected 1 (count)",
            lpath.display(),
            lab.dims.len(),
            lab.dims
        );
    }
    let (n, h, w) = (img.dims[0], img.dims[1], img.dims[2]);
    if lab.dims[0] != n {
        bail!(
            "label/image count mismatch: {} has {} labels, {} has {n} images",
            lpath.display(),
            lab.dims[0],
            ipath.display()
        );
    }
    if n == 0 || h == 0 || w == 0 {
        bail!(
            "{}: no image data (dimensions {:?})",
            ipath.display(),
            img.dims
        );
    }
    let max = lab.data.iter().copied().max().unwrap_or(0) as usize;
    let classes = match classes {
        None if max == 0 => bail!(
            "{}: every label is 0, need at least 2 classes",
            lpath.display()
        ),
        None => max + 1,
        Some(k) => {
            if let Some(i) = lab.data.iter().position(|&l| l as usize >= k) {
                bail!(
                    "{}: label {} at byte offset {} is not among the train labels 0..{}",
                    lpath.display(),
                    lab.data[i],
                    lab.data_offset + i,
                    k - 1
                );
            }
            k
        }
    };
    let split = Split {
        x: img.data.iter().map(|&b| b as f32 / 255.0).collect(),
        y: lab.data.iter().map(|&l| l as u32).collect(),
    };
    Ok((split, [1, h, w], classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn decodes_dims_and_data() {
        let b = idx(&[2, 1, 3], &[1, 2, 3, 4, 5, 6]);
        let a = decode(&b).unwrap();
        assert_eq!(a.dims, vec![2, 1, 3]);
        assert_eq!(a.data, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(a.data_offset, 16);
    }

    #[test]
    fn rejects_with_offsets() {
        let e = |b: &[u8]| format!("{:#}", decode(b).unwrap_err());
        assert!(e(&idx(&[2, 3], &[0; 5])).contains("truncated"));
        assert!(e(&idx(&[2, 3], &[0; 5])).contains("at byte offset 17"));
        assert!(
            e(&idx(&[2, 3], &[0; 8])).contains("2 unexpected trailing bytes from byte offset 18")
        );
        assert!(e(&[0, 0, 0x0d, 1, 0, 0, 0, 0]).contains("0x0d (f32) at byte offset 2"));
        assert!(e(&[1, 0, 8, 1]).contains("byte offset 0"));
        assert!(e(&[0, 0, 8, 3, 0, 0]).contains("truncated header"));
        assert!(e(&[0, 0, 8]).contains("shorter"));
        let huge = idx(&[u32::MAX, u32::MAX, u32::MAX], &[]);
        assert!(e(&huge).contains("overflow") || e(&huge).contains("truncated"));
    }

    #[test]
    fn gunzip_passes_plain_and_inflates_gz() {
        use std::io::Write;
        assert_eq!(gunzip_if_gz(vec![0, 0, 8]).unwrap(), vec![0, 0, 8]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&[9u8; 1000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip_if_gz(gz.clone()).unwrap(), vec![9u8; 1000]);
        let e = gunzip_if_gz(gz[..gz.len() / 2].to_vec()).unwrap_err();
        assert!(format!("{e:#}").contains("corrupt gzip"), "{e:#}");
    }
}
