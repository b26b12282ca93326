//! Reading a TFLite flatbuffer through the schema's verifying accessors: every offset and length
//! is checked by planus, so a malformed file is an error here, never a panic. Nothing is copied
//! up front; an operator's tensors are read when the operator is lowered, and a vector is only
//! copied after its length has been checked against what the tensor can hold (a flatbuffer may
//! point many tables at one vector).

use anyhow::{anyhow, bail, Result};
use denoiserep_tflite_schema::planus::{self, ReadAsRoot, Vector};
use denoiserep_tflite_schema::tflite::{self, BuiltinOperator, TensorType};
use denoiserep_tflite_schema::{FILE_IDENTIFIER, SCHEMA_VERSION};

/// Most dims a TFLite tensor may have here (TFLite itself allows up to 6 in most kernels).
const MAX_TFLITE_RANK: usize = 6;

/// A planus error as "malformed TFLite flatbuffer: `what`: …".
pub(super) fn fb<T>(r: planus::Result<T>, what: impl FnOnce() -> String) -> Result<T> {
    r.map_err(|e| anyhow!("malformed TFLite flatbuffer: {}: {e}", what()))
}

/// A required field of subgraph 0.
fn required<T>(v: planus::Result<Option<T>>, what: &str) -> Result<T> {
    fb(v, || format!("subgraph 0 {what}"))?.ok_or_else(|| anyhow!("subgraph 0 has no {what}"))
}

/// The one subgraph of a TFLite model, borrowed from the file.
pub(super) struct TflModel<'a> {
    buffers: Vector<'a, planus::Result<tflite::BufferRef<'a>>>,
    codes: Vector<'a, planus::Result<tflite::OperatorCodeRef<'a>>>,
    tensors: Vector<'a, planus::Result<tflite::TensorRef<'a>>>,
    pub operators: Vector<'a, planus::Result<tflite::OperatorRef<'a>>>,
    /// Subgraph input tensor indices.
    pub inputs: Vec<usize>,
    /// Subgraph output tensor indices.
    pub outputs: Vec<usize>,
}

/// What an operator is: a builtin (with its TFLite name) or a custom code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OpCode {
    Builtin(BuiltinOperator),
    Custom(String),
}

/// Affine quantization of a tensor as stored: scales, zero points, quantized dimension.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Quant {
    pub scales: Vec<f32>,
    pub zero_points: Vec<i64>,
    pub dim: i32,
}

/// One tensor's metadata (and, for a constant, its bytes in the file).
#[derive(Debug, Clone)]
pub(super) struct TensorMeta<'a> {
    pub index: usize,
    pub name: &'a str,
    pub shape: Vec<usize>,
    pub ty: TensorType,
    /// The buffer's bytes when it holds any (a constant tensor).
    pub data: Option<&'a [u8]>,
    quant: Option<tflite::QuantizationParametersRef<'a>>,
}

impl TensorMeta<'_> {
    /// `tensor 5 'conv/weights'`.
    pub fn describe(&self) -> String {
        format!("tensor {} '{}'", self.index, self.name)
    }

    /// Number of elements (1 for a scalar), `None` on overflow.
    pub fn numel(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// The quantization, copied only when it has at most `max_len` scales and zero points
    /// (1 for an activation, the channel count for weights), else an error naming the tensor.
    pub fn quant(&self, max_len: usize) -> Result<Option<Quant>> {
        let Some(q) = self.quant else {
            return Ok(None);
        };
        let what = || format!("quantization of {}", self.describe());
        let scale = fb(q.scale(), what)?;
        let zero = fb(q.zero_point(), what)?;
        let dim = fb(q.quantized_dimension(), what)?;
        let (Some(scale), Some(zero)) = (scale, zero) else {
            return Ok(None);
        };
        if scale.len() > max_len || zero.len() > max_len {
            bail!(
                "{} has {} scales and {} zero points; at most {max_len} expected",
                self.describe(),
                scale.len(),
                zero.len()
            );
        }
        Ok(Some(Quant {
            scales: scale.iter().collect(),
            zero_points: zero.iter().collect(),
            dim,
        }))
    }
}

