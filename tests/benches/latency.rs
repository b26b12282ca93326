//! Host latency, batch 1, one thread, one process: the same fused model through four engines.
//!
//! * `core_f32`, `core_int8`: `denoiserep_core::Model::run` on the exported `.dnrp` files (input
//!   normalization, and for int8 quantization, happen inside `run`);
//! * `tract`: the ONNX export (`--format onnx`) in tract-onnx, optimized for a fixed input of
//!   batch 1 (`into_optimized`, `into_runnable`, one reused state); normalization is the graph's
//!   `Sub`/`Div`;
//! * `tch`: libtorch on the CPU (`tch::set_num_threads(1)`, no grad), the fused weights as
//!   tensors, `(x − mean) / std` then the fused graph node by node (`linear` / `conv2d` / `relu`
//!   / `max_pool2d` / `mean` / `flatten` / `+` …).
//!
//! Every engine starts from the same raw `&[f32]` sample (a copy into the engine's own tensor is
//! part of its time) and returns logits and embedding. The models are checked against each other
//! before timing.
//!
//! **Interleaved rounds**: the four engines run in turn, `LATENCY_ROUNDS` times (default 3), as
//! criterion groups `latency_<model>_r<round>`, so a slow drift of the machine hits all of them;
//! `bench/latency.sh` reports the median over rounds of criterion's median.
//!
//! **vzeroupper guard**: tract and libtorch run AVX-512 / AVX code and may return with dirty
//! upper vector state; plain SSE code that runs afterwards (the core) then pays a state-transition
//! penalty on every instruction until a `vzeroupper`. A `vzeroupper` is issued after every
//! tract/tch call and before every core call. `LATENCY_VZEROUPPER=0` switches the guard off (the
//! groups are then named `latency_noguard_…`) to show what it changes.
//!
//! Models: `mlp:256,128` (`LATENCY_RUN` = a run directory to use; otherwise a baseline trained
//! for one epoch on mnist, one thread, seed 0) and the default `cnn` = `cnn:32,64/128`
//! (`LATENCY_CNN_RUN`; `LATENCY_SKIP_CNN=1` leaves it out), and `resnet8` (the MLPerf Tiny
//! ResNet of `docs/architectures.md`; `LATENCY_RESNET8_RUN`, `LATENCY_SKIP_RESNET8=1`).
//!
//! `DENOISEREP_HOST_ISA=avx2` (or `portable`) caps the core's kernel path, to measure the AVX2
//! kernels on a CPU that has AVX-512 (the same bits either way).
//!
//! `LATENCY_ALIGN=S` (0–63) places each model file in memory so that its largest weight payload
//! starts at an address `≡ S (mod 64)` (`placed`): `0` shows what cache-line-aligned weights
//! would give, other values what a misaligned file costs (docs/benchmarks.md, "Weight
//! alignment").

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use denoiserep_core::format::graph::{Op, Weights};
use denoiserep_core::{Model, TensorData};
use denoiserep_tests::{export_as, train, TempDir};
use denoiserep_trainer::export::{ExportFormat, ExportPrecision, FusedLayer, FusedModel};
use denoiserep_trainer::model_bytes::ModelBytes;
use denoiserep_trainer::run::{load_data, load_run_model, read_config};
use tch::{Device, Tensor};
use tract_onnx::prelude::{
    tvec, Arc, DatumExt, Framework, InferenceModelExt, IntoRunnable, IntoTValue,
    Tensor as TractTensor, TypedRunnableModel, TypedSimpleState,
};

/// Issues `vzeroupper` when the guard is on and the CPU has AVX.
struct Guard {
    on: bool,
}

impl Guard {
    fn from_env() -> Self {
        let on = std::env::var("LATENCY_VZEROUPPER").map_or(true, |v| v != "0");
        Self { on }
    }

