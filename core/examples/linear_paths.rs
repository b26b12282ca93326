//! Host int8 and f32 Linear, each kernel path of this CPU timed in turn in one process, and f32
//! with its weights at several offsets from a 64-byte boundary (model files place weights at any
//! address). Interleaved rounds, min and median over rounds of the mean of 300 calls: steadier
//! than one criterion run per variant on a busy machine. Numbers: `docs/kernels.md`.
//!
//! ```sh
//! cargo run --release -p denoiserep-core --example linear_paths --locked   # 784 → 256
//! IN=256 OUT=128 cargo run --release -p denoiserep-core --example linear_paths --locked
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use common::{bytes_i8, env_count, host_paths, le_f32, le_i32, BenchQuant};
use denoiserep_core::kernels::params::LinearParams;
use denoiserep_core::kernels::{self, KernelPath};
use denoiserep_core::{Activation, F32Data, I32Data, I8Data};
use std::time::Instant;

const ROUNDS: usize = 40;
const CALLS: usize = 300;
/// Offsets of the f32 weights from a 64-byte boundary.
const OFFSETS: [usize; 3] = [0, 4, 49];

/// Mean µs per call of `f` over [`CALLS`] calls.
fn time(mut f: impl FnMut()) -> f64 {
    let t0 = Instant::now();
    for _ in 0..CALLS {
        f();
    }
    t0.elapsed().as_secs_f64() * 1e6 / CALLS as f64
}

fn main() {
    let (n_in, n_out) = (env_count("IN", 784), env_count("OUT", 256));
    let p = LinearParams {
        rows: 1,
        in_features: n_in,
        out_features: n_out,
        activation: Activation::Relu,
    };
    let w = le_f32(
        &(0..n_in * n_out)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-4 - 0.05)
            .collect::<Vec<_>>(),
    );
    let b = le_f32(&(0..n_out).map(|o| o as f32 * 1e-3).collect::<Vec<_>>());
    let x: Vec<f32> = (0..n_in).map(|i| (i % 17) as f32 * 0.05).collect();
    // One buffer per offset: the weights start `off` bytes after a 64-byte boundary.
    let placed: Vec<(Vec<u8>, usize)> = OFFSETS
        .iter()
        .map(|&off| {
            let mut buf = vec![0u8; 128 + w.len()];
            let start = (64 - buf.as_ptr() as usize % 64) % 64 + off;
            buf[start..start + w.len()].copy_from_slice(&w);
            (buf, start)
        })
        .collect();
    let w8 = bytes_i8(
        &(0..n_in * n_out)
            .map(|i| ((i * 31) % 256) as u8 as i8)
            .collect::<Vec<_>>(),
    );
    let b32 = le_i32(&(0..n_out).map(|o| o as i32 * 37 - 500).collect::<Vec<_>>());
    let x8: Vec<i8> = (0..n_in).map(|i| ((i * 13) % 256) as u8 as i8).collect();
    let bench_quant = BenchQuant::new(n_out);
    let (w8, b32) = (I8Data::from_le_bytes(&w8), I32Data::from_le_bytes(&b32));

    let paths = host_paths();
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    for round in 0..ROUNDS {
        let mut k = 0;
        let mut record = |label: String, us: f64| {
            if round == 0 {
                rows.push((label, Vec::new()));
            }
            rows[k].1.push(us);
            k += 1;
        };
        for &path in &paths {
            kernels::limit_kernel_path(path);
            let name = path.name();
            for (off, (buf, start)) in OFFSETS.iter().zip(&placed) {
                let wf = F32Data::from_le_bytes(&buf[*start..*start + w.len()]);
                let bf = F32Data::from_le_bytes(&b);
                let mut y = vec![0f32; n_out];
                let us = time(|| {
                    kernels::linear_f32(&p, std::hint::black_box(&x), wf, bf, &mut y).unwrap()
                });
                record(format!("f32 {name}, weights at 64·k + {off}"), us);
            }
            for zp in [-3i8, -128] {
                let q = bench_quant.get(zp);
                let mut y = vec![0i8; n_out];
                let us = time(|| {
                    kernels::linear_s8(&p, &q, std::hint::black_box(&x8), w8, b32, &mut y).unwrap()
                });
                record(format!("int8 {name}, zp_in {zp}"), us);
            }
        }
    }
    kernels::limit_kernel_path(KernelPath::Avx512);
    println!("Linear {n_in} → {n_out}, {ROUNDS} rounds of {CALLS} calls per variant");
    println!("| variant | min µs | median µs |\n|---|---:|---:|");
    for (label, mut t) in rows {
        t.sort_by(f64::total_cmp);
        println!("| {label} | {:.2} | {:.2} |", t[0], t[t.len() / 2]);
    }
}
