//! Encoding: writes a complete model file (header, CRC, postcard body) into a caller's buffer.

use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Serialize, Serializer};

use super::{CRC32, FORMAT_VERSION, HEADER_LEN, MAGIC};
use crate::error::{Error, Result};
use crate::layer::Layer;
use crate::metadata::Metadata;

/// The body as postcard sees it: metadata, then the layers as a sequence of (tag, fields).
struct Body<'x, 'a> {
    metadata: &'x Metadata<'a>,
    layers: &'x [Layer<'a>],
}

struct LayerSeq<'x, 'a>(&'x [Layer<'a>]);

impl Serialize for Body<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(self.metadata)?;
        t.serialize_element(&LayerSeq(self.layers))?;
        t.end()
    }
}

impl Serialize for LayerSeq<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for layer in self.0 {
            seq.serialize_element(layer)?;
        }
        seq.end()
    }
}

impl Serialize for Layer<'_> {
    /// A postcard enum: varint(tag) then the fields (nothing for field-less kinds).
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        let kind = self.kind();
        let (tag, name) = (kind.tag(), kind.name());
        match self {
            Layer::LinearF32(l) => s.serialize_newtype_variant("Layer", tag, name, l),
            Layer::LinearS8(l) => s.serialize_newtype_variant("Layer", tag, name, l),
            Layer::Conv2dF32(l) => s.serialize_newtype_variant("Layer", tag, name, l),
            Layer::Conv2dS8(l) => s.serialize_newtype_variant("Layer", tag, name, l),
            Layer::MaxPool2d(l) => s.serialize_newtype_variant("Layer", tag, name, l),
            Layer::Relu | Layer::GlobalAvgPool | Layer::Flatten => {
                s.serialize_unit_variant("Layer", tag, name)
            }
        }
    }
}

/// Exact length in bytes of the file [`encode`] writes for this model.
pub fn encoded_len(metadata: &Metadata<'_>, layers: &[Layer<'_>]) -> Result<usize> {
    let body = postcard::serialize_with_flavor(
        &Body { metadata, layers },
        postcard::ser_flavors::Size::default(),
    )
    .map_err(|_| Error::EncodeTooLarge)?;
    HEADER_LEN.checked_add(body).ok_or(Error::EncodeTooLarge)
}

/// Writes the complete model file (header, CRC-32, body) into `out` and returns its length.
///
/// Needs no allocation: size `out` with [`encoded_len`]. The result is decoded and validated with
/// [`crate::Model::from_bytes`] before returning, so a model that encodes is a model that loads;
/// any validation error is returned as is (e.g. [`Error::ShapeMismatch`]).
pub fn encode(metadata: &Metadata<'_>, layers: &[Layer<'_>], out: &mut [u8]) -> Result<usize> {
    let (header, body_buf) = out
        .split_at_mut_checked(HEADER_LEN)
        .ok_or(Error::EncodeBufferTooSmall)?;
    let body_len = postcard::to_slice(&Body { metadata, layers }, body_buf)
        .map_err(|_| Error::EncodeBufferTooSmall)?
        .len();
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
