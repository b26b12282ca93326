//! `mobilenet-v1[:ALPHA]`: the MLPerf Tiny visual wake words MobileNetV1 (`mobilenet_v1` in
//! `benchmark/training/visual_wake_words/vww_model.py` of mlcommons/tiny; α = 0.25, input
//! 96×96×3, 2 classes there):
//!
//! ```text
//! conv1 3×3 c₀ s2 same → bn1 → relu1                       c₀ = round(32·α) (8 at α = 0.25)
//! blocks.k (k = 0..13): dw 3×3 depthwise s same → bn1 → relu1 → pw 1×1 c → bn2 → relu2
//!   (s, c/c₀) = (1,2) (2,4) (1,4) (2,8) (1,8) (2,16) (1,16)×5 (2,32) (1,32)
//! avgpool (global, → [N, 32·c₀]) → fc (→ classes)
//! ```
//!
//! **Small inputs.** The five stride-2 layers (conv1, blocks 1, 3, 5, 11) divide the side by 32:
//! 96 → 3. On a small input that leaves 1×1 maps for most blocks (28×28: 1×1 from block 5 on,
//! nine of thirteen blocks see one pixel). So the earliest stride-2 layers become stride 1 until
//! the last map is at least 3×3 ([`strides`]), the reference's own last map (96 → 3): 96×96
//! keeps all five, 64×64 drops conv1's, 32×32 and 28×28 drop conv1's and block 1's
//! (28 → 28 → 28 → 14 → 7 → 4). A 2×2 last map (28×28 dropping conv1 only) was tried first and
//! trained 0.6 pp worse on MNIST (docs/results.md, "Graph backbones").
//!
//! All convs have biases (Keras' default, as in the reference), activations are ReLU (the
//! reference's choice) or, as `mobilenet-v1:ALPHA,relu6`, ReLU6 (the Keras application's). The reference pools with
//! `AveragePooling2D(x.shape[1:3])`, a global average.

use anyhow::Result;

use super::{Builder, LayerSpec, Src};

/// `(stride, channel multiple of c₀)` of the 13 depthwise-separable blocks.
const BLOCKS: [(usize, usize); 13] = [
    (1, 2),
    (2, 4),
    (1, 4),
    (2, 8),
    (1, 8),
    (2, 16),
    (1, 16),
    (1, 16),
    (1, 16),
    (1, 16),
    (1, 16),
    (2, 32),
    (1, 32),
];

/// The smallest side of the last feature map that [`strides`] keeps.
const MIN_LAST_SIDE: usize = 3;

/// Strides of conv1 and of the 13 blocks for an input of `h × w`: the reference's, with the
/// earliest stride-2 layers turned to stride 1 while the last map (TF "same": `⌈n/2⌉` per
/// stride-2 layer) would be smaller than [`MIN_LAST_SIDE`] on its smaller side.
fn strides(h: usize, w: usize) -> (usize, [usize; 13]) {
    let mut all = [2usize; 14];
    for (k, &(s, _)) in BLOCKS.iter().enumerate() {
        all[k + 1] = s;
    }
    let last_side = |all: &[usize; 14]| {
        all.iter()
            .filter(|&&s| s == 2)
            .fold(h.min(w), |n, _| n.div_ceil(2))
    };
    for k in 0..all.len() {
        if last_side(&all) >= MIN_LAST_SIDE {
            break;
        }
        if all[k] == 2 {
            all[k] = 1;
        }
    }
    let mut blocks = [1; 13];
    blocks.copy_from_slice(&all[1..]);
    (all[0], blocks)
}

/// Builds `mobilenet-v1:alpha` with activation `act` (ReLU or ReLU6) for the builder's input
/// shape.
pub(super) fn build(b: &mut Builder, alpha: f64, act: LayerSpec, num_classes: usize) -> Result<()> {
    let c0 = ((32.0 * alpha).round() as usize).max(1);
    let [_, h, w] = b.input_shape;
    let (s1, block_strides) = strides(h, w);
    let x = b.conv_same("conv1", Src::Input, c0, [3, 3], [s1, s1], 1)?;
    let x = b.bn("bn1", x)?;
    let mut x = b.add("relu1", act, &[x])?;
    for (k, (&(_, m), &s)) in BLOCKS.iter().zip(&block_strides).enumerate() {
        x = b.scoped("blocks", |b| {
            b.scoped(&k.to_string(), |b| {
                let c = b.shape(x)[0];
                let y = b.conv_same("dw", x, c, [3, 3], [s, s], c)?;
                let y = b.bn("bn1", y)?;
                let y = b.add("relu1", act, &[y])?;
                let y = b.conv_same("pw", y, m * c0, [1, 1], [1, 1], 1)?;
                let y = b.bn("bn2", y)?;
                b.add("relu2", act, &[y])
            })
        })?;
    }
    let x = b.add("avgpool", LayerSpec::GlobalAvgPool, &[x])?;
    b.linear("fc", x, num_classes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Side of the last map under `strides` (TF "same").
    fn last(h: usize, w: usize) -> usize {
        let (s1, b) = strides(h, w);
        std::iter::once(s1)
            .chain(b)
            .filter(|&s| s == 2)
            .fold(h.min(w), |n, _| n.div_ceil(2))
    }

    #[test]
    fn the_reference_input_keeps_every_stride() {
        let (s1, b) = strides(96, 96);
        assert_eq!(s1, 2);
        assert_eq!(b, BLOCKS.map(|(s, _)| s));
        assert_eq!(last(96, 96), 3);
        // Anything at least as large as the reference keeps them too.
        assert_eq!(strides(160, 120), strides(96, 96));
    }

    #[test]
    fn small_inputs_drop_the_earliest_strides_until_the_last_map_is_3x3() {
        let (s1, b) = strides(28, 28);
        assert_eq!((s1, b[1]), (1, 1));
        assert_eq!((b[3], b[5], b[11]), (2, 2, 2));
        assert_eq!(last(28, 28), 4);
        let (s1, b) = strides(8, 8);
        assert_eq!((s1, b[1], b[3], b[5], b[11]), (1, 1, 1, 1, 2));
        assert_eq!(last(8, 8), 4);
        assert_eq!(strides(96, 96).0, 2);
        assert_eq!(last(96, 96), 3);
        let (s1, b) = strides(64, 64);
        assert_eq!((s1, b[1]), (1, 2));
        assert_eq!(last(64, 64), 4);
        let (s1, b) = strides(32, 32);
        assert_eq!((s1, b[1], b[3]), (1, 1, 2));
        assert_eq!(last(32, 32), 4);
        for n in 1..130 {
            assert!(last(n, n) >= n.min(3), "{n}");
            assert!(
                last(n, n) <= 5 || strides(n, n) == strides(96, 96),
                "{n}: {}",
                last(n, n)
            );
        }
        // Nothing can make a 1-pixel side larger: every stride becomes 1.
        let (s1, b) = strides(1, 40);
        assert_eq!(s1, 1);
        assert!(b.iter().all(|&s| s == 1));
    }
}
