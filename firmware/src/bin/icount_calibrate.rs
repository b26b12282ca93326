//! Checks what one SysTick tick counts: runs a loop of exactly `2·n` instructions (`subs`, `bne`)
//! for two values of `n` (the longer one spans more than one 2^24-tick SysTick period, so wrap
//! counting is checked too), and divides the instruction difference by the tick difference (fixed
//! costs cancel). Under `qemu-system-arm -M mps2-an386 -icount shift=0` this must be
//! `board::COUNT_PER_TICK` (40); exit 0 if it is, [`ExitCode::CalibrationMismatch`] otherwise.
#![no_std]
#![no_main]

use core::arch::asm;

use cortex_m_rt::entry;
use defmt_semihosting as _;
use denoiserep_firmware::{board, exit, ExitCode, InstructionCounter};

/// Ticks taken by `2·n` instructions (plus the counter reads).
fn ticks_for_loop(counter: &InstructionCounter, n: u32) -> u64 {
    let start = counter.ticks();
    // SAFETY: a register-only countdown loop; touches no memory.
    unsafe {
        asm!(
            "2:",
            "subs {0}, {0}, #1",
            "bne 2b",
            inout(reg) n => _,
            options(nomem, nostack),
        );
    }
    counter.ticks() - start
}

#[entry]
fn main() -> ! {
    let peripherals = cortex_m::Peripherals::take().expect("first and only take");
    let counter = InstructionCounter::start(peripherals.SYST);
    let (short, long) = (1_000_000u32, 401_000_000u32);
    let t_short = ticks_for_loop(&counter, short);
    let t_long = ticks_for_loop(&counter, long);
    let instructions = 2 * u64::from(long - short);
    let ticks = t_long - t_short;
    // Instructions per tick, in thousandths (exact integer arithmetic).
    let per_tick_milli = instructions * 1000 / ticks.max(1);
    defmt::info!(
        "calibration instructions={=u64} ticks={=u64} per_tick_milli={=u64} expected={=u64}",
        instructions,
        ticks,
        per_tick_milli,
        board::COUNT_PER_TICK
    );
    if per_tick_milli == board::COUNT_PER_TICK * 1000 {
        exit(ExitCode::Ok)
    } else {
        exit(ExitCode::CalibrationMismatch)
    }
}
