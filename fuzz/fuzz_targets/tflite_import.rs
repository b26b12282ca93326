//! `.tflite` files (`denoiserep import MODEL.tflite`): `interop::import_tflite` on arbitrary
//! bytes must return an error or a model, never panic; a model it returns and that encodes (the
//! encoder's own checks may still refuse it, with an error) must load in the core and run on a
//! zero input with exactly `arena_size` bytes.
#![no_main]

use denoiserep_core::Model;
use denoiserep_trainer::interop::import_tflite;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = import_tflite(data, "fuzz") else {
        return;
    };
    let Ok(bytes) = file.encode() else {
        return;
    };
    let model = Model::from_bytes(&bytes).expect("the core loads an imported model");
    let mut arena = vec![0u8; model.arena_size()];
    let input = vec![0i8; model.input_len()];
    model
        .run_quantized(&input, &mut arena)
        .expect("an imported model runs");
});
