//! Borrowed tensor data, shapes and quantization parameters.
//!
//! Tensors stored in a model file are borrowed byte slices (the file may live in flash). The
//! encoder aligns large payloads to 32 bytes of the file (`crate::format::align`), but nothing
//! relies on it, so the bytes are never cast: every element is read with `from_le_bytes`, and the
//! kernels take any address. The views below wrap the bytes and expose element access; on the
//! wire each is a pad byte string (zeros) then the payload byte string.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A byte string (postcard: `varint(len) · bytes`).
struct ByteString<'a>(&'a [u8]);

impl Serialize for ByteString<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// A tensor payload on the wire (format v3): the pad mark (`crate::format::align`: the encoder
/// replaces it by the pad that aligns the payload), then the payload.
fn serialize_padded<S: Serializer>(bytes: &[u8], s: S) -> core::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeTuple;
    let k = crate::format::align::varint_len(bytes.len());
    let mark = crate::format::align::PAD_MARK.get(..k).unwrap_or(&[]);
    let mut t = s.serialize_tuple(2)?;
    t.serialize_element(&ByteString(mark))?;
    t.serialize_element(&ByteString(bytes))?;
    t.end()
}

/// Reads `pad · payload` and checks the pad: at most `MAX_PAD` bytes, all zero (so that every
/// byte of a file is either checked or covered by the CRC, and a pad cannot hide data).
fn deserialize_padded<'de, D: Deserializer<'de>>(
    d: D,
) -> core::result::Result<&'de [u8], D::Error> {
    let (pad, bytes) = <(&'de [u8], &'de [u8])>::deserialize(d)?;
    if pad.len() > crate::format::align::MAX_PAD || pad.iter().any(|&b| b != 0) {
        return Err(serde::de::Error::custom(
            "tensor pad: more than 63 bytes or not zero",
        ));
    }
    Ok(bytes)
}

macro_rules! byte_view {
    ($(#[$doc:meta])* $name:ident, $elem:ty, $size:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name<'a> {
            bytes: &'a [u8],
        }

        impl<'a> $name<'a> {
            /// Bytes per element.
            pub const ELEMENT_SIZE: usize = $size;

            /// Wraps little-endian element bytes (as stored in a model file).
            pub const fn from_le_bytes(bytes: &'a [u8]) -> Self {
                Self { bytes }
            }

            /// The raw little-endian bytes.
            pub const fn as_bytes(&self) -> &'a [u8] {
                self.bytes
            }

            /// Number of whole elements.
            pub const fn len(&self) -> usize {
                self.bytes.len() / $size
            }

            /// True when there are no elements.
            pub const fn is_empty(&self) -> bool {
                self.bytes.len() < $size
            }

            /// True when the byte length is a whole number of elements.
            #[allow(clippy::modulo_one)]
            pub const fn is_whole(&self) -> bool {
                self.bytes.len() % $size == 0
            }

            /// Element `i`, or `None` past the end.
            #[inline]
            pub fn get(&self, i: usize) -> Option<$elem> {
                let start = i.checked_mul($size)?;
                let b = self.bytes.get(start..start.checked_add($size)?)?;
                let mut a = [0u8; $size];
                a.copy_from_slice(b);
                Some(<$elem>::from_le_bytes(a))
            }

            /// Iterates over the elements in order.
            #[inline]
            pub fn iter(&self) -> impl ExactSizeIterator<Item = $elem> + Clone + 'a {
                self.bytes.chunks_exact($size).map(|b| {
                    let mut a = [0u8; $size];
                    a.copy_from_slice(b);
                    <$elem>::from_le_bytes(a)
                })
            }

            /// Elements `start..start + len` as a sub-view, or `None` if out of range.
            #[inline]
            pub fn slice(&self, start: usize, len: usize) -> Option<Self> {
                let s = start.checked_mul($size)?;
                let e = s.checked_add(len.checked_mul($size)?)?;
                Some(Self { bytes: self.bytes.get(s..e)? })
            }

            /// Writes `values` as little-endian bytes into `out` (which must hold exactly
            /// `values.len() * ELEMENT_SIZE` bytes) and returns the view over `out`.
            /// Used by exporters to build a model in memory.
            pub fn encode_into(values: &[$elem], out: &'a mut [u8]) -> Option<Self> {
                if out.len() != values.len().checked_mul($size)? {
                    return None;
                }
                for (chunk, v) in out.chunks_exact_mut($size).zip(values) {
                    chunk.copy_from_slice(&v.to_le_bytes());
                }
                Some(Self { bytes: out })
            }
        }

        impl Serialize for $name<'_> {
            /// `pad · payload`, two byte strings (`crate::format::align`).
            fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
                serialize_padded(self.bytes, s)
            }
        }

        impl<'de: 'a, 'a> Deserialize<'de> for $name<'a> {
            /// `pad · payload`; the pad must be at most `MAX_PAD` zero bytes.
            fn deserialize<D: Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
                Ok(Self {
                    bytes: deserialize_padded(d)?,
                })
            }
        }
    };
}

