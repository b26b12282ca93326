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
//! All convs have biases (Keras' default, as in the reference), activations are ReLU (the
//! reference's choice; the Keras application uses ReLU6). The reference pools with
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

/// Builds `mobilenet-v1:alpha` for the builder's input shape.
pub(super) fn build(b: &mut Builder, alpha: f64, num_classes: usize) -> Result<()> {
    let c0 = ((32.0 * alpha).round() as usize).max(1);
    let x = b.conv_same("conv1", Src::Input, c0, [3, 3], [2, 2], 1)?;
    let x = b.bn("bn1", x)?;
    let mut x = b.add("relu1", LayerSpec::Relu, &[x])?;
    for (k, &(s, m)) in BLOCKS.iter().enumerate() {
        x = b.scoped("blocks", |b| {
            b.scoped(&k.to_string(), |b| {
                let c = b.shape(x)[0];
                let y = b.conv_same("dw", x, c, [3, 3], [s, s], c)?;
                let y = b.bn("bn1", y)?;
                let y = b.add("relu1", LayerSpec::Relu, &[y])?;
                let y = b.conv_same("pw", y, m * c0, [1, 1], [1, 1], 1)?;
                let y = b.bn("bn2", y)?;
                b.add("relu2", LayerSpec::Relu, &[y])
            })
        })?;
    }
    let x = b.add("avgpool", LayerSpec::GlobalAvgPool, &[x])?;
    b.linear("fc", x, num_classes)?;
    Ok(())
}
