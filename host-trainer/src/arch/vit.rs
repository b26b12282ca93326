//! `vit[:PATCH,DIM,HEADS,DEPTH,MLP_RATIO[,POOL]]`: a Vision Transformer (Dosovitskiy et al.,
//! 2021) with the module tree and `state_dict` names of timm's `VisionTransformer`, so that a
//! timm/PyTorch ViT of the same shape loads with `--import`:
//!
//! ```text
//! patch_embed.proj     Conv2d(C→D, P×P, stride P, no padding, bias)   [C, H, W] → [D, H/P, W/P]
//! patch_embed.flatten  tokens: flatten(2).transpose(1, 2)              → [T₀ = HW/P², D]
//! cls_token            prepend the learned [1, 1, D] token (POOL = cls) → [T = T₀ + 1, D]
//! pos_embed            add the learned [1, T, D]
//! blocks.i (i < DEPTH):
//!   norm1 (LayerNorm, eps 1e-6) → attn.qkv (Linear D→3D) → attn.sdpa (softmax(q·kᵀ/√dh)·v
//!   per head, dh = D/HEADS) → attn.proj (Linear D→D) → add1 (+ the block input)
//!   → norm2 → mlp.fc1 (Linear D→⌊R·D⌋) → mlp.act (GELU, erf) → mlp.fc2 (Linear →D)
//!   → add2 (+ add1's output)
//! POOL = cls:  norm (LayerNorm) → pool (token 0)       → head (Linear D→classes)
//! POOL = mean: pool (mean over tokens) → fc_norm (LayerNorm) → head
//! ```
//!
//! The two pools are timm's `global_pool='token'` (class token, final `norm`) and
//! `global_pool='avg'` with `class_token=False` (no class token, `pos_embed` over the patch
//! tokens only; timm then normalizes after pooling, as `fc_norm`, and its `norm` is an
//! `Identity`). The **embedding** is the head's input: the pooled, normalized token.
//!
//! **Defaults** (`vit` alone): patch 7 (28×28 → 4×4 = 16 patches + the class token), D = 64,
//! 4 heads, 4 blocks, MLP ratio 2 (hidden 128), class-token pooling: 139,018 parameters,
//! ≈ 2.4 M MACs per 28×28 sample — sized for a microcontroller. When 7 does not divide the
//! input, the default patch is the largest of 6, 5, 4, 3, 2 that divides both sides (32×32:
//! patch 4, 64 patches). An explicit patch must divide both sides: there is no padding (a
//! partial patch at the border would be a different model from timm's, which refuses it too).
//!
//! **Initialization** as timm's default (`init_weights_vit_timm`), from tch's RNG in node order:
//! Linear weights `N(0, 0.02²)` truncated at ±2 (timm's absolute bounds, which at σ = 0.02
//! never truncate), Linear biases 0, `cls_token` and `pos_embed` likewise `N(0, 0.02²)` (timm
//! ≤ 0.6; later versions draw the class token with σ = 10⁻⁶), LayerNorm `γ = 1`, `β = 0`, the
//! patch embedding conv PyTorch's default `U(±1/√fan_in)`.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{Builder, LayerSpec, Src};

/// timm's LayerNorm epsilon in `VisionTransformer` (`partial(nn.LayerNorm, eps=1e-6)`).
pub const LAYER_NORM_EPS: f64 = 1e-6;

/// How the tokens are reduced to the embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pool {
    /// A class token is prepended; the embedding is its final state (token 0).
    Cls,
    /// No class token; the embedding is the mean over the tokens.
    Mean,
}

impl Pool {
    fn name(self) -> &'static str {
        match self {
            Self::Cls => "cls",
            Self::Mean => "mean",
        }
    }
}

/// The parsed `vit:…` arguments.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Vit {
    /// `None` until [`Vit::fit_input`] picks the default for the input.
    patch: Option<usize>,
    dim: usize,
    heads: usize,
    depth: usize,
    mlp_ratio: f64,
    pool: Pool,
}

