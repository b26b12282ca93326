//! The trainer's graph architectures end to end, host == device: a small instance of each
//! (`resnet8`, `ds-cnn`, `mobilenet-v1:0.25`, `autoencoder`, a `cnn`, an `mlp` and two `vit`s)
//! built from the trainer's own
//! `Arch` with random, seeded weights, BatchNorm statistics and denoisers
//! ([`random_arch_model`]), exported through the real exporter (fused: denoisers, then
//! BatchNorm folded; f32 with `to_f32`, int8 with `export::quantize` calibrated on seeded random
//! inputs). For each:
//!
//! * on the host, the core's f32 outputs (logits and embedding) equal the trainer's fused tch
//!   forward on the normalized inputs within 1e-4 relative (max |difference| / max |tch| per
//!   sample and tensor), and the denoisers changed the function (the backbone alone differs);
//! * the exported model reports +0 parameters, MACs, file bytes and arena bytes against its
//!   baseline (`Model::plain()`, exported the same way), f32 and int8;
//! * in QEMU (mps2-an386), f32 and int8, the firmware's dump is byte-identical to the host
//!   core's, its per-op log is consistent (`device::check_log`) and its peak stack while loading
//!   and running is within `device::STACK_LIMIT` (`device::check_stack`); the instruction counts
//!   per inference and per MAC are printed.
//!
//! The device part skips (loudly) only when qemu-system-arm is missing. Every model here fits the
//! firmware's tensor capacity (`device::TENSOR_CAPACITY`, 160; the ViTs have 65 tensors in f32
//! and 77 in int8), which the test asserts, so the ViTs too run host == device within the stack
//! bound (8 B tensor slots, loading scratch in the arena: `docs/firmware.md`, "RAM").

use denoiserep_core::{Model, TensorData};
use denoiserep_tests::device::{host_equals_device, report, DeviceRun, TENSOR_CAPACITY};
use denoiserep_tests::{random_arch_model, random_samples};
use denoiserep_trainer::evaluate::to_tensor;
use denoiserep_trainer::export::{footprint, quantize, to_f32, Footprint, RangeMethod};
use denoiserep_trainer::model::{Grads, Mode};
use denoiserep_trainer::rng::Rng;
use tch::Device;

/// Inputs run on both sides per model.
const SAMPLES: usize = 4;
/// Calibration inputs of the int8 export.
const CALIB: usize = 32;

fn f32s(data: TensorData<'_>) -> Vec<f32> {
    match data {
        TensorData::F32(v) => v.to_vec(),
        TensorData::I8 { .. } => panic!("an f32 model returned int8"),
    }
}

/// max |a − b| / max |b|.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| f64::from(y.abs())).fold(0.0, f64::max);
    diff / scale.max(1e-30)
}

/// Core f32 (logits, embedding) of every sample.
fn core_f32(file: &[u8], samples: &[Vec<f32>]) -> Vec<(Vec<f32>, Vec<f32>)> {
    let model = Model::from_bytes(file).expect("the model loads");
    let mut arena = vec![0u8; model.arena_size()];
    samples
        .iter()
        .map(|s| {
            let out = model.run(s, &mut arena).expect("the core runs");
            (f32s(out.logits.data), f32s(out.embedding.data))
        })
        .collect()
}

fn assert_no_overhead(what: &str, model: &[u8], baseline: &[u8]) -> Footprint {
    let (m, b) = (footprint(model).unwrap(), footprint(baseline).unwrap());
    assert_eq!(
        m, b,
        "{what}: the fused model must cost exactly what its baseline costs"
    );
    assert!(m.parameters > 0 && m.macs > 0, "{what}: {m:?}");
    m
}

/// Instructions per inference and per MAC of a successful run.
fn counts(run: &DeviceRun) -> (u64, f64) {
    use denoiserep_tests::device::field_u64;
    let done = run.lines_with("done samples=").next().expect("done line");
    let n = field_u64(done, "samples").unwrap();
    let total = field_u64(done, "instructions").unwrap();
    let macs = field_u64(done, "macs").unwrap();
    (total / n, total as f64 / macs as f64)
}

