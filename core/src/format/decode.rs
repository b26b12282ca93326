//! Decoding: header checks, CRC, then zero-copy postcard decoding of the body.

use heapless::Vec;

use super::{CRC32, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_LAYERS};
use crate::error::{Error, Result};
use crate::layer::{Conv2dF32, Conv2dS8, Layer, LayerKind, LinearF32, LinearS8, MaxPool2d};
use crate::metadata::Metadata;

/// A decoded (not yet validated) model: metadata and layers borrowed from the file bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<'a> {
    /// Model metadata.
    pub metadata: Metadata<'a>,
    /// Layers in execution order.
    pub layers: Vec<Layer<'a>, MAX_LAYERS>,
}

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
    if u16_at(bytes, 4)? != FORMAT_VERSION {
        return Err(Error::DecodeUnsupportedVersion);
    }
    if u16_at(bytes, 6)? != 0 {
        return Err(Error::DecodeBadHeader);
    }
    let body_len = usize::try_from(u32_at(bytes, 8)?).map_err(|_| Error::DecodeLengthMismatch)?;
    HEADER_LEN
        .checked_add(body_len)
        .ok_or(Error::DecodeLengthMismatch)
}

/// Decodes a complete model file: checks the header (magic, version, reserved field, exact
/// length) and the body CRC, then decodes metadata and layers, borrowing every tensor from `bytes`.
/// Does not check that the layers fit together; [`crate::Model::from_bytes`] does that.
pub fn decode(bytes: &[u8]) -> Result<Decoded<'_>> {
    let body = Body::read(bytes)?;
    let mut layers = Vec::new();
    for layer in body.layers() {
        layers
            .push(layer?)
            .map_err(|_| Error::DecodeTooManyLayers)?;
    }
    Ok(Decoded {
        metadata: body.metadata,
        layers,
    })
}

/// A checked file whose metadata is decoded and whose layers are decoded on demand, so that the
/// engine never holds a second copy of the layer list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Body<'a> {
    pub metadata: Metadata<'a>,
    count: u16,
    layer_bytes: &'a [u8],
}

impl<'a> Body<'a> {
    /// Checks header and CRC, decodes the metadata and layer count, and decodes every layer once
    /// (discarding it) so that all decoding errors, including trailing bytes, are reported here,
    /// before any validation error.
    pub fn read(bytes: &'a [u8]) -> Result<Self> {
        let total = file_len(bytes)?;
        if total != bytes.len() {
            return Err(Error::DecodeLengthMismatch);
        }
        let body = bytes.get(HEADER_LEN..).ok_or(Error::DecodeUnexpectedEnd)?;
        if CRC32.checksum(body) != u32_at(bytes, 12)? {
            return Err(Error::DecodeBadCrc);
        }
        let (metadata, rest) = postcard::take_from_bytes::<Metadata<'_>>(body)?;
        let (count, layer_bytes) = postcard::take_from_bytes::<u32>(rest)?;
        if count as usize > MAX_LAYERS {
            return Err(Error::DecodeTooManyLayers);
        }
        let body = Body {
            metadata,
            count: count as u16, // ≤ MAX_LAYERS
            layer_bytes,
        };
        let mut rest = layer_bytes;
        for index in 0..body.count {
            rest = take_layer(rest, index)?.1;
        }
        if !rest.is_empty() {
            return Err(Error::DecodeTrailingBytes);
        }
        Ok(body)
    }

    /// Number of layers.
    pub fn layer_count(&self) -> usize {
        usize::from(self.count)
    }

    /// Decodes the layers in order (cheap: varints and borrowed slices, no tensor is read).
    pub fn layers(&self) -> impl Iterator<Item = Result<Layer<'a>>> + 'a {
        let mut rest = self.layer_bytes;
        (0..self.count).map(move |index| {
            let (layer, r) = take_layer(rest, index)?;
            rest = r;
            Ok(layer)
        })
    }
}

fn take_layer(bytes: &[u8], index: u16) -> Result<(Layer<'_>, &[u8])> {
    let (tag, rest) = postcard::take_from_bytes::<u32>(bytes)?;
    let kind = LayerKind::from_tag(tag).ok_or(Error::DecodeUnknownLayerKind { layer: index })?;
    Ok(match kind {
        LayerKind::LinearF32 => {
            let (l, r) = postcard::take_from_bytes::<LinearF32<'_>>(rest)?;
            (Layer::LinearF32(l), r)
        }
        LayerKind::LinearS8 => {
            let (l, r) = postcard::take_from_bytes::<LinearS8<'_>>(rest)?;
            (Layer::LinearS8(l), r)
        }
        LayerKind::Conv2dF32 => {
            let (l, r) = postcard::take_from_bytes::<Conv2dF32<'_>>(rest)?;
            (Layer::Conv2dF32(l), r)
        }
        LayerKind::Conv2dS8 => {
            let (l, r) = postcard::take_from_bytes::<Conv2dS8<'_>>(rest)?;
            (Layer::Conv2dS8(l), r)
        }
        LayerKind::MaxPool2d => {
            let (l, r) = postcard::take_from_bytes::<MaxPool2d>(rest)?;
            (Layer::MaxPool2d(l), r)
        }
        LayerKind::Relu => (Layer::Relu, rest),
        LayerKind::GlobalAvgPool => (Layer::GlobalAvgPool, rest),
        LayerKind::Flatten => (Layer::Flatten, rest),
    })
}