/// Default patch: the first of these that divides both sides of the input.
const DEFAULT_PATCHES: [usize; 6] = [7, 6, 5, 4, 3, 2];

impl Vit {
    /// The grammar (no data needed): `None` args are the defaults.
    pub(super) fn parse(spec: &str, args: Option<&str>) -> Result<Self> {
        let Some(args) = args else {
            return Ok(Self {
                patch: None,
                dim: 64,
                heads: 4,
                depth: 4,
                mlp_ratio: 2.0,
                pool: Pool::Cls,
            });
        };
        let parts: Vec<&str> = args.split(',').map(str::trim).collect();
        if !(5..=6).contains(&parts.len()) {
            bail!(
                "arch '{spec}': vit takes PATCH,DIM,HEADS,DEPTH,MLP_RATIO[,POOL] (5 or 6 values, \
                 e.g. vit:7,64,4,4,2,cls), got {} value(s)",
                parts.len()
            );
        }
        let whole = |i: usize, what: &str| -> Result<usize> {
            let s = parts[i];
            s.parse::<usize>().ok().filter(|&n| n > 0).with_context(|| {
                format!("arch '{spec}': {what} ('{s}') is not a positive whole number")
            })
        };
        let (patch, dim, heads, depth) = (
            whole(0, "PATCH")?,
            whole(1, "DIM")?,
            whole(2, "HEADS")?,
            whole(3, "DEPTH")?,
        );
        let r = parts[4];
        let mlp_ratio = r
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x > 0.0 && *x <= 64.0)
            .with_context(|| {
                format!("arch '{spec}': MLP_RATIO ('{r}') is not a number in (0, 64], e.g. 2")
            })?;
        let pool = match parts.get(5).copied() {
            None | Some("cls") => Pool::Cls,
            Some("mean") => Pool::Mean,
            Some(p) => bail!("arch '{spec}': POOL ('{p}') is not cls or mean"),
        };
        if dim % heads != 0 {
            bail!(
                "arch '{spec}': DIM {dim} is not divisible by HEADS {heads} (each head gets \
                 DIM/HEADS features)"
            );
        }
        let v = Self {
            patch: Some(patch),
            dim,
            heads,
            depth,
            mlp_ratio,
            pool,
        };
        if v.mlp_hidden() == 0 {
            bail!("arch '{spec}': MLP_RATIO {mlp_ratio} × DIM {dim} leaves no hidden unit");
        }
        Ok(v)
    }

    /// The MLP's hidden width, `⌊R·D⌋` (timm's `int(dim * mlp_ratio)`).
    fn mlp_hidden(&self) -> usize {
        (self.mlp_ratio * self.dim as f64).floor() as usize
    }

    /// Picks the default patch for `[C, H, W]`, or checks the given one divides `H` and `W`.
    pub(super) fn fit_input(&mut self, spec: &str, shape: [usize; 3]) -> Result<()> {
        let [_, h, w] = shape;
        match self.patch {
            Some(p) if h % p != 0 || w % p != 0 => bail!(
                "arch '{spec}': PATCH {p} does not divide the {h}×{w} input (patches do not \
                 overlap and there is no padding; divisors of both sides: {})",
                divisors(h, w)
            ),
            Some(_) => {}
            None => {
                let p = DEFAULT_PATCHES
                    .into_iter()
                    .find(|p| h % p == 0 && w % p == 0)
                    .with_context(|| {
                        format!(
                            "arch '{spec}': no default patch (7, 6, 5, 4, 3 or 2) divides the \
                             {h}×{w} input; name one, e.g. vit:P,64,4,4,2 with P among {}",
                            divisors(h, w)
                        )
                    })?;
                self.patch = Some(p);
            }
        }
        Ok(())
    }

    /// `vit:P,D,H,L,R,POOL` with every value explicit (after [`Vit::fit_input`]).
    pub(super) fn canonical(&self) -> String {
        format!(
            "vit:{},{},{},{},{},{}",
            self.patch.unwrap_or(0),
            self.dim,
            self.heads,
            self.depth,
            self.mlp_ratio,
            self.pool.name()
        )
    }
}

