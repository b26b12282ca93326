//! Window geometry as TFLite defines it, turned into the core's explicit padding.

use anyhow::{anyhow, bail, Result};
use denoiserep_core::WindowSpec;
use denoiserep_tflite_schema::tflite::Padding;

/// TF `SAME` padding along one axis: `out = ⌈in / s⌉`,
/// `total = max((out − 1)·s + k − in, 0)`, `before = ⌊total / 2⌋`, `after = total − before`
/// (the extra row or column of an odd total goes after, as TFLite pads).
pub fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = input.div_ceil(stride.max(1));
    let total = (out.saturating_sub(1) * stride + kernel).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// Output length of a window over `input` padded by `before` and `after`:
/// `(in + before + after − k) / s + 1`, `None` when the window does not fit.
pub fn out_len(
    input: usize,
    kernel: usize,
    stride: usize,
    before: usize,
    after: usize,
) -> Option<usize> {
    let padded = input.checked_add(before)?.checked_add(after)?;
    (stride > 0 && kernel > 0 && padded >= kernel).then(|| (padded - kernel) / stride + 1)
}

/// A 2-D window over an `[h, w]` input: the core's [`WindowSpec`] and the output `[oh, ow]`.
///
/// `extra` is `[top, bottom, left, right]` padding already applied by a folded PAD; `padding`
/// is the op's own (`SAME` is computed on the padded size). Errors name `ctx`.
pub fn window(
    ctx: &str,
    [h, w]: [usize; 2],
    [kh, kw]: [usize; 2],
    [sh, sw]: [i32; 2],
    padding: Padding,
    extra: [usize; 4],
) -> Result<(WindowSpec, [usize; 2])> {
    let stride = |s: i32| {
        usize::try_from(s)
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| anyhow!("{ctx}: stride {s} (must be ≥ 1)"))
    };
    let (sh, sw) = (stride(sh)?, stride(sw)?);
    let (ph, pw) = (h + extra[0] + extra[1], w + extra[2] + extra[3]);
    let ((t, b), (l, r)) = match padding {
        Padding::Same => (same_padding(ph, kh, sh), same_padding(pw, kw, sw)),
        Padding::Valid => ((0, 0), (0, 0)),
    };
    let pad = [t + extra[0], b + extra[1], l + extra[2], r + extra[3]];
    let (Some(oh), Some(ow)) = (
        out_len(h, kh, sh, pad[0], pad[1]),
        out_len(w, kw, sw, pad[2], pad[3]),
    ) else {
        bail!("{ctx}: a {kh}×{kw} window does not fit the {h}×{w} input (padding {pad:?})");
    };
    let small = |v: usize, what: &str| {
        u16::try_from(v).map_err(|_| anyhow!("{ctx}: {what} {v} is too large (at most 65535)"))
    };
    let spec = WindowSpec {
        kernel: [small(kh, "kernel")?, small(kw, "kernel")?],
        stride: [small(sh, "stride")?, small(sw, "stride")?],
        padding: [
            small(pad[0], "padding")?,
            small(pad[1], "padding")?,
            small(pad[2], "padding")?,
            small(pad[3], "padding")?,
        ],
    };
    if pad[0].max(pad[1]) >= kh || pad[2].max(pad[3]) >= kw {
        bail!(
            "{ctx}: padding [top, bottom, left, right] = {pad:?} reaches a whole {kh}×{kw} window; \
             the core pads less than a window per side"
        );
    }
    Ok((spec, [oh, ow]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_puts_the_odd_row_after() {
        // in 7, k 3, s 2: out 4, total (3·2 + 3 − 7) = 2 → (1, 1).
        assert_eq!(same_padding(7, 3, 2), (1, 1));
        // in 8, k 3, s 2: out 4, total (3·2 + 3 − 8) = 1 → (0, 1).
        assert_eq!(same_padding(8, 3, 2), (0, 1));
        // in 5, k 3, s 1: total 2 → (1, 1); in 4, k 4, s 1: total 3 → (1, 2).
        assert_eq!(same_padding(5, 3, 1), (1, 1));
        assert_eq!(same_padding(4, 4, 1), (1, 2));
        // Stride above the kernel: nothing to pad.
        assert_eq!(same_padding(4, 1, 2), (0, 0));
    }

    #[test]
    fn window_out_shapes_match_tflite() {
        let (spec, out) = window("op", [8, 9], [3, 3], [2, 2], Padding::Same, [0; 4]).unwrap();
        assert_eq!(out, [4, 5]);
        assert_eq!(spec.padding, [0, 1, 1, 1]);
        let (spec, out) =
            window("op", [8, 9], [3, 3], [1, 1], Padding::Valid, [1, 1, 0, 0]).unwrap();
        assert_eq!(out, [8, 7]);
        assert_eq!(spec.padding, [1, 1, 0, 0]);
        assert!(window("op", [2, 2], [3, 3], [1, 1], Padding::Valid, [0; 4]).is_err());
        assert!(window("op", [4, 4], [3, 3], [0, 1], Padding::Valid, [0; 4]).is_err());
        assert!(window("op", [4, 4], [3, 3], [1, 1], Padding::Valid, [3, 0, 0, 0]).is_err());
    }
}
