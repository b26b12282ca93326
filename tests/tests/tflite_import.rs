//! `denoiserep import MODEL.tflite`: int8 TFLite models built here (planus owned types, seeded
//! random weights, biases and scales), imported into the core's format, then run by the core
//! (`Model::run_quantized`) and by TFLite-Micro's own interpreter on the same random int8 inputs:
//! the outputs must be equal bit for bit. Plus the importer's errors and a no-panic property over
//! arbitrary and mutated files.

use std::time::Instant;

use denoiserep_core::{Model, TensorData};
use denoiserep_tests::tflite_build::{Act8, TfliteBuilder};
use denoiserep_tests::{tflm, TempDir};
use denoiserep_tflite_schema::tflite::{
    self, ActivationFunctionType as Act, BuiltinOperator, BuiltinOptions, Padding, TensorType,
};
use denoiserep_trainer::interop::import_tflite;
use denoiserep_trainer::rng::Rng;
use npyz::WriterBuilder;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Samples run through both interpreters per model.
const SAMPLES: usize = 64;

/// Conv 3×3 SAME stride 1 + RELU (per-channel) → depthwise 3×3 stride 2 SAME + RELU6 on a
/// 10×11 map (TF pads 0 rows above, 1 below, 1 column each side: asymmetric) → max pool 2×2
/// SAME stride 1 → average pool 3×3 SAME stride 2 + RELU → RESHAPE to a vector (HWC order) → FC
/// (per-tensor weights) → SOFTMAX β 0.7.
fn cnn_model(seed: u64) -> Vec<u8> {
    let mut b = TfliteBuilder::new(seed);
    let x = b.activation(&[1, 10, 11, 3]);
    let (y, s) = b.conv(x, [10, 11, 3], 8, 3, 1, Padding::Same, Act::Relu, true);
    let (y, s) = b.depthwise(y, s, 3, 2, Padding::Same, Act::Relu6, true);
    assert_eq!(s, [5, 6, 8]);
    let (y, s) = b.pool(true, y, s, 2, 1, Padding::Same, Act::None);
    let (y, s) = b.pool(false, y, s, 3, 2, Padding::Same, Act::Relu);
    let n = s.iter().product::<i32>();
    let y = b.reshape(y, &[1, n]);
    let y = b.fc(y, n, 10, Act::None, false);
    let y = b.softmax(y, &[1, 10], 0.7);
    b.finish(&[x.index], &[y.index])
}

/// Conv 3×3 SAME (per-tensor) → PAD 1 on every side + conv 3×3 VALID (folded into its padding;
/// per-channel) → residual ADD + RELU → standalone RELU6 → MEAN over H, W with keep_dims →
/// RESHAPE → FC (per-channel) + RELU.
fn residual_model(seed: u64) -> Vec<u8> {
    let mut b = TfliteBuilder::new(seed);
    let x = b.activation(&[1, 7, 9, 4]);
    let (a, s) = b.conv(x, [7, 9, 4], 6, 3, 1, Padding::Same, Act::None, false);
    let pads = b.int32s(&[4, 2], &[0, 0, 1, 1, 1, 1, 0, 0]);
    let p = b.activation_q(&[1, 9, 11, 6], a.scale, a.zero_point);
    b.op(
        BuiltinOperator::Pad,
        &[a.index, pads],
        p.index,
        Some(BuiltinOptions::PadOptions(Box::default())),
    );
    let (c, s2) = b.conv(p, [9, 11, 6], 6, 3, 1, Padding::Valid, Act::None, true);
    assert_eq!(s2, s);
    // A scale where RELU6's 6.0 is inside int8 (TFLite-Micro's standalone RELU6 requires it).
    let sum_scale = b.uniform(0.06, 0.1) as f32;
    let sum_zp = b.int(-20, 20);
    let sum = b.activation_q(&[1, 7, 9, 6], sum_scale, sum_zp);
    let o = tflite::AddOptions {
        fused_activation_function: Act::Relu,
        ..Default::default()
    };
    b.op(
        BuiltinOperator::Add,
        &[a.index, c.index],
        sum.index,
        Some(BuiltinOptions::AddOptions(Box::new(o))),
    );
    let r6 = b.activation_q(&[1, 7, 9, 6], sum.scale, sum.zero_point);
    b.op(BuiltinOperator::Relu6, &[sum.index], r6.index, None);
    let axes = b.int32s(&[2], &[1, 2]);
    let m = b.activation_q(&[1, 1, 1, 6], r6.scale, r6.zero_point);
    let o = tflite::ReducerOptions { keep_dims: true };
    b.op(
        BuiltinOperator::Mean,
        &[r6.index, axes],
        m.index,
        Some(BuiltinOptions::ReducerOptions(Box::new(o))),
    );
    let v = b.reshape(m, &[1, 6]);
    let y = b.fc(v, 6, 5, Act::Relu, true);
    b.finish(&[x.index], &[y.index])
}

