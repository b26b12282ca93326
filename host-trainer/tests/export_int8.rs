//! int8 export pieces on hand-built models: the calibration forward (the core's f32 model) sees
//! the trainer's fused activations, percentile ranges, the lowering of a real model, and the
//! refusal of an op whose int32 accumulator could overflow.

use denoiserep_core::format::graph::{Op, Weights};
use denoiserep_core::{DType, Model};
use denoiserep_trainer::arch::Arch;
use denoiserep_trainer::data::Normalization;
use denoiserep_trainer::export::{calibrate, lower, to_f32, to_int8, CoreOp, RangeMethod};
use denoiserep_trainer::model::{DenoiseSpec, Grads, Mode, Model as TrainerModel};
use denoiserep_trainer::rng::Rng;
use denoiserep_trainer::schedule::ScheduleSpec;
use denoiserep_trainer::{FusedLayer, FusedModel};
use tch::{Device, Kind, Tensor};

/// A cnn with denoisers whose `D`, `d` are random (so fused ≠ plain).
fn denoised_cnn() -> TrainerModel {
    tch::manual_seed(5);
    let arch = Arch::parse("cnn:3,4/8", [2, 8, 8], 3).unwrap();
    let norm = Normalization {
        mean: vec![0.2, 0.4],
        std: vec![0.5, 0.3],
    };
    let mut m = TrainerModel::new(arch, norm, Device::Cpu);
    m.add_denoisers(&DenoiseSpec {
        schedule: ScheduleSpec {
            beta_start: 0.01,
            beta_end: 0.1,
            timesteps: 10,
        },
        t_stride: 1,
        t_list: None,
        fuse_noise: None,
    })
    .unwrap();
    tch::no_grad(|| {
        for d in &m.denoisers {
            let c = d.channels();
            d.d_mat
                .shallow_clone()
                .copy_(&(Tensor::randn([c, c], (Kind::Float, Device::Cpu)) * 0.3));
            d.d_vec
                .shallow_clone()
                .copy_(&Tensor::randn([c], (Kind::Float, Device::Cpu)));
        }
    });
    m
}

/// Runs the core model in `bytes` on every sample of `x` (`[N, C, H, W]`); logits and
/// embeddings as `[N, ·]` tensors.
fn core_forward(bytes: &[u8], x: &Tensor) -> (Tensor, Tensor) {
    let model = Model::from_bytes(bytes).unwrap();
    let n = x.size()[0];
    let flat = Vec::<f32>::try_from(x.flatten(0, -1)).unwrap();
    let len = model.input_len();
    let mut arena = vec![0u8; model.arena_size()];
    let (mut logits, mut emb) = (Vec::new(), Vec::new());
    for sample in flat.chunks_exact(len) {
        let out = model.run(sample, &mut arena).unwrap();
        for i in 0..out.logits.len() {
            logits.push(out.logits.get_f32(i).unwrap());
        }
        for i in 0..out.embedding.len() {
            emb.push(out.embedding.get_f32(i).unwrap());
        }
    }
    (
        Tensor::from_slice(&logits).view([n, -1]),
        Tensor::from_slice(&emb).view([n, -1]),
    )
}

#[test]
fn calibration_forward_is_the_trainer_fused_forward() {
    let m = denoised_cnn();
    let fused = m.fused().unwrap();
    let bytes = to_f32(&fused).unwrap().encode().unwrap();
    // Raw inputs; the core normalizes them, the trainer's forward takes normalized ones.
    let x = Tensor::rand([5, 2, 8, 8], (Kind::Float, Device::Cpu));
    let mean = Tensor::from_slice(&[0.2f32, 0.4]).view([1, 2, 1, 1]);
    let std = Tensor::from_slice(&[0.5f32, 0.3]).view([1, 2, 1, 1]);
    let xn = (&x - &mean) / &std;
    let (logits, emb) = core_forward(&bytes, &x);
    let reference = tch::no_grad(|| m.forward(&xn, Mode::Fused, Grads::NONE, false));
    let diff = (&logits - &reference.logits).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "logits differ by {diff}");
    let diff = (&emb - &reference.embedding).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "embedding differs by {diff}");
    // The plain backbone differs: calibration of the fused model is not the baseline's.
    let plain = tch::no_grad(|| m.forward(&xn, Mode::Plain, Grads::NONE, false));
    let diff = (&logits - &plain.logits).abs().max().double_value(&[]);
    assert!(diff > 1e-3, "denoisers had no effect ({diff})");
}

