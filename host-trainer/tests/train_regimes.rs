//! Library-level tests of the regimes' parameter-group discipline and of whole-model fusion.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use denoiserep_trainer::data::{synthetic, Normalization, SyntheticSpec};
use denoiserep_trainer::model::{DenoiseSpec, Grads, Mode, Model};
use denoiserep_trainer::schedule::ScheduleSpec;
use denoiserep_trainer::train::{EpochSchedule, LrSchedule, Regime, TrainConfig, Trainer};
use denoiserep_trainer::{Arch, FusedLayer};
use tch::{Device, Kind, Tensor};

/// libtorch's RNG is process-global: tests that train hold this lock so that parallel tests do
/// not interleave their draws (which would make seeded runs differ).
static TORCH_RNG: Mutex<()> = Mutex::new(());

fn rng_lock() -> MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn spec() -> DenoiseSpec {
    DenoiseSpec {
        schedule: ScheduleSpec::default(),
        t_stride: 1,
        t_list: None,
        fuse_noise: None,
    }
}

fn config(regime: Regime, lambda: f64, noise_grad: bool) -> TrainConfig {
    TrainConfig {
        data: "synthetic".into(),
        test_fraction: 0.2,
        data_dir: "data".into(),
        arch: "mlp:16,8".into(),
        regime,
        epochs: 2,
        batch_size: 64,
        labels: None,
        lr: 1e-2,
        lr_schedule: LrSchedule::Constant,
        lambda,
        phase_epochs: 1,
        schedule: EpochSchedule::Plain,
        denoise: spec(),
        denoiser_fit: Default::default(),
        denoiser_lr: None,
        denoiser_precondition: Default::default(),
        noise_grad,
        seed: 3,
        data_seed: 3,
        init: None,
        import: None,
        normal_classes: None,
        augment: Default::default(),
        weight_decay: 0.0,
    }
}

fn trainer(arch: &str, regime: Regime, lambda: f64, noise_grad: bool) -> Trainer {
    let data = synthetic(&SyntheticSpec::default(), 1).unwrap();
    tch::manual_seed(5);
    let arch = Arch::parse(arch, data.shape, data.num_classes).unwrap();
    let mut model = Model::new(
        arch,
        Normalization::from_split(&data.train, data.shape),
        Device::Cpu,
    );
    if regime.has_denoisers() {
        model.add_denoisers(&spec()).unwrap();
    }
    let mut t = Trainer::new(config(regime, lambda, noise_grad), model, &data);
    t.progress = false;
    t
}

fn snapshot(params: Vec<(String, Tensor)>) -> HashMap<String, Tensor> {
    params
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect()
}

/// Names whose tensor differs (bitwise) from the snapshot.
fn changed(before: &HashMap<String, Tensor>, now: Vec<(String, Tensor)>) -> Vec<String> {
    let mut v: Vec<String> = now
        .into_iter()
        .filter(|(n, t)| !before[n].equal(&t.detach()))
        .map(|(n, _)| n)
        .collect();
    v.sort();
    v
}

#[test]
fn label_guided_phase_a_trains_only_denoisers_and_b_only_the_backbone() {
    let _guard = rng_lock();
    for arch in ["mlp:16,8", "cnn:4/8"] {
        let mut t = trainer(arch, Regime::LabelGuided, 0.01, false);
        let (b0, d0) = (
            snapshot(t.model.backbone_params()),
            snapshot(t.model.denoiser_params()),
        );
        assert_eq!(t.run_epoch(0).unwrap().unwrap().phase, "A");
        assert!(
            changed(&b0, t.model.backbone_params()).is_empty(),
            "{arch}: backbone moved in A"
        );
        let moved = changed(&d0, t.model.denoiser_params());
        for d in &t.model.denoisers {
            assert!(
                moved.contains(&format!("denoisers.{}.D", d.layer)),
                "{arch}: D of layer {} fixed in A",
                d.layer
            );
        }
        let (b1, d1) = (
            snapshot(t.model.backbone_params()),
            snapshot(t.model.denoiser_params()),
        );
        assert_eq!(t.run_epoch(1).unwrap().unwrap().phase, "B");
        assert!(
            changed(&d1, t.model.denoiser_params()).is_empty(),
            "{arch}: denoisers moved in B"
        );
        assert_eq!(
            changed(&b1, t.model.backbone_params()).len(),
            t.model.backbone_params().len()
        );
    }
}

