//! An int8 TensorFlow Lite flatbuffer → the core's model format, run by the core bit for bit as
//! TFLite-Micro's reference kernels run it (`docs/interop.md`, "Import a .tflite model").
//!
//! # Layout
//!
//! TFLite activations are NHWC with batch 1; the core's are CHW. Every TFLite tensor is held
//! without its batch dim either [`Layout::AsIs`] (the same dims, the same row-major order: the
//! model input `[H, W, C]`, flat vectors, reshaped tensors) or [`Layout::Chw`] (a TFLite
//! `[H, W, C]` held as `[C, H, W]`: what convolutions, pools and MEAN produce). A core
//! `Transpose` converts between the two where an op needs the other: `perm [2, 0, 1]` before the
//! first convolution (the model input keeps the `.tflite` input's own `[H, W, C]` shape), and
//! `perm [1, 2, 0]` before a RESHAPE, FULLY_CONNECTED or SOFTMAX of a spatial tensor (the core's
//! Reshape is a row-major alias) and for a rank-3 model output, which the core writes as TFLite
//! does, `[H, W, C]`.
//!
//! # Ops
//!
//! FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D (depth multiplier 1, dilation 1), ADD (equal
//! shapes), AVERAGE_POOL_2D, MAX_POOL_2D, MEAN over H and W, RESHAPE, SOFTMAX, PAD (folded into
//! the following CONV_2D / DEPTHWISE_CONV_2D), RELU, RELU6, with fused NONE / RELU / RELU6. Any
//! other operator, dtype or option is an error naming the operator and its index.
//!
//! # Float interface
//!
//! A model converted with float input and output (TFLiteConverter without
//! `inference_input_type = tf.int8`) begins with QUANTIZE(float input) and ends with
//! DEQUANTIZE(→ float output). Both are the core's own interface: the QUANTIZE's int8 output
//! becomes the model input, which [`denoiserep_core::Model::run`] fills exactly as TFLite-Micro's
//! QUANTIZE does (`round(x / scale) + zero_point` with an f32 division, ties away from zero,
//! saturated: `core::quant::quantize`), and the DEQUANTIZE's input becomes the model output,
//! whose dequantization `(q − zero_point)·scale` is exact in f32 as in TFLite-Micro's double
//! product (a 24-bit scale times a 9-bit integer needs 33 bits, rounded once either way).
//! QUANTIZE and DEQUANTIZE anywhere else (requantization inside the graph) are refused.

mod geometry;
mod ops;
mod quant;
mod reader;

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};
use denoiserep_core::{DType, QuantParams};
use denoiserep_tflite_schema::tflite::{BuiltinOperator as B, TensorType};

use crate::model_file::{f32_bytes, shape, ModelFile, OwnedNode, OwnedOp, OwnedTensor};
use reader::{OpCode, TflModel};

/// The operators [`import_tflite`] lowers, as TFLite names them.
pub const SUPPORTED_OPS: &[&str] = &[
    "ADD",
    "AVERAGE_POOL_2D",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEQUANTIZE",
    "FULLY_CONNECTED",
    "MAX_POOL_2D",
    "MEAN",
    "PAD",
    "QUANTIZE",
    "RELU",
    "RELU6",
    "RESHAPE",
    "SOFTMAX",
];

/// Imported constants may total at most this many times the `.tflite` size (plus 1 MiB): TFLite
/// stores each weight once, but a flatbuffer can point many tensors at one buffer.
const CONSTANT_GROWTH: usize = 16;

/// How a TFLite activation (batch dim dropped, dims `tfl`) is held in the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Same dims, same row-major order.
    AsIs,
    /// TFLite `[H, W, C]` held as `[C, H, W]`.
    Chw,
}

/// A TFLite activation tensor as the core holds it.
#[derive(Debug, Clone, PartialEq)]
struct Value {
    id: u16,
    /// TFLite dims without the batch dim.
    tfl: Vec<usize>,
    layout: Layout,
    quant: QuantParams,
}

