//! The ONNX export (`denoiserep export --precision f32 --format onnx`) checked by an independent
//! runtime: trained DenoiseRep runs (synthetic data, `mlp` and `cnn`) and seeded random models
//! of the other architectures (`resnet8`, `ds-cnn`, `mobilenet-v1`, two ViTs) exported both as the core's
//! f32 model and as ONNX; the ONNX file loaded and run by tract (`tract-onnx`), the model file by
//! `denoiserep-core`, on the same raw inputs:
//!
//! * every logit and embedding value within `1e-5·(1 + |core|)`, the same argmax everywhere;
//! * the file's header fields (IR 8, opset 13, producer `denoiserep`, inputs and outputs) read
//!   back with the exporter's own prost structs; the batch dimension is symbolic;
//! * `--precision int8 --format onnx` refused before anything is written.

use std::path::Path;

use denoiserep_core::{Model, TensorData};
use denoiserep_tests::{export_as, random_arch_model, random_samples, train, TempDir};
use denoiserep_trainer::export::onnx::proto::tensor_shape_proto::dimension;
use denoiserep_trainer::export::onnx::proto::{type_proto, ModelProto, ValueInfoProto};
use denoiserep_trainer::export::{
    self, to_f32, to_onnx, ExportFormat, ExportPrecision, ExportRequest,
};
use denoiserep_trainer::rng::Rng;
use denoiserep_trainer::run::{load_data, read_config};
use prost::Message;
use tract_onnx::prelude::*;

const DATA: &str = "synthetic:1,12,12,6,512,200";

fn f32s(data: TensorData<'_>) -> &[f32] {
    match data {
        TensorData::F32(v) => v,
        TensorData::I8 { .. } => panic!("an f32 model returned int8"),
    }
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

fn close(core: &[f32], tract: &[f32], what: &str, sample: usize) {
    assert_eq!(core.len(), tract.len(), "{what} length, sample {sample}");
    for (j, (&a, &b)) in core.iter().zip(tract).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
            "{what}[{j}] of sample {sample}: core {a} vs tract {b}"
        );
    }
}

/// Dimensions of a graph input/output: sizes, or the symbol's name.
fn dims(v: &ValueInfoProto) -> Vec<String> {
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        panic!("{:?} is not a tensor", v.name)
    };
    t.shape
        .as_ref()
        .expect("shape")
        .dim
        .iter()
        .map(|d| match d.value.as_ref().expect("dimension") {
            dimension::Value::DimValue(n) => n.to_string(),
            dimension::Value::DimParam(p) => p.clone(),
        })
        .collect()
}

/// The values of a tract output, row-major.
fn values(t: &Tensor) -> Vec<f32> {
    let view = t.to_plain_array_view::<f32>().expect("an f32 output");
    view.iter().copied().collect()
}

/// tract's optimized plan of `path` for a fixed batch of `n` samples of `shape`.
fn tract_plan(path: &Path, n: usize, shape: [usize; 3]) -> Arc<TypedRunnableModel> {
    let [c, h, w] = shape;
    tract_onnx::onnx()
        .model_for_path(path)
        .expect("tract loads the ONNX file")
        .with_input_fact(0, f32::fact([n, c, h, w]).into())
        .expect("input fact")
        .into_optimized()
        .expect("tract optimizes the graph")
        .into_runnable()
        .expect("runnable")
}

