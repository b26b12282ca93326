//! Small format-v2 models for the host unit tests (and for trying the firmware in QEMU): owned
//! descriptions encoded with the core's [`encode`], a tiny deterministic RNG, and int8 variants
//! with fixed (uncalibrated) activation quantization — enough for tests that compare the host
//! core with the device, which need determinism, not accuracy.

use denoiserep_core::format::graph::{
    Act, Add, BatchMatMul, Conv2d, DepthwiseConv2d, Inputs, Linear, ModelInfo, Node, Op, Pool2d,
    TensorDesc, Weights,
};
use denoiserep_core::{
    encode, encoded_len, quantize_multiplier, Activation, DType, Error, F32Data, Graph, I32Data,
    I8Data, QuantParams, Shape, WindowSpec,
};

/// Little-endian bytes of f32 values.
pub fn le_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes of i32 values.
pub fn le_i32(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A xorshift64 generator: the same values on every machine.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        // xorshift64 never leaves 0, so start from a non-zero state.
        let mut x = self.0.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `[lo, hi)`.
    pub fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    /// `n` values in `[lo, hi)`.
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32(lo, hi)).collect()
    }

    /// An integer in `[lo, hi]`.
    pub fn int(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i32
    }
}

/// Owned weights of a Linear, Conv2d or DepthwiseConv2d.
#[derive(Debug, Clone)]
pub enum OwnedWeights {
    /// f32 weights and biases, little-endian.
    F32 { weights: Vec<u8>, bias: Vec<u8> },
    /// int8 weights, int32 biases, per-channel multipliers and shifts.
    S8 {
        weights: Vec<u8>,
        bias: Vec<u8>,
        multiplier: Vec<u8>,
        shift: Vec<u8>,
    },
}

impl OwnedWeights {
    /// Seeded random weights for `n_out` channels of `per_out` values. `quant` = `(s_in, s_out)`
    /// gives int8 weights (scale 0.5/127 per channel) requantizing from `s_in` to `s_out`.
    pub fn random(rng: &mut Rng, n_out: usize, per_out: usize, quant: Option<(f32, f32)>) -> Self {
        match quant {
            None => OwnedWeights::F32 {
                weights: le_f32(&rng.vec(n_out * per_out, -0.5, 0.5)),
                bias: le_f32(&rng.vec(n_out, -0.1, 0.1)),
            },
            Some((s_in, s_out)) => {
                let s_w = 0.5f64 / 127.0;
                let weights = (0..n_out * per_out)
                    .map(|_| rng.int(-127, 127) as i8 as u8)
                    .collect();
                let bias: Vec<i32> = (0..n_out).map(|_| rng.int(-500, 500)).collect();
                let (m, s) = quantize_multiplier(f64::from(s_in) * s_w / f64::from(s_out));
                OwnedWeights::S8 {
                    weights,
                    bias: le_i32(&bias),
                    multiplier: le_i32(&vec![m; n_out]),
                    shift: vec![s as i8 as u8; n_out],
                }
            }
        }
    }

    fn borrow(&self) -> Weights<'_> {
        match self {
            OwnedWeights::F32 { weights, bias } => Weights::F32 {
                weights: F32Data::from_le_bytes(weights),
                bias: F32Data::from_le_bytes(bias),
            },
            OwnedWeights::S8 {
                weights,
                bias,
                multiplier,
                shift,
            } => Weights::S8 {
                weights: I8Data::from_le_bytes(weights),
                bias: I32Data::from_le_bytes(bias),
                multiplier: I32Data::from_le_bytes(multiplier),
                shift: I8Data::from_le_bytes(shift),
            },
        }
    }
}

/// An owned op.
#[derive(Debug, Clone)]
pub enum OwnedOp {
    /// Linear on the last dim.
    Linear(Activation, OwnedWeights),
    /// Conv2d.
    Conv2d(WindowSpec, Activation, OwnedWeights),
    /// DepthwiseConv2d.
    Depthwise(WindowSpec, Activation, OwnedWeights),
    /// Elementwise add.
    Add(Activation),
    /// Max pooling.
    MaxPool(WindowSpec),
    /// Global average pool.
    Mean,
    /// New shape, same values.
    Reshape,
    /// Standalone activation.
    Activation(Activation),
    /// Batched matrix product `alpha · a × b` (`bᵀ` when the flag is set).
    BatchMatMul(bool, f32),
}

/// An owned op with its tensor ids.
#[derive(Debug, Clone)]
pub struct OwnedNode {
    /// The op.
    pub op: OwnedOp,
    /// Input tensor ids.
    pub inputs: Vec<u16>,
    /// Output tensor id.
    pub output: u16,
}

/// An owned model: everything [`Graph`] borrows.
#[derive(Debug, Clone)]
pub struct OwnedModel {
    /// Name.
    pub name: String,
    /// Input, logits and embedding tensor ids.
    pub input: u16,
    /// Logits tensor id.
    pub logits: u16,
    /// Embedding tensor id.
    pub embedding: u16,
    /// Tensor table: shape and dtype (no constants).
    pub tensors: Vec<(Vec<usize>, DType)>,
    /// Ops in execution order.
    pub nodes: Vec<OwnedNode>,
}

