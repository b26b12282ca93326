//! Layout conversion between the core (batch 1, CHW activations, PyTorch weights) and TFLite
//! (NHWC activations, OHWI / `[1, kh, kw, C]` weights), and TFLite's padding modes.
//!
//! Every reordering here is one function, [`chw_to_hwc`]: element `(c, y, x)` of a `[C][H][W]`
//! block moves to `(y, x, c)` of `[H][W][C]`:
//!
//! ```text
//! hwc[(y·W + x)·C + c] = chw[c·H·W + y·W + x]
//! ```
//!
//! * an activation `[C][H][W]` → `[1, H, W, C]`;
//! * a Conv2d weight `[O][I][kh][kw]` → OHWI `[O, kh, kw, I]`: each output channel's `[I][kh][kw]`
//!   block;
//! * a DepthwiseConv2d weight `[C][kh][kw]` → `[1, kh, kw, C]`: the whole tensor as one block;
//! * a Linear weight `[out][C·H·W]` reading a flattened `[C][H][W]` tensor → `[out][H·W·C]`: each
//!   row, because TFLite's RESHAPE flattens the NHWC tensor in HWC order.

use denoiserep_core::WindowSpec;

/// How a core tensor is laid out in the TFLite graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A core `[C][H][W]` tensor, in TFLite `[1, H, W, C]`.
    Chw([usize; 3]),
    /// A core vector of `len` values, in TFLite `[1, len]`. `hwc_of` is `Some([C, H, W])` when
    /// the TFLite values are a flattened `[1, H, W, C]` (HWC order) while the core's are the
    /// flattened `[C][H][W]` (CHW order); `None` when both orders are the same.
    Flat {
        len: usize,
        hwc_of: Option<[usize; 3]>,
    },
}

impl Layout {
    /// The layout of a core tensor of shape `dims` that is not a flatten's output (rank 3: CHW,
    /// rank 1: a vector), or `None` for other ranks.
    pub fn of_core(dims: &[usize]) -> Option<Self> {
        match *dims {
            [c, h, w] => Some(Self::Chw([c, h, w])),
            [len] => Some(Self::Flat { len, hwc_of: None }),
            _ => None,
        }
    }

    /// The TFLite shape: `[1, H, W, C]` or `[1, len]`.
    pub fn tflite_shape(&self) -> Vec<i32> {
        let d = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        match *self {
            Self::Chw([c, h, w]) => vec![1, d(h), d(w), d(c)],
            Self::Flat { len, .. } => vec![1, d(len)],
        }
    }

    /// The layout of the flattened tensor (a RESHAPE to `[1, C·H·W]`): the order changes only
    /// when both `C` and `H·W` exceed 1.
    pub fn flattened(&self) -> Self {
        match *self {
            Self::Chw([c, h, w]) => Self::Flat {
                len: c * h * w,
                hwc_of: (c > 1 && h * w > 1).then_some([c, h, w]),
            },
            flat => flat,
        }
    }
}

/// `[C][H][W]` → `[H][W][C]` (`block.len()` must be `C·H·W`; see the module doc).
pub fn chw_to_hwc<T: Copy>(block: &[T], [c, h, w]: [usize; 3]) -> Vec<T> {
    debug_assert_eq!(block.len(), c * h * w);
    let hw = h * w;
    (0..hw)
        .flat_map(|p| (0..c).map(move |ch| ch * hw + p))
        .map(|i| block[i])
        .collect()
}

/// [`chw_to_hwc`] applied to each consecutive block of `c·h·w` values (Conv2d weights `[O][I][kh]
/// [kw]` → OHWI with `[I, kh, kw]`, Linear rows with the flattened input's `[C, H, W]`).
pub fn blocks_chw_to_hwc<T: Copy>(values: &[T], dims: [usize; 3]) -> Vec<T> {
    let n = dims.iter().product::<usize>().max(1);
    values
        .chunks(n)
        .flat_map(|block| chw_to_hwc(block, dims))
        .collect()
}

/// `[H][W][C]` → `[C][H][W]`, the inverse of [`chw_to_hwc`] (TFLite outputs back to the core's
/// order).
pub fn hwc_to_chw<T: Copy>(block: &[T], [c, h, w]: [usize; 3]) -> Vec<T> {
    debug_assert_eq!(block.len(), c * h * w);
    let hw = h * w;
    (0..c)
        .flat_map(|ch| (0..hw).map(move |p| p * c + ch))
        .map(|i| block[i])
        .collect()
}

