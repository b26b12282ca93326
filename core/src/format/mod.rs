//! The model file format, version 3 (`docs/model-format.md` is its specification).
//!
//! ```text
//! offset  size  field
//! 0       4     magic  b"DNRP"
//! 4       2     format version, u16 LE (= FORMAT_VERSION = 3)
//! 6       2     reserved, u16 LE, must be 0
//! 8       4     body length in bytes, u32 LE (= file length − 16)
//! 12      4     CRC-32/ISO-HDLC of the body, u32 LE
//! 16      …     body: postcard(ModelInfo) · varint(tensor count) · postcard(TensorDesc)…
//!                     · varint(op count) · per op: varint(tag) · inputs · varint(output) · params
//! ```
//!
//! Every header field is checked exactly, and the CRC covers every body byte, so any single bit
//! flip anywhere in a file is rejected. Decoding is zero-copy: tensors are borrowed from the input;
//! the encoder puts every large tensor payload on a 32-byte multiple of the file ([`align`]).

pub mod align;
mod decode;
mod encode;
pub mod graph;

pub use decode::{file_len, Body, Nodes};
pub use encode::{encode, encoded_len, Graph};

/// The first four bytes of every model file.
pub const MAGIC: [u8; 4] = *b"DNRP";
/// The format version this build reads and writes.
pub const FORMAT_VERSION: u16 = 3;
/// Length of the fixed header in bytes.
pub const HEADER_LEN: usize = 16;

/// The CRC used over the body: CRC-32/ISO-HDLC (the zlib / Ethernet CRC-32).
pub(crate) const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