byte_view!(
    /// A borrowed run of little-endian `f32` values.
    F32Data,
    f32,
    4
);
byte_view!(
    /// A borrowed run of little-endian `i32` values (int8 biases, requantization multipliers).
    I32Data,
    i32,
    4
);
byte_view!(
    /// A borrowed run of `i8` values (int8 weights, requantization shifts), one byte each.
    I8Data,
    i8,
    1
);

/// Numeric precision of a model (and of the tensors flowing through it).
///
/// Wire: postcard enum tag (varint): `0` = F32, `1` = Int8. Never reorder the variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Precision {
    /// 32-bit IEEE float activations and weights.
    F32,
    /// int8 activations (asymmetric, per tensor) and weights (symmetric, per output channel).
    Int8,
}

/// Fused activation of a Linear or Conv2d layer.
///
/// Wire: postcard enum tag (varint): `0` = None, `1` = Relu, `2` = Relu6. Never reorder the
/// variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Activation {
    /// Identity.
    None,
    /// `max(x, 0)`; for int8 the output clamp becomes `[max(-128, zp_out), 127]`.
    Relu,
    /// `min(max(x, 0), 6)`; int8 clamp `[max(-128, zp), min(127, zp + round(6 / scale))]`.
    Relu6,
}

/// Affine quantization of an int8 tensor: `real = scale · (q − zero_point)`.
///
/// Wire: `scale` as 4 little-endian bytes (postcard f32), then `zero_point` as one byte (postcard i8).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QuantParams {
    /// Real value of one quantization step; finite and > 0.
    pub scale: f32,
    /// The int8 value that represents real 0.
    pub zero_point: i8,
}

impl QuantParams {
    /// True when `scale` is finite and positive.
    pub fn is_valid(&self) -> bool {
        self.scale.is_finite() && self.scale > 0.0
    }
}

/// Most dims a tensor may have.
pub const MAX_RANK: usize = 4;

/// Shape of a tensor (batch size 1): rank 1..=[`MAX_RANK`], every dim in `1..=u32::MAX` (and the element count must fit `usize`), row-major.
/// Convolutions read rank-3 tensors as `[C][H][W]`; Linear works on the last dim.
///
/// Wire: a postcard sequence of u32 varints (`rank`, then the dims).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    dims: [u32; MAX_RANK],
    rank: u8,
}

impl Shape {
    /// A shape with these dims, or `None` for rank 0, rank > 4, or a dim of 0 or > `u32::MAX`.
    pub fn new(dims: &[usize]) -> Option<Self> {
        if dims.is_empty() || dims.len() > MAX_RANK {
            return None;
        }
        let mut out = [0u32; MAX_RANK];
        for (o, &d) in out.iter_mut().zip(dims) {
            *o = u32::try_from(d).ok().filter(|&d| d > 0)?;
        }
        Some(Self {
            dims: out,
            rank: dims.len() as u8,
        })
    }

    /// `[c, h, w]`.
    pub fn chw(c: usize, h: usize, w: usize) -> Option<Self> {
        Self::new(&[c, h, w])
    }

