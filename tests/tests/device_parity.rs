//! Host == device: the same model file and the same inputs through the core on the host and
//! through the firmware in QEMU (mps2-an386, Cortex-M4F) give byte-identical dump files (f32 bit
//! patterns, int8 values), for an MLP and a CNN, f32 and int8. Also checks the firmware's log:
//! model, per-layer MAC counts and one instruction count per sample and per layer.
//!
//! Skips (loudly) only when qemu-system-arm is missing; scripts/test.sh installs it.

use denoiserep_core::Model;
use denoiserep_tests::device::{
    assert_dumps_equal, defmt_print, digit_like_inputs, f32_and_int8, field, field_u64,
    firmware_elf, host_dump, input_file, mnist_cnn, mnist_mlp, qemu_or_skip, report, run_firmware,
    DeviceRun,
};
use denoiserep_tests::models::OwnedModel;

/// Inputs per model.
const SAMPLES: usize = 12;

/// Runs `desc` on host and device and asserts identical dumps and a consistent log.
fn assert_parity(desc: &OwnedModel, seed: u64) -> Option<DeviceRun> {
    let qemu = qemu_or_skip("device_parity")?;
    let file = desc.encode().expect("model encodes");
    let samples = digit_like_inputs(SAMPLES, seed);
    let host = host_dump(&file, &samples).expect("host core runs the model");

    let elf = firmware_elf("denoiserep-firmware");
    let run = run_firmware(
        &qemu,
        &defmt_print(),
        &elf,
        Some(&file),
        Some(&input_file(&samples)),
    );
    let header = assert_dumps_equal(&desc.name, &host, &run);

    let model = Model::from_bytes(&file).unwrap();
    check_log(&run, &model, desc);
    report(&format!(
        "{}: {} samples x ({} logits + {} embedding values, {} B/value) bit-identical host == \
         device; model with {} layers ({} per-layer instruction counts logged)",
        desc.name,
        header.n_samples,
        header.logits_len,
        header.embedding_len,
        header.value_size(),
        model.layers().len(),
        model.layers().len(),
    ));
    Some(run)
}

/// The log names the model, lists every layer with the MACs the host computes, and has one
/// instruction count per sample and per layer, adding up to the total.
fn check_log(run: &DeviceRun, model: &Model<'_>, desc: &OwnedModel) {
    let head = run.lines_with("model name=").next().expect("model line");
    assert_eq!(field(head, "name"), Some(desc.name.as_str()), "{head}");
    assert_eq!(field_u64(head, "layers"), Some(model.layers().len() as u64));
    assert_eq!(
        field_u64(head, "arena_bytes"),
        Some(model.arena_size() as u64)
    );

    let layer_lines: Vec<_> = run
        .log
        .lines()
        .filter(|l| field(l, "layer").is_some())
        .collect();
    assert_eq!(layer_lines.len(), model.layers().len(), "{}", run.explain());
    for (i, (line, planned)) in layer_lines.iter().zip(model.layers()).enumerate() {
        assert_eq!(field_u64(line, "layer"), Some(i as u64));
        let out = planned.output.shape.numel().unwrap() as u64;
        let expected = match planned.layer {
            denoiserep_core::Layer::LinearF32(l) => u64::from(l.in_features * l.out_features),
            denoiserep_core::Layer::LinearS8(l) => u64::from(l.in_features * l.out_features),
            denoiserep_core::Layer::Conv2dF32(c) => {
                out * u64::from(c.in_channels) * u64::from(c.kernel * c.kernel)
            }
            denoiserep_core::Layer::Conv2dS8(c) => {
                out * u64::from(c.in_channels) * u64::from(c.kernel * c.kernel)
            }
            _ => 0,
        };
        assert_eq!(field_u64(line, "macs"), Some(expected), "{line}");
    }

    let per_sample: Vec<u64> = run
        .log
        .lines()
        .filter(|l| field(l, "sample").is_some())
        .map(|l| field_u64(l, "instructions").expect("instructions="))
        .collect();
    assert_eq!(per_sample.len(), SAMPLES, "{}", run.explain());
    assert!(per_sample.iter().all(|&n| n > 0), "zero instruction count");
    let per_layer: Vec<u64> = run
        .lines_with("layer_total=")
        .map(|l| field_u64(l, "instructions").expect("instructions="))
        .collect();
    assert_eq!(per_layer.len(), model.layers().len());
    let done = run.lines_with("done samples=").next().expect("done line");
    let total = field_u64(done, "instructions").unwrap();
    assert_eq!(per_sample.iter().sum::<u64>(), total);
    assert_eq!(per_layer.iter().sum::<u64>(), total);
}

#[test]
fn mlp_f32_and_int8_host_equals_device() {
    for desc in f32_and_int8(mnist_mlp(11), 12) {
        assert_parity(&desc, 13);
    }
}

#[test]
fn cnn_f32_and_int8_host_equals_device() {
    for desc in f32_and_int8(mnist_cnn(21), 22) {
        assert_parity(&desc, 23);
    }
}
