//! `footprint-sine` in QEMU: the same application code (src/bin/sine/app.rs) run over 64 inputs in
//! `[0, 2π]`, with the firmware's stack painting, so the log reports the stack the inference path
//! needs, the static RAM, the arena, and the output for `x = 0` checked against the host core's
//! (`core/tests/fixtures/sine_int8.logits`). Exit 0 when they match. `bash bench/device.sh` runs it.
#![no_std]
#![no_main]

#[path = "sine/app.rs"]
mod app;

use cortex_m_rt::entry;
use defmt_semihosting as _;
use denoiserep_firmware::{exit, stack, ExitCode};

/// The host core's output for `x = 0` (the fixture test writes it).
static EXPECTED: &[u8] = include_bytes!("../../../core/tests/fixtures/sine_int8.logits");

#[entry]
fn main() -> ! {
    let Some(arena) = cortex_m::singleton!(: app::Arena = app::Arena([0; app::ARENA_BYTES])) else {
        exit(ExitCode::Panic)
    };
    stack::paint();
    let model = match app::load() {
        Ok(m) => m,
        Err(e) => {
            defmt::error!("model rejected: {}", e);
            exit(ExitCode::ModelRejected)
        }
    };
    let first = app::infer(&model, 0.0, arena);
    let mut checksum = 0i32;
    for i in 0..64u16 {
        match app::infer(&model, f32::from(i) * core::f32::consts::TAU / 63.0, arena) {
            Ok(y) => checksum = checksum.wrapping_mul(31).wrapping_add(i32::from(y)),
            Err(e) => {
                defmt::error!("inference {=u16} failed: {}", i, e);
                exit(ExitCode::RunFailed)
            }
        }
    }
    let peak = stack::peak();
    defmt::info!(
        "sine model_bytes={=usize} arena_bytes={=usize} static_ram_bytes={=usize} stack_peak_bytes={=usize} checksum={=i32}",
        app::MODEL.len(),
        app::ARENA_BYTES,
        stack::static_ram(),
        peak,
        checksum
    );
    match (first, EXPECTED.first()) {
        (Ok(y), Some(&e)) if y as u8 == e => exit(ExitCode::Ok),
        (got, _) => {
            defmt::error!("output for x = 0: {} (host core: {=[u8]})", got, EXPECTED);
            exit(ExitCode::RunFailed)
        }
    }
}