/// Depthwise 5×5 SAME stride 1 (per-tensor) → conv 1×1 VALID stride 2 + RELU6 (per-channel) →
/// MEAN over H, W without keep_dims is NOT used: the model output is the `[1, 4, 5, 12]` map
/// itself, which the core writes in TFLite's HWC order.
fn spatial_output_model(seed: u64) -> Vec<u8> {
    let mut b = TfliteBuilder::new(seed);
    let x = b.activation(&[1, 8, 9, 5]);
    let (y, s) = b.depthwise(x, [8, 9, 5], 5, 1, Padding::Same, Act::None, false);
    let (y, s) = b.conv(y, s, 12, 1, 2, Padding::Valid, Act::Relu6, true);
    assert_eq!(s, [4, 5, 12]);
    b.finish(&[x.index], &[y.index])
}

/// A ~300 KB model: conv 3×3 on 16×16×4 → 16 channels → flatten (4096) → FC to 72 (295 K int8
/// weights) → MEAN-free logits.
fn large_model(seed: u64) -> Vec<u8> {
    let mut b = TfliteBuilder::new(seed);
    let x = b.activation(&[1, 16, 16, 4]);
    let (y, s) = b.conv(x, [16, 16, 4], 16, 3, 1, Padding::Same, Act::Relu, true);
    let n = s.iter().product::<i32>();
    let y = b.reshape(y, &[1, n]);
    let y = b.fc(y, n, 72, Act::None, true);
    b.finish(&[x.index], &[y.index])
}

/// Imports `tflite`, runs [`SAMPLES`] random int8 inputs through the core and TFLite-Micro and
/// asserts equal outputs; returns the number of values compared (0 when TFLM is skipped).
fn check_against_tflm(test: &str, tflite: &[u8], seed: u64, samples: usize) -> usize {
    let file = import_tflite(tflite, test).expect("import");
    let bytes = file.encode().expect("encode");
    let model = Model::from_bytes(&bytes).expect("core loads the imported model");
    let Some(python) = tflm::python_or_skip(test) else {
        return 0;
    };
    let tmp = TempDir::new(test);
    let len = model.input_len();
    let mut rng = Rng::new(seed);
    let inputs: Vec<i8> = (0..samples * len).map(|_| rng.next_u64() as i8).collect();
    let dims: Vec<u64> = std::iter::once(samples as u64)
        .chain(
            model
                .input_info()
                .shape
                .dims()
                .iter()
                .map(|&d| u64::from(d)),
        )
        .collect();
    let npy = tmp.path("inputs.npy");
    write_npy(&npy, &dims, &inputs);
    let path = tmp.path("model.tflite");
    std::fs::write(&path, tflite).unwrap();
    let run = tflm::run(&python, &path, &npy, &tmp.path("out"), 1);
    let expected = read_npy_i8(&run.outputs[0]);
    let mut arena = vec![0u8; model.arena_size()];
    let mut got = Vec::with_capacity(expected.len());
    for x in inputs.chunks(len) {
        let out = model.run_quantized(x, &mut arena).expect("core run");
        match out.logits.data {
            TensorData::I8 { values, .. } => got.extend_from_slice(values),
            TensorData::F32(_) => panic!("an int8 model with an f32 output"),
        }
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "{test}: output lengths ({})",
        run.details
    );
    let diffs: Vec<usize> = (0..got.len()).filter(|&i| got[i] != expected[i]).collect();
    if let Some(&i) = diffs.first() {
        let per = got.len() / samples;
        panic!(
            "{test}: {} of {} values differ from TFLite-Micro; first at sample {} index {}: core \
             {} vs TFLM {} (max |diff| {})",
            diffs.len(),
            got.len(),
            i / per,
            i % per,
            got[i],
            expected[i],
            diffs
                .iter()
                .map(|&i| (i32::from(got[i]) - i32::from(expected[i])).abs())
                .max()
                .unwrap()
        );
    }
    println!(
        "{test}: {samples} samples, {} values compared with TFLite-Micro: all equal ({} core ops)",
        got.len(),
        model.op_count()
    );
    got.len()
}

