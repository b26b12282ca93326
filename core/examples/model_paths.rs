//! A whole model file, batch 1, on each host kernel path of this CPU in turn, in one process:
//! interleaved rounds, min and median over rounds of the mean of `CALLS` runs, then the time of
//! each op on each path (min over rounds of its mean, measured between the interpreter's
//! `after_op` calls). Steadier than one criterion run per variant on a busy machine, and it says
//! which op to work on. Numbers: `docs/kernels.md`.
//!
//! ```sh
//! cargo run --release -p denoiserep-core --example model_paths --locked -- model.dnrp
//! ONLY=avx2 ROUNDS=20 CALLS=50 cargo run --release -p denoiserep-core --example model_paths --locked -- a.dnrp b.dnrp
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use common::{env_count, host_paths_from_env};
use denoiserep_core::kernels::{self, KernelPath};
use denoiserep_core::{Model, ARENA_ALIGN};
use std::time::Instant;

/// `len` zero bytes starting on a 64-byte boundary (a file as `denoiserep infer` holds it).
fn aligned(len: usize) -> (Vec<[u8; 64]>, usize) {
    (vec![[0u8; 64]; len.div_ceil(64) + 1], len)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (rounds, calls) = (env_count("ROUNDS", 15), env_count("CALLS", 30));
    let files: Vec<String> = std::env::args().skip(1).collect();
    assert!(
        !files.is_empty(),
        "usage: model_paths FILE.dnrp [FILE.dnrp ...]"
    );
    let paths = host_paths_from_env();
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (mut store, len) = aligned(bytes.len());
        let flat: &mut [u8] = store.as_flattened_mut();
        flat[..len].copy_from_slice(&bytes);
        let model = Model::from_bytes(&flat[..len]).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut arena_store = vec![0u8; model.arena_size() + ARENA_ALIGN];
        let skip = arena_store.as_ptr().align_offset(ARENA_ALIGN);
        let arena = &mut arena_store[skip..];
        let input: Vec<f32> = (0..model.input_len())
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        let mut whole: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
        let mut per_op = vec![vec![f64::INFINITY; model.op_count()]; paths.len()];
        let mut kinds = vec![String::new(); model.op_count()];
        model
            .run_with(&input, arena, |step| {
                kinds[step.index] = format!("{:?}", step.kind)
            })
            .expect("the model runs");
        for _ in 0..rounds {
            for (k, &path) in paths.iter().enumerate() {
                kernels::limit_kernel_path(path);
                let mut op_sum = vec![0.0f64; kinds.len()];
                let t0 = Instant::now();
                for _ in 0..calls {
                    let mut last = Instant::now();
                    model
                        .run_with(&input, arena, |step| {
                            let now = Instant::now();
                            op_sum[step.index] += (now - last).as_secs_f64();
                            last = now;
                        })
                        .expect("the model runs");
                }
                whole[k].push(t0.elapsed().as_secs_f64() * 1e6 / calls as f64);
                for (m, s) in per_op[k].iter_mut().zip(op_sum) {
                    *m = m.min(s * 1e6 / calls as f64);
                }
            }
        }
        kernels::limit_kernel_path(KernelPath::Avx512);
        println!("{file}: {} ops", kinds.len());
        for (k, path) in paths.iter().enumerate() {
            let min = whole[k].iter().copied().fold(f64::INFINITY, f64::min);
            println!(
                "  {path:?}: min {min:.1} µs, median {:.1} µs",
                median(&mut whole[k])
            );
        }
        let head: Vec<String> = paths
            .iter()
            .map(|p| format!("{:>9}", format!("{p:?}")))
            .collect();
        println!("  per op, min µs:      {}", head.join(" "));
        for (i, kind) in kinds.iter().enumerate() {
            let t: Vec<String> = per_op.iter().map(|v| format!("{:9.1}", v[i])).collect();
            println!("    {i:3} {kind:<16} {}", t.join(" "));
        }
    }
}
