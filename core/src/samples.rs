//! Sample files: the inputs fed to a model and the outputs it produced, as exact bytes.
//!
//! Two little-endian layouts, shared by every producer and consumer so that host and device never
//! disagree on a byte (`docs/dump-format.md` is the written spec):
//!
//! - **Input file** (`DNRI`): a 16-byte [`InputHeader`], then `n_samples` records of `sample_len`
//!   raw f32 values (the model's un-normalized input, C·H·W order), 4 bytes each.
//! - **Dump file** (`DNRD`): a 32-byte [`DumpHeader`], then `n_samples` records, each the logits
//!   followed by the embedding, as the model computed them: f32 bit patterns (4 bytes each) for an
//!   f32 model, raw int8 values (1 byte each) for an int8 model, with the two quantizations in the
//!   header.
//!
//! `denoiserep infer --dump` (host, through this crate) and the firmware (device, through this
//! crate) both write dumps with [`DumpHeader::encode`] and [`encode_record`]; tests compare the
//! files byte for byte.
//!
//! Every length read from a header is untrusted: decoding checks it and returns
//! [`Error::SamplesBadHeader`] / [`Error::SamplesBadLength`] instead of panicking.

use crate::error::{Error, Result};
use crate::interpreter::Outputs;
use crate::tensor::{QuantParams, TensorData};

/// Magic bytes of an input file.
pub const INPUT_MAGIC: [u8; 4] = *b"DNRI";
/// Magic bytes of a dump file.
pub const DUMP_MAGIC: [u8; 4] = *b"DNRD";
/// Version of both layouts written by this build.
pub const SAMPLES_VERSION: u16 = 1;

/// Header of an input file (16 bytes).
///
/// | offset | bytes | field |
/// |---|---|---|
/// | 0 | 4 | magic `DNRI` |
/// | 4 | 2 | version (u16, = 1) |
/// | 6 | 2 | reserved, 0 |
/// | 8 | 4 | `n_samples` (u32) |
/// | 12 | 4 | `sample_len` (u32, values per sample, > 0) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InputHeader {
    /// Number of samples that follow.
    pub n_samples: u32,
    /// f32 values per sample (C·H·W of the model input).
    pub sample_len: u32,
}

impl InputHeader {
    /// Encoded length of the header in bytes.
    pub const LEN: usize = 16;

    /// The header's bytes.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0..4].copy_from_slice(&INPUT_MAGIC);
        out[4..6].copy_from_slice(&SAMPLES_VERSION.to_le_bytes());
        out[8..12].copy_from_slice(&self.n_samples.to_le_bytes());
        out[12..16].copy_from_slice(&self.sample_len.to_le_bytes());
        out
    }

    /// Reads a header from the first [`InputHeader::LEN`] bytes of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let h = bytes.get(..Self::LEN).ok_or(Error::SamplesBadLength)?;
        check_magic_version(h, INPUT_MAGIC)?;
        if u16_at(h, 6) != 0 {
            return Err(Error::SamplesBadHeader);
        }
        let header = Self {
            n_samples: u32_at(h, 8),
            sample_len: u32_at(h, 12),
        };
        if header.sample_len == 0 {
            return Err(Error::SamplesBadHeader);
        }
        Ok(header)
    }

    /// Bytes of one sample record, `4 · sample_len`.
    pub fn record_len(&self) -> usize {
        (self.sample_len as usize).saturating_mul(4)
    }

    /// Total file length implied by the header, or `None` if it does not fit in `usize`.
    pub fn file_len(&self) -> Option<usize> {
        self.record_len()
            .checked_mul(self.n_samples as usize)?
            .checked_add(Self::LEN)
    }
}

/// Encodes one input sample (f32 values) into `out`; returns the bytes written (`4 · len`).
pub fn encode_sample(sample: &[f32], out: &mut [u8]) -> Result<usize> {
    let n = sample.len().checked_mul(4).ok_or(Error::SamplesBadLength)?;
    let out = out.get_mut(..n).ok_or(Error::SamplesBadLength)?;
    for (chunk, v) in out.chunks_exact_mut(4).zip(sample) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    Ok(n)
}

