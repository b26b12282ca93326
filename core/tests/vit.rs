//! The tiny-ViT ops through the whole engine (wire format, `prepare`, planner, interpreter):
//!
//! - one ViT block (4 tokens × 8 dims, 2 heads; `common::vit_model`) in f32 against an f64
//!   forward written here, and its int8 version against the kernels run one by one and against
//!   the f32 model; both in an exact arena;
//! - every new op alone in a graph against the naive loops of `common::eval_naive` (f32 within a
//!   tolerance, int8 exactly), with random shapes and parameters;
//! - Linear over rows, Add of token matrices and Softmax over the rows of `[H, N, N]`;
//! - wire round trips, typed `prepare` errors naming the op, and random shapes / parameters
//!   through decode + prepare + run without a panic.

mod common;

use common::{
    bits, eval_kernels, eval_naive, gelu_f64, vit_inputs, vit_model, vit_models, OwnedModel,
    OwnedOp, Rng, Vals, VitWeights, SOFTMAX_Q, VIT_CLASSES, VIT_DIM, VIT_EPS, VIT_HEADS,
    VIT_HEAD_DIM, VIT_HIDDEN, VIT_PATCH, VIT_TOKENS,
};
use denoiserep_core::format::graph::{Op, Perm};
use denoiserep_core::format::Body;
use denoiserep_core::quant::{dequantize, quantize};
use denoiserep_core::{
    encode, Activation, DType, Error, Graph, Model, OpKind, QuantParams, TensorData, ARENA_ALIGN,
};
use proptest::prelude::*;

fn qp(scale: f32, zero_point: i8) -> QuantParams {
    QuantParams { scale, zero_point }
}

/// Runs `model` on `input` with an arena of exactly `len` bytes at an address ≡ `residue` (mod 4).
fn run_at(model: &Model<'_>, input: &[f32], residue: usize, len: usize) -> Result<Vals, Error> {
    let mut buf = vec![0xA5u8; len + 8];
    let base = buf.as_ptr() as usize;
    let o = (residue + 4 - base % 4) % 4;
    let out = model.run(input, &mut buf[o..o + len])?;
    Ok(Vals::of(&out.logits.data))
}

/// `arena_size()` bytes at the worst alignment and `plan_size()` bytes 4-aligned run (same
/// bits); one byte less fails with `ArenaTooSmall`.
fn check_exact_arena(bytes: &[u8], input: &[f32]) {
    let model = Model::from_bytes(bytes).unwrap();
    let (a, p) = (model.arena_size(), model.plan_size());
    assert_eq!(a, p + ARENA_ALIGN - 1);
    let want = run_at(&model, input, 1, a).expect("arena_size() at address ≡ 1 mod 4");
    for residue in 0..4 {
        assert_eq!(run_at(&model, input, residue, a).unwrap(), want);
    }
    assert_eq!(run_at(&model, input, 0, p).unwrap(), want);
    assert_eq!(
        run_at(&model, input, 1, a - 1).unwrap_err(),
        Error::ArenaTooSmall
    );
    assert_eq!(
        run_at(&model, input, 0, p - 1).unwrap_err(),
        Error::ArenaTooSmall
    );
}

// ---------------------------------------------------------------------------------------------
// The f64 forward of the ViT block, written from the math (no f32 rounding between ops).

fn linear64(x: &[f64], (w, b): &(Vec<f32>, Vec<f32>), n_in: usize) -> Vec<f64> {
    let n_out = b.len();
    x.chunks(n_in)
        .flat_map(|row| {
            (0..n_out).map(move |o| {
                b[o] as f64
                    + (0..n_in)
                        .map(|i| w[o * n_in + i] as f64 * row[i])
                        .sum::<f64>()
            })
        })
        .collect()
}

fn layer_norm64(x: &[f64], (g, b): &(Vec<f32>, Vec<f32>)) -> Vec<f64> {
    let d = g.len();
    x.chunks(d)
        .flat_map(|r| {
            let mu = r.iter().sum::<f64>() / d as f64;
            let var = r.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / d as f64;
            let sd = (var + VIT_EPS as f64).sqrt();
            (0..d).map(move |j| (r[j] - mu) / sd * g[j] as f64 + b[j] as f64)
        })
        .collect()
}

/// (logits, embedding) of the ViT block in f64.
fn vit_f64(w: &VitWeights, input: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let (n, d, dh) = (VIT_TOKENS, VIT_DIM, VIT_HEAD_DIM);
    let x: Vec<f64> = input.iter().map(|&v| v as f64).collect();
    let patches = linear64(&x, &w.patch, VIT_PATCH);
    let mut x0: Vec<f64> = w.cls.iter().map(|&v| v as f64).collect();
    x0.extend(patches);
    for (v, &p) in x0.iter_mut().zip(&w.pos) {
        *v += p as f64;
    }
    let h1 = layer_norm64(&x0, &w.ln1);
    let (q, k, v) = (
        linear64(&h1, &w.q, d),
        linear64(&h1, &w.k, d),
        linear64(&h1, &w.v, d),
    );
    let alpha = 1.0 / (dh as f64).sqrt();
    let mut merged = vec![0.0; n * d];
    for h in 0..VIT_HEADS {
        for i in 0..n {
            let s: Vec<f64> = (0..n)
                .map(|j| {
                    alpha
                        * (0..dh)
                            .map(|t| q[i * d + h * dh + t] * k[j * d + h * dh + t])
                            .sum::<f64>()
                })
                .collect();
            let mx = s.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let e: Vec<f64> = s.iter().map(|v| (v - mx).exp()).collect();
            let z: f64 = e.iter().sum();
            for t in 0..dh {
                merged[i * d + h * dh + t] = (0..n).map(|j| e[j] / z * v[j * d + h * dh + t]).sum();
            }
        }
    }
    let a = linear64(&merged, &w.proj, d);
    let r1: Vec<f64> = x0.iter().zip(&a).map(|(x, y)| x + y).collect();
    let h2 = layer_norm64(&r1, &w.ln2);
    let g: Vec<f64> = linear64(&h2, &w.fc1, d).into_iter().map(gelu_f64).collect();
    let f2 = linear64(&g, &w.fc2, VIT_HIDDEN);
    let r2: Vec<f64> = r1.iter().zip(&f2).map(|(x, y)| x + y).collect();
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| r2[i * d + j]).sum::<f64>() / n as f64)
        .collect();
    let logits = linear64(&r2[..d], &w.head, d);
    (logits, mean)
}

/// `max |got − want| / max(max |want|, 1)`.
fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().fold(1.0f64, |a, v| a.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs())
        .fold(0.0, f64::max)
        / scale
}

