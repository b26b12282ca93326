//! Test and demo support for format v3 graphs:
//!
//! - [`OwnedModel`]: an owned graph (tensor table + nodes) with a small builder (`linear`,
//!   `conv2d`, `add`, … compute the output tensor's shape and dtype), encoded with the core's
//!   `encode` ([`OwnedModel::encode`], validated) or written raw without validation
//!   ([`OwnedModel::raw`]) to build invalid files;
//! - [`quantize_model`]: a post-training int8 quantizer (per-channel symmetric weights,
//!   per-tensor asymmetric activations calibrated by running the f32 model through the core's
//!   `run_with`), the arithmetic an exporter uses;
//! - two independent evaluators: [`eval_kernels`] (each op through the public kernels on its own
//!   buffers: the interpreter must match it bit for bit) and [`eval_naive`] (plain loops written
//!   here: f64 for f32 models, exact i64 + the core's `quant` requantization for int8);
//! - the models the tests, fixtures, demo and benches share, and a tiny deterministic RNG.
#![allow(dead_code)]

use denoiserep_core::format::graph::{
    Act, Add, BatchMatMul, Concat, Conv2d, DepthwiseConv2d, Inputs, LayerNorm, Linear, MeanAxis,
    ModelInfo, Node, Op, Perm, Pool2d, Slice, Softmax, TensorDesc, Transpose, Weights,
};
use denoiserep_core::kernels::params::{
    AxisDims, BatchMatMulParams, ConvParams, DepthwiseParams, LinearParams, PerChannelQuant,
    PoolParams, Window,
};
use denoiserep_core::kernels::{self, Chw};
use denoiserep_core::quant::{
    activation_range, add_s8_params, batch_matmul_s8_params, dequantize, mean_s8_params,
    multiply_by_quantized_multiplier, quantize, requantize, softmax_s8_params,
};
use denoiserep_core::{
    encode, encoded_len, quantize_multiplier, Activation, DType, F32Data, Graph, I32Data, I8Data,
    Model, QuantParams, Shape, TensorData, WindowSpec, FORMAT_VERSION,
};

/// Little-endian bytes of f32 values.
pub fn le_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes of i32 values.
pub fn le_i32(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Bytes of i8 values.
pub fn bytes_i8(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}

/// f32 values of little-endian bytes.
pub fn f32s(b: &[u8]) -> Vec<f32> {
    F32Data::from_le_bytes(b).iter().collect()
}

/// Bit patterns of f32 values (NaN-safe equality).
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A complete file around `body`: magic, version, reserved 0, length and CRC-32 (no validation).
pub fn file_with_body(body: &[u8]) -> Vec<u8> {
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(body);
    let mut f = b"DNRP".to_vec();
    f.extend(FORMAT_VERSION.to_le_bytes());
    f.extend(0u16.to_le_bytes());
    f.extend((body.len() as u32).to_le_bytes());
    f.extend(crc.to_le_bytes());
    f.extend(body);
    f
}

/// A `k × k` window with stride `s` and padding `p` on every side.
pub fn square(k: u16, s: u16, p: u16) -> WindowSpec {
    WindowSpec {
        kernel: [k, k],
        stride: [s, s],
        padding: [p; 4],
    }
}

/// The host kernel paths this CPU has, fastest first (AVX-512, AVX2, portable; on other
/// targets just the one `kernels::kernel_path()` gives): the benches time a kernel once per path,
/// making each current with `kernels::limit_kernel_path` before it runs.
pub fn host_paths() -> Vec<kernels::KernelPath> {
    use kernels::KernelPath;
    kernels::limit_kernel_path(KernelPath::Avx512);
    let fastest = kernels::kernel_path();
    let order = [KernelPath::Avx512, KernelPath::Avx2, KernelPath::Portable];
    let paths: Vec<KernelPath> = order.into_iter().skip_while(|&p| p != fastest).collect();
    if paths.is_empty() {
        vec![fastest]
    } else {
        paths
    }
}

/// [`host_paths`], or only the one named by the environment variable `ONLY` (`avx512`, `avx2`,
/// `portable`; any case), for the timing examples. Panics with the name when this CPU lacks it.
pub fn host_paths_from_env() -> Vec<kernels::KernelPath> {
    let only = std::env::var("ONLY").unwrap_or_default().to_lowercase();
    let paths: Vec<kernels::KernelPath> = host_paths()
        .into_iter()
        .filter(|p| only.is_empty() || format!("{p:?}").to_lowercase() == only)
        .collect();
    assert!(
        !paths.is_empty(),
        "ONLY={only}: not a kernel path of this CPU"
    );
    paths
}

/// The count in the environment variable `name`, or `default` when it is unset (the timing
/// examples' `ROUNDS`, `CALLS`, …). Panics with the name on a value that is not a count.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: expected a count"))
        })
        .unwrap_or(default)
}

/// The per-channel requantization of the benches' int8 Linear layers (`n_out` outputs, multiplier
/// `1 518 500 250`, shift −9, output scale 0.05 and zero point −128), as the bytes a
/// [`PerChannelQuant`] borrows ([`BenchQuant::get`]).
pub struct BenchQuant {
    multiplier: Vec<u8>,
    shift: Vec<u8>,
}

impl BenchQuant {
    pub fn new(n_out: usize) -> Self {
        Self {
            multiplier: le_i32(&vec![1_518_500_250; n_out]),
            shift: bytes_i8(&vec![-9; n_out]),
        }
    }

    /// The layer's quantization with input zero point `input_zp`.
    pub fn get(&self, input_zp: i8) -> PerChannelQuant<'_> {
        PerChannelQuant {
            input_zp,
            output: QuantParams {
                scale: 0.05,
                zero_point: -128,
            },
            multiplier: I32Data::from_le_bytes(&self.multiplier),
            shift: I8Data::from_le_bytes(&self.shift),
        }
    }
}

/// SplitMix64: small, seeded, deterministic.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    pub fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next_u64() as i8).collect()
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// Owned graphs.

/// One tensor of the table, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedTensor {
    pub dims: Vec<usize>,
    pub dtype: DType,
    /// Constant data (little-endian bytes), or `None` for an activation.
    pub data: Option<Vec<u8>>,
}

impl OwnedTensor {
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }
}

/// Weights of a Linear / Conv2d / DepthwiseConv2d, owned bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedWeights {
    F32 {
        w: Vec<u8>,
        b: Vec<u8>,
    },
    S8 {
        w: Vec<u8>,
        b: Vec<u8>,
        m: Vec<u8>,
        s: Vec<u8>,
    },
}

impl OwnedWeights {
    pub fn f32(w: &[f32], b: &[f32]) -> Self {
        OwnedWeights::F32 {
            w: le_f32(w),
            b: le_f32(b),
        }
    }

    pub fn weights(&self) -> Weights<'_> {
        match self {
            OwnedWeights::F32 { w, b } => Weights::F32 {
                weights: F32Data::from_le_bytes(w),
                bias: F32Data::from_le_bytes(b),
            },
            OwnedWeights::S8 { w, b, m, s } => Weights::S8 {
                weights: I8Data::from_le_bytes(w),
                bias: I32Data::from_le_bytes(b),
                multiplier: I32Data::from_le_bytes(m),
                shift: I8Data::from_le_bytes(s),
            },
        }
    }

    /// Number of output channels (bias length).
    pub fn n_out(&self) -> usize {
        match self {
            OwnedWeights::F32 { b, .. } | OwnedWeights::S8 { b, .. } => b.len() / 4,
        }
    }
}

/// An op with owned parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedOp {
    Linear {
        act: Activation,
        w: OwnedWeights,
    },
    Conv2d {
        window: WindowSpec,
        act: Activation,
        w: OwnedWeights,
    },
    Depthwise {
        window: WindowSpec,
        act: Activation,
        w: OwnedWeights,
    },
    Add {
        act: Activation,
    },
    MaxPool(WindowSpec),
    AvgPool(WindowSpec),
    Mean,
    Reshape,
    Softmax {
        beta: f32,
    },
    Act(Activation),
    LayerNorm {
        eps: f32,
    },
    Gelu,
    Lut,
    BatchMatMul {
        adj_y: bool,
        alpha: f32,
    },
    Transpose(Vec<u8>),
    Quantize,
    Dequantize,
    Concat {
        axis: u8,
    },
    MeanAxis {
        axis: u8,
    },
    Slice {
        axis: u8,
        start: u32,
        len: u32,
    },
}

impl OwnedOp {
    pub fn op(&self) -> Op<'_> {
        match self {
            OwnedOp::Linear { act, w } => Op::Linear(Linear {
                activation: *act,
                weights: w.weights(),
            }),
            OwnedOp::Conv2d { window, act, w } => Op::Conv2d(Conv2d {
                window: *window,
                activation: *act,
                weights: w.weights(),
            }),
            OwnedOp::Depthwise { window, act, w } => Op::DepthwiseConv2d(DepthwiseConv2d {
                window: *window,
                activation: *act,
                weights: w.weights(),
            }),
            OwnedOp::Add { act } => Op::Add(Add { activation: *act }),
            OwnedOp::MaxPool(window) => Op::MaxPool2d(Pool2d { window: *window }),
            OwnedOp::AvgPool(window) => Op::AvgPool2d(Pool2d { window: *window }),
            OwnedOp::Mean => Op::Mean,
            OwnedOp::Reshape => Op::Reshape,
            OwnedOp::Softmax { beta } => Op::Softmax(Softmax { beta: *beta }),
            OwnedOp::Act(a) => Op::Activation(Act { activation: *a }),
            OwnedOp::LayerNorm { eps } => Op::LayerNorm(LayerNorm { eps: *eps }),
            OwnedOp::Gelu => Op::Gelu,
            OwnedOp::Lut => Op::Lut,
            OwnedOp::BatchMatMul { adj_y, alpha } => Op::BatchMatMul(BatchMatMul {
                adj_y: *adj_y,
                alpha: *alpha,
            }),
            OwnedOp::Transpose(perm) => Op::Transpose(Transpose {
                perm: Perm::new(perm).expect("at most 4 axes"),
            }),
            OwnedOp::Quantize => Op::Quantize,
            OwnedOp::Dequantize => Op::Dequantize,
            OwnedOp::Concat { axis } => Op::Concat(Concat { axis: *axis }),
            OwnedOp::MeanAxis { axis } => Op::MeanAxis(MeanAxis { axis: *axis }),
            OwnedOp::Slice { axis, start, len } => Op::Slice(Slice {
                axis: *axis,
                start: *start,
                len: *len,
            }),
        }
    }

    pub fn weights_mut(&mut self) -> Option<&mut OwnedWeights> {
        match self {
            OwnedOp::Linear { w, .. }
            | OwnedOp::Conv2d { w, .. }
            | OwnedOp::Depthwise { w, .. } => Some(w),
            _ => None,
        }
    }
}

