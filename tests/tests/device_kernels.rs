//! The Cortex-M4 DSP int8 Linear kernel (`core/src/kernels/linear_s8_dsp.rs`, issue 14) equals
//! the reference loop bit for bit on the device: the firmware's `kernel-check` binary runs both
//! (and the engine's dispatch) in QEMU on 4 000 random layers — 1–70 inputs (every 1–3 column
//! tail), 0–9 channels (counts that are not a multiple of 4 or 2), 1–3 rows, misaligned weights
//! and inputs, extreme zero points, multipliers and shifts, wrapping accumulators, ReLU / ReLU6
//! clamps, some layers up to 800 inputs — and on the CMSIS-NN anchor FC shapes, which it also
//! times (`docs/benchmarks.md`, "DSP kernels (issue 14)").
//!
//! Skips (loudly) only when qemu-system-arm is missing, and fails then under CI or
//! `DENOISEREP_REQUIRE_DEVICE=1` (`device::qemu_or_skip`); scripts/test.sh installs it.

use denoiserep_tests::device::{
    defmt_print, field, field_u64, firmware_elf, qemu_or_skip, record_comparison, report,
    run_firmware,
};

/// The anchor FC shapes the binary times, `(in, out)`.
const SHAPES: [(u64, u64); 5] = [(784, 256), (256, 128), (128, 10), (640, 128), (128, 128)];

#[test]
fn dsp_linear_s8_equals_reference_on_the_device() {
    let what = "dsp_linear_s8_equals_reference_on_the_device";
    let Some(qemu) = qemu_or_skip(what) else {
        return;
    };
    let elf = firmware_elf("kernel-check");
    let run = run_firmware(&qemu, &defmt_print(), &elf, None, None);
    assert_eq!(run.exit_code, 0, "{what}: {}", run.explain());
    let line = run
        .lines_with("kernel_check cases=")
        .next()
        .unwrap_or_else(|| panic!("{what}: no summary line\n{}", run.explain()));
    let cases = field_u64(line, "cases").expect("cases=");
    assert_eq!(cases, 4000, "{what}: {line}");
    assert_eq!(field_u64(line, "mismatches"), Some(0), "{what}: {line}");
    let fc: Vec<&str> = run.lines_with("fc in=").collect();
    assert_eq!(fc.len(), SHAPES.len(), "{what}\n{}", run.explain());
    for (line, (n_in, n_out)) in fc.iter().zip(SHAPES) {
        assert_eq!(field_u64(line, "in"), Some(n_in), "{what}: {line}");
        assert_eq!(field_u64(line, "out"), Some(n_out), "{what}: {line}");
        let reference = field_u64(line, "reference_instructions").expect("reference");
        let dsp = field_u64(line, "dsp_instructions").expect("dsp");
        // The DSP kernel must stay well ahead of the reference loop (measured ≈ 2.3–3.3×).
        assert!(
            dsp > 0 && dsp * 2 < reference,
            "{what}: the DSP kernel is not faster: {line}"
        );
        report(&format!(
            "fc {n_in}->{n_out}: reference {:.2} instructions/MAC, DSP {:.2}",
            reference as f64 / (n_in * n_out) as f64,
            dsp as f64 / (n_in * n_out) as f64
        ));
    }
    assert!(
        run.log.lines().any(|l| l.ends_with("kernel_check ok")),
        "{what}\n{}",
        run.explain()
    );
    record_comparison("linear_s8 DSP == reference (kernel-check)", cases as usize);
    report(&format!(
        "{what}: {cases} random layers + {} anchor shapes bit-identical DSP == reference",
        SHAPES.len()
    ));
}

/// The f32 shapes `kernel-check` times (`firmware/src/bin/kernel_check/f32.rs`), each with its
/// weights 4-aligned (`skew=0`) and misaligned by one byte (`skew=1`).
const F32_SHAPES: [&str; 11] = [
    "linear_784x64",
    "linear_64x10",
    "linear_784x256",
    "linear_256x128",
    "linear_128x10",
    "conv3x3_1to8_28",
    "conv3x3_8to16_14",
    "conv3x3s2_8to16_28",
    "conv1x1_64to64_8",
    "dw3x3_32_24",
    "dw3x3s2_32_24",
];

/// The Cortex-M4F f32 fast paths (`core/src/kernels/f32_m4.rs`: Linear, Conv2d, DepthwiseConv2d)
/// equal the reference loops bit for bit on the device (a NaN only has to match a NaN): the
/// firmware's `kernel-check` runs 4 500 random layers through the fast path, the reference loop
/// and the engine's dispatch — every 1–7 tail, odd channel counts, 1–3 rows, kernels 1–4 per
/// side (non-square), strides 1–3, asymmetric paddings, weights at every byte offset, inputs
/// with ±0.0, subnormals, ±∞, NaN, all-zero inputs with ±0.0 biases, some non-finite weights
/// (the conv fallback), filters longer than the on-stack patch — and times 11 shapes.
#[test]
fn f32_fast_paths_equal_reference_on_the_device() {
    let what = "f32_fast_paths_equal_reference_on_the_device";
    let Some(qemu) = qemu_or_skip(what) else {
        return;
    };
    let elf = firmware_elf("kernel-check");
    let run = run_firmware(&qemu, &defmt_print(), &elf, None, None);
    assert_eq!(run.exit_code, 0, "{what}: {}", run.explain());
    let line = run
        .lines_with("f32_check cases=")
        .next()
        .unwrap_or_else(|| panic!("{what}: no summary line\n{}", run.explain()));
    let cases = field_u64(line, "cases").expect("cases=");
    assert_eq!(cases, 4500, "{what}: {line}");
    assert_eq!(field_u64(line, "mismatches"), Some(0), "{what}: {line}");
    let timed: Vec<&str> = run.lines_with("f32 name=").collect();
    assert_eq!(
        timed.len(),
        2 * F32_SHAPES.len(),
        "{what}\n{}",
        run.explain()
    );
    for (i, line) in timed.iter().enumerate() {
        let name = F32_SHAPES[i / 2];
        assert_eq!(field(line, "name"), Some(name), "{what}: {line}");
        assert_eq!(
            field_u64(line, "skew"),
            Some((i % 2) as u64),
            "{what}: {line}"
        );
        let macs = field_u64(line, "macs").expect("macs");
        let reference = field_u64(line, "reference_instructions").expect("reference");
        let fast = field_u64(line, "fast_instructions").expect("fast");
        // The fast path must stay well ahead of the reference loop (measured 2.6–28×).
        assert!(
            fast > 0 && fast * 2 < reference,
            "{what}: the fast path is not faster: {line}"
        );
        report(&format!(
            "f32 {name} skew={}: reference {:.2} instructions/MAC, fast {:.2}",
            i % 2,
            reference as f64 / macs as f64,
            fast as f64 / macs as f64
        ));
    }
    assert!(
        run.log.lines().any(|l| l.ends_with("kernel_check ok")),
        "{what}\n{}",
        run.explain()
    );
    record_comparison(
        "f32 M4F fast paths == reference (kernel-check)",
        cases as usize,
    );
    report(&format!(
        "{what}: {cases} random layers + {} timed shapes bit-identical fast == reference",
        F32_SHAPES.len()
    ));
}
