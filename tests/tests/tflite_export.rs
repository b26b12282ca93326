//! `--format tflite` against TFLite-Micro's own interpreter (`tests/tflm.rs`): for a small
//! instance of every architecture TFLite export supports (`mlp`, `cnn`, `resnet8`, `ds-cnn`,
//! `mobilenet-v1:0.25`, `autoencoder`), built with random seeded weights, BatchNorm statistics
//! and denoisers ([`random_arch_model`]) and fused:
//!
//! * **int8**: one calibration (min-max on seeded random inputs), one [`Int8Plan`], written both
//!   as the core's file and as `.tflite`. The same int8 inputs — the quantized normalized
//!   calibration samples and random full-range int8 vectors — go to TFLite-Micro (NHWC) and to
//!   the core's `Model::run_quantized` (CHW). The logits and the embedding must be **equal bit
//!   for bit** for every sample.
//! * **int8, float interface** (`--tflite-io float`): the same plan with QUANTIZE / DEQUANTIZE
//!   at the edges; TFLite-Micro on the normalized float NHWC inputs against the core's `run` on
//!   the raw inputs, outputs dequantized: **equal bit for bit**.
//! * **f32**: the f32 `.tflite` on normalized NHWC inputs against the core's f32 model on the
//!   raw inputs: max |difference| / max |core| ≤ 1e-4 per sample and output (the largest is
//!   printed).
//!
//! And a ViT is refused, naming its first op without a TFLite builtin.
//!
//! Skips (loudly) without `.venv-tflm`, fails under CI without it (`tflm::python_or_skip`).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use denoiserep_core::quant::{dequantize, quantize as quantize_one};
use denoiserep_core::{Model, QuantParams, TensorData};
use denoiserep_tests::{random_arch_model, random_samples, tflm, TempDir};
use denoiserep_trainer::export::tflite::layout::{blocks_chw_to_hwc, hwc_to_chw, Layout};
use denoiserep_trainer::export::tflite::Numbers;
use denoiserep_trainer::export::{
    graph_f32, lower, quantize_plan, to_int8_planned, to_tflite, to_tflite_int8,
    to_tflite_int8_float_io, CoreGraph, RangeMethod,
};
use denoiserep_trainer::interop::import_tflite;
use denoiserep_trainer::rng::Rng;
use npyz::WriterBuilder;

/// Calibration inputs (the first [`REAL`] of them are also run).
const CALIB: usize = 32;
/// Samples compared per model: real (calibration-like) ones, then random int8 ones.
const REAL: usize = 16;
const RANDOM: usize = 16;

