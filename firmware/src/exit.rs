//! How a run ends: a semihosting exit with the [`ExitCode`] of its class (table in
//! [`crate::failure`]), and the panic / HardFault handlers, which log and exit too so that a fault
//! never hangs QEMU.

use core::panic::PanicInfo;

use crate::failure::ExitCode;
use cortex_m_rt::{exception, ExceptionFrame};

/// Ends the run: QEMU (or a debugger with semihosting) exits with `code`.
pub fn exit(code: ExitCode) -> ! {
    semihosting::process::exit(code as i32)
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    match info.location() {
        Some(at) => defmt::error!(
            "panic at {=str}:{=u32} (exit {=u8})",
            at.file(),
            at.line(),
            ExitCode::Panic as u8
        ),
        None => defmt::error!("panic (exit {=u8})", ExitCode::Panic as u8),
    }
    exit(ExitCode::Panic)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    defmt::error!(
        "HardFault at pc={=u32:#010x} (exit {=u8})",
        frame.pc(),
        ExitCode::HardFault as u8
    );
    exit(ExitCode::HardFault)
}
