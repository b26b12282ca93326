//! Copies the selected board's memory map to `OUT_DIR/memory.x` and puts it on the linker's
//! search path, where cortex-m-rt's `link.x` includes it, next to an empty `device.x`.

use std::{env, fs, path::PathBuf};

fn main() {
    let board = if env::var_os("CARGO_FEATURE_BOARD_NRF52840").is_some() {
        "nrf52840"
    } else {
        "mps2-an386"
    };
    let src = format!("memory/{board}.x");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy(&src, out.join("memory.x")).unwrap_or_else(|e| panic!("copying {src}: {e}"));
    // cortex-m-rt's `device` feature includes `device.x` (a PAC's weak interrupt handler names);
    // the firmware's own table (src/interrupts.rs) names only `DefaultHandler`, so it is empty.
    fs::write(
        out.join("device.x"),
        "/* no device interrupt handlers: src/interrupts.rs */\n",
    )
    .unwrap_or_else(|e| panic!("writing device.x: {e}"));
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed=build.rs");
}