/// One node, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedNode {
    pub op: OwnedOp,
    pub inputs: Vec<u16>,
    pub output: u16,
}

/// A model: info, tensor table and nodes, all owned. Tensor 0 is the input unless changed.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedModel {
    pub name: String,
    pub input: u16,
    pub logits: u16,
    pub embedding: u16,
    pub mean: Vec<u8>,
    pub std: Vec<u8>,
    pub tensors: Vec<OwnedTensor>,
    pub nodes: Vec<OwnedNode>,
}

impl OwnedModel {
    /// A model with one f32 input tensor (id 0) of `dims`, normalized with `mean` / `std`.
    pub fn new(name: &str, dims: &[usize], mean: &[f32], std: &[f32]) -> Self {
        OwnedModel {
            name: name.into(),
            input: 0,
            logits: 0,
            embedding: 0,
            mean: le_f32(mean),
            std: le_f32(std),
            tensors: vec![OwnedTensor {
                dims: dims.to_vec(),
                dtype: DType::F32,
                data: None,
            }],
            nodes: vec![],
        }
    }

    /// Sets the logits and embedding tensors.
    pub fn outputs(mut self, logits: u16, embedding: u16) -> Self {
        self.logits = logits;
        self.embedding = embedding;
        self
    }

    /// Adds an activation tensor, returns its id.
    pub fn tensor(&mut self, dims: &[usize], dtype: DType) -> u16 {
        self.tensors.push(OwnedTensor {
            dims: dims.to_vec(),
            dtype,
            data: None,
        });
        (self.tensors.len() - 1) as u16
    }

    /// Adds an f32 constant tensor, returns its id.
    pub fn constant_f32(&mut self, dims: &[usize], v: &[f32]) -> u16 {
        self.tensors.push(OwnedTensor {
            dims: dims.to_vec(),
            dtype: DType::F32,
            data: Some(le_f32(v)),
        });
        (self.tensors.len() - 1) as u16
    }

    /// Appends a node.
    pub fn push(&mut self, op: OwnedOp, inputs: &[u16], output: u16) {
        self.nodes.push(OwnedNode {
            op,
            inputs: inputs.to_vec(),
            output,
        });
    }

    pub fn dims(&self, t: u16) -> Vec<usize> {
        self.tensors[t as usize].dims.clone()
    }

    fn dtype(&self, t: u16) -> DType {
        self.tensors[t as usize].dtype
    }

    /// A new output tensor of `dims` with `x`'s dtype, written by `op` reading `inputs`.
    fn op_out(&mut self, op: OwnedOp, inputs: &[u16], dims: &[usize]) -> u16 {
        let dtype = self.dtype(inputs[0]);
        let y = self.tensor(dims, dtype);
        self.push(op, inputs, y);
        y
    }

    /// Linear on the last dim; `out = b.len()`.
    pub fn linear(&mut self, x: u16, act: Activation, w: &[f32], b: &[f32]) -> u16 {
        let mut dims = self.dims(x);
        *dims.last_mut().unwrap() = b.len();
        let w = OwnedWeights::f32(w, b);
        self.op_out(OwnedOp::Linear { act, w }, &[x], &dims)
    }

    /// Conv2d with `b.len()` output channels.
    pub fn conv2d(
        &mut self,
        x: u16,
        window: WindowSpec,
        act: Activation,
        w: &[f32],
        b: &[f32],
    ) -> u16 {
        let d = self.dims(x);
        let (oh, ow) = window.window().out_dims(d[1], d[2]).unwrap();
        let w = OwnedWeights::f32(w, b);
        self.op_out(OwnedOp::Conv2d { window, act, w }, &[x], &[b.len(), oh, ow])
    }

    /// Depthwise conv (weights `[c][kh][kw]`).
    pub fn depthwise(
        &mut self,
        x: u16,
        window: WindowSpec,
        act: Activation,
        w: &[f32],
        b: &[f32],
    ) -> u16 {
        let d = self.dims(x);
        let (oh, ow) = window.window().out_dims(d[1], d[2]).unwrap();
        let w = OwnedWeights::f32(w, b);
        self.op_out(OwnedOp::Depthwise { window, act, w }, &[x], &[d[0], oh, ow])
    }

    pub fn add(&mut self, a: u16, b: u16, act: Activation) -> u16 {
        let dims = self.dims(a);
        self.op_out(OwnedOp::Add { act }, &[a, b], &dims)
    }

    pub fn max_pool(&mut self, x: u16, window: WindowSpec) -> u16 {
        let d = self.dims(x);
        let (oh, ow) = window.window().out_dims(d[1], d[2]).unwrap();
        self.op_out(OwnedOp::MaxPool(window), &[x], &[d[0], oh, ow])
    }

    pub fn avg_pool(&mut self, x: u16, window: WindowSpec) -> u16 {
        let d = self.dims(x);
        let (oh, ow) = window.window().out_dims(d[1], d[2]).unwrap();
        self.op_out(OwnedOp::AvgPool(window), &[x], &[d[0], oh, ow])
    }

    /// Mean over H × W into `dims` (C elements).
    pub fn mean_to(&mut self, x: u16, dims: &[usize]) -> u16 {
        self.op_out(OwnedOp::Mean, &[x], dims)
    }

    /// Mean over H × W into `[C]`.
    pub fn mean(&mut self, x: u16) -> u16 {
        let c = self.dims(x)[0];
        self.mean_to(x, &[c])
    }

    pub fn reshape(&mut self, x: u16, dims: &[usize]) -> u16 {
        self.op_out(OwnedOp::Reshape, &[x], dims)
    }

    pub fn softmax(&mut self, x: u16, beta: f32) -> u16 {
        let dims = self.dims(x);
        self.op_out(OwnedOp::Softmax { beta }, &[x], &dims)
    }

    pub fn act(&mut self, x: u16, a: Activation) -> u16 {
        let dims = self.dims(x);
        self.op_out(OwnedOp::Act(a), &[x], &dims)
    }

    /// Adds an int8 constant tensor with quantization `q`, returns its id.
    pub fn constant_i8(&mut self, dims: &[usize], v: &[i8], q: QuantParams) -> u16 {
        self.tensors.push(OwnedTensor {
            dims: dims.to_vec(),
            dtype: DType::I8(q),
            data: Some(bytes_i8(v)),
        });
        (self.tensors.len() - 1) as u16
    }

    /// Sets tensor `t`'s dtype (an int8 output's quantization) and returns `t`.
    pub fn set_dtype(&mut self, t: u16, dtype: DType) -> u16 {
        self.tensors[t as usize].dtype = dtype;
        t
    }

    /// LayerNorm over the last dim with constant `gamma` and `beta`.
    pub fn layer_norm(&mut self, x: u16, eps: f32, gamma: &[f32], beta: &[f32]) -> u16 {
        let g = self.constant_f32(&[gamma.len()], gamma);
        let b = self.constant_f32(&[beta.len()], beta);
        let dims = self.dims(x);
        self.op_out(OwnedOp::LayerNorm { eps }, &[x, g, b], &dims)
    }

    pub fn gelu(&mut self, x: u16) -> u16 {
        let dims = self.dims(x);
        self.op_out(OwnedOp::Gelu, &[x], &dims)
    }

    /// int8 table lookup; the table (256 values) and the output have quantization `q`.
    pub fn lut(&mut self, x: u16, table: &[i8], q: QuantParams) -> u16 {
        let t = self.constant_i8(&[256], table, q);
        let dims = self.dims(x);
        let y = self.op_out(OwnedOp::Lut, &[x, t], &dims);
        self.set_dtype(y, DType::I8(q))
    }

    /// `alpha · a × b` (`b` transposed when `adj_y`); the output has `a`'s dtype.
    pub fn batch_matmul(&mut self, a: u16, b: u16, adj_y: bool, alpha: f32) -> u16 {
        let (da, db) = (self.dims(a), self.dims(b));
        let r = da.len();
        let n = if adj_y { db[r - 2] } else { db[r - 1] };
        let mut dims = da.clone();
        dims[r - 1] = n;
        self.op_out(OwnedOp::BatchMatMul { adj_y, alpha }, &[a, b], &dims)
    }

    pub fn transpose(&mut self, x: u16, perm: &[u8]) -> u16 {
        let d = self.dims(x);
        let dims: Vec<usize> = perm.iter().map(|&a| d[a as usize]).collect();
        self.op_out(OwnedOp::Transpose(perm.to_vec()), &[x], &dims)
    }

    pub fn quantize(&mut self, x: u16, q: QuantParams) -> u16 {
        let dims = self.dims(x);
        let y = self.op_out(OwnedOp::Quantize, &[x], &dims);
        self.set_dtype(y, DType::I8(q))
    }

    pub fn dequantize(&mut self, x: u16) -> u16 {
        let dims = self.dims(x);
        let y = self.op_out(OwnedOp::Dequantize, &[x], &dims);
        self.set_dtype(y, DType::F32)
    }

    /// Concat along `axis`; the output has input 0's dtype.
    pub fn concat(&mut self, xs: &[u16], axis: u8) -> u16 {
        let mut dims = self.dims(xs[0]);
        dims[axis as usize] = xs.iter().map(|&x| self.dims(x)[axis as usize]).sum();
        self.op_out(OwnedOp::Concat { axis }, xs, &dims)
    }

    /// Mean over `axis`, which the output drops (keeps as 1 for a rank-1 input).
    pub fn mean_axis(&mut self, x: u16, axis: u8) -> u16 {
        let mut dims = self.dims(x);
        if dims.len() > 1 {
            dims.remove(axis as usize);
        } else {
            dims[0] = 1;
        }
        self.op_out(OwnedOp::MeanAxis { axis }, &[x], &dims)
    }

    /// `len` indices from `start` along `axis` (a single index drops the axis when rank > 1).
    pub fn slice(&mut self, x: u16, axis: u8, start: u32, len: u32) -> u16 {
        let mut dims = self.dims(x);
        if len == 1 && dims.len() > 1 {
            dims.remove(axis as usize);
        } else {
            dims[axis as usize] = len as usize;
        }
        self.op_out(OwnedOp::Slice { axis, start, len }, &[x], &dims)
    }

