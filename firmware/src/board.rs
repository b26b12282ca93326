//! Per-board constants, selected by the same cargo feature as the memory map (build.rs):
//! `mps2-an386` (QEMU, default) or `board-nrf52840`.
//!
//! Every buffer is static (`.bss`), so `llvm-size` shows the whole RAM use except the stack; a model
//! that needs more than these sizes is refused with [`crate::ExitCode::ModelDoesNotFit`].

#[cfg(not(feature = "board-nrf52840"))]
mod selected {
    /// Board name, as logged.
    pub const NAME: &str = "mps2-an386";
    /// Static arena for [`denoiserep_core::Model::run`] (1 MiB of the board's 4 MiB RAM).
    pub const ARENA_BYTES: usize = 1024 * 1024;
    /// Largest model input, in f32 values (C·H·W): 128 KiB, enough for 3×96×96 (MLPerf Tiny
    /// visual wake words, 27 648 values).
    pub const MAX_INPUT_VALUES: usize = 32 * 1024;
    /// Largest dump record (logits + embedding) in bytes.
    pub const MAX_RECORD_BYTES: usize = 16 * 1024;
    /// Counted events per SysTick tick: under `qemu-system-arm -M mps2-an386 -icount shift=0`
    /// SysTick runs at 25 MHz of virtual time and one instruction takes 1 ns, so 1 tick =
    /// 40 instructions (checked by the `icount-calibrate` binary and the device tests).
    pub const COUNT_PER_TICK: u64 = 40;
    /// What the counter counts.
    pub const COUNT_UNIT: &str = "instructions";
}

#[cfg(feature = "board-nrf52840")]
mod selected {
    /// Board name, as logged.
    pub const NAME: &str = "nrf52840";
    /// Static arena (160 KiB of the part's 256 KiB RAM).
    pub const ARENA_BYTES: usize = 160 * 1024;
    /// Largest model input, in f32 values (C·H·W): 16 KiB, enough for 3×32×32.
    pub const MAX_INPUT_VALUES: usize = 4 * 1024;
    /// Largest dump record (logits + embedding) in bytes.
    pub const MAX_RECORD_BYTES: usize = 4 * 1024;
    /// On real silicon SysTick (clock source = core) ticks once per CPU cycle (64 MHz).
    pub const COUNT_PER_TICK: u64 = 1;
    /// What the counter counts.
    pub const COUNT_UNIT: &str = "cycles";
}

pub use selected::*;

/// Tensor capacity `T` of the firmware's model ([`crate::checks::FirmwareModel`] =
/// `Model<'_, TENSOR_CAPACITY>`): one 8-byte slot per tensor of the model's tensor table on this
/// target (where its table entry starts, its arena offset; shapes and dtypes are decoded from the
/// model file on demand), so the model value is 1 348 B at 160; the loading scratch (13 B per
/// tensor of the model) is in the arena, not on the stack. 160 holds the default MNIST ViT
/// (`vit:7,64,4,4,2`: 117 tensors in f32, 139 in int8); the device_arch ViTs have 65 / 77. A
/// model with more tensors is rejected by the core with `DecodeTooManyTensors` (exit 1). Every op
/// writes a tensor of its own and never the input, so a model that loads has fewer ops than
/// this. Peak stack measured in QEMU: docs/firmware.md, "RAM".
pub const TENSOR_CAPACITY: usize = 160;

/// Bytes read from the input file per semihosting call.
pub const READ_CHUNK_BYTES: usize = 512;
