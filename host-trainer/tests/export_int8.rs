//! int8 export pieces on hand-built models: the calibration forward sees exactly the trainer's
//! fused activations, percentile ranges, the lowering of a real model, and the refusal of a layer
//! whose int32 accumulator could overflow.

use denoiserep_core::{Layer, Model};
use denoiserep_trainer::arch::Arch;
use denoiserep_trainer::data::Normalization;
use denoiserep_trainer::export::calibrate::forward_steps;
use denoiserep_trainer::export::{calibrate, lower, to_int8, RangeMethod};
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

#[test]
fn calibration_forward_is_the_trainer_fused_forward() {
    let m = denoised_cnn();
    let fused = m.fused().unwrap();
    let lowering = lower(&fused);
    let x = Tensor::randn([5, 2, 8, 8], (Kind::Float, Device::Cpu));
    let steps = forward_steps(&fused, &lowering, &x);
    let reference = tch::no_grad(|| m.forward(&x, Mode::Fused, Grads::NONE, false));
    let last = steps.last().unwrap();
    let diff = (last - &reference.logits).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "logits differ by {diff}");
    let emb = &steps[lowering.embedding];
    let diff = (emb - &reference.embedding).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "embedding differs by {diff}");
    // The plain backbone differs: calibration of the fused model is not the baseline's.
    let plain = tch::no_grad(|| m.forward(&x, Mode::Plain, Grads::NONE, false));
    let diff = (last - &plain.logits).abs().max().double_value(&[]);
    assert!(diff > 1e-3, "denoisers had no effect ({diff})");
}

#[test]
fn percentile_ranges_are_order_statistics() {
    let m = denoised_cnn();
    let fused = m.fused().unwrap();
    let lowering = lower(&fused);
    let mut rng = Rng::new(3);
    let samples: Vec<f32> = (0..40 * 128).map(|_| rng.uniform() as f32).collect();
    let minmax = calibrate(&fused, &lowering, &samples, RangeMethod::MinMax, false).unwrap();
    let p100 = calibrate(
        &fused,
        &lowering,
        &samples,
        RangeMethod::Percentile(100.0),
        false,
    )
    .unwrap();
    assert_eq!(minmax, p100);
    let p90 = calibrate(
        &fused,
        &lowering,
        &samples,
        RangeMethod::Percentile(90.0),
        false,
    )
    .unwrap();
    // The input x̂ = (x − mean)/std of uniform x: min/max are the extremes, the 90th
    // percentile is strictly inside.
    assert!(p90.input.0 > minmax.input.0 && p90.input.1 < minmax.input.1);
    for (a, b) in p90.outputs.iter().zip(&minmax.outputs) {
        assert_eq!(a.is_some(), b.is_some());
        if let (Some(a), Some(b)) = (a, b) {
            assert!(a.0 >= b.0 && a.1 <= b.1, "{a:?} inside {b:?}");
        }
    }
    // Ranges exist exactly for Linear / Conv2d outputs.
    let weighted: Vec<bool> = lowering
        .steps
        .iter()
        .map(|s| {
            matches!(
                fused.layers[s.layer],
                FusedLayer::Linear { .. } | FusedLayer::Conv2d { .. }
            )
        })
        .collect();
    let observed: Vec<bool> = minmax.outputs.iter().map(Option::is_some).collect();
    assert_eq!(observed, weighted);
    assert!(RangeMethod::from_percentile(Some(50.0)).is_err());
    assert!(RangeMethod::from_percentile(Some(100.5)).is_err());
}

#[test]
fn int8_cnn_lowering_fuses_relus_and_keeps_quantization_through_pooling() {
    let m = denoised_cnn();
    let fused = m.fused().unwrap();
    let lowering = lower(&fused);
    let mut rng = Rng::new(4);
    let samples: Vec<f32> = (0..16 * 128).map(|_| rng.uniform() as f32).collect();
    let ranges = calibrate(&fused, &lowering, &samples, RangeMethod::MinMax, false).unwrap();
    let bytes = to_int8(&fused, &lowering, &ranges)
        .unwrap()
        .encode()
        .unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let kinds: Vec<String> = model
        .layers()
        .iter()
        .map(|p| p.layer.kind().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "conv2d_s8",
            "maxpool2d",
            "conv2d_s8",
            "maxpool2d",
            "flatten",
            "linear_s8",
            "linear_s8"
        ]
    );
    for p in model.layers() {
        if let Layer::Conv2dS8(c) = p.layer {
            // ReLU fused: the output range starts at real 0.
            assert_eq!(c.activation, denoiserep_core::Activation::Relu);
            assert_eq!(c.output.zero_point, -128);
        }
    }
    assert_eq!(model.metadata().embedding_layer, 5);
}

#[test]
fn accumulator_overflow_is_refused_naming_the_layer() {
    // Fan-in 70 000, all weights 127 after quantization, inputs in [0, 1] (zero point −128, so
    // x − zp ∈ [0, 255]): the accumulator can reach 127 · 255 · 70 000 ≈ 2.3·10^9 > 2^31 − 1.
    let n = 70_000;
    let model = FusedModel {
        arch: "wide".into(),
        input_shape: [7, 100, 100],
        num_classes: 2,
        normalization: Normalization {
            mean: vec![0.0; 7],
            std: vec![1.0; 7],
        },
        layers: vec![
            FusedLayer::Flatten,
            FusedLayer::Linear {
                in_features: n,
                out_features: 2,
                weight: vec![1.0; 2 * n],
                bias: vec![0.0, 0.5],
            },
        ],
        embedding_layer: 0,
    };
    let lowering = lower(&model);
    let mut rng = Rng::new(9);
    let samples: Vec<f32> = (0..2 * n).map(|_| rng.uniform() as f32).collect();
    let ranges = calibrate(&model, &lowering, &samples, RangeMethod::MinMax, false).unwrap();
    let Err(err) = to_int8(&model, &lowering, &ranges).unwrap().encode() else {
        panic!("a layer that can overflow int32 was accepted");
    };
    let msg = format!("{err:#}");
    assert_eq!(
        msg,
        "cannot export arch layer 1 Linear(70000→2) (core layer 1, linear_s8): layer 1: a \
         layer's int32 accumulator could overflow for some input"
    );
}
