//! The engine: arena planning, outputs, the per-layer hook, and end-to-end agreement with the
//! kernels run one by one (f32 bit for bit, int8 exactly, int8 vs f32 approximately).

mod common;

use common::{
    conv_params, f32_activations, linear_params, out_chw, per_channel_quant, pool_params,
    small_cnn, small_mlp, OwnedLayer, Rng,
};
use denoiserep_core::kernels::{self, Chw};
use denoiserep_core::{
    quant, Activation, DType, Error, Layer, LayerKind, Model, Shape, TensorData,
};

fn run_f32(model: &Model<'_>, input: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut arena = vec![0u8; model.arena_size()];
    let out = model.run(input, &mut arena).unwrap();
    let mut logits = vec![0.0; out.logits.len()];
    let mut emb = vec![0.0; out.embedding.len()];
    out.logits.dequantize_into(&mut logits).unwrap();
    out.embedding.dequantize_into(&mut emb).unwrap();
    (logits, emb)
}

#[test]
fn arena_size_is_the_planned_minimum() {
    // small_cnn: the largest layer is conv1: 1×12×12 f32 in (576 B) + 4×12×12 f32 out (2304 B);
    // the embedding (Flatten, 8 f32) is copied aside (32 B); plus 3 bytes of alignment slack.
    let m = small_cnn(1);
    let bytes = m.encode().unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    assert_eq!(model.arena_size(), 3 + 32 + 576 + 2304);
    // small_mlp: Linear 16→12 (64 + 48 B) is the largest; the embedding (layer 1) is copied (48 B).
    let m = small_mlp(1);
    let bytes = m.encode().unwrap();
    assert_eq!(
        Model::from_bytes(&bytes).unwrap().arena_size(),
        3 + 48 + 64 + 48
    );
}

#[test]
fn arena_of_any_alignment_works_and_smaller_fails() {
    let m = small_cnn(2);
    let bytes = m.encode().unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let input = Rng(3).vec(144, 0.0, 1.0);
    let (want, _) = run_f32(&model, &input);
    let n = model.arena_size();
    let mut big = vec![0u8; n + 8];
    for offset in 0..4 {
        let out = model.run(&input, &mut big[offset..offset + n]).unwrap();
        let TensorData::F32(logits) = out.logits.data else {
            panic!()
        };
        assert_eq!(logits, &want[..]);
        assert_eq!(
            model
                .run(&input, &mut big[offset..offset + n - 4])
                .unwrap_err(),
            Error::ArenaTooSmall
        );
    }
}

#[test]
fn wrong_input_length_is_rejected() {
    let bytes = small_mlp(1).encode().unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    assert_eq!(
        model.run(&[0.0; 15], &mut arena).unwrap_err(),
        Error::RunBadInputLength
    );
    assert_eq!(
        model.run(&[0.0; 17], &mut arena).unwrap_err(),
        Error::RunBadInputLength
    );
}

