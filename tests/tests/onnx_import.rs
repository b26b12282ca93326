//! `denoiserep import`: models trained elsewhere become run directories, unchanged.
//!
//! * **Round trip** through our own ONNX exporter: seeded random models of `mlp`, `cnn`,
//!   `resnet8:2`, `ds-cnn` and `mobilenet-v1:0.125` (random BatchNorm statistics, denoisers
//!   fused) → `to_onnx` → `import` (arch spec inferred, normalization from the graph's
//!   `Sub`/`Div`) → `export --precision f32` → the core's logits and embedding equal the
//!   original model's f32 file's within `1e-5·(1 + |x|)`.
//! * **PyTorch-style graphs** written here with the prost structs the way `torch.onnx.export`
//!   writes them (BatchNormalization nodes with ε = 1e-3, Gemm with transB = 0, MatMul + Add,
//!   Reshape instead of Flatten, a `[N, D]` input, Clip(0, 6) of `mobilenet-v1:…,relu6`):
//!   imported, exported as f32,
//!   the core's logits equal tract's run of the ONNX file itself.
//! * **Errors**: an unsupported node is named with its op type; a garbled file, an unknown
//!   extension, a state dict without `--arch` are refused; no run directory is left behind.
//! * **State dicts**: a trainer model's backbone `state_dict` (safetensors) imported with
//!   `--arch` gives bit-identical f32 exports; `train --init` continues from the imported run
//!   with DenoiseRep (label-free) training.

use std::collections::HashMap;
use std::path::Path;

use denoiserep_core::{Model as CoreModel, TensorData};
use denoiserep_tests::{export_as, random_arch_model, random_samples, train_on_from, TempDir};
use denoiserep_trainer::arch::{LayerSpec, Src};
use denoiserep_trainer::export::onnx::proto::tensor_shape_proto::{dimension, Dimension};
use denoiserep_trainer::export::onnx::proto::{
    type_proto, AttributeProto, AttributeType, DataType, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use denoiserep_trainer::export::{to_f32, to_onnx, ExportFormat, ExportPrecision};
use denoiserep_trainer::import::{import, ImportRequest};
use denoiserep_trainer::model::Model;
use denoiserep_trainer::rng::Rng;
use denoiserep_trainer::run::{self, read_config};
use prost::Message;
use tch::Device;
use tract_onnx::prelude::*;

fn request(model: &Path, out: &Path, data: &str) -> ImportRequest {
    ImportRequest {
        model: model.to_path_buf(),
        arch: None,
        out: out.to_path_buf(),
        data: data.to_string(),
        test_fraction: 0.2,
        data_dir: denoiserep_tests::repo_root().join("data"),
        seed: 0,
        mean: None,
        std: None,
        device: Device::Cpu,
    }
}

/// A synthetic data set of `shape` and `classes`, small enough to evaluate in moments.
fn data(shape: [usize; 3], classes: usize) -> String {
    let [c, h, w] = shape;
    format!("synthetic:{c},{h},{w},{classes},64,32")
}

fn f32s(data: TensorData<'_>) -> Vec<f32> {
    match data {
        TensorData::F32(v) => v.to_vec(),
        TensorData::I8 { .. } => panic!("an f32 model returned int8"),
    }
}

/// Logits and embedding of a core model file on each sample.
fn core_outputs(bytes: &[u8], samples: &[f32], len: usize) -> Vec<(Vec<f32>, Vec<f32>)> {
    let m = CoreModel::from_bytes(bytes).expect("the core reads the file");
    let mut arena = vec![0u8; m.arena_size()];
    samples
        .chunks(len)
        .map(|s| {
            let o = m.run(s, &mut arena).expect("the core runs");
            (f32s(o.logits.data), f32s(o.embedding.data))
        })
        .collect()
}

fn close(want: &[f32], got: &[f32], what: &str) {
    assert_eq!(want.len(), got.len(), "{what}: length");
    for (j, (&a, &b)) in want.iter().zip(got).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
            "{what}[{j}]: want {a}, got {b}"
        );
    }
}

