//! A 64-bit event counter on SysTick: instructions under QEMU `-icount shift=0`, CPU cycles on
//! real hardware ([`crate::board::COUNT_PER_TICK`], [`crate::board::COUNT_UNIT`]).
//!
//! SysTick is a 24-bit down counter clocked by the core. It reloads with `2^24 − 1`; the SysTick
//! exception counts wraps, so `ticks = wraps · 2^24 + (2^24 − 1 − current)`. A read that races a
//! wrap (the exception pending or just taken) is detected and repeated, so the count is monotonic
//! and correct even inside a critical section. DWT CYCCNT is not used: it reads 0 in QEMU.
//!
//! Under `-icount shift=0` the count is deterministic (same binary, same input → same count) and
//! counts emulated instructions, not real cycles; without `-icount` it is meaningless.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::{syst::SystClkSource, SCB, SYST};
use cortex_m_rt::exception;

use crate::board::COUNT_PER_TICK;

const RELOAD: u32 = 0x00FF_FFFF;
const PERIOD: u64 = RELOAD as u64 + 1;

static WRAPS: AtomicU32 = AtomicU32::new(0);

/// Owns SysTick and reads the running count.
pub struct InstructionCounter {
    _syst: SYST,
}

impl InstructionCounter {
    /// Starts SysTick from zero: core clock, full 24-bit period, wrap exception on.
    pub fn start(mut syst: SYST) -> Self {
        syst.disable_counter();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_counter();
        // The counter starts at 0 and reloads on its first tick; start counting after that reload
        // (which QEMU reports as a wrap) so that no spurious wrap is counted.
        while SYST::get_current() == 0 {}
        SCB::clear_pendst();
        WRAPS.store(0, Ordering::SeqCst);
        syst.enable_interrupt();
        Self { _syst: syst }
    }

    /// SysTick ticks since [`InstructionCounter::start`].
    pub fn ticks(&self) -> u64 {
        loop {
            let wraps = WRAPS.load(Ordering::SeqCst);
            let pending_before = SCB::is_pendst_pending();
            let current = SYST::get_current();
            let pending_after = SCB::is_pendst_pending();
            if WRAPS.load(Ordering::SeqCst) != wraps || pending_before != pending_after {
                continue; // a wrap happened during the read
            }
            // A pending (not yet counted) wrap happened before `current` was read.
            let wraps = u64::from(wraps) + u64::from(pending_before);
            return wraps * PERIOD + u64::from(RELOAD - current);
        }
    }

    /// Instructions (QEMU) or cycles (hardware) since [`InstructionCounter::start`].
    pub fn count(&self) -> u64 {
        self.ticks() * COUNT_PER_TICK
    }
}

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::SeqCst);
}
