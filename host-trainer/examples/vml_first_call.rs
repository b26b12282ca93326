//! The first-call race in MKL's vector math (VML) that `runtime::warm_up_vml` closes (see
//! `host-trainer/src/runtime.rs`): at 2 intra-op threads, one GEMM (MKL starts its threads), then
//! one `FN` (sqrt, exp or log) over 16,384 floats, whose bits are printed as a hash. Run it in
//! many fresh processes beside a CPU load and count the distinct hashes: more than one means the
//! race happened. With `--warm`, `runtime::warm_up_vml` runs first, as every command does.
//!
//! ```sh
//! cargo build --release -p denoiserep-trainer --example vml_first_call
//! for i in $(seq 6); do timeout 300 sh -c 'while :; do :; done' & done
//! for i in $(seq 600); do FN=sqrt target/release/examples/vml_first_call; done | sort | uniq -c
//! for i in $(seq 600); do FN=sqrt target/release/examples/vml_first_call --warm; done | sort | uniq -c
//! ```

use denoiserep_trainer::runtime;
use tch::{Device, Kind, Tensor};

fn main() {
    runtime::pin_mkl();
    tch::set_num_threads(2);
    if std::env::args().any(|a| a == "--warm") {
        runtime::warm_up_vml();
    }
    let op = std::env::var("FN").unwrap_or_else(|_| "sqrt".into());
    tch::manual_seed(0);
    let a = Tensor::randn([32, 64], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([64, 256], (Kind::Float, Device::Cpu));
    let _ = a.matmul(&b);
    let x: Vec<f32> = (0..16_384).map(|i| 1e-6 + i as f32 * 1.37e-5).collect();
    let x = Tensor::from_slice(&x);
    let y = match op.as_str() {
        "sqrt" => x.sqrt(),
        "exp" => x.exp(),
        "log" => x.log(),
        other => panic!("FN={other}: expected sqrt, exp or log"),
    };
    let y = Vec::<f32>::try_from(y).expect("a float tensor");
    let hash = y.iter().fold(0u64, |h, v| {
        h.wrapping_mul(1_000_003)
            .wrapping_add(u64::from(v.to_bits()))
    });
    println!("{op} {hash:016x}");
}
