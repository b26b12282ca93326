//! A TFLite model under construction: tensors, their buffers, operators and operator codes, then
//! one flatbuffer (schema v3, identifier `TFL3`) written by planus from the owned types of
//! `denoiserep-tflite-schema`.
//!
//! Buffer 0 is the empty buffer every non-constant tensor points to (TFLite's convention); each
//! constant gets its own buffer. Operator codes are deduplicated by `(builtin, version)` and
//! carry both `builtin_code` and `deprecated_builtin_code` (`min(code, 127)`: the pre-2.3 field,
//! 127 = "see `builtin_code`").

use anyhow::{anyhow, Result};
use denoiserep_tflite_schema::planus::ReadAsRoot;
use denoiserep_tflite_schema::tflite::{
    Buffer, BuiltinOperator, BuiltinOptions, Metadata, Model, ModelRef, Operator, OperatorCode,
    QuantizationParameters, SubGraph, Tensor, TensorType,
};
use denoiserep_tflite_schema::{finish_model, FILE_IDENTIFIER, SCHEMA_VERSION};

/// The subgraph being built.
#[derive(Default)]
pub struct Graph {
    tensors: Vec<Tensor>,
    /// Buffer `k + 1`'s bytes (buffer 0 is the empty one).
    buffers: Vec<Vec<u8>>,
    operators: Vec<Operator>,
    codes: Vec<(BuiltinOperator, i32)>,
}

/// The pre-2.3 `deprecated_builtin_code` of `op`: its code when below 127, else 127
/// (`PLACEHOLDER_FOR_GREATER_OP_CODES`).
pub fn deprecated_code(op: BuiltinOperator) -> i8 {
    i8::try_from(op as i32).unwrap_or(127)
}

impl Graph {
    /// Adds a tensor; `data` (a constant's little-endian bytes) gets a buffer of its own.
    pub fn tensor(
        &mut self,
        name: String,
        shape: Vec<i32>,
        type_: TensorType,
        quantization: Option<QuantizationParameters>,
        data: Option<Vec<u8>>,
    ) -> Result<i32> {
        let buffer = match data {
            Some(bytes) => {
                self.buffers.push(bytes);
                u32::try_from(self.buffers.len())?
            }
            None => 0,
        };
        self.tensors.push(Tensor {
            shape: Some(shape),
            type_,
            buffer,
            name: Some(name),
            quantization: quantization.map(Box::new),
            ..Default::default()
        });
        i32::try_from(self.tensors.len() - 1).map_err(|_| anyhow!("more than 2³¹ tensors"))
    }

    /// The shape of tensor `t` (empty for an unknown index).
    pub fn shape(&self, t: i32) -> Vec<i32> {
        usize::try_from(t)
            .ok()
            .and_then(|i| self.tensors.get(i))
            .and_then(|t| t.shape.clone())
            .unwrap_or_default()
    }

    /// Adds an operator (its code is added once per `(op, version)`).
    pub fn op(
        &mut self,
        op: BuiltinOperator,
        version: i32,
        inputs: Vec<i32>,
        outputs: Vec<i32>,
        options: Option<BuiltinOptions>,
    ) -> Result<()> {
        let index = match self.codes.iter().position(|&c| c == (op, version)) {
            Some(i) => i,
            None => {
                self.codes.push((op, version));
                self.codes.len() - 1
            }
        };
        self.operators.push(Operator {
            opcode_index: u32::try_from(index)?,
            inputs: Some(inputs),
            outputs: Some(outputs),
            builtin_options: options,
            ..Default::default()
        });
        Ok(())
    }