#[test]
fn detached_noise_loss_has_no_effect_in_phase_b_and_noise_grad_does() {
    let _guard = rng_lock();
    let run = |lambda: f64, noise_grad: bool| {
        let mut t = trainer("mlp:16,8", Regime::LabelGuided, lambda, noise_grad);
        t.run_epoch(0).unwrap();
        t.run_epoch(1).unwrap();
        snapshot(t.model.backbone_params())
    };
    let (plain, with_noise) = (run(0.0, false), run(1.0, false));
    assert!(
        plain.iter().all(|(n, t)| with_noise[n].equal(t)),
        "detached noise loss changed W"
    );
    let grad = run(1.0, true);
    assert!(
        plain.iter().any(|(n, t)| !grad[n].equal(t)),
        "--noise-grad had no effect"
    );
}

#[test]
fn label_free_keeps_the_backbone_bit_identical() {
    let _guard = rng_lock();
    let mut t = trainer("cnn:4/8", Regime::LabelFree, 0.01, false);
    let b0 = snapshot(t.model.backbone_params());
    t.run_epoch(0).unwrap();
    t.run_epoch(1).unwrap();
    assert!(changed(&b0, t.model.backbone_params()).is_empty());
}

#[test]
fn baseline_trains_and_nonfinite_loss_names_epoch_and_step() {
    let _guard = rng_lock();
    let mut t = trainer("mlp:16,8", Regime::Baseline, 0.01, false);
    let r = t.run_epoch(0).unwrap().unwrap();
    assert!(r.train_loss.is_finite() && r.noise_loss == 0.0);
    let mut bad = trainer("mlp:16,8", Regime::Baseline, 0.01, false);
    bad.cfg.lr = 1e30;
    let e = bad.run_epoch(0).unwrap_err().to_string();
    assert!(e.contains("at epoch 1 step 2"), "{e}");
}

/// Random non-zero denoisers: the fused forward equals the explicit reverse-step forward, and
/// the exported arrays are exactly the fused weights.
#[test]
fn whole_model_fused_equals_unfused_and_export_matches() {
    let _guard = rng_lock();
    for arch in ["mlp:16,8", "cnn:4,6/8"] {
        let mut t = trainer(arch, Regime::LabelGuided, 0.01, false);
        let strong = DenoiseSpec {
            schedule: ScheduleSpec {
                beta_start: 0.05,
                beta_end: 0.2,
                timesteps: 10,
            },
            t_stride: 2,
            t_list: None,
            fuse_noise: Some(9),
        };
        t.model.add_denoisers(&strong).unwrap();
        tch::no_grad(|| {
            for d in &t.model.denoisers {
                d.d_mat.shallow_clone().copy_(&(d.d_mat.randn_like() * 0.3));
                d.d_vec.shallow_clone().copy_(&d.d_vec.randn_like());
            }
        });
        let x = Tensor::randn([5, 1, 8, 8], (Kind::Float, Device::Cpu));
        let (fused, unfused, plain) = tch::no_grad(|| {
            (
                t.model.forward(&x, Mode::Fused, Grads::NONE, false).logits,
                t.model
                    .forward(&x, Mode::Unfused, Grads::NONE, false)
                    .logits,
                t.model.forward(&x, Mode::Plain, Grads::NONE, false).logits,
            )
        });
        let scale = unfused.abs().max().double_value(&[]);
        let err = (&fused - &unfused).abs().max().double_value(&[]) / scale;
        assert!(err < 1e-4, "{arch}: fused vs unfused relative error {err}");
        assert!((&plain - &unfused).abs().max().double_value(&[]) / scale > 1e-2);

        let exported = t.model.fused().unwrap();
        let params = tch::no_grad(|| t.model.layer_params(Mode::Fused, Grads::NONE));
        assert_eq!(exported.nodes.len(), t.model.arch.nodes.len());
        for (node, p) in exported.nodes.iter().zip(&params) {
            let (w, b) = match &node.layer {
                FusedLayer::Linear { weight, bias, .. }
                | FusedLayer::Conv2d { weight, bias, .. } => (weight, bias),
                _ => continue,
            };
            let (pw, pb) = p.as_ref().unwrap();
            assert_eq!(w, &Vec::<f32>::try_from(&pw.flatten(0, -1)).unwrap());
            assert_eq!(b, &Vec::<f32>::try_from(pb).unwrap());
        }
    }
}
