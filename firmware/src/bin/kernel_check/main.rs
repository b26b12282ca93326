//! `kernel-check`: the Cortex-M4 DSP int8 kernels (issue 14) against their reference loops, bit
//! for bit, in QEMU, and timed with the SysTick counter (instructions under `-icount shift=0`) on
//! the CMSIS-NN anchor shapes (`../shared/FACTS.md` §7, `docs/benchmarks.md`).
//!
//! One module per kernel family, each with a `run(counter, arena)` that checks random cases,
//! times the anchor shapes, logs its lines and exits with `RunFailed` (7) on the first mismatch
//! (logged in full):
//!
//! - `fc.rs`: int8 Linear, `kernels::linear_s8_dsp` and the engine's dispatch `kernels::linear_s8`
//!   against `kernels::linear_s8_reference`. Log: `kernel_check cases=… mismatches=0`, then one
//!   `fc in=… out=… macs=… reference_instructions=… dsp_instructions=…` line per anchor shape.
//! - `conv.rs`: int8 Conv2d, `kernels::conv2d_s8_dsp` and the engine's dispatch
//!   `kernels::conv2d_s8_with_scratch` (and `conv2d_s8` without scratch) against
//!   `kernels::conv2d_s8_reference`. Log: `kernel_check conv cases=… mismatches=0`, then one
//!   `conv name=… macs=… reference_instructions=… dsp_instructions=… checksum=…` line per anchor
//!   conv shape (the checksum is the C harness's FNV-1a of the output).
//! - `depthwise.rs`: int8 depthwise convolution, `kernels::depthwise_conv2d_s8_dsp` and the
//!   dispatch `kernels::depthwise_conv2d_s8` against `kernels::depthwise_conv2d_s8_reference`
//!   (`depthwise_check cases=… mismatches=0`, one `depthwise name=… macs=…
//!   reference_instructions=… dsp_instructions=… checksum=…` line per anchor shape, and one
//!   `depthwise_extra name=… cmsis_instructions=…` line per mobilenet-v1:0.25 small-plane shape,
//!   with the CMSIS-NN count of its `bench/cmsis-nn/counts.txt` row), then the DSP
//!   kernels' `quant::Requantizer` against `quant::requantize` (`requant cases=… mismatches=0
//!   calls=… reference_instructions=… fast_instructions=… fast_per_channel_instructions=…`).
//! - `f32.rs`: f32 Linear, Conv2d and DepthwiseConv2d, the Cortex-M4F fast paths of
//!   `kernels/f32_m4.rs` (`kernels::linear_f32_m4`, `conv2d_f32_m4`, `depthwise_conv2d_f32_m4`)
//!   and the engine's dispatch against the reference loops, bit for bit (NaN as NaN), on random
//!   layers with ±0.0, subnormals, ±∞ and NaN. Log: `f32_check cases=… mismatches=0`, then one
//!   `f32 name=… skew=… macs=… reference_instructions=… fast_instructions=…` line per timed
//!   shape (`skew` = the weights' byte offset from 4-alignment).
//! - `quantize.rs`: the int8 model's input step, `kernels::normalize_quantize` (fixed-point
//!   `VCVT` rounding on the Cortex-M4F) against `quant::quantize` (`libm::roundf`) on ties, their
//!   neighbours, ±0, subnormals, ±∞, NaN, huge and random values. Log: `quantize cases=…
//!   mismatches=0 values=784 fast_instructions=… reference_instructions=…`.
//! - `add.rs`: int8 elementwise Add, the dispatch `kernels::add_s8` (the DSP loop: one `SMMULR`
//!   per multiplier) against `kernels::add_s8_reference` on random parameters, every input pair
//!   and out-of-contract parameters. Log: `add cases=… elements=… mismatches=0 timed=…
//!   reference_instructions=… dsp_instructions=…`.
//!
//! The last line is `kernel_check ok` (exit 0). `tests/tests/device_kernels.rs` runs it.
#![no_std]
#![no_main]

#[cfg(not(feature = "reference-kernels"))]
mod add;
#[cfg(not(feature = "reference-kernels"))]
mod conv;
#[cfg(not(feature = "reference-kernels"))]
mod depthwise;
#[cfg(not(feature = "reference-kernels"))]
mod f32;
#[cfg(not(feature = "reference-kernels"))]
mod fc;
#[cfg(not(feature = "reference-kernels"))]
mod pool;
#[cfg(not(feature = "reference-kernels"))]
mod quantize;

use cortex_m_rt::entry;
use defmt_semihosting as _;
use denoiserep_firmware::{exit, Buffers, ExitCode, InstructionCounter};

/// xorshift32: the random cases of every module.
#[cfg_attr(feature = "reference-kernels", allow(dead_code))]
pub(crate) struct Rng(pub(crate) u32);

#[cfg_attr(feature = "reference-kernels", allow(dead_code))]
impl Rng {
    pub(crate) fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
    pub(crate) fn i8(&mut self) -> i8 {
        self.next() as u8 as i8
    }
    /// One of `picks` or, with probability 1/(len + 1), a random byte.
    pub(crate) fn i8_from(&mut self, picks: &[i8]) -> i8 {
        match picks.get(self.below(picks.len() as u32 + 1) as usize) {
            Some(&v) => v,
            None => self.i8(),
        }
    }
}

#[entry]
fn main() -> ! {
    let Some(buffers) = Buffers::take() else {
        exit(ExitCode::Panic)
    };
    let peripherals = cortex_m::Peripherals::take().expect("first and only take");
    let counter = InstructionCounter::start(peripherals.SYST);
    let arena = &mut buffers.arena[..];
    #[cfg(not(feature = "reference-kernels"))]
    {
        fc::run(&counter, arena);
        conv::run(&counter, arena);
        depthwise::run(&counter, arena);
        f32::run(&counter, arena);
        quantize::run(&counter);
        add::run(&counter, arena);
        pool::run(&counter, arena);
    }
    #[cfg(feature = "reference-kernels")]
    {
        let _ = (&counter, arena);
        defmt::info!("kernel_check: built with reference-kernels, no DSP/FPU kernel to check");
    }
    defmt::info!("kernel_check ok");
    exit(ExitCode::Ok)
}