    /// The flatbuffer: one subgraph with `inputs` and `outputs`, `description`, and
    /// `metadata` entries `(name, bytes)` (each in a buffer of its own).
    pub fn finish(
        mut self,
        inputs: Vec<i32>,
        outputs: Vec<i32>,
        description: String,
        metadata: Vec<(String, Vec<u8>)>,
    ) -> Result<Vec<u8>> {
        let mut entries = Vec::with_capacity(metadata.len());
        for (name, bytes) in metadata {
            self.buffers.push(bytes);
            entries.push(Metadata {
                name: Some(name),
                buffer: u32::try_from(self.buffers.len())?,
            });
        }
        let buffers = std::iter::once(Buffer::default())
            .chain(self.buffers.into_iter().map(|data| Buffer {
                data: Some(data),
                ..Default::default()
            }))
            .collect();
        let model = Model {
            version: SCHEMA_VERSION,
            operator_codes: Some(
                self.codes
                    .iter()
                    .map(|&(op, version)| OperatorCode {
                        deprecated_builtin_code: deprecated_code(op),
                        version,
                        builtin_code: op,
                        ..Default::default()
                    })
                    .collect(),
            ),
            subgraphs: Some(vec![SubGraph {
                tensors: Some(self.tensors),
                inputs: Some(inputs),
                outputs: Some(outputs),
                operators: Some(self.operators),
                name: Some("main".into()),
                ..Default::default()
            }]),
            description: Some(description),
            buffers: Some(buffers),
            metadata: Some(entries),
            ..Default::default()
        };
        let bytes = finish_model(&model);
        if bytes.get(4..8) != Some(FILE_IDENTIFIER.as_slice()) {
            return Err(anyhow!(
                "the TFLite flatbuffer has no TFL3 identifier (a bug)"
            ));
        }
        // The file must read back with the verifying reader.
        ModelRef::read_as_root(&bytes)
            .and_then(|m| m.subgraphs().map(|_| ()))
            .map_err(|e| anyhow!("the TFLite flatbuffer does not read back (a bug): {e}"))?;
        // Flatbuffers address everything with 32-bit offsets.
        if bytes.len() > i32::MAX as usize {
            return Err(anyhow!(
                "the TFLite file would be {} bytes, beyond the flatbuffer limit of 2 GiB",
                bytes.len()
            ));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denoiserep_tflite_schema::planus::ReadAsRoot;
    use denoiserep_tflite_schema::tflite::ModelRef;

    #[test]
    fn deprecated_codes_stop_at_127() {
        assert_eq!(deprecated_code(BuiltinOperator::Conv2d), 3);
        assert_eq!(deprecated_code(BuiltinOperator::Mean), 40);
        assert_eq!(deprecated_code(BuiltinOperator::Gelu), 127);
    }

    /// A two-op graph read back with the verifying reader: identifier, version, buffer 0 empty,
    /// codes deduplicated, constants in their own buffers, metadata kept.
    #[test]
    fn the_flatbuffer_reads_back() {
        let mut g = Graph::default();
        let x = g
            .tensor("x".into(), vec![1, 2], TensorType::Float32, None, None)
            .unwrap();
        let y = g
            .tensor("y".into(), vec![1, 2], TensorType::Float32, None, None)
            .unwrap();
        let c = g
            .tensor(
                "c".into(),
                vec![2],
                TensorType::Int32,
                None,
                Some(vec![1, 0, 0, 0, 2, 0, 0, 0]),
            )
            .unwrap();
        g.op(BuiltinOperator::Relu, 1, vec![x], vec![y], None)
            .unwrap();
        g.op(BuiltinOperator::Relu, 1, vec![y], vec![y], None)
            .unwrap();
        g.op(BuiltinOperator::Reshape, 1, vec![y, c], vec![x], None)
            .unwrap();
        let bytes = g
            .finish(
                vec![x],
                vec![y],
                "test".into(),
                vec![("meta".into(), b"{}".to_vec())],
            )
            .unwrap();
        assert_eq!(&bytes[4..8], FILE_IDENTIFIER);
        // The root offset first, pointing inside the buffer.
        let root = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        assert!(root >= 8 && root < bytes.len(), "{root}");
        let m = ModelRef::read_as_root(&bytes).unwrap();
        assert_eq!(m.version().unwrap(), 3);
        assert_eq!(m.description().unwrap(), Some("test"));
        let codes = m.operator_codes().unwrap().unwrap();
        assert_eq!(codes.len(), 2);
        let relu = codes.get(0).unwrap().unwrap();
        assert_eq!(relu.builtin_code().unwrap(), BuiltinOperator::Relu);
        assert_eq!(relu.deprecated_builtin_code().unwrap(), 19);
        let buffers = m.buffers().unwrap().unwrap();
        assert_eq!(buffers.len(), 3);
        assert!(buffers.get(0).unwrap().unwrap().data().unwrap().is_none());
        let sg = m.subgraphs().unwrap().unwrap().get(0).unwrap().unwrap();
        let t = sg.tensors().unwrap().unwrap().get(2).unwrap().unwrap();
        assert_eq!(t.buffer().unwrap(), 1);
        let data = buffers.get(1).unwrap().unwrap().data().unwrap().unwrap();
        assert_eq!(data, &[1, 0, 0, 0, 2, 0, 0, 0]);
        let meta = m.metadata().unwrap().unwrap().get(0).unwrap().unwrap();
        assert_eq!(meta.name().unwrap(), Some("meta"));
        assert_eq!(meta.buffer().unwrap(), 2);
    }
}
