//! `mlp:H1,H2,…`: `Flatten, [Linear(·,Hk), ReLU]…, Linear(·,classes)`, an `nn.Sequential`
//! (node `k` is named `k`: `1.weight`, `1.bias`, …).

use anyhow::Result;

use super::{Builder, LayerSpec};

/// Appends `[Linear(·,Hk), ReLU]…, Linear(·,classes)` to the chain, with `nn.Sequential` names.
pub(super) fn head(b: &mut Builder, hidden: &[usize], num_classes: usize) -> Result<()> {
    for &out in hidden {
        let x = b.last();
        b.linear(&b.nodes.len().to_string(), x, out)?;
        b.then(&b.nodes.len().to_string(), LayerSpec::Relu)?;
    }
    let x = b.last();
    b.linear(&b.nodes.len().to_string(), x, num_classes)?;
    Ok(())
}

/// Builds `mlp:hidden` (flattening any input shape).
pub(super) fn build(b: &mut Builder, hidden: &[usize], num_classes: usize) -> Result<()> {
    b.then("0", LayerSpec::Flatten)?;
    head(b, hidden, num_classes)
}