impl OwnedModel {
    /// The model file (header, CRC, body), validated by the core.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let (mean, std) = (le_f32(&[0.0]), le_f32(&[1.0]));
        let tensors: Vec<TensorDesc<'_>> = self
            .tensors
            .iter()
            .map(|(dims, dtype)| TensorDesc {
                shape: Shape::new(dims).expect("test shapes are valid"),
                dtype: *dtype,
                data: None,
            })
            .collect();
        let nodes: Vec<Node<'_>> = self
            .nodes
            .iter()
            .map(|n| Node {
                op: match &n.op {
                    OwnedOp::Linear(activation, w) => Op::Linear(Linear {
                        activation: *activation,
                        weights: w.borrow(),
                    }),
                    OwnedOp::Conv2d(window, activation, w) => Op::Conv2d(Conv2d {
                        window: *window,
                        activation: *activation,
                        weights: w.borrow(),
                    }),
                    OwnedOp::Depthwise(window, activation, w) => {
                        Op::DepthwiseConv2d(DepthwiseConv2d {
                            window: *window,
                            activation: *activation,
                            weights: w.borrow(),
                        })
                    }
                    OwnedOp::Add(activation) => Op::Add(Add {
                        activation: *activation,
                    }),
                    OwnedOp::MaxPool(window) => Op::MaxPool2d(Pool2d { window: *window }),
                    OwnedOp::Mean => Op::Mean,
                    OwnedOp::Reshape => Op::Reshape,
                    OwnedOp::Activation(activation) => Op::Activation(Act {
                        activation: *activation,
                    }),
                    OwnedOp::BatchMatMul(adj_y, alpha) => Op::BatchMatMul(BatchMatMul {
                        adj_y: *adj_y,
                        alpha: *alpha,
                    }),
                },
                inputs: Inputs::new(&n.inputs).expect("at most 4 inputs"),
                output: n.output,
            })
            .collect();
        let graph = Graph {
            info: ModelInfo {
                name: &self.name,
                input: self.input,
                logits: self.logits,
                embedding: self.embedding,
                input_mean: F32Data::from_le_bytes(&mean),
                input_std: F32Data::from_le_bytes(&std),
            },
            tensors: &tensors,
            nodes: &nodes,
        };
        let mut out = vec![0u8; encoded_len(&graph)?];
        let n = encode(&graph, &mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

/// A `k`×`k` window, stride `s`, padding `p` on every side.
pub fn window(k: u16, s: u16, p: u16) -> WindowSpec {
    WindowSpec {
        kernel: [k, k],
        stride: [s, s],
        padding: [p; 4],
    }
}

fn q(scale: f32, zero_point: i8) -> DType {
    DType::I8(QuantParams { scale, zero_point })
}

/// A residual CNN on a `1×side×side` input, f32 or int8 (fixed activation scales):
///
/// ```text
/// t0 input 1×s×s → conv 3×3 pad 1, 1→4, ReLU → t1 → depthwise 3×3 pad 1 → t2
/// add(t1, t2), ReLU → t3 → max pool 2×2 → t4 → mean → t5 (4, embedding)
/// → linear 4→10 → t6 (logits)
/// ```
pub fn residual_dw(seed: u64, side: usize, int8: bool) -> OwnedModel {
    let mut rng = Rng(seed);
    let (s_in, s_conv, s_dw, s_add, s_logits) = (1.0 / 255.0, 0.02, 0.02, 0.04, 0.05);
    let dt = |scale: f32, zp: i8| if int8 { q(scale, zp) } else { DType::F32 };
    let qw = |a: f32, b: f32| int8.then_some((a, b));
    let half = side / 2;
    OwnedModel {
        name: format!("residual-dw-{}", if int8 { "int8" } else { "f32" }),
        input: 0,
        logits: 6,
        embedding: 5,
        tensors: vec![
            (vec![1, side, side], dt(s_in, -128)),
            (vec![4, side, side], dt(s_conv, -128)),
            (vec![4, side, side], dt(s_dw, 0)),
            (vec![4, side, side], dt(s_add, -128)),
            (vec![4, half, half], dt(s_add, -128)),
            (vec![4], dt(s_add, -128)),
            (vec![10], dt(s_logits, 0)),
        ],
        nodes: vec![
            OwnedNode {
                op: OwnedOp::Conv2d(
                    window(3, 1, 1),
                    Activation::Relu,
                    OwnedWeights::random(&mut rng, 4, 9, qw(s_in, s_conv)),
                ),
                inputs: vec![0],
                output: 1,
            },
            OwnedNode {
                op: OwnedOp::Depthwise(
                    window(3, 1, 1),
                    Activation::None,
                    OwnedWeights::random(&mut rng, 4, 9, qw(s_conv, s_dw)),
                ),
                inputs: vec![1],
                output: 2,
            },
            OwnedNode {
                op: OwnedOp::Add(Activation::Relu),
                inputs: vec![1, 2],
                output: 3,
            },
            OwnedNode {
                op: OwnedOp::MaxPool(window(2, 2, 0)),
                inputs: vec![3],
                output: 4,
            },
            OwnedNode {
                op: OwnedOp::Mean,
                inputs: vec![4],
                output: 5,
            },
            OwnedNode {
                op: OwnedOp::Linear(
                    Activation::None,
                    OwnedWeights::random(&mut rng, 10, 4, qw(s_add, s_logits)),
                ),
                inputs: vec![5],
                output: 6,
            },
        ],
    }
}

/// An f32 MLP on a `1×side×side` input: reshape → linear → 16, ReLU (embedding) → linear → 10.
pub fn mlp(seed: u64, side: usize) -> OwnedModel {
    let mut rng = Rng(seed);
    let n = side * side;
    OwnedModel {
        name: "mlp-f32".into(),
        input: 0,
        logits: 3,
        embedding: 2,
        tensors: vec![
            (vec![1, side, side], DType::F32),
            (vec![n], DType::F32),
            (vec![16], DType::F32),
            (vec![10], DType::F32),
        ],
        nodes: vec![
            OwnedNode {
                op: OwnedOp::Reshape,
                inputs: vec![0],
                output: 1,
            },
            OwnedNode {
                op: OwnedOp::Linear(
                    Activation::Relu,
                    OwnedWeights::random(&mut rng, 16, n, None),
                ),
                inputs: vec![1],
                output: 2,
            },
            OwnedNode {
                op: OwnedOp::Linear(
                    Activation::None,
                    OwnedWeights::random(&mut rng, 10, 16, None),
                ),
                inputs: vec![2],
                output: 3,
            },
        ],
    }
}

/// `shape` input → 1×1 conv to `channels` → global average pool (f32; logits = embedding).
pub fn conv_gap(shape: [usize; 3], channels: usize) -> OwnedModel {
    OwnedModel {
        name: "conv-gap".into(),
        input: 0,
        logits: 2,
        embedding: 2,
        tensors: vec![
            (shape.to_vec(), DType::F32),
            (vec![channels, shape[1], shape[2]], DType::F32),
            (vec![channels], DType::F32),
        ],
        nodes: vec![
            OwnedNode {
                op: OwnedOp::Conv2d(
                    window(1, 1, 0),
                    Activation::None,
                    OwnedWeights::F32 {
                        weights: le_f32(&vec![0.5; channels * shape[0]]),
                        bias: le_f32(&vec![0.0; channels]),
                    },
                ),
                inputs: vec![0],
                output: 1,
            },
            OwnedNode {
                op: OwnedOp::Mean,
                inputs: vec![1],
                output: 2,
            },
        ],
    }
}

/// A Linear on a rank-2 `[rows][in]` tensor (MACs: `rows · in · out`), then a ReLU.
pub fn linear_rows(rows: usize, in_features: usize, out_features: usize) -> OwnedModel {
    let mut rng = Rng(9);
    OwnedModel {
        name: "linear-rows".into(),
        input: 0,
        logits: 2,
        embedding: 1,
        tensors: vec![
            (vec![rows, in_features], DType::F32),
            (vec![rows, out_features], DType::F32),
            (vec![rows, out_features], DType::F32),
        ],
        nodes: vec![
            OwnedNode {
                op: OwnedOp::Linear(
                    Activation::None,
                    OwnedWeights::random(&mut rng, out_features, in_features, None),
                ),
                inputs: vec![0],
                output: 1,
            },
            OwnedNode {
                op: OwnedOp::Activation(Activation::Relu),
                inputs: vec![1],
                output: 2,
            },
        ],
    }
}

/// Attention products on `x = [heads, tokens, d]`: scores `s = BatchMatMul(x, x, adj_y,
/// α = 1/√d)` `[heads, tokens, tokens]` (the embedding), then `BatchMatMul(s, x)`
/// `[heads, tokens, d]` (the logits).
pub fn attention_products(heads: usize, tokens: usize, d: usize) -> OwnedModel {
    OwnedModel {
        name: "attention-products".into(),
        input: 0,
        logits: 2,
        embedding: 1,
        tensors: vec![
            (vec![heads, tokens, d], DType::F32),
            (vec![heads, tokens, tokens], DType::F32),
            (vec![heads, tokens, d], DType::F32),
        ],
        nodes: vec![
            OwnedNode {
                op: OwnedOp::BatchMatMul(true, 1.0 / (d as f32).sqrt()),
                inputs: vec![0, 0],
                output: 1,
            },
            OwnedNode {
                op: OwnedOp::BatchMatMul(false, 1.0),
                inputs: vec![1, 0],
                output: 2,
            },
        ],
    }
}
