//! aarch64: int8 Linear with NEON intrinsics. NEON (Advanced SIMD) is part of every aarch64
//! CPU, so nothing is detected at run time; the [`KernelPath::Portable`] path runs this kernel
//! there (the reference loop stays the oracle and the [`KernelPath::Reference`] path).
//!
//! Per 16 inputs: the input chunk is widened once to i16 `x − zp_in` (`sxtl`, `sxtl2`, `sub`;
//! `x − zp_in ∈ [−255, 255]`), shared by the block's 4 rows; each row's 16 weights are widened
//! (`sxtl`, `sxtl2`) and multiplied into two i32x4 accumulators with `smlal` / `smlal2`
//! (`|w·(x − zp_in)| ≤ 128·255`, exact in i32; the accumulators wrap like the reference's
//! `wrapping_add`). The row's sum is `addv` of the two accumulators (wrapping), then the last
//! `n_in mod 16` terms one at a time. Integer sums are exact in any order, so every output is
//! the reference's, bit for bit. (The i8 × i8 `smull` would need the zero point folded into a
//! per-row weight sum; the `sdot` of ARMv8.2 would need run-time detection, which `core`, being
//! `no_std`, cannot do portably.)
//!
//! [`KernelPath::Portable`]: crate::kernels::KernelPath::Portable
//! [`KernelPath::Reference`]: crate::kernels::KernelPath::Reference

use core::arch::aarch64::{
    int32x4_t, vaddq_s32, vaddvq_s32, vdupq_n_s16, vdupq_n_s32, vget_low_s16, vget_low_s8,
    vld1q_s8, vmlal_high_s16, vmlal_s16, vmovl_high_s8, vmovl_s8, vsubq_s16,
};

use crate::kernels::params::PerChannelQuant;
use crate::tensor::{Activation, I32Data, I8Data};

/// Rows per block: 8 accumulators, the widened input (2 registers) and one widened weight
/// chunk (2) of the 32 vector registers.
const ROWS: usize = 4;

/// Inputs per step.
const STEP: usize = 16;

/// `Σ_j W[r][j]·(x[j] − zp_in)` for the `R` int8 rows of `block` (`[R][n_in]`,
/// `n_in = x.len()`), wrapping i32. Returns zeros if `block` is shorter than `R` rows.
#[inline(always)]
fn dots<const R: usize>(block: &[u8], x: &[i8], zp_in: i8) -> [i32; R] {
    let n_in = x.len();
    if block.len() < R * n_in {
        return [0; R];
    }
    let full = n_in / STEP;
    let (wp, xp) = (block.as_ptr().cast::<i8>(), x.as_ptr());
    // SAFETY: NEON is in every aarch64 CPU; every load reads 16 bytes at `16c` of the input
    // (16c + 16 ≤ n_in) or at `r·n_in + 16c` of the block (≤ R·n_in ≤ block.len()).
    let mut sums = unsafe {
        let zp = vdupq_n_s16(i16::from(zp_in));
        let mut lo: [int32x4_t; R] = [vdupq_n_s32(0); R];
        let mut hi: [int32x4_t; R] = [vdupq_n_s32(0); R];
        for c in 0..full {
            let xv = vld1q_s8(xp.add(STEP * c));
            let x0 = vsubq_s16(vmovl_s8(vget_low_s8(xv)), zp);
            let x1 = vsubq_s16(vmovl_high_s8(xv), zp);
            for r in 0..R {
                let wv = vld1q_s8(wp.add(r * n_in + STEP * c));
                let w0 = vmovl_s8(vget_low_s8(wv));
                let w1 = vmovl_high_s8(wv);
                lo[r] = vmlal_s16(lo[r], vget_low_s16(w0), vget_low_s16(x0));
                hi[r] = vmlal_high_s16(hi[r], w0, x0);
                lo[r] = vmlal_s16(lo[r], vget_low_s16(w1), vget_low_s16(x1));
                hi[r] = vmlal_high_s16(hi[r], w1, x1);
            }
        }
        let mut sums = [0i32; R];
        for r in 0..R {
            sums[r] = vaddvq_s32(vaddq_s32(lo[r], hi[r]));
        }
        sums
    };
    let x_rest = x.get(STEP * full..).unwrap_or(&[]);
    let zp = i32::from(zp_in);
    for (r, sum) in sums.iter_mut().enumerate() {
        let w_rest = block
            .get(r * n_in + STEP * full..(r + 1) * n_in)
            .unwrap_or(&[]);
        for (&w, &xv) in w_rest.iter().zip(x_rest) {
            *sum = sum.wrapping_add(i32::from(w as i8) * (i32::from(xv) - zp));
        }
    }
    sums
}

/// One input row `x` of [`crate::kernels::linear_s8`]: [`dots`] on blocks of 4 rows.
pub(super) fn linear_s8_neon(
    act: Activation,
    q: &PerChannelQuant<'_>,
    weights: I8Data<'_>,
    bias: I32Data<'_>,
    x: &[i8],
    out: &mut [i8],
) {
    let zp = q.input_zp;
    let block = |w: &[u8]| dots::<ROWS>(w, x, zp);
    let row = |w: &[u8]| dots::<1>(w, x, zp)[0];
    let scalar = |_, _: &[i32; ROWS], _: &mut [i8]| false;
    super::linear_s8_rows(act, q, (weights, bias), x.len(), out, block, row, scalar)
}