/// TensorFlow's `SAME` padding of one axis: `total = max((out − 1)·s + k − in, 0)`,
/// `before = total / 2`, `after = total − before`.
pub fn tf_same(input: usize, out: usize, k: usize, s: usize) -> (usize, usize) {
    let total = ((out.saturating_sub(1)) * s + k).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// How a window op's padding is written in TFLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    /// No padding.
    Valid,
    /// Exactly TensorFlow's `SAME` for these input and output sizes.
    Same,
    /// Any other padding `[top, bottom, left, right]`: an explicit PAD before a VALID op.
    Explicit([usize; 4]),
}

/// The [`PadMode`] of `window` on an `[h, w]` input giving an `[oh, ow]` output.
pub fn pad_mode(window: &WindowSpec, [h, w]: [usize; 2], [oh, ow]: [usize; 2]) -> PadMode {
    let [kh, kw] = window.kernel.map(usize::from);
    let [sh, sw] = window.stride.map(usize::from);
    let padding = window.padding.map(usize::from);
    if padding == [0; 4] {
        return PadMode::Valid;
    }
    let (top, bottom) = tf_same(h, oh, kh, sh);
    let (left, right) = tf_same(w, ow, kw, sw);
    if padding == [top, bottom, left, right] {
        PadMode::Same
    } else {
        PadMode::Explicit(padding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chw_to_hwc_moves_channels_last_and_back() {
        // C = 2, H = 2, W = 3: value = 100·c + 10·y + x.
        let chw: Vec<i32> = (0..2)
            .flat_map(|c| (0..2).flat_map(move |y| (0..3).map(move |x| 100 * c + 10 * y + x)))
            .collect();
        let hwc = chw_to_hwc(&chw, [2, 2, 3]);
        assert_eq!(&hwc[..6], &[0, 100, 1, 101, 2, 102]);
        assert_eq!(hwc[(3 + 2) * 2 + 1], 112); // (y 1, x 2, c 1)
        assert_eq!(hwc_to_chw(&hwc, [2, 2, 3]), chw);
        // Blocks: two output channels of a [2][1][1][2] weight, each block on its own.
        assert_eq!(
            blocks_chw_to_hwc(&[1, 2, 3, 4, 5, 6, 7, 8], [2, 1, 2]),
            vec![1, 3, 2, 4, 5, 7, 6, 8]
        );
    }

    #[test]
    fn flattening_changes_the_order_only_with_channels_and_pixels() {
        let f = |dims| Layout::Chw(dims).flattened();
        assert_eq!(
            f([3, 2, 2]),
            Layout::Flat {
                len: 12,
                hwc_of: Some([3, 2, 2])
            }
        );
        assert_eq!(
            f([1, 4, 4]),
            Layout::Flat {
                len: 16,
                hwc_of: None
            }
        );
        assert_eq!(
            f([8, 1, 1]),
            Layout::Flat {
                len: 8,
                hwc_of: None
            }
        );
        assert_eq!(Layout::Chw([3, 4, 5]).tflite_shape(), vec![1, 4, 5, 3]);
    }

    #[test]
    fn padding_modes_follow_tensorflow_same() {
        let win = |k: u16, s: u16, p: [u16; 4]| WindowSpec {
            kernel: [k, k],
            stride: [s, s],
            padding: p,
        };
        // 3×3 stride 1 pad 1: SAME. 3×3 stride 2 pad 1 on 8 → 4: TF pads (0, 1), ours (1, 1).
        assert_eq!(pad_mode(&win(3, 1, [1; 4]), [8, 8], [8, 8]), PadMode::Same);
        assert_eq!(
            pad_mode(&win(3, 2, [1; 4]), [8, 8], [4, 4]),
            PadMode::Explicit([1; 4])
        );
        // On 7 → 4 the same padding is SAME (total 2).
        assert_eq!(pad_mode(&win(3, 2, [1; 4]), [7, 7], [4, 4]), PadMode::Same);
        assert_eq!(pad_mode(&win(2, 2, [0; 4]), [8, 8], [4, 4]), PadMode::Valid);
        assert_eq!(tf_same(10, 5, 3, 2), (0, 1));
    }
}
