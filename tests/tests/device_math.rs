//! The f32 math of Softmax, GELU and LayerNorm (`libm`, or micromath with the `fast-math`
//! feature, `denoiserep_core::MATH`), host == device in QEMU, on a small token model that holds
//! all three in f32 and, in its int8 version, a LayerNorm island (Dequantize → LayerNorm →
//! Quantize) and a GELU table computed with the core's own f32 GELU.
//!
//! Runs in both builds: plain `cargo test` compares the libm firmware with the libm host;
//! `cargo test -p denoiserep-tests --features fast-math --test device_math` builds the firmware
//! with `--features fast-math` (`device::firmware_elf`) and compares it with the fast-math host.
//! Each run prints the per-element instruction counts of the three ops (docs/benchmarks.md,
//! "fast-math"). A host and a firmware of different math are refused before any comparison
//! (`device::check_math`), which the second test shows without QEMU.

use denoiserep_core::kernels::gelu_f32_one;
use denoiserep_core::quant::{dequantize, quantize};
use denoiserep_core::{Activation, DType, Model, QuantParams, MATH};
use denoiserep_tests::device::{
    check_math, field, field_u64, host_equals_device, report, DeviceRun,
};
use denoiserep_tests::models::{
    choose_quant, quantize_weights, OwnedModel, OwnedOp, OwnedWeights, Rng, SOFTMAX_Q,
};

/// Tokens × dims of the input, the MLP's hidden width, classes, LayerNorm's eps, samples run.
const TOKENS: usize = 16;
const DIM: usize = 32;
const HIDDEN: usize = 64;
const CLASSES: usize = 10;
const EPS: f32 = 1e-5;
const SAMPLES: usize = 4;

/// x [16,32] → Linear 32→32 = a → LayerNorm = h → Linear 32→64 = f → GELU = g → Linear 64→32 = s
/// → Softmax = p → MeanAxis 0 = e [32] (the embedding) → Linear 32→10 = logits.
///
/// int8 (`ranges` = the f32 model's `[lo, hi]` of x, a, h, f, s, logits, in that order): every activation int8,
/// LayerNorm between Dequantize and Quantize, GELU a Lut of `quantize(gelu_f32_one(dequantize(q)))`
/// (the exporter's table, so it follows the core's math), Softmax and MeanAxis int8.
fn model(ranges: Option<&[(f32, f32); 6]>) -> (OwnedModel, [u16; 6]) {
    let q = |i: usize| ranges.map(|r| choose_quant(r[i].0, r[i].1));
    let mut rng = Rng(0xFA57);
    let mut m = OwnedModel::new(
        if ranges.is_some() {
            "math-int8"
        } else {
            "math-f32"
        },
        &[TOKENS, DIM],
        &[0.0],
        &[1.0],
    );
    if let Some(qx) = q(0) {
        m.set_dtype(0, DType::I8(qx));
    }
    let linear = |m: &mut OwnedModel,
                  rng: &mut Rng,
                  x: u16,
                  n_in: usize,
                  n_out: usize,
                  out: Option<QuantParams>| {
        let bound = 1.5 / (n_in as f32).sqrt();
        let (w, b) = (
            rng.vec(n_in * n_out, -bound, bound),
            rng.vec(n_out, -0.2, 0.2),
        );
        let y = m.linear(x, Activation::None, &w, &b);
        if let (Some(qo), DType::I8(qi)) = (out, m.tensors[x as usize].dtype) {
            let OwnedWeights::F32 { w: wf, b: bf } = OwnedWeights::f32(&w, &b) else {
                unreachable!()
            };
            let k = m.nodes.len() - 1;
            m.nodes[k].op = OwnedOp::Linear {
                act: Activation::None,
                w: quantize_weights(&wf, &bf, qi.scale, qo.scale),
            };
            m.set_dtype(y, DType::I8(qo));
        }
        y
    };
    let a = linear(&mut m, &mut rng, 0, DIM, DIM, q(1));
    let (gamma, beta) = (rng.vec(DIM, 0.5, 1.5), rng.vec(DIM, -0.5, 0.5));
    let h = match q(2) {
        None => m.layer_norm(a, EPS, &gamma, &beta),
        Some(qh) => {
            let af = m.dequantize(a);
            let hf = m.layer_norm(af, EPS, &gamma, &beta);
            m.quantize(hf, qh)
        }
    };
    let f = linear(&mut m, &mut rng, h, DIM, HIDDEN, q(3));
    let g = match q(3) {
        None => m.gelu(f),
        Some(qf) => {
            let lo = gelu_f32_one(-0.75);
            let qg = choose_quant(lo, ranges.unwrap()[3].1);
            let table: Vec<i8> = (-128..=127)
                .map(|v: i32| quantize(gelu_f32_one(dequantize(v as i8, qf)), qg))
                .collect();
            m.lut(f, &table, qg)
        }
    };
    let s = linear(&mut m, &mut rng, g, HIDDEN, DIM, q(4));
    let p = m.softmax(s, 1.0);
    let e = m.mean_axis(p, 0);
    if ranges.is_some() {
        m.set_dtype(p, DType::I8(SOFTMAX_Q));
        m.set_dtype(e, DType::I8(SOFTMAX_Q));
    }
    let logits = linear(&mut m, &mut rng, e, DIM, CLASSES, q(5));
    (m.outputs(logits, e), [0, a, h, f, s, logits])
}