#[test]
fn vit_block_f32_matches_an_f64_forward() {
    for seed in [1u64, 2, 3] {
        let w = VitWeights::new(seed);
        let (m, _) = vit_model(&w, None);
        let bytes = m.encode().unwrap();
        let model = Model::from_bytes(&bytes).unwrap();
        assert_eq!(model.num_classes(), VIT_CLASSES);
        let mut worst = 0.0f64;
        for input in vit_inputs(seed, 8) {
            let (logits, emb) = common::run_f32(&model, &input);
            let (want_l, want_e) = vit_f64(&w, &input);
            worst = worst
                .max(rel_err(&logits, &want_l))
                .max(rel_err(&emb, &want_e));
        }
        eprintln!("seed {seed}: worst relative error {worst:e}");
        assert!(worst <= 1e-5, "seed {seed}: relative error {worst:e}");
    }
}

#[test]
fn the_f64_forward_is_not_vacuous() {
    let w = VitWeights::new(1);
    let mut broken = w.clone();
    broken.k.0[3] += 0.01; // attention scores only
    let input = &vit_inputs(1, 1)[0];
    let (m, _) = vit_model(&broken, None);
    let bytes = m.encode().unwrap();
    let (logits, _) = common::run_f32(&Model::from_bytes(&bytes).unwrap(), input);
    assert!(rel_err(&logits, &vit_f64(&w, input).0) > 1e-5);
}

#[test]
fn vit_block_f32_equals_the_kernels_op_by_op_and_the_naive_loops() {
    let (m, _) = vit_models(4);
    let bytes = m.encode().unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    for input in vit_inputs(5, 4) {
        let want = eval_kernels(&m, &input);
        let naive = eval_naive(&m, &input);
        let mut arena = vec![0u8; model.arena_size()];
        let mut n = 0;
        model
            .run_with(&input, &mut arena, |s| {
                let got = Vals::of(&s.output.data);
                let w = want[s.output_id as usize].as_ref().unwrap();
                assert_eq!(
                    bits(got.f32()),
                    bits(w.f32()),
                    "op {} ({})",
                    s.index,
                    s.kind
                );
                let nv = naive[s.output_id as usize].as_ref().unwrap();
                for (a, b) in got.f32().iter().zip(nv.f32()) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "op {}: {a} vs {b}",
                        s.index
                    );
                }
                n += 1;
            })
            .unwrap();
        assert_eq!(n, m.nodes.len());
    }
}

#[test]
fn vit_block_int8_equals_the_kernels_and_tracks_f32() {
    let (f, q) = vit_models(6);
    let (fb, qb) = (f.encode().unwrap(), q.encode().unwrap());
    let (fm, qm) = (
        Model::from_bytes(&fb).unwrap(),
        Model::from_bytes(&qb).unwrap(),
    );
    let kinds: Vec<OpKind> = qm.nodes().map(|n| n.unwrap().op.kind()).collect();
    for k in [
        OpKind::Quantize,
        OpKind::Dequantize,
        OpKind::LayerNorm,
        OpKind::Lut,
        OpKind::BatchMatMul,
        OpKind::Transpose,
        OpKind::Concat,
        OpKind::MeanAxis,
        OpKind::Slice,
        OpKind::Softmax,
    ] {
        assert!(kinds.contains(&k), "the int8 ViT has no {k}");
    }
    let mut worst = 0.0f32;
    for input in vit_inputs(7, 16) {
        let want = eval_kernels(&q, &input);
        let mut arena = vec![0u8; qm.arena_size()];
        let mut steps = 0;
        let out = qm
            .run_with(&input, &mut arena, |s| {
                let w = want[s.output_id as usize].as_ref().unwrap();
                assert_eq!(&Vals::of(&s.output.data), w, "op {} ({})", s.index, s.kind);
                steps += 1;
            })
            .unwrap();
        assert_eq!(steps, q.nodes.len());
        let TensorData::I8 { quant, .. } = out.logits.data else {
            panic!("int8 logits")
        };
        let mut ql = vec![0.0; VIT_CLASSES];
        out.logits.dequantize_into(&mut ql).unwrap();
        let (fl, _) = common::run_f32(&fm, &input);
        for (a, b) in fl.iter().zip(&ql) {
            worst = worst.max((a - b).abs() / quant.scale);
        }
    }
    // A dozen quantized ops between input and logits: a few output steps of error.
    eprintln!("int8 logits at most {worst} output steps from f32");
    assert!(worst <= 12.0, "int8 logits {worst} steps from f32");
}

#[test]
fn vit_blocks_run_in_exactly_their_arena() {
    let (f, q) = vit_models(8);
    let input = &vit_inputs(9, 1)[0];
    for m in [&f, &q] {
        check_exact_arena(&m.encode().unwrap(), input);
    }
}

#[test]
fn outputs_never_share_bytes_with_inputs_except_in_place_gelu() {
    let (f, q) = vit_models(10);
    for m in [&f, &q] {
        let bytes = m.encode().unwrap();
        let model = Model::from_bytes(&bytes).unwrap();
        let range = |id: u16| {
            let t = model.tensor(id).unwrap();
            let start = model.tensor_offset(id).unwrap();
            let len = t.shape.numel().unwrap() * t.dtype.size();
            start..start + len
        };
        for node in model.nodes() {
            let node = node.unwrap();
            let out = range(node.output);
            for &i in node.inputs.ids() {
                let r = range(i);
                let overlap = r.start < out.end && out.start < r.end;
                match node.op {
                    Op::Reshape | Op::Gelu | Op::Activation(_) => {}
                    _ => assert!(!overlap, "{}: output overlaps input {i}", node.op.kind()),
                }
            }
        }
        // f32: the Gelu input (fc1's output) dies there, so Gelu runs in place.
        if let Some(gelu) = m.nodes.iter().find(|n| n.op == OwnedOp::Gelu) {
            assert_eq!(
                model.tensor_offset(gelu.output),
                model.tensor_offset(gelu.inputs[0])
            );
        }
    }
}

