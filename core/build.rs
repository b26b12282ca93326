//! Sets `cfg(denoiserep_dsp)` when building for `thumbv7em-*` (ARMv7E-M: Cortex-M4/M7, whose
//! DSP extension — SXTB16, SXTAB16, SMLAD — is part of the architecture, not optional), so the
//! int8 Linear and Conv2d kernels of `kernels/linear_s8_dsp.rs` and `kernels/conv2d_s8_dsp.rs`
//! replace the reference loops there. Stable
//! Rust does not expose `cfg(target_feature = "dsp")` for Arm (`arm_target_feature` is
//! unstable), hence the target name. Every other target (the host, thumbv6m, thumbv8m, …) keeps
//! the reference kernels.
//!
//! Also sets `cfg(denoiserep_fpu)` for the hard-float `thumbv7em-*eabihf` targets (an FPv4-SP or
//! FPv5 FPU; the Cortex-M4F/M7 f32 kernels of `kernels/f32_m4.rs`, which use `VLDM`/`VMUL`/
//! `VADD`). The soft-float `thumbv7em-none-eabi` has no FPU registers to use: it keeps the f32
//! reference loops.
//!
//! The `reference-kernels` feature sets neither: every target then runs the reference loops (the
//! same bits, slower), which drops the DSP and FPU kernels from a flash budget too small for them
//! (docs/firmware.md, "Footprint and op families").

fn main() {
    println!("cargo:rustc-check-cfg=cfg(denoiserep_dsp)");
    println!("cargo:rustc-check-cfg=cfg(denoiserep_fpu)");
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let reference_only = std::env::var_os("CARGO_FEATURE_REFERENCE_KERNELS").is_some();
    if target.starts_with("thumbv7em-") && !reference_only {
        println!("cargo:rustc-cfg=denoiserep_dsp");
        if target.ends_with("eabihf") {
            println!("cargo:rustc-cfg=denoiserep_fpu");
        }
    }
}