    /// Calls `f` with the borrowed wire view of this model. Panics on a shape the wire cannot
    /// hold (rank 0 or > 4, a zero dim) or a node with more than 4 inputs; build those by hand.
    pub fn with_graph<R>(&self, f: impl FnOnce(&Graph<'_, '_>) -> R) -> R {
        let tensors: Vec<TensorDesc<'_>> = self
            .tensors
            .iter()
            .map(|t| TensorDesc {
                shape: Shape::new(&t.dims).expect("a shape the wire can hold"),
                dtype: t.dtype,
                data: t.data.as_deref(),
            })
            .collect();
        let nodes: Vec<Node<'_>> = self
            .nodes
            .iter()
            .map(|n| Node {
                op: n.op.op(),
                inputs: Inputs::new(&n.inputs).expect("at most 4 inputs"),
                output: n.output,
            })
            .collect();
        let graph = Graph {
            info: self.info(),
            tensors: &tensors,
            nodes: &nodes,
        };
        f(&graph)
    }

    pub fn info(&self) -> ModelInfo<'_> {
        ModelInfo {
            name: &self.name,
            input: self.input,
            logits: self.logits,
            embedding: self.embedding,
            input_mean: F32Data::from_le_bytes(&self.mean),
            input_std: F32Data::from_le_bytes(&self.std),
        }
    }

    /// Encodes the model file with the core's `encode` (which validates).
    pub fn encode(&self) -> Result<Vec<u8>, denoiserep_core::Error> {
        self.with_graph(|g| {
            let mut out = vec![0u8; encoded_len(g)?];
            let n = encode(g, &mut out)?;
            assert_eq!(n, out.len(), "encoded_len must be exact");
            Ok(out)
        })
    }

    /// The file bytes without validation (postcard of the graph behind a valid header).
    pub fn raw(&self) -> Vec<u8> {
        self.with_graph(|g| file_with_body(&postcard::to_stdvec(g).unwrap()))
    }

    pub fn mean_f32(&self) -> Vec<f32> {
        f32s(&self.mean)
    }

    pub fn std_f32(&self) -> Vec<f32> {
        f32s(&self.std)
    }

    pub fn input_len(&self) -> usize {
        self.tensors[self.input as usize].numel()
    }

    /// Index of the node writing `t`.
    pub fn producer(&self, t: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.output == t)
    }
}

// ---------------------------------------------------------------------------------------------
// The shared models.

/// The small CNN: `[1, 12, 12]` input → conv 3×3 (1→4, pad 1) + ReLU → max pool 2 →
/// conv 3×3 (4→8, stride 2) → ReLU (standalone) → mean → `[8]` (embedding) → Linear 8→10.
pub fn small_cnn(seed: u64) -> OwnedModel {
    let mut rng = Rng(seed);
    let mut m = OwnedModel::new("small-cnn", &[1, 12, 12], &[0.5], &[0.25]);
    let c1 = m.conv2d(
        0,
        square(3, 1, 1),
        Activation::Relu,
        &rng.vec(36, -0.6, 0.6),
        &rng.vec(4, -0.1, 0.1),
    );
    let p = m.max_pool(c1, square(2, 2, 0));
    let c2 = m.conv2d(
        p,
        square(3, 2, 0),
        Activation::None,
        &rng.vec(288, -0.3, 0.3),
        &rng.vec(8, -0.1, 0.1),
    );
    let r = m.act(c2, Activation::Relu);
    let emb = m.mean(r);
    let logits = m.linear(
        emb,
        Activation::None,
        &rng.vec(80, -0.8, 0.8),
        &rng.vec(10, -0.2, 0.2),
    );
    m.outputs(logits, emb)
}

/// The small MLP: `[1, 4, 4]` input → reshape `[16]` → Linear 16→12 + ReLU (embedding) →
/// Linear 12→4.
pub fn small_mlp(seed: u64) -> OwnedModel {
    let mut rng = Rng(seed);
    let mut m = OwnedModel::new("small-mlp", &[1, 4, 4], &[0.0], &[1.0]);
    let flat = m.reshape(0, &[16]);
    let h = m.linear(
        flat,
        Activation::Relu,
        &rng.vec(192, -0.5, 0.5),
        &rng.vec(12, -0.1, 0.1),
    );
    let logits = m.linear(
        h,
        Activation::None,
        &rng.vec(48, -0.5, 0.5),
        &rng.vec(4, -0.1, 0.1),
    );
    m.outputs(logits, h)
}

/// A residual block: `[2, 6, 6]` → conv 3×3 (2→4, pad 1) + ReLU = `a` → conv 3×3 (4→4, pad 1) =
/// `b` → Add(a, b) + ReLU → avg pool 2 → mean → `[4]` (embedding) → Linear 4→3 → softmax.
pub fn residual_cnn(seed: u64) -> OwnedModel {
    let mut rng = Rng(seed);
    let mut m = OwnedModel::new("residual", &[2, 6, 6], &[0.5, 0.25], &[0.5, 0.3]);
    let a = m.conv2d(
        0,
        square(3, 1, 1),
        Activation::Relu,
        &rng.vec(72, -0.5, 0.5),
        &rng.vec(4, -0.1, 0.1),
    );
    let b = m.conv2d(
        a,
        square(3, 1, 1),
        Activation::None,
        &rng.vec(144, -0.3, 0.3),
        &rng.vec(4, -0.1, 0.1),
    );
    let s = m.add(a, b, Activation::Relu);
    let p = m.avg_pool(s, square(2, 2, 0));
    let emb = m.mean(p);
    let l = m.linear(
        emb,
        Activation::None,
        &rng.vec(12, -1.0, 1.0),
        &rng.vec(3, -0.2, 0.2),
    );
    let sm = m.softmax(l, 1.0);
    m.outputs(sm, emb)
}

/// Depthwise-separable: `[3, 8, 8]` → conv 3×3 (3→8, stride 2, pad 1) + ReLU → depthwise 3×3
/// (pad 1) + ReLU6 → pointwise conv 1×1 (8→16) + ReLU → mean → `[16, 1, 1]` → reshape `[16]`
/// (embedding) → Linear 16→10 → softmax.
pub fn dw_separable(seed: u64) -> OwnedModel {
    let mut rng = Rng(seed);
    let mut m = OwnedModel::new(
        "dw-separable",
        &[3, 8, 8],
        &[0.5, 0.4, 0.3],
        &[0.25, 0.3, 0.2],
    );
    let c = m.conv2d(
        0,
        square(3, 2, 1),
        Activation::Relu,
        &rng.vec(216, -0.4, 0.4),
        &rng.vec(8, -0.1, 0.1),
    );
    let d = m.depthwise(
        c,
        square(3, 1, 1),
        Activation::Relu6,
        &rng.vec(72, -0.6, 0.6),
        &rng.vec(8, -0.1, 0.1),
    );
    let p = m.conv2d(
        d,
        square(1, 1, 0),
        Activation::Relu,
        &rng.vec(128, -0.5, 0.5),
        &rng.vec(16, -0.1, 0.1),
    );
    let g = m.mean_to(p, &[16, 1, 1]);
    let emb = m.reshape(g, &[16]);
    let l = m.linear(
        emb,
        Activation::None,
        &rng.vec(160, -0.6, 0.6),
        &rng.vec(10, -0.2, 0.2),
    );
    let sm = m.softmax(l, 1.0);
    m.outputs(sm, emb)
}

/// A deep MLP whose embedding (the first hidden layer) must survive three later ops.
pub fn deep_mlp() -> OwnedModel {
    let mut rng = Rng(77);
    let mut m = OwnedModel::new("deep-mlp", &[1, 4, 4], &[0.0], &[1.0]);
    let flat = m.reshape(0, &[16]);
    let h1 = m.linear(
        flat,
        Activation::Relu,
        &rng.vec(192, -0.5, 0.5),
        &rng.vec(12, -0.1, 0.1),
    );
    let h2 = m.linear(
        h1,
        Activation::Relu,
        &rng.vec(144, -0.5, 0.5),
        &rng.vec(12, -0.1, 0.1),
    );
    let h3 = m.linear(
        h2,
        Activation::None,
        &rng.vec(144, -0.5, 0.5),
        &rng.vec(12, -0.1, 0.1),
    );
    let r = m.act(h3, Activation::Relu);
    let logits = m.linear(
        r,
        Activation::None,
        &rng.vec(48, -0.5, 0.5),
        &rng.vec(4, -0.1, 0.1),
    );
    m.outputs(logits, h1)
}

/// Sizes of the test ViT: 3 patches of 12 values, embedded to 8 features, a class token
/// (4 tokens), 2 heads of 4, an MLP of 16, 3 classes.
pub const VIT_PATCHES: usize = 3;
pub const VIT_PATCH: usize = 12;
pub const VIT_TOKENS: usize = 4;
pub const VIT_DIM: usize = 8;
pub const VIT_HEADS: usize = 2;
pub const VIT_HEAD_DIM: usize = 4;
pub const VIT_HIDDEN: usize = 16;
pub const VIT_CLASSES: usize = 3;
pub const VIT_EPS: f32 = 1e-5;

/// The f32 parameters of the test ViT (weights `[out][in]`).
#[derive(Debug, Clone)]
pub struct VitWeights {
    pub patch: (Vec<f32>, Vec<f32>),
    pub cls: Vec<f32>,
    pub pos: Vec<f32>,
    pub ln1: (Vec<f32>, Vec<f32>),
    pub q: (Vec<f32>, Vec<f32>),
    pub k: (Vec<f32>, Vec<f32>),
    pub v: (Vec<f32>, Vec<f32>),
    pub proj: (Vec<f32>, Vec<f32>),
    pub ln2: (Vec<f32>, Vec<f32>),
    pub fc1: (Vec<f32>, Vec<f32>),
    pub fc2: (Vec<f32>, Vec<f32>),
    pub head: (Vec<f32>, Vec<f32>),
}

