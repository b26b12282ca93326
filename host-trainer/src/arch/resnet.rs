//! `resnet8`: the MLPerf Tiny image classification ResNet-8 (`resnet_v1_eembc` in
//! `benchmark/training/image_classification/keras_model.py` of mlcommons/tiny, 16 filters):
//!
//! ```text
//! conv1 3×3 16 s1 same → bn1 → relu
//! layer1: [conv1 3×3 16 s1 → bn1 → relu1 → conv2 3×3 16 s1 → bn2] + x          → relu2
//! layer2: [conv1 3×3 32 s2 → bn1 → relu1 → conv2 3×3 32 s1 → bn2] + shortcut(x) → relu2
//! layer3: [conv1 3×3 64 s2 → bn1 → relu1 → conv2 3×3 64 s1 → bn2] + shortcut(x) → relu2
//! avgpool (global, → [N, 64]) → fc (64 → classes)
//! ```
//!
//! `shortcut` is a 1×1 stride-2 conv with bias and no batch norm (as in the reference), present
//! only where the block changes the shape. All convs have biases and TF-"same" padding. The
//! reference pools with `AveragePooling2D(min(H, W))`, which is the global average on its
//! square maps; here the pool is global on any map.

use anyhow::Result;

use super::{Builder, LayerSpec, Src};

/// One residual stack `layerN.0` with `out` channels and `stride`.
fn stack(b: &mut Builder, x: Src, out: usize, stride: usize) -> Result<Src> {
    b.scoped("0", |b| {
        let y = b.conv_same("conv1", x, out, [3, 3], [stride, stride], 1)?;
        let y = b.bn("bn1", y)?;
        let y = b.add("relu1", LayerSpec::Relu, &[y])?;
        let y = b.conv_same("conv2", y, out, [3, 3], [1, 1], 1)?;
        let y = b.bn("bn2", y)?;
        let skip = if stride != 1 || b.shape(x)[0] != out {
            b.conv_same("shortcut", x, out, [1, 1], [stride, stride], 1)?
        } else {
            x
        };
        let s = b.add("add", LayerSpec::Add, &[skip, y])?;
        b.add("relu2", LayerSpec::Relu, &[s])
    })
}

/// Builds `resnet8` with `f` base filters (`f`, `2f`, `4f` per stack; the reference has 16) for
/// the builder's input shape.
pub(super) fn build(b: &mut Builder, f: usize, num_classes: usize) -> Result<()> {
    let x = b.conv_same("conv1", Src::Input, f, [3, 3], [1, 1], 1)?;
    let x = b.bn("bn1", x)?;
    let mut x = b.add("relu", LayerSpec::Relu, &[x])?;
    for (i, (out, stride)) in [(f, 1), (2 * f, 2), (4 * f, 2)].into_iter().enumerate() {
        x = b.scoped(&format!("layer{}", i + 1), |b| stack(b, x, out, stride))?;
    }
    let x = b.add("avgpool", LayerSpec::GlobalAvgPool, &[x])?;
    b.linear("fc", x, num_classes)?;
    Ok(())
}
