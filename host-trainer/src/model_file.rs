//! A model held in owned buffers (exported by the trainer or imported from another format),
//! encoded with the core's own encoder (`denoiserep_core::encode`, `docs/model-format.md`) and
//! checked with the core's own loader before anything is written.

use anyhow::{anyhow, Result};
use denoiserep_core::format::graph::{
    Act, Add, BatchMatMul, Concat, Conv2d, DepthwiseConv2d, Inputs, LayerNorm, Linear, MeanAxis,
    ModelInfo, Node, Op, Perm, Pool2d, Slice, Softmax, TensorDesc, Transpose, Weights,
};
use denoiserep_core::{
    encode, encoded_len, Activation, DType, Error as CoreError, F32Data, Graph, I32Data, I8Data,
    Model, Shape, WindowSpec,
};

/// Weights and biases in owned little-endian buffers.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedWeights {
    F32 {
        weights: Vec<u8>,
        bias: Vec<u8>,
    },
    S8 {
        weights: Vec<u8>,
        bias: Vec<u8>,
        multiplier: Vec<u8>,
        shift: Vec<u8>,
    },
}

impl OwnedWeights {
    fn borrow(&self) -> Weights<'_> {
        match self {
            Self::F32 { weights, bias } => Weights::F32 {
                weights: F32Data::from_le_bytes(weights),
                bias: F32Data::from_le_bytes(bias),
            },
            Self::S8 {
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

/// One core op with owned tensors.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedOp {
    Linear {
        activation: Activation,
        weights: OwnedWeights,
    },
    Conv2d {
        window: WindowSpec,
        activation: Activation,
        weights: OwnedWeights,
    },
    DepthwiseConv2d {
        window: WindowSpec,
        activation: Activation,
        weights: OwnedWeights,
    },
    Add {
        activation: Activation,
    },
    MaxPool2d {
        window: WindowSpec,
    },
    AvgPool2d {
        window: WindowSpec,
    },
    Mean,
    Reshape,
    Softmax {
        beta: f32,
    },
    Activation {
        activation: Activation,
    },
    LayerNorm {
        eps: f32,
    },
    Gelu,
    Lut,
    BatchMatMul {
        adj_y: bool,
        alpha: f32,
    },
    /// Output axis `k` is input axis `perm[k]` (at most 4 axes).
    Transpose {
        perm: Vec<u8>,
    },
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
    fn borrow(&self) -> Result<Op<'_>> {
        Ok(match self {
            Self::Linear {
                activation,
                weights,
            } => Op::Linear(Linear {
                activation: *activation,
                weights: weights.borrow(),
            }),
            Self::Conv2d {
                window,
                activation,
                weights,
            } => Op::Conv2d(Conv2d {
                window: *window,
                activation: *activation,
                weights: weights.borrow(),
            }),
            Self::DepthwiseConv2d {
                window,
                activation,
                weights,
            } => Op::DepthwiseConv2d(DepthwiseConv2d {
                window: *window,
                activation: *activation,
                weights: weights.borrow(),
            }),
            Self::Add { activation } => Op::Add(Add {
                activation: *activation,
            }),
            Self::MaxPool2d { window } => Op::MaxPool2d(Pool2d { window: *window }),
            Self::AvgPool2d { window } => Op::AvgPool2d(Pool2d { window: *window }),
            Self::Mean => Op::Mean,
            Self::Reshape => Op::Reshape,
            Self::Softmax { beta } => Op::Softmax(Softmax { beta: *beta }),
            Self::Activation { activation } => Op::Activation(Act {
                activation: *activation,
            }),
            Self::LayerNorm { eps } => Op::LayerNorm(LayerNorm { eps: *eps }),
            Self::Gelu => Op::Gelu,
            Self::Lut => Op::Lut,
            Self::BatchMatMul { adj_y, alpha } => Op::BatchMatMul(BatchMatMul {
                adj_y: *adj_y,
                alpha: *alpha,
            }),
            Self::Transpose { perm } => Op::Transpose(Transpose {
                perm: Perm::new(perm)
                    .ok_or_else(|| anyhow!("a transpose of {} axes (at most 4)", perm.len()))?,
            }),
            Self::Quantize => Op::Quantize,
            Self::Dequantize => Op::Dequantize,
            Self::Concat { axis } => Op::Concat(Concat { axis: *axis }),
            Self::MeanAxis { axis } => Op::MeanAxis(MeanAxis { axis: *axis }),
            Self::Slice { axis, start, len } => Op::Slice(Slice {
                axis: *axis,
                start: *start,
                len: *len,
            }),
        })
    }
}

/// One op of an owned model: the op, its tensors, and what it is in trainer terms.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedNode {
    pub op: OwnedOp,
    pub inputs: Vec<u16>,
    pub output: u16,
    /// `layer1.0.conv1 Conv2d(16→16, 3×3) + ReLU`.
    pub source: String,
}

