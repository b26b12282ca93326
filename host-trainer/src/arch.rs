//! Backbone architectures: the `--arch` grammar and the resulting ordered layer list.
//!
//! Grammar (widths are positive integers):
//!
//! ```text
//! mlp                      = mlp:256,128
//! mlp:H1,H2,…              Flatten, [Linear(·,Hk), ReLU]…, Linear(·,classes)
//! cnn                      = cnn:32,64/128
//! cnn:C1,C2,…[/H1,H2,…]    [Conv2d(·,Ck,3×3,stride 1,pad 1), ReLU, MaxPool2d(2,2)]…,
//!                          Flatten, [Linear(·,Hk), ReLU]…, Linear(·,classes)
//! ```
//!
//! The layer list is exactly a PyTorch `nn.Sequential`: layer `k` owns tensors `k.weight` and
//! `k.bias`. The **embedding** is the input of the final Linear (the penultimate features: the
//! output of the last hidden block, or the flattened conv features of `cnn:…` without hidden
//! widths); it is used for retrieval.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// One backbone layer's kind and shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerSpec {
    /// `y = W·x + b`, `W: [out_features, in_features]`.
    Linear {
        in_features: usize,
        out_features: usize,
    },
    /// Square-kernel 2-D convolution, `W: [out_channels, in_channels, kernel, kernel]`.
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    Relu,
    MaxPool2d {
        kernel: usize,
        stride: usize,
    },
    /// `[N, C, H, W] → [N, C·H·W]`.
    Flatten,
}

impl LayerSpec {
    /// True for the layers that own weights and get a denoiser (Linear, Conv2d).
    pub fn is_weighted(&self) -> bool {
        matches!(self, Self::Linear { .. } | Self::Conv2d { .. })
    }

    /// Input width seen by a denoiser: `in_features` or `in_channels`; 0 for other layers.
    pub fn in_channels(&self) -> usize {
        match *self {
            Self::Linear { in_features, .. } => in_features,
            Self::Conv2d { in_channels, .. } => in_channels,
            _ => 0,
        }
    }

    /// Shapes of `weight` and `bias`, for weighted layers.
    pub fn param_shapes(&self) -> Option<(Vec<i64>, Vec<i64>)> {
        match *self {
            Self::Linear {
                in_features,
                out_features,
            } => Some((
                vec![out_features as i64, in_features as i64],
                vec![out_features as i64],
            )),
            Self::Conv2d {
                in_channels,
                out_channels,
                kernel,
                ..
            } => Some((
                vec![
                    out_channels as i64,
                    in_channels as i64,
                    kernel as i64,
                    kernel as i64,
                ],
                vec![out_channels as i64],
            )),
            _ => None,
        }
    }
}

/// A parsed architecture bound to an input shape and class count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arch {
    /// Canonical arch string, e.g. `mlp:256,128`.
    pub spec: String,
    /// Per-sample input shape `[C, H, W]`.
    pub input_shape: [usize; 3],
    pub num_classes: usize,
    pub layers: Vec<LayerSpec>,
    /// Index of the layer whose output is the embedding.
    pub embedding_layer: usize,
    /// Width of the embedding.
    pub embedding_dim: usize,
}

impl Arch {
    /// Parses `spec` (see the module doc) and builds the layers for `input_shape` and
    /// `num_classes`. Errors name the bad part of the string.
    pub fn parse(spec: &str, input_shape: [usize; 3], num_classes: usize) -> Result<Self> {
        let spec = spec.trim();
        let (kind, args) = spec
            .split_once(':')
            .map_or((spec, None), |(k, a)| (k, Some(a)));
        let (convs, hidden) = match kind {
            "mlp" => (Vec::new(), widths(spec, args.unwrap_or("256,128"), "hidden width")?),
            "cnn" => {
                let args = args.unwrap_or("32,64/128");
                let (c, h) = args.split_once('/').unwrap_or((args, ""));
                let convs = widths(spec, c, "conv channel width")?;
                if convs.is_empty() {
                    bail!("arch '{spec}': cnn needs at least one conv channel width, e.g. cnn:32,64/128");
                }
                (convs, widths(spec, h, "hidden width")?)
            }
            _ => bail!("arch '{spec}': unknown kind '{kind}' (expected mlp[:H1,H2,…] or cnn[:C1,C2,…/H1,…])"),
        };
        if kind == "mlp" && hidden.is_empty() {
            bail!("arch '{spec}': mlp needs at least one hidden width, e.g. mlp:256,128");
        }
        let canonical = match kind {
            "mlp" => format!("mlp:{}", join(&hidden)),
            _ => format!("cnn:{}/{}", join(&convs), join(&hidden)),
        };
        let [c, mut h, mut w] = input_shape;
        if input_shape.contains(&0) || num_classes < 2 {
            bail!("arch '{spec}': input shape {input_shape:?} with {num_classes} classes is not trainable");
        }
        let mut layers = Vec::new();
        let mut ch = c;
        for (k, &out) in convs.iter().enumerate() {
            if h < 2 || w < 2 {
                if k == 0 {
                    bail!(
                        "arch '{spec}': cnn needs image inputs of at least 2×2 pixels, the data is \
                         [{c}, {h}, {w}] (tabular data is [features, 1, 1]); use mlp"
                    );
                }
                bail!(
                    "arch '{spec}': conv block {} ({out} channels) would pool a {h}×{w} map; \
                     use at most {k} conv blocks for {}×{} inputs",
                    k + 1,
                    input_shape[1],
                    input_shape[2]
                );
            }
            layers.push(LayerSpec::Conv2d {
                in_channels: ch,
                out_channels: out,
                kernel: 3,
                stride: 1,
                padding: 1,
            });
            layers.push(LayerSpec::Relu);
            layers.push(LayerSpec::MaxPool2d {
                kernel: 2,
                stride: 2,
            });
            ch = out;
            h /= 2;
            w /= 2;
        }
        layers.push(LayerSpec::Flatten);
        let Some(mut features) = ch.checked_mul(h).and_then(|x| x.checked_mul(w)) else {
            bail!("arch {canonical}: {ch} channels × {h}×{w} features overflow");
        };
        for &out in &hidden {
            layers.push(LayerSpec::Linear {
                in_features: features,
                out_features: out,
            });
            layers.push(LayerSpec::Relu);
            features = out;
        }
        let embedding_layer = layers.len() - 1;
        layers.push(LayerSpec::Linear {
            in_features: features,
            out_features: num_classes,
        });
        Ok(Self {
            spec: canonical,
            input_shape,
            num_classes,
            layers,
            embedding_layer,
            embedding_dim: features,
        })
    }

