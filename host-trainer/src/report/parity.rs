//! Host vs device: two dump files (`docs/dump-format.md`) compared record by record with the
//! core's dump reader, so a difference is reported as a sample and a field, not just "differ".

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use denoiserep_core::{DumpHeader, DumpValues};

/// The first value that differs.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// 0-based sample index.
    pub sample: u32,
    /// `logits[j]` or `embedding[j]`.
    pub field: String,
    /// The two values as stored (f32: value and bit pattern; int8: the raw value).
    pub host: String,
    pub device: String,
}

/// The outcome of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Parity {
    /// Samples compared (both dumps hold this many).
    pub samples: u32,
    /// Samples whose records differ in at least one byte.
    pub differing: u32,
    /// The first differing value, in sample then field order.
    pub first: Option<Difference>,
    /// Set when the headers differ (quantization, lengths, element type): then no record is
    /// compared and every sample counts as differing.
    pub header: Option<String>,
}

impl Parity {
    /// True when both dumps are byte for byte the same.
    pub fn identical(&self) -> bool {
        self.differing == 0 && self.header.is_none()
    }

    /// One sentence: "bit-identical on 200 samples" or what differs.
    pub fn describe(&self) -> String {
        if let Some(h) = &self.header {
            return format!("the dump headers differ: {h}");
        }
        match &self.first {
            None => format!("bit-identical on {} samples", self.samples),
            Some(d) => format!(
                "{} of {} samples differ; first: sample {} {}: host {}, device {}",
                self.differing, self.samples, d.sample, d.field, d.host, d.device
            ),
        }
    }
}

/// Reads both dump files and compares them; a file that is missing or not a valid dump is an
/// error naming it.
pub fn compare_files(host: &Path, device: &Path) -> Result<Parity> {
    let read = |p: &Path| -> Result<(DumpHeader, Vec<u8>)> {
        let bytes = super::read_bytes(p)?;
        let header = DumpHeader::decode(&bytes)
            .map_err(|e| anyhow!("{}: not a dump file: {e}", p.display()))?;
        if header.file_len() != Some(bytes.len()) {
            bail!(
                "{}: {} bytes, its header ({} samples of {} bytes) implies {}",
                p.display(),
                bytes.len(),
                header.n_samples,
                header.record_len(),
                header
                    .file_len()
                    .map_or_else(|| "more than fits in memory".into(), |n| n.to_string())
            );
        }
        Ok((header, bytes))
    };
    let (h, hb) = read(host)?;
    let (d, db) = read(device)?;
    Ok(compare(
        &h,
        &hb[DumpHeader::LEN..],
        &d,
        &db[DumpHeader::LEN..],
    ))
}

/// Compares two dumps given as decoded headers and record bytes (each `n_samples · record_len`).
pub fn compare(host: &DumpHeader, host_rec: &[u8], device: &DumpHeader, dev_rec: &[u8]) -> Parity {
    let samples = host.n_samples.max(device.n_samples);
    if host != device {
        return Parity {
            samples,
            differing: samples,
            first: None,
            header: Some(header_difference(host, device)),
        };
    }
    let len = host.record_len().max(1);
    let mut differing = 0;
    let mut first = None;
    for (i, (a, b)) in host_rec.chunks(len).zip(dev_rec.chunks(len)).enumerate() {
        if a == b {
            continue;
        }
        differing += 1;
        if first.is_none() {
            first = first_difference(host, i as u32, a, b);
        }
    }
    Parity {
        samples,
        differing,
        first,
        header: None,
    }
}