fn write_npy<T: npyz::AutoSerialize + npyz::Serialize + Copy>(path: &Path, shape: &[u64], v: &[T]) {
    let f = BufWriter::new(File::create(path).unwrap());
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(f)
        .begin_nd()
        .unwrap();
    w.extend(v.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn read_npy<T: npyz::Deserialize>(path: &Path) -> Vec<T> {
    let f = BufReader::new(File::open(path).unwrap());
    npyz::NpyFile::new(f).unwrap().into_vec().unwrap()
}

/// `(x − mean[c]) / std[c]` of a CHW sample, as the core computes it.
fn normalize(x: &[f32], c: usize, mean: &[f32], std: &[f32]) -> Vec<f32> {
    let plane = x.len() / c;
    x.iter()
        .enumerate()
        .map(|(i, &v)| (v - mean[i / plane]) / std[i / plane])
        .collect()
}

/// The TFLite output order → the core's: NHWC `[H][W][C]` back to `[C][H][W]`, vectors as is.
fn to_core_order<T: Copy>(g: &CoreGraph, t: u16, v: &[T]) -> Vec<T> {
    match Layout::of_core(&g.shapes[usize::from(t)]) {
        Some(Layout::Chw(d)) => v
            .chunks(d.iter().product())
            .flat_map(|s| hwc_to_chw(s, d))
            .collect(),
        _ => v.to_vec(),
    }
}

/// The core tensors the `.tflite` outputs, in order: logits, then the embedding when distinct.
fn outputs(g: &CoreGraph) -> Vec<u16> {
    let mut o = vec![g.logits];
    if g.embedding != g.logits {
        o.push(g.embedding);
    }
    o
}

/// The first `outs` outputs (logits, then the embedding when it is another tensor) of every
/// sample, concatenated per output.
fn per_output<T>(outs: usize, samples: impl Iterator<Item = [Vec<T>; 2]>) -> Vec<Vec<T>> {
    let mut all: Vec<Vec<T>> = (0..outs).map(|_| Vec::new()).collect();
    for sample in samples {
        for (k, values) in sample.into_iter().take(outs).enumerate() {
            all[k].extend(values);
        }
    }
    all
}

/// The values of an int8 output.
fn int8(d: TensorData<'_>, spec: &str) -> Vec<i8> {
    match d {
        TensorData::I8 { values, .. } => values.to_vec(),
        TensorData::F32(_) => panic!("{spec}: an int8 model returned f32"),
    }
}

struct Case {
    spec: &'static str,
    shape: [usize; 3],
    classes: usize,
    seed: u64,
}

fn conformance(case: &Case) {
    let Case {
        spec,
        shape,
        classes,
        seed,
    } = *case;
    let test = format!("tflite_export {spec}");
    let Some(python) = tflm::python_or_skip(&test) else {
        return;
    };
    let dir = TempDir::new(&format!(
        "tflite-{}",
        spec.replace([':', ',', '/', '.'], "_")
    ));
    let model = random_arch_model(spec, shape, classes, seed);
    let fused = model.fused().expect("fuses");
    let len: usize = shape.iter().product();
    let mut rng = Rng::new(seed);
    let calib = random_samples(&mut rng, CALIB, len, 0.0, 1.0);
    let norm = &model.normalization;
    let [c, h, w] = shape;
    let nhwc = [(REAL + RANDOM) as u64, h as u64, w as u64, c as u64];

    // int8: one plan, two files.
    let (g, plan) = quantize_plan(&fused, &calib, RangeMethod::MinMax, false).unwrap();
    let dnrp = to_int8_planned(&g, &plan).unwrap().encode().unwrap();
    let started = std::time::Instant::now();
    let tfl = to_tflite_int8(&g, &plan).unwrap();
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    let q_in: QuantParams = plan.tensors[0].unwrap();
    let mut inputs: Vec<i8> = calib
        .chunks(len)
        .take(REAL)
        .flat_map(|x| normalize(x, c, &norm.mean, &norm.std))
        .map(|v| quantize_one(v, q_in))
        .collect();
    inputs.extend((0..RANDOM * len).map(|_| (rng.uniform() * 256.0 - 128.0).floor() as i8));
    let core = Model::from_bytes(&dnrp).expect("the int8 model loads");
    let mut arena = vec![0u8; core.arena_size()];
    let outs = outputs(&g);
    let want = per_output(
        outs.len(),
        inputs.chunks(len).map(|x| {
            let o = core.run_quantized(x, &mut arena).expect("the core runs");
            [o.logits.data, o.embedding.data].map(|d| int8(d, spec))
        }),
    );
    let (model_path, in_path) = (dir.path("m8.tflite"), dir.path("x8.npy"));
    std::fs::write(&model_path, &tfl).unwrap();
    write_npy(&in_path, &nhwc, &blocks_chw_to_hwc(&inputs, shape));
    let run = tflm::run(&python, &model_path, &in_path, &dir.path("y8"), outs.len());
    let mut values = 0;
    for (k, &t) in outs.iter().enumerate() {
        let got = to_core_order(&g, t, &read_npy::<i8>(&run.outputs[k]));
        assert_eq!(
            got.len(),
            want[k].len(),
            "{spec}: output {k} length ({})",
            run.details
        );
        let per = got.len() / (REAL + RANDOM);
        for (i, (a, b)) in got.chunks(per).zip(want[k].chunks(per)).enumerate() {
            assert_eq!(
                a, b,
                "{spec} int8: output {k} of sample {i} differs, TFLite-Micro (left) vs core"
            );
        }
        values += got.len();
    }
    // Round trip: the exported .tflite imported back (`denoiserep import`) runs on the core, on
    // the .tflite's own NHWC inputs, and gives TFLite-Micro's output 0 (in TFLite's layout).
    let imported = import_tflite(&tfl, spec)
        .and_then(|m| m.encode())
        .unwrap_or_else(|e| panic!("{spec}: importing our own .tflite: {e:#}"));
    let back = Model::from_bytes(&imported).expect("the imported model loads");
    let mut arena = vec![0u8; back.arena_size()];
    let tflm_out0 = read_npy::<i8>(&run.outputs[0]);
    let per = tflm_out0.len() / (REAL + RANDOM);
    for (i, (x, want)) in blocks_chw_to_hwc(&inputs, shape)
        .chunks(len)
        .zip(tflm_out0.chunks(per))
        .enumerate()
    {
        let out = back
            .run_quantized(x, &mut arena)
            .expect("the imported model runs");
        let TensorData::I8 { values: got, .. } = out.logits.data else {
            panic!("{spec}: the imported model returned f32")
        };
        assert_eq!(
            got, want,
            "{spec}: the re-imported .tflite (left) differs from TFLite-Micro on sample {i}"
        );
    }
    println!(
        "{spec} int8: {} samples, {values} output values (logits{}) bit-identical, TFLite-Micro \
         == core (and == our .tflite imported back); {} bytes .tflite (written in \
         {build_ms:.1} ms), {} bytes dnrp",
        REAL + RANDOM,
        if outs.len() > 1 { " + embedding" } else { "" },
        tfl.len(),
        dnrp.len()
    );

    // int8 with a float interface (`--tflite-io float`): TFLite-Micro quantizes the normalized
    // float input and dequantizes the outputs; the core's `run` on the raw input and its
    // dequantized outputs must give the same floats, bit for bit.
    let fio = to_tflite_int8_float_io(&g, &plan).unwrap();
    let raw: Vec<f32> = calib.iter().copied().take(REAL * len).collect();
    let mut arena = vec![0u8; core.arena_size()];
    let want = per_output(
        outs.len(),
        raw.chunks(len).map(|x| {
            let o = core.run(x, &mut arena).expect("the core runs");
            [o.logits.data, o.embedding.data].map(|d| {
                let TensorData::I8 { quant, .. } = d else {
                    panic!("{spec}: an int8 model returned f32")
                };
                int8(d, spec)
                    .into_iter()
                    .map(|q| dequantize(q, quant))
                    .collect()
            })
        }),
    );
    let normalized: Vec<f32> = raw
        .chunks(len)
        .flat_map(|x| blocks_chw_to_hwc(&normalize(x, c, &norm.mean, &norm.std), shape))
        .collect();
    let (model_path, in_path) = (dir.path("m8f.tflite"), dir.path("x8f.npy"));
    std::fs::write(&model_path, &fio).unwrap();
    let mut nhwc_real = nhwc;
    nhwc_real[0] = REAL as u64;
    write_npy(&in_path, &nhwc_real, &normalized);
    let run = tflm::run(&python, &model_path, &in_path, &dir.path("y8f"), outs.len());
    assert!(run.details.contains("float32"), "{spec}: {}", run.details);
    let mut float_values = 0;
    for (k, &t) in outs.iter().enumerate() {
        let got = to_core_order(&g, t, &read_npy::<f32>(&run.outputs[k]));
        assert_eq!(
            got.len(),
            want[k].len(),
            "{spec}: float-io output {k} length"
        );
        let same = got
            .iter()
            .zip(&want[k])
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same,
            "{spec} int8 float-io: output {k} differs from the core's dequantized output"
        );
        float_values += got.len();
    }
    // … and imported back: the core takes the normalized NHWC floats as TFLite-Micro does.
    let imported = import_tflite(&fio, spec)
        .and_then(|m| m.encode())
        .unwrap_or_else(|e| panic!("{spec}: importing our float-io .tflite: {e:#}"));
    let back = Model::from_bytes(&imported).expect("the imported model loads");
    let mut arena = vec![0u8; back.arena_size()];
    let tflm_out0 = read_npy::<f32>(&run.outputs[0]);
    let per = tflm_out0.len() / REAL;
    for (i, (x, want)) in normalized
        .chunks(len)
        .zip(tflm_out0.chunks(per))
        .enumerate()
    {
        let out = back.run(x, &mut arena).expect("the imported model runs");
        let TensorData::I8 { values, quant } = out.logits.data else {
            panic!("{spec}: the imported model returned f32")
        };
        let got: Vec<u32> = values
            .iter()
            .map(|&q| dequantize(q, quant).to_bits())
            .collect();
        let want: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
        assert_eq!(
            got, want,
            "{spec}: the re-imported float-io .tflite differs from TFLite-Micro on sample {i}"
        );
    }
    println!(
        "{spec} int8 --tflite-io float: {REAL} samples, {float_values} float outputs \
         bit-identical (TFLite-Micro QUANTIZE … DEQUANTIZE == core run + dequantize, and == \
         the file imported back)"
    );

    // f32: the same lowered graph.
    let f32_dnrp = graph_f32(&g).unwrap().encode().unwrap();
    let f32_tfl = to_tflite(&g, Numbers::F32).unwrap();
    let core = Model::from_bytes(&f32_dnrp).expect("the f32 model loads");
    let mut arena = vec![0u8; core.arena_size()];
    let raw: Vec<f32> = calib.iter().copied().take(REAL * len).collect();
    let want = per_output(
        outs.len(),
        raw.chunks(len).map(|x| {
            let o = core.run(x, &mut arena).expect("the core runs");
            [o.logits.data, o.embedding.data].map(|d| match d {
                TensorData::F32(v) => v.to_vec(),
                TensorData::I8 { .. } => panic!("{spec}: an f32 model returned int8"),
            })
        }),
    );
    let normalized: Vec<f32> = raw
        .chunks(len)
        .flat_map(|x| blocks_chw_to_hwc(&normalize(x, c, &norm.mean, &norm.std), shape))
        .collect();
    let (model_path, in_path) = (dir.path("m32.tflite"), dir.path("x32.npy"));
    std::fs::write(&model_path, &f32_tfl).unwrap();
    let mut nhwc = nhwc;
    nhwc[0] = REAL as u64;
    write_npy(&in_path, &nhwc, &normalized);
    let run = tflm::run(&python, &model_path, &in_path, &dir.path("y32"), outs.len());
    let mut worst = 0f64;
    for (k, &t) in outs.iter().enumerate() {
        let got = to_core_order(&g, t, &read_npy::<f32>(&run.outputs[k]));
        assert_eq!(got.len(), want[k].len(), "{spec}: f32 output {k} length");
        let per = got.len() / REAL;
        for (i, (a, b)) in got.chunks(per).zip(want[k].chunks(per)).enumerate() {
            let diff = a
                .iter()
                .zip(b)
                .map(|(x, y)| f64::from((x - y).abs()))
                .fold(0.0, f64::max);
            let scale = b.iter().map(|y| f64::from(y.abs())).fold(0.0, f64::max);
            let rel = diff / scale.max(1e-30);
            assert!(
                rel <= 1e-4,
                "{spec} f32: output {k} of sample {i}: relative error {rel:e}\n tflm {a:?}\n core {b:?}"
            );
            worst = worst.max(rel);
        }
    }
    println!("{spec} f32: {REAL} samples, max relative error {worst:.2e} (TFLite-Micro vs core)");
}

#[test]
fn mlp_matches_tflite_micro() {
    // A 2-channel input: the first FULLY_CONNECTED reads a flattened NHWC tensor (permuted
    // columns).
    conformance(&Case {
        spec: "mlp:32,16",
        shape: [2, 4, 4],
        classes: 4,
        seed: 201,
    });
}

#[test]
fn cnn_matches_tflite_micro() {
    conformance(&Case {
        spec: "cnn:4,8/16",
        shape: [1, 12, 12],
        classes: 6,
        seed: 202,
    });
}

#[test]
fn resnet8_matches_tflite_micro() {
    conformance(&Case {
        spec: "resnet8",
        shape: [3, 16, 16],
        classes: 10,
        seed: 203,
    });
}

#[test]
fn ds_cnn_matches_tflite_micro() {
    conformance(&Case {
        spec: "ds-cnn",
        shape: [1, 25, 10],
        classes: 12,
        seed: 204,
    });
}

#[test]
fn mobilenet_v1_matches_tflite_micro() {
    conformance(&Case {
        spec: "mobilenet-v1:0.25",
        shape: [3, 32, 32],
        classes: 10,
        seed: 205,
    });
}

#[test]
fn autoencoder_matches_tflite_micro() {
    conformance(&Case {
        spec: "autoencoder",
        shape: [2, 4, 4],
        classes: 2,
        seed: 206,
    });
}

/// A ViT has ops without an exact TFLite builtin: f32 and int8 export both refuse it, naming
/// the architecture, the op's index, name and kind.
#[test]
fn vit_is_refused_naming_the_op() {
    let spec = "vit:4,16,2,1,2";
    let model = random_arch_model(spec, [1, 8, 8], 3, 207);
    let g = lower(&model.fused().unwrap()).unwrap();
    let e = format!("{:#}", to_tflite(&g, Numbers::F32).unwrap_err());
    let first = g
        .nodes
        .iter()
        .position(|n| n.op.kind() == "Transpose")
        .expect("a ViT transposes its patches");
    assert!(
        e.contains(spec)
            && e.contains("to TFLite")
            && e.contains(&format!("op {first} '{}' (Transpose", g.nodes[first].name))
            && e.contains("LayerNorm"),
        "{e}"
    );
    let mut rng = Rng::new(207);
    let calib = random_samples(&mut rng, 8, 64, 0.0, 1.0);
    let (g, plan) =
        quantize_plan(&model.fused().unwrap(), &calib, RangeMethod::MinMax, false).unwrap();
    let e8 = format!("{:#}", to_tflite_int8(&g, &plan).unwrap_err());
    assert_eq!(e8, e);
}