    /// Number of dims.
    pub fn rank(&self) -> usize {
        usize::from(self.rank)
    }

    /// The dims.
    pub fn dims(&self) -> &[u32] {
        self.dims.get(..self.rank()).unwrap_or(&[])
    }

    /// Dim `i`, or `None` past the rank.
    pub fn dim(&self, i: usize) -> Option<usize> {
        self.dims().get(i).map(|&d| d as usize)
    }

    /// The last dim (features of a Linear, classes of a Softmax).
    pub fn last(&self) -> usize {
        self.dims().last().map_or(0, |&d| d as usize)
    }

    /// Product of all dims but the last (1 for rank 1).
    pub fn rows(&self) -> usize {
        let d = self.dims();
        d.get(..d.len().saturating_sub(1))
            .unwrap_or(&[])
            .iter()
            .map(|&v| v as usize)
            .product()
    }

    /// `(c, h, w)` for a rank-3 shape.
    pub fn as_chw(&self) -> Option<(usize, usize, usize)> {
        match *self.dims() {
            [c, h, w] => Some((c as usize, h as usize, w as usize)),
            _ => None,
        }
    }

    /// Number of elements, or `None` if it does not fit `usize`.
    pub fn numel(&self) -> Option<usize> {
        self.dims()
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
    }
}

impl core::fmt::Debug for Shape {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Shape({self})")
    }
}

impl core::fmt::Display for Shape {
    /// Dims joined by `×`, e.g. `16×32×32` or `10`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                f.write_str("×")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl Serialize for Shape {
    fn serialize<S: Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.dims())
    }
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        let dims = heapless::Vec::<u32, MAX_RANK>::deserialize(d)?;
        if dims.is_empty() || dims.contains(&0) {
            return Err(serde::de::Error::custom("shape"));
        }
        let mut out = [0u32; MAX_RANK];
        out[..dims.len()].copy_from_slice(&dims);
        Ok(Self {
            dims: out,
            rank: dims.len() as u8,
        })
    }
}

/// Element type of a tensor.
///
/// Wire: postcard enum tag (varint) `0` = F32, `1` = I8 followed by its [`QuantParams`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DType {
    /// f32 values.
    F32,
    /// int8 values with their quantization.
    I8(QuantParams),
}

impl DType {
    /// Bytes per element.
    pub const fn size(&self) -> usize {
        match self {
            DType::F32 => 4,
            DType::I8(_) => 1,
        }
    }
}

/// Shape and element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TensorInfo {
    /// Shape.
    pub shape: Shape,
    /// Element type (with quantization for int8).
    pub dtype: DType,
}

impl TensorInfo {
    /// Size in bytes, or `None` on overflow.
    pub fn bytes(&self) -> Option<usize> {
        self.shape.numel()?.checked_mul(self.dtype.size())
    }
}

/// A tensor computed by [`crate::Model::run`], borrowed from the arena.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorView<'r> {
    /// Its shape.
    pub shape: Shape,
    /// Its values.
    pub data: TensorData<'r>,
}

/// Values of a [`TensorView`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TensorData<'r> {
    /// f32 values.
    F32(&'r [f32]),
    /// int8 values; `real = quant.scale · (q − quant.zero_point)`.
    I8 {
        /// The quantized values.
        values: &'r [i8],
        /// Their quantization.
        quant: QuantParams,
    },
}