impl Value {
    /// The core tensor's dims.
    fn core_dims(&self) -> Vec<usize> {
        match (self.layout, self.tfl.as_slice()) {
            (Layout::Chw, &[h, w, c]) => vec![c, h, w],
            _ => self.tfl.clone(),
        }
    }
}

/// A PAD not emitted: its output stands for `source` padded by `[top, bottom, left, right]`.
#[derive(Debug, Clone)]
struct PendingPad {
    op: usize,
    source: usize,
    pad: [usize; 4],
}

/// Imports an int8 `.tflite` (one subgraph, batch 1) into a core model named `name`.
///
/// The core model's input is the TFLite input 0 without its batch dim and with its own
/// quantization; `input_mean` 0 and `input_std` 1, so [`denoiserep_core::Model::run`] quantizes
/// real inputs with the input scale as TFLite does, and `run_quantized` takes TFLite's int8
/// input as is. Logits and embedding are both output 0 (a TFLite model names no embedding).
/// The returned model encodes ([`ModelFile::encode`]), i.e. the core's loader accepts it.
pub fn import_tflite(bytes: &[u8], name: &str) -> Result<ModelFile> {
    let tfl = TflModel::open(bytes)?;
    let budget = bytes
        .len()
        .saturating_mul(CONSTANT_GROWTH)
        .saturating_add(1 << 20);
    let mut im = Importer {
        tfl,
        file: ModelFile {
            name: name.to_string(),
            input: 0,
            logits: 0,
            embedding: 0,
            input_mean: f32_bytes(&[0.0]),
            input_std: f32_bytes(&[1.0]),
            tensors: Vec::new(),
            nodes: Vec::new(),
        },
        values: HashMap::new(),
        pads: HashMap::new(),
        constant_bytes: 0,
        constant_budget: budget,
        input_quantize: None,
    };
    im.run()?;
    im.file
        .encode()
        .context("the core rejects the imported model")?;
    Ok(im.file)
}

struct Importer<'a> {
    tfl: TflModel<'a>,
    file: ModelFile,
    /// TFLite tensor index → the core tensor holding it.
    values: HashMap<usize, Value>,
    /// TFLite tensor index → a PAD waiting to be folded into its consumer.
    pads: HashMap<usize, PendingPad>,
    constant_bytes: usize,
    constant_budget: usize,
    /// The QUANTIZE that turns a float model input into the int8 model input, if any.
    input_quantize: Option<usize>,
}

