//! Host == device: the same model file and the same inputs through the core on the host and
//! through the firmware in QEMU (mps2-an386, Cortex-M4F) give byte-identical dump files (f32 bit
//! patterns, int8 values), for an MLP and a CNN, f32 and int8. Also checks the firmware's log:
//! the model line, one `op=` line per op with the MACs the host counts, one instruction count
//! per sample and one `op_total=` per op, adding up to the `done` line's total, and the peak
//! stack while loading and running (`device::STACK_LIMIT`).
//!
//! Skips (loudly) only when qemu-system-arm is missing; scripts/test.sh installs it.

use denoiserep_tests::device::{
    digit_like_inputs, f32_and_int8, host_equals_device, mnist_cnn, mnist_mlp,
};
use denoiserep_tests::models::OwnedModel;

/// Inputs per model.
const SAMPLES: usize = 12;

fn assert_parity(desc: &OwnedModel, seed: u64) {
    let file = desc.encode().expect("model encodes");
    host_equals_device(&desc.name, &file, &digit_like_inputs(SAMPLES, seed));
}

#[test]
fn mlp_f32_and_int8_host_equals_device() {
    for desc in f32_and_int8(mnist_mlp(11), 12) {
        assert_parity(&desc, 13);
    }
}

#[test]
fn cnn_f32_and_int8_host_equals_device() {
    for desc in f32_and_int8(mnist_cnn(21), 22) {
        assert_parity(&desc, 23);
    }
}

/// The core's own graph test models (residual Add, depthwise + ReLU6, softmax), f32 and int8.
#[test]
fn core_graph_models_f32_and_int8_host_equals_device() {
    use denoiserep_tests::models::{dw_separable, input_range, residual_cnn, with_int8, Rng};
    for (m, seed) in [(residual_cnn(31), 32), (dw_separable(41), 42)] {
        let (f, q) = with_int8(m, seed);
        let (lo, hi) = input_range(&f);
        let mut rng = Rng(seed + 1);
        let samples: Vec<Vec<f32>> = (0..SAMPLES)
            .map(|_| rng.vec(f.input_len(), lo, hi))
            .collect();
        for (desc, tag) in [(&f, "f32"), (&q, "int8")] {
            let file = desc.encode().expect("model encodes");
            host_equals_device(&format!("{} {tag}", desc.name), &file, &samples);
        }
    }
}