fn check(arch: &str) {
    let tmp = TempDir::new(&format!("onnx-{}", arch.replace([':', ',', '/'], "_")));
    let (base, lg) = (tmp.path("base"), tmp.path("lg"));
    train(
        &base,
        &[
            "--data", DATA, "--arch", arch, "--epochs", "1", "--seed", "3",
        ],
    );
    train(
        &lg,
        &[
            "--regime",
            "label-guided",
            "--init",
            base.to_str().unwrap(),
            "--phase-epochs",
            "1",
        ],
    );
    let (dnrp, onnx) = (tmp.path("m.dnrp"), tmp.path("m.onnx"));
    export_as(&lg, ExportPrecision::F32, ExportFormat::Dnrp, &dnrp);
    let outcome = export_as(&lg, ExportPrecision::F32, ExportFormat::Onnx, &onnx);
    let onnx_bytes = std::fs::read(&onnx).unwrap();

    // The report beside the ONNX file describes it.
    let r = &outcome.report;
    assert_eq!(outcome.json, tmp.path("m.json"));
    assert_eq!(r.format, ExportFormat::Onnx);
    assert_eq!(r.footprint.file_bytes, onnx_bytes.len() as u64);
    assert_eq!(r.denoiserep_overhead.file_bytes, 0);
    assert_eq!(r.denoiserep_overhead.parameters, 0);

    // The header fields, read with the exporter's prost structs.
    let proto = ModelProto::decode(&onnx_bytes[..]).expect("the file decodes");
    assert_eq!(proto.ir_version, Some(8));
    assert_eq!(proto.producer_name.as_deref(), Some("denoiserep"));
    assert_eq!(proto.opset_import.len(), 1);
    assert_eq!(proto.opset_import[0].domain.as_deref(), Some(""));
    assert_eq!(proto.opset_import[0].version, Some(13));
    let graph = proto.graph.as_ref().expect("graph");
    let [c, h, w] = r.input_shape;
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.input[0].name.as_deref(), Some("input"));
    assert_eq!(
        dims(&graph.input[0]),
        ["N".to_string(), c.to_string(), h.to_string(), w.to_string()]
    );
    let outputs: Vec<_> = graph
        .output
        .iter()
        .map(|o| o.name.clone().unwrap())
        .collect();
    assert_eq!(outputs, ["logits", "embedding"]);
    assert_eq!(
        dims(&graph.output[0]),
        ["N".to_string(), r.num_classes.to_string()]
    );
    assert_eq!(
        dims(&graph.output[1]),
        ["N".to_string(), r.embedding_dim.to_string()]
    );

    // Core (the dnrp file) and tract (the ONNX file) on every test sample, one batch.
    let bytes = std::fs::read(&dnrp).unwrap();
    let core = Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; core.arena_size()];
    let data = load_data(&read_config(&lg).unwrap().train).unwrap();
    let n = data.test.len();
    let plan = tract_plan(&onnx, n, r.input_shape);
    let input = Tensor::from_shape(&[n, c, h, w], &data.test.x[..n * c * h * w]).unwrap();
    let out = plan.run(tvec!(input.into_tvalue())).expect("tract runs");
    let (logits, emb) = (&values(&out[0])[..], &values(&out[1])[..]);
    let (k, d) = (r.num_classes, r.embedding_dim);
    assert_eq!((logits.len(), emb.len()), (n * k, n * d));
    let mut any_nonzero = false;
    for i in 0..n {
        let o = core.run(data.test.sample(i), &mut arena).unwrap();
        let (cl, ce) = (f32s(o.logits.data), f32s(o.embedding.data));
        close(cl, &logits[i * k..(i + 1) * k], "logits", i);
        close(ce, &emb[i * d..(i + 1) * d], "embedding", i);
        assert_eq!(
            argmax(cl),
            argmax(&logits[i * k..(i + 1) * k]),
            "argmax of sample {i}"
        );
        any_nonzero |= ce.iter().any(|&v| v != 0.0);
    }
    assert!(
        any_nonzero,
        "{arch}: every embedding is zero; the comparison proves nothing"
    );

    // The batch dimension is symbolic: tract runs the file as written on another batch size.
    let symbolic = tract_onnx::onnx()
        .model_for_path(&onnx)
        .unwrap()
        .into_optimized()
        .expect("optimizes with a symbolic batch")
        .into_runnable()
        .unwrap();
    let m = 3;
    let input = Tensor::from_shape(&[m, c, h, w], &data.test.x[..m * c * h * w]).unwrap();
    let out = symbolic.run(tvec!(input.into_tvalue())).unwrap();
    assert_eq!(out[0].shape(), [m, k]);
    let again = values(&out[0]);
    for i in 0..m {
        let range = i * k..(i + 1) * k;
        close(
            &logits[range.clone()],
            &again[range],
            "logits (symbolic batch)",
            i,
        );
    }
}

