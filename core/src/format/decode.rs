//! Decoding: header checks, CRC, then zero-copy postcard decoding of the body.

use super::graph::{
    Act, Add, BatchMatMul, Concat, Conv2d, DepthwiseConv2d, Inputs, LayerNorm, Linear, MeanAxis,
    ModelInfo, Node, Op, OpKind, Pool2d, Slice, Softmax, TensorDesc, Transpose, MAX_OP_INPUTS,
};
use super::{CRC32, FORMAT_VERSION, HEADER_LEN, MAGIC};
use crate::error::{Error, Result};

fn u16_at(b: &[u8], at: usize) -> Result<u16> {
    let s = b.get(at..at + 2).ok_or(Error::DecodeUnexpectedEnd)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    let s = b.get(at..at + 4).ok_or(Error::DecodeUnexpectedEnd)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads only the 16-byte header and returns the total file length it announces
/// (`16 + body length`). Firmware holding a model in a larger flash partition uses this to slice
/// exactly the file out of it. Checks magic, version and the reserved field.
pub fn file_len(bytes: &[u8]) -> Result<usize> {
    if bytes.len() < HEADER_LEN {
        return Err(Error::DecodeUnexpectedEnd);
    }
    if bytes.get(..4) != Some(&MAGIC[..]) {
        return Err(Error::DecodeBadMagic);
    }
    let found = u16_at(bytes, 4)?;
    if found != FORMAT_VERSION {
        return Err(Error::DecodeUnsupportedVersion { found });
    }
    if u16_at(bytes, 6)? != 0 {
        return Err(Error::DecodeBadHeader);
    }
    let body_len = usize::try_from(u32_at(bytes, 8)?).map_err(|_| Error::DecodeLengthMismatch)?;
    HEADER_LEN
        .checked_add(body_len)
        .ok_or(Error::DecodeLengthMismatch)
}

/// A checked file: header and CRC verified, the model info decoded, and every tensor and op
/// decoded once (so all decoding errors, trailing bytes included, come before any validation
/// error). Tensors and ops are decoded again on demand ([`Body::tensors`], [`Body::nodes`]):
/// nothing is copied, so holding a `Body` costs a few words whatever the model's size.
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    /// The model info.
    pub info: ModelInfo<'a>,
    tensor_count: u16,
    tensor_bytes: &'a [u8],
    op_count: u16,
    op_bytes: &'a [u8],
}

impl<'a> Body<'a> {
    /// Checks header, length and CRC, then decodes everything once (see the type docs).
    /// Never inlined: its decoding temporaries then stay out of the loader's frame, which is
    /// live while the model is validated and planned (`Model::from_bytes_in_place`).
    #[inline(never)]
    pub fn read(bytes: &'a [u8]) -> Result<Self> {
        let total = file_len(bytes)?;
        if total != bytes.len() {
            return Err(Error::DecodeLengthMismatch);
        }
        let body = bytes.get(HEADER_LEN..).ok_or(Error::DecodeUnexpectedEnd)?;
        if CRC32.checksum(body) != u32_at(bytes, 12)? {
            return Err(Error::DecodeBadCrc);
        }
        let (info, rest) = postcard::take_from_bytes::<ModelInfo<'_>>(body)?;
        let (tensor_count, tensor_bytes) = postcard::take_from_bytes::<u16>(rest)?;
        let mut rest = tensor_bytes;
        for _ in 0..tensor_count {
            rest = postcard::take_from_bytes::<TensorDesc<'_>>(rest)?.1;
        }
        let (op_count, op_bytes) = postcard::take_from_bytes::<u16>(rest)?;
        let mut rest = op_bytes;
        for index in 0..op_count {
            rest = take_node(rest, index)?.1;
        }
        if !rest.is_empty() {
            return Err(Error::DecodeTrailingBytes);
        }
        Ok(Body {
            info,
            tensor_count,
            tensor_bytes,
            op_count,
            op_bytes,
        })
    }

    /// Number of tensors in the tensor table.
    pub fn tensor_count(&self) -> usize {
        usize::from(self.tensor_count)
    }

    /// Number of ops.
    pub fn op_count(&self) -> usize {
        usize::from(self.op_count)
    }

    /// The tensor table in id order (cheap: varints and borrowed slices).
    pub fn tensors(&self) -> impl Iterator<Item = Result<TensorDesc<'a>>> + Clone + 'a {
        self.tensors_with_end().map(|t| t.map(|(desc, _)| desc))
    }