fn write_npy(path: &std::path::Path, shape: &[u64], values: &[i8]) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut f)
        .begin_nd()
        .unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn read_npy_i8(path: &std::path::Path) -> Vec<i8> {
    let bytes = std::fs::read(path).unwrap();
    npyz::NpyFile::new(&bytes[..])
        .unwrap()
        .into_vec::<i8>()
        .unwrap()
}

#[test]
fn cnn_matches_tflm_bit_for_bit() {
    for seed in [1, 2] {
        check_against_tflm(
            &format!("tflite_cnn_{seed}"),
            &cnn_model(seed),
            100 + seed,
            SAMPLES,
        );
    }
}

#[test]
fn residual_matches_tflm_bit_for_bit() {
    for seed in [3, 4] {
        check_against_tflm(
            &format!("tflite_residual_{seed}"),
            &residual_model(seed),
            200 + seed,
            SAMPLES,
        );
    }
}

#[test]
fn spatial_output_matches_tflm_bit_for_bit() {
    check_against_tflm("tflite_spatial", &spatial_output_model(5), 305, SAMPLES);
}

/// The ~300 KB model: imported (timed, median of 5) and checked against TFLite-Micro on 8
/// samples.
#[test]
fn large_model_imports_and_matches_tflm() {
    let tflite = large_model(6);
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let t0 = Instant::now();
            let m = import_tflite(&tflite, "large").unwrap();
            let bytes = m.encode().unwrap();
            std::hint::black_box(bytes);
            t0.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "import of a {} byte .tflite (import + encode + core load): median {:.2} ms",
        tflite.len(),
        1e3 * times[2]
    );
    check_against_tflm("tflite_large", &tflite, 406, 8);
}

/// Conv + depthwise + average pool (a spatial `[1, 3, 3, 8]` output) behind a float interface, as TFLiteConverter
/// writes a model without `inference_input_type = tf.int8`: QUANTIZE(float input) first,
/// DEQUANTIZE(→ float output) last. Returns the file and the input quantization.
fn float_interface_model(seed: u64) -> (Vec<u8>, f32, i64) {
    let mut b = TfliteBuilder::new(seed);
    let xf = b.float_tensor(&[1, 10, 11, 3]);
    let x = b.activation(&[1, 10, 11, 3]);
    b.op(BuiltinOperator::Quantize, &[xf], x.index, None);
    let (y, s) = b.conv(x, [10, 11, 3], 8, 3, 1, Padding::Same, Act::None, true);
    let (y, s) = b.depthwise(y, s, 3, 2, Padding::Same, Act::Relu, true);
    let (y, s) = b.pool(false, y, s, 3, 2, Padding::Same, Act::None);
    let yf = b.float_tensor(&[1, s[0], s[1], s[2]]);
    b.op(BuiltinOperator::Dequantize, &[y.index], yf, None);
    (b.finish(&[xf], &[yf]), x.scale, x.zero_point)
}

/// A float-interface model: the core's f32 `run` (its own input quantization) and dequantized
/// output equal TFLite-Micro's QUANTIZE … DEQUANTIZE bit for bit, on inputs that hit exact
/// rounding ties (`(k + ½)·scale`), saturate (±1e3) and are ordinary reals.
#[test]
fn float_interface_quantize_dequantize_matches_tflm_bit_for_bit() {
    let test = "tflite_float_interface";
    let (tflite, scale, _zp) = float_interface_model(8);
    let file = import_tflite(&tflite, test).expect("import");
    let encoded = file.encode().unwrap();
    let model = Model::from_bytes(&encoded).expect("core loads it");
    assert_eq!(
        model.input_info().shape.dims(),
        [10, 11, 3],
        "the .tflite's own NHWC shape"
    );
    let Some(python) = tflm::python_or_skip(test) else {
        return;
    };
    let len = model.input_len();
    let mut rng = Rng::new(808);
    let x: Vec<f32> = (0..SAMPLES * len)
        .map(|i| match i % 4 {
            0 => (rng.next_u64() % 200) as f32 - 100.0 + 0.5,
            1 => (rng.normal() * 1e3) as f32 / scale,
            _ => (rng.normal() * 60.0) as f32,
        })
        .map(|k| k * scale)
        .collect();
    let tmp = TempDir::new(test);
    let npy = tmp.path("inputs.npy");
    {
        let mut f = std::fs::File::create(&npy).unwrap();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[SAMPLES as u64, 10, 11, 3])
            .writer(&mut f)
            .begin_nd()
            .unwrap();
        w.extend(x.iter().copied()).unwrap();
        w.finish().unwrap();
    }
    let path = tmp.path("model.tflite");
    std::fs::write(&path, &tflite).unwrap();
    let run = tflm::run(&python, &path, &npy, &tmp.path("out"), 1);
    assert!(run.details.contains("float32"), "{}", run.details);
    let bytes = std::fs::read(&run.outputs[0]).unwrap();
    let want: Vec<f32> = npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let mut got = Vec::new();
    for s in x.chunks(len) {
        match model.run(s, &mut arena).expect("core run").logits.data {
            TensorData::I8 { values, quant } => got.extend(
                values
                    .iter()
                    .map(|&q| denoiserep_core::quant::dequantize(q, quant)),
            ),
            TensorData::F32(_) => panic!("an int8 model with an f32 output"),
        }
    }
    assert_eq!(got.len(), want.len());
    let differ = got
        .iter()
        .zip(&want)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(
        differ,
        0,
        "{differ} of {} values differ from TFLite-Micro",
        got.len()
    );
    let distinct = want
        .iter()
        .map(|v| v.to_bits())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert!(
        distinct > 20,
        "only {distinct} distinct outputs: the check proves little: {:?}",
        &want[..30]
    );
    println!(
        "{test}: {SAMPLES} samples, {} float values equal to TFLite-Micro's",
        got.len()
    );
}