impl VitWeights {
    pub fn new(seed: u64) -> Self {
        let mut rng = Rng(seed);
        let mut lin = |n_in: usize, n_out: usize| {
            let r = 1.0 / (n_in as f32).sqrt();
            (rng.vec(n_in * n_out, -r, r), rng.vec(n_out, -0.1, 0.1))
        };
        let patch = lin(VIT_PATCH, VIT_DIM);
        let q = lin(VIT_DIM, VIT_DIM);
        let k = lin(VIT_DIM, VIT_DIM);
        let v = lin(VIT_DIM, VIT_DIM);
        let proj = lin(VIT_DIM, VIT_DIM);
        let fc1 = lin(VIT_DIM, VIT_HIDDEN);
        let fc2 = lin(VIT_HIDDEN, VIT_DIM);
        let head = lin(VIT_DIM, VIT_CLASSES);
        let mut rng = Rng(seed ^ 0x5A5A);
        VitWeights {
            patch,
            cls: rng.vec(VIT_DIM, -0.5, 0.5),
            pos: rng.vec(VIT_TOKENS * VIT_DIM, -0.2, 0.2),
            ln1: (rng.vec(VIT_DIM, 0.5, 1.5), rng.vec(VIT_DIM, -0.2, 0.2)),
            q,
            k,
            v,
            proj,
            ln2: (rng.vec(VIT_DIM, 0.5, 1.5), rng.vec(VIT_DIM, -0.2, 0.2)),
            fc1,
            fc2,
            head,
        }
    }
}

/// Named tensors of a ViT graph (the names of [`vit_model`]'s doc).
pub type VitTensors = std::collections::BTreeMap<&'static str, u16>;
/// The int8 quantization of each named tensor.
pub type VitQuant = std::collections::BTreeMap<&'static str, QuantParams>;

/// One ViT block on 4 tokens × 8 dims, 2 heads, in f32 (`quant == None`) or int8:
///
/// ```text
/// x [3,12] → Linear patch [3,8] → Concat(cls [1,8], ·) axis 0 = tokens [4,8] → Add pos = x0
/// x0 → LayerNorm = h1 → Linear q / k / v [4,8] → Reshape [4,2,4] → Transpose [1,0,2] [2,4,4]
/// s = BatchMatMul(q, k, adj_y, α = 1/2) [2,4,4] → Softmax = p → o = BatchMatMul(p, v) [2,4,4]
/// → Transpose [1,0,2] → Reshape [4,8] → Linear proj = a → r1 = Add(x0, a)
/// r1 → LayerNorm = h2 → Linear fc1 [4,16] = f1 → Gelu = g → Linear fc2 [4,8] = f2 → r2 = Add(r1, f2)
/// mean = MeanAxis(r2, 0) [8] (the embedding); cls = Slice(r2, 0, 0, 1) [8] → Linear head = logits [3]
/// ```
///
/// int8: every activation int8 with `quant[name]`; each LayerNorm runs between Dequantize and
/// Quantize (the f32 normalized tensor keeps the name `h1` / `h2` for its Quantize); Gelu is a
/// Lut of `quantize(gelu(dequantize(q, f1)), g)`; weights per-channel symmetric.
pub fn vit_model(w: &VitWeights, quant: Option<&VitQuant>) -> (OwnedModel, VitTensors) {
    let q = |name: &str| quant.map(|qs| qs[name]);
    let mut m = OwnedModel::new("vit-block", &[VIT_PATCHES, VIT_PATCH], &[0.0], &[1.0]);
    let mut names = VitTensors::new();
    names.insert("x", 0);
    if let Some(qx) = q("x") {
        m.set_dtype(0, DType::I8(qx));
    }
    // A Linear with f32 weights, or int8 weights quantized for its input and output scales.
    let linear =
        |m: &mut OwnedModel, x: u16, (wt, b): &(Vec<f32>, Vec<f32>), out: Option<QuantParams>| {
            let y = m.linear(x, Activation::None, wt, b);
            if let (Some(qo), DType::I8(qi)) = (out, m.tensors[x as usize].dtype) {
                let ws = OwnedWeights::f32(wt, b);
                let OwnedWeights::F32 { w: wf, b: bf } = ws else {
                    unreachable!()
                };
                let k = m.nodes.len() - 1;
                m.nodes[k].op = OwnedOp::Linear {
                    act: Activation::None,
                    w: quantize_weights(&wf, &bf, qi.scale, qo.scale),
                };
                m.set_dtype(y, DType::I8(qo));
            }
            y
        };
    let patches = linear(&mut m, 0, &w.patch, q("tokens"));
    let cls = match q("tokens") {
        None => m.constant_f32(&[1, VIT_DIM], &w.cls),
        Some(qt) => {
            let v: Vec<i8> = w.cls.iter().map(|&c| quantize(c, qt)).collect();
            m.constant_i8(&[1, VIT_DIM], &v, qt)
        }
    };
    let tokens = m.concat(&[cls, patches], 0);
    names.insert("tokens", tokens);
    let pos = match quant {
        None => m.constant_f32(&[VIT_TOKENS, VIT_DIM], &w.pos),
        Some(_) => {
            let (lo, hi) = min_max(&w.pos);
            let qp = choose_quant(lo, hi);
            let v: Vec<i8> = w.pos.iter().map(|&c| quantize(c, qp)).collect();
            m.constant_i8(&[VIT_TOKENS, VIT_DIM], &v, qp)
        }
    };
    let x0 = m.add(tokens, pos, Activation::None);
    if let Some(qx) = q("x0") {
        m.set_dtype(x0, DType::I8(qx));
    }
    names.insert("x0", x0);
    // LayerNorm, wrapped in Dequantize / Quantize for int8.
    let norm =
        |m: &mut OwnedModel, x: u16, (g, b): &(Vec<f32>, Vec<f32>), out: Option<QuantParams>| {
            match out {
                None => m.layer_norm(x, VIT_EPS, g, b),
                Some(qo) => {
                    let xf = m.dequantize(x);
                    let y = m.layer_norm(xf, VIT_EPS, g, b);
                    m.quantize(y, qo)
                }
            }
        };
    let h1 = norm(&mut m, x0, &w.ln1, q("h1"));
    names.insert("h1", h1);
    let heads = |m: &mut OwnedModel, t: u16| {
        let r = m.reshape(t, &[VIT_TOKENS, VIT_HEADS, VIT_HEAD_DIM]);
        m.transpose(r, &[1, 0, 2])
    };
    let qq = linear(&mut m, h1, &w.q, q("q"));
    let kk = linear(&mut m, h1, &w.k, q("k"));
    let vv = linear(&mut m, h1, &w.v, q("v"));
    names.insert("q", qq);
    names.insert("k", kk);
    names.insert("v", vv);
    let (qh, kh, vh) = (heads(&mut m, qq), heads(&mut m, kk), heads(&mut m, vv));
    let alpha = 1.0 / (VIT_HEAD_DIM as f32).sqrt();
    let sc = m.batch_matmul(qh, kh, true, alpha);
    if let Some(qs) = q("s") {
        m.set_dtype(sc, DType::I8(qs));
    }
    names.insert("s", sc);
    let p = m.softmax(sc, 1.0);
    if quant.is_some() {
        m.set_dtype(p, DType::I8(SOFTMAX_Q));
    }
    names.insert("p", p);
    let o = m.batch_matmul(p, vh, false, 1.0);
    if let Some(qo) = q("o") {
        m.set_dtype(o, DType::I8(qo));
    }
    names.insert("o", o);
    let ot = m.transpose(o, &[1, 0, 2]);
    let merged = m.reshape(ot, &[VIT_TOKENS, VIT_DIM]);
    let a = linear(&mut m, merged, &w.proj, q("a"));
    names.insert("a", a);
    let r1 = m.add(x0, a, Activation::None);
    if let Some(qr) = q("r1") {
        m.set_dtype(r1, DType::I8(qr));
    }
    names.insert("r1", r1);
    let h2 = norm(&mut m, r1, &w.ln2, q("h2"));
    names.insert("h2", h2);
    let f1 = linear(&mut m, h2, &w.fc1, q("f1"));
    names.insert("f1", f1);
    let g = match (q("f1"), q("g")) {
        (Some(qi), Some(qo)) => {
            let table: Vec<i8> = (-128..=127)
                .map(|v: i32| quantize(gelu_f64(dequantize(v as i8, qi) as f64) as f32, qo))
                .collect();
            m.lut(f1, &table, qo)
        }
        _ => m.gelu(f1),
    };
    names.insert("g", g);
    let f2 = linear(&mut m, g, &w.fc2, q("f2"));
    names.insert("f2", f2);
    let r2 = m.add(r1, f2, Activation::None);
    if let Some(qr) = q("r2") {
        m.set_dtype(r2, DType::I8(qr));
    }
    names.insert("r2", r2);
    let mean = m.mean_axis(r2, 0);
    if let Some(qm) = q("mean") {
        m.set_dtype(mean, DType::I8(qm));
    }
    names.insert("mean", mean);
    let cls_out = m.slice(r2, 0, 0, 1);
    names.insert("cls", cls_out);
    let logits = linear(&mut m, cls_out, &w.head, q("logits"));
    names.insert("logits", logits);
    (m.outputs(logits, mean), names)
}

/// Smallest and largest value.
pub fn min_max(v: &[f32]) -> (f32, f32) {
    (
        v.iter().copied().fold(f32::INFINITY, f32::min),
        v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
    )
}

/// Inputs of the test ViT: patches in [−1, 1).
pub fn vit_inputs(seed: u64, n: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| rng.vec(VIT_PATCHES * VIT_PATCH, -1.0, 1.0))
        .collect()
}

/// The f32 ViT and its int8 version, calibrated on 16 seeded inputs: each named tensor's range
/// as the f32 model computes it (`run_with`), the token concat covering the class token too.
pub fn vit_models(seed: u64) -> (OwnedModel, OwnedModel) {
    let w = VitWeights::new(seed);
    let (f, names) = vit_model(&w, None);
    let bytes = f.encode().expect("the f32 ViT encodes");
    let model = Model::from_bytes(&bytes).unwrap();
    let n = f.tensors.len();
    let (mut lo, mut hi) = (vec![f32::INFINITY; n], vec![f32::NEG_INFINITY; n]);
    let mut arena = vec![0u8; model.arena_size()];
    for x in vit_inputs(seed ^ 1, 16) {
        for &v in &x {
            lo[0] = lo[0].min(v);
            hi[0] = hi[0].max(v);
        }
        model
            .run_with(&x, &mut arena, |step| {
                let t = step.output_id as usize;
                for i in 0..step.output.len() {
                    let v = step.output.get_f32(i).unwrap();
                    lo[t] = lo[t].min(v);
                    hi[t] = hi[t].max(v);
                }
            })
            .unwrap();
    }
    let quant: VitQuant = names
        .iter()
        .map(|(&name, &id)| (name, choose_quant(lo[id as usize], hi[id as usize])))
        .collect();
    let (q, _) = vit_model(&w, Some(&quant));
    (
        f,
        OwnedModel {
            name: "vit-block-int8".into(),
            ..q
        },
    )
}

