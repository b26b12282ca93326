//! End-to-end: the ViT (`--arch vit:…`) through the `denoiserep` binary on synthetic data —
//! baseline (with `--augment` and `--weight-decay`), label-free (whitened gradient fit and the
//! closed form), label-guided, `--import` of its own `state_dict` (timm's names), then `export`
//! (f32 and int8, both pools) and `infer`: the core's f32 logits are the trainer's fused forward,
//! its int8 logits pick the same class on most samples, and the denoisers cost nothing.

mod common;

use common::{run, stderr, TempDir, DATA};
use denoiserep_core::{DumpHeader, DumpValues};
use denoiserep_trainer::evaluate::to_tensor;
use denoiserep_trainer::model::{Grads, Mode};
use denoiserep_trainer::run::{load_data, load_run_model};
use std::path::Path;
use tch::Device;

const ARCH: &str = "vit:4,16,2,1,2";

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn train(out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The final denoiser diagnostics of a run: one per weighted layer (patch conv, qkv, proj, fc1,
/// fc2, head), each with the fields of `metrics.json`.
fn denoisers(dir: &Path) -> Vec<serde_json::Value> {
    json(&dir.join("metrics.json"))["denoisers"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn vit_trains_in_every_regime_and_exports_to_the_core() {
    let tmp = TempDir::new("vit");
    let base = tmp.path("base");
    let out = train(
        &base,
        &[
            "--data",
            DATA,
            "--arch",
            ARCH,
            "--epochs",
            "8",
            "--lr",
            "3e-3",
            "--augment",
            "shift:1",
            "--weight-decay",
            "0.05",
        ],
    );
    assert!(out.contains("test accuracy"), "{out}");
    let cfg = json(&base.join("config.json"));
    assert_eq!(cfg["arch"]["spec"], "vit:4,16,2,1,2,cls");
    let m = json(&base.join("metrics.json"));
    let acc = m["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{acc}");
    assert_eq!(m["curve"].as_array().unwrap().len(), 8);
    // timm's state_dict names.
    let saved: Vec<String> = tch::Tensor::read_safetensors(base.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for name in [
        "patch_embed.proj.weight",
        "cls_token",
        "pos_embed",
        "blocks.0.norm1.weight",
        "blocks.0.attn.qkv.weight",
        "blocks.0.attn.proj.bias",
        "blocks.0.mlp.fc1.weight",
        "blocks.0.mlp.fc2.bias",
        "norm.bias",
        "head.weight",
    ] {
        assert!(saved.iter().any(|n| n == name), "{name} in {saved:?}");
    }

    // label-free, whitened gradient fit: a denoiser per weighted layer, trained per token.
    let lf = tmp.path("lf");
    train(
        &lf,
        &[
            "--regime",
            "label-free",
            "--init",
            base.to_str().unwrap(),
            "--epochs",
            "2",
        ],
    );
    let d = denoisers(&lf);
    assert_eq!(d.len(), 6);
    for g in &d {
        let (loss, zero) = (
            g["noise_loss"].as_f64().unwrap(),
            g["zero_predictor_loss"].as_f64().unwrap(),
        );
        assert!(loss.is_finite() && loss < zero, "{g}");
    }
    // label-free keeps the backbone: same clean top-1 within the denoisers' effect.
    let lf_acc = json(&lf.join("metrics.json"))["test_accuracy"]
        .as_f64()
        .unwrap();
    assert!((0.0..=1.0).contains(&lf_acc));

    // The closed form: every layer at its L2 optimum.
    let cf = tmp.path("cf");
    train(
        &cf,
        &[
            "--regime",
            "label-free",
            "--init",
            base.to_str().unwrap(),
            "--denoiser-fit",
            "closed-form",
            "--epochs",
            "1",
        ],
    );
    for g in denoisers(&cf) {
        let (l2, opt) = (
            g["noise_l2"].as_f64().unwrap(),
            g["optimal_l2"].as_f64().unwrap(),
        );
        assert!((l2 - opt).abs() <= 1e-4 * opt.max(1e-3), "{g}");
    }

    // label-guided: A (denoisers) then B (backbone through the fused weights).
    let lg = tmp.path("lg");
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
    let curve = json(&lg.join("metrics.json"))["curve"].clone();
    let phases: Vec<&str> = curve
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["A", "B"]);

    // --import of the saved state_dict (timm's names) gives the same model.
    let imp = tmp.path("imp");
    train(
        &imp,
        &[
            "--data",
            DATA,
            "--arch",
            ARCH,
            "--import",
            base.join("model.safetensors").to_str().unwrap(),
            "--regime",
            "label-free",
            "--denoiser-fit",
            "closed-form",
            "--epochs",
            "1",
        ],
    );
    assert_eq!(
        json(&imp.join("metrics.json"))["denoisers"],
        json(&cf.join("metrics.json"))["denoisers"]
    );

    check_export(&tmp, &lf);
}

/// Logits of a dump: per sample, as f32 (int8 dequantized).
fn dump_logits(path: &Path) -> Vec<Vec<f32>> {
    let dump = std::fs::read(path).unwrap();
    let h = DumpHeader::decode(&dump).unwrap();
    let (n, l, e) = (
        h.n_samples as usize,
        h.logits_len as usize,
        h.embedding_len as usize,
    );
    let body = &dump[DumpHeader::LEN..];
    assert_eq!(body.len(), n * h.record_len());
    body.chunks(h.record_len())
        .map(|r| match h.values {
            DumpValues::F32 => r[..4 * l]
                .chunks(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            DumpValues::I8 { logits, .. } => r[..l]
                .iter()
                .map(|&q| logits.scale * (i32::from(q as i8) - i32::from(logits.zero_point)) as f32)
                .collect(),
        })
        .inspect(|_| assert!(e > 0))
        .collect()
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

/// `export` f32 and int8 of the run `dir` (with denoisers), then `infer` with `--dump`: the
/// reports show +0 parameters, MACs, file and arena bytes against the baseline and count every
/// parameter of the backbone; the core's f32 logits on the 64 test samples are the trainer's
/// fused forward within 1e-5 (relative to each sample's largest logit); the int8 model picks
/// the f32 model's class on ≥ 90 % of them. `--format onnx` writes a file that `import`
/// reads back as the same arch.
fn check_export(tmp: &TempDir, dir: &Path) {
    let (cfg, model) = load_run_model(dir, Device::Cpu).unwrap();
    let data = load_data(&cfg.train).unwrap();
    let x = to_tensor(&data.test.x, data.shape, &model.normalization, Device::Cpu);
    let want = tch::no_grad(|| model.forward(&x, Mode::Fused, Grads::NONE, false));
    let want: Vec<Vec<f32>> = (0..data.test.len() as i64)
        .map(|i| Vec::<f32>::try_from(&want.logits.get(i)).unwrap())
        .collect();
    let params = cfg.arch.param_counts().trainable as u64;
    let mut argmaxes = Vec::new();
    for precision in ["f32", "int8"] {
        let file = tmp.path(&format!("{}-{precision}.dnrp", cfg.arch.spec));
        ok(&[
            "export",
            "--run",
            dir.to_str().unwrap(),
            "--precision",
            precision,
            "--calib",
            "200",
            "--out",
            file.to_str().unwrap(),
        ]);
        let report = json(&file.with_extension("json"));
        for k in ["parameters", "macs", "file_bytes", "arena_bytes"] {
            assert_eq!(report["denoiserep_overhead"][k], 0, "{precision} {k}");
        }
        assert_eq!(report["parameters"].as_u64(), Some(params), "{precision}");
        let kinds: Vec<&str> = report["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["kind"].as_str().unwrap())
            .collect();
        for k in [
            "conv2d",
            "transpose",
            "layer_norm",
            "batch_matmul",
            "softmax",
        ] {
            assert!(kinds.contains(&k), "{precision}: no {k} in {kinds:?}");
        }
        let dump = tmp.path(&format!("{}-{precision}.dump", cfg.arch.spec));
        ok(&[
            "infer",
            "--model",
            file.to_str().unwrap(),
            "--data",
            DATA,
            "--no-retrieval",
            "--dump",
            dump.to_str().unwrap(),
        ]);
        let got = dump_logits(&dump);
        assert_eq!(got.len(), want.len());
        if precision == "f32" {
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
                let err = g.iter().zip(w).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
                assert!(
                    err < 1e-5,
                    "sample {i}: core f32 vs trainer {err:e} relative"
                );
            }
        }
        argmaxes.push(got.iter().map(|l| argmax(l)).collect::<Vec<_>>());
    }
    // ONNX: the fused f32 model; imported back, it is the same arch (the values are checked by
    // tests/tests/onnx_import.rs and onnx_tract.rs).
    let onnx = tmp.path(&format!("{}.onnx", cfg.arch.spec));
    ok(&[
        "export",
        "--run",
        dir.to_str().unwrap(),
        "--precision",
        "f32",
        "--format",
        "onnx",
        "--out",
        onnx.to_str().unwrap(),
    ]);
    let back = tmp.path(&format!("{}-from-onnx", cfg.arch.spec));
    let out = ok(&[
        "import",
        onnx.to_str().unwrap(),
        "--out",
        back.to_str().unwrap(),
        "--data",
        DATA,
        "--device",
        "cpu",
    ]);
    assert!(
        out.contains(&format!("imported as {} ", cfg.arch.spec)),
        "{out}"
    );
    let agree = argmaxes[0]
        .iter()
        .zip(&argmaxes[1])
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        agree * 10 >= argmaxes[0].len() * 9,
        "{}: int8 agrees with f32 on {agree}/{} test samples",
        cfg.arch.spec,
        argmaxes[0].len()
    );
}

/// The mean-pool ViT (no class token) exports and runs like the class-token one.
#[test]
fn mean_pool_vit_exports_to_the_core() {
    let tmp = TempDir::new("vit-mean");
    let base = tmp.path("base");
    train(
        &base,
        &[
            "--data",
            DATA,
            "--arch",
            "vit:4,16,4,1,2,mean",
            "--epochs",
            "2",
            "--lr",
            "3e-3",
        ],
    );
    let lf = tmp.path("lf");
    train(
        &lf,
        &[
            "--regime",
            "label-free",
            "--init",
            base.to_str().unwrap(),
            "--denoiser-fit",
            "closed-form",
            "--epochs",
            "1",
        ],
    );
    check_export(&tmp, &lf);
}

#[test]
fn bad_vit_specs_are_one_line_errors() {
    let tmp = TempDir::new("vit-bad");
    for (arch, needle) in [
        ("vit:4,16,3,1,2", "DIM 16 is not divisible by HEADS 3"),
        ("vit:3,16,2,1,2", "PATCH 3 does not divide the 8×8 input"),
        ("vit:4,16,2,1,2,max", "POOL ('max') is not cls or mean"),
    ] {
        let o = run(&[
            "train",
            "--data",
            DATA,
            "--arch",
            arch,
            "--out",
            tmp.path("x").to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{arch}: {err}");
        assert!(err.contains(needle), "{arch}: {err}");
        assert!(!tmp.path("x").exists());
    }
}
