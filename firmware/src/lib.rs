//! # denoiserep-firmware
//!
//! One generic Cortex-M4F firmware for every `denoiserep-core` model: the model is not compiled
//! in. It sits in a flash partition (QEMU: written by `-device loader,…,force-raw=on`; a real
//! board: flashed with probe-rs), is decoded zero-copy and validated by the core, and runs on
//! samples read from a host file through semihosting. Outputs go to a host file in the core's
//! dump layout, the run ends with a documented exit code ([`ExitCode`]), and a defmt log
//! (defmt-semihosting, decoded with defmt-print) reports the model, the arena and per-op and
//! per-inference instruction counts. `docs/firmware.md` is the user's guide.
//!
//! Host-testable (`cargo test --lib --target x86_64-unknown-linux-gnu`, see scripts/test.sh):
//! - [`board`]: per-board sizes (arena, I/O buffers) and what one SysTick tick counts.
//! - [`failure`]: what can go wrong ([`Failure`]) and the exit code of each class ([`ExitCode`]).
//! - [`checks`]: the model file in its partition, buffer fit, dump header, MACs per op.
//!
//! Cortex-M only (`target_os = "none"`):
//! - [`partition`]: the model partition (memory.x `MODEL`).
//! - [`counter`]: a 64-bit instruction (QEMU `-icount`) or cycle (hardware) counter on SysTick.
//! - [`buffers`]: the static arena and I/O buffers, taken once.
//! - [`io`]: the input file (`input.dnri`) and the dump file (`output.dnrd`) over semihosting.
//! - [`session`]: the whole run: load, check, infer every sample, write, report.
//! - [`stack`]: peak stack use (stack painting), so the log reports all RAM used.
//! - [`exit`]: the semihosting exit and the panic / HardFault handlers.
//! - `interrupts`: the device vectors, one per interrupt line of the board (cortex-m-rt `device`).
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

pub mod board;
pub mod checks;
pub mod failure;

#[cfg(test)]
mod test_models;

#[cfg(target_os = "none")]
pub mod buffers;
#[cfg(target_os = "none")]
pub mod counter;
#[cfg(target_os = "none")]
pub mod exit;
#[cfg(target_os = "none")]
mod interrupts;
#[cfg(target_os = "none")]
pub mod io;
#[cfg(target_os = "none")]
pub mod partition;
#[cfg(target_os = "none")]
pub mod session;
#[cfg(target_os = "none")]
pub mod stack;

pub use failure::{ExitCode, Failure};

#[cfg(target_os = "none")]
pub use buffers::Buffers;
#[cfg(target_os = "none")]
pub use counter::InstructionCounter;
#[cfg(target_os = "none")]
pub use exit::exit;
#[cfg(target_os = "none")]
pub use session::{run, Summary};
#[cfg(target_os = "none")]
pub use stack::static_ram;