#[test]
fn mlp_onnx_in_tract_matches_the_core() {
    check("mlp:48,24");
}

#[test]
fn cnn_onnx_in_tract_matches_the_core() {
    check("cnn:4,8/16");
}

/// The graph architectures (random seeded weights, BatchNorm statistics and denoisers; no
/// training): the ONNX of the fused model (`to_onnx`, one ONNX node group per core op) in tract
/// equals the core's f32 model of the same fused weights on seeded random inputs.
fn check_arch(spec: &str, shape: [usize; 3], classes: usize, seed: u64) {
    let model = random_arch_model(spec, shape, classes, seed);
    let fused = model.fused().unwrap();
    let tmp = TempDir::new(&format!("onnx-arch-{}", spec.replace([':', '.'], "_")));
    let onnx = tmp.path("m.onnx");
    std::fs::write(&onnx, to_onnx(&fused).unwrap()).unwrap();
    let bytes = to_f32(&fused).unwrap().encode().unwrap();
    let core = Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; core.arena_size()];
    let n = 6;
    let len: usize = shape.iter().product();
    let x = random_samples(&mut Rng::new(seed), n, len, 0.0, 1.0);
    let plan = tract_plan(&onnx, n, shape);
    let [c, h, w] = shape;
    let out = plan
        .run(tvec!(Tensor::from_shape(&[n, c, h, w], &x)
            .unwrap()
            .into_tvalue()))
        .expect("tract runs");
    let (logits, emb) = (values(&out[0]), values(&out[1]));
    let k = classes;
    let d = emb.len() / n;
    for i in 0..n {
        let o = core.run(&x[i * len..(i + 1) * len], &mut arena).unwrap();
        let (cl, ce) = (f32s(o.logits.data), f32s(o.embedding.data));
        close(
            cl,
            &logits[i * k..(i + 1) * k],
            &format!("{spec} logits"),
            i,
        );
        close(
            ce,
            &emb[i * d..(i + 1) * d],
            &format!("{spec} embedding"),
            i,
        );
        assert_eq!(
            argmax(cl),
            argmax(&logits[i * k..(i + 1) * k]),
            "{spec}: argmax of sample {i}"
        );
    }
}

#[test]
fn resnet8_onnx_in_tract_matches_the_core() {
    check_arch("resnet8", [3, 16, 16], 10, 201);
}

#[test]
fn ds_cnn_onnx_in_tract_matches_the_core() {
    check_arch("ds-cnn", [1, 25, 10], 12, 202);
}

#[test]
fn mobilenet_v1_onnx_in_tract_matches_the_core() {
    check_arch("mobilenet-v1:0.25", [3, 32, 32], 10, 203);
}

/// The ViT's token ops (LayerNorm in opset-13 ops, erf GELU, attention MatMuls with the scale,
/// Softmax, Transpose, Reshape, the class token's Expand + Concat, Slice + Squeeze, ReduceMean).
#[test]
fn vit_class_token_onnx_in_tract_matches_the_core() {
    check_arch("vit:7,16,2,2,2,cls", [1, 28, 28], 10, 31);
}

#[test]
fn vit_mean_pool_onnx_in_tract_matches_the_core() {
    check_arch("vit:4,12,3,1,1.5,mean", [2, 8, 12], 5, 32);
}

#[test]
fn int8_onnx_is_refused_before_anything_is_written() {
    let tmp = TempDir::new("onnx-int8");
    let out = tmp.path("m.onnx");
    // No run is needed: the combination is refused first.
    let e = export::export(&ExportRequest {
        run: tmp.path("no-run"),
        precision: ExportPrecision::Int8,
        format: ExportFormat::Onnx,
        out: out.clone(),
        calib: export::DEFAULT_CALIB,
        calib_percentile: None,
        calib_seed: 0,
        tflite_float_io: false,
        progress: false,
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "--format onnx writes f32 models only (got --precision int8); int8 models are \
         exported in the core's format (--format dnrp)"
    );
    assert!(!out.exists() && !tmp.path("m.json").exists());
}