    /// [`Body::tensors`], each with the position in [`Body::tensor_table`] where its entry
    /// ends (a constant's bytes, the entry's last field, end there).
    pub(crate) fn tensors_with_end(
        &self,
    ) -> impl Iterator<Item = Result<(TensorDesc<'a>, usize)>> + Clone + 'a {
        let table = self.tensor_bytes;
        let mut rest = table;
        (0..self.tensor_count).map(move |_| {
            let (t, r) = postcard::take_from_bytes::<TensorDesc<'a>>(rest)?;
            rest = r;
            Ok((t, table.len().saturating_sub(r.len())))
        })
    }

    /// The bytes of the tensor table (every constant's bytes are a slice of them).
    pub(crate) fn tensor_table(&self) -> &'a [u8] {
        self.tensor_bytes
    }

    /// The ops in execution order (cheap: varints and borrowed slices, no tensor is read).
    pub fn nodes(&self) -> Nodes<'a> {
        Nodes {
            rest: self.op_bytes,
            index: 0,
            count: self.op_count,
        }
    }
}

/// Iterator over the ops of a [`Body`], decoding each on the fly.
#[derive(Debug, Clone)]
pub struct Nodes<'a> {
    rest: &'a [u8],
    index: u16,
    count: u16,
}

impl<'a> Iterator for Nodes<'a> {
    type Item = Result<Node<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            return None;
        }
        let r = take_node(self.rest, self.index);
        self.index += 1;
        Some(r.map(|(node, rest)| {
            self.rest = rest;
            node
        }))
    }
}

fn take<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<(T, &'a [u8])> {
    Ok(postcard::take_from_bytes::<T>(bytes)?)
}

fn take_node(bytes: &[u8], index: u16) -> Result<(Node<'_>, &[u8])> {
    let (tag, rest) = take::<u32>(bytes)?;
    let kind = OpKind::from_tag(tag).ok_or(Error::DecodeUnknownOpKind { op: index })?;
    let (n_inputs, mut rest) = take::<u32>(rest)?;
    if n_inputs as usize > MAX_OP_INPUTS {
        return Err(Error::DecodeTooManyInputs { op: index });
    }
    let mut ids = [0u16; MAX_OP_INPUTS];
    for id in ids.iter_mut().take(n_inputs as usize) {
        let (v, r) = take::<u16>(rest)?;
        *id = v;
        rest = r;
    }
    let inputs = Inputs::new(ids.get(..n_inputs as usize).unwrap_or(&[]))
        .ok_or(Error::DecodeTooManyInputs { op: index })?;
    let (output, rest) = take::<u16>(rest)?;
    let (op, rest) = match kind {
        OpKind::Linear => take::<Linear<'_>>(rest).map(|(p, r)| (Op::Linear(p), r))?,
        OpKind::Conv2d => take::<Conv2d<'_>>(rest).map(|(p, r)| (Op::Conv2d(p), r))?,
        OpKind::DepthwiseConv2d => {
            take::<DepthwiseConv2d<'_>>(rest).map(|(p, r)| (Op::DepthwiseConv2d(p), r))?
        }
        OpKind::Add => take::<Add>(rest).map(|(p, r)| (Op::Add(p), r))?,
        OpKind::MaxPool2d => take::<Pool2d>(rest).map(|(p, r)| (Op::MaxPool2d(p), r))?,
        OpKind::AvgPool2d => take::<Pool2d>(rest).map(|(p, r)| (Op::AvgPool2d(p), r))?,
        OpKind::Mean => (Op::Mean, rest),
        OpKind::Reshape => (Op::Reshape, rest),
        OpKind::Softmax => take::<Softmax>(rest).map(|(p, r)| (Op::Softmax(p), r))?,
        OpKind::Activation => take::<Act>(rest).map(|(p, r)| (Op::Activation(p), r))?,
        OpKind::LayerNorm => take::<LayerNorm>(rest).map(|(p, r)| (Op::LayerNorm(p), r))?,
        OpKind::Gelu => (Op::Gelu, rest),
        OpKind::Lut => (Op::Lut, rest),
        OpKind::BatchMatMul => take::<BatchMatMul>(rest).map(|(p, r)| (Op::BatchMatMul(p), r))?,
        OpKind::Transpose => take::<Transpose>(rest).map(|(p, r)| (Op::Transpose(p), r))?,
        OpKind::Quantize => (Op::Quantize, rest),
        OpKind::Dequantize => (Op::Dequantize, rest),
        OpKind::Concat => take::<Concat>(rest).map(|(p, r)| (Op::Concat(p), r))?,
        OpKind::MeanAxis => take::<MeanAxis>(rest).map(|(p, r)| (Op::MeanAxis(p), r))?,
        OpKind::Slice => take::<Slice>(rest).map(|(p, r)| (Op::Slice(p), r))?,
    };
    Ok((Node { op, inputs, output }, rest))
}
