//! # denoiserep-firmware
//!
//! One generic Cortex-M4F firmware for every `denoiserep-core` model: the model is not compiled
//! in. It sits in a flash partition (QEMU: written by `-device loader,…,force-raw=on`; a real
//! board: flashed with probe-rs), is decoded zero-copy and validated by the core, and runs on
//! samples read from a host file through semihosting. Outputs go to a host file in the core's
//! dump layout, the run ends with a documented exit code ([`ExitCode`]), and a defmt log
//! (defmt-semihosting, decoded with defmt-print) reports the model, the arena and per-layer and
//! per-inference instruction counts. `docs/firmware.md` is the user's guide.
//!
//! - [`board`]: per-board sizes (arena, I/O buffers) and what one SysTick tick counts.
//! - [`partition`]: the model partition and the model file in it.
//! - [`counter`]: a 64-bit instruction (QEMU `-icount`) or cycle (hardware) counter on SysTick.
//! - [`buffers`]: the static arena and I/O buffers, taken once.
//! - [`io`]: the input file (`input.dnri`) and the dump file (`output.dnrd`) over semihosting.
//! - [`session`]: the whole run: load, check, infer every sample, write, report.
//! - [`stack`]: peak stack use (stack painting), so the log reports all RAM used.
//! - [`exit`]: exit codes, one per failure class, and the panic / HardFault handlers.
#![no_std]
#![deny(missing_docs)]

pub mod board;
pub mod buffers;
pub mod counter;
pub mod exit;
pub mod io;
pub mod partition;
pub mod session;
pub mod stack;

pub use buffers::Buffers;
pub use counter::InstructionCounter;
pub use exit::{exit, ExitCode, Failure};
pub use session::{run, Summary};
pub use stack::static_ram;