/// Decodes one input sample record (`4 · out.len()` bytes) into `out`.
pub fn decode_sample(record: &[u8], out: &mut [f32]) -> Result<()> {
    if record.len() != out.len().saturating_mul(4) {
        return Err(Error::SamplesBadLength);
    }
    for (v, chunk) in out.iter_mut().zip(record.chunks_exact(4)) {
        *v = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    Ok(())
}

/// Element type of a dump's records.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DumpValues {
    /// f32 bit patterns, 4 bytes each (tag 0).
    F32,
    /// Raw int8 values, 1 byte each (tag 1), with the logits' and the embedding's quantization.
    I8 {
        /// Quantization of the logits.
        logits: QuantParams,
        /// Quantization of the embedding.
        embedding: QuantParams,
    },
}

/// Header of a dump file (32 bytes).
///
/// | offset | bytes | field |
/// |---|---|---|
/// | 0 | 4 | magic `DNRD` |
/// | 4 | 2 | version (u16, = 1) |
/// | 6 | 1 | element type: 0 = f32, 1 = int8 |
/// | 7 | 1 | reserved, 0 |
/// | 8 | 4 | `n_samples` (u32) |
/// | 12 | 4 | `logits_len` (u32, > 0) |
/// | 16 | 4 | `embedding_len` (u32) |
/// | 20 | 4 | logits scale (f32; 0 for f32 dumps) |
/// | 24 | 4 | embedding scale (f32; 0 for f32 dumps) |
/// | 28 | 1 | logits zero point (i8; 0 for f32 dumps) |
/// | 29 | 1 | embedding zero point (i8; 0 for f32 dumps) |
/// | 30 | 2 | reserved, 0 |
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DumpHeader {
    /// Number of records that follow.
    pub n_samples: u32,
    /// Logit values per record.
    pub logits_len: u32,
    /// Embedding values per record.
    pub embedding_len: u32,
    /// Element type (and quantization) of the values.
    pub values: DumpValues,
}

impl DumpHeader {
    /// Encoded length of the header in bytes.
    pub const LEN: usize = 32;

    /// The header describing `n_samples` records shaped like `outputs`.
    pub fn for_outputs(outputs: &Outputs<'_>, n_samples: u32) -> Result<Self> {
        let values = match (outputs.logits.data, outputs.embedding.data) {
            (TensorData::F32(_), TensorData::F32(_)) => DumpValues::F32,
            (TensorData::I8 { quant: l, .. }, TensorData::I8 { quant: e, .. }) => DumpValues::I8 {
                logits: l,
                embedding: e,
            },
            _ => return Err(Error::SamplesBadHeader),
        };
        let len = |n: usize| u32::try_from(n).map_err(|_| Error::SamplesBadHeader);
        Ok(Self {
            n_samples,
            logits_len: len(outputs.logits.len())?,
            embedding_len: len(outputs.embedding.len())?,
            values,
        })
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0..4].copy_from_slice(&DUMP_MAGIC);
        out[4..6].copy_from_slice(&SAMPLES_VERSION.to_le_bytes());
        out[8..12].copy_from_slice(&self.n_samples.to_le_bytes());
        out[12..16].copy_from_slice(&self.logits_len.to_le_bytes());
        out[16..20].copy_from_slice(&self.embedding_len.to_le_bytes());
        if let DumpValues::I8 { logits, embedding } = self.values {
            out[6] = 1;
            out[20..24].copy_from_slice(&logits.scale.to_le_bytes());
            out[24..28].copy_from_slice(&embedding.scale.to_le_bytes());
            out[28] = logits.zero_point as u8;
            out[29] = embedding.zero_point as u8;
        }
        out
    }

    /// Reads a header from the first [`DumpHeader::LEN`] bytes of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let h = bytes.get(..Self::LEN).ok_or(Error::SamplesBadLength)?;
        check_magic_version(h, DUMP_MAGIC)?;
        if h[7] != 0 || u16_at(h, 30) != 0 {
            return Err(Error::SamplesBadHeader);
        }
        let scale = |at: usize| f32::from_bits(u32_at(h, at));
        let values = match h[6] {
            0 if u32_at(h, 20) == 0 && u32_at(h, 24) == 0 && h[28] == 0 && h[29] == 0 => {
                DumpValues::F32
            }
            1 => {
                let logits = QuantParams {
                    scale: scale(20),
                    zero_point: h[28] as i8,
                };
                let embedding = QuantParams {
                    scale: scale(24),
                    zero_point: h[29] as i8,
                };
                if !logits.is_valid() || !embedding.is_valid() {
                    return Err(Error::SamplesBadHeader);
                }
                DumpValues::I8 { logits, embedding }
            }
            _ => return Err(Error::SamplesBadHeader),
        };
        let header = Self {
            n_samples: u32_at(h, 8),
            logits_len: u32_at(h, 12),
            embedding_len: u32_at(h, 16),
            values,
        };
        if header.logits_len == 0 {
            return Err(Error::SamplesBadHeader);
        }
        Ok(header)
    }

    /// Bytes per value: 4 (f32) or 1 (int8).
    pub fn value_size(&self) -> usize {
        match self.values {
            DumpValues::F32 => 4,
            DumpValues::I8 { .. } => 1,
        }
    }

    /// Bytes of one record: `(logits_len + embedding_len) · value_size`.
    pub fn record_len(&self) -> usize {
        (self.logits_len as usize)
            .saturating_add(self.embedding_len as usize)
            .saturating_mul(self.value_size())
    }

    /// Total file length implied by the header, or `None` if it does not fit in `usize`.
    pub fn file_len(&self) -> Option<usize> {
        self.record_len()
            .checked_mul(self.n_samples as usize)?
            .checked_add(Self::LEN)
    }
}