impl<'a> TflModel<'a> {
    /// Checks the `TFL3` identifier, the schema version and that there is one subgraph.
    pub fn open(bytes: &'a [u8]) -> Result<Self> {
        if bytes.get(4..8) != Some(FILE_IDENTIFIER.as_slice()) {
            bail!(
                "not a TFLite model: no `TFL3` file identifier at byte 4 ({} bytes)",
                bytes.len()
            );
        }
        let model = fb(tflite::ModelRef::read_as_root(bytes), || {
            "root table".into()
        })?;
        let version = fb(model.version(), || "Model.version".into())?;
        if version != SCHEMA_VERSION {
            bail!("TFLite schema version {version}; only version {SCHEMA_VERSION} is supported");
        }
        let subgraphs = fb(model.subgraphs(), || "Model.subgraphs".into())?
            .ok_or_else(|| anyhow!("the model has no subgraph"))?;
        if subgraphs.len() != 1 {
            bail!(
                "the model has {} subgraphs; only models with exactly one subgraph (no control \
                 flow) are supported",
                subgraphs.len()
            );
        }
        let sg = subgraphs
            .get(0)
            .ok_or_else(|| anyhow!("the model has no subgraph"))?;
        let sg = fb(sg, || "subgraph 0".into())?;
        let indices = |v: Vector<'a, i32>, what: &str| -> Result<Vec<usize>> {
            v.iter()
                .map(|i| usize::try_from(i).map_err(|_| anyhow!("subgraph 0 {what}: index {i}")))
                .collect()
        };
        let inputs = indices(required(sg.inputs(), "inputs")?, "inputs")?;
        let outputs = indices(required(sg.outputs(), "outputs")?, "outputs")?;
        Ok(Self {
            buffers: fb(model.buffers(), || "Model.buffers".into())?
                .ok_or_else(|| anyhow!("the model has no buffers"))?,
            codes: fb(model.operator_codes(), || "Model.operator_codes".into())?
                .ok_or_else(|| anyhow!("the model has no operator codes"))?,
            tensors: required(sg.tensors(), "tensors")?,
            operators: required(sg.operators(), "operators")?,
            inputs,
            outputs,
        })
    }

    /// Operator `k`.
    pub fn operator(&self, k: usize) -> Result<tflite::OperatorRef<'a>> {
        let op = self
            .operators
            .get(k)
            .ok_or_else(|| anyhow!("operator {k} does not exist"))?;
        fb(op, || format!("operator {k}"))
    }

    /// The code of operator `k`: TFLite's `GetBuiltinCode` (the larger of `builtin_code` and
    /// the deprecated 8-bit field), or the custom code.
    pub fn op_code(&self, k: usize, op: &tflite::OperatorRef<'a>) -> Result<OpCode> {
        let what = || format!("operator {k} code");
        let i = fb(op.opcode_index(), what)?;
        let code = self
            .codes
            .get(i as usize)
            .ok_or_else(|| anyhow!("operator {k}: operator code {i} does not exist"))?;
        let code = fb(code, what)?;
        let deprecated = fb(code.deprecated_builtin_code(), what)?;
        let builtin = code.builtin_code().map_err(|e| {
            anyhow!("operator {k} has a builtin code this schema does not know ({e})")
        })?;
        let builtin = if i32::from(deprecated) > builtin as i32 {
            BuiltinOperator::try_from(i32::from(deprecated))
                .map_err(|_| anyhow!("operator {k}: unknown builtin code {deprecated}"))?
        } else {
            builtin
        };
        if builtin == BuiltinOperator::Custom {
            let name = fb(code.custom_code(), what)?.unwrap_or("");
            return Ok(OpCode::Custom(name.to_string()));
        }
        Ok(OpCode::Builtin(builtin))
    }

    /// Tensor `index` of the subgraph, with its buffer's bytes.
    pub fn tensor(&self, index: usize) -> Result<TensorMeta<'a>> {
        let t = self
            .tensors
            .get(index)
            .ok_or_else(|| anyhow!("tensor {index} does not exist"))?;
        let what = || format!("tensor {index}");
        let t = fb(t, what)?;
        let name = fb(t.name(), what)?.unwrap_or("");
        let dims = fb(t.shape(), what)?;
        let shape = match dims {
            None => Vec::new(),
            Some(v) if v.len() > MAX_TFLITE_RANK => {
                bail!(
                    "tensor {index} '{name}' has rank {} (at most {MAX_TFLITE_RANK})",
                    v.len()
                )
            }
            Some(v) => v
                .iter()
                .map(|d| {
                    usize::try_from(d)
                        .map_err(|_| anyhow!("tensor {index} '{name}' has a dim of {d}"))
                })
                .collect::<Result<_>>()?,
        };
        let ty = fb(t.type_(), what)?;
        let b = fb(t.buffer(), what)? as usize;
        let buffer = self.buffers.get(b).ok_or_else(|| {
            anyhow!(
                "tensor {index} '{name}' refers to buffer {b}, which does not exist ({} buffers)",
                self.buffers.len()
            )
        })?;
        let buffer = fb(buffer, || format!("buffer {b}"))?;
        if fb(buffer.offset(), || format!("buffer {b}"))? > 1 {
            bail!(
                "tensor {index} '{name}': buffer {b} is stored outside the flatbuffer (offset/size, \
                 the >2 GB model layout), which is not supported"
            );
        }
        let data = fb(buffer.data(), || format!("buffer {b}"))?.filter(|d| !d.is_empty());
        Ok(TensorMeta {
            index,
            name,
            shape,
            ty,
            data,
            quant: fb(t.quantization(), what)?,
        })
    }
}

