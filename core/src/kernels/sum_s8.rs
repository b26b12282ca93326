//! The sum of an int8 slice, for the average pools: `Σ_i x[i]` as an i32, exact whenever the
//! true sum fits (the pools bound the count by [`super::MAX_POOL_COUNT`]).
//!
//! On the Cortex-M4 (`cfg(denoiserep_dsp)`) four values per `USADA8`: a word of four int8 values
//! `x0..x3` XOR `0x8080_8080` is the four unsigned bytes `x_i + 128`, and
//! `USADA8 acc, u, #0` adds `Σ_i |u_i − 0| = Σ_i (x_i + 128)` to `acc`. So
//! `Σ x = Σ (x + 128) − 128·n` modulo 2^32, which is the exact i32 sum when that fits; the u32
//! accumulator itself never wraps for `n ≤ 2^32 / 255` values (more than any pool allows, and
//! even then the result is still right modulo 2^32). Per 16 values: four unaligned `LDR`, four
//! `EOR`, four `USADA8` and the loop test, about 0.9 instructions per value against 3–4 for the
//! plain loop (`LDRSB` + `ADD` + loop). The 0–15 values past the last 16 take the same step a word at a time, the last 0–3 the plain
//! loop.
//!
//! Every other target runs the same word loop with `USADA8` written out in Rust (so the host's
//! unit tests check the arithmetic the device runs), except where the `reference-kernels`
//! feature turns the DSP off: the plain loop is then the only path, and the fast path is
//! compiled only for the tests.

/// `Σ x[i]` (wrapping in i32; exact when the true sum fits, as for every pool's count).
#[inline]
pub(crate) fn sum_s8(x: &[i8]) -> i32 {
    #[cfg(denoiserep_dsp)]
    {
        sum_s8_words(x)
    }
    #[cfg(not(denoiserep_dsp))]
    {
        sum_s8_plain(x)
    }
}

/// The plain loop: one value at a time.
#[cfg_attr(denoiserep_dsp, allow(dead_code))]
#[inline]
fn sum_s8_plain(x: &[i8]) -> i32 {
    x.iter()
        .fold(0i32, |acc, &v| acc.wrapping_add(i32::from(v)))
}

/// `USADA8 acc, u, #0` (the zero register): `acc + Σ` of the four unsigned bytes of `u`.
#[cfg(denoiserep_dsp)]
#[inline(always)]
fn usada8_0(acc: u32, u: u32) -> u32 {
    let r: u32;
    // SAFETY: one register-only DSP instruction (ARMv7E-M); no memory, stack or flags.
    unsafe {
        core::arch::asm!("usada8 {r}, {u}, {z}, {a}", r = lateout(reg) r, u = in(reg) u,
            z = in(reg) 0u32, a = in(reg) acc, options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `USADA8`'s definition with a zero second operand: the host's stand-in (see the module docs).
#[cfg(not(denoiserep_dsp))]
#[inline(always)]
fn usada8_0(acc: u32, u: u32) -> u32 {
    u.to_le_bytes()
        .iter()
        .fold(acc, |a, &b| a.wrapping_add(u32::from(b)))
}

/// The word loop of the module docs: 16 values per step, then 4, then the plain loop on the
/// last 0–3.
#[cfg_attr(not(denoiserep_dsp), allow(dead_code))]
#[inline(never)]
fn sum_s8_words(x: &[i8]) -> i32 {
    const FLIP: u32 = 0x8080_8080;
    let word = |b: &[i8]| match b {
        // One unaligned `LDR` on ARMv7-M (`u32::from_le_bytes` of four bytes).
        &[b0, b1, b2, b3] => u32::from_le_bytes([b0 as u8, b1 as u8, b2 as u8, b3 as u8]) ^ FLIP,
        _ => 0x8080_8080 ^ FLIP, // never: `chunks_exact(4)` (adds 0)
    };
    let blocks = x.chunks_exact(16);
    let rest = blocks.remainder();
    let mut acc = 0u32;
    let mut n = 0u32;
    for block in blocks {
        let (a, b) = block.split_at(8);
        let (a0, a1) = a.split_at(4);
        let (b0, b1) = b.split_at(4);
        acc = usada8_0(acc, word(a0));
        acc = usada8_0(acc, word(a1));
        acc = usada8_0(acc, word(b0));
        acc = usada8_0(acc, word(b1));
        n = n.wrapping_add(16);
    }
    // Then whole words of the rest, Σ x = Σ (x + 128) − 128·n (mod 2^32), and the last 0–3.
    let words = rest.chunks_exact(4);
    let last = words.remainder();
    for w4 in words {
        acc = usada8_0(acc, word(w4));
        n = n.wrapping_add(4);
    }
    let body = acc.wrapping_sub(n.wrapping_mul(128)) as i32;
    body.wrapping_add(sum_s8_plain(last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// The word loop (the device's arithmetic, `USADA8` emulated) equals the plain sum on every
    /// length 0..=80 (every tail and block count) for extreme and mixed values.
    #[test]
    fn word_loop_equals_plain_sum_at_every_length() {
        for len in 0..=80usize {
            for fill in [-128i8, 127, -1, 0, 1] {
                let x = vec![fill; len];
                assert_eq!(
                    sum_s8_words(&x),
                    i32::from(fill) * len as i32,
                    "len {len} {fill}"
                );
            }
            let mixed: Vec<i8> = (0..len).map(|i| (i as i32 * 37 - 128) as i8).collect();
            assert_eq!(sum_s8_words(&mixed), sum_s8_plain(&mixed), "len {len}");
            // An unaligned start (the pools' planes start anywhere in the arena).
            if len > 1 {
                assert_eq!(sum_s8_words(&mixed[1..]), sum_s8_plain(&mixed[1..]));
            }
        }
    }

    #[test]
    fn long_extreme_sums_are_exact() {
        // 2^20 values of −128 and of 127: the u32 accumulator holds 2^20 · 255 without wrapping
        // and the correction term 128·n is exact.
        let n = 1 << 20;
        assert_eq!(sum_s8_words(&vec![-128i8; n]), -128 * n as i32);
        assert_eq!(sum_s8_words(&vec![127i8; n]), 127 * n as i32);
        assert_eq!(sum_s8(&vec![-128i8; n]), -128 * n as i32);
    }

    proptest! {
        #[test]
        fn word_loop_equals_plain_sum(x in proptest::collection::vec(any::<i8>(), 0..300)) {
            prop_assert_eq!(sum_s8_words(&x), sum_s8_plain(&x));
            prop_assert_eq!(sum_s8(&x), sum_s8_plain(&x));
        }
    }
}
