//! Runs the checked-in small CNN (f32 and int8) once on the device and checks that its logits are
//! bit-identical to what the host computed (`core/tests/fixtures/*.logits`). Reports through
//! semihosting; exit code 0 when every model matches, 1 otherwise.
//!
//! `cargo run --release` (QEMU mps2-an386, see `.cargo/config.toml`).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use denoiserep_core::{Error, Model, TensorData};
use semihosting::{println, process};

/// (name, model file, host logits as little-endian bytes)
const FIXTURES: [(&str, &[u8], &[u8]); 2] = [
    (
        "small_cnn_f32",
        include_bytes!("../../core/tests/fixtures/small_cnn_f32.dnrp"),
        include_bytes!("../../core/tests/fixtures/small_cnn_f32.logits"),
    ),
    (
        "small_cnn_int8",
        include_bytes!("../../core/tests/fixtures/small_cnn_int8.dnrp"),
        include_bytes!("../../core/tests/fixtures/small_cnn_int8.logits"),
    ),
];

/// Arena for the largest fixture (the f32 CNN needs 2915 bytes).
const ARENA_BYTES: usize = 4096;
/// Input length of the fixtures (1×12×12).
const INPUT_LEN: usize = 144;

#[entry]
fn main() -> ! {
    let mut arena = [0u8; ARENA_BYTES];
    // The fixed input of core/tests/fixtures.rs: x[i] = ((i · 37) mod 101) / 100.
    let input: [f32; INPUT_LEN] = core::array::from_fn(|i| ((i * 37) % 101) as f32 / 100.0);
    let mut all_match = true;
    for (name, file, expected) in FIXTURES {
        match run(file, &input, expected, &mut arena) {
            Ok((true, arena_size)) => {
                println!("{name}: arena {arena_size} B, logits match the host")
            }
            Ok((false, arena_size)) => {
                println!("{name}: arena {arena_size} B, logits DIFFER from the host");
                all_match = false;
            }
            Err(e) => {
                println!("{name}: error: {e}");
                all_match = false;
            }
        }
    }
    process::exit(if all_match { 0 } else { 1 })
}

/// Decodes and runs one model; returns whether its logits equal `expected` (little-endian bytes)
/// and the arena size the model needs.
fn run(
    file: &[u8],
    input: &[f32],
    expected: &[u8],
    arena: &mut [u8],
) -> Result<(bool, usize), Error> {
    let model = Model::from_bytes(file)?;
    let same = match model.run(input, arena)?.logits.data {
        TensorData::F32(v) => v
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .eq(expected.iter().copied()),
        TensorData::I8 { values, .. } => {
            values.iter().map(|&q| q as u8).eq(expected.iter().copied())
        }
    };
    Ok((same, model.arena_size()))
}