#[test]
fn percentile_ranges_are_order_statistics() {
    let m = denoised_cnn();
    let graph = lower(&m.fused().unwrap()).unwrap();
    let mut rng = Rng::new(3);
    let samples: Vec<f32> = (0..40 * 128).map(|_| rng.uniform() as f32).collect();
    let minmax = calibrate(&graph, &samples, RangeMethod::MinMax, false).unwrap();
    let p100 = calibrate(&graph, &samples, RangeMethod::Percentile(100.0), false).unwrap();
    assert_eq!(minmax, p100);
    let p90 = calibrate(&graph, &samples, RangeMethod::Percentile(90.0), false).unwrap();
    // The input x̂ = (x − mean)/std of uniform x: min/max are the extremes, the 90th
    // percentile is strictly inside.
    let (a, b) = (p90[0].unwrap(), minmax[0].unwrap());
    assert!(a.0 > b.0 && a.1 < b.1, "{a:?} inside {b:?}");
    for (a, b) in p90.iter().zip(&minmax) {
        assert_eq!(a.is_some(), b.is_some());
        if let (Some(a), Some(b)) = (a, b) {
            assert!(a.0 >= b.0 && a.1 <= b.1, "{a:?} inside {b:?}");
        }
    }
    // Every tensor is observed: the input and every op's output.
    assert_eq!(minmax.len(), graph.shapes.len());
    assert!(minmax.iter().all(Option::is_some));
    assert!(RangeMethod::from_percentile(Some(50.0)).is_err());
    assert!(RangeMethod::from_percentile(Some(100.5)).is_err());
}

#[test]
fn int8_cnn_lowering_fuses_relus_and_keeps_quantization_through_pooling() {
    let m = denoised_cnn();
    let graph = lower(&m.fused().unwrap()).unwrap();
    let mut rng = Rng::new(4);
    let samples: Vec<f32> = (0..16 * 128).map(|_| rng.uniform() as f32).collect();
    let ranges = calibrate(&graph, &samples, RangeMethod::MinMax, false).unwrap();
    let bytes = to_int8(&graph, &ranges).unwrap().encode().unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let nodes: Vec<_> = model.nodes().map(Result::unwrap).collect();
    let kinds: Vec<String> = nodes.iter().map(|n| n.op.kind().to_string()).collect();
    assert_eq!(
        kinds,
        [
            "conv2d",
            "max_pool2d",
            "conv2d",
            "max_pool2d",
            "reshape",
            "linear",
            "linear"
        ]
    );
    let quant = |id: u16| match model.tensor(id).unwrap().dtype {
        DType::I8(q) => q,
        DType::F32 => panic!("tensor {id} is f32"),
    };
    for n in &nodes {
        match n.op {
            Op::Conv2d(c) => {
                // ReLU fused: the output range starts at real 0.
                assert_eq!(c.activation, denoiserep_core::Activation::Relu);
                assert!(matches!(c.weights, Weights::S8 { .. }));
                assert_eq!(quant(n.output).zero_point, -128);
            }
            Op::MaxPool2d(_) | Op::Reshape => {
                assert_eq!(quant(n.output), quant(n.inputs.ids()[0]));
            }
            _ => {}
        }
    }
    // The embedding is the hidden Linear's (ReLU-fused) output: tensor 6.
    assert_eq!(model.info().embedding, 6);
    assert!(graph.nodes.iter().any(|n| matches!(n.op, CoreOp::Reshape)));
}

#[test]
fn accumulator_overflow_is_refused_naming_the_op() {
    // Fan-in 70 000, all weights 127 after quantization, inputs in [0, 1] (zero point −128, so
    // x − zp ∈ [0, 255]): the accumulator can reach 127 · 255 · 70 000 ≈ 2.3·10^9 > 2^31 − 1.
    let n = 70_000;
    let model = FusedModel::sequential(
        "wide".into(),
        [7, 100, 100],
        2,
        Normalization {
            mean: vec![0.0; 7],
            std: vec![1.0; 7],
        },
        vec![
            FusedLayer::Flatten,
            FusedLayer::Linear {
                in_features: n,
                out_features: 2,
                weight: vec![1.0; 2 * n],
                bias: vec![0.0, 0.5],
            },
        ],
        0,
    );
    let graph = lower(&model).unwrap();
    let mut rng = Rng::new(9);
    let samples: Vec<f32> = (0..2 * n).map(|_| rng.uniform() as f32).collect();
    let ranges = calibrate(&graph, &samples, RangeMethod::MinMax, false).unwrap();
    let Err(err) = to_int8(&graph, &ranges).unwrap().encode() else {
        panic!("an op that can overflow int32 was accepted");
    };
    let msg = format!("{err:#}");
    assert_eq!(
        msg,
        "cannot export 1 Linear(70000→2) (core op 1): op 1: the op's int32 accumulator could \
         overflow for some input"
    );
}
