//! Stack high-water mark by painting: fill the free RAM between the end of the static data
//! (`__sheap`) and the current stack pointer with a pattern, run, then find the lowest word that
//! no longer holds it. The peak stack use is the distance from the stack's top (`_stack_start`) to
//! that word — the RAM the firmware needs beyond `.data` + `.bss`.
//!
//! [`paint`] may be called again to measure a later phase alone ([`peak_since_paint`]); the
//! peak measured before the repaint is kept, so [`peak`] stays the peak of the whole run.

use core::ptr::{addr_of, read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const PAINT: u32 = 0xDEAD_C0DE;
/// Bytes left unpainted just below the stack pointer (the painting function's own frame).
const MARGIN: usize = 256;

/// Whether [`paint`] has run (before that, the RAM holds no pattern to measure).
static PAINTED: AtomicBool = AtomicBool::new(false);
/// The largest peak measured before the last repaint.
static EARLIER_PEAK: AtomicUsize = AtomicUsize::new(0);

extern "C" {
    static __sheap: u32;
    static _stack_start: u32;
}

fn bounds() -> (usize, usize) {
    // Linker symbols from cortex-m-rt's link.x; only their addresses are used.
    (addr_of!(__sheap) as usize, addr_of!(_stack_start) as usize)
}

/// Paints the unused stack (from the end of `.bss` to just below the stack pointer). A repaint
/// first records the peak so far, which [`peak`] keeps reporting.
#[inline(never)]
pub fn paint() {
    if PAINTED.swap(true, Ordering::SeqCst) {
        let earlier = EARLIER_PEAK.load(Ordering::SeqCst).max(peak_since_paint());
        EARLIER_PEAK.store(earlier, Ordering::SeqCst);
    }
    let (bottom, _) = bounds();
    let sp = cortex_m::register::msp::read() as usize;
    let mut at = bottom;
    while at + 4 <= sp.saturating_sub(MARGIN) {
        // SAFETY: word-aligned RAM between the static data and the live stack, used by nothing.
        unsafe { write_volatile(at as *mut u32, PAINT) };
        at += 4;
    }
}

/// Peak stack use in bytes since the last [`paint`] (measured from the stack's top, so it
/// includes the frames that were live when painting).
pub fn peak_since_paint() -> usize {
    let (bottom, top) = bounds();
    let mut at = bottom;
    // SAFETY: reads of word-aligned RAM below the stack top.
    while at < top && unsafe { read_volatile(at as *const u32) } == PAINT {
        at += 4;
    }
    top - at
}

/// Peak stack use in bytes since the first [`paint`].
pub fn peak() -> usize {
    peak_since_paint().max(EARLIER_PEAK.load(Ordering::SeqCst))
}

/// Bytes of static RAM (`.data` + `.bss`, including the arena and the I/O buffers).
pub fn static_ram() -> usize {
    extern "C" {
        static __sdata: u32;
    }
    // A linker symbol; only its address is used.
    bounds().0 - addr_of!(__sdata) as usize
}
