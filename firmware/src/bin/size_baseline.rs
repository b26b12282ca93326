//! Size baseline: the same runtime (cortex-m-rt, semihosting print and exit) without
//! denoiserep-core. `llvm-size` of the main firmware minus this binary is the flash cost of the
//! core (decoder, CRC, planner, all kernels); see docs/model-format.md ("Code size").
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use semihosting::{println, process};

#[entry]
fn main() -> ! {
    let x = core::hint::black_box(7u32);
    println!("baseline: {x}");
    process::exit(0)
}
