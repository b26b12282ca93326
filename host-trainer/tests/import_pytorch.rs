//! `--import` of real PyTorch models: `fixtures/pytorch_import/make.py` defines MLPerf Tiny's
//! ResNet-8 (4 base filters, 1×12×12) and DS-CNN (1×12×10) as a PyTorch user writes them
//! (`nn.Module`s with TF-"same" padding, BatchNorm with non-trivial running statistics), saves
//! their `state_dict` and their eval-mode logits on 8 random inputs. The trainer must load those
//! files by name, compute the same logits, and the exported f32 model (BatchNorm folded) must
//! compute them through the core too.

use std::path::PathBuf;

use denoiserep_core::Model as CoreModel;
use denoiserep_trainer::arch::Arch;
use denoiserep_trainer::data::Normalization;
use denoiserep_trainer::export::to_f32;
use denoiserep_trainer::model::{Grads, Mode, Model};
use denoiserep_trainer::run::read_tensors;
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pytorch_import")
        .join(name)
}

/// Largest |a − b| relative to the largest |b|.
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).abs().max().double_value(&[]);
    d / b.abs().max().double_value(&[]).max(1e-30)
}

/// The imported model, its expected input and logits.
fn imported(name: &str, spec: &str, shape: [usize; 3]) -> (Model, Tensor, Tensor) {
    let arch = Arch::parse(spec, shape, 10).unwrap();
    let norm = Normalization {
        mean: vec![0.0; shape[0]],
        std: vec![1.0; shape[0]],
    };
    let mut model = Model::new(arch, norm, Device::Cpu);
    let weights = fixture(&format!("{name}.safetensors"));
    let tensors = read_tensors(&weights).unwrap();
    model
        .load_backbone(&tensors, &weights.display().to_string())
        .unwrap();
    let expected = read_tensors(&fixture(&format!("{name}.expected.safetensors"))).unwrap();
    (
        model,
        expected["input"].shallow_clone(),
        expected["logits"].shallow_clone(),
    )
}

fn check(name: &str, spec: &str, shape: [usize; 3]) {
    let (model, x, want) = imported(name, spec, shape);
    let got = tch::no_grad(|| model.forward(&x, Mode::Plain, Grads::NONE, false)).logits;
    let d = rel_diff(&got, &want);
    assert!(
        d < 1e-5,
        "{name}: trainer logits differ from PyTorch's by {d:e} (relative)"
    );
    // Not a tautology: the logits vary across samples and classes.
    assert!(
        want.std(true).double_value(&[]) > 1e-3,
        "{name}: degenerate fixture"
    );

    let bytes = to_f32(&model.fused().unwrap()).unwrap().encode().unwrap();
    let core = CoreModel::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; core.arena_size()];
    let flat = Vec::<f32>::try_from(x.flatten(0, -1)).unwrap();
    let mut logits = Vec::new();
    for sample in flat.chunks_exact(core.input_len()) {
        let out = core.run(sample, &mut arena).unwrap();
        logits.extend((0..out.logits.len()).map(|i| out.logits.get_f32(i).unwrap()));
    }
    let got = Tensor::from_slice(&logits).view([x.size()[0], -1]);
    let d = rel_diff(&got, &want.to_kind(Kind::Float));
    assert!(
        d < 1e-4,
        "{name}: the core's logits differ from PyTorch's by {d:e} (relative)"
    );
}

#[test]
fn pytorch_resnet8_imports_and_runs_through_the_core() {
    check("resnet8-4", "resnet8:4", [1, 12, 12]);
}

#[test]
fn pytorch_ds_cnn_imports_and_runs_through_the_core() {
    check("ds-cnn", "ds-cnn", [1, 12, 10]);
}

/// A state_dict with a missing shortcut (a user's ResNet without projection) is refused with
/// the tensor's name and expected shape.
#[test]
fn a_mismatched_state_dict_is_refused_by_name() {
    let arch = Arch::parse("resnet8:4", [1, 12, 12], 10).unwrap();
    let norm = Normalization {
        mean: vec![0.0],
        std: vec![1.0],
    };
    let mut model = Model::new(arch, norm, Device::Cpu);
    let mut tensors = read_tensors(&fixture("resnet8-4.safetensors")).unwrap();
    tensors.remove("layer2.0.shortcut.weight");
    let e = model
        .load_backbone(&tensors, "w.safetensors")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer2.0.shortcut.weight") && e.contains("[8, 4, 1, 1]"),
        "{e}"
    );
}
