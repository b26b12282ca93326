//! The firmware fails cleanly: a corrupt model (one flipped byte), an empty partition, a model too
//! large for the partition or the arena, and bad input files each end with the documented exit
//! code and a log line naming the problem (the core's error where the core found it), never with
//! a HardFault or a panic. Also checks that SysTick counts 40 instructions per tick under
//! `-icount shift=0` (the basis of every instruction count).
//!
//! Skips (loudly) only when qemu-system-arm is missing; scripts/test.sh installs it.

use denoiserep_core::Activation;
use denoiserep_core::Model;
use denoiserep_tests::device::{
    defmt_print, digit_like_inputs, exit, f32_and_int8, field_u64, firmware_elf,
    host_partition_error, input_file, mnist_cnn, qemu_or_skip, record_comparison, report,
    run_firmware, DeviceRun, ARENA_CAPACITY, INSTRUCTIONS_PER_TICK, TENSOR_CAPACITY,
};
use denoiserep_tests::models::{square, OwnedModel};

fn assert_clean_failure(run: &DeviceRun, code: i32, error: &str) {
    assert_ne!(run.exit_code, exit::HARD_FAULT, "{}", run.explain());
    assert_ne!(run.exit_code, exit::PANIC, "{}", run.explain());
    assert!(!run.log.contains("HardFault"), "{}", run.explain());
    assert_eq!(run.exit_code, code, "{}", run.explain());
    let line = format!("error={error} exit={code}");
    assert!(
        run.log.lines().any(|l| l.ends_with(&line)),
        "expected a log line ending with `{line}`\n{}",
        run.explain()
    );
    assert!(run.dump.is_none(), "no dump may be written on failure");
}

#[test]
fn corrupt_model_one_flipped_byte_reports_the_core_error() {
    let Some(qemu) = qemu_or_skip("corrupt_model_one_flipped_byte_reports_the_core_error") else {
        return;
    };
    let (defmt, elf) = (defmt_print(), firmware_elf("denoiserep-firmware"));
    let samples = digit_like_inputs(2, 5);
    let input = input_file(&samples);
    let mut seen = std::collections::BTreeSet::new();
    let mut checked = 0;
    for desc in f32_and_int8(mnist_cnn(3), 4) {
        let good = desc.encode().unwrap();
        // Header fields (magic, version, reserved, length, CRC), the first body byte (name
        // length), the middle of the weights and the last byte.
        let positions = [0, 4, 6, 9, 12, 16, good.len() / 2, good.len() - 1];
        for at in positions {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            let expected = host_partition_error(&bad)
                .unwrap_or_else(|| panic!("flipping byte {at} must be rejected by the core"));
            let run = run_firmware(&qemu, &defmt, &elf, Some(&bad), Some(&input));
            assert_clean_failure(
                &run,
                exit::MODEL_REJECTED,
                &format!("ModelRejected({expected:?})"),
            );
            seen.insert(format!("{expected:?}"));
            checked += 1;
            record_comparison(&format!("corrupt {} byte {at}: core error", desc.name), 0);
        }
    }
    report(&format!(
        "{checked} corrupt models (one flipped byte each) rejected with the core's error: {seen:?}"
    ));
    assert!(
        seen.len() >= 4,
        "header and body flips must hit different checks: {seen:?}"
    );
}

#[test]
fn empty_partition_is_rejected_not_run() {
    let Some(qemu) = qemu_or_skip("empty_partition_is_rejected_not_run") else {
        return;
    };
    let run = run_firmware(
        &qemu,
        &defmt_print(),
        &firmware_elf("denoiserep-firmware"),
        None,
        None,
    );
    assert_clean_failure(&run, exit::MODEL_REJECTED, "ModelRejected(DecodeBadMagic)");
}

