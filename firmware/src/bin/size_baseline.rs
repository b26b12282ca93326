//! Size baseline: the same runtime as the firmware (cortex-m-rt, defmt over semihosting, the
//! panic/HardFault handlers, semihosting exit) without the model, the core or the file I/O.
//! `llvm-size` of the firmware minus this binary is the flash cost of the core and the session
//! logic; see docs/benchmarks.md ("Device").
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use defmt_semihosting as _;
use denoiserep_firmware::{exit, ExitCode};

#[entry]
fn main() -> ! {
    let x = core::hint::black_box(7u32);
    defmt::info!("baseline: {=u32}", x);
    exit(ExitCode::Ok)
}
