//! Footprint of a minimal application: the `hello_world` sine model (int8, in flash) run by the
//! core in a loop, one input read from and one output written to a volatile static — no logging,
//! no semihosting, no file I/O. `llvm-size` of this binary is what an application pays for the
//! core plus this model (docs/benchmarks.md, "How this compares"). `footprint-sine-report` runs
//! the same code in QEMU and reports its stack use and output.
#![no_std]
#![no_main]

#[path = "sine/app.rs"]
mod app;
#[path = "../interrupts.rs"]
mod interrupts;

use core::panic::PanicInfo;
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};
use cortex_m_rt::entry;

/// Input written by the application (here: nobody; volatile so the work is not optimized away).
static mut INPUT: f32 = 1.0;
/// Output read by the application.
static mut OUTPUT: i8 = 0;

#[entry]
fn main() -> ! {
    let Some(arena) = cortex_m::singleton!(: app::Arena = app::Arena([0; app::ARENA_BYTES])) else {
        cortex_m::asm::udf()
    };
    let Ok(model) = app::load() else {
        cortex_m::asm::udf()
    };
    loop {
        // SAFETY: single-threaded; no interrupt handler touches these statics.
        let x = unsafe { read_volatile(addr_of!(INPUT)) };
        match app::infer(&model, x, arena) {
            Ok(y) => unsafe { write_volatile(addr_of_mut!(OUTPUT), y) },
            Err(_) => cortex_m::asm::udf(),
        }
    }
}

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    cortex_m::asm::udf()
}
