//! `denoiserep import MODEL.onnx` of Vision Transformers that PyTorch itself exported.
//!
//! The fixtures (`host-trainer/tests/fixtures/vit_onnx/make.py`) are two timm 1.0
//! `VisionTransformer`s (class-token and mean pooling; D = 16, 2 heads, depth 2, patch 7 on
//! 1×28×28, random weights) written by `torch.onnx.export` three ways: the TorchScript exporter
//! at opset 14 (LayerNorm decomposed, dynamic batch) and opset 17 (LayerNormalization), and the
//! dynamo exporter (opset 18, batch fixed at 4), with PyTorch's logits on 4 inputs.
//!
//! * Each file imports as `vit:7,16,2,2,2,{cls,mean}` and, exported as an f32 core model file,
//!   the core computes PyTorch's logits (`|Δ| ≤ 10⁻⁴·max|logit|`); the three spellings of one
//!   model give the same run weights; DenoiseRep training continues from the imported run.
//! * A graph that differs from a ViT between its weights (a tanh GELU instead of erf), a
//!   LayerNorm ε other than timm's, a weight of the wrong shape and an op the evaluator does
//!   not know are refused with the node named; no run directory is left behind.
//! * Mutated files (random attribute values, rewired inputs, random bytes) give an error or a
//!   model, never a panic.

use std::path::{Path, PathBuf};

use denoiserep_core::{Model as CoreModel, TensorData};
use denoiserep_tests::{export_as, train_on_from, TempDir};
use denoiserep_trainer::export::onnx::proto::ModelProto;
use denoiserep_trainer::export::{ExportFormat, ExportPrecision};
use denoiserep_trainer::import::{import, ImportRequest};
use denoiserep_trainer::run;
use proptest::prelude::*;
use prost::Message;
use tch::Device;

const DATA: &str = "synthetic:1,28,28,10,64,32";

fn fixtures() -> PathBuf {
    denoiserep_tests::repo_root().join("host-trainer/tests/fixtures/vit_onnx")
}

fn request(model: &Path, out: &Path) -> ImportRequest {
    ImportRequest {
        model: model.to_path_buf(),
        arch: None,
        out: out.to_path_buf(),
        data: DATA.to_string(),
        test_fraction: 0.2,
        data_dir: denoiserep_tests::repo_root().join("data"),
        seed: 0,
        mean: None,
        std: None,
        device: Device::Cpu,
    }
}

fn floats(t: &tch::Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.to_kind(tch::Kind::Float).flatten(0, -1)).unwrap()
}

/// The f32 core's logits of run `dir` on `x` (samples of 784 values).
fn core_logits(dir: &Path, tmp: &TempDir, x: &[f32]) -> Vec<f32> {
    let file = tmp.path("m.dnrp");
    export_as(dir, ExportPrecision::F32, ExportFormat::Dnrp, &file);
    let bytes = std::fs::read(&file).unwrap();
    let m = CoreModel::from_bytes(&bytes).expect("the core reads it");
    let mut arena = vec![0u8; m.arena_size()];
    x.chunks(784)
        .flat_map(
            |s| match m.run(s, &mut arena).expect("the core runs").logits.data {
                TensorData::F32(v) => v.to_vec(),
                TensorData::I8 { .. } => panic!("an f32 model returned int8"),
            },
        )
        .collect()
}

#[test]
fn timm_vits_exported_three_ways_import_and_match_pytorch() {
    for pool in ["cls", "mean"] {
        let expected =
            run::read_tensors(&fixtures().join(format!("{pool}.expected.safetensors"))).unwrap();
        let (x, want) = (floats(&expected["input"]), floats(&expected["logits"]));
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let mut weights = Vec::new();
        for variant in ["opset14", "opset17", "dynamo"] {
            let tmp = TempDir::new(&format!("import-vit-{pool}-{variant}"));
            let out = tmp.path("run");
            let file = fixtures().join(format!("{pool}_{variant}.onnx"));
            let o = import(&request(&file, &out)).expect("import");
            assert_eq!(o.arch.spec, format!("vit:7,16,2,2,2,{pool}"), "{variant}");
            assert_eq!(o.normalization, "identity");
            let got = core_logits(&out, &tmp, &x);
            assert_eq!(got.len(), want.len());
            let worst = want
                .iter()
                .zip(&got)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst <= 1e-4 * scale,
                "{pool}_{variant}: the core's logits differ from PyTorch's by {worst} (scale \
                 {scale})"
            );
            weights.push(std::fs::read(out.join(run::MODEL)).unwrap());
        }
        assert!(
            weights.windows(2).all(|w| w[0] == w[1]),
            "{pool}: the three exports give different run weights"
        );
    }
}

#[test]
fn denoiserep_training_continues_from_an_imported_vit() {
    let tmp = TempDir::new("import-vit-train");
    let out = tmp.path("run");
    import(&request(&fixtures().join("cls_opset17.onnx"), &out)).expect("import");
    let cfg = train_on_from(&out, &tmp.path("label-free"));
    assert_eq!(cfg.arch.spec, "vit:7,16,2,2,2,cls");
}

/// `cls_opset17.onnx` changed by `edit`, written to `tmp`, imported: the error.
fn refused(tmp: &TempDir, name: &str, edit: impl FnOnce(&mut ModelProto)) -> String {
    let bytes = std::fs::read(fixtures().join("cls_opset17.onnx")).unwrap();
    let mut proto = ModelProto::decode(&bytes[..]).unwrap();
    edit(&mut proto);
    let file = tmp.path(name);
    std::fs::write(&file, proto.encode_to_vec()).unwrap();
    let out = tmp.path("run");
    let e = format!("{:#}", import(&request(&file, &out)).unwrap_err());
    assert!(!out.exists(), "a failed import leaves no run directory");
    assert!(e.contains(name), "the error names the file: {e}");
    e
}