    /// Indices (into `layers`) of the weighted layers, in forward order.
    pub fn weighted_layers(&self) -> Vec<usize> {
        (0..self.layers.len())
            .filter(|&i| self.layers[i].is_weighted())
            .collect()
    }
}

fn widths(spec: &str, list: &str, what: &str) -> Result<Vec<usize>> {
    if list.trim().is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .enumerate()
        .map(|(i, s)| {
            let n: usize = s.trim().parse().with_context(|| {
                format!(
                    "arch '{spec}': {what} {} ('{s}') is not a positive whole number",
                    i + 1
                )
            })?;
            if n == 0 {
                bail!("arch '{spec}': {what} {} is 0", i + 1);
            }
            Ok(n)
        })
        .collect()
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use LayerSpec::*;

    #[test]
    fn mlp_layers_and_embedding() {
        let a = Arch::parse("mlp:256,128", [1, 28, 28], 10).unwrap();
        assert_eq!(a.spec, "mlp:256,128");
        assert_eq!(
            a.layers,
            vec![
                Flatten,
                Linear {
                    in_features: 784,
                    out_features: 256
                },
                Relu,
                Linear {
                    in_features: 256,
                    out_features: 128
                },
                Relu,
                Linear {
                    in_features: 128,
                    out_features: 10
                },
            ]
        );
        assert_eq!((a.embedding_layer, a.embedding_dim), (4, 128));
        assert_eq!(a.weighted_layers(), vec![1, 3, 5]);
        assert_eq!(
            Arch::parse("mlp", [1, 28, 28], 10).unwrap().spec,
            "mlp:256,128"
        );
    }

    #[test]
    fn cnn_adapts_to_input_shape() {
        let a = Arch::parse("cnn", [3, 32, 32], 10).unwrap();
        assert_eq!(a.spec, "cnn:32,64/128");
        assert_eq!(a.layers[6], Flatten);
        assert_eq!(
            a.layers[7],
            Linear {
                in_features: 64 * 8 * 8,
                out_features: 128
            }
        );
        let b = Arch::parse("cnn:8/", [1, 8, 8], 4).unwrap();
        assert_eq!(b.layers.len(), 5);
        assert_eq!((b.embedding_layer, b.embedding_dim), (3, 8 * 4 * 4));
        // 28 → 14 → 7 → 3 (floor).
        let c = Arch::parse("cnn:4,4,4/16", [1, 28, 28], 10).unwrap();
        assert_eq!(
            c.layers[10],
            Linear {
                in_features: 4 * 3 * 3,
                out_features: 16
            }
        );
    }

    #[test]
    fn errors_name_the_bad_part() {
        let e = |s: &str, shape| format!("{:#}", Arch::parse(s, shape, 10).unwrap_err());
        assert!(e("transformer", [1, 28, 28]).contains("unknown kind 'transformer'"));
        assert!(e("mlp:256,x", [1, 28, 28]).contains("hidden width 2 ('x')"));
        assert!(e("mlp:0", [1, 28, 28]).contains("hidden width 1 is 0"));
        assert!(e("cnn:8,y/16", [1, 28, 28]).contains("conv channel width 2 ('y')"));
        assert!(e("cnn", [20, 1, 1]).contains("tabular"));
        assert!(e("cnn:8,8,8,8", [1, 8, 8]).contains("conv block 4"));
        assert!(e("mlp:", [1, 8, 8]).contains("at least one hidden width"));
    }
}
