//! Checked-in fixtures: the small CNN in f32 and int8 with the logits the host computes for a
//! fixed input. The firmware embeds the same files and checks that the device computes the same
//! bytes. Regenerate with `DENOISEREP_BLESS=1 cargo test -p denoiserep-core --test fixtures`.

mod common;

use common::{le_f32, quantize_model, small_cnn, OwnedLayer, OwnedModel, Rng};
use denoiserep_core::{Activation, Model, Precision, TensorData};
use std::path::PathBuf;

/// The fixed input the firmware uses too: `x[i] = ((i · 37) mod 101) / 100` (also in
/// `firmware/src/main.rs`).
fn fixture_input(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 37) % 101) as f32 / 100.0).collect()
}

pub fn fixture_models() -> (OwnedModel, OwnedModel) {
    let f = small_cnn(2024);
    let mut rng = Rng(2025);
    let calib: Vec<Vec<f32>> = (0..64).map(|_| rng.vec(144, 0.0, 1.0)).collect();
    let q = quantize_model(&f, &calib);
    (f, q)
}

/// TFLite-Micro's `hello_world` topology (x → Dense 16 + ReLU → Dense 16 + ReLU → Dense 1) with
/// seeded random weights, for the footprint comparison in docs/benchmarks.md ("How this
/// compares"): the firmware's `footprint-sine` binary embeds the int8 file. Input: one value in
/// `[0, 2π]`; the embedding is the second hidden layer.
pub fn sine_models() -> (OwnedModel, OwnedModel) {
    let mut rng = Rng(7);
    let layers = vec![
        OwnedLayer::Flatten,
        OwnedLayer::linear_f32(
            1,
            16,
            Activation::Relu,
            &rng.vec(16, -1.0, 1.0),
            &rng.vec(16, -1.0, 1.0),
        ),
        OwnedLayer::linear_f32(
            16,
            16,
            Activation::Relu,
            &rng.vec(256, -0.5, 0.5),
            &rng.vec(16, -0.2, 0.2),
        ),
        OwnedLayer::linear_f32(
            16,
            1,
            Activation::None,
            &rng.vec(16, -0.5, 0.5),
            &rng.vec(1, -0.1, 0.1),
        ),
    ];
    let f = OwnedModel {
        name: "sine".into(),
        input_shape: [1, 1, 1],
        num_classes: 1,
        embedding_layer: 2,
        mean: le_f32(&[0.0]),
        std: le_f32(&[1.0]),
        precision: Precision::F32,
        input_quant: None,
        layers,
    };
    let calib: Vec<Vec<f32>> = (0..64)
        .map(|i| vec![i as f32 * core::f32::consts::TAU / 63.0])
        .collect();
    let q = quantize_model(&f, &calib);
    (f, q)
}

fn logits_bytes(model_bytes: &[u8]) -> Vec<u8> {
    let model = Model::from_bytes(model_bytes).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let out = model
        .run(&fixture_input(model.input_len()), &mut arena)
        .unwrap();
    match out.logits.data {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I8 { values, .. } => values.iter().map(|&q| q as u8).collect(),
    }
}

fn check_or_bless(name: &str, bytes: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    if std::env::var_os("DENOISEREP_BLESS").is_some() {
        std::fs::write(&path, bytes).unwrap();
    }
    let on_disk = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with DENOISEREP_BLESS=1)", path.display()));
    assert_eq!(
        on_disk,
        bytes,
        "{} is stale: regenerate with DENOISEREP_BLESS=1",
        path.display()
    );
}

#[test]
fn fixtures_are_current() {
    let (f, q) = fixture_models();
    for (stem, m) in [("small_cnn_f32", f), ("small_cnn_int8", q)] {
        let bytes = m.encode().unwrap();
        check_or_bless(&format!("{stem}.dnrp"), &bytes);
        check_or_bless(&format!("{stem}.logits"), &logits_bytes(&bytes));
    }
}

#[test]
fn sine_fixtures_are_current() {
    let (f, q) = sine_models();
    for (stem, m) in [("sine_f32", f), ("sine_int8", q)] {
        let bytes = m.encode().unwrap();
        check_or_bless(&format!("{stem}.dnrp"), &bytes);
        check_or_bless(&format!("{stem}.logits"), &logits_bytes(&bytes));
    }
}
