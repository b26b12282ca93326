//! Checked-in fixtures (format v3): the small CNN, the sine MLP, a residual block, a
//! depthwise-separable net and a ViT block, in f32 and int8, with the logits the host computes for a fixed input.
//! The firmware embeds some of the same files and checks that the device computes the same
//! bytes. Regenerate with `DENOISEREP_BLESS=1 cargo test -p denoiserep-core --test fixtures`.
//! Every fixture also runs in exactly `arena_size()` bytes at the worst alignment and in
//! `plan_size()` bytes 4-aligned, and fails with one byte less (`tests/interpreter.rs` checks the
//! same for the in-memory models).

mod common;

use common::{dw_separable, quantize_model, residual_cnn, small_cnn, OwnedModel, Rng};
use denoiserep_core::{Activation, Error, Model, TensorData};
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
/// `[0, 2π]` (tensor `[1]`); the embedding is the second hidden layer.
pub fn sine_models() -> (OwnedModel, OwnedModel) {
    let mut rng = Rng(7);
    let mut f = OwnedModel::new("sine", &[1], &[0.0], &[1.0]);
    let h1 = f.linear(
        0,
        Activation::Relu,
        &rng.vec(16, -1.0, 1.0),
        &rng.vec(16, -1.0, 1.0),
    );
    let h2 = f.linear(
        h1,
        Activation::Relu,
        &rng.vec(256, -0.5, 0.5),
        &rng.vec(16, -0.2, 0.2),
    );
    let y = f.linear(
        h2,
        Activation::None,
        &rng.vec(16, -0.5, 0.5),
        &rng.vec(1, -0.1, 0.1),
    );
    let f = f.outputs(y, h2);
    let calib: Vec<Vec<f32>> = (0..64)
        .map(|i| vec![i as f32 * core::f32::consts::TAU / 63.0])
        .collect();
    let q = quantize_model(&f, &calib);
    (f, q)
}

/// The residual block and the depthwise-separable net of `tests/common`, each in f32 and int8
/// (quantized on 64 seeded inputs in `[0, 1)`).
pub fn graph_models() -> Vec<(&'static str, OwnedModel, OwnedModel)> {
    let mut out = vec![];
    for (stem, f, seed) in [
        ("residual", residual_cnn(2026), 2027),
        ("dw_separable", dw_separable(2028), 2029),
    ] {
        let mut rng = Rng(seed);
        let calib: Vec<Vec<f32>> = (0..64).map(|_| rng.vec(f.input_len(), 0.0, 1.0)).collect();
        let q = quantize_model(&f, &calib);
        out.push((stem, f, q));
    }
    out
}

/// The logits bytes for the fixed input, after checking the arena is exact: `arena_size()` bytes
/// at an address `≡ 1 (mod 4)` and `plan_size()` bytes 4-aligned give the same bytes, and one
/// byte less fails with `ArenaTooSmall`.
fn logits_bytes(model_bytes: &[u8]) -> Vec<u8> {
    let model = Model::from_bytes(model_bytes).unwrap();
    let input = fixture_input(model.input_len());
    let want = run_at(&model, &input, 1, model.arena_size()).unwrap();
    assert_eq!(run_at(&model, &input, 0, model.plan_size()).unwrap(), want);
    assert_eq!(
        run_at(&model, &input, 1, model.arena_size() - 1),
        Err(Error::ArenaTooSmall)
    );
    assert_eq!(
        run_at(&model, &input, 0, model.plan_size() - 1),
        Err(Error::ArenaTooSmall)
    );
    want
}

/// The logits bytes of a run in `len` bytes starting at an address `≡ residue (mod 4)`.
fn run_at(model: &Model<'_>, input: &[f32], residue: usize, len: usize) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; len + 8];
    let o = (residue + 4 - buf.as_ptr() as usize % 4) % 4;
    let out = model.run(input, &mut buf[o..o + len])?;
    Ok(match out.logits.data {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I8 { values, .. } => values.iter().map(|&q| q as u8).collect(),
    })
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

fn check_pair(stem: &str, f: &OwnedModel, q: &OwnedModel) {
    for (suffix, m) in [("f32", f), ("int8", q)] {
        let bytes = m.encode().unwrap();
        check_or_bless(&format!("{stem}_{suffix}.dnrp"), &bytes);
        check_or_bless(&format!("{stem}_{suffix}.logits"), &logits_bytes(&bytes));
    }
}

#[test]
fn fixtures_are_current() {
    let (f, q) = fixture_models();
    check_pair("small_cnn", &f, &q);
}

#[test]
fn sine_fixtures_are_current() {
    let (f, q) = sine_models();
    check_pair("sine", &f, &q);
}

/// One ViT block (`common::vit_model`: patch embedding, class token, LayerNorm, 2-head
/// attention, GELU MLP, token mean and class-token head) in f32 and int8.
#[test]
fn vit_fixtures_are_current() {
    let (f, q) = common::vit_models(2030);
    check_pair("vit", &f, &q);
}

#[test]
fn graph_fixtures_are_current() {
    for (stem, f, q) in graph_models() {
        check_pair(stem, &f, &q);
    }
}

/// The committed files are what a reader sees: each loads, has the stated outputs, and the
/// int8 logits of the graph fixtures equal the naive int8 evaluation in `tests/common`.
#[test]
fn committed_fixtures_load_and_match_the_naive_evaluation() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (stem, _, q) in graph_models() {
        let bytes = std::fs::read(dir.join(format!("{stem}_int8.dnrp"))).unwrap();
        let logits = std::fs::read(dir.join(format!("{stem}_int8.logits"))).unwrap();
        let want = common::eval_naive(&q, &fixture_input(q.input_len()));
        let want: Vec<u8> = want[q.logits as usize]
            .as_ref()
            .unwrap()
            .i8()
            .iter()
            .map(|&v| v as u8)
            .collect();
        assert_eq!(logits, want, "{stem}");
        assert_eq!(logits_bytes(&bytes), want);
    }
}