#[test]
fn quantize_and_dequantize_only_at_the_edges() {
    // A float input that goes into a conv directly.
    let mut b = TfliteBuilder::new(9);
    let xf = b.float_tensor(&[1, 4, 4, 2]);
    let x = Act8 {
        index: xf,
        scale: 0.05,
        zero_point: 0,
    };
    let (y, _) = b.conv(x, [4, 4, 2], 3, 3, 1, Padding::Same, Act::None, false);
    let e = import_error(&b.finish(&[xf], &[y.index]));
    assert!(
        e.contains("float32")
            && e.contains("must go straight into a QUANTIZE")
            && e.contains("operator 0 (CONV_2D) reads it"),
        "{e}"
    );
    // Requantization inside the graph.
    let mut b = TfliteBuilder::new(10);
    let x = b.activation(&[1, 4, 4, 2]);
    let (y, s) = b.conv(x, [4, 4, 2], 3, 3, 1, Padding::Same, Act::None, false);
    let z = b.activation(&[1, s[0], s[1], s[2]]);
    b.op(BuiltinOperator::Quantize, &[y.index], z.index, None);
    let e = import_error(&b.finish(&[x.index], &[z.index]));
    assert!(
        e.contains("operator 1 (QUANTIZE): QUANTIZE is supported only on the float model input"),
        "{e}"
    );
    // A DEQUANTIZE that is not the last step.
    let mut b = TfliteBuilder::new(11);
    let x = b.activation(&[1, 4, 4, 2]);
    let f = b.float_tensor(&[1, 4, 4, 2]);
    b.op(BuiltinOperator::Dequantize, &[x.index], f, None);
    let (y, _) = b.conv(x, [4, 4, 2], 3, 3, 1, Padding::Same, Act::None, false);
    let e = import_error(&b.finish(&[x.index], &[y.index]));
    assert!(
        e.contains(
            "operator 0 (DEQUANTIZE): DEQUANTIZE is supported only as the last step to a float"
        ),
        "{e}"
    );
}

/// The error (with its causes) of importing `tflite`, which must fail.
fn import_error(tflite: &[u8]) -> String {
    format!(
        "{:#}",
        import_tflite(tflite, "bad").expect_err("the import must fail")
    )
}

#[test]
fn unsupported_operators_are_named_with_their_index() {
    let mut b = TfliteBuilder::new(7);
    let x = b.activation(&[1, 4, 4, 2]);
    let (y, _) = b.conv(x, [4, 4, 2], 3, 3, 1, Padding::Same, Act::None, false);
    let z = b.activation(&[1, 4, 4, 3]);
    b.op(BuiltinOperator::Lstm, &[y.index], z.index, None);
    let w = b.activation(&[1, 4, 4, 3]);
    b.custom_op("MyOp", &[z.index], w.index);
    let e = import_error(&b.finish(&[x.index], &[w.index]));
    assert!(
        e.contains("operators 1 (LSTM), 2 (custom 'MyOp') are not supported; supported: ADD"),
        "{e}"
    );
}