    #[inline(always)]
    fn clear(&self) {
        if self.on {
            zero_upper();
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn zero_upper() {
    #[target_feature(enable = "avx")]
    unsafe fn vzeroupper() {
        std::arch::x86_64::_mm256_zeroupper();
    }
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU supports AVX (checked just above).
        unsafe { vzeroupper() }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn zero_upper() {}

/// The fused model as libtorch tensors.
struct TchModel {
    nodes: Vec<TchNode>,
    mean: Tensor,
    std: Tensor,
    shape: [i64; 4],
    /// The value (0 = normalized input, `k + 1` = node `k`'s output) that is the embedding.
    embedding: usize,
}

/// One fused node and the values it reads.
struct TchNode {
    op: TchOp,
    inputs: Vec<usize>,
}

enum TchOp {
    Linear(Tensor, Tensor),
    /// Weight, bias, stride, `[top, bottom, left, right]` padding, groups.
    Conv(Tensor, Tensor, [i64; 2], [i64; 4], i64),
    Relu,
    Relu6,
    /// Kernel, stride, padding.
    MaxPool([i64; 2], [i64; 2], [i64; 4]),
    AvgPool([i64; 2], [i64; 2], [i64; 4]),
    GlobalAvgPool,
    Flatten,
    Add,
}

/// `[l, r, t, b]` for `constant_pad_nd` from `[top, bottom, left, right]`.
fn pad_lrtb(p: [i64; 4]) -> [i64; 4] {
    [p[2], p[3], p[0], p[1]]
}

impl TchModel {
    fn new(m: &FusedModel) -> Self {
        let t = |v: &[f32], dims: &[i64]| Tensor::from_slice(v).view(dims);
        let i = |v: [usize; 2]| v.map(|d| d as i64);
        let [c, h, w] = m.input_shape.map(|d| d as i64);
        let nodes = m
            .nodes
            .iter()
            .map(|n| {
                let op = match &n.layer {
                    FusedLayer::Linear {
                        in_features,
                        out_features,
                        weight,
                        bias,
                    } => TchOp::Linear(
                        t(weight, &[*out_features as i64, *in_features as i64]),
                        t(bias, &[*out_features as i64]),
                    ),
                    FusedLayer::Conv2d {
                        in_channels,
                        out_channels,
                        kernel,
                        stride,
                        padding,
                        groups,
                        weight,
                        bias,
                    } => {
                        let [kh, kw] = i(*kernel);
                        let per_group = (*in_channels / *groups) as i64;
                        TchOp::Conv(
                            t(weight, &[*out_channels as i64, per_group, kh, kw]),
                            t(bias, &[*out_channels as i64]),
                            i(*stride),
                            padding.map(|p| p as i64),
                            *groups as i64,
                        )
                    }
                    FusedLayer::Relu => TchOp::Relu,
                    FusedLayer::Relu6 => TchOp::Relu6,
                    FusedLayer::MaxPool2d {
                        kernel,
                        stride,
                        padding,
                    } => TchOp::MaxPool(i(*kernel), i(*stride), padding.map(|p| p as i64)),
                    FusedLayer::AvgPool2d {
                        kernel,
                        stride,
                        padding,
                    } => TchOp::AvgPool(i(*kernel), i(*stride), padding.map(|p| p as i64)),
                    FusedLayer::GlobalAvgPool => TchOp::GlobalAvgPool,
                    FusedLayer::Flatten => TchOp::Flatten,
                    FusedLayer::Add => TchOp::Add,
                    other => panic!(
                        "the latency bench has no tch op for {} (a ViT node kind)",
                        other.describe()
                    ),
                };
                TchNode {
                    op,
                    inputs: n.inputs.clone(),
                }
            })
            .collect();
        Self {
            nodes,
            mean: t(&m.normalization.mean, &[1, c, 1, 1]),
            std: t(&m.normalization.std, &[1, c, 1, 1]),
            shape: [1, c, h, w],
            embedding: m.embedding,
        }
    }

    /// Logits and embedding of one raw sample.
    fn run(&self, x: &[f32]) -> (Tensor, Tensor) {
        let mut values = Vec::with_capacity(self.nodes.len() + 1);
        values.push((Tensor::from_slice(x).view(self.shape) - &self.mean) / &self.std);
        for n in &self.nodes {
            let x = &values[n.inputs[0]];
            let y = match &n.op {
                TchOp::Linear(w, b) => x.linear(w, Some(b)),
                TchOp::Conv(w, b, s, p, g) => {
                    if p[0] == p[1] && p[2] == p[3] {
                        x.conv2d(w, Some(b), *s, [p[0], p[2]], [1, 1], *g)
                    } else {
                        x.pad(pad_lrtb(*p), "constant", None).conv2d(
                            w,
                            Some(b),
                            *s,
                            [0, 0],
                            [1, 1],
                            *g,
                        )
                    }
                }
                TchOp::Relu => x.relu(),
                TchOp::Relu6 => x.clamp(0.0, 6.0),
                TchOp::MaxPool(k, s, p) => {
                    if p[0] == p[1] && p[2] == p[3] {
                        x.max_pool2d(*k, *s, [p[0], p[2]], [1, 1], false)
                    } else {
                        // Padded taps never win.
                        x.pad(pad_lrtb(*p), "constant", Some(f64::NEG_INFINITY))
                            .max_pool2d(*k, *s, [0, 0], [1, 1], false)
                    }
                }
                TchOp::AvgPool(k, s, p) => {
                    assert!(
                        p[0] == p[1] && p[2] == p[3],
                        "asymmetric average-pool padding is not in the tch engine"
                    );
                    x.avg_pool2d(*k, *s, [p[0], p[2]], false, false, None::<i64>)
                }
                TchOp::GlobalAvgPool => x.mean_dim([2i64, 3].as_slice(), false, None::<tch::Kind>),
                TchOp::Flatten => x.flatten(1, -1),
                TchOp::Add => x + &values[n.inputs[1]],
            };
            values.push(y);
        }
        let emb = values[self.embedding].shallow_clone();
        (values.pop().expect("at least one node"), emb)
    }
}

/// The model file's bytes as the core reads them. Without `LATENCY_ALIGN`, as `denoiserep
/// infer` loads them ([`ModelBytes`]: on a cache line, so the encoder's payload alignment
/// reaches the kernels); with `LATENCY_ALIGN=S` (0–63), copied so that the largest weight
/// payload of the file (a Linear's or Conv2d's `weights`) starts at an address `≡ S (mod 64)`:
/// an experiment on what weight alignment is worth. Leaked: it lives as long as the bench.
fn placed(bytes: Vec<u8>, what: &str) -> &'static [u8] {
    let Some(want) = std::env::var("LATENCY_ALIGN").ok().map(|s| {
        s.parse::<usize>()
            .ok()
            .filter(|&a| a < 64)
            .expect("LATENCY_ALIGN: an address residue 0..=63")
    }) else {
        return &Box::leak(Box::new(ModelBytes::new(&bytes)))[..];
    };
    let model = Model::from_bytes(&bytes).expect("the exported file loads");
    let mut largest = (0usize, 0usize);
    for node in model.nodes() {
        let weights = match node.expect("decodes after a load").op {
            Op::Linear(p) => p.weights,
            Op::Conv2d(p) => p.weights,
            _ => continue,
        };
        let w = match weights {
            Weights::F32 { weights, .. } => weights.as_bytes(),
            Weights::S8 { weights, .. } => weights.as_bytes(),
        };
        if w.len() > largest.1 {
            largest = (w.as_ptr() as usize - bytes.as_ptr() as usize, w.len());
        }
    }
    let placed = &Box::leak(Box::new(ModelBytes::at_residue(
        &bytes,
        want + 64 - largest.0 % 64,
    )))[..];
    eprintln!(
        "latency: {what}: largest weight payload {} B at file offset {}, placed at address ≡ {} \
         (mod 64)",
        largest.1,
        largest.0,
        (placed.as_ptr() as usize + largest.0) % 64
    );
    placed
}

/// One model in every engine, plus the sample they all run.
struct Engines {
    label: String,
    f32_bytes: &'static [u8],
    int8_bytes: &'static [u8],
    tract: Arc<TypedRunnableModel>,
    tch: TchModel,
    sample: Vec<f32>,
    shape: [usize; 3],
}

impl Engines {
    /// Exports `run` three ways into `dir` and loads every engine.
    fn load(label: &str, run: &Path, dir: &Path) -> Self {
        let f32_path = dir.join(format!("{label}-f32.dnrp"));
        let int8_path = dir.join(format!("{label}-int8.dnrp"));
        let onnx_path = dir.join(format!("{label}.onnx"));
        export_as(run, ExportPrecision::F32, ExportFormat::Dnrp, &f32_path);
        export_as(run, ExportPrecision::Int8, ExportFormat::Dnrp, &int8_path);
        export_as(run, ExportPrecision::F32, ExportFormat::Onnx, &onnx_path);
        let (cfg, model) = load_run_model(run, Device::Cpu).expect("load the run");
        let fused = model.fused().expect("fuse");
        let data = load_data(&read_config(run).expect("config").train).expect("data");
        let shape = cfg.arch.input_shape;
        let [c, h, w] = shape;
        let tract = tract_onnx::onnx()
            .model_for_path(&onnx_path)
            .expect("tract loads the ONNX file")
            .with_input_fact(0, f32::fact([1, c, h, w]).into())
            .expect("input fact")
            .into_optimized()
            .expect("tract optimizes")
            .into_runnable()
            .expect("runnable");
        Self {
            label: label.to_string(),
            f32_bytes: placed(std::fs::read(&f32_path).expect("read f32 model"), "f32"),
            int8_bytes: placed(std::fs::read(&int8_path).expect("read int8 model"), "int8"),
            tract,
            tch: TchModel::new(&fused),
            sample: data.test.sample(0).to_vec(),
            shape,
        }
    }

    fn tract_input(&self, x: &[f32]) -> TractTensor {
        let [c, h, w] = self.shape;
        TractTensor::from_shape(&[1, c, h, w], x).expect("input tensor")
    }

    /// Checks that the engines compute the same function on the benchmark sample.
    fn check(&self, state: &mut TypedSimpleState) {
        let core = Model::from_bytes(self.f32_bytes).expect("f32 model");
        let mut arena = vec![0u8; core.arena_size()];
        let out = core.run(&self.sample, &mut arena).expect("core f32");
        let (TensorData::F32(logits), TensorData::F32(emb)) = (out.logits.data, out.embedding.data)
        else {
            panic!("f32 model with int8 outputs")
        };
        let t = state
            .run(tvec!(self.tract_input(&self.sample).into_tvalue()))
            .expect("tract runs");
        let (tl, te) = self.tch.run(&self.sample);
        let peers: [(&str, Vec<f32>, Vec<f32>); 2] = [
            (
                "tract",
                t[0].to_plain_array_view::<f32>()
                    .unwrap()
                    .iter()
                    .copied()
                    .collect(),
                t[1].to_plain_array_view::<f32>()
                    .unwrap()
                    .iter()
                    .copied()
                    .collect(),
            ),
            (
                "tch",
                Vec::<f32>::try_from(&tl.flatten(0, -1)).unwrap(),
                Vec::<f32>::try_from(&te.flatten(0, -1)).unwrap(),
            ),
        ];
        for (name, pl, pe) in peers {
            for (what, a, b) in [("logits", logits, &pl), ("embedding", emb, &pe)] {
                assert_eq!(a.len(), b.len(), "{}: {name} {what} length", self.label);
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
                        "{}: {name} {what} {y} vs core {x}",
                        self.label
                    );
                }
            }
        }
        let int8 = Model::from_bytes(self.int8_bytes).expect("int8 model");
        let mut arena = vec![0u8; int8.arena_size()];
        int8.run(&self.sample, &mut arena).expect("core int8");
    }
}

/// A run directory: `env` if set, else a fresh baseline of `arch` (1 epoch on mnist) in `tmp`.
fn run_dir(env: &str, arch: &str, tmp: &TempDir, name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(env) {
        return PathBuf::from(dir);
    }
    let out = tmp.path(name);
    eprintln!(
        "latency: training {arch} on mnist for one epoch (one thread) into {}",
        out.display()
    );
    train(
        &out,
        &[
            "--data", "mnist", "--arch", arch, "--epochs", "1", "--seed", "0",
        ],
    );
    out
}

/// `DENOISEREP_HOST_ISA=avx2|portable` caps the core's host kernels (read once, before any model
/// runs; `kernels::limit_kernel_path`), to measure the AVX2-only or portable path on a CPU with
/// AVX-512; unset or `avx512`: the fastest path the CPU has. The path is printed to stderr.
fn limit_host_isa() {
    use denoiserep_core::kernels::{kernel_path, limit_kernel_path, KernelPath};
    match std::env::var("DENOISEREP_HOST_ISA").as_deref() {
        Ok("avx2") => limit_kernel_path(KernelPath::Avx2),
        Ok("portable") => limit_kernel_path(KernelPath::Portable),
        Ok("avx512") | Err(_) => {}
        Ok(other) => panic!("DENOISEREP_HOST_ISA={other}: expected avx512, avx2 or portable"),
    }
    eprintln!("latency: core kernel path {}", kernel_path().name());
}

fn latency(c: &mut Criterion) {
    limit_host_isa();
    tch::set_num_threads(1);
    let guard = Guard::from_env();
    let prefix = if guard.on {
        "latency"
    } else {
        "latency_noguard"
    };
    let rounds: usize = std::env::var("LATENCY_ROUNDS")
        .ok()
        .map(|v| v.parse().expect("LATENCY_ROUNDS is a positive integer"))
        .unwrap_or(3);
    let tmp = TempDir::new("latency");
    let mut models = vec![Engines::load(
        "mlp",
        &run_dir("LATENCY_RUN", "mlp:256,128", &tmp, "mlp"),
        &tmp.path(""),
    )];
    if std::env::var("LATENCY_SKIP_CNN").map_or(true, |v| v != "1") {
        models.push(Engines::load(
            "cnn",
            &run_dir("LATENCY_CNN_RUN", "cnn", &tmp, "cnn"),
            &tmp.path(""),
        ));
    }
    if std::env::var("LATENCY_SKIP_RESNET8").map_or(true, |v| v != "1") {
        models.push(Engines::load(
            "resnet8",
            &run_dir("LATENCY_RESNET8_RUN", "resnet8", &tmp, "resnet8"),
            &tmp.path(""),
        ));
    }

    // After training (which needs gradients): inference only from here on.
    let _no_grad = tch::no_grad_guard();
    for round in 0..rounds {
        for m in &models {
            let core_f32 = Model::from_bytes(m.f32_bytes).expect("f32 model");
            let core_int8 = Model::from_bytes(m.int8_bytes).expect("int8 model");
            let mut arena = vec![0u8; core_f32.arena_size().max(core_int8.arena_size())];
            let mut state = m.tract.spawn().expect("tract state");
            m.check(&mut state);
            guard.clear();
            let x = &m.sample[..];

            let mut g = c.benchmark_group(format!("{prefix}_{}_r{round}", m.label));
            if m.label != "mlp" {
                g.sample_size(10);
            }
            g.bench_function("core_f32", |b| {
                b.iter(|| {
                    guard.clear();
                    let out = core_f32.run(black_box(x), &mut arena).expect("core f32");
                    black_box(out.logits.data);
                })
            });
            g.bench_function("core_int8", |b| {
                b.iter(|| {
                    guard.clear();
                    let out = core_int8.run(black_box(x), &mut arena).expect("core int8");
                    black_box(out.logits.data);
                })
            });
            g.bench_function("tract", |b| {
                b.iter(|| {
                    let input = m.tract_input(black_box(x)).into_tvalue();
                    let out = state.run(tvec!(input)).expect("tract");
                    guard.clear();
                    black_box(out)
                })
            });
            g.bench_function("tch", |b| {
                b.iter(|| {
                    let out = m.tch.run(black_box(x));
                    guard.clear();
                    black_box(out)
                })
            });
            g.finish();
        }
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
        .without_plots()
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = latency
}
criterion_main!(benches);
