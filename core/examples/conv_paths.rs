//! Host Conv2d, f32 and int8, on the conv layers of `resnet8` for MNIST (1×28×28 input), each
//! kernel path of this CPU in turn in one process: interleaved rounds, min and median over rounds
//! of the mean of `CALLS` calls (random data, seeded). Numbers: `docs/kernels.md`.
//!
//! ```sh
//! cargo run --release -p denoiserep-core --example conv_paths --locked
//! ONLY=avx2 SHAPE=6 ROUNDS=40 cargo run --release -p denoiserep-core --example conv_paths --locked
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use common::{bytes_i8, env_count, host_paths_from_env, le_f32, le_i32, BenchQuant, Rng};
use denoiserep_core::kernels::params::{ConvParams, Window};
use denoiserep_core::kernels::{self, KernelPath};
use denoiserep_core::{Activation, F32Data, I32Data, I8Data};
use std::time::Instant;

/// A square window: kernel `k`, stride `s`, padding `[top, bottom, left, right]`.
fn win(k: usize, s: usize, p: [usize; 4]) -> Window {
    Window {
        kh: k,
        kw: k,
        sh: s,
        sw: s,
        pad_top: p[0],
        pad_bottom: p[1],
        pad_left: p[2],
        pad_right: p[3],
    }
}

fn stats(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

fn main() {
    let (rounds, calls) = (env_count("ROUNDS", 20), env_count("CALLS", 20));
    let paths = host_paths_from_env();
    // (ci, co, window, h × w): resnet8's convolutions on a 28×28 input.
    let same = [1; 4];
    let down = [0, 1, 0, 1];
    let shapes = [
        (1, 16, win(3, 1, same), 28),
        (16, 16, win(3, 1, same), 28),
        (16, 32, win(3, 2, down), 28),
        (32, 32, win(3, 1, same), 14),
        (16, 32, win(1, 2, [0; 4]), 28),
        (32, 64, win(3, 2, down), 14),
        (64, 64, win(3, 1, same), 7),
        (32, 64, win(1, 2, [0; 4]), 14),
    ];
    println!("layer (ci→co, k, s, input)   precision  path      min µs  median µs");
    let pick = std::env::var("SHAPE")
        .ok()
        .map(|v| v.parse::<usize>().expect("SHAPE=index"));
    for (n, &(ci, co, window, hw)) in shapes.iter().enumerate() {
        if pick.is_some_and(|k| k != n) {
            continue;
        }
        let p = ConvParams {
            in_channels: ci,
            h: hw,
            w: hw,
            out_channels: co,
            window,
            activation: Activation::Relu,
        };
        let (oh, ow) = window.out_dims(hw, hw).expect("a valid window");
        let per_out = ci * window.kh * window.kw;
        let mut rng = Rng(7);
        let wf = le_f32(&rng.vec(co * per_out, -0.5, 0.5));
        let bf = le_f32(&rng.vec(co, -0.1, 0.1));
        let xf = rng.vec(ci * hw * hw, 0.0, 1.0);
        let w8 = bytes_i8(&rng.i8s(co * per_out));
        let b8 = le_i32(&(0..co).map(|i| i as i32 * 37 - 500).collect::<Vec<_>>());
        let x8 = rng.i8s(ci * hw * hw);
        let bq = BenchQuant::new(co);
        let q = bq.get(-3);
        let mut yf = vec![0.0f32; co * oh * ow];
        let mut y8 = vec![0i8; co * oh * ow];
        let mut times = vec![[Vec::new(), Vec::new()]; paths.len()];
        for _ in 0..rounds {
            for (k, &path) in paths.iter().enumerate() {
                kernels::limit_kernel_path(path);
                let t0 = Instant::now();
                for _ in 0..calls {
                    kernels::conv2d_f32(
                        &p,
                        &xf,
                        F32Data::from_le_bytes(&wf),
                        F32Data::from_le_bytes(&bf),
                        &mut yf,
                    )
                    .expect("conv f32");
                }
                times[k][0].push(t0.elapsed().as_secs_f64() * 1e6 / calls as f64);
                let t0 = Instant::now();
                for _ in 0..calls {
                    kernels::conv2d_s8(
                        &p,
                        &q,
                        &x8,
                        I8Data::from_le_bytes(&w8),
                        I32Data::from_le_bytes(&b8),
                        &mut y8,
                    )
                    .expect("conv int8");
                }
                times[k][1].push(t0.elapsed().as_secs_f64() * 1e6 / calls as f64);
            }
        }
        kernels::limit_kernel_path(KernelPath::Avx512);
        let layer = format!("{ci}→{co}, {}, s{}, {hw}×{hw}", window.kh, window.sh);
        for (k, path) in paths.iter().enumerate() {
            for (precision, t) in ["f32", "int8"].iter().zip(times[k].iter_mut()) {
                let (min, median) = stats(t);
                println!(
                    "{layer:<28} {precision:<10} {:<9} {min:7.1} {median:9.1}",
                    format!("{path:?}")
                );
            }
        }
    }
}
