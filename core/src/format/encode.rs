//! Encoding: writes a complete model file (header, CRC, postcard body) into a caller's buffer,
//! every large tensor payload on a 32-byte multiple of the file (`super::align`).

use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Serialize, Serializer};

use super::align::Writer;
use super::graph::{ModelInfo, Node, Op, TensorDesc};
use super::{CRC32, FORMAT_VERSION, HEADER_LEN, MAGIC};
use crate::error::{Error, Result};

/// What an encoder needs: the model info, the tensor table (index = tensor id) and the ops in
/// execution order, all borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Graph<'x, 'a> {
    /// Model info.
    pub info: ModelInfo<'a>,
    /// Tensor table.
    pub tensors: &'x [TensorDesc<'a>],
    /// Ops in execution order.
    pub nodes: &'x [Node<'a>],
}

struct Seq<'x, T>(&'x [T]);

impl<T: Serialize> Serialize for Seq<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(v)?;
        }
        seq.end()
    }
}

impl Serialize for Graph<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&self.info)?;
        t.serialize_element(&Seq(self.tensors))?;
        t.serialize_element(&Seq(self.nodes))?;
        t.end()
    }
}

impl Serialize for Node<'_> {
    /// `varint(tag) · inputs · varint(output) · params`.
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(4)?;
        t.serialize_element(&self.op.kind().tag())?;
        t.serialize_element(&self.inputs)?;
        t.serialize_element(&self.output)?;
        match &self.op {
            Op::Linear(p) => t.serialize_element(p)?,
            Op::Conv2d(p) => t.serialize_element(p)?,
            Op::DepthwiseConv2d(p) => t.serialize_element(p)?,
            Op::Add(p) => t.serialize_element(p)?,
            Op::MaxPool2d(p) | Op::AvgPool2d(p) => t.serialize_element(p)?,
            Op::Softmax(p) => t.serialize_element(p)?,
            Op::Activation(p) => t.serialize_element(p)?,
            Op::LayerNorm(p) => t.serialize_element(p)?,
            Op::BatchMatMul(p) => t.serialize_element(p)?,
            Op::Transpose(p) => t.serialize_element(p)?,
            Op::Concat(p) => t.serialize_element(p)?,
            Op::MeanAxis(p) => t.serialize_element(p)?,
            Op::Slice(p) => t.serialize_element(p)?,
            Op::Mean | Op::Reshape | Op::Gelu | Op::Lut | Op::Quantize | Op::Dequantize => {}
        }
        t.end()
    }
}

/// Exact length in bytes of the file [`encode`] writes for this graph.
pub fn encoded_len(graph: &Graph<'_, '_>) -> Result<usize> {
    let body = postcard::serialize_with_flavor(graph, Writer::counting(HEADER_LEN))
        .map_err(|_| Error::EncodeTooLarge)?;
    HEADER_LEN.checked_add(body).ok_or(Error::EncodeTooLarge)
}

/// Writes the complete model file (header, CRC-32, body) into `out` and returns its length.
///
/// Needs no allocation: size `out` with [`encoded_len`]. The result is decoded and validated with
/// [`crate::Model::from_bytes`] before returning, so a model that encodes is a model that loads;
/// any validation error is returned as is (e.g. [`Error::ShapeMismatch`]).
pub fn encode(graph: &Graph<'_, '_>, out: &mut [u8]) -> Result<usize> {
    if graph.tensors.len() > usize::from(u16::MAX) || graph.nodes.len() > usize::from(u16::MAX) {
        return Err(Error::EncodeTooLarge);
    }
    let (header, body_buf) = out
        .split_at_mut_checked(HEADER_LEN)
        .ok_or(Error::EncodeBufferTooSmall)?;
    let body_len = postcard::serialize_with_flavor(graph, Writer::new(body_buf, HEADER_LEN))
        .map_err(|_| Error::EncodeBufferTooSmall)?;
    let body = body_buf
        .get(..body_len)
        .ok_or(Error::EncodeBufferTooSmall)?;
    let body_len_u32 = u32::try_from(body_len).map_err(|_| Error::EncodeTooLarge)?;
    let crc = CRC32.checksum(body);
    header[0..4].copy_from_slice(&MAGIC);
    header[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[6..8].copy_from_slice(&0u16.to_le_bytes());
    header[8..12].copy_from_slice(&body_len_u32.to_le_bytes());
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    let total = HEADER_LEN + body_len;
    let file = out.get(..total).ok_or(Error::EncodeBufferTooSmall)?;
    crate::Model::from_bytes(file)?;
    Ok(total)
}
