//! Benchmarks (ignored by default; they print times and assert only correctness):
//! `cargo test --release -p denoiserep-trainer --test eval_bench -- --ignored --nocapture`.
//! The numbers are recorded in docs/data.md.

use std::time::Instant;

use denoiserep_trainer::data::Rng;
use denoiserep_trainer::eval;

/// Clustered embeddings (10 classes) like a trained network's: prototype + noise.
fn embeddings(n: usize, dim: usize, rng: &mut Rng) -> (Vec<f32>, Vec<u32>) {
    let mut p = Rng::new(1);
    let protos: Vec<f32> = (0..10 * dim).map(|_| p.normal() as f32).collect();
    let labels: Vec<u32> = (0..n).map(|i| (i % 10) as u32).collect();
    let x = labels
        .iter()
        .flat_map(|&l| {
            (0..dim)
                .map(|k| protos[l as usize * dim + k])
                .collect::<Vec<_>>()
        })
        .map(|v| v + 4.0 * rng.normal() as f32)
        .collect();
    (x, labels)
}

fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..reps {
        let t = Instant::now();
        out = Some(f());
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, out.unwrap())
}

#[test]
#[ignore = "benchmark"]
fn bench_retrieval_2000x8000() {
    for dim in [128, 256] {
        let mut rng = Rng::new(2);
        let (q, ql) = embeddings(2000, dim, &mut rng);
        let (g, gl) = embeddings(8000, dim, &mut rng);
        let (t_one, r) = best_of(3, || eval::retrieval_threads(&q, &ql, &g, &gl, dim, 1));
        let (t_all, r_all) = best_of(3, || eval::retrieval(&q, &ql, &g, &gl, dim));
        assert_eq!(r, r_all);
        // The reference on the first 200 queries, extrapolated to 2000.
        let (t_ref, r_ref) = best_of(1, || {
            eval::retrieval_naive(&q[..200 * dim], &ql[..200], &g, &gl, dim)
        });
        let r_sub = eval::retrieval(&q[..200 * dim], &ql[..200], &g, &gl, dim);
        assert!((r_sub.map - r_ref.map).abs() < 1e-6 && r_sub.rank1 == r_ref.rank1);
        println!(
            "retrieval 2000 x 8000 x {dim}: 1 thread {t_one:.3} s, all cores {t_all:.3} s (mAP {:.4}, rank-1 {:.4}); reference ≈ {:.2} s",
            r.map,
            r.rank1,
            t_ref * 10.0
        );
    }
}