/// Exports run `dir` as an f32 core model file and returns its bytes.
fn export_f32(dir: &Path, tmp: &TempDir, name: &str) -> Vec<u8> {
    let file = tmp.path(name);
    export_as(dir, ExportPrecision::F32, ExportFormat::Dnrp, &file);
    std::fs::read(file).unwrap()
}

fn round_trip(spec: &str, shape: [usize; 3], classes: usize) {
    let tmp = TempDir::new(&format!(
        "import-rt-{}",
        spec.replace([':', ',', '/', '.'], "_")
    ));
    let model = random_arch_model(spec, shape, classes, 11);
    let fused = model.fused().unwrap();
    let original = to_f32(&fused).unwrap().encode().unwrap();
    let onnx = tmp.path("m.onnx");
    std::fs::write(&onnx, to_onnx(&fused).unwrap()).unwrap();
    let out = tmp.path("run");
    let o = import(&request(&onnx, &out, &data(shape, classes))).expect("import");
    assert_eq!(o.arch.spec, model.arch.spec, "inferred arch");
    assert_eq!(o.normalization, "file");
    let cfg = read_config(&out).unwrap();
    assert_eq!(cfg.normalization, model.normalization);
    assert!(out.join(run::METRICS).is_file() && out.join(run::MODEL).is_file());

    let back = export_f32(&out, &tmp, "back.dnrp");
    let len: usize = shape.iter().product();
    let samples = random_samples(&mut Rng::new(5), 6, len, 0.0, 1.0);
    let (want, got) = (
        core_outputs(&original, &samples, len),
        core_outputs(&back, &samples, len),
    );
    let mut varied = false;
    for (i, ((wl, we), (gl, ge))) in want.iter().zip(&got).enumerate() {
        close(wl, gl, &format!("{spec} logits of sample {i}"));
        close(we, ge, &format!("{spec} embedding of sample {i}"));
        varied |= wl != &want[0].0;
    }
    assert!(
        varied,
        "{spec}: every sample gives the same logits; the check proves nothing"
    );
}

#[test]
fn round_trip_mlp() {
    round_trip("mlp:12,8", [1, 6, 6], 4);
}

#[test]
fn round_trip_cnn() {
    round_trip("cnn:4,6/10", [2, 8, 8], 3);
}

#[test]
fn round_trip_resnet8() {
    round_trip("resnet8:2", [1, 8, 8], 3);
}

#[test]
fn round_trip_ds_cnn() {
    round_trip("ds-cnn", [1, 10, 6], 3);
}

#[test]
fn round_trip_vit_class_token() {
    round_trip("vit:7,16,2,2,2,cls", [1, 28, 28], 10);
}

#[test]
fn round_trip_vit_mean_pool() {
    round_trip("vit:4,12,3,1,1.5,mean", [2, 8, 12], 5);
}

#[test]
fn round_trip_mobilenet() {
    round_trip("mobilenet-v1:0.125", [1, 8, 8], 2);
}

// ---- PyTorch-style graphs ------------------------------------------------------------------

/// How [`torch_like`] writes the graph.
#[derive(Clone, Copy)]
struct Style {
    /// BatchNormalization nodes with this ε (the variance shifted so the output is the same).
    bn_eps: f32,
    /// Linear: 0 = Gemm transB = 1, 1 = Gemm transB = 0 (B = Wᵀ), 2 = MatMul(Wᵀ) + Add(b).
    linear: u8,
    /// Flatten as `Reshape(x, [0, −1])`.
    reshape: bool,
    /// Graph input `[N, D]` (an mlp without Flatten).
    flat_input: bool,
    /// Asymmetric conv padding as a `Pad` node before the conv (PyTorch's `nn.ZeroPad2d`).
    pad_nodes: bool,
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[usize]) -> ValueInfoProto {
    let mut dim = vec![Dimension {
        value: Some(dimension::Value::DimParam("batch".into())),
        denotation: None,
    }];
    dim.extend(dims.iter().map(|&d| Dimension {
        value: Some(dimension::Value::DimValue(d as i64)),
        denotation: None,
    }));
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        doc_string: None,
    }
}

#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
}