/// TFLite's name of a builtin operator (`FULLY_CONNECTED`, `DEPTHWISE_CONV_2D`, `LSTM`), from
/// the schema's Rust variant name: an underscore before each capital that follows a lowercase
/// letter or a digit, and before a digit followed by `d` (`Conv2d` → `CONV_2D`).
pub(super) fn builtin_name(op: BuiltinOperator) -> String {
    let camel = format!("{op:?}");
    let chars: Vec<char> = camel.chars().collect();
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
        let next = chars.get(i + 1).copied();
        let split = match prev {
            None => false,
            Some(p) if c.is_ascii_uppercase() => p.is_ascii_lowercase() || p.is_ascii_digit(),
            Some(p) if c.is_ascii_digit() => !p.is_ascii_digit() && next == Some('d'),
            Some(_) => false,
        };
        if split {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

impl OpCode {
    /// `CONV_2D`, or `custom 'MyOp'`.
    pub fn name(&self) -> String {
        match self {
            OpCode::Builtin(b) => builtin_name(*b),
            OpCode::Custom(c) => format!("custom '{c}'"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_are_tflites() {
        for (op, name) in [
            (BuiltinOperator::Conv2d, "CONV_2D"),
            (BuiltinOperator::DepthwiseConv2d, "DEPTHWISE_CONV_2D"),
            (BuiltinOperator::FullyConnected, "FULLY_CONNECTED"),
            (BuiltinOperator::AveragePool2d, "AVERAGE_POOL_2D"),
            (BuiltinOperator::Lstm, "LSTM"),
            (BuiltinOperator::Relu6, "RELU6"),
            (BuiltinOperator::L2Normalization, "L2_NORMALIZATION"),
            (BuiltinOperator::Mean, "MEAN"),
        ] {
            assert_eq!(builtin_name(op), name);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(TflModel::open(b"").is_err());
        assert!(TflModel::open(b"\x08\0\0\0TFL3\0\0").is_err());
        let e = TflModel::open(b"12345678").err().unwrap().to_string();
        assert!(e.contains("TFL3"), "{e}");
    }
}