#[test]
fn vit_models_round_trip_through_the_wire_format() {
    let (f, q) = vit_models(11);
    for m in [f, q] {
        let bytes = m.encode().unwrap();
        let body = Body::read(&bytes).unwrap();
        let tensors: Vec<_> = body.tensors().map(Result::unwrap).collect();
        let nodes: Vec<_> = body.nodes().map(Result::unwrap).collect();
        m.with_graph(|g| {
            assert_eq!(&tensors[..], g.tensors);
            assert_eq!(&nodes[..], g.nodes);
        });
        let mut out = vec![0u8; bytes.len()];
        let again = Graph {
            info: body.info,
            tensors: &tensors,
            nodes: &nodes,
        };
        assert_eq!(encode(&again, &mut out), Ok(bytes.len()));
        assert_eq!(out, bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// Wire bytes of the new ops.

/// The encoded file of `m`; its last op is at the end. The plain serde path (`raw`, shortest
/// pads before the tensor payloads) decodes to the same ops.
fn op_bytes(m: &OwnedModel) -> Vec<u8> {
    let bytes = m.encode().unwrap();
    let raw = m.raw();
    let (a, b) = (Body::read(&raw).unwrap(), Body::read(&bytes).unwrap());
    assert!(a
        .nodes()
        .map(Result::unwrap)
        .eq(b.nodes().map(Result::unwrap)));
    bytes
}

#[test]
fn new_ops_have_the_documented_wire_bytes() {
    // Transpose [2,3] → [3,2]: tag 15, 1 input (t0), output t1, perm = seq of u8 [1, 0].
    let mut m = OwnedModel::new("t", &[2, 3], &[0.0], &[1.0]);
    let y = m.transpose(0, &[1, 0]);
    let m = m.outputs(y, y);
    assert!(op_bytes(&m).ends_with(&[15, 1, 0, 1, 2, 1, 0]));
    // Slice: tag 20, axis u8, start and len varints.
    let mut m = OwnedModel::new("s", &[4, 8], &[0.0], &[1.0]);
    let y = m.slice(0, 0, 2, 1);
    let m = m.outputs(y, y);
    assert!(op_bytes(&m).ends_with(&[20, 1, 0, 1, 0, 2, 1]));
    // BatchMatMul: tag 14, adj_y as one byte, alpha f32 LE.
    let mut m = OwnedModel::new("b", &[2, 2], &[0.0], &[1.0]);
    let y = m.batch_matmul(0, 0, true, 0.5);
    let m = m.outputs(y, y);
    let mut want = vec![14, 2, 0, 0, 1, 1];
    want.extend(0.5f32.to_le_bytes());
    assert!(op_bytes(&m).ends_with(&want));
    // Concat of 3 inputs: tag 18, input count 3, axis.
    let mut m = OwnedModel::new("c", &[2, 2], &[0.0], &[1.0]);
    let y = m.concat(&[0, 0, 0], 1);
    let m = m.outputs(y, y);
    assert!(op_bytes(&m).ends_with(&[18, 3, 0, 0, 0, 1, 1]));
    // Unit ops carry no params: Gelu (12), Quantize (16), Dequantize (17).
    let mut m = OwnedModel::new("g", &[2], &[0.0], &[1.0]);
    let g = m.gelu(0);
    let qz = m.quantize(g, qp(0.1, 0));
    let d = m.dequantize(qz);
    let m = m.outputs(d, d);
    assert!(op_bytes(&m).ends_with(&[17, 1, 2, 3]));
}

#[test]
fn a_permutation_longer_than_four_axes_is_a_decode_error() {
    let mut m = OwnedModel::new("t", &[2, 3], &[0.0], &[1.0]);
    let y = m.transpose(0, &[1, 0]);
    let m = m.outputs(y, y);
    let raw = m.raw();
    let body = &raw[16..];
    // The perm is the body's last 3 bytes: length 2, then 1, 0. Claim 5 entries.
    let mut b = body[..body.len() - 3].to_vec();
    b.extend([5, 1, 0, 2, 3, 4]);
    assert_eq!(
        Model::from_bytes(&common::file_with_body(&b)).unwrap_err(),
        Error::DecodeBadValue
    );
    assert_eq!(Perm::new(&[0, 1, 2, 3, 4]), None);
    assert_eq!(Perm::new(&[2, 0, 1]).unwrap().axes(), &[2, 0, 1]);
}

// ---------------------------------------------------------------------------------------------
// Linear over rows, Add of tokens, Softmax over the rows of [H, N, N].

#[test]
fn linear_over_rows_is_the_vector_linear_on_each_row_bit_for_bit() {
    let mut rng = Rng(20);
    let (n, n_in, n_out) = (5, 13, 7);
    let (w, b) = (rng.vec(n_in * n_out, -1.0, 1.0), rng.vec(n_out, -0.5, 0.5));
    let mut rows = OwnedModel::new("rows", &[n, n_in], &[0.0], &[1.0]);
    let y = rows.linear(0, Activation::Relu, &w, &b);
    let rows = rows.outputs(y, y);
    let mut vector = OwnedModel::new("vector", &[n_in], &[0.0], &[1.0]);
    let y = vector.linear(0, Activation::Relu, &w, &b);
    let vector = vector.outputs(y, y);
    let calib: Vec<Vec<f32>> = (0..8).map(|_| rng.vec(n * n_in, -1.0, 1.0)).collect();
    // int8: the same quantization for both (from the rows model's calibration).
    let q_rows = common::quantize_model(&rows, &calib);
    let mut q_vector = vector.clone();
    q_vector.tensors[0].dtype = q_rows.tensors[0].dtype;
    q_vector.tensors[1].dtype = q_rows.tensors[1].dtype;
    q_vector.nodes[0].op = q_rows.nodes[0].op.clone();
    for (rm, vm) in [(&rows, &vector), (&q_rows, &q_vector)] {
        let (rb, vb) = (rm.encode().unwrap(), vm.encode().unwrap());
        let (rmod, vmod) = (
            Model::from_bytes(&rb).unwrap(),
            Model::from_bytes(&vb).unwrap(),
        );
        for x in &calib {
            let (all, _) = common::run_vals(&rmod, x);
            for (r, xr) in x.chunks(n_in).enumerate() {
                let (one, _) = common::run_vals(&vmod, xr);
                let want = match (&all, &one) {
                    (Vals::F32(a), Vals::F32(o)) => bits(&a[r * n_out..(r + 1) * n_out]) == bits(o),
                    (Vals::I8(a), Vals::I8(o)) => &a[r * n_out..(r + 1) * n_out] == o.as_slice(),
                    _ => false,
                };
                assert!(want, "{}: row {r} differs from the vector Linear", rm.name);
            }
        }
    }
}

#[test]
fn add_of_token_matrices_f32_and_int8() {
    let mut rng = Rng(21);
    let mut m = OwnedModel::new("add-tokens", &[4, 8], &[0.0], &[1.0]);
    let pos = m.constant_f32(&[4, 8], &rng.vec(32, -1.0, 1.0));
    let y = m.add(0, pos, Activation::None);
    let m = m.outputs(y, y);
    let calib: Vec<Vec<f32>> = (0..8).map(|_| rng.vec(32, -1.0, 1.0)).collect();
    let q = common::quantize_model(&m, &calib);
    for x in &calib {
        for mm in [&m, &q] {
            let bytes = mm.encode().unwrap();
            let (got, _) = common::run_vals(&Model::from_bytes(&bytes).unwrap(), x);
            let want = eval_naive(mm, x)[y as usize].clone().unwrap();
            match (&got, &want) {
                (Vals::F32(g), Vals::F32(w)) => {
                    for (a, b) in g.iter().zip(w) {
                        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()));
                    }
                }
                _ => assert_eq!(got, want),
            }
        }
    }
}

#[test]
fn softmax_runs_over_the_last_axis_of_head_scores() {
    let (h, n) = (3, 5);
    let mut rng = Rng(22);
    let mut m = OwnedModel::new("softmax-heads", &[h, n, n], &[0.0], &[1.0]);
    let y = m.softmax(0, 1.0);
    let m = m.outputs(y, y);
    let mut row = OwnedModel::new("softmax-row", &[n], &[0.0], &[1.0]);
    let yr = row.softmax(0, 1.0);
    let row = row.outputs(yr, yr);
    let x = rng.vec(h * n * n, -3.0, 3.0);
    let mut q = m.clone();
    let qin = qp(6.0 / 255.0, 0);
    q.tensors[0].dtype = DType::I8(qin);
    q.tensors[1].dtype = DType::I8(SOFTMAX_Q);
    let mut qrow = row.clone();
    qrow.tensors[0].dtype = DType::I8(qin);
    qrow.tensors[1].dtype = DType::I8(SOFTMAX_Q);
    for (mm, rr) in [(&m, &row), (&q, &qrow)] {
        let (bm, br) = (mm.encode().unwrap(), rr.encode().unwrap());
        let (all, _) = common::run_vals(&Model::from_bytes(&bm).unwrap(), &x);
        let rmodel = Model::from_bytes(&br).unwrap();
        // Every row of length n is the rank-1 softmax of that row, bit for bit.
        for (r, xr) in x.chunks(n).enumerate() {
            let (one, _) = common::run_vals(&rmodel, xr);
            match (&all, &one) {
                (Vals::F32(a), Vals::F32(o)) => assert_eq!(bits(&a[r * n..(r + 1) * n]), bits(o)),
                (Vals::I8(a), Vals::I8(o)) => assert_eq!(&a[r * n..(r + 1) * n], o.as_slice()),
                _ => panic!("dtype"),
            }
        }
        // And each f32 row sums to 1.
        if let Vals::F32(a) = &all {
            for r in a.chunks(n) {
                assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Each new op alone, against the naive loops.

/// Runs the one-output model `m` on `x` and compares every tensor with `eval_naive` (f32 within
/// `tol · (1 + |want|)`, int8 exactly) and with `eval_kernels` (bit for bit).
fn check_single(m: &OwnedModel, x: &[f32], tol: f32) {
    let bytes = m.encode().unwrap_or_else(|e| panic!("{}: {e}", m.name));
    let model = Model::from_bytes(&bytes).unwrap();
    let naive = eval_naive(m, x);
    let kern = eval_kernels(m, x);
    let mut arena = vec![0u8; model.arena_size()];
    model
        .run_with(x, &mut arena, |s| {
            let got = Vals::of(&s.output.data);
            let k = kern[s.output_id as usize].as_ref().unwrap();
            let w = naive[s.output_id as usize].as_ref().unwrap();
            match (&got, k, w) {
                (Vals::F32(g), Vals::F32(k), Vals::F32(w)) => {
                    assert_eq!(bits(g), bits(k), "{}: op {}", m.name, s.index);
                    for (a, b) in g.iter().zip(w) {
                        assert!(
                            (a - b).abs() <= tol * (1.0 + b.abs()),
                            "{}: op {}: {a} vs {b}",
                            m.name,
                            s.index
                        );
                    }
                }
                (Vals::I8(g), Vals::I8(k), Vals::I8(w)) => {
                    assert_eq!(g, k, "{}: op {}", m.name, s.index);
                    assert_eq!(g, w, "{}: op {} vs naive", m.name, s.index);
                }
                _ => panic!("dtype"),
            }
        })
        .unwrap();
}

/// A random shape of rank 1..=4 with dims 1..=5.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=5, 1..=4)
}

fn quant() -> impl Strategy<Value = QuantParams> {
    (-9i32..=1, any::<i8>()).prop_map(|(e, zp)| qp(libm::ldexpf(1.1, e), zp))
}

/// An f32 input model of `dims`, or an int8 one with quantization `q`.
fn input_model(name: &str, dims: &[usize], q: Option<QuantParams>) -> OwnedModel {
    let mut m = OwnedModel::new(name, dims, &[0.0], &[1.0]);
    if let Some(q) = q {
        m.set_dtype(0, DType::I8(q));
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn transpose_moves_every_element(dims in shape(), seed: u64, q in prop::option::of(quant())) {
        let mut rng = Rng(seed);
        let mut perm: Vec<u8> = (0..dims.len() as u8).collect();
        for i in (1..perm.len()).rev() {
            perm.swap(i, rng.below(i + 1));
        }
        let mut m = input_model("transpose", &dims, q);
        let y = m.transpose(0, &perm);
        let m = m.outputs(y, y);
        let n: usize = dims.iter().product();
        check_single(&m, &rng.vec(n, -2.0, 2.0), 0.0);
    }

    #[test]
    fn concat_joins_along_any_axis(
        dims in shape(), axis_pick: u8, n_in in 2usize..=4, lens in prop::collection::vec(1usize..=3, 4),
        seed: u64, q in prop::option::of(quant()),
    ) {
        let mut rng = Rng(seed);
        let axis = axis_pick % dims.len() as u8;
        let mut m = input_model("concat", &dims, q);
        let mut ins = vec![0u16];
        for &l in lens.iter().take(n_in - 1) {
            let mut d = dims.clone();
            d[axis as usize] = l;
            let n: usize = d.iter().product();
            let c = match q {
                None => m.constant_f32(&d, &rng.vec(n, -1.0, 1.0)),
                Some(q) => m.constant_i8(&d, &rng.i8s(n), q),
            };
            ins.push(c);
        }
        // The graph input anywhere in the list.
        let k = rng.below(ins.len());
        ins.swap(0, k);
        let y = m.concat(&ins, axis);
        let m = m.outputs(y, y);
        let n: usize = dims.iter().product();
        check_single(&m, &rng.vec(n, -2.0, 2.0), 0.0);
    }

    #[test]
    fn slice_takes_a_range_of_one_axis(dims in shape(), axis_pick: u8, a: u8, b: u8, seed: u64, q in prop::option::of(quant())) {
        let axis = axis_pick % dims.len() as u8;
        let len_axis = dims[axis as usize] as u32;
        let start = u32::from(a) % len_axis;
        let len = 1 + u32::from(b) % (len_axis - start);
        let mut m = input_model("slice", &dims, q);
        let y = m.slice(0, axis, start, len);
        let m = m.outputs(y, y);
        let n: usize = dims.iter().product();
        check_single(&m, &Rng(seed).vec(n, -2.0, 2.0), 0.0);
    }

    #[test]
    fn mean_axis_matches_naive(dims in shape(), axis_pick: u8, seed: u64, q_in in quant(), q_out in quant(), int8: bool) {
        let axis = axis_pick % dims.len() as u8;
        let mut m = input_model("mean-axis", &dims, int8.then_some(q_in));
        let y = m.mean_axis(0, axis);
        if int8 {
            m.set_dtype(y, DType::I8(q_out));
        }
        let m = m.outputs(y, y);
        let n: usize = dims.iter().product();
        let s = if int8 { 200.0 * q_in.scale } else { 2.0 };
        check_single(&m, &Rng(seed).vec(n, -s, s), 1e-6);
    }

    #[test]
    fn batch_matmul_matches_naive(
        b in 1usize..=3, mm in 1usize..=5, k in 1usize..=20, n in 1usize..=5, rank3: bool, adj_y: bool,
        alpha_e in -4i32..=2, seed: u64, qs in prop::option::of((quant(), quant(), quant())),
    ) {
        let mut rng = Rng(seed);
        let b = if rank3 { b } else { 1 };
        let lead = |d: [usize; 2]| if rank3 { vec![b, d[0], d[1]] } else { d.to_vec() };
        let (a_dims, b_dims) = (lead([mm, k]), lead(if adj_y { [n, k] } else { [k, n] }));
        let alpha = libm::ldexpf(1.0, alpha_e) * 0.7;
        let mut m = input_model("batch-matmul", &a_dims, qs.map(|q| q.0));
        let nb: usize = b_dims.iter().product();
        let other = match qs {
            None => m.constant_f32(&b_dims, &rng.vec(nb, -1.0, 1.0)),
            Some((_, qb, _)) => m.constant_i8(&b_dims, &rng.i8s(nb), qb),
        };
        let y = m.batch_matmul(0, other, adj_y, alpha);
        if let Some((_, _, qo)) = qs {
            m.set_dtype(y, DType::I8(qo));
        }
        let m = m.outputs(y, y);
        if let Err(e) = m.encode() {
            // Large multipliers leave no room for the accumulator's left shift.
            prop_assert!(qs.is_some() && e == Error::OpAccumulatorOverflow { op: 0 }, "{e}");
            return Ok(());
        }
        let na: usize = a_dims.iter().product();
        let s = qs.map_or(1.0, |q| 200.0 * q.0.scale);
        check_single(&m, &rng.vec(na, -s, s), 1e-5);
    }

    #[test]
    fn quantize_then_dequantize(dims in shape(), q in quant(), seed: u64) {
        let mut m = input_model("qdq", &dims, None);
        let y = m.quantize(0, q);
        let z = m.dequantize(y);
        let m = m.outputs(z, z);
        let n: usize = dims.iter().product();
        // Values around the whole int8 range and beyond (saturation), and exact ties.
        let mut x = Rng(seed).vec(n, -300.0 * q.scale, 300.0 * q.scale);
        if let Some(v) = x.first_mut() {
            *v = 2.5 * q.scale;
        }
        check_single(&m, &x, 0.0);
    }

    #[test]
    fn layer_norm_and_gelu_match_naive(rows in 1usize..=4, depth in 1usize..=40, seed: u64, spread in 0.01f32..100.0) {
        let mut rng = Rng(seed);
        let mut m = input_model("ln-gelu", &[rows, depth], None);
        let y = m.layer_norm(0, 1e-5, &rng.vec(depth, 0.5, 1.5), &rng.vec(depth, -0.5, 0.5));
        let g = m.gelu(y);
        let m = m.outputs(g, y);
        let x = rng.vec(rows * depth, -spread, spread);
        // f32 rounds x − μ to |x|·2⁻²⁴: the error grows with max|x| / sqrt(σ² + eps).
        let kappa = x.chunks(depth).fold(1.0f32, |k, r| {
            let mu = r.iter().sum::<f32>() / depth as f32;
            let var = r.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / depth as f32;
            let mx = r.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            k.max(mx / (var + 1e-5).sqrt())
        });
        check_single(&m, &x, 2e-5 * kappa);
    }

    #[test]
    fn lut_matches_naive(dims in shape(), seed: u64, q_in in quant(), q_out in quant()) {
        let mut rng = Rng(seed);
        let mut m = input_model("lut", &dims, Some(q_in));
        let table: Vec<i8> = rng.i8s(256);
        let y = m.lut(0, &table, q_out);
        let m = m.outputs(y, y);
        let n: usize = dims.iter().product();
        check_single(&m, &rng.vec(n, -200.0 * q_in.scale, 200.0 * q_in.scale), 0.0);
    }
}

#[test]
fn gelu_lut_tracks_the_f32_gelu() {
    // The exporter's table for int8 GELU: quantize(gelu(dequantize(q))) for every q.
    // Input [−4, 4]; output [−0.198, 4.002] ⊃ gelu([−4, 4]) = [−0.170, 4.000].
    let (qi, qo) = (qp(8.0 / 255.0, 0), qp(4.2 / 255.0, -116));
    let table: Vec<i8> = (-128..=127)
        .map(|v: i32| quantize(gelu_f64(dequantize(v as i8, qi) as f64) as f32, qo))
        .collect();
    let mut m = input_model("lut", &[256], Some(qi));
    let y = m.lut(0, &table, qo);
    let m = m.outputs(y, y);
    let bytes = m.encode().unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    // Raw inputs that quantize to every code −128..=127.
    let x: Vec<f32> = (-128..=127).map(|v| v as f32 * qi.scale).collect();
    let (got, _) = common::run_vals(&model, &x);
    for (i, &q) in got.i8().iter().enumerate() {
        let real = gelu_f64(dequantize((i as i32 - 128) as i8, qi) as f64);
        assert!((dequantize(q, qo) as f64 - real).abs() <= qo.scale as f64 / 2.0 + 1e-6);
    }
}

// ---------------------------------------------------------------------------------------------
// prepare: typed errors naming the op.

/// A model whose op 1 is under test: input `[dims]` → Reshape (same dims) = tensor 1 → …
fn after_reshape(dims: &[usize], q: Option<QuantParams>) -> OwnedModel {
    let mut m = input_model("err", dims, q);
    let r = m.reshape(0, dims);
    assert_eq!(r, 1);
    m
}

fn expect_err(m: &OwnedModel, e: Error) {
    assert_eq!(
        Model::from_bytes(&m.raw()).unwrap_err(),
        e,
        "{:?}",
        m.nodes.last()
    );
    assert_eq!(m.encode().unwrap_err(), e);
}

#[test]
fn prepare_errors_name_the_op() {
    let op1 = |e: fn(u16) -> Error| e(1);
    let q8 = qp(0.05, 3);
    // LayerNorm: eps, int8 input, gamma of the wrong length, output of another shape.
    for eps in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let mut m = after_reshape(&[4, 8], None);
        let y = m.layer_norm(1, 1e-5, &[1.0; 8], &[0.0; 8]);
        m.nodes[1].op = OwnedOp::LayerNorm { eps };
        expect_err(&m.outputs(y, y), op1(|op| Error::OpBadParam { op }));
    }
    let mut m = after_reshape(&[4, 8], Some(q8));
    let y = m.layer_norm(1, 1e-5, &[1.0; 8], &[0.0; 8]);
    expect_err(&m.outputs(y, y), op1(|op| Error::OpUnsupportedDType { op }));
    let mut m = after_reshape(&[4, 8], None);
    let y = m.layer_norm(1, 1e-5, &[1.0; 7], &[0.0; 7]);
    expect_err(&m.outputs(y, y), op1(|op| Error::ShapeMismatch { op }));
    let mut m = after_reshape(&[4, 8], None);
    let y = m.layer_norm(1, 1e-5, &[1.0; 8], &[0.0; 8]);
    m.tensors[y as usize].dims = vec![32];
    expect_err(&m.outputs(y, y), op1(|op| Error::ShapeMismatch { op }));
    let mut m = after_reshape(&[4, 8], None);
    let y = m.layer_norm(1, 1e-5, &[1.0; 8], &[0.0; 8]);
    m.nodes[1].inputs.pop();
    expect_err(&m.outputs(y, y), op1(|op| Error::OpBadArity { op }));

    // Gelu: int8.
    let mut m = after_reshape(&[4], Some(q8));
    let y = m.gelu(1);
    expect_err(&m.outputs(y, y), op1(|op| Error::OpUnsupportedDType { op }));

    // Lut: a table of 255 or 257 values, an f32 table, a table of another quantization, f32 x.
    for n in [255, 257, 16] {
        let mut m = after_reshape(&[4], Some(q8));
        let y = m.lut(1, &[0; 256], q8);
        let t = m.nodes[1].inputs[1] as usize;
        m.tensors[t].dims = vec![n];
        m.tensors[t].data = Some(vec![0; n]);
        expect_err(&m.outputs(y, y), op1(|op| Error::OpBadTensorLength { op }));
    }
    let mut m = after_reshape(&[4], Some(q8));
    let y = m.lut(1, &[0; 256], q8);
    let t = m.nodes[1].inputs[1];
    m.set_dtype(t, DType::I8(qp(0.1, 0)));
    expect_err(&m.outputs(y, y), op1(|op| Error::OpUnsupportedDType { op }));
    let mut m = after_reshape(&[4], None);
    let t = m.constant_i8(&[256], &[0; 256], q8);
    let y = m.tensor(&[4], DType::I8(q8));
    m.push(OwnedOp::Lut, &[1, t], y);
    expect_err(&m.outputs(y, y), op1(|op| Error::OpUnsupportedDType { op }));

    // BatchMatMul: alpha, inner dims that do not chain, rank 2 × rank 3, batches, output shape,
    // mixed dtypes, an int8 accumulator that could overflow.
    for alpha in [0.0, -0.5, f32::NAN] {
        let mut m = after_reshape(&[2, 3], None);
        let y = m.batch_matmul(1, 1, true, 1.0);
        m.nodes[1].op = OwnedOp::BatchMatMul { adj_y: true, alpha };
        expect_err(&m.outputs(y, y), op1(|op| Error::OpBadParam { op }));
    }
    let mut m = after_reshape(&[2, 3], None);
    let y = m.tensor(&[2, 3], DType::F32);
    m.push(
        OwnedOp::BatchMatMul {
            adj_y: false,
            alpha: 1.0,
        },
        &[1, 1],
        y,
    );
    expect_err(&m.outputs(y, y), op1(|op| Error::ShapeMismatch { op }));
    let mut m = after_reshape(&[2, 3], None);
    let c = m.constant_f32(&[1, 3, 2], &[0.0; 6]);
    let y = m.tensor(&[2, 2], DType::F32);
    m.push(
        OwnedOp::BatchMatMul {
            adj_y: false,
            alpha: 1.0,
        },
        &[1, c],
        y,
    );
    expect_err(&m.outputs(y, y), op1(|op| Error::ShapeMismatch { op }));
    let mut m = after_reshape(&[2, 2, 3], None);
    let c = m.constant_f32(&[3, 2, 3], &[0.0; 18]);
    let y = m.tensor(&[2, 2, 2], DType::F32);
    m.push(
        OwnedOp::BatchMatMul {
            adj_y: true,
            alpha: 1.0,
        },
        &[1, c],
        y,
    );
    expect_err(&m.outputs(y, y), op1(|op| Error::ShapeMismatch { op }));
    let mut m = after_reshape(&[2, 3], None);
    let y = m.batch_matmul(1, 1, true, 1.0);
    m.tensors[y as usize].dims = vec![2, 3];
    expect_err(&m.outputs(y, y), op1(|op| Error::ShapeMismatch { op }));
    let mut m = after_reshape(&[2, 3], None);
    let c = m.constant_i8(&[2, 3], &[0; 6], q8);
    let y = m.batch_matmul(1, c, true, 1.0);
    expect_err(&m.outputs(y, y), op1(|op| Error::OpUnsupportedDType { op }));
    // 130 000 · 131² > 2³¹ with zero point 3; 130 000 · 128² < 2³¹ with zero point 0.
    let mut m = after_reshape(&[1, 130_000], Some(q8));
    let y = m.batch_matmul(1, 1, true, 1.0);
    expect_err(
        &m.outputs(y, y),
        op1(|op| Error::OpAccumulatorOverflow { op }),
    );
    let mut m = after_reshape(&[1, 130_000], Some(qp(0.05, 0)));
    let y = m.batch_matmul(1, 1, true, 1.0);
    assert!(m.outputs(y, y).encode().is_ok());
    // A multiplier whose shift is above 30 (s_a·s_b / s_out ≥ 2^30).
    let mut m = after_reshape(&[2, 3], Some(qp(1e4, 0)));
    let y = m.batch_matmul(1, 1, true, 1.0);
    m.set_dtype(y, DType::I8(qp(1e-3, 0)));
    expect_err(&m.outputs(y, y), op1(|op| Error::OpBadMultiplier { op }));

    // Transpose: not a permutation, wrong length, int8 output of another quantization, shape.
    for perm in [vec![0u8, 0], vec![0, 2], vec![1], vec![2, 1, 0]] {
        let mut m = after_reshape(&[2, 3], None);
        let y = m.tensor(&[3, 2], DType::F32);
        m.push(OwnedOp::Transpose(perm), &[1], y);
        expect_err(&m.outputs(y, y), op1(|op| Error::OpBadParam { op }));
    }
    let mut m = after_reshape(&[2, 3], Some(q8));
    let y = m.transpose(1, &[1, 0]);
    m.set_dtype(y, DType::I8(qp(0.05, 4)));
    expect_err(&m.outputs(y, y), op1(|op| Error::OpUnsupportedDType { op }));
    let mut m = after_reshape(&[2, 3], None);
    let y = m.transpose(1, &[1, 0]);
    m.tensors[y as usize].dims = vec![2, 3];
    expect_err(&m.outputs(y, y), op1(|op| Error::ShapeMismatch { op }));

    // Quantize / Dequantize: wrong dtypes, shapes.
    let mut m = after_reshape(&[4], Some(q8));
    let y = m.quantize(1, q8);
    expect_err(&m.outputs(y, y), op1(|op| Error::OpUnsupportedDType { op }));
    let mut m = after_reshape(&[4], None);
    let y = m.dequantize(1);
    expect_err(&m.outputs(y, y), op1(|op| Error::OpUnsupportedDType { op }));
    let mut m = after_reshape(&[4], None);
    let y = m.quantize(1, q8);
    m.tensors[y as usize].dims = vec![2, 2];
    expect_err(&m.outputs(y, y), op1(|op| Error::ShapeMismatch { op }));

    // Concat: axis beyond the rank, other dims differ, an int8 input of another quantization,
    // mixed dtypes, output length, 1 or 5 inputs.
    let mut m = after_reshape(&[2, 3], None);
    let y = m.concat(&[1, 1], 1);
    m.nodes[1].op = OwnedOp::Concat { axis: 2 };
    expect_err(&m.outputs(y, y), op1(|op| Error::OpBadParam { op }));
    let mut m = after_reshape(&[2, 3], None);
    let c = m.constant_f32(&[3, 3], &[0.0; 9]);
    let y = m.tensor(&[2, 6], DType::F32);
    m.push(OwnedOp::Concat { axis: 1 }, &[1, c], y);
    expect_err(&m.outputs(y, y), op1(|op| Error::ShapeMismatch { op }));
    let mut m = after_reshape(&[2, 3], Some(q8));
    let c = m.constant_i8(&[1, 3], &[0; 3], qp(0.05, 2));
    let y = m.concat(&[c, 1], 0);
    expect_err(&m.outputs(y, y), op1(|op| Error::OpUnsupportedDType { op }));
    let mut m = after_reshape(&[2, 3], None);
    let c = m.constant_i8(&[1, 3], &[0; 3], q8);
    let y = m.concat(&[c, 1], 0);
    m.set_dtype(y, DType::F32);
    expect_err(&m.outputs(y, y), op1(|op| Error::OpUnsupportedDType { op }));
    let mut m = after_reshape(&[2, 3], None);
    let y = m.concat(&[1, 1], 0);
    m.tensors[y as usize].dims = vec![5, 3];
    expect_err(&m.outputs(y, y), op1(|op| Error::ShapeMismatch { op }));
    let mut m = after_reshape(&[2, 3], None);
    let y = m.concat(&[1, 1], 0);
    m.nodes[1].inputs = vec![1];
    expect_err(&m.outputs(y, y), op1(|op| Error::OpBadArity { op }));

    // MeanAxis: axis beyond the rank, output shape, mixed dtypes, an overflowing int8 sum.
    let mut m = after_reshape(&[4, 8], None);
    let y = m.mean_axis(1, 0);
    m.nodes[1].op = OwnedOp::MeanAxis { axis: 2 };
    expect_err(&m.outputs(y, y), op1(|op| Error::OpBadParam { op }));
    let mut m = after_reshape(&[4, 8], None);
    let y = m.mean_axis(1, 0);
    m.tensors[y as usize].dims = vec![4];
    expect_err(&m.outputs(y, y), op1(|op| Error::ShapeMismatch { op }));
    let mut m = after_reshape(&[4, 8], Some(q8));
    let y = m.mean_axis(1, 0);
    m.set_dtype(y, DType::F32);
    expect_err(&m.outputs(y, y), op1(|op| Error::OpUnsupportedDType { op }));
    let mut m = after_reshape(&[60_000], Some(qp(1.0, 0)));
    let y = m.mean_axis(1, 0);
    // s_in / s_out = 2^25 (shift 26) and n = 60 000 (k = 15): a left shift by 11 bits of a sum
    // up to 60 000 · 128.
    m.set_dtype(y, DType::I8(qp(libm::ldexpf(1.0, -25), 0)));
    expect_err(
        &m.outputs(y, y),
        op1(|op| Error::OpAccumulatorOverflow { op }),
    );

    // Slice: axis, len 0, past the end, output shape.
    let mut m = after_reshape(&[4, 8], None);
    let y = m.slice(1, 0, 0, 1);
    m.nodes[1].op = OwnedOp::Slice {
        axis: 2,
        start: 0,
        len: 1,
    };
    expect_err(&m.outputs(y, y), op1(|op| Error::OpBadParam { op }));
    let mut m = after_reshape(&[4, 8], None);
    let y = m.slice(1, 0, 0, 1);
    m.nodes[1].op = OwnedOp::Slice {
        axis: 0,
        start: 0,
        len: 0,
    };
    expect_err(&m.outputs(y, y), op1(|op| Error::OpBadParam { op }));
    for (start, len) in [(4, 1), (3, 2), (u32::MAX, 2)] {
        let mut m = after_reshape(&[4, 8], None);
        let y = m.slice(1, 0, 0, 1);
        m.nodes[1].op = OwnedOp::Slice {
            axis: 0,
            start,
            len,
        };
        expect_err(&m.outputs(y, y), op1(|op| Error::ShapeMismatch { op }));
    }
    let mut m = after_reshape(&[4, 8], None);
    let y = m.slice(1, 0, 0, 2);
    m.tensors[y as usize].dims = vec![16];
    expect_err(&m.outputs(y, y), op1(|op| Error::ShapeMismatch { op }));
    // The kept-axis forms load too: [1, 8] for len 1, and [2, 8] for len 2.
    let mut m = after_reshape(&[4, 8], None);
    let y = m.slice(1, 0, 0, 1);
    m.tensors[y as usize].dims = vec![1, 8];
    assert!(m.outputs(y, y).encode().is_ok());
}

#[test]
fn logits_and_embedding_of_different_element_types_are_rejected() {
    // Quantize / Dequantize make it expressible; a dump record has one element type.
    let mut m = input_model("mixed", &[4], None);
    let g = m.gelu(0);
    let q = m.quantize(g, qp(0.1, 0));
    expect_err(&m.clone().outputs(q, g), Error::ModelBadOutputs);
    expect_err(&m.clone().outputs(g, q), Error::ModelBadOutputs);
    assert!(m.clone().outputs(g, 0).encode().is_ok());
    let d = m.dequantize(q);
    assert!(m.outputs(d, g).encode().is_ok());
}

// ---------------------------------------------------------------------------------------------
// Random shapes and parameters through decode + prepare (+ run): never a panic.

fn any_new_op() -> impl Strategy<Value = OwnedOp> {
    prop_oneof![
        any::<f32>().prop_map(|eps| OwnedOp::LayerNorm { eps }),
        Just(OwnedOp::Gelu),
        Just(OwnedOp::Lut),
        (any::<bool>(), any::<f32>())
            .prop_map(|(adj_y, alpha)| OwnedOp::BatchMatMul { adj_y, alpha }),
        prop::collection::vec(0u8..6, 0..=4).prop_map(OwnedOp::Transpose),
        Just(OwnedOp::Quantize),
        Just(OwnedOp::Dequantize),
        (0u8..6).prop_map(|axis| OwnedOp::Concat { axis }),
        (0u8..6).prop_map(|axis| OwnedOp::MeanAxis { axis }),
        (0u8..6, 0u32..6, 0u32..6).prop_map(|(axis, start, len)| OwnedOp::Slice {
            axis,
            start,
            len
        }),
    ]
}

fn any_dtype() -> impl Strategy<Value = DType> {
    prop_oneof![
        Just(DType::F32),
        (
            prop_oneof![Just(1e-3f32), Just(0.05), Just(1.0), Just(300.0)],
            any::<i8>()
        )
            .prop_map(|(s, z)| DType::I8(qp(s, z))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn random_new_ops_never_panic(
        op in any_new_op(),
        tensors in prop::collection::vec((shape(), any_dtype(), any::<bool>()), 1..=5),
        n_inputs in 1usize..=4,
        out in (shape(), any_dtype()),
        seed: u64,
    ) {
        let mut rng = Rng(seed);
        let (dims0, dt0, _) = &tensors[0];
        let mut m = input_model("random", dims0, None);
        m.set_dtype(0, *dt0);
        let mut ids = vec![0u16];
        for (dims, dt, constant) in &tensors[1..] {
            let n: usize = dims.iter().product();
            let id = if *constant {
                match dt {
                    DType::F32 => m.constant_f32(dims, &rng.vec(n, -2.0, 2.0)),
                    DType::I8(q) => m.constant_i8(dims, &rng.i8s(n), *q),
                }
            } else {
                m.tensor(dims, *dt)
            };
            ids.push(id);
        }
        let inputs: Vec<u16> = (0..n_inputs).map(|i| ids[(i + rng.below(ids.len())) % ids.len()]).collect();
        // Inputs that are neither the graph input nor constants are never produced: keep only
        // the first input (the graph input) in that case, as a producer would be.
        let inputs: Vec<u16> = inputs
            .into_iter()
            .filter(|&i| i == 0 || m.tensors[i as usize].data.is_some())
            .collect();
        let y = m.tensor(&out.0, out.1);
        m.push(op, &inputs, y);
        let m = m.outputs(y, y);
        let raw = m.raw();
        let loaded = Model::from_bytes(&raw).map(|model| {
            let x = rng.vec(model.input_len(), -3.0, 3.0);
            let mut arena = vec![0u8; model.arena_size()];
            model.run(&x, &mut arena).expect("a validated model runs");
        });
        match loaded {
            Ok(()) => prop_assert!(m.encode().is_ok()),
            Err(e) => prop_assert_eq!(m.encode().unwrap_err(), e),
        }
    }
}

#[test]
fn the_random_op_property_is_not_vacuous() {
    // Well-formed single ops of each new kind load (the property above reaches `run`).
    let mut m = input_model("ok", &[2, 3], None);
    let a = m.transpose(0, &[1, 0]);
    let b = m.concat(&[a, a], 0);
    let c = m.slice(b, 0, 1, 2);
    let d = m.mean_axis(c, 1);
    let e = m.layer_norm(c, 1e-5, &[1.0; 2], &[0.0; 2]);
    let f = m.gelu(e);
    let g = m.batch_matmul(f, f, true, 0.5);
    let h = m.quantize(g, qp(0.1, 0));
    let i = m.lut(h, &[1; 256], qp(0.1, 0));
    let j = m.dequantize(i);
    let m = m.outputs(j, d);
    let bytes = m.encode().unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let (logits, emb) = common::run_f32(&model, &[0.5, -1.0, 2.0, 0.0, 1.0, -0.5]);
    assert_eq!(logits, vec![0.1; 4]);
    assert_eq!(emb.len(), 2);
}

/// Issue 13's malformed ViT files, on the whole test ViT (f32 and int8), not a one-op model: a
/// head split whose head count does not divide the width, position embeddings for another
/// token count, and a GELU table of 255 entries are each refused by `prepare` with a typed
/// error naming the op that cannot run — never a panic, never a model that loads.
#[test]
fn malformed_vit_files_are_refused_naming_the_op() {
    let (f32m, i8m) = vit_models(3);
    for base in [&f32m, &i8m] {
        assert!(Model::from_bytes(&base.raw()).is_ok());
        // Three heads of width VIT_HEAD_DIM for a VIT_DIM = 2 · VIT_HEAD_DIM wide q.
        let mut m = base.clone();
        let k = m
            .nodes
            .iter()
            .position(|n| matches!(n.op, OwnedOp::Reshape))
            .unwrap();
        let out = m.nodes[k].output as usize;
        assert_eq!(m.tensors[out].dims, [VIT_TOKENS, VIT_HEADS, VIT_HEAD_DIM]);
        m.tensors[out].dims = vec![VIT_TOKENS, 3, VIT_HEAD_DIM];
        expect_err(&m, Error::ShapeMismatch { op: k as u16 });
        // Position embeddings of one token more: the Add after the class-token Concat.
        let mut m = base.clone();
        let k = m
            .nodes
            .iter()
            .position(|n| matches!(n.op, OwnedOp::Add { .. }))
            .unwrap();
        let pos = m.nodes[k].inputs[1] as usize;
        let t = &mut m.tensors[pos];
        assert_eq!(t.dims, [VIT_TOKENS, VIT_DIM]);
        t.dims = vec![VIT_TOKENS + 1, VIT_DIM];
        let width = t.data.as_ref().unwrap().len() / (VIT_TOKENS * VIT_DIM);
        t.data.as_mut().unwrap().extend(vec![0u8; width * VIT_DIM]);
        expect_err(&m, Error::ShapeMismatch { op: k as u16 });
    }
    // A GELU table of 255 entries in the int8 ViT.
    let mut m = i8m.clone();
    let k = m
        .nodes
        .iter()
        .position(|n| matches!(n.op, OwnedOp::Lut))
        .unwrap();
    let table = m.nodes[k].inputs[1] as usize;
    m.tensors[table].dims = vec![255];
    m.tensors[table].data.as_mut().unwrap().pop();
    expect_err(&m, Error::OpBadTensorLength { op: k as u16 });
}