#[test]
fn f32_run_matches_kernels_one_by_one_bit_for_bit() {
    for m in [small_cnn(5), small_mlp(6)] {
        let bytes = m.encode().unwrap();
        let model = Model::from_bytes(&bytes).unwrap();
        let mut rng = Rng(8);
        for _ in 0..5 {
            let input = rng.vec(model.input_len(), 0.0, 1.0);
            let acts = f32_activations(&m, &input);
            let (logits, emb) = run_f32(&model, &input);
            let want_logits = &acts.last().unwrap().0;
            let want_emb = &acts[m.embedding_layer as usize + 1].0;
            assert_eq!(bits(&logits), bits(want_logits));
            assert_eq!(bits(&emb), bits(want_emb));
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A deep MLP whose embedding (layer 1) would be overwritten by layer 3 without its own region.
fn deep_mlp() -> common::OwnedModel {
    let mut rng = Rng(77);
    let mut m = small_mlp(1);
    m.layers = vec![
        OwnedLayer::Flatten,
        OwnedLayer::linear_f32(
            16,
            12,
            Activation::Relu,
            &rng.vec(192, -0.5, 0.5),
            &rng.vec(12, -0.1, 0.1),
        ),
        OwnedLayer::linear_f32(
            12,
            12,
            Activation::Relu,
            &rng.vec(144, -0.5, 0.5),
            &rng.vec(12, -0.1, 0.1),
        ),
        OwnedLayer::linear_f32(
            12,
            12,
            Activation::None,
            &rng.vec(144, -0.5, 0.5),
            &rng.vec(12, -0.1, 0.1),
        ),
        OwnedLayer::Relu,
        OwnedLayer::linear_f32(
            12,
            4,
            Activation::None,
            &rng.vec(48, -0.5, 0.5),
            &rng.vec(4, -0.1, 0.1),
        ),
    ];
    m
}

#[test]
fn embedding_survives_later_layers() {
    let m = deep_mlp();
    let bytes = m.encode().unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let input = Rng(5).vec(16, -1.0, 1.0);
    let acts = f32_activations(&m, &input);
    let (logits, emb) = run_f32(&model, &input);
    assert_eq!(bits(&emb), bits(&acts[2].0));
    assert_eq!(bits(&logits), bits(&acts[6].0));
    assert_ne!(
        bits(&emb),
        bits(&acts[4].0),
        "the test must distinguish the two tensors"
    );
}

#[test]
fn dirty_arena_and_repeated_runs_give_identical_bits() {
    let m = small_cnn(9);
    let bytes = m.encode().unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let input = Rng(10).vec(144, 0.0, 1.0);
    let (a, ea) = run_f32(&model, &input);
    let mut arena = vec![0xAAu8; model.arena_size()];
    let out = model.run(&input, &mut arena).unwrap();
    let TensorData::F32(l) = out.logits.data else {
        panic!()
    };
    let TensorData::F32(e) = out.embedding.data else {
        panic!()
    };
    assert_eq!(bits(l), bits(&a));
    assert_eq!(bits(e), bits(&ea));
}

#[test]
fn hook_sees_every_layer_in_order() {
    let m = small_cnn(1);
    let bytes = m.encode().unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let mut seen = Vec::new();
    model
        .run_with(&[0.5; 144], &mut arena, |i, kind| seen.push((i, kind)))
        .unwrap();
    use LayerKind::*;
    let want = [
        Conv2dF32,
        MaxPool2d,
        Conv2dF32,
        Relu,
        GlobalAvgPool,
        Flatten,
        LinearF32,
    ];
    assert_eq!(seen, want.iter().copied().enumerate().collect::<Vec<_>>());
    let shapes: Vec<Shape> = model.layers().iter().map(|l| l.output.shape).collect();
    assert_eq!(shapes[0], Shape::Chw { c: 4, h: 12, w: 12 });
    assert_eq!(shapes[2], Shape::Chw { c: 8, h: 2, w: 2 });
    assert_eq!(shapes[5], Shape::Flat { n: 8 });
    assert_eq!(shapes[6], Shape::Flat { n: 10 });
}

/// The int8 model run through the kernels one by one, on separate buffers.
fn int8_reference(m: &common::OwnedModel, input: &[f32]) -> Vec<Vec<i8>> {
    let q = m.input_quant.unwrap();
    let [c, h, w] = m.input_shape.map(usize::from);
    let (mean, std) = (m.mean_f32(), m.std_f32());
    let x: Vec<i8> = input
        .iter()
        .enumerate()
        .map(|(i, &v)| quant::quantize((v - mean[i / (h * w)]) / std[i / (h * w)], q))
        .collect();
    let mut acts = vec![x];
    let mut d = Chw { c, h, w };
    let mut zp = q.zero_point;
    for l in &m.layers {
        let x = acts.last().unwrap().clone();
        let (y, dy) = match l.layer() {
            Layer::LinearS8(lin) => {
                let mut y = vec![0; lin.out_features as usize];
                let p = linear_params(lin.in_features, lin.out_features, lin.activation);
                let q = per_channel_quant(zp, lin.output, lin.multiplier, lin.shift);
                kernels::linear_s8(&p, &q, &x, lin.weights, lin.bias, &mut y).unwrap();
                zp = lin.output.zero_point;
                let n = y.len();
                (y, Chw { c: n, h: 1, w: 1 })
            }
            Layer::Conv2dS8(cv) => {
                let p = conv_params(
                    d,
                    cv.out_channels,
                    (cv.kernel, cv.stride, cv.padding),
                    cv.activation,
                );
                let q = per_channel_quant(zp, cv.output, cv.multiplier, cv.shift);
                let dy = out_chw(p.out_channels, d, p.window);
                let mut y = vec![0; dy.c * dy.h * dy.w];
                kernels::conv2d_s8(&p, &q, &x, cv.weights, cv.bias, &mut y).unwrap();
                zp = cv.output.zero_point;
                (y, dy)
            }
            Layer::Relu => {
                let mut y = x.clone();
                kernels::relu_s8(&mut y, zp);
                (y, d)
            }
            Layer::MaxPool2d(mp) => {
                let p = pool_params(d, mp);
                let dy = out_chw(d.c, d, p.window);
                let mut y = vec![0; dy.c * dy.h * dy.w];
                kernels::maxpool2d_s8(&p, &x, &mut y).unwrap();
                (y, dy)
            }
            Layer::GlobalAvgPool => {
                let mut y = vec![0; d.c];
                kernels::global_avg_pool_s8(&x, d, &mut y).unwrap();
                (y, Chw { c: d.c, h: 1, w: 1 })
            }
            Layer::Flatten => (x, d),
            other => panic!("not an int8 layer: {other:?}"),
        };
        d = dy;
        acts.push(y);
    }
    acts
}

#[test]
fn int8_run_matches_kernels_one_by_one_and_tracks_f32() {
    let mut rng = Rng(12);
    for f in [small_cnn(13), deep_mlp()] {
        let n = f.input_shape.iter().map(|&v| v as usize).product::<usize>();
        let (lo, hi) = if f.name == "small-cnn" {
            (0.0, 1.0)
        } else {
            (-1.0, 1.0)
        };
        let calib: Vec<Vec<f32>> = (0..32).map(|_| rng.vec(n, lo, hi)).collect();
        let q = common::quantize_model(&f, &calib);
        let (fb, qb) = (f.encode().unwrap(), q.encode().unwrap());
        let (fm, qm) = (
            Model::from_bytes(&fb).unwrap(),
            Model::from_bytes(&qb).unwrap(),
        );
        assert!(matches!(qm.input_info().dtype, DType::I8(_)));
        let mut agree = 0;
        let trials = 32;
        for _ in 0..trials {
            let input = rng.vec(n, lo, hi);
            let mut arena = vec![0u8; qm.arena_size()];
            let out = qm.run(&input, &mut arena).unwrap();
            let reference = int8_reference(&q, &input);
            let TensorData::I8 { values, quant } = out.logits.data else {
                panic!()
            };
            assert_eq!(values, &reference.last().unwrap()[..]);
            let TensorData::I8 { values: emb, .. } = out.embedding.data else {
                panic!()
            };
            assert_eq!(emb, &reference[q.embedding_layer as usize + 1][..]);
            // Dequantized logits stay near the f32 logits (a few quantization steps).
            let (fl, _) = run_f32(&fm, &input);
            let mut ql = vec![0.0; fl.len()];
            out.logits.dequantize_into(&mut ql).unwrap();
            let spread = fl.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            for (a, b) in fl.iter().zip(&ql) {
                assert!(
                    (a - b).abs() <= 8.0 * quant.scale + 0.05 * spread,
                    "{a} vs {b}"
                );
            }
            let f_arg = fl
                .iter()
                .enumerate()
                .fold(0, |best, (i, v)| if *v > fl[best] { i } else { best });
            agree += usize::from(out.logits.argmax() == Some(f_arg));
        }
        assert!(
            agree * 4 >= trials * 3,
            "int8 argmax agrees with f32 on {agree}/{trials}"
        );
    }
}

#[test]
fn tensor_view_helpers() {
    let bytes = small_mlp(2).encode().unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let out = model.run(&[0.25; 16], &mut arena).unwrap();
    assert_eq!(out.logits.len(), 4);
    assert_eq!(out.logits.get_f32(4), None);
    let mut short = [0.0; 3];
    assert_eq!(
        out.logits.dequantize_into(&mut short),
        Err(Error::KernelBadArguments)
    );
    let mut all = [0.0; 4];
    out.logits.dequantize_into(&mut all).unwrap();
    let best = (0..4).fold(0, |b, i| if all[i] > all[b] { i } else { b });
    assert_eq!(out.logits.argmax(), Some(best));
}

#[test]
fn layer_capacity_can_be_chosen() {
    let bytes = small_cnn(1).encode().unwrap(); // 7 layers
    let small = Model::<'_, 7>::from_bytes_with_capacity(&bytes).unwrap();
    let full = Model::from_bytes(&bytes).unwrap();
    assert_eq!(small.arena_size(), full.arena_size());
    assert_eq!(small.layers(), full.layers());
    assert_eq!(
        Model::<'_, 6>::from_bytes_with_capacity(&bytes).unwrap_err(),
        Error::DecodeTooManyLayers
    );
    assert!(std::mem::size_of::<Model<'_, 7>>() * 4 < std::mem::size_of::<Model<'_>>());
    let input = Rng(4).vec(144, 0.0, 1.0);
    let mut arena = vec![0u8; small.arena_size()];
    let out = small.run(&input, &mut arena).unwrap();
    let mut logits = vec![0.0; 10];
    out.logits.dequantize_into(&mut logits).unwrap();
    assert_eq!(bits(&logits), bits(&run_f32(&full, &input).0));
}