/// The input range a model's tests draw from.
pub fn input_range(m: &OwnedModel) -> (f32, f32) {
    if m.name.contains("mlp") || m.name.contains("vit") {
        (-1.0, 1.0)
    } else {
        (0.0, 1.0)
    }
}

/// The f32 model and its int8 quantization (calibrated on 32 seeded inputs).
pub fn with_int8(f: OwnedModel, seed: u64) -> (OwnedModel, OwnedModel) {
    let mut rng = Rng(seed);
    let (lo, hi) = input_range(&f);
    let calib: Vec<Vec<f32>> = (0..32).map(|_| rng.vec(f.input_len(), lo, hi)).collect();
    let q = quantize_model(&f, &calib);
    (f, q)
}

// ---------------------------------------------------------------------------------------------
// Quantization.

/// Asymmetric int8 quantization covering `[min(lo, 0), max(hi, 0)]`.
pub fn choose_quant(lo: f32, hi: f32) -> QuantParams {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i8;
    QuantParams {
        scale,
        zero_point: zp,
    }
}

/// The int8 softmax output quantization.
pub const SOFTMAX_Q: QuantParams = QuantParams {
    scale: 1.0 / 256.0,
    zero_point: -128,
};

/// Normalizes a raw input as the core does: `(x − μ_c) / σ_c` per dim-0 group.
pub fn normalize(m: &OwnedModel, input: &[f32]) -> Vec<f32> {
    let (mean, std) = (m.mean_f32(), m.std_f32());
    let per = input.len() / mean.len();
    input
        .iter()
        .enumerate()
        .map(|(i, &v)| (v - mean[i / per]) / std[i / per])
        .collect()
}

/// Post-training quantization of an f32 model, calibrated on `calibration` inputs (each op's
/// output range observed through `Model::run_with`).
pub fn quantize_model(model: &OwnedModel, calibration: &[Vec<f32>]) -> OwnedModel {
    let bytes = model.encode().expect("the f32 model encodes");
    let m = Model::from_bytes(&bytes).unwrap();
    let n = model.tensors.len();
    let mut lo = vec![f32::INFINITY; n];
    let mut hi = vec![f32::NEG_INFINITY; n];
    let mut arena = vec![0u8; m.arena_size()];
    for x in calibration {
        for v in normalize(model, x) {
            lo[model.input as usize] = lo[model.input as usize].min(v);
            hi[model.input as usize] = hi[model.input as usize].max(v);
        }
        m.run_with(x, &mut arena, |step| {
            let t = step.output_id as usize;
            let mut v = vec![0.0; step.output.len()];
            step.output.dequantize_into(&mut v).unwrap();
            for v in v {
                lo[t] = lo[t].min(v);
                hi[t] = hi[t].max(v);
            }
        })
        .unwrap();
    }
    let mut q = model.clone();
    q.name = format!("{}-int8", model.name);
    // Constants: their own range.
    for t in q.tensors.iter_mut() {
        if let Some(d) = &t.data {
            let v = f32s(d);
            let qp = choose_quant(
                v.iter().copied().fold(f32::INFINITY, f32::min),
                v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            );
            t.data = Some(v.iter().map(|&x| quantize(x, qp) as u8).collect());
            t.dtype = DType::I8(qp);
        }
    }
    let i = model.input as usize;
    q.tensors[i].dtype = DType::I8(choose_quant(lo[i], hi[i]));
    for k in 0..q.nodes.len() {
        let node = q.nodes[k].clone();
        let out = node.output as usize;
        let DType::I8(q_in) = q.tensors[node.inputs[0] as usize].dtype else {
            panic!("input of op {k} not quantized yet")
        };
        let q_out = match node.op {
            OwnedOp::MaxPool(_)
            | OwnedOp::AvgPool(_)
            | OwnedOp::Mean
            | OwnedOp::Reshape
            | OwnedOp::Act(_) => q_in,
            OwnedOp::Softmax { .. } => SOFTMAX_Q,
            _ => choose_quant(lo[out], hi[out]),
        };
        q.tensors[out].dtype = DType::I8(q_out);
        if let Some(w) = q.nodes[k].op.weights_mut() {
            let OwnedWeights::F32 { w: wf, b: bf } = w.clone() else {
                panic!("already quantized")
            };
            *w = quantize_weights(&wf, &bf, q_in.scale, q_out.scale);
        }
    }
    q
}

/// Per-output-channel symmetric weights, int32 bias, multipliers and shifts.
pub fn quantize_weights(w: &[u8], b: &[u8], s_in: f32, s_out: f32) -> OwnedWeights {
    let w = f32s(w);
    let b = f32s(b);
    let n_out = b.len();
    let per = w.len() / n_out;
    let (mut wq, mut bq, mut mq, mut sq) = (vec![], vec![], vec![], vec![]);
    for o in 0..n_out {
        let row = &w[o * per..(o + 1) * per];
        let max = row.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let s_w = if max > 0.0 { max / 127.0 } else { 1.0 };
        wq.extend(
            row.iter()
                .map(|v| (v / s_w).round().clamp(-127.0, 127.0) as i8),
        );
        bq.push((b[o] as f64 / (s_in as f64 * s_w as f64)).round() as i32);
        let (m, s) = quantize_multiplier(s_in as f64 * s_w as f64 / s_out as f64);
        mq.push(m);
        sq.push(s as i8);
    }
    OwnedWeights::S8 {
        w: bytes_i8(&wq),
        b: le_i32(&bq),
        m: le_i32(&mq),
        s: bytes_i8(&sq),
    }
}

// ---------------------------------------------------------------------------------------------
// Reference evaluation.

/// Values of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Vals {
    F32(Vec<f32>),
    I8(Vec<i8>),
}

impl Vals {
    pub fn f32(&self) -> &[f32] {
        match self {
            Vals::F32(v) => v,
            Vals::I8(_) => panic!("int8 tensor"),
        }
    }
    pub fn i8(&self) -> &[i8] {
        match self {
            Vals::I8(v) => v,
            Vals::F32(_) => panic!("f32 tensor"),
        }
    }
    /// The values of an output view.
    pub fn of(data: &TensorData<'_>) -> Vals {
        match *data {
            TensorData::F32(v) => Vals::F32(v.to_vec()),
            TensorData::I8 { values, .. } => Vals::I8(values.to_vec()),
        }
    }
}

/// The normalized (int8: quantized) input and the constants, every other tensor `None`.
fn initial(m: &OwnedModel, input: &[f32]) -> Vec<Option<Vals>> {
    let mut t: Vec<Option<Vals>> = m
        .tensors
        .iter()
        .map(|t| {
            t.data.as_ref().map(|d| match t.dtype {
                DType::F32 => Vals::F32(f32s(d)),
                DType::I8(_) => Vals::I8(d.iter().map(|&b| b as i8).collect()),
            })
        })
        .collect();
    let x = normalize(m, input);
    t[m.input as usize] = Some(match m.tensors[m.input as usize].dtype {
        DType::F32 => Vals::F32(x),
        DType::I8(q) => {
            // The core divides per channel group exactly like `normalize`.
            Vals::I8(x.iter().map(|&v| quantize(v, q)).collect())
        }
    });
    t
}

fn chw(dims: &[usize]) -> Chw {
    Chw {
        c: dims[0],
        h: dims[1],
        w: dims[2],
    }
}

fn quant_of(t: &OwnedTensor) -> QuantParams {
    match t.dtype {
        DType::I8(q) => q,
        DType::F32 => panic!("f32 tensor"),
    }
}

