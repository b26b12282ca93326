//! Issue 5 end to end, host == device on trained models: `denoiserep train` (label-guided, so the
//! denoising layers are trained and fused) an MLP and a CNN on the seeded `synthetic` data set,
//! `denoiserep export` each to f32 and int8, `denoiserep infer --dump --write-inputs` the test
//! split through the core on the host, then run the very same input file through the firmware in
//! QEMU (mps2-an386): the two dump files must be byte-identical (f32 bit patterns, int8 values),
//! and the firmware's peak stack while loading and running stays within `device::STACK_LIMIT`.
//!
//! Skips (loudly) only when qemu-system-arm is missing; scripts/test.sh installs it.

use std::path::Path;

use clap::Parser;
use denoiserep_core::Model;
use denoiserep_tests::device::{
    assert_dumps_equal, check_stack, defmt_print, firmware_elf, qemu_or_skip, report, run_firmware,
};
use denoiserep_tests::{export, train, TempDir};
use denoiserep_trainer::cli::{Cli, Command};
use denoiserep_trainer::export::ExportPrecision;

/// 1×8×8 images, 4 classes, 512 train / 64 test samples (`docs/data.md`).
const DATA: &str = "synthetic:1,8,8,4,512,64";
/// Test samples run on both sides.
const SAMPLES: usize = 48;

/// `denoiserep infer --dump --write-inputs` through the binary's own argument parsing.
fn infer_dump(model: &Path, dump: &Path, inputs: &Path) {
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let limit = SAMPLES.to_string();
    let argv = [
        "denoiserep",
        "infer",
        "--model",
        &s(model),
        "--data",
        DATA,
        "--data-seed",
        "0",
        "--limit",
        &limit,
        "--no-retrieval",
        "--dump",
        &s(dump),
        "--write-inputs",
        &s(inputs),
        "--threads",
        "2",
    ];
    let Command::Infer(args) = Cli::try_parse_from(argv).expect("infer arguments").command else {
        unreachable!("parsed an infer command");
    };
    let request = args.request(false).expect("infer request");
    denoiserep_trainer::infer::infer(&request).expect("denoiserep infer");
}

fn trained_host_equals_device(arch: &str, tag: &str) {
    let Some(qemu) = qemu_or_skip(&format!("device_trained ({arch})")) else {
        return;
    };
    let dir = TempDir::new(&format!("device-trained-{tag}"));
    let run = dir.path("run");
    train(
        &run,
        &[
            "--data",
            DATA,
            "--arch",
            arch,
            "--regime",
            "label-guided",
            "--phase-epochs",
            "1",
            "--seed",
            "0",
        ],
    );
    let (defmt, elf) = (defmt_print(), firmware_elf("denoiserep-firmware"));
    for (precision, name) in [
        (ExportPrecision::F32, "f32"),
        (ExportPrecision::Int8, "int8"),
    ] {
        let model_path = dir.path(&format!("{name}.dnrp"));
        export(&run, precision, &model_path);
        let (host_dump, inputs) = (dir.path(&format!("{name}.dnrd")), dir.path("inputs.dnri"));
        infer_dump(&model_path, &host_dump, &inputs);

        let file = std::fs::read(&model_path).unwrap();
        let host = std::fs::read(&host_dump).unwrap();
        let input = std::fs::read(&inputs).unwrap();
        let device = run_firmware(&qemu, &defmt, &elf, Some(&file), Some(&input));
        let header = assert_dumps_equal(&format!("trained {arch} {name}"), &host, &device);
        assert_eq!(header.n_samples as usize, SAMPLES);
        check_stack(&format!("trained {arch} {name}"), &device);
        let model = Model::from_bytes(&file).unwrap();
        report(&format!(
            "trained {arch} {name} ({}): {} samples x ({} logits + {} embedding values) \
             bit-identical, `denoiserep infer --dump` == firmware; {} ops",
            model.info().name,
            header.n_samples,
            header.logits_len,
            header.embedding_len,
            model.op_count()
        ));
    }
}

#[test]
fn trained_mlp_exported_f32_and_int8_host_equals_device() {
    trained_host_equals_device("mlp:32,16", "mlp");
}

#[test]
fn trained_cnn_exported_f32_and_int8_host_equals_device() {
    trained_host_equals_device("cnn:4,8/16", "cnn");
}