impl Importer<'_> {
    fn run(&mut self) -> Result<()> {
        let n_ops = self.tfl.operators.len();
        if n_ops == 0 {
            bail!("the model has no operators");
        }
        // Every unsupported operator in one error, before anything is lowered.
        let mut codes = Vec::with_capacity(n_ops);
        let mut unsupported = Vec::new();
        for k in 0..n_ops {
            let op = self.tfl.operator(k)?;
            let code = self.tfl.op_code(k, &op)?;
            let name = code.name();
            if !matches!(code, OpCode::Builtin(_)) || !SUPPORTED_OPS.contains(&name.as_str()) {
                unsupported.push(format!("{k} ({name})"));
            }
            codes.push(code);
        }
        if !unsupported.is_empty() {
            let (what, verb) = if unsupported.len() == 1 {
                ("operator", "is")
            } else {
                ("operators", "are")
            };
            bail!(
                "{what} {} {verb} not supported; supported: {}",
                unsupported.join(", "),
                SUPPORTED_OPS.join(", ")
            );
        }
        self.define_input()?;
        for (k, code) in codes.into_iter().enumerate() {
            let OpCode::Builtin(b) = code else {
                continue;
            };
            let ctx = format!("operator {k} ({})", reader::builtin_name(b));
            let op = ops::OpRef::read(&self.tfl, k, &ctx)?;
            match b {
                B::Conv2d => self.conv2d(&op),
                B::DepthwiseConv2d => self.depthwise(&op),
                B::FullyConnected => self.fully_connected(&op),
                B::Add => self.add(&op),
                B::AveragePool2d | B::MaxPool2d => self.pool(&op, b == B::MaxPool2d),
                B::Mean => self.mean(&op),
                B::Reshape => self.reshape(&op),
                B::Softmax => self.softmax(&op),
                B::Relu | B::Relu6 => self.relu(&op, b == B::Relu6),
                B::Pad => self.pad(&op),
                B::Quantize if self.input_quantize == Some(k) => Ok(()),
                B::Quantize => Err(anyhow!(
                    "{ctx}: QUANTIZE is supported only on the float model input (requantizing an \
                     int8 tensor inside the graph is not)"
                )),
                B::Dequantize => self.dequantize_output(&op),
                _ => Err(anyhow!("{ctx} is not supported")),
            }?;
        }
        self.define_output()
    }

    /// The model input: TFLite input 0, batch dim dropped, held as is.
    fn define_input(&mut self) -> Result<()> {
        if self.tfl.inputs.len() != 1 {
            bail!(
                "the model has {} inputs; exactly one is supported",
                self.tfl.inputs.len()
            );
        }
        let index = self.tfl.inputs[0];
        let t = self.tfl.tensor(index)?;
        let index = if t.ty == TensorType::Float32 {
            let (k, out) = self.input_quantize_op(index).with_context(|| {
                format!(
                    "the model input {} is float32; a float input must go straight into a \
                     QUANTIZE to int8 (the model's only consumer of it)",
                    t.describe()
                )
            })?;
            self.input_quantize = Some(k);
            out
        } else {
            index
        };
        let v = self.new_value("model input", index, None)?;
        self.file.input = v.id;
        Ok(())
    }

    /// The QUANTIZE reading float tensor `input` when it is its only consumer: (operator,
    /// its int8 output tensor).
    fn input_quantize_op(&self, input: usize) -> Result<(usize, usize)> {
        let mut found = None;
        for k in 0..self.tfl.operators.len() {
            let op = self.tfl.operator(k)?;
            let code = self.tfl.op_code(k, &op)?;
            let ctx = format!("operator {k} ({})", code.name());
            let r = ops::OpRef::read(&self.tfl, k, &ctx)?;
            if !r.inputs.contains(&Some(input)) {
                continue;
            }
            match (code, &r.outputs[..], found) {
                (OpCode::Builtin(B::Quantize), &[out], None) if r.inputs.len() == 1 => {
                    found = Some((k, out));
                }
                _ => bail!("{ctx} reads it"),
            }
        }
        found.ok_or_else(|| anyhow!("no QUANTIZE reads it"))
    }

    /// Logits = embedding = TFLite output 0 (`[H, W, C]` again if it is spatial).
    fn define_output(&mut self) -> Result<()> {
        let &index = self
            .tfl
            .outputs
            .first()
            .ok_or_else(|| anyhow!("the model has no outputs"))?;
        if let Some(p) = self.pads.get(&index) {
            bail!(
                "operator {} (PAD) writes the model output; a PAD can only be folded into a \
                 following CONV_2D or DEPTHWISE_CONV_2D",
                p.op
            );
        }
        let v = self.values.get(&index).cloned().ok_or_else(|| {
            anyhow!("the model output (tensor {index}) is not written by any operator")
        })?;
        if v.id == self.file.input {
            bail!("the model output is its input");
        }
        let v = self.as_is(&v, "model output")?;
        self.file.logits = v.id;
        self.file.embedding = v.id;
        Ok(())
    }

    /// A new core tensor for TFLite activation `index` (int8, batch 1, TFLite's dims without the
    /// batch dim), held in `layout` (`None`: as is), registered as the tensor's value.
    fn new_value(&mut self, ctx: &str, index: usize, layout: Option<Layout>) -> Result<Value> {
        if self.values.contains_key(&index) || self.pads.contains_key(&index) {
            bail!("{ctx}: tensor {index} is written twice");
        }
        let t = self.tfl.tensor(index)?;
        if t.data.is_some() {
            bail!(
                "{ctx}: {} is a constant where an activation is written",
                t.describe()
            );
        }
        let quant = quant::activation_quant(ctx, &t)?;
        let tfl = match t.shape.as_slice() {
            [] => bail!("{ctx}: {} is a scalar", t.describe()),
            [d] => vec![*d],
            [1, rest @ ..] => rest.to_vec(),
            [n, ..] => bail!(
                "{ctx}: {} has batch {n}; only batch 1 is supported",
                t.describe()
            ),
        };
        let layout = layout.unwrap_or(Layout::AsIs);
        if layout == Layout::Chw && tfl.len() != 3 {
            bail!(
                "{ctx}: {} has shape {:?}; [1, H, W, C] expected",
                t.describe(),
                t.shape
            );
        }
        let mut v = Value {
            id: 0,
            tfl,
            layout,
            quant,
        };
        v.id = self.add_tensor(ctx, &v.core_dims(), DType::I8(quant), None)?;
        self.values.insert(index, v.clone());
        Ok(v)
    }

    /// Appends a tensor to the core model.
    fn add_tensor(
        &mut self,
        ctx: &str,
        dims: &[usize],
        dtype: DType,
        data: Option<Vec<u8>>,
    ) -> Result<u16> {
        let id = u16::try_from(self.file.tensors.len())
            .map_err(|_| anyhow!("{ctx}: the model needs more than 65536 core tensors"))?;
        if let Some(d) = &data {
            self.constant_bytes = self.constant_bytes.saturating_add(d.len());
            if self.constant_bytes > self.constant_budget {
                bail!(
                    "{ctx}: the imported constants exceed {} bytes ({CONSTANT_GROWTH}× the file); \
                     do many tensors share one buffer?",
                    self.constant_budget
                );
            }
        }
        self.file.tensors.push(OwnedTensor {
            shape: shape(dims, ctx)?,
            dtype,
            data,
        });
        Ok(id)
    }

    /// Appends a core op writing a new tensor of `dims` with `quant`; returns that tensor.
    fn emit(
        &mut self,
        ctx: &str,
        op: OwnedOp,
        inputs: Vec<u16>,
        dims: &[usize],
        quant: QuantParams,
    ) -> Result<u16> {
        let output = self.add_tensor(ctx, dims, DType::I8(quant), None)?;
        self.file.nodes.push(OwnedNode {
            op,
            inputs,
            output,
            source: format!("tflite {ctx}"),
        });
        Ok(output)
    }

    /// `v` as TFLite's row-major `[H, W, C]` (a Transpose `[1, 2, 0]` of a Chw tensor, or a
    /// Reshape when only one of H·W and C exceeds 1, where both orders agree).
    fn as_is(&mut self, v: &Value, ctx: &str) -> Result<Value> {
        if v.layout == Layout::AsIs {
            return Ok(v.clone());
        }
        let [h, w, c] = v.tfl[..] else {
            bail!("{ctx}: internal: a CHW tensor of rank {}", v.tfl.len());
        };
        let op = if h * w == 1 || c == 1 {
            OwnedOp::Reshape
        } else {
            OwnedOp::Transpose {
                perm: vec![1, 2, 0],
            }
        };
        let id = self.emit(ctx, op, vec![v.id], &v.tfl, v.quant)?;
        Ok(Value {
            id,
            tfl: v.tfl.clone(),
            layout: Layout::AsIs,
            quant: v.quant,
        })
    }

    /// `v` as `[C, H, W]` (a Transpose `[2, 0, 1]` of a TFLite-ordered `[H, W, C]`).
    fn as_chw(&mut self, v: &Value, ctx: &str) -> Result<Value> {
        if v.layout == Layout::Chw {
            return Ok(v.clone());
        }
        let [h, w, c] = v.tfl[..] else {
            bail!(
                "{ctx}: the input has shape {:?} without its batch dim; [H, W, C] expected",
                v.tfl
            );
        };
        let op = if h * w == 1 || c == 1 {
            OwnedOp::Reshape
        } else {
            OwnedOp::Transpose {
                perm: vec![2, 0, 1],
            }
        };
        let id = self.emit(ctx, op, vec![v.id], &[c, h, w], v.quant)?;
        Ok(Value {
            id,
            tfl: v.tfl.clone(),
            layout: Layout::Chw,
            quant: v.quant,
        })
    }
}
