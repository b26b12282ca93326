//! CIFAR-10 binary batches (`cifar10:DIR`): `cifar10::decode_batch`.
#![no_main]

use denoiserep_trainer::data::{cifar10, Split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let before = Split {
        x: vec![0.5; cifar10::PIXELS],
        y: vec![1],
    };
    let mut split = before.clone();
    match cifar10::decode_batch(data, &mut split) {
        Ok(()) => {
            let n = data.len() / cifar10::RECORD;
            assert_eq!(split.len(), 1 + n);
            assert_eq!(split.x.len(), (1 + n) * cifar10::PIXELS);
            assert!(split.y.iter().all(|&y| (y as usize) < cifar10::CLASSES));
            assert!(split.x.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        // On error the split is unchanged (documented).
        Err(_) => assert_eq!(split, before),
    }
});