/// Runs every op through the public kernels, each on its own freshly allocated buffers; returns
/// every tensor's values by id.
pub fn eval_kernels(m: &OwnedModel, input: &[f32]) -> Vec<Option<Vals>> {
    let mut t = initial(m, input);
    for node in &m.nodes {
        let xt = &m.tensors[node.inputs[0] as usize];
        let yt = &m.tensors[node.output as usize];
        let x = t[node.inputs[0] as usize].clone().expect("input computed");
        let n_out = yt.numel();
        let y = match (&node.op, &x) {
            (OwnedOp::Linear { act, w }, Vals::F32(x)) => {
                let Weights::F32 { weights, bias } = w.weights() else {
                    panic!()
                };
                let p = LinearParams {
                    rows: n_out / bias.len(),
                    in_features: *xt.dims.last().unwrap(),
                    out_features: bias.len(),
                    activation: *act,
                };
                let mut y = vec![0.0; n_out];
                kernels::linear_f32(&p, x, weights, bias, &mut y).unwrap();
                Vals::F32(y)
            }
            (OwnedOp::Linear { act, w }, Vals::I8(x)) => {
                let Weights::S8 {
                    weights,
                    bias,
                    multiplier,
                    shift,
                } = w.weights()
                else {
                    panic!()
                };
                let p = LinearParams {
                    rows: n_out / bias.len(),
                    in_features: *xt.dims.last().unwrap(),
                    out_features: bias.len(),
                    activation: *act,
                };
                let q = PerChannelQuant {
                    input_zp: quant_of(xt).zero_point,
                    output: quant_of(yt),
                    multiplier,
                    shift,
                };
                let mut y = vec![0; n_out];
                kernels::linear_s8(&p, &q, x, weights, bias, &mut y).unwrap();
                Vals::I8(y)
            }
            (OwnedOp::Conv2d { window, act, w }, _) => {
                let d = chw(&xt.dims);
                let p = ConvParams {
                    in_channels: d.c,
                    h: d.h,
                    w: d.w,
                    out_channels: w.n_out(),
                    window: window.window(),
                    activation: *act,
                };
                match (w.weights(), &x) {
                    (Weights::F32 { weights, bias }, Vals::F32(x)) => {
                        let mut y = vec![0.0; n_out];
                        kernels::conv2d_f32(&p, x, weights, bias, &mut y).unwrap();
                        Vals::F32(y)
                    }
                    (
                        Weights::S8 {
                            weights,
                            bias,
                            multiplier,
                            shift,
                        },
                        Vals::I8(x),
                    ) => {
                        let q = PerChannelQuant {
                            input_zp: quant_of(xt).zero_point,
                            output: quant_of(yt),
                            multiplier,
                            shift,
                        };
                        let mut y = vec![0; n_out];
                        kernels::conv2d_s8(&p, &q, x, weights, bias, &mut y).unwrap();
                        Vals::I8(y)
                    }
                    _ => panic!("dtype"),
                }
            }
            (OwnedOp::Depthwise { window, act, w }, _) => {
                let d = chw(&xt.dims);
                let p = DepthwiseParams {
                    channels: d.c,
                    h: d.h,
                    w: d.w,
                    window: window.window(),
                    activation: *act,
                };
                match (w.weights(), &x) {
                    (Weights::F32 { weights, bias }, Vals::F32(x)) => {
                        let mut y = vec![0.0; n_out];
                        kernels::depthwise_conv2d_f32(&p, x, weights, bias, &mut y).unwrap();
                        Vals::F32(y)
                    }
                    (
                        Weights::S8 {
                            weights,
                            bias,
                            multiplier,
                            shift,
                        },
                        Vals::I8(x),
                    ) => {
                        let q = PerChannelQuant {
                            input_zp: quant_of(xt).zero_point,
                            output: quant_of(yt),
                            multiplier,
                            shift,
                        };
                        let mut y = vec![0; n_out];
                        kernels::depthwise_conv2d_s8(&p, &q, x, weights, bias, &mut y).unwrap();
                        Vals::I8(y)
                    }
                    _ => panic!("dtype"),
                }
            }
            (OwnedOp::Add { act }, _) => {
                let bt = &m.tensors[node.inputs[1] as usize];
                let b = t[node.inputs[1] as usize].clone().unwrap();
                match (&x, &b) {
                    (Vals::F32(a), Vals::F32(b)) => {
                        let mut y = vec![0.0; n_out];
                        kernels::add_f32(a, b, *act, &mut y).unwrap();
                        Vals::F32(y)
                    }
                    (Vals::I8(a), Vals::I8(b)) => {
                        let p =
                            add_s8_params(quant_of(xt), quant_of(bt), quant_of(yt), *act).unwrap();
                        let mut y = vec![0; n_out];
                        kernels::add_s8(&p, a, b, &mut y).unwrap();
                        Vals::I8(y)
                    }
                    _ => panic!("dtype"),
                }
            }
            (OwnedOp::MaxPool(window) | OwnedOp::AvgPool(window), _) => {
                let d = chw(&xt.dims);
                let p = PoolParams {
                    channels: d.c,
                    h: d.h,
                    w: d.w,
                    window: window.window(),
                };
                let max = matches!(node.op, OwnedOp::MaxPool(_));
                match &x {
                    Vals::F32(x) => {
                        let mut y = vec![0.0; n_out];
                        if max {
                            kernels::maxpool2d_f32(&p, x, &mut y).unwrap();
                        } else {
                            kernels::avg_pool2d_f32(&p, x, &mut y).unwrap();
                        }
                        Vals::F32(y)
                    }
                    Vals::I8(x) => {
                        let mut y = vec![0; n_out];
                        if max {
                            kernels::maxpool2d_s8(&p, x, &mut y).unwrap();
                        } else {
                            kernels::avg_pool2d_s8(&p, x, &mut y).unwrap();
                        }
                        Vals::I8(y)
                    }
                }
            }
            (OwnedOp::Mean, Vals::F32(x)) => {
                let mut y = vec![0.0; n_out];
                kernels::global_avg_pool_f32(x, chw(&xt.dims), &mut y).unwrap();
                Vals::F32(y)
            }
            (OwnedOp::Mean, Vals::I8(x)) => {
                let mut y = vec![0; n_out];
                kernels::global_avg_pool_s8(x, chw(&xt.dims), &mut y).unwrap();
                Vals::I8(y)
            }
            (OwnedOp::Reshape, _) => x.clone(),
            (OwnedOp::Softmax { beta }, Vals::F32(x)) => {
                let depth = *xt.dims.last().unwrap();
                let mut y = vec![0.0; n_out];
                kernels::softmax_f32(n_out / depth, depth, *beta, x, &mut y).unwrap();
                Vals::F32(y)
            }
            (OwnedOp::Softmax { beta }, Vals::I8(x)) => {
                let depth = *xt.dims.last().unwrap();
                let p = softmax_s8_params(*beta, quant_of(xt).scale, n_out / depth, depth).unwrap();
                let mut y = vec![0; n_out];
                kernels::softmax_s8(&p, x, &mut y).unwrap();
                Vals::I8(y)
            }
            (OwnedOp::Act(a), Vals::F32(x)) => {
                let mut y = x.clone();
                kernels::activation_f32(&mut y, *a);
                Vals::F32(y)
            }
            (OwnedOp::Act(a), Vals::I8(x)) => {
                let mut y = x.clone();
                let (lo, hi) = activation_range(*a, quant_of(yt));
                kernels::clamp_s8(&mut y, lo, hi);
                Vals::I8(y)
            }
            (OwnedOp::LayerNorm { eps }, Vals::F32(x)) => {
                let g = input_vals(&t, node, 1);
                let b = input_vals(&t, node, 2);
                let depth = *xt.dims.last().unwrap();
                let mut y = vec![0.0; n_out];
                kernels::layer_norm_f32(n_out / depth, depth, *eps, x, g.f32(), b.f32(), &mut y)
                    .unwrap();
                Vals::F32(y)
            }
            (OwnedOp::Gelu, Vals::F32(x)) => {
                let mut y = x.clone();
                kernels::gelu_f32(&mut y);
                Vals::F32(y)
            }
            (OwnedOp::Lut, Vals::I8(x)) => {
                let table = input_vals(&t, node, 1);
                let mut y = vec![0; n_out];
                kernels::lut_s8(table.i8(), x, &mut y).unwrap();
                Vals::I8(y)
            }
            (OwnedOp::BatchMatMul { adj_y, alpha }, _) => {
                let bt = &m.tensors[node.inputs[1] as usize];
                let b = input_vals(&t, node, 1);
                let p = batch_matmul_geometry(&xt.dims, &bt.dims, *adj_y);
                match (&x, &b) {
                    (Vals::F32(a), Vals::F32(b)) => {
                        let mut y = vec![0.0; n_out];
                        kernels::batch_matmul_f32(&p, *alpha, a, b.as_slice(), &mut y).unwrap();
                        Vals::F32(y)
                    }
                    (Vals::I8(a), Vals::I8(b)) => {
                        let q = batch_matmul_s8_params(
                            quant_of(xt),
                            quant_of(bt),
                            quant_of(yt),
                            *alpha,
                        )
                        .unwrap();
                        let mut y = vec![0; n_out];
                        kernels::batch_matmul_s8(&p, &q, a, b.as_slice(), &mut y).unwrap();
                        Vals::I8(y)
                    }
                    _ => panic!("dtype"),
                }
            }
            (OwnedOp::Transpose(perm), _) => {
                let perm: Vec<usize> = perm.iter().map(|&a| a as usize).collect();
                match &x {
                    Vals::F32(x) => {
                        let mut y = vec![0.0; n_out];
                        kernels::transpose(&xt.dims, &perm, x, &mut y).unwrap();
                        Vals::F32(y)
                    }
                    Vals::I8(x) => {
                        let mut y = vec![0; n_out];
                        kernels::transpose(&xt.dims, &perm, x, &mut y).unwrap();
                        Vals::I8(y)
                    }
                }
            }
            (OwnedOp::Quantize, Vals::F32(x)) => {
                let mut y = vec![0; n_out];
                kernels::quantize_s8(quant_of(yt), x, &mut y).unwrap();
                Vals::I8(y)
            }
            (OwnedOp::Dequantize, Vals::I8(x)) => {
                let mut y = vec![0.0; n_out];
                kernels::dequantize_s8(quant_of(xt), x, &mut y).unwrap();
                Vals::F32(y)
            }
            (OwnedOp::Concat { axis }, _) => {
                let outer: usize = xt.dims[..*axis as usize].iter().product();
                let xs: Vec<Vals> = (0..node.inputs.len())
                    .map(|i| input_vals(&t, node, i))
                    .collect();
                match &x {
                    Vals::F32(_) => {
                        let refs: Vec<&[f32]> = xs.iter().map(|v| v.f32()).collect();
                        let mut y = vec![0.0; n_out];
                        kernels::concat(outer, &refs, &mut y).unwrap();
                        Vals::F32(y)
                    }
                    Vals::I8(_) => {
                        let refs: Vec<&[i8]> = xs.iter().map(|v| v.i8()).collect();
                        let mut y = vec![0; n_out];
                        kernels::concat(outer, &refs, &mut y).unwrap();
                        Vals::I8(y)
                    }
                }
            }
            (OwnedOp::MeanAxis { axis }, _) => {
                let d = axis_dims(&xt.dims, *axis);
                match &x {
                    Vals::F32(x) => {
                        let mut y = vec![0.0; n_out];
                        kernels::mean_axis_f32(&d, x, &mut y).unwrap();
                        Vals::F32(y)
                    }
                    Vals::I8(x) => {
                        let q = mean_s8_params(quant_of(xt), quant_of(yt), d.len).unwrap();
                        let mut y = vec![0; n_out];
                        kernels::mean_axis_s8(&d, &q, x, &mut y).unwrap();
                        Vals::I8(y)
                    }
                }
            }
            (OwnedOp::Slice { axis, start, len }, _) => {
                let d = axis_dims(&xt.dims, *axis);
                let (start, len) = (*start as usize, *len as usize);
                match &x {
                    Vals::F32(x) => {
                        let mut y = vec![0.0; n_out];
                        kernels::slice(&d, start, len, x, &mut y).unwrap();
                        Vals::F32(y)
                    }
                    Vals::I8(x) => {
                        let mut y = vec![0; n_out];
                        kernels::slice(&d, start, len, x, &mut y).unwrap();
                        Vals::I8(y)
                    }
                }
            }
            (op, _) => panic!("{op:?} does not take this dtype"),
        };
        t[node.output as usize] = Some(y);
    }
    t
}

/// The values of input `i` of `node`.
fn input_vals(t: &[Option<Vals>], node: &OwnedNode, i: usize) -> Vals {
    t[node.inputs[i] as usize].clone().expect("input computed")
}

