//! Whole model files: bytes → `Model::from_bytes` → `run` with exactly `arena_size` bytes.
//!
//! Mutations of a valid file almost always fail the body CRC, so this target mostly covers the
//! header checks; `model_body` covers the body decoder and the validation behind the CRC.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let seed = data
        .iter()
        .fold(0u32, |h, &b| h.rotate_left(5) ^ u32::from(b));
    common::check_model(data, seed);
    // The header-only reader agrees with the full decoder on the length it announces.
    if denoiserep_core::Model::from_bytes(data).is_ok() {
        assert_eq!(denoiserep_core::file_len(data), Ok(data.len()));
    }
});