/// Writes one dump record (logits, then embedding, exact bytes) into `out`; returns the bytes
/// written. `Err(SamplesBadLength)` if `out` is too short.
pub fn encode_record(outputs: &Outputs<'_>, out: &mut [u8]) -> Result<usize> {
    let mut at = 0;
    for tensor in [outputs.logits, outputs.embedding] {
        at += match tensor.data {
            TensorData::F32(v) => {
                let dst = out
                    .get_mut(at..at + v.len() * 4)
                    .ok_or(Error::SamplesBadLength)?;
                encode_sample(v, dst)?
            }
            TensorData::I8 { values, .. } => {
                let dst = out
                    .get_mut(at..at + values.len())
                    .ok_or(Error::SamplesBadLength)?;
                for (d, &q) in dst.iter_mut().zip(values) {
                    *d = q as u8;
                }
                values.len()
            }
        };
    }
    Ok(at)
}

fn check_magic_version(h: &[u8], magic: [u8; 4]) -> Result<()> {
    if h.get(..4) != Some(&magic[..]) {
        return Err(Error::SamplesBadMagic);
    }
    if u16_at(h, 4) != SAMPLES_VERSION {
        return Err(Error::SamplesUnsupportedVersion);
    }
    Ok(())
}

/// `h` is at least `at + 2` bytes long (callers slice a fixed-size header first).
fn u16_at(h: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([h[at], h[at + 1]])
}