/// A tensor of `dims` viewed around `axis` as `[outer][len][inner]`.
pub fn axis_dims(dims: &[usize], axis: u8) -> AxisDims {
    let a = axis as usize;
    AxisDims {
        outer: dims[..a].iter().product(),
        len: dims[a],
        inner: dims[a + 1..].iter().product(),
    }
}

/// The BatchMatMul geometry of operands of `a_dims` and `b_dims` (both rank 2 or both rank 3).
pub fn batch_matmul_geometry(a_dims: &[usize], b_dims: &[usize], adj_y: bool) -> BatchMatMulParams {
    let r = a_dims.len();
    let batches = if r == 3 { a_dims[0] } else { 1 };
    BatchMatMulParams {
        batches,
        m: a_dims[r - 2],
        k: a_dims[r - 1],
        n: if adj_y { b_dims[r - 2] } else { b_dims[r - 1] },
        adj_y,
    }
}

fn act_f64(v: f64, a: Activation) -> f64 {
    match a {
        Activation::None => v,
        Activation::Relu => v.max(0.0),
        Activation::Relu6 => v.clamp(0.0, 6.0),
    }
}

/// Output dims `(oh, ow)` and the input coordinate of tap `(oy, ox, ky, kx)` (`None` if padded).
fn tap(
    w: &Window,
    (h, wd): (usize, usize),
    (oy, ox, ky, kx): (usize, usize, usize, usize),
) -> Option<(usize, usize)> {
    let iy = (oy * w.sh + ky).checked_sub(w.pad_top)?;
    let ix = (ox * w.sw + kx).checked_sub(w.pad_left)?;
    (iy < h && ix < wd).then_some((iy, ix))
}

/// `round(acc / n)` half away from zero in integers (tflite's average).
fn div_round(acc: i64, n: i64) -> i64 {
    if acc > 0 {
        (acc + n / 2) / n
    } else {
        (acc - n / 2) / n
    }
}

