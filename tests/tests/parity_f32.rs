//! f32 parity on trained DenoiseRep models (synthetic data, mlp and cnn):
//!
//! * the unfused forward (explicit reverse step, then the layer) vs the fused forward, in tch:
//!   ≤ 1e-5 relative (max |difference| / max |reference| over the test split);
//! * the fused forward in tch vs the exported f32 model run by `denoiserep-core`: every logit and
//!   embedding value within 1e-4 relative or 1e-5 absolute, the same argmax on ≥ 99.9% of the
//!   test split.

use denoiserep_core::{Model, TensorData};
use denoiserep_tests::{train, TempDir};
use denoiserep_trainer::evaluate::to_tensor;
use denoiserep_trainer::export::to_f32;
use denoiserep_trainer::model::{Grads, Mode};
use denoiserep_trainer::run::{load_data, load_run_model};
use tch::{Device, Tensor};

const DATA: &str = "synthetic:1,12,12,6,1024,1000";

fn rel_err(a: &Tensor, reference: &Tensor) -> f64 {
    (a - reference).abs().max().double_value(&[]) / reference.abs().max().double_value(&[])
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    let n = t.size()[0];
    (0..n)
        .map(|i| Vec::<f32>::try_from(&t.get(i).flatten(0, -1)).unwrap())
        .collect()
}

fn f32s(data: TensorData<'_>) -> &[f32] {
    match data {
        TensorData::F32(v) => v,
        TensorData::I8 { .. } => panic!("an f32 model returned int8"),
    }
}

fn close(core: &[f32], tch: &[f32], what: &str, sample: usize) {
    assert_eq!(core.len(), tch.len(), "{what} length, sample {sample}");
    for (j, (&a, &b)) in core.iter().zip(tch).enumerate() {
        let diff = (a - b).abs();
        assert!(
            diff <= 1e-5 || diff <= 1e-4 * b.abs(),
            "{what}[{j}] of sample {sample}: core {a} vs tch {b}"
        );
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

fn check(arch: &str) {
    let tmp = TempDir::new(&format!(
        "parity-f32-{}",
        arch.replace([':', ',', '/'], "_")
    ));
    let (base, lg) = (tmp.path("base"), tmp.path("lg"));
    train(
        &base,
        &[
            "--data", DATA, "--arch", arch, "--epochs", "2", "--seed", "1",
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
    let (cfg, model) = load_run_model(&lg, Device::Cpu).unwrap();
    let data = load_data(&cfg.train).unwrap();
    let x = to_tensor(&data.test.x, data.shape, &model.normalization, Device::Cpu);
    let (fused, unfused, plain) = tch::no_grad(|| {
        (
            model.forward(&x, Mode::Fused, Grads::NONE, false),
            model.forward(&x, Mode::Unfused, Grads::NONE, false),
            model.forward(&x, Mode::Plain, Grads::NONE, false),
        )
    });

    // Unfused vs fused, in tch.
    let e_logits = rel_err(&fused.logits, &unfused.logits);
    let e_emb = rel_err(&fused.embedding, &unfused.embedding);
    assert!(
        e_logits <= 1e-5,
        "{arch}: fused vs unfused logits {e_logits:e}"
    );
    assert!(
        e_emb <= 1e-5,
        "{arch}: fused vs unfused embedding {e_emb:e}"
    );
    // The trained denoisers change the function, so the comparison above is not vacuous.
    let e_plain = rel_err(&plain.logits, &unfused.logits);
    assert!(
        e_plain > 1e-4,
        "{arch}: denoisers had no effect ({e_plain:e})"
    );

    // tch fused vs core f32.
    let bytes = to_f32(&model.fused().unwrap()).unwrap().encode().unwrap();
    let core = Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; core.arena_size()];
    let (tch_logits, tch_emb) = (rows(&fused.logits), rows(&fused.embedding));
    let n = data.test.len();
    let mut same_argmax = 0;
    for i in 0..n {
        let out = core.run(data.test.sample(i), &mut arena).unwrap();
        let (logits, emb) = (f32s(out.logits.data), f32s(out.embedding.data));
        close(logits, &tch_logits[i], "logits", i);
        close(emb, &tch_emb[i], "embedding", i);
        same_argmax += usize::from(argmax(logits) == argmax(&tch_logits[i]));
    }
    assert!(
        same_argmax as f64 >= 0.999 * n as f64,
        "{arch}: same argmax on {same_argmax}/{n}"
    );
}

#[test]
fn mlp_fused_tch_core_and_unfused_agree() {
    check("mlp:48,24");
}

#[test]
fn cnn_fused_tch_core_and_unfused_agree() {
    check("cnn:4,8/16");
}