/// One conv model with `edit` applied to its conv options or tensors.
fn conv_model(edit: impl FnOnce(&mut TfliteBuilder)) -> Vec<u8> {
    let mut b = TfliteBuilder::new(8);
    let x = b.activation(&[1, 5, 5, 2]);
    let (y, _) = b.conv(x, [5, 5, 2], 3, 3, 1, Padding::Same, Act::None, true);
    edit(&mut b);
    b.finish(&[x.index], &[y.index])
}

fn conv_options(b: &mut TfliteBuilder) -> &mut tflite::Conv2DOptions {
    match b.ops[0].builtin_options.as_mut() {
        Some(BuiltinOptions::Conv2DOptions(o)) => o,
        _ => unreachable!(),
    }
}

/// A change that makes a valid model unsupported, and what the error must say.
type BadCase = (Box<dyn FnOnce(&mut TfliteBuilder)>, &'static str);

#[test]
fn unsupported_options_and_types_name_the_operator() {
    let cases: Vec<BadCase> = vec![
        (
            Box::new(|b| conv_options(b).dilation_h_factor = 2),
            "operator 0 (CONV_2D): dilation 2×1 is not supported",
        ),
        (
            Box::new(|b| conv_options(b).fused_activation_function = Act::Tanh),
            "operator 0 (CONV_2D): fused activation Tanh is not supported",
        ),
        (
            Box::new(|b| b.tensors[0].type_ = TensorType::Uint8),
            "model input: tensor 0 'act0' is Uint8; only int8",
        ),
        (
            Box::new(|b| b.tensors[3].type_ = TensorType::Float32),
            "operator 0 (CONV_2D): tensor 3 'act3' is Float32; only int8",
        ),
        (
            Box::new(|b| b.tensors[1].type_ = TensorType::Int4),
            "operator 0 (CONV_2D): weights tensor 1 'const1' are Int4",
        ),
        (
            Box::new(|b| {
                b.tensors[1].quantization.as_mut().unwrap().zero_point = Some(vec![1, 0, 0])
            }),
            "nonzero zero point",
        ),
        (
            Box::new(|b| b.tensors[2].type_ = TensorType::Int64),
            "bias tensor 2 'const2' is Int64",
        ),
        (
            Box::new(|b| {
                b.tensors[2]
                    .quantization
                    .as_mut()
                    .unwrap()
                    .scale
                    .as_mut()
                    .unwrap()[1] *= 2.0
            }),
            "channel 1 has scale",
        ),
        (
            Box::new(|b| b.tensors[3].shape = Some(vec![1, 5, 4, 3])),
            "the output has shape [5, 4, 3] (batch dropped); the operator produces [5, 5, 3]",
        ),
        (
            Box::new(|b| b.tensors[0].shape = Some(vec![2, 5, 5, 2])),
            "batch 2",
        ),
        (
            Box::new(|b| {
                b.buffers[1].data.as_mut().unwrap().pop();
            }),
            "but 53 bytes of data",
        ),
        (
            Box::new(|b| b.tensors[1].buffer = 99),
            "refers to buffer 99, which does not exist",
        ),
    ];
    for (edit, want) in cases {
        let e = import_error(&conv_model(edit));
        assert!(e.contains(want), "expected {want:?} in: {e}");
    }
}

#[test]
fn depth_multiplier_and_two_subgraphs_are_refused() {
    let mut b = TfliteBuilder::new(9);
    let x = b.activation(&[1, 5, 5, 2]);
    let (y, _) = b.depthwise(x, [5, 5, 2], 3, 1, Padding::Same, Act::None, false);
    if let Some(BuiltinOptions::DepthwiseConv2DOptions(o)) = b.ops[0].builtin_options.as_mut() {
        o.depth_multiplier = 2;
    }
    let e = import_error(&b.finish(&[x.index], &[y.index]));
    assert!(
        e.contains("operator 0 (DEPTHWISE_CONV_2D): depth multiplier 2"),
        "{e}"
    );

    // Two subgraphs (control flow): re-encode a valid model with its subgraph twice.
    let bytes = spatial_output_model(10);
    let mut model = tflite::Model::try_from(
        <tflite::ModelRef as denoiserep_tflite_schema::planus::ReadAsRoot>::read_as_root(&bytes)
            .unwrap(),
    )
    .unwrap();
    let sg = model.subgraphs.as_ref().unwrap()[0].clone();
    model.subgraphs.as_mut().unwrap().push(sg);
    let two = denoiserep_tflite_schema::finish_model(&model);
    let e = import_error(&two);
    assert!(e.contains("2 subgraphs"), "{e}");
    // A wrong schema version.
    model.subgraphs.as_mut().unwrap().pop();
    model.version = 2;
    let e = import_error(&denoiserep_tflite_schema::finish_model(&model));
    assert!(e.contains("schema version 2"), "{e}");
}

#[test]
fn truncated_and_garbled_files_are_errors() {
    let good = cnn_model(11);
    assert!(import_tflite(&good, "ok").is_ok());
    let e = import_error(&good[..good.len() / 2]);
    assert!(e.contains("malformed TFLite flatbuffer"), "{e}");
    for cut in [0, 3, 7, 8, 16, 64, good.len() - 1] {
        assert!(import_tflite(&good[..cut], "cut").is_err(), "cut at {cut}");
    }
    let mut no_id = good.clone();
    no_id[4..8].copy_from_slice(b"ONNX");
    assert!(import_error(&no_id).contains("no `TFL3` file identifier"));
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(import_tflite(&garbage, "garbage").is_err());
}

/// Never a panic, whatever the bytes: arbitrary files (with and without the identifier) and
/// valid models with random bytes overwritten. Deterministic (a fixed-seed runner).
#[test]
fn import_never_panics() {
    let config = Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config.clone(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let arbitrary = (
        proptest::collection::vec(any::<u8>(), 0..512),
        any::<bool>(),
    );
    runner
        .run(&arbitrary, |(mut bytes, id)| {
            if id && bytes.len() >= 8 {
                bytes[4..8].copy_from_slice(b"TFL3");
            }
            let _ = import_tflite(&bytes, "fuzz");
            Ok(())
        })
        .unwrap();
    let seeds = [cnn_model(12), residual_model(13), spatial_output_model(14)];
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let mutations = (
        0..seeds.len(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    );
    let ok = std::cell::Cell::new(0usize);
    runner
        .run(&mutations, |(which, edits)| {
            let mut bytes = seeds[which].clone();
            for (at, v) in edits {
                let i = at.index(bytes.len());
                bytes[i] = v;
            }
            if let Ok(m) = import_tflite(&bytes, "mutated") {
                // An accepted model is one the core loads.
                Model::from_bytes(&m.encode().unwrap()).unwrap();
                ok.set(ok.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    println!(
        "import_never_panics: 400 arbitrary + 400 mutated files, {} mutated ones still import",
        ok.get()
    );
}

/// Writes the fuzz seed corpus `fuzz/seeds/tflite_import/` (the models of the conformance tests):
/// `cargo test -p denoiserep-tests --test tflite_import -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes fuzz/seeds/tflite_import/; run by hand when the test models change"]
fn write_fuzz_seeds() {
    let dir = denoiserep_tests::repo_root().join("fuzz/seeds/tflite_import");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in [
        ("cnn.tflite", cnn_model(1)),
        ("residual.tflite", residual_model(3)),
        ("spatial-output.tflite", spatial_output_model(5)),
        ("float-interface.tflite", float_interface_model(8).0),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// An imported TFLite model runs on the Cortex-M4F firmware (QEMU) exactly as on the host core:
/// the firmware takes the model file unchanged, its inputs are real values that the core
/// quantizes with the `.tflite` input's scale (mean 0, std 1), in the `.tflite`'s own NHWC
/// layout. Skips loudly without QEMU (fails under CI).
#[test]
fn imported_models_run_bit_identical_on_the_device() {
    use denoiserep_core::DType;
    use denoiserep_tests::device::host_equals_device;
    for (what, tflite) in [
        ("tflite_spatial_on_device", spatial_output_model(21)),
        ("tflite_residual_on_device", residual_model(22)),
    ] {
        let bytes = import_tflite(&tflite, what)
            .and_then(|f| f.encode())
            .expect("import");
        let model = Model::from_bytes(&bytes).expect("loads");
        let DType::I8(q) = model.input_info().dtype else {
            panic!("{what}: an int8 input expected")
        };
        let mut rng = Rng::new(5);
        // Real inputs on the input's int8 grid, across its whole range.
        let samples: Vec<Vec<f32>> = (0..8)
            .map(|_| {
                (0..model.input_len())
                    .map(|_| (f32::from(rng.next_u64() as i8) - f32::from(q.zero_point)) * q.scale)
                    .collect()
            })
            .collect();
        let _ = host_equals_device(what, &bytes, &samples);
    }
}
