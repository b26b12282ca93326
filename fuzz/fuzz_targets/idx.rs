//! IDX files, plain or gzip-compressed: `idx::gunzip_if_gz` then `idx::decode`, as `idx:DIR`
//! reads each of its four files.
#![no_main]

use denoiserep_trainer::data::idx;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bytes) = idx::gunzip_if_gz(data.to_vec()) else {
        return;
    };
    if !data.starts_with(&[0x1f, 0x8b]) {
        assert_eq!(bytes, data, "non-gzip input passes through unchanged");
    }
    if let Ok(a) = idx::decode(&bytes) {
        let len = a.dims.iter().product::<usize>();
        assert_eq!(a.data.len(), len);
        assert_eq!(a.data_offset, 4 + 4 * a.dims.len());
        assert_eq!(a.data_offset + len, bytes.len());
    }
});
