//! Process-wide numerics settings of libtorch, applied once at the start of every command that
//! runs libtorch, before its first operation.
//!
//! **Why.** A seeded CPU run must give identical bytes whatever else the machine is doing. Two
//! things in libtorch's CPU path break that unless they are pinned:
//!
//! * **MKL's dynamic threading.** Unless `at::set_num_threads` has been called, libtorch leaves
//!   MKL with `MKL_DYNAMIC` on (`MKL_VERBOSE` shows `Dyn:1`), and MKL may then run a GEMM on fewer
//!   threads than asked for. So every command sets the thread count explicitly
//!   ([`init_threads`]), which also switches MKL's dynamic mode off (`Dyn:0`).
//! * **MKL's thread-count-dependent GEMM.** Without Conditional Numerical Reproducibility, SGEMM
//!   results depend on the number of threads and on the code branch: the default MLP trained on
//!   MNIST for two epochs ends with different weights at 1 and at 2 threads (measured,
//!   `docs/trainer.md`). With `MKL_CBWR=AUTO,STRICT` (strict CNR, oneMKL ≥ 2019: `?gemm` on the
//!   AVX2 and AVX-512 branches is bitwise reproducible for any thread count) the same runs give
//!   identical bytes. [`pin_mkl`] sets it unless the user set `MKL_CBWR` already.
//!
//! * **MKL's vector math, first call.** ATen computes `sqrt`, `exp`, `log`, … on CPU float
//!   tensors with MKL's vector math library (VML), over 2048-element chunks spread on the intra-op
//!   threads. VML sets up a process-wide state at its first call; when that first call comes from
//!   two threads at once, one of them can compute its chunk with a less accurate method (relative
//!   error up to ≈ 2⁻¹⁴ instead of ≤ 1 ulp). In training, that is the first Adam step's `√v` of the
//!   first weight with ≥ 4096 elements. Measured (Intel Xeon, 2 threads, MKL 2024.0 in PyTorch
//!   2.11.0, fresh processes beside 6 busy loops, `host-trainer/examples/vml_first_call.rs`): a
//!   GEMM then `sqrt` of 16,384 floats gave a different half in 11 of 600 processes, and in 0 of
//!   600 after one single-element `sqrt` first; that warm-up also protects `exp` (6 of 250 → 0 of
//!   250), so the state is shared by all VML functions. [`init_threads`] makes that call
//!   ([`warm_up_vml`]) before any other tensor operation.
//!
//! MKL reads `MKL_CBWR` when it initializes, at its first call, so [`pin_mkl`] must run before
//! any tensor operation; `main` calls it first thing. Library users who run libtorch themselves
//! set `MKL_CBWR=AUTO,STRICT` in the environment instead (`.cargo/config.toml` does so for every
//! `cargo run` / `cargo test` of this workspace).
//!
//! What stays outside the guarantee (see `docs/trainer.md`): other CPU models (`AUTO` picks the
//! branch of the CPU at hand, and ATen's own vectorized kernels dispatch on it too), CUDA, and
//! different `--threads` values for ops other than GEMM.

use anyhow::{bail, Result};

/// The environment variable that selects MKL's reproducibility mode.
pub const MKL_CBWR_ENV: &str = "MKL_CBWR";
/// Our value: the CPU's own branch, strict mode (thread-count-independent GEMM).
pub const MKL_CBWR_VALUE: &str = "AUTO,STRICT";
/// Largest `--threads` accepted (anything above is a typo, not a machine).
pub const MAX_THREADS: i32 = 1024;

/// Sets `MKL_CBWR=AUTO,STRICT` unless the environment already names a mode. Call it before any
/// libtorch operation and before spawning threads (it writes the process environment).
pub fn pin_mkl() {
    if std::env::var_os(MKL_CBWR_ENV).is_none() {
        std::env::set_var(MKL_CBWR_ENV, MKL_CBWR_VALUE);
    }
}

/// Checks a `--threads` value: 1 ..= [`MAX_THREADS`].
pub fn check_threads(n: i32) -> Result<i32> {
    if !(1..=MAX_THREADS).contains(&n) {
        bail!("--threads {n}: must be between 1 and {MAX_THREADS}");
    }
    Ok(n)
}

/// Sets libtorch's intra-op thread count explicitly: `threads`, or libtorch's default for this
/// machine (its physical core count, which does not depend on load). Setting it at all is what
/// turns MKL's dynamic threading off. Returns the count in effect.
pub fn init_threads(threads: Option<i32>) -> Result<i32> {
    let n = match threads {
        Some(n) => check_threads(n)?,
        None => tch::get_num_threads().max(1),
    };
    tch::set_num_threads(n);
    warm_up_vml();
    Ok(n)
}

/// Calls MKL's vector math library once, on one element and so on this thread only, so that its
/// lazily built process-wide state exists before two threads can reach it at once (see the
/// module docs: without it, the first multi-threaded `sqrt` of a run could differ between
/// processes). Idempotent and cheap; [`init_threads`] and [`crate::run::train`] call it.
pub fn warm_up_vml() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tch::Tensor::from_slice(&[2.0f32]).sqrt();
    });
}

/// [`pin_mkl`], then [`init_threads`]: what every libtorch command does first.
pub fn init(threads: Option<i32>) -> Result<i32> {
    pin_mkl();
    init_threads(threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_outside_the_range_are_refused() {
        for bad in [0, -1, i32::MIN, MAX_THREADS + 1] {
            let e = check_threads(bad).unwrap_err().to_string();
            assert!(
                e.contains("--threads") && e.contains(&bad.to_string()),
                "{e}"
            );
        }
        assert_eq!(check_threads(1).unwrap(), 1);
        assert_eq!(check_threads(MAX_THREADS).unwrap(), MAX_THREADS);
    }
}
