//! Model bodies: the fuzz input is the body (postcard metadata and layers); the harness prepends
//! a valid 16-byte header (magic `DNRP`, version, reserved 0, body length, CRC-32/ISO-HDLC of the
//! body, the `crc` crate's implementation as in core) so that mutations reach the body decoder,
//! validation, planning and the kernels instead of dying at the CRC check.
#![no_main]

mod common;

use denoiserep_core::{FORMAT_VERSION, MAGIC};
use libfuzzer_sys::fuzz_target;

/// The model format's body checksum (`docs/model-format.md`).
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

fuzz_target!(|body: &[u8]| {
    let Ok(len) = u32::try_from(body.len()) else {
        return;
    };
    let mut file = Vec::with_capacity(16 + body.len());
    file.extend_from_slice(&MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&0u16.to_le_bytes());
    file.extend_from_slice(&len.to_le_bytes());
    file.extend_from_slice(&CRC32.checksum(body).to_le_bytes());
    file.extend_from_slice(body);
    let seed = body
        .iter()
        .fold(0u32, |h, &b| h.rotate_left(5) ^ u32::from(b));
    common::check_model(&file, seed);
    // Decoding alone (no validation) never panics either, and agrees with from_bytes on success.
    if denoiserep_core::Model::from_bytes(&file).is_ok() {
        assert!(denoiserep_core::decode(&file).is_ok());
    }
});