/// Inputs: tokens in [−2, 2).
fn samples(seed: u64, n: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    (0..n).map(|_| rng.vec(TOKENS * DIM, -2.0, 2.0)).collect()
}

/// `[lo, hi]` of each of the f32 model's tensors `ids` (x, a, h, f, s, logits) over `inputs`, as the host core runs it.
fn ranges(file: &[u8], ids: &[u16; 6], inputs: &[Vec<f32>]) -> [(f32, f32); 6] {
    let m = Model::from_bytes(file).unwrap();
    let mut arena = vec![0u8; m.arena_size()];
    let mut r = [(f32::INFINITY, f32::NEG_INFINITY); 6];
    for x in inputs {
        for &v in x {
            r[0] = (r[0].0.min(v), r[0].1.max(v));
        }
        m.run_with(x, &mut arena, |step| {
            if let Some(i) = ids.iter().position(|&t| t == step.output_id) {
                let mut v = vec![0.0; step.output.len()];
                step.output.dequantize_into(&mut v).unwrap();
                for v in v {
                    r[i] = (r[i].0.min(v), r[i].1.max(v));
                }
            }
        })
        .unwrap();
    }
    r
}

/// Instructions per output element of every op of `kind` (summed over its `op_total` lines).
fn per_element(run: &DeviceRun, model: &Model<'_>, kind: &str) -> f64 {
    let (mut count, mut elements) = (0u64, 0usize);
    for (line, node) in run.lines_with("op_total=").zip(model.nodes()) {
        if field(line, "kind") == Some(kind) {
            let node = node.unwrap();
            count += field_u64(line, "instructions").unwrap();
            elements += model.tensor(node.output).unwrap().shape.numel().unwrap();
        }
    }
    assert!(elements > 0, "no {kind} op");
    count as f64 / (SAMPLES * elements) as f64
}

#[test]
fn softmax_gelu_layer_norm_host_equals_device_in_this_builds_math() {
    let inputs = samples(1, SAMPLES);
    let (f32_model, ids) = model(None);
    let f32_file = f32_model.encode().unwrap();
    let (int8_model, _) = model(Some(&ranges(&f32_file, &ids, &samples(2, 32))));
    let int8_file = int8_model.encode().unwrap();
    for (what, file, kinds) in [
        (
            "math-f32",
            &f32_file,
            &["layer_norm", "gelu", "softmax"][..],
        ),
        (
            "math-int8",
            &int8_file,
            &["dequantize", "layer_norm", "quantize", "lut", "softmax"][..],
        ),
    ] {
        let what = format!("{what} (math={MATH})");
        let Some(run) = host_equals_device(&what, file, &inputs) else {
            return;
        };
        let model = Model::from_bytes(file).unwrap();
        let costs: Vec<String> = kinds
            .iter()
            .map(|k| format!("{k} {:.1}", per_element(&run, &model, k)))
            .collect();
        report(&format!(
            "{what}: instructions per element: {}",
            costs.join(", ")
        ));
    }
}

#[test]
fn a_firmware_of_other_math_is_refused_before_comparing() {
    let other = if MATH == "fast" { "libm" } else { "fast" };
    let run = |math: &str| DeviceRun {
        exit_code: 0,
        dump: None,
        log: format!("INFO  math={math}\nINFO  board=mps2-an386 unit=instructions\n"),
    };
    check_math("same math", &run(MATH));
    let refused = std::panic::catch_unwind(|| check_math("other math", &run(other)));
    let message = refused.expect_err("a firmware of other math must be refused");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(text.contains("refusing to compare"), "{text}");
    let missing = std::panic::catch_unwind(|| check_math("no math line", &run("")));
    assert!(missing.is_err(), "a log without math= must be refused");
}