/// Plain loops written from the op definitions in `format::graph`, independent of the kernels:
/// f32 in f64 arithmetic (compare with a tolerance); int8 with an exact i64 accumulator and the
/// core's `quant::requantize` / `multiply_by_quantized_multiplier` (golden-tested separately).
/// The int8 softmax is the only step that calls a kernel (`softmax_s8`, checked against a
/// TFLite transcription in `kernels_graph_ops.rs`).
pub fn eval_naive(m: &OwnedModel, input: &[f32]) -> Vec<Option<Vals>> {
    let mut t = initial(m, input);
    for node in &m.nodes {
        let xt = &m.tensors[node.inputs[0] as usize];
        let yt = &m.tensors[node.output as usize];
        let x = t[node.inputs[0] as usize].clone().expect("input computed");
        let n_out = yt.numel();
        let int8 = matches!(x, Vals::I8(_));
        // Per-op helpers over f64 (f32 models) or exact integers (int8).
        let y = match &node.op {
            OwnedOp::Linear { act, w }
            | OwnedOp::Conv2d { act, w, .. }
            | OwnedOp::Depthwise { act, w, .. } => {
                // acc[o][pos] as a list of (weight index, input index) pairs.
                let n_o = w.n_out();
                let mut pairs: Vec<Vec<(usize, usize)>> = vec![vec![]; n_out];
                let mut chan = vec![0usize; n_out];
                match &node.op {
                    OwnedOp::Linear { .. } => {
                        let n_in = *xt.dims.last().unwrap();
                        let rows = n_out / n_o;
                        for r in 0..rows {
                            for o in 0..n_o {
                                chan[r * n_o + o] = o;
                                pairs[r * n_o + o] =
                                    (0..n_in).map(|i| (o * n_in + i, r * n_in + i)).collect();
                            }
                        }
                    }
                    OwnedOp::Conv2d { window, .. } | OwnedOp::Depthwise { window, .. } => {
                        let dw = matches!(node.op, OwnedOp::Depthwise { .. });
                        let win = window.window();
                        let (c, h, wd) = (xt.dims[0], xt.dims[1], xt.dims[2]);
                        let (oh, ow) = (yt.dims[1], yt.dims[2]);
                        for o in 0..n_o {
                            for oy in 0..oh {
                                for ox in 0..ow {
                                    let at = (o * oh + oy) * ow + ox;
                                    chan[at] = o;
                                    let ins: Vec<usize> =
                                        if dw { vec![o] } else { (0..c).collect() };
                                    for (ii, &i) in ins.iter().enumerate() {
                                        for ky in 0..win.kh {
                                            for kx in 0..win.kw {
                                                if let Some((iy, ix)) =
                                                    tap(&win, (h, wd), (oy, ox, ky, kx))
                                                {
                                                    let per = if dw { 1 } else { c };
                                                    let wi = ((o * per + ii) * win.kh + ky)
                                                        * win.kw
                                                        + kx;
                                                    pairs[at].push((wi, (i * h + iy) * wd + ix));
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    _ => unreachable!(),
                }
                match (w, &x) {
                    (OwnedWeights::F32 { w, b }, Vals::F32(x)) => {
                        let (w, b) = (f32s(w), f32s(b));
                        Vals::F32(
                            (0..n_out)
                                .map(|k| {
                                    let s: f64 = pairs[k]
                                        .iter()
                                        .map(|&(wi, xi)| w[wi] as f64 * x[xi] as f64)
                                        .sum();
                                    act_f64(s + b[chan[k]] as f64, *act) as f32
                                })
                                .collect(),
                        )
                    }
                    (OwnedWeights::S8 { w, b, m: mult, s }, Vals::I8(x)) => {
                        let zp_in = quant_of(xt).zero_point as i64;
                        let q_out = quant_of(yt);
                        let (b, mult) = (I32Data::from_le_bytes(b), I32Data::from_le_bytes(mult));
                        let (lo, hi) = activation_range(*act, q_out);
                        Vals::I8(
                            (0..n_out)
                                .map(|k| {
                                    let o = chan[k];
                                    let acc: i64 = pairs[k]
                                        .iter()
                                        .map(|&(wi, xi)| {
                                            (w[wi] as i8 as i64) * (x[xi] as i64 - zp_in)
                                        })
                                        .sum::<i64>()
                                        + b.get(o).unwrap() as i64;
                                    let acc = i32::try_from(acc).expect("no overflow");
                                    requantize(
                                        acc,
                                        mult.get(o).unwrap(),
                                        s[o] as i8 as i32,
                                        q_out.zero_point as i32,
                                        lo,
                                        hi,
                                    )
                                })
                                .collect(),
                        )
                    }
                    _ => panic!("dtype"),
                }
            }
            OwnedOp::Add { act } => {
                let bt = &m.tensors[node.inputs[1] as usize];
                match (&x, t[node.inputs[1] as usize].as_ref().unwrap()) {
                    (Vals::F32(a), Vals::F32(b)) => Vals::F32(
                        a.iter()
                            .zip(b)
                            .map(|(&a, &b)| act_f64(a as f64 + b as f64, *act) as f32)
                            .collect(),
                    ),
                    (Vals::I8(a), Vals::I8(b)) => {
                        // TFLite ADD: inputs rescaled to 2·max(s1, s2) / 2^20 steps, summed,
                        // rescaled to the output (shifts ≤ 0, where MBQM is TFLite's
                        // smaller-than-one multiply).
                        let p =
                            add_s8_params(quant_of(xt), quant_of(bt), quant_of(yt), *act).unwrap();
                        Vals::I8(
                            a.iter()
                                .zip(b)
                                .map(|(&a, &b)| {
                                    let s1 = multiply_by_quantized_multiplier(
                                        (a as i32 - p.input1_zp) << 20,
                                        p.input1_multiplier,
                                        p.input1_shift,
                                    );
                                    let s2 = multiply_by_quantized_multiplier(
                                        (b as i32 - p.input2_zp) << 20,
                                        p.input2_multiplier,
                                        p.input2_shift,
                                    );
                                    let v = multiply_by_quantized_multiplier(
                                        s1 + s2,
                                        p.output_multiplier,
                                        p.output_shift,
                                    ) + p.output_zp;
                                    v.clamp(p.act_min, p.act_max).clamp(-128, 127) as i8
                                })
                                .collect(),
                        )
                    }
                    _ => panic!("dtype"),
                }
            }
            OwnedOp::MaxPool(window) | OwnedOp::AvgPool(window) => {
                let max = matches!(node.op, OwnedOp::MaxPool(_));
                let win = window.window();
                let (c, h, wd) = (xt.dims[0], xt.dims[1], xt.dims[2]);
                let (oh, ow) = (yt.dims[1], yt.dims[2]);
                let mut f = vec![];
                let mut q = vec![];
                for ch in 0..c {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let idx: Vec<usize> = (0..win.kh)
                                .flat_map(|ky| (0..win.kw).map(move |kx| (ky, kx)))
                                .filter_map(|(ky, kx)| tap(&win, (h, wd), (oy, ox, ky, kx)))
                                .map(|(iy, ix)| (ch * h + iy) * wd + ix)
                                .collect();
                            match &x {
                                Vals::F32(x) => f.push(if max {
                                    idx.iter().map(|&i| x[i]).fold(f32::NEG_INFINITY, f32::max)
                                } else {
                                    (idx.iter().map(|&i| x[i] as f64).sum::<f64>()
                                        / idx.len() as f64)
                                        as f32
                                }),
                                Vals::I8(x) => q.push(if max {
                                    idx.iter().map(|&i| x[i]).max().unwrap()
                                } else {
                                    let acc: i64 = idx.iter().map(|&i| x[i] as i64).sum();
                                    div_round(acc, idx.len() as i64).clamp(-128, 127) as i8
                                }),
                            }
                        }
                    }
                }
                if int8 {
                    Vals::I8(q)
                } else {
                    Vals::F32(f)
                }
            }
            OwnedOp::Mean => {
                let hw = xt.dims[1] * xt.dims[2];
                match &x {
                    Vals::F32(x) => Vals::F32(
                        x.chunks(hw)
                            .map(|p| (p.iter().map(|&v| v as f64).sum::<f64>() / hw as f64) as f32)
                            .collect(),
                    ),
                    Vals::I8(x) => Vals::I8(
                        x.chunks(hw)
                            .map(|p| {
                                let acc: i64 = p.iter().map(|&v| v as i64).sum();
                                div_round(acc, hw as i64).clamp(-128, 127) as i8
                            })
                            .collect(),
                    ),
                }
            }
            OwnedOp::Reshape => x.clone(),
            OwnedOp::Softmax { beta } => {
                let depth = *xt.dims.last().unwrap();
                match &x {
                    Vals::F32(x) => Vals::F32(
                        x.chunks(depth)
                            .flat_map(|r| {
                                let mx = r.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
                                let e: Vec<f64> = r
                                    .iter()
                                    .map(|&v| (*beta as f64 * (v as f64 - mx)).exp())
                                    .collect();
                                let s: f64 = e.iter().sum();
                                e.into_iter().map(move |v| (v / s) as f32)
                            })
                            .collect(),
                    ),
                    Vals::I8(x) => {
                        let p = softmax_s8_params(*beta, quant_of(xt).scale, n_out / depth, depth)
                            .unwrap();
                        let mut y = vec![0; n_out];
                        kernels::softmax_s8(&p, x, &mut y).unwrap();
                        Vals::I8(y)
                    }
                }
            }
            OwnedOp::Act(a) => match &x {
                Vals::F32(x) => {
                    Vals::F32(x.iter().map(|&v| act_f64(v as f64, *a) as f32).collect())
                }
                Vals::I8(x) => {
                    let (lo, hi) = activation_range(*a, quant_of(yt));
                    Vals::I8(x.iter().map(|&v| (v as i32).clamp(lo, hi) as i8).collect())
                }
            },
            OwnedOp::LayerNorm { eps } => {
                let (g, b) = (input_vals(&t, node, 1), input_vals(&t, node, 2));
                let (g, b) = (g.f32(), b.f32());
                let depth = *xt.dims.last().unwrap();
                let mut y = vec![];
                for r in x.f32().chunks(depth) {
                    let d = depth as f64;
                    let mu = r.iter().map(|&v| v as f64).sum::<f64>() / d;
                    let var = r.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / d;
                    let sd = (var + *eps as f64).sqrt();
                    for (j, &v) in r.iter().enumerate() {
                        y.push(((v as f64 - mu) / sd * g[j] as f64 + b[j] as f64) as f32);
                    }
                }
                Vals::F32(y)
            }
            OwnedOp::Gelu => {
                Vals::F32(x.f32().iter().map(|&v| gelu_f64(v as f64) as f32).collect())
            }
            OwnedOp::Lut => {
                let table = input_vals(&t, node, 1);
                Vals::I8(
                    x.i8()
                        .iter()
                        .map(|&q| table.i8()[(q as i32 + 128) as usize])
                        .collect(),
                )
            }
            OwnedOp::BatchMatMul { adj_y, alpha } => {
                let bt = &m.tensors[node.inputs[1] as usize];
                let bv = input_vals(&t, node, 1);
                let p = batch_matmul_geometry(&xt.dims, &bt.dims, *adj_y);
                let (mm, k, n) = (p.m, p.k, p.n);
                // (a index, b index) of term kk of output (bi, i, j).
                let at = |bi: usize, i: usize, kk: usize| (bi * mm + i) * k + kk;
                let bt_ix = |bi: usize, j: usize, kk: usize| {
                    if *adj_y {
                        (bi * n + j) * k + kk
                    } else {
                        (bi * k + kk) * n + j
                    }
                };
                let outs = (0..p.batches)
                    .flat_map(|bi| (0..mm).flat_map(move |i| (0..n).map(move |j| (bi, i, j))));
                match (&x, &bv) {
                    (Vals::F32(a), Vals::F32(b)) => Vals::F32(
                        outs.map(|(bi, i, j)| {
                            let s: f64 = (0..k)
                                .map(|kk| a[at(bi, i, kk)] as f64 * b[bt_ix(bi, j, kk)] as f64)
                                .sum();
                            (*alpha as f64 * s) as f32
                        })
                        .collect(),
                    ),
                    (Vals::I8(a), Vals::I8(b)) => {
                        let (qa, qb, qo) = (quant_of(xt), quant_of(bt), quant_of(yt));
                        // TFLite: the scale product in f32, then f64; alpha folded in.
                        let real = (qa.scale * qb.scale) as f64 * *alpha as f64 / qo.scale as f64;
                        let (mult, shift) = denoiserep_core::quantize_multiplier(real);
                        Vals::I8(
                            outs.map(|(bi, i, j)| {
                                let acc: i64 = (0..k)
                                    .map(|kk| {
                                        (a[at(bi, i, kk)] as i64 - qa.zero_point as i64)
                                            * (b[bt_ix(bi, j, kk)] as i64 - qb.zero_point as i64)
                                    })
                                    .sum();
                                let acc = i32::try_from(acc).expect("no overflow");
                                let v = multiply_by_quantized_multiplier(acc, mult, shift)
                                    + qo.zero_point as i32;
                                v.clamp(-128, 127) as i8
                            })
                            .collect(),
                        )
                    }
                    _ => panic!("dtype"),
                }
            }
            OwnedOp::Transpose(perm) => {
                let od = &yt.dims;
                let r = od.len();
                // Input index of output multi-index `i`: input axis perm[k] takes i[k].
                let src = |flat: usize| {
                    let mut i = vec![0; r];
                    let mut f = flat;
                    for a in (0..r).rev() {
                        i[a] = f % od[a];
                        f /= od[a];
                    }
                    let mut j = vec![0; r];
                    for k in 0..r {
                        j[perm[k] as usize] = i[k];
                    }
                    j.iter().zip(&xt.dims).fold(0, |acc, (&v, &d)| acc * d + v)
                };
                match &x {
                    Vals::F32(x) => Vals::F32((0..n_out).map(|f| x[src(f)]).collect()),
                    Vals::I8(x) => Vals::I8((0..n_out).map(|f| x[src(f)]).collect()),
                }
            }
            OwnedOp::Quantize => {
                let q = quant_of(yt);
                Vals::I8(
                    x.f32()
                        .iter()
                        .map(|&v| {
                            ((v / q.scale).round() as i64 + q.zero_point as i64).clamp(-128, 127)
                                as i8
                        })
                        .collect(),
                )
            }
            OwnedOp::Dequantize => {
                let q = quant_of(xt);
                Vals::F32(
                    x.i8()
                        .iter()
                        .map(|&v| ((v as f64 - q.zero_point as f64) * q.scale as f64) as f32)
                        .collect(),
                )
            }
            OwnedOp::Concat { axis } => {
                let a = *axis as usize;
                let outer: usize = xt.dims[..a].iter().product();
                let parts: Vec<(Vals, usize)> = node
                    .inputs
                    .iter()
                    .enumerate()
                    .map(|(i, &id)| {
                        let d = &m.tensors[id as usize].dims;
                        (input_vals(&t, node, i), d[a..].iter().product())
                    })
                    .collect();
                let mut f = vec![];
                let mut q = vec![];
                for o in 0..outer {
                    for (v, per) in &parts {
                        match v {
                            Vals::F32(v) => f.extend_from_slice(&v[o * per..(o + 1) * per]),
                            Vals::I8(v) => q.extend_from_slice(&v[o * per..(o + 1) * per]),
                        }
                    }
                }
                if int8 {
                    Vals::I8(q)
                } else {
                    Vals::F32(f)
                }
            }
            OwnedOp::MeanAxis { axis } => {
                let d = axis_dims(&xt.dims, *axis);
                let at = |o: usize, j: usize, i: usize| (o * d.len + j) * d.inner + i;
                let outs = (0..d.outer).flat_map(|o| (0..d.inner).map(move |i| (o, i)));
                match &x {
                    Vals::F32(x) => Vals::F32(
                        outs.map(|(o, i)| {
                            let s: f64 = (0..d.len).map(|j| x[at(o, j, i)] as f64).sum();
                            (s / d.len as f64) as f32
                        })
                        .collect(),
                    ),
                    Vals::I8(x) => {
                        let (qi, qo) = (quant_of(xt), quant_of(yt));
                        // TFLite-Micro's MEAN: multiplier of s_in / s_out, readapted by 1/n.
                        let (m0, s0) =
                            denoiserep_core::quantize_multiplier(qi.scale as f64 / qo.scale as f64);
                        let n = d.len as i64;
                        let k = (63 - (n as u64).leading_zeros() as i32)
                            .min(32)
                            .min(31 + s0);
                        let mult = (((m0 as i64) << k) / n) as i32;
                        let shift = s0 - k;
                        Vals::I8(
                            outs.map(|(o, i)| {
                                let sum: i64 = (0..d.len).map(|j| x[at(o, j, i)] as i64).sum();
                                let acc = i32::try_from(sum - qi.zero_point as i64 * n).unwrap();
                                let v = multiply_by_quantized_multiplier(acc, mult, shift)
                                    + qo.zero_point as i32;
                                v.clamp(-128, 127) as i8
                            })
                            .collect(),
                        )
                    }
                }
            }
            OwnedOp::Slice { axis, start, len } => {
                let d = axis_dims(&xt.dims, *axis);
                let ix: Vec<usize> = (0..d.outer)
                    .flat_map(|o| {
                        (*start as usize..(*start + *len) as usize).flat_map(move |j| {
                            (0..d.inner).map(move |i| (o * d.len + j) * d.inner + i)
                        })
                    })
                    .collect();
                match &x {
                    Vals::F32(x) => Vals::F32(ix.iter().map(|&i| x[i]).collect()),
                    Vals::I8(x) => Vals::I8(ix.iter().map(|&i| x[i]).collect()),
                }
            }
        };
        t[node.output as usize] = Some(y);
    }
    t
}

/// `gelu(x) = x · Φ(x) = 0.5 · x · (1 + erf(x / √2))` in f64.
pub fn gelu_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

/// Runs a loaded model once with a fresh arena of `arena_size()` bytes; returns (logits,
/// embedding) values.
pub fn run_vals(model: &Model<'_>, input: &[f32]) -> (Vals, Vals) {
    let mut arena = vec![0u8; model.arena_size()];
    let out = model.run(input, &mut arena).unwrap();
    (Vals::of(&out.logits.data), Vals::of(&out.embedding.data))
}

/// Runs and dequantizes (logits, embedding).
pub fn run_f32(model: &Model<'_>, input: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut arena = vec![0u8; model.arena_size()];
    let out = model.run(input, &mut arena).unwrap();
    let mut logits = vec![0.0; out.logits.len()];
    let mut emb = vec![0.0; out.embedding.len()];
    out.logits.dequantize_into(&mut logits).unwrap();
    out.embedding.dequantize_into(&mut emb).unwrap();
    (logits, emb)
}
