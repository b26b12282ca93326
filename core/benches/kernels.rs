//! Host latency of the core's hot kernels and of a whole MNIST MLP, batch 1, one thread.
//!
//! ```sh
//! cargo bench -p denoiserep-core --bench kernels
//! ```
//!
//! Shapes are those of the fused `mlp:256,128` (784→256→128→10, 234 752 MACs) and of the
//! trainer's `cnn` (conv 1→8 and 8→16, 3×3, pad 1, on 28×28 and 14×14). Weights are seeded
//! random; the int8 model is the f32 one quantized per channel (calibrated on 16 inputs) with the
//! tests' post-training quantizer. Numbers are recorded in `docs/kernels.md`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{bytes_i8, host_paths, le_f32, le_i32, quantize_model, BenchQuant, OwnedModel, Rng};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use denoiserep_core::kernels;
use denoiserep_core::kernels::params::{ConvParams, LinearParams, PerChannelQuant, Window};
use denoiserep_core::kernels::KernelPath;
use denoiserep_core::{Activation, F32Data, I32Data, I8Data, Model, QuantParams};

/// `(in, out)` of the three Linear layers of `mlp:256,128`.
const MLP: [(usize, usize); 3] = [(784, 256), (256, 128), (128, 10)];

fn mlp_f32(seed: u64) -> OwnedModel {
    let mut rng = Rng(seed);
    let mut m = OwnedModel::new("mlp-256-128", &[1, 28, 28], &[0.1307], &[0.3081]);
    let mut x = m.reshape(0, &[784]);
    let mut emb = x;
    for (i, &(n_in, n_out)) in MLP.iter().enumerate() {
        let bound = 1.0 / (n_in as f32).sqrt();
        let act = if i + 1 < MLP.len() {
            Activation::Relu
        } else {
            Activation::None
        };
        emb = x;
        x = m.linear(
            x,
            act,
            &rng.vec(n_in * n_out, -bound, bound),
            &rng.vec(n_out, -0.1, 0.1),
        );
    }
    m.outputs(x, emb)
}

fn bench_linear(c: &mut Criterion) {
    let mut rng = Rng(7);
    for (n_in, n_out) in MLP {
        let (w, b) = (
            le_f32(&rng.vec(n_in * n_out, -0.1, 0.1)),
            le_f32(&rng.vec(n_out, -0.1, 0.1)),
        );
        let x = rng.vec(n_in, 0.0, 1.0);
        let p = LinearParams {
            rows: 1,
            in_features: n_in,
            out_features: n_out,
            activation: Activation::Relu,
        };
        let (w, b) = (F32Data::from_le_bytes(&w), F32Data::from_le_bytes(&b));
        let mut y = vec![0.0f32; n_out];
        for path in host_paths() {
            kernels::limit_kernel_path(path);
            c.bench_function(
                &format!("linear_f32 {n_in}x{n_out} {}", path.name()),
                |bch| bch.iter(|| kernels::linear_f32(&p, black_box(&x), w, b, &mut y).unwrap()),
            );
        }

        let w8 = bytes_i8(&rng.i8s(n_in * n_out));
        let b32 = le_i32(&(0..n_out).map(|o| o as i32 * 37 - 500).collect::<Vec<_>>());
        let x8 = rng.i8s(n_in);
        let bench_quant = BenchQuant::new(n_out);
        let q = bench_quant.get(-3);
        let (w8, b32) = (I8Data::from_le_bytes(&w8), I32Data::from_le_bytes(&b32));
        let mut y8 = vec![0i8; n_out];
        for path in host_paths() {
            kernels::limit_kernel_path(path);
            c.bench_function(
                &format!("linear_s8 {n_in}x{n_out} {}", path.name()),
                |bch| {
                    bch.iter(|| {
                        kernels::linear_s8(&p, &q, black_box(&x8), w8, b32, &mut y8).unwrap()
                    })
                },
            );
        }
    }
    kernels::limit_kernel_path(KernelPath::Avx512);
}

fn bench_conv(c: &mut Criterion) {
    let mut rng = Rng(11);
    // (in channels, out channels, input side) of the trainer's cnn: 3×3, stride 1, pad 1.
    for (ci, co, side) in [(1usize, 8usize, 28usize), (8, 16, 14)] {
        let p = ConvParams {
            in_channels: ci,
            h: side,
            w: side,
            out_channels: co,
            window: Window::square(3, 1, 1),
            activation: Activation::Relu,
        };
        let (w, b) = (
            le_f32(&rng.vec(co * ci * 9, -0.3, 0.3)),
            le_f32(&rng.vec(co, -0.1, 0.1)),
        );
        let x = rng.vec(ci * side * side, 0.0, 1.0);
        let (w, b) = (F32Data::from_le_bytes(&w), F32Data::from_le_bytes(&b));
        let mut y = vec![0.0f32; co * side * side];
        c.bench_function(&format!("conv2d_f32 {ci}->{co} {side}x{side}"), |bch| {
            bch.iter(|| kernels::conv2d_f32(&p, black_box(&x), w, b, &mut y).unwrap())
        });

        let w8 = bytes_i8(&rng.i8s(co * ci * 9));
        let b32 = le_i32(&vec![-200; co]);
        let m = le_i32(&vec![1_518_500_250; co]);
        let s = bytes_i8(&vec![-8; co]);
        let x8 = rng.i8s(ci * side * side);
        let q = PerChannelQuant {
            input_zp: -5,
            output: QuantParams {
                scale: 0.05,
                zero_point: -128,
            },
            multiplier: I32Data::from_le_bytes(&m),
            shift: I8Data::from_le_bytes(&s),
        };
        let (w8, b32) = (I8Data::from_le_bytes(&w8), I32Data::from_le_bytes(&b32));
        let mut y8 = vec![0i8; co * side * side];
        c.bench_function(&format!("conv2d_s8 {ci}->{co} {side}x{side}"), |bch| {
            bch.iter(|| kernels::conv2d_s8(&p, &q, black_box(&x8), w8, b32, &mut y8).unwrap())
        });
    }
}

fn bench_mlp(c: &mut Criterion) {
    let f32_model = mlp_f32(2024);
    let mut rng = Rng(99);
    let inputs: Vec<Vec<f32>> = (0..16).map(|_| rng.vec(784, 0.0, 1.0)).collect();
    let int8_model = quantize_model(&f32_model, &inputs);
    for (label, owned) in [("f32", &f32_model), ("int8", &int8_model)] {
        let bytes = owned.encode().expect("bench model encodes");
        let model: Model<'_> = Model::from_bytes(&bytes).expect("bench model loads");
        let mut arena = vec![0u8; model.arena_size()];
        let x = &inputs[0];
        c.bench_function(&format!("mlp 784-256-128-10 {label} Model::run"), |bch| {
            bch.iter(|| {
                let out = model.run(black_box(x), &mut arena).unwrap();
                black_box(out.logits.get_f32(0));
            })
        });
    }
}

criterion_group!(benches, bench_linear, bench_conv, bench_mlp);
criterion_main!(benches);