/// One tensor of an owned model.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedTensor {
    pub shape: Shape,
    pub dtype: DType,
    /// Constant tensors: their little-endian bytes.
    pub data: Option<Vec<u8>>,
}

/// A whole model in owned buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    pub name: String,
    pub input: u16,
    pub logits: u16,
    pub embedding: u16,
    pub input_mean: Vec<u8>,
    pub input_std: Vec<u8>,
    pub tensors: Vec<OwnedTensor>,
    pub nodes: Vec<OwnedNode>,
}

impl ModelFile {
    /// The file bytes (`docs/model-format.md`), written by the core's encoder and accepted by the
    /// core's loader ([`Model::from_bytes`], which checks the graph, every shape, tensor length,
    /// multiplier and, for int8, that no int32 accumulator can overflow for any input). A
    /// rejected op is named in trainer terms.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let tensors: Vec<TensorDesc<'_>> = self
            .tensors
            .iter()
            .map(|t| TensorDesc {
                shape: t.shape,
                dtype: t.dtype,
                data: t.data.as_deref(),
            })
            .collect();
        let nodes = self
            .nodes
            .iter()
            .map(|n| {
                Ok(Node {
                    op: n.op.borrow().map_err(|e| anyhow!("{}: {e}", n.source))?,
                    inputs: Inputs::new(&n.inputs)
                        .ok_or_else(|| anyhow!("{}: more than 4 inputs", n.source))?,
                    output: n.output,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let graph = Graph {
            info: ModelInfo {
                name: &self.name,
                input: self.input,
                logits: self.logits,
                embedding: self.embedding,
                input_mean: F32Data::from_le_bytes(&self.input_mean),
                input_std: F32Data::from_le_bytes(&self.input_std),
            },
            tensors: &tensors,
            nodes: &nodes,
        };
        let len = encoded_len(&graph).map_err(|e| self.explain(e))?;
        let mut bytes = vec![0u8; len];
        // The encoder validates the model too (same checks as the loader).
        let n = encode(&graph, &mut bytes).map_err(|e| self.explain(e))?;
        bytes.truncate(n);
        Model::from_bytes(&bytes).map_err(|e| self.explain(e))?;
        Ok(bytes)
    }

    /// A core validation error as one line naming the op or tensor.
    pub fn explain(&self, e: CoreError) -> anyhow::Error {
        if let Some(i) = error_op(&e) {
            if let Some(n) = self.nodes.get(usize::from(i)) {
                return anyhow!("cannot export {} (core op {i}): {e}", n.source);
            }
        }
        anyhow!("cannot export the model: {e}")
    }
}

/// The op index carried by a core error, if any.
pub fn error_op(e: &CoreError) -> Option<u16> {
    match *e {
        CoreError::DecodeUnknownOpKind { op }
        | CoreError::DecodeTooManyInputs { op }
        | CoreError::GraphBadTensorId { op }
        | CoreError::GraphTensorNotProduced { op }
        | CoreError::GraphTwoProducers { op }
        | CoreError::OpBadArity { op }
        | CoreError::ShapeMismatch { op }
        | CoreError::OpBadParam { op }
        | CoreError::OpBadTensorLength { op }
        | CoreError::OpNonFiniteWeight { op }
        | CoreError::OpNotCompiledIn { op }
        | CoreError::OpUnsupportedDType { op }
        | CoreError::OpBadMultiplier { op }
        | CoreError::OpAccumulatorOverflow { op } => Some(op),
        _ => None,
    }
}

/// A core shape from dims, or an error naming `what`.
pub fn shape(dims: &[usize], what: &str) -> Result<Shape> {
    Shape::new(dims).ok_or_else(|| {
        anyhow!("{what}: shape {dims:?} does not fit the model format (rank 1–4, dims ≥ 1)")
    })
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes of i32 values.
pub fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Two's-complement bytes of i8 values.
pub fn i8_bytes(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}
