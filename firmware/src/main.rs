//! The firmware: runs the model in the flash partition on `input.dnri` and writes `output.dnrd`
//! (semihosting), logging through defmt; exit codes in [`denoiserep_firmware::ExitCode`].
//! See docs/firmware.md.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use defmt_semihosting as _;
use denoiserep_firmware::{exit, run, stack, static_ram, Buffers, ExitCode, InstructionCounter};

#[entry]
fn main() -> ! {
    let peripherals = cortex_m::Peripherals::take().expect("first and only take");
    let counter = InstructionCounter::start(peripherals.SYST);
    let buffers = Buffers::take().expect("first and only take");
    // The f32 Softmax / GELU / LayerNorm math compiled in (`libm`, or `fast` with the `fast-math`
    // feature): a host must use the same to reproduce the outputs (tests/device.rs checks it).
    // Logged before the stack is painted, so that the load's peak stays the load's.
    defmt::info!("math={=str}", denoiserep_core::MATH);
    stack::paint();
    let result = run(&counter, buffers);
    defmt::info!(
        "ram static_bytes={=usize} stack_peak_bytes={=usize}",
        static_ram(),
        stack::peak()
    );
    match result {
        Ok(summary) => {
            defmt::info!("ok {}", summary);
            exit(ExitCode::Ok)
        }
        Err(failure) => {
            let code = failure.exit_code();
            defmt::error!("error={} exit={=u8}", failure, code as u8);
            exit(code)
        }
    }
}