fn check(spec: &str, input_shape: [usize; 3], classes: usize, seed: u64) {
    let model = random_arch_model(spec, input_shape, classes, seed);
    let fused = model.fused().expect("fuses");
    let plain = model.plain().expect("plain");
    let len: usize = input_shape.iter().product();
    let mut rng = Rng::new(seed);
    let samples: Vec<Vec<f32>> = random_samples(&mut rng, SAMPLES, len, 0.0, 1.0)
        .chunks(len)
        .map(<[f32]>::to_vec)
        .collect();
    let calib = random_samples(&mut rng, CALIB, len, 0.0, 1.0);

    // f32: the core equals the trainer's fused forward; the denoisers matter.
    let f32_file = to_f32(&fused).unwrap().encode().unwrap();
    let f32_base = to_f32(&plain).unwrap().encode().unwrap();
    let fp = assert_no_overhead(&format!("{spec} f32"), &f32_file, &f32_base);
    let core = core_f32(&f32_file, &samples);
    let x = to_tensor(
        &samples.concat(),
        input_shape,
        &model.normalization,
        Device::Cpu,
    );
    let out = tch::no_grad(|| model.forward(&x, Mode::Fused, Grads::NONE, false));
    let mut worst = 0f64;
    for (i, (logits, emb)) in core.iter().enumerate() {
        let tl = Vec::<f32>::try_from(&out.logits.get(i as i64).flatten(0, -1)).unwrap();
        let te = Vec::<f32>::try_from(&out.embedding.get(i as i64).flatten(0, -1)).unwrap();
        for (what, a, b) in [("logits", logits, &tl), ("embedding", emb, &te)] {
            let e = rel_err(a, b);
            assert!(
                e <= 1e-4,
                "{spec}: core f32 vs tch fused {what} of sample {i}: {e:e} relative"
            );
            worst = worst.max(e);
        }
    }
    let base = core_f32(&f32_base, &samples);
    let moved = core
        .iter()
        .zip(&base)
        .map(|((l, _), (b, _))| rel_err(l, b))
        .fold(0.0, f64::max);
    assert!(
        moved > 1e-4,
        "{spec}: the denoisers had no effect ({moved:e})"
    );

    // int8: the same export path as `denoiserep export --precision int8`.
    let int8_file = quantize(&fused, &calib, RangeMethod::MinMax, false)
        .unwrap()
        .encode()
        .unwrap();
    let int8_base = quantize(&plain, &calib, RangeMethod::MinMax, false)
        .unwrap()
        .encode()
        .unwrap();
    let fp8 = assert_no_overhead(&format!("{spec} int8"), &int8_file, &int8_base);
    let ops = Model::from_bytes(&f32_file).unwrap().op_count();
    let tensors = Model::from_bytes(&f32_file).unwrap().tensor_count();
    report(&format!(
        "{spec} {input_shape:?}: {ops} ops, {tensors} tensors, {} params, {} MACs, f32 {} B file \
         / {} B arena, int8 {} B file / {} B arena, +0 vs baseline; core f32 vs tch fused \
         {worst:.1e} relative (denoisers move the logits by {moved:.1e})",
        fp.parameters, fp.macs, fp.file_bytes, fp.arena_bytes, fp8.file_bytes, fp8.arena_bytes
    ));

    // Host == device, f32 and int8.
    for (tag, file) in [("f32", &f32_file), ("int8", &int8_file)] {
        let what = format!("{spec} {tag}");
        let tensors = Model::from_bytes(file).unwrap().tensor_count();
        assert!(
            tensors <= TENSOR_CAPACITY,
            "{what}: {tensors} tensors, more than the firmware holds ({TENSOR_CAPACITY})"
        );
        let Some(run) = host_equals_device(&what, file, &samples) else {
            return;
        };
        let (per_inference, per_mac) = counts(&run);
        report(&format!(
            "{what}: {per_inference} instructions / inference, {per_mac:.2} instructions / MAC"
        ));
    }
}

#[test]
fn resnet8_host_equals_device() {
    check("resnet8", [3, 16, 16], 10, 101);
}

#[test]
fn ds_cnn_host_equals_device() {
    check("ds-cnn", [1, 25, 10], 12, 102);
}

#[test]
fn mobilenet_v1_host_equals_device() {
    check("mobilenet-v1:0.25", [3, 32, 32], 10, 103);
}

#[test]
fn cnn_host_equals_device() {
    check("cnn:4,8/16", [1, 12, 12], 6, 104);
}

#[test]
fn mlp_host_equals_device() {
    check("mlp:32,16", [1, 8, 8], 4, 105);
}

/// The FC autoencoder (its "logits" are the reconstruction of the 64 inputs, its embedding the
/// 8-d bottleneck), BatchNorm after every Linear but the last.
#[test]
fn autoencoder_host_equals_device() {
    check("autoencoder", [1, 8, 8], 2, 106);
}

/// The ViT, class-token pooling (patch 4 on 8×12: 6 patches + the class token, D = 16, 2 heads,
/// 2 blocks), with random LayerNorms, embeddings and peaked attention ([`random_arch_model`]).
#[test]
fn vit_cls_host_equals_device() {
    check("vit:4,16,2,2,2", [1, 8, 12], 5, 107);
}

/// The ViT, mean pooling (no class token), 3 channels, 1 block of 4 heads.
#[test]
fn vit_mean_host_equals_device() {
    check("vit:2,16,4,1,2,mean", [3, 6, 6], 4, 108);
}
