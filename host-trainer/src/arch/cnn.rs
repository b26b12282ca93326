//! `cnn:C1,C2,…/H1,…`: `[Conv2d(·,Ck,3×3,stride 1,pad 1), ReLU, MaxPool2d(2,2)]…, Flatten,`
//! then the [`mlp`](super::mlp) head; an `nn.Sequential` (node `k` is named `k`).

use anyhow::{bail, Result};

use super::{Builder, LayerSpec};

/// Builds `cnn:convs/hidden`; each conv block halves the map (floor), so the input must have at
/// least `2^blocks` pixels per side.
pub(super) fn build(
    b: &mut Builder,
    convs: &[usize],
    hidden: &[usize],
    num_classes: usize,
) -> Result<()> {
    let [c, h0, w0] = b.input_shape;
    for (k, &out) in convs.iter().enumerate() {
        let s = b.shape(b.last());
        let (ch, h, w) = (s[0], s[1], s[2]);
        if h < 2 || w < 2 {
            if k == 0 {
                bail!(
                    "arch '{}': cnn needs image inputs of at least 2×2 pixels, the data is \
                     [{c}, {h}, {w}] (tabular data is [features, 1, 1]); use mlp",
                    b.spec
                );
            }
            bail!(
                "arch '{}': conv block {} ({out} channels) would pool a {h}×{w} map; \
                 use at most {k} conv blocks for {h0}×{w0} inputs",
                b.spec,
                k + 1,
            );
        }
        let conv = LayerSpec::Conv2d {
            in_channels: ch,
            out_channels: out,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1, 1, 1],
            groups: 1,
        };
        b.then(&b.nodes.len().to_string(), conv)?;
        b.then(&b.nodes.len().to_string(), LayerSpec::Relu)?;
        let pool = LayerSpec::MaxPool2d {
            kernel: 2,
            stride: 2,
        };
        b.then(&b.nodes.len().to_string(), pool)?;
    }
    b.then(&b.nodes.len().to_string(), LayerSpec::Flatten)?;
    super::mlp::head(b, hidden, num_classes)
}