impl Builder {
    fn init(&mut self, name: &str, dims: &[usize], v: &[f32]) -> String {
        self.inits.push(TensorProto {
            name: Some(name.into()),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            ..Default::default()
        });
        name.into()
    }

    fn node(&mut self, op: &str, name: &str, ins: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = format!("/{name}/{op}_output_0");
        self.nodes.push(NodeProto {
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: Some(format!("/{name}/{op}")),
            op_type: Some(op.into()),
            attribute: attrs,
            ..Default::default()
        });
        out
    }
}

/// The backbone of `model` (no denoisers) as `torch.onnx.export` would write the equivalent
/// PyTorch module, in `style`; the last node's output is renamed `logits`.
fn torch_like(model: &Model, style: Style) -> Vec<u8> {
    let t: HashMap<String, Vec<f32>> = model
        .backbone_params()
        .into_iter()
        .chain(model.backbone_buffers())
        .filter(|(n, _)| !n.ends_with("num_batches_tracked"))
        .map(|(n, t)| {
            let v = Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap();
            (n, v)
        })
        .collect();
    let arch = &model.arch;
    let mut b = Builder::default();
    let mut out: Vec<String> = Vec::new();
    for node in &arch.nodes {
        let ins: Vec<String> = node
            .inputs
            .iter()
            .map(|s| match *s {
                Src::Input => "input".to_string(),
                Src::Node(i) => out[i].clone(),
            })
            .collect();
        let x = ins[0].as_str();
        let n = node.name.as_str();
        let p = |s: &str| t[&format!("{n}.{s}")].clone();
        let y = match node.spec {
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding: [top, bottom, left, right],
                groups,
            } => {
                let w = b.init(
                    &format!("{n}.weight"),
                    &[out_channels, in_channels / groups, kernel[0], kernel[1]],
                    &p("weight"),
                );
                let bias = b.init(&format!("{n}.bias"), &[out_channels], &p("bias"));
                let k = kernel.map(|k| k as i64);
                let s = stride.map(|k| k as i64);
                let mut pads = [top, left, bottom, right].map(|k| k as i64);
                let mut x = x.to_string();
                if style.pad_nodes && (top != bottom || left != right) {
                    let all = format!("{n}.pads");
                    let v = [0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]];
                    b.inits.push(TensorProto {
                        name: Some(all.clone()),
                        dims: vec![8],
                        data_type: Some(DataType::Int64 as i32),
                        int64_data: v.to_vec(),
                        ..Default::default()
                    });
                    x = b.node("Pad", &format!("{n}_pad"), &[&x, &all], vec![]);
                    pads = [0; 4];
                }
                b.node(
                    "Conv",
                    n,
                    &[&x, &w, &bias],
                    vec![
                        attr_ints("kernel_shape", &k),
                        attr_ints("strides", &s),
                        attr_ints("pads", &pads),
                        attr_ints("dilations", &[1, 1]),
                        attr_int("group", groups as i64),
                    ],
                )
            }
            LayerSpec::BatchNorm2d { channels, eps, .. } => {
                let shift = eps as f32 - style.bn_eps;
                let var: Vec<f32> = p("running_var").iter().map(|v| v + shift).collect();
                let names = [
                    b.init(&format!("{n}.weight"), &[channels], &p("weight")),
                    b.init(&format!("{n}.bias"), &[channels], &p("bias")),
                    b.init(
                        &format!("{n}.running_mean"),
                        &[channels],
                        &p("running_mean"),
                    ),
                    b.init(&format!("{n}.running_var"), &[channels], &var),
                ];
                b.node(
                    "BatchNormalization",
                    n,
                    &[x, &names[0], &names[1], &names[2], &names[3]],
                    vec![
                        attr_float("epsilon", style.bn_eps),
                        attr_float("momentum", 0.9),
                    ],
                )
            }
            LayerSpec::Relu => b.node("Relu", n, &[x], vec![]),
            LayerSpec::Relu6 => {
                let lo = b.init(&format!("{n}.min"), &[], &[0.0]);
                let hi = b.init(&format!("{n}.max"), &[], &[6.0]);
                b.node("Clip", n, &[x, &lo, &hi], vec![])
            }
            LayerSpec::MaxPool2d { kernel, stride } => b.node(
                "MaxPool",
                n,
                &[x],
                vec![
                    attr_ints("kernel_shape", &[kernel as i64; 2]),
                    attr_ints("strides", &[stride as i64; 2]),
                    attr_ints("pads", &[0; 4]),
                    attr_int("ceil_mode", 0),
                ],
            ),
            LayerSpec::AvgPool2d { kernel, stride } => b.node(
                "AveragePool",
                n,
                &[x],
                vec![
                    attr_ints("kernel_shape", &kernel.map(|k| k as i64)),
                    attr_ints("strides", &stride.map(|k| k as i64)),
                ],
            ),
            LayerSpec::GlobalAvgPool => {
                let g = b.node("GlobalAveragePool", n, &[x], vec![]);
                flatten(&mut b, &format!("{n}_flat"), &g, style)
            }
            LayerSpec::Flatten if style.flat_input && node.inputs == [Src::Input] => x.to_string(),
            LayerSpec::Flatten => flatten(&mut b, n, x, style),
            LayerSpec::Add => b.node("Add", n, &[x, &ins[1]], vec![]),
            LayerSpec::Linear {
                in_features,
                out_features,
            } => {
                let w = p("weight");
                let wt: Vec<f32> = (0..in_features * out_features)
                    .map(|k| w[(k % out_features) * in_features + k / out_features])
                    .collect();
                let bias = b.init(&format!("{n}.bias"), &[out_features], &p("bias"));
                match style.linear {
                    0 => {
                        let w = b.init(&format!("{n}.weight"), &[out_features, in_features], &w);
                        b.node("Gemm", n, &[x, &w, &bias], vec![attr_int("transB", 1)])
                    }
                    1 => {
                        let w = b.init(&format!("{n}.weight"), &[in_features, out_features], &wt);
                        b.node("Gemm", n, &[x, &w, &bias], vec![attr_int("transB", 0)])
                    }
                    _ => {
                        let w = b.init(&format!("{n}.weight_t"), &[in_features, out_features], &wt);
                        let m = b.node("MatMul", n, &[x, &w], vec![]);
                        b.node("Add", &format!("{n}_bias"), &[&m, &bias], vec![])
                    }
                }
            }
            other => panic!("torch_like: {other:?}"),
        };
        out.push(y);
    }
    // Rename the last output to `logits`.
    let last = out.last().unwrap().clone();
    for n in &mut b.nodes {
        for o in &mut n.output {
            if *o == last {
                *o = "logits".into();
            }
        }
    }
    let [c, h, w] = arch.input_shape;
    let input = if style.flat_input {
        value_info("input", &[c * h * w])
    } else {
        value_info("input", &[c, h, w])
    };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        producer_name: Some("pytorch".into()),
        producer_version: Some("2.5.0".into()),
        graph: Some(GraphProto {
            name: Some("main_graph".into()),
            node: b.nodes,
            initializer: b.inits,
            input: vec![input],
            output: vec![value_info("logits", &[arch.num_classes])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn flatten(b: &mut Builder, n: &str, x: &str, style: Style) -> String {
    if style.reshape {
        let shape = format!("{n}.shape");
        b.inits.push(TensorProto {
            name: Some(shape.clone()),
            dims: vec![2],
            data_type: Some(DataType::Int64 as i32),
            raw_data: Some([0i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
        b.node("Reshape", n, &[x, &shape], vec![])
    } else {
        b.node("Flatten", n, &[x], vec![attr_int("axis", 1)])
    }
}

/// tract's logits of `onnx` on `samples` (`n` of them, per-sample dims `dims`).
fn tract_logits(onnx: &Path, samples: &[f32], n: usize, dims: &[usize]) -> Vec<f32> {
    let mut shape = vec![n];
    shape.extend_from_slice(dims);
    let plan = tract_onnx::onnx()
        .model_for_path(onnx)
        .expect("tract loads the file")
        .with_input_fact(0, f32::fact(&shape[..]).into())
        .unwrap()
        .into_optimized()
        .expect("tract optimizes it")
        .into_runnable()
        .unwrap();
    let input = tract_onnx::prelude::Tensor::from_shape(&shape, samples).unwrap();
    let out = plan.run(tvec!(input.into_tvalue())).expect("tract runs");
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

fn pytorch_style(spec: &str, shape: [usize; 3], classes: usize, style: Style) {
    let tmp = TempDir::new(&format!(
        "import-pt-{}",
        spec.replace([':', ',', '/', '.'], "_")
    ));
    let model = random_arch_model(spec, shape, classes, 23);
    let onnx = tmp.path("m.onnx");
    std::fs::write(&onnx, torch_like(&model, style)).unwrap();
    let out = tmp.path("run");
    let o = import(&request(&onnx, &out, &data(shape, classes))).expect("import");
    assert_eq!(o.arch.spec, model.arch.spec);
    assert_eq!(o.normalization, "identity");
    let back = export_f32(&out, &tmp, "back.dnrp");
    let len: usize = shape.iter().product();
    let n = 6;
    let samples = random_samples(&mut Rng::new(9), n, len, 0.0, 1.0);
    let dims: Vec<usize> = if style.flat_input {
        vec![len]
    } else {
        shape.to_vec()
    };
    let want = tract_logits(&onnx, &samples, n, &dims);
    let got = core_outputs(&back, &samples, len);
    for (i, (g, _)) in got.iter().enumerate() {
        close(
            &want[i * classes..(i + 1) * classes],
            g,
            &format!("{spec} logits of sample {i}"),
        );
    }
}

#[test]
fn pytorch_mlp_flat_input_matmul_add() {
    let style = Style {
        bn_eps: 1e-5,
        linear: 2,
        reshape: false,
        flat_input: true,
        pad_nodes: false,
    };
    pytorch_style("mlp:10,7", [20, 1, 1], 3, style);
}

#[test]
fn pytorch_cnn_gemm_trans_b_0_and_reshape() {
    let style = Style {
        bn_eps: 1e-5,
        linear: 1,
        reshape: true,
        flat_input: false,
        pad_nodes: false,
    };
    pytorch_style("cnn:3/5", [1, 6, 6], 3, style);
}

#[test]
fn pytorch_resnet8_with_batch_norm_nodes() {
    let style = Style {
        bn_eps: 1e-3,
        linear: 0,
        reshape: false,
        flat_input: false,
        pad_nodes: true,
    };
    pytorch_style("resnet8:2", [2, 8, 8], 3, style);
}

#[test]
fn pytorch_ds_cnn_with_batch_norm_and_reshape() {
    let style = Style {
        bn_eps: 1e-5,
        linear: 2,
        reshape: true,
        flat_input: false,
        pad_nodes: false,
    };
    pytorch_style("ds-cnn", [1, 10, 6], 3, style);
}

#[test]
fn pytorch_mobilenet_relu6_as_clip() {
    let style = Style {
        bn_eps: 1e-3,
        linear: 0,
        reshape: false,
        flat_input: false,
        pad_nodes: false,
    };
    pytorch_style("mobilenet-v1:0.125,relu6", [1, 8, 8], 2, style);
}

// ---- Errors --------------------------------------------------------------------------------

#[test]
fn unsupported_nodes_garbage_and_unknown_extensions_are_refused() {
    let tmp = TempDir::new("import-errors");
    let model = random_arch_model("mlp:6", [8, 1, 1], 2, 1);
    let style = Style {
        bn_eps: 1e-5,
        linear: 0,
        reshape: false,
        flat_input: true,
        pad_nodes: false,
    };
    let mut proto = ModelProto::decode(&torch_like(&model, style)[..]).unwrap();
    let g = proto.graph.as_mut().unwrap();
    // The ReLU becomes a Sigmoid.
    let relu = g
        .node
        .iter_mut()
        .find(|n| n.op_type.as_deref() == Some("Relu"))
        .unwrap();
    relu.op_type = Some("Sigmoid".into());
    relu.name = Some("/act/Sigmoid".into());
    let bad = tmp.path("sigmoid.onnx");
    std::fs::write(&bad, proto.encode_to_vec()).unwrap();
    let out = tmp.path("run");
    let data = data([8, 1, 1], 2);
    let err = |file: &Path| format!("{:#}", import(&request(file, &out, &data)).unwrap_err());
    let e = err(&bad);
    assert!(
        e.contains("sigmoid.onnx")
            && e.contains("node '/act/Sigmoid' (Sigmoid)")
            && e.contains("unsupported op type"),
        "{e}"
    );
    assert!(!out.exists(), "a failed import leaves no run directory");

    let garbled = tmp.path("garbled.onnx");
    std::fs::write(&garbled, b"\x08\x07\x12\xff\xff\xffnot an onnx file").unwrap();
    let e = err(&garbled);
    assert!(
        e.contains("garbled.onnx") && e.contains("not an ONNX model"),
        "{e}"
    );

    let pt = tmp.path("model.pt");
    std::fs::write(&pt, b"x").unwrap();
    let e = err(&pt);
    assert!(
        e.contains(".onnx") && e.contains(".safetensors") && e.contains("'pt'"),
        "{e}"
    );

    // A structure that matches no architecture: a conv stem (cnn) whose pool is 3×3.
    let cnn = random_arch_model("cnn:2/", [1, 6, 6], 2, 1);
    let mut proto = ModelProto::decode(&torch_like(&cnn, style_plain())[..]).unwrap();
    let pool = proto
        .graph
        .as_mut()
        .unwrap()
        .node
        .iter_mut()
        .find(|n| n.op_type.as_deref() == Some("MaxPool"))
        .unwrap();
    pool.attribute[0].ints = vec![3, 3];
    let misfit = tmp.path("pool3.onnx");
    std::fs::write(&misfit, proto.encode_to_vec()).unwrap();
    let e = format!(
        "{:#}",
        import(&request(&misfit, &out, "synthetic:1,6,6,2,64,32")).unwrap_err()
    );
    assert!(
        e.contains("node '/2/MaxPool' (MaxPool) does not fit") && e.contains("MaxPool(kernel 2×2"),
        "{e}"
    );
    assert!(!out.exists());
}

fn style_plain() -> Style {
    Style {
        bn_eps: 1e-5,
        linear: 0,
        reshape: false,
        flat_input: false,
        pad_nodes: false,
    }
}

// ---- State dicts ---------------------------------------------------------------------------

#[test]
fn state_dict_import_is_exact_and_trains_on() {
    let tmp = TempDir::new("import-state-dict");
    let (shape, classes) = ([1, 8, 8], 3);
    let model = random_arch_model("resnet8:2", shape, classes, 5);
    // A PyTorch state_dict: the backbone only (no denoisers, no normalization).
    let file = tmp.path("model.safetensors");
    run::write_tensors(&file, &model.backbone_tensors()).unwrap();
    let out = tmp.path("run");
    let mut req = request(&file, &out, &data(shape, classes));
    let e = format!("{:#}", import(&req).unwrap_err());
    assert!(e.contains("pass --arch"), "{e}");
    assert!(!out.exists());
    req.arch = Some("resnet8:2".into());
    req.mean = Some(model.normalization.mean.clone());
    req.std = Some(model.normalization.std.clone());
    let o = import(&req).expect("import");
    assert_eq!(o.normalization, "--mean/--std");
    // A second import into the same directory is refused, and changes nothing.
    let before = std::fs::read(out.join(run::MODEL)).unwrap();
    let e = format!("{:#}", import(&req).unwrap_err());
    assert!(e.contains("not empty"), "{e}");
    assert_eq!(std::fs::read(out.join(run::MODEL)).unwrap(), before);

    // The backbone's f32 file and the imported run's: the same outputs, bit for bit.
    let want = to_f32(&model.plain().unwrap()).unwrap().encode().unwrap();
    let got = export_f32(&out, &tmp, "imported.dnrp");
    let len: usize = shape.iter().product();
    let samples = random_samples(&mut Rng::new(3), 5, len, 0.0, 1.0);
    assert_eq!(
        core_outputs(&want, &samples, len),
        core_outputs(&got, &samples, len)
    );

    // DenoiseRep training continues from the imported run.
    let cfg = train_on_from(&out, &tmp.path("label-free"));
    assert_eq!(cfg.arch.spec, "resnet8:2");
    assert_eq!(cfg.normalization, model.normalization);
}

/// A state dict PyTorch wrote (`host-trainer/tests/fixtures/pytorch_import/make.py`: ResNet-8
/// with 4 base filters as a PyTorch user writes it, TF-"same" padding by `F.pad`): imported by
/// the command and exported as f32, the core computes PyTorch's eval-mode logits.
#[test]
fn real_pytorch_state_dict_matches_pytorch_logits() {
    let tmp = TempDir::new("import-real-pytorch");
    let fixtures = denoiserep_tests::repo_root().join("host-trainer/tests/fixtures/pytorch_import");
    let out = tmp.path("run");
    let mut req = request(
        &fixtures.join("resnet8-4.safetensors"),
        &out,
        "synthetic:1,12,12,10,64,32",
    );
    req.arch = Some("resnet8:4".into());
    let o = import(&req).expect("import");
    // The fixture carries `normalization.mean/std` (0 and 1, make.py), so it comes from the file.
    assert_eq!(o.normalization, "file");
    let expected = run::read_tensors(&fixtures.join("resnet8-4.expected.safetensors")).unwrap();
    let x = Vec::<f32>::try_from(&expected["input"].flatten(0, -1)).unwrap();
    let want =
        Vec::<f32>::try_from(&expected["logits"].to_kind(tch::Kind::Float).flatten(0, -1)).unwrap();
    let got: Vec<f32> = core_outputs(&export_f32(&out, &tmp, "m.dnrp"), &x, 144)
        .into_iter()
        .flat_map(|(l, _)| l)
        .collect();
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = want
        .iter()
        .zip(&got)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert_eq!(want.len(), got.len());
    assert!(
        worst <= 1e-4 * scale,
        "the core's logits differ from PyTorch's by {worst} (scale {scale})"
    );
}

/// Seeds of the `onnx` fuzz target (`fuzz/seeds/onnx/`): our exporter's files and the
/// PyTorch-style graphs above (BatchNormalization, Pad, MatMul + Add, Reshape), small models,
/// and a timm ViT that `torch.onnx.export` wrote (opset 17; the decoder refuses its
/// transformer ops, the ViT import is tested in `onnx_import_vit.rs`); run `cargo test -p denoiserep-tests --test onnx_import -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes fuzz/seeds/onnx/; run by hand when the test models change"]
fn write_fuzz_seeds() {
    let dir = denoiserep_tests::repo_root().join("fuzz/seeds/onnx");
    std::fs::create_dir_all(&dir).unwrap();
    let ours = |spec: &str, shape: [usize; 3], classes: usize| {
        let m = random_arch_model(spec, shape, classes, 3);
        to_onnx(&m.fused().unwrap()).unwrap()
    };
    let torch = |spec: &str, shape: [usize; 3], classes: usize, style: Style| {
        torch_like(&random_arch_model(spec, shape, classes, 4), style)
    };
    let mut pads = style_plain();
    pads.pad_nodes = true;
    pads.bn_eps = 1e-3;
    let mut matmul = style_plain();
    matmul.linear = 2;
    matmul.reshape = true;
    matmul.flat_input = true;
    for (name, bytes) in [
        ("ours-mlp.onnx", ours("mlp:6", [8, 1, 1], 2)),
        ("ours-cnn.onnx", ours("cnn:2/4", [1, 6, 6], 3)),
        ("ours-resnet8.onnx", ours("resnet8:2", [1, 8, 8], 3)),
        (
            "torch-resnet8-bn-pad.onnx",
            torch("resnet8:2", [1, 8, 8], 3, pads),
        ),
        (
            "torch-mlp-matmul.onnx",
            torch("mlp:5", [6, 1, 1], 2, matmul),
        ),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let vit = denoiserep_tests::repo_root().join("host-trainer/tests/fixtures/vit_onnx");
    std::fs::copy(
        vit.join("cls_opset17.onnx"),
        dir.join("timm-vit-opset17.onnx"),
    )
    .unwrap();
}
