//! `ds-cnn`: the MLPerf Tiny keyword spotting DS-CNN (`ds_cnn` in
//! `benchmark/training/keyword_spotting/keras_model.py` of mlcommons/tiny; input 49×10×1,
//! 12 classes there):
//!
//! ```text
//! conv1 10×4 64 s2 same → bn1 → relu1
//! blocks.k (k = 0..4): dw 3×3 depthwise s1 same → bn1 → relu1 → pw 1×1 64 → bn2 → relu2
//! avgpool (⌊H/2⌋ × ⌊W/2⌋ of the input, stride = kernel) → flatten → fc (64 → classes)
//! ```
//!
//! All convs have biases. The reference's pool size is `(⌊49/2⌋, ⌊10/2⌋) = (24, 5)` on the
//! 25×5 map after the stride-2 conv, i.e. a 1×1 output that ignores the last row; the same rule
//! is used for every input (`⌈n/2⌉` map, `⌊n/2⌋` window: a 1×1 output for `n ≥ 2`; at least 1).
//! The dropout layers of the reference are omitted (identity at inference).

use anyhow::Result;

use super::{Builder, LayerSpec, Src};

/// Builds `ds-cnn` for the builder's input shape.
pub(super) fn build(b: &mut Builder, num_classes: usize) -> Result<()> {
    const FILTERS: usize = 64;
    let [_, h, w] = b.input_shape;
    let x = b.conv_same("conv1", Src::Input, FILTERS, [10, 4], [2, 2], 1)?;
    let x = b.bn("bn1", x)?;
    let mut x = b.add("relu1", LayerSpec::Relu, &[x])?;
    for k in 0..4 {
        x = b.scoped("blocks", |b| {
            b.scoped(&k.to_string(), |b| {
                let y = b.conv_same("dw", x, FILTERS, [3, 3], [1, 1], FILTERS)?;
                let y = b.bn("bn1", y)?;
                let y = b.add("relu1", LayerSpec::Relu, &[y])?;
                let y = b.conv_same("pw", y, FILTERS, [1, 1], [1, 1], 1)?;
                let y = b.bn("bn2", y)?;
                b.add("relu2", LayerSpec::Relu, &[y])
            })
        })?;
    }
    let kernel = [(h / 2).max(1), (w / 2).max(1)];
    let pool = LayerSpec::AvgPool2d {
        kernel,
        stride: kernel,
    };
    let x = b.add("avgpool", pool, &[x])?;
    let x = b.add("flatten", LayerSpec::Flatten, &[x])?;
    b.linear("fc", x, num_classes)?;
    Ok(())
}