impl<'r> TensorView<'r> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self.data {
            TensorData::F32(v) => v.len(),
            TensorData::I8 { values, .. } => values.len(),
        }
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a real value (dequantized for int8), or `None` past the end.
    pub fn get_f32(&self, i: usize) -> Option<f32> {
        match self.data {
            TensorData::F32(v) => v.get(i).copied(),
            TensorData::I8 { values, quant } => {
                values.get(i).map(|&q| crate::quant::dequantize(q, quant))
            }
        }
    }

    /// Writes every element as a real value into `out[..len]` (dequantizing int8 values);
    /// returns the number written. `Err(KernelBadArguments)` if `out` is shorter than the tensor.
    pub fn dequantize_into(&self, out: &mut [f32]) -> crate::Result<usize> {
        let n = self.len();
        let out = out.get_mut(..n).ok_or(crate::Error::KernelBadArguments)?;
        match self.data {
            TensorData::F32(v) => out.copy_from_slice(v),
            TensorData::I8 { values, quant } => {
                for (o, &q) in out.iter_mut().zip(values) {
                    *o = crate::quant::dequantize(q, quant);
                }
            }
        }
        Ok(n)
    }

    /// Index of the largest element (the first one on ties; NaN never wins), `None` when empty.
    /// For int8 the comparison is on the quantized values, which orders like the real values.
    pub fn argmax(&self) -> Option<usize> {
        fn first_max<T: PartialOrd + Copy>(v: &[T]) -> Option<usize> {
            let mut best: Option<(usize, T)> = None;
            for (i, &x) in v.iter().enumerate() {
                match best {
                    None if x.partial_cmp(&x).is_some() => best = Some((i, x)),
                    Some((_, b)) if x > b => best = Some((i, x)),
                    _ => {}
                }
            }
            best.map(|(i, _)| i)
        }
        match self.data {
            TensorData::F32(v) => first_max(v),
            TensorData::I8 { values, .. } => first_max(values),
        }
    }
}

/// Decodes one tensor-table entry (the `TensorDesc` wire: `Shape`, `DType`, optional byte
/// string; `docs/model-format.md`) without serde, for the interpreter, which decodes the entry
/// of every tensor an op touches at every run: postcard's generic path cost ≈ 1 000 instructions
/// per entry on thumbv7em, this ≈ 50 (`docs/firmware.md`, "RAM"). Loading checks that it agrees
/// with postcard on every entry of the model (`ModelBadTensor` otherwise), so the two cannot
/// drift apart on a model that loads. `None` on anything malformed; never panics.
#[inline(always)]
pub(crate) fn decode_entry(b: &[u8]) -> Option<(Shape, DType, Option<&[u8]>)> {
    let mut at = 0usize;
    let rank = varint(b, &mut at)?;
    if rank == 0 || rank > MAX_RANK as u32 {
        return None;
    }
    let mut dims = [0u32; MAX_RANK];
    for d in dims.iter_mut().take(rank as usize) {
        *d = varint(b, &mut at)?;
        if *d == 0 {
            return None;
        }
    }
    let dtype = match varint(b, &mut at)? {
        0 => DType::F32,
        1 => {
            let q: [u8; 5] = b.get(at..at.checked_add(5)?)?.try_into().ok()?;
            at += 5;
            DType::I8(QuantParams {
                scale: f32::from_le_bytes([q[0], q[1], q[2], q[3]]),
                zero_point: q[4] as i8,
            })
        }
        _ => return None,
    };
    let data = match *b.get(at)? {
        0 => None,
        1 => {
            at += 1;
            let len = usize::try_from(varint(b, &mut at)?).ok()?;
            Some(b.get(at..at.checked_add(len)?)?)
        }
        _ => return None,
    };
    let shape = Shape {
        dims,
        rank: rank as u8,
    };
    Some((shape, dtype, data))
}

/// A postcard varint (LEB128, at most 5 bytes for a u32) at `*at`, advancing `*at`. Always
/// inlined, with a one-byte fast path (every rank, dtype tag and most dims): the firmware is
/// built for size (`opt-level = "s"`), which would otherwise keep it a call per field.
#[inline(always)]
fn varint(b: &[u8], at: &mut usize) -> Option<u32> {
    let first = *b.get(*at)?;
    if first & 0x80 == 0 {
        *at += 1;
        return Some(u32::from(first));
    }
    varint_long(b, at)
}

/// [`varint`] beyond one byte.
fn varint_long(b: &[u8], at: &mut usize) -> Option<u32> {
    let mut value = 0u32;
    for i in 0..5 {
        let byte = *b.get(*at)?;
        *at += 1;
        value |= u32::from(byte & 0x7f).checked_shl(7 * i)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}
