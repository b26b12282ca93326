//! The device-interrupt part of the vector table, sized to the board instead of cortex-m-rt's
//! generic 240 entries (960 bytes of flash): cortex-m-rt's `device` feature leaves the table to
//! the application, as a PAC would. The firmware enables no interrupt, so every line points at
//! cortex-m-rt's `DefaultHandler`; the table still covers every line the board has, so a stray
//! interrupt lands in `DefaultHandler` rather than in code.

/// Interrupt lines of the board: the nRF52840 has 48 (IRQ 0 to 47, nRF52840 product
/// specification, "Instantiation"), QEMU's mps2-an386 has 32 (its `num-irq`).
#[cfg(feature = "board-nrf52840")]
const LINES: usize = 48;
#[cfg(not(feature = "board-nrf52840"))]
const LINES: usize = 32;

extern "C" {
    /// cortex-m-rt's default handler (an infinite loop unless the application overrides it).
    fn DefaultHandler();
}

/// The device vectors, placed right after the 16 exception vectors by cortex-m-rt's `link.x`.
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
#[used]
static __INTERRUPTS: [unsafe extern "C" fn(); LINES] = [DefaultHandler; LINES];
