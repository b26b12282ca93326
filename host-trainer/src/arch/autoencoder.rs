//! `autoencoder`: the MLPerf Tiny anomaly detection FC autoencoder (`get_model` in
//! `benchmark/training/anomaly_detection/keras_model.py` of mlcommons/tiny; D = 640 there):
//!
//! ```text
//! flatten → [fc Dₖ → bn → relu] for Dₖ = 128, 128, 128, 128, 8, 128, 128, 128, 128 → fc D
//! ```
//!
//! `D = C·H·W` is the data's flattened input size; the output is a reconstruction `[N, D]`
//! (not class logits) and the embedding is the 8-wide bottleneck `encoder.4.relu`. Nodes: `flatten`, `encoder.k.{fc,bn,relu}` (k = 0..4: 128, 128, 128,
//! 128, 8), `decoder.k.{fc,bn,relu}` (k = 0..3), `out`.

use anyhow::Result;

use super::{Builder, LayerSpec, Src};

/// One `fc → bn → relu` block.
fn block(b: &mut Builder, k: usize, x: Src, width: usize) -> Result<Src> {
    b.scoped(&k.to_string(), |b| {
        let y = b.linear("fc", x, width)?;
        let y = b.bn("bn", y)?;
        b.add("relu", LayerSpec::Relu, &[y])
    })
}

/// Builds `autoencoder` for the builder's input shape.
pub(super) fn build(b: &mut Builder) -> Result<()> {
    let d = b.input_shape.iter().product::<usize>();
    let mut x = b.add("flatten", LayerSpec::Flatten, &[Src::Input])?;
    for (k, w) in [128, 128, 128, 128, 8].into_iter().enumerate() {
        x = b.scoped("encoder", |b| block(b, k, x, w))?;
    }
    // The 8-wide code (after its batch norm and ReLU, as Keras' `Activation` output).
    b.set_embedding(x)?;
    for k in 0..4 {
        x = b.scoped("decoder", |b| block(b, k, x, 128))?;
    }
    b.linear("out", x, d)?;
    Ok(())
}