/// The common divisors of `h` and `w`, for messages.
fn divisors(h: usize, w: usize) -> String {
    (1..=h.min(w))
        .filter(|d| h % d == 0 && w % d == 0)
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One pre-norm transformer block `blocks.i`.
fn block(b: &mut Builder, i: usize, x: Src, v: &Vit) -> Result<Src> {
    let d = v.dim;
    b.scoped("blocks", |b| {
        b.scoped(&i.to_string(), |b| {
            let ln = LayerSpec::LayerNorm {
                dim: d,
                eps: LAYER_NORM_EPS,
            };
            let y = b.add("norm1", ln, &[x])?;
            let y = b.scoped("attn", |b| {
                let qkv = b.linear("qkv", y, 3 * d)?;
                let att = LayerSpec::Attention {
                    dim: d,
                    heads: v.heads,
                };
                let a = b.add("sdpa", att, &[qkv])?;
                b.linear("proj", a, d)
            })?;
            let x = b.add("add1", LayerSpec::Add, &[x, y])?;
            let y = b.add("norm2", ln, &[x])?;
            let y = b.scoped("mlp", |b| {
                let h = b.linear("fc1", y, v.mlp_hidden())?;
                let h = b.add("act", LayerSpec::Gelu, &[h])?;
                b.linear("fc2", h, d)
            })?;
            b.add("add2", LayerSpec::Add, &[x, y])
        })
    })
}

/// Builds the ViT for the builder's input shape (the patch already fits it).
pub(super) fn build(b: &mut Builder, v: &Vit, num_classes: usize) -> Result<()> {
    let [c, h, w] = b.input_shape;
    let p = v
        .patch
        .context("vit: patch not fitted to the input (a bug)")?;
    let d = v.dim;
    let x = b.scoped("patch_embed", |b| {
        let conv = LayerSpec::Conv2d {
            in_channels: c,
            out_channels: d,
            kernel: [p, p],
            stride: [p, p],
            padding: [0; 4],
            groups: 1,
        };
        let x = b.add("proj", conv, &[Src::Input])?;
        b.add("flatten", LayerSpec::Tokens, &[x])
    })?;
    let mut x = match v.pool {
        Pool::Cls => b.add("cls_token", LayerSpec::ClsToken { dim: d }, &[x])?,
        Pool::Mean => x,
    };
    let tokens = (h / p) * (w / p) + usize::from(v.pool == Pool::Cls);
    x = b.add("pos_embed", LayerSpec::PosEmbed { tokens, dim: d }, &[x])?;
    for i in 0..v.depth {
        x = block(b, i, x, v)?;
    }
    let ln = LayerSpec::LayerNorm {
        dim: d,
        eps: LAYER_NORM_EPS,
    };
    let x = match v.pool {
        Pool::Cls => {
            let y = b.add("norm", ln, &[x])?;
            b.add("pool", LayerSpec::TokenPool { pool: Pool::Cls }, &[y])?
        }
        Pool::Mean => {
            let y = b.add("pool", LayerSpec::TokenPool { pool: Pool::Mean }, &[x])?;
            b.add("fc_norm", ln, &[y])?
        }
    };
    b.linear("head", x, num_classes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Arch, LayerSpec::*, Src};

    /// PyTorch's `sum(p.numel() for p in model.parameters())` of timm's `VisionTransformer`
    /// (`img_size = h×w`, `in_chans = c`, no distillation token, no layer scale, qkv bias),
    /// written out by hand.
    fn timm_param_count(
        [c, h, w]: [usize; 3],
        p: usize,
        d: usize,
        depth: usize,
        hidden: usize,
        cls: bool,
        classes: usize,
    ) -> usize {
        let patches = (h / p) * (w / p);
        let patch_embed = c * p * p * d + d;
        let cls_token = if cls { d } else { 0 };
        let pos_embed = (patches + usize::from(cls)) * d;
        let block = 2 * d // norm1
            + 3 * d * d + 3 * d // attn.qkv
            + d * d + d // attn.proj
            + 2 * d // norm2
            + d * hidden + hidden // mlp.fc1
            + hidden * d + d; // mlp.fc2
        let final_norm = 2 * d; // norm (cls) or fc_norm (mean)
        let head = d * classes + classes;
        patch_embed + cls_token + pos_embed + depth * block + final_norm + head
    }

    fn names(a: &Arch) -> Vec<&str> {
        a.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    #[test]
    fn default_vit_on_mnist_names_shapes_and_counts() {
        let a = Arch::parse("vit", [1, 28, 28], 10).unwrap();
        assert_eq!(a.spec, "vit:7,64,4,4,2,cls");
        assert!(a.is_vit());
        let n = names(&a);
        assert_eq!(
            n[..17],
            [
                "patch_embed.proj",
                "patch_embed.flatten",
                "cls_token",
                "pos_embed",
                "blocks.0.norm1",
                "blocks.0.attn.qkv",
                "blocks.0.attn.sdpa",
                "blocks.0.attn.proj",
                "blocks.0.add1",
                "blocks.0.norm2",
                "blocks.0.mlp.fc1",
                "blocks.0.mlp.act",
                "blocks.0.mlp.fc2",
                "blocks.0.add2",
                "blocks.1.norm1",
                "blocks.1.attn.qkv",
                "blocks.1.attn.sdpa",
            ]
        );
        assert_eq!(n[n.len() - 4..], ["blocks.3.add2", "norm", "pool", "head"]);
        assert_eq!(
            a.nodes[0].spec,
            Conv2d {
                in_channels: 1,
                out_channels: 64,
                kernel: [7, 7],
                stride: [7, 7],
                padding: [0; 4],
                groups: 1
            }
        );
        // 28/7 = 4 → 16 patches, plus the class token.
        assert_eq!(
            a.nodes[3].spec,
            PosEmbed {
                tokens: 17,
                dim: 64
            }
        );
        let node = |name: &str| a.nodes.iter().position(|x| x.name == name).unwrap();
        assert_eq!(
            a.nodes[node("blocks.2.attn.sdpa")].spec,
            Attention { dim: 64, heads: 4 }
        );
        assert_eq!(
            a.nodes[node("blocks.2.mlp.fc1")].spec,
            Linear {
                in_features: 64,
                out_features: 128
            }
        );
        // Residuals: add1 = block input + attn.proj; add2 = add1 + mlp.fc2.
        assert_eq!(
            a.nodes[node("blocks.1.add1")].inputs,
            [
                Src::Node(node("blocks.0.add2")),
                Src::Node(node("blocks.1.attn.proj"))
            ]
        );
        assert_eq!(
            a.nodes[node("blocks.1.add2")].inputs,
            [
                Src::Node(node("blocks.1.add1")),
                Src::Node(node("blocks.1.mlp.fc2"))
            ]
        );
        // The embedding is the pooled class token, the head's input.
        assert_eq!((a.embedding_layer, a.embedding_dim), (node("pool"), 64));
        assert_eq!(a.output_dim, 10);
        // Denoised: the patch conv, 4 Linears per block, the head.
        let weighted: Vec<&str> = a
            .weighted_layers()
            .into_iter()
            .map(|k| a.nodes[k].name.as_str())
            .collect();
        assert_eq!(weighted.len(), 18);
        assert_eq!(
            weighted[..3],
            [
                "patch_embed.proj",
                "blocks.0.attn.qkv",
                "blocks.0.attn.proj"
            ]
        );
        assert_eq!(weighted[17], "head");
        // Counts: 139,018 parameters, of which LayerNorms 9·128, tokens 64 + 17·64.
        let c = a.param_counts();
        assert_eq!(c.trainable, 139_018);
        assert_eq!(
            c.trainable,
            timm_param_count([1, 28, 28], 7, 64, 4, 128, true, 10)
        );
        assert_eq!(c.weighted, 139_018 - 9 * 128 - 64 - 17 * 64);
        assert_eq!(c.total, c.trainable);
    }

    #[test]
    fn patch_mean_pool_and_ratio_follow_the_spec() {
        // 32×32: 7 does not divide, the default patch is 4 (8×8 = 64 patches).
        let a = Arch::parse("vit", [3, 32, 32], 10).unwrap();
        assert_eq!(a.spec, "vit:4,64,4,4,2,cls");
        assert_eq!(
            a.nodes[3].spec,
            PosEmbed {
                tokens: 65,
                dim: 64
            }
        );
        assert_eq!(
            a.param_counts().trainable,
            timm_param_count([3, 32, 32], 4, 64, 4, 128, true, 10)
        );
        // Mean pool: no class token, pooling before the final (fc_)norm; a fractional ratio.
        let m = Arch::parse("vit:4,32,2,3,1.5,mean", [1, 12, 8], 5).unwrap();
        assert_eq!(m.spec, "vit:4,32,2,3,1.5,mean");
        let n = names(&m);
        assert!(!n.contains(&"cls_token") && !n.contains(&"norm"));
        assert_eq!(n[n.len() - 3..], ["pool", "fc_norm", "head"]);
        assert_eq!(m.nodes[2].spec, PosEmbed { tokens: 6, dim: 32 });
        let fc1 = m
            .nodes
            .iter()
            .find(|x| x.name == "blocks.2.mlp.fc1")
            .unwrap();
        assert_eq!(
            fc1.spec,
            Linear {
                in_features: 32,
                out_features: 48
            }
        );
        assert_eq!(m.nodes[m.embedding_layer].name, "fc_norm");
        assert_eq!(
            m.param_counts().trainable,
            timm_param_count([1, 12, 8], 4, 32, 3, 48, false, 5)
        );
        // The canonical string re-parses to the same graph (config.json).
        assert_eq!(Arch::parse(&m.spec, [1, 12, 8], 5).unwrap(), m);
        let back: Arch = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn bad_vit_specs_name_the_fault() {
        let e = |s: &str, shape| format!("{:#}", Arch::parse(s, shape, 10).unwrap_err());
        let mnist = [1, 28, 28];
        assert!(e("vit:7,64,3,4,2", mnist).contains("DIM 64 is not divisible by HEADS 3"));
        assert!(e("vit:5,64,4,4,2", mnist).contains("PATCH 5 does not divide the 28×28 input"));
        assert!(e("vit:5,64,4,4,2", mnist).contains("1, 2, 4, 7, 14, 28"));
        assert!(e("vit:7,64,4", mnist).contains("5 or 6 values"));
        assert!(e("vit:7,64,4,4,2,cls,1", mnist).contains("got 7 value(s)"));
        assert!(e("vit:0,64,4,4,2", mnist).contains("PATCH ('0')"));
        assert!(e("vit:7,x,4,4,2", mnist).contains("DIM ('x')"));
        assert!(e("vit:7,64,4,0,2", mnist).contains("DEPTH ('0')"));
        assert!(e("vit:7,64,4,4,-1", mnist).contains("MLP_RATIO ('-1')"));
        assert!(e("vit:7,64,4,4,0.001", mnist).contains("leaves no hidden unit"));
        assert!(e("vit:7,64,4,4,2,avg", mnist).contains("POOL ('avg') is not cls or mean"));
        assert!(e("vit:32,64,4,4,2", mnist).contains("PATCH 32 does not divide"));
        // 49×10 (DS-CNN's MFCCs): no default patch fits; a patch that does must be named.
        assert!(e("vit", [1, 49, 10]).contains("no default patch"));
        assert!(Arch::parse("vit:1,8,2,1,2", [1, 49, 10], 12).is_ok());
        // Grammar before data.
        assert!(e("vit:7,64,3,4,2", [0, 0, 0]).contains("not divisible"));
        assert!(e("vit:5,64,4,4,2", [0, 0, 0]).ends_with("is not trainable"));
    }
}
