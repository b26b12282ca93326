//! Concatenation along one axis, any element type (element moves only).

use crate::error::{Error, Result};

/// Concatenates `inputs` along an axis: each input is `[outer][len_i · inner]` (its dims before
/// the axis multiply to `outer`, the rest to `len_i · inner`), the output
/// `[outer][(Σ_i len_i) · inner]`. For each `o < outer`, the output row `o` is input 0's row `o`,
/// then input 1's, and so on. Exact (copies); the output must not alias an input.
///
/// `Err(KernelBadArguments)` if `outer == 0`, an input length is not a multiple of `outer`, or
/// the output length is not the sum of the input lengths.
pub fn concat<T: Copy>(outer: usize, inputs: &[&[T]], output: &mut [T]) -> Result<()> {
    let bad = Error::KernelBadArguments;
    if outer == 0 {
        return Err(bad);
    }
    let mut total = 0usize;
    for x in inputs {
        if x.len() % outer != 0 {
            return Err(bad);
        }
        total = total.checked_add(x.len()).ok_or(bad)?;
    }
    if total != output.len() {
        return Err(bad);
    }
    let mut at = 0usize;
    for o in 0..outer {
        for x in inputs {
            let per = x.len() / outer;
            let src = x.get(o * per..(o + 1) * per);
            if let (Some(src), Some(dst)) = (src, output.get_mut(at..at + per)) {
                dst.copy_from_slice(src);
            }
            at += per; // ≤ total
        }
    }
    Ok(())
}
