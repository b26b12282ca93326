//! Axis permutation, any element type (element moves only).

use crate::error::{Error, Result};
use crate::tensor::MAX_RANK;

/// `output[i_0, …, i_{r−1}] = input[j]` with `j[perm[k]] = i_k`: output dim `k` is input dim
/// `perm[k]`, so the output has dims `dims[perm[0]], …, dims[perm[r−1]]`. `input` is row-major
/// with `dims` (rank `r = dims.len() ≤ 4`). Outputs are written in row-major order; the output
/// must not alias the input. Exact (copies).
///
/// `Err(KernelBadArguments)` if `perm` is not a permutation of `0..r`, `r` is 0 or above 4, the
/// element count overflows, or a slice length differs from it.
pub fn transpose<T: Copy>(
    dims: &[usize],
    perm: &[usize],
    input: &[T],
    output: &mut [T],
) -> Result<()> {
    let bad = Error::KernelBadArguments;
    let r = dims.len();
    if r == 0 || r > MAX_RANK || perm.len() != r {
        return Err(bad);
    }
    let mut seen = [false; MAX_RANK];
    for &a in perm {
        match seen.get_mut(a) {
            Some(s) if a < r && !*s => *s = true,
            _ => return Err(bad),
        }
    }
    let n = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if n != Some(input.len()) || n != Some(output.len()) {
        return Err(bad);
    }
    // Row-major strides of the input, then the output dims and the input stride of each
    // output axis, padded in front to rank 4 with length-1 axes.
    let mut in_stride = [0usize; MAX_RANK];
    let mut s = 1usize;
    for (st, &d) in in_stride.iter_mut().zip(dims).rev() {
        *st = s;
        s *= d; // ≤ n, no overflow
    }
    let pad = MAX_RANK - r;
    let mut od = [1usize; MAX_RANK];
    let mut os = [0usize; MAX_RANK];
    for (k, &a) in perm.iter().enumerate() {
        if let (Some(d), Some(s), Some(&len), Some(&st)) = (
            od.get_mut(pad + k),
            os.get_mut(pad + k),
            dims.get(a),
            in_stride.get(a),
        ) {
            *d = len;
            *s = st;
        }
    }
    let mut out = output.iter_mut();
    for i0 in 0..od[0] {
        for i1 in 0..od[1] {
            for i2 in 0..od[2] {
                let base = i0 * os[0] + i1 * os[1] + i2 * os[2];
                for i3 in 0..od[3] {
                    if let (Some(o), Some(&v)) = (out.next(), input.get(base + i3 * os[3])) {
                        *o = v;
                    }
                }
            }
        }
    }
    Ok(())
}
