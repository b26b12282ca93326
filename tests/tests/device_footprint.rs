//! The `footprint-sine` application (TFLite-Micro's `hello_world` topology in int8, compiled into
//! flash, run by the core with a 72-byte static arena; docs/benchmarks.md "How this compares")
//! really runs on the emulated Cortex-M4F: its QEMU twin `footprint-sine-report` loads the model,
//! runs 64 inferences, and its output for `x = 0` equals the host core's
//! (`core/tests/fixtures/sine_int8.logits`). The log's RAM figures are sane, and its peak stack
//! at most 2.5 KiB.
//!
//! Skips (loudly) only when qemu-system-arm is missing; scripts/test.sh installs it.

use denoiserep_tests::device::{defmt_print, field_u64, firmware_elf, qemu_or_skip, run_firmware};

#[test]
fn footprint_sine_runs_and_matches_the_host() {
    let Some(qemu) = qemu_or_skip("footprint_sine_runs_and_matches_the_host") else {
        return;
    };
    let elf = firmware_elf("footprint-sine-report");
    let run = run_firmware(&qemu, &defmt_print(), &elf, None, None);
    assert_eq!(run.exit_code, 0, "{}", run.explain());
    let line = run
        .lines_with("sine model_bytes=")
        .next()
        .unwrap_or_else(|| panic!("no summary line\n{}", run.explain()));
    let model_bytes =
        std::fs::read(denoiserep_tests::repo_root().join("core/tests/fixtures/sine_int8.dnrp"))
            .expect("reading the sine fixture");
    assert_eq!(
        field_u64(line, "model_bytes"),
        Some(model_bytes.len() as u64)
    );
    // Measured 1 884 B (docs/benchmarks.md, "How this compares"); the bound leaves ≈ 35 %.
    let stack = field_u64(line, "stack_peak_bytes").expect("stack_peak_bytes");
    assert!((1..=2560).contains(&stack), "stack {stack} B: {line}");
    let statics = field_u64(line, "static_ram_bytes").expect("static_ram_bytes");
    assert!(
        (64..1024).contains(&statics),
        "static RAM {statics} B: {line}"
    );
}