/// `h` is at least `at + 4` bytes long (callers slice a fixed-size header first).
fn u32_at(h: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{Shape, TensorView};

    #[test]
    fn input_header_golden_bytes_and_round_trip() {
        let h = InputHeader {
            n_samples: 3,
            sample_len: 784,
        };
        let bytes = h.encode();
        assert_eq!(
            bytes,
            [b'D', b'N', b'R', b'I', 1, 0, 0, 0, 3, 0, 0, 0, 0x10, 0x03, 0, 0]
        );
        assert_eq!(InputHeader::decode(&bytes), Ok(h));
        assert_eq!(h.file_len(), Some(16 + 3 * 784 * 4));
    }

    #[test]
    fn input_header_rejections() {
        let good = InputHeader {
            n_samples: 1,
            sample_len: 2,
        }
        .encode();
        assert_eq!(
            InputHeader::decode(&good[..15]),
            Err(Error::SamplesBadLength)
        );
        let mut b = good;
        b[0] = b'X';
        assert_eq!(InputHeader::decode(&b), Err(Error::SamplesBadMagic));
        let mut b = good;
        b[4] = 2;
        assert_eq!(
            InputHeader::decode(&b),
            Err(Error::SamplesUnsupportedVersion)
        );
        let mut b = good;
        b[7] = 1;
        assert_eq!(InputHeader::decode(&b), Err(Error::SamplesBadHeader));
        let mut b = good;
        b[12] = 0;
        assert_eq!(InputHeader::decode(&b), Err(Error::SamplesBadHeader));
    }

    #[test]
    fn sample_round_trip_keeps_bits() {
        let sample = [0.5f32, -0.0, f32::MIN_POSITIVE, 1.0e-40, 3.25];
        let mut bytes = [0u8; 20];
        assert_eq!(encode_sample(&sample, &mut bytes), Ok(20));
        let mut back = [0f32; 5];
        decode_sample(&bytes, &mut back).unwrap();
        for (a, b) in sample.iter().zip(&back) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
        assert_eq!(
            decode_sample(&bytes[..19], &mut back),
            Err(Error::SamplesBadLength)
        );
        assert_eq!(
            encode_sample(&sample, &mut bytes[..19]),
            Err(Error::SamplesBadLength)
        );
    }

    #[test]
    fn f32_dump_header_and_record() {
        let logits = [1.0f32, -2.5];
        let emb = [0.25f32, 0.0, 7.0];
        let out = Outputs {
            logits: TensorView {
                shape: Shape::new(&[2]).unwrap(),
                data: TensorData::F32(&logits),
            },
            embedding: TensorView {
                shape: Shape::new(&[3]).unwrap(),
                data: TensorData::F32(&emb),
            },
        };
        let h = DumpHeader::for_outputs(&out, 4).unwrap();
        assert_eq!(h.record_len(), 20);
        assert_eq!(h.file_len(), Some(32 + 80));
        let bytes = h.encode();
        assert_eq!(&bytes[..8], &[b'D', b'N', b'R', b'D', 1, 0, 0, 0]);
        assert_eq!(DumpHeader::decode(&bytes), Ok(h));
        let mut rec = [0u8; 20];
        assert_eq!(encode_record(&out, &mut rec), Ok(20));
        assert_eq!(&rec[..4], &1.0f32.to_le_bytes());
        assert_eq!(&rec[16..], &7.0f32.to_le_bytes());
        assert_eq!(
            encode_record(&out, &mut rec[..19]),
            Err(Error::SamplesBadLength)
        );
    }

    #[test]
    fn int8_dump_header_and_record() {
        let lq = QuantParams {
            scale: 0.125,
            zero_point: -3,
        };
        let eq = QuantParams {
            scale: 0.5,
            zero_point: -128,
        };
        let logits = [-128i8, 127];
        let emb = [5i8];
        let out = Outputs {
            logits: TensorView {
                shape: Shape::new(&[2]).unwrap(),
                data: TensorData::I8 {
                    values: &logits,
                    quant: lq,
                },
            },
            embedding: TensorView {
                shape: Shape::new(&[1]).unwrap(),
                data: TensorData::I8 {
                    values: &emb,
                    quant: eq,
                },
            },
        };
        let h = DumpHeader::for_outputs(&out, 1).unwrap();
        let bytes = h.encode();
        assert_eq!(bytes[6], 1);
        assert_eq!(bytes[28], (-3i8) as u8);
        assert_eq!(DumpHeader::decode(&bytes), Ok(h));
        let mut rec = [0u8; 3];
        assert_eq!(encode_record(&out, &mut rec), Ok(3));
        assert_eq!(rec, [0x80, 0x7f, 5]);
    }

    #[test]
    fn dump_header_rejections() {
        let good = DumpHeader {
            n_samples: 1,
            logits_len: 2,
            embedding_len: 2,
            values: DumpValues::F32,
        }
        .encode();
        for (at, v) in [(6usize, 2u8), (7, 1), (20, 1), (28, 1), (30, 1)] {
            let mut b = good;
            b[at] = v;
            assert_eq!(DumpHeader::decode(&b), Err(Error::SamplesBadHeader), "{at}");
        }
        let mut b = good;
        b[12] = 0;
        assert_eq!(DumpHeader::decode(&b), Err(Error::SamplesBadHeader));
        // An int8 dump needs positive finite scales.
        let mut b = good;
        b[6] = 1;
        assert_eq!(DumpHeader::decode(&b), Err(Error::SamplesBadHeader));
    }

    #[test]
    fn decoders_never_panic_on_any_short_or_random_header() {
        let mut state = 0x1234_5678u32;
        for len in 0..48 {
            for _ in 0..200 {
                let mut buf = [0u8; 48];
                for b in buf.iter_mut() {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    *b = state as u8;
                }
                if len >= 4 {
                    buf[..4].copy_from_slice(if len % 2 == 0 { b"DNRD" } else { b"DNRI" });
                }
                let _ = InputHeader::decode(&buf[..len]);
                let _ = DumpHeader::decode(&buf[..len]);
            }
        }
    }
}