fn header_difference(h: &DumpHeader, d: &DumpHeader) -> String {
    let kind = |x: &DumpHeader| match x.values {
        DumpValues::F32 => "f32".to_string(),
        DumpValues::I8 { logits, embedding } => format!(
            "int8 (logits scale {} zp {}, embedding scale {} zp {})",
            logits.scale, logits.zero_point, embedding.scale, embedding.zero_point
        ),
    };
    let pairs = [
        ("samples", h.n_samples.to_string(), d.n_samples.to_string()),
        (
            "logits per record",
            h.logits_len.to_string(),
            d.logits_len.to_string(),
        ),
        (
            "embedding per record",
            h.embedding_len.to_string(),
            d.embedding_len.to_string(),
        ),
        ("values", kind(h), kind(d)),
    ];
    pairs
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(what, a, b)| format!("{what}: host {a}, device {b}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The first differing value of two records of `header`'s layout.
fn first_difference(header: &DumpHeader, sample: u32, a: &[u8], b: &[u8]) -> Option<Difference> {
    let size = header.value_size();
    let logits = header.logits_len as usize;
    let j = a
        .chunks(size)
        .zip(b.chunks(size))
        .position(|(x, y)| x != y)?;
    let field = if j < logits {
        format!("logits[{j}]")
    } else {
        format!("embedding[{}]", j - logits)
    };
    let show = |v: &[u8]| match *v {
        [x0, x1, x2, x3] if size == 4 => {
            let bits = u32::from_le_bytes([x0, x1, x2, x3]);
            format!("{} (0x{bits:08x})", f32::from_bits(bits))
        }
        [q] => (q as i8).to_string(),
        _ => format!("{v:?}"),
    };
    Some(Difference {
        sample,
        field,
        host: show(&a[j * size..(j + 1) * size]),
        device: show(&b[j * size..(j + 1) * size]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use denoiserep_core::QuantParams;

    fn f32_header(n: u32) -> DumpHeader {
        DumpHeader {
            n_samples: n,
            logits_len: 2,
            embedding_len: 3,
            values: DumpValues::F32,
        }
    }

    fn records(n: usize, len: usize) -> Vec<u8> {
        (0..n * len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn identical_dumps() {
        let h = f32_header(4);
        let r = records(4, h.record_len());
        let p = compare(&h, &r, &h, &r);
        assert!(p.identical());
        assert_eq!(p.describe(), "bit-identical on 4 samples");
    }

    #[test]
    fn a_flipped_bit_names_sample_and_field() {
        let h = f32_header(4);
        let a = records(4, h.record_len());
        let mut b = a.clone();
        // Sample 2, embedding[1] = value 3 of the record (bytes 12..16), lowest byte.
        b[2 * 20 + 12] ^= 1;
        b[3 * 20] ^= 0x80;
        let p = compare(&h, &a, &h, &b);
        assert!(!p.identical());
        assert_eq!(p.differing, 2);
        let d = p.first.clone().unwrap();
        assert_eq!((d.sample, d.field.as_str()), (2, "embedding[1]"));
        assert!(d.host.contains("(0x"), "{}", d.host);
        assert_ne!(d.host, d.device);
        assert!(p
            .describe()
            .starts_with("2 of 4 samples differ; first: sample 2 embedding[1]"));
    }

    #[test]
    fn int8_values_are_shown_as_integers() {
        let q = QuantParams {
            scale: 0.5,
            zero_point: -3,
        };
        let h = DumpHeader {
            n_samples: 1,
            logits_len: 2,
            embedding_len: 2,
            values: DumpValues::I8 {
                logits: q,
                embedding: q,
            },
        };
        let a = vec![1u8, 2, 3, 4];
        let b = vec![1u8, 0xff, 3, 4];
        let d = compare(&h, &a, &h, &b).first.unwrap();
        assert_eq!(
            (d.field.as_str(), d.host.as_str(), d.device.as_str()),
            ("logits[1]", "2", "-1")
        );
    }

    #[test]
    fn different_headers_are_not_identical() {
        let (a, b) = (f32_header(4), f32_header(3));
        let p = compare(&a, &[], &b, &[]);
        assert!(!p.identical());
        assert_eq!(p.header.as_deref(), Some("samples: host 4, device 3"));
    }
}