#[test]
fn model_longer_than_its_partition_is_rejected() {
    let Some(qemu) = qemu_or_skip("model_longer_than_its_partition_is_rejected") else {
        return;
    };
    // A valid header announcing a 4 MiB body (the partition holds 3 MiB).
    let mut header = b"DNRP".to_vec();
    header.extend_from_slice(&denoiserep_core::FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&0u16.to_le_bytes());
    header.extend_from_slice(&(4u32 << 20).to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    let run = run_firmware(
        &qemu,
        &defmt_print(),
        &firmware_elf("denoiserep-firmware"),
        Some(&header),
        None,
    );
    assert_clean_failure(
        &run,
        exit::MODEL_TOO_LARGE,
        "ModelTooLarge { file_len: 4194320, partition_len: 3145728 }",
    );
}

#[test]
fn model_with_more_tensors_than_the_capacity_is_rejected_with_a_typed_error() {
    let Some(qemu) =
        qemu_or_skip("model_with_more_tensors_than_the_capacity_is_rejected_with_a_typed_error")
    else {
        return;
    };
    // A chain of ReLUs on 4 values: one tensor per op, TENSOR_CAPACITY + 1 tensors in all (the
    // core's own default capacity holds it, so the host loads it).
    let mut desc = OwnedModel::new("too-many-tensors", &[4], &[0.0], &[1.0]);
    let mut x = 0;
    for _ in 0..TENSOR_CAPACITY {
        x = desc.act(x, Activation::Relu);
    }
    let desc = desc.outputs(x, x);
    let file = desc.encode().unwrap();
    assert_eq!(
        Model::from_bytes(&file).unwrap().tensor_count(),
        TENSOR_CAPACITY + 1
    );
    let run = run_firmware(
        &qemu,
        &defmt_print(),
        &firmware_elf("denoiserep-firmware"),
        Some(&file),
        Some(&input_file(&[vec![0.5; 4]])),
    );
    assert_clean_failure(
        &run,
        exit::MODEL_REJECTED,
        "ModelRejected(DecodeTooManyTensors)",
    );
    record_comparison("too many tensors: typed rejection", 0);
    report(&format!(
        "{} tensors (capacity {TENSOR_CAPACITY}): DecodeTooManyTensors, exit 1",
        TENSOR_CAPACITY + 1
    ));
}

#[test]
fn model_whose_arena_does_not_fit_gets_an_error_code() {
    let Some(qemu) = qemu_or_skip("model_whose_arena_does_not_fit_gets_an_error_code") else {
        return;
    };
    // Tiny weights, huge activations: a 1×1 conv 1→20 channels on 128×128 (f32) needs
    // 20·128·128·4 B = 1.25 MiB of arena for its output alone.
    let mut desc = OwnedModel::new("too-big-arena", &[1, 128, 128], &[0.0], &[1.0]);
    let wide = desc.conv2d(0, square(1, 1, 0), Activation::None, &[0.5; 20], &[0.0; 20]);
    let pooled = desc.mean(wide);
    let desc = desc.outputs(pooled, pooled);
    let file = desc.encode().unwrap();
    // The firmware's arena also holds the per-op counts (8 B per op, at its end).
    let model = Model::from_bytes(&file).unwrap();
    let need = model.arena_size() + 8 * model.op_count();
    assert!(need > ARENA_CAPACITY);
    let run = run_firmware(
        &qemu,
        &defmt_print(),
        &firmware_elf("denoiserep-firmware"),
        Some(&file),
        None,
    );
    assert_clean_failure(
        &run,
        exit::MODEL_DOES_NOT_FIT,
        &format!("ModelDoesNotFit {{ buffer: Arena, need: {need}, have: {ARENA_CAPACITY} }}"),
    );
}

#[test]
fn bad_input_files_are_reported() {
    let Some(qemu) = qemu_or_skip("bad_input_files_are_reported") else {
        return;
    };
    let (defmt, elf) = (defmt_print(), firmware_elf("denoiserep-firmware"));
    let [model, _] = f32_and_int8(mnist_cnn(8), 9);
    let file = model.encode().unwrap();
    let good = input_file(&digit_like_inputs(2, 10));

    // No input file at all.
    let run = run_firmware(&qemu, &defmt, &elf, Some(&file), None);
    assert_eq!(run.exit_code, exit::INPUT_IO, "{}", run.explain());
    assert!(run.log.contains("error=InputIo"), "{}", run.explain());

    // Samples of the wrong length (27×28 instead of 28×28).
    let short: Vec<Vec<f32>> = vec![vec![0.5; 756]; 2];
    let run = run_firmware(&qemu, &defmt, &elf, Some(&file), Some(&input_file(&short)));
    assert_clean_failure(
        &run,
        exit::INPUT_INVALID,
        "InputSampleLength { file: 756, model: 784 }",
    );

    // A truncated file (the last sample misses a byte).
    let run = run_firmware(
        &qemu,
        &defmt,
        &elf,
        Some(&file),
        Some(&good[..good.len() - 1]),
    );
    assert_clean_failure(
        &run,
        exit::INPUT_INVALID,
        &format!(
            "InputFileLength {{ expected: {}, actual: {} }}",
            good.len(),
            good.len() - 1
        ),
    );

    // A bad magic.
    let mut bad = good.clone();
    bad[0] = b'X';
    let run = run_firmware(&qemu, &defmt, &elf, Some(&file), Some(&bad));
    assert_clean_failure(&run, exit::INPUT_INVALID, "InputBadHeader(SamplesBadMagic)");
}

#[test]
fn systick_counts_40_instructions_per_tick_under_icount() {
    let Some(qemu) = qemu_or_skip("systick_counts_40_instructions_per_tick_under_icount") else {
        return;
    };
    let run = run_firmware(
        &qemu,
        &defmt_print(),
        &firmware_elf("icount-calibrate"),
        None,
        None,
    );
    assert_eq!(run.exit_code, exit::OK, "{}", run.explain());
    let line = run
        .lines_with("calibration")
        .next()
        .expect("calibration line");
    let (instructions, ticks) = (
        field_u64(line, "instructions").unwrap(),
        field_u64(line, "ticks").unwrap(),
    );
    // The measured loop spans more than one 2^24-tick SysTick period, so wraps are counted too.
    assert!(ticks > 1 << 24, "{line}");
    assert_eq!(instructions, ticks * INSTRUCTIONS_PER_TICK, "{line}");
    report(&format!(
        "SysTick: {instructions} instructions in {ticks} ticks = {INSTRUCTIONS_PER_TICK}/tick"
    ));
}