fn node_named<'a>(
    p: &'a mut ModelProto,
    op: &str,
) -> &'a mut denoiserep_trainer::export::onnx::proto::NodeProto {
    p.graph
        .as_mut()
        .unwrap()
        .node
        .iter_mut()
        .find(|n| n.op_type.as_deref() == Some(op))
        .unwrap()
}

#[test]
fn graphs_that_are_not_this_vit_are_refused_naming_the_node() {
    let tmp = TempDir::new("import-vit-errors");
    // GELU's erf becomes tanh: the weights fit, the computation does not.
    let e = refused(&tmp, "tanh.onnx", |p| {
        for n in &mut p.graph.as_mut().unwrap().node {
            if n.op_type.as_deref() == Some("Erf") {
                n.op_type = Some("Tanh".into());
            }
        }
    });
    assert!(
        e.contains("no head count H reproduces its output") && e.contains("2 heads:"),
        "{e}"
    );
    // PyTorch's default LayerNorm ε.
    let e = refused(&tmp, "eps.onnx", |p| {
        let ln = node_named(p, "LayerNormalization");
        ln.name = Some("/blocks/blocks.0/norm1/LN".into());
        for a in &mut ln.attribute {
            if a.name.as_deref() == Some("epsilon") {
                a.f = Some(1e-5);
            }
        }
    });
    assert!(
        e.contains("node '/blocks/blocks.0/norm1/LN' (LayerNormalization)")
            && e.contains("ε = 1e-5"),
        "{e}"
    );
    // The first block's qkv weight loses 8 output columns.
    let e = refused(&tmp, "qkv.onnx", |p| {
        let g = p.graph.as_mut().unwrap();
        let mm = g
            .node
            .iter()
            .find(|n| n.op_type.as_deref() == Some("MatMul"))
            .unwrap();
        let (w, name) = (mm.input[1].clone(), mm.name.clone().unwrap());
        let t = g
            .initializer
            .iter_mut()
            .find(|t| t.name.as_deref() == Some(w.as_str()))
            .unwrap();
        t.dims = vec![16, 40];
        t.raw_data = Some(vec![0; 16 * 40 * 4]);
        assert!(name.contains("qkv"), "{name}");
    });
    assert!(
        e.contains("a Linear 16→40 where the ViT has Linear 'blocks.0.attn.qkv' (16→48)"),
        "{e}"
    );
    // An op outside the evaluator's set.
    let e = refused(&tmp, "hardmax.onnx", |p| {
        let t = node_named(p, "Transpose");
        t.op_type = Some("Hardmax".into());
        t.name = Some("/odd/Hardmax".into());
    });
    assert!(
        e.contains("node '/odd/Hardmax' (Hardmax)") && e.contains("not supported"),
        "{e}"
    );
}

/// A mutation of the opset-17 class-token ViT's graph.
#[derive(Debug, Clone)]
enum Mutation {
    /// Node `k % nodes`, attribute `a % attrs`: its int (or ints) set to `v`.
    Attr(usize, usize, i64),
    /// Node `k % nodes`, input `i % inputs` replaced by node `j % nodes`'s first output.
    Rewire(usize, usize, usize),
    /// Byte `at % len` of the encoded file set to `b`.
    Byte(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), -3i64..7).prop_map(|(k, a, v)| Mutation::Attr(k, a, v)),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(k, i, j)| Mutation::Rewire(k, i, j)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Byte(at, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    /// No mutated file makes the import panic: it is imported (the change did not matter,
    /// e.g. an unused attribute) or refused with an error.
    #[test]
    fn mutated_vit_graphs_never_panic(ms in proptest::collection::vec(mutation(), 1..4)) {
        let bytes = std::fs::read(fixtures().join("cls_opset17.onnx")).unwrap();
        let mut proto = ModelProto::decode(&bytes[..]).unwrap();
        let mut raw = None;
        for m in &ms {
            let g = proto.graph.as_mut().unwrap();
            let n = g.node.len();
            match *m {
                Mutation::Attr(k, a, v) => {
                    let node = &mut g.node[k % n];
                    if !node.attribute.is_empty() {
                        let at = a % node.attribute.len();
                        let attr = &mut node.attribute[at];
                        if attr.ints.is_empty() {
                            attr.i = Some(v);
                        } else {
                            let len = attr.ints.len();
                            attr.ints[a % len] = v;
                        }
                    }
                }
                Mutation::Rewire(k, i, j) => {
                    let src = g.node[j % n].output.first().cloned().unwrap_or_default();
                    let node = &mut g.node[k % n];
                    if !node.input.is_empty() {
                        let len = node.input.len();
                        node.input[i % len] = src;
                    }
                }
                Mutation::Byte(at, b) => raw = Some((at, b)),
            }
        }
        let mut enc = proto.encode_to_vec();
        if let Some((at, b)) = raw {
            let len = enc.len();
            enc[at % len] = b;
        }
        let r = std::panic::catch_unwind(|| {
            denoiserep_trainer::import::onnx::from_bytes(&enc, Device::Cpu).map(|_| ())
        });
        prop_assert!(r.is_ok(), "the import panicked on mutations {:?}", ms);
    }
}
