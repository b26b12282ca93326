//! Aligned tensor payloads (format version 3, `docs/model-format.md` §2).
//!
//! Every tensor byte view ([`crate::F32Data`], [`crate::I32Data`], [`crate::I8Data`]) is written
//! as two postcard byte strings: a **pad** of `p` zero bytes, then the **payload**:
//!
//! ```text
//! varint(p) · p × 00 · varint(n) · n payload bytes          p ≤ MAX_PAD, every pad byte 0
//! ```
//!
//! The encoder ([`super::encode`]) chooses `p` so that the payload starts at a file offset that is
//! a multiple of [`align_for`]`(n)`: 32 bytes for payloads of 128 bytes or more (the host's 256-bit
//! loads then never split a cache line once the file itself sits on a 32-byte boundary), 4 for
//! the small ones (element alignment). Readers never rely on it: the decoder only checks that the
//! pad is short and zero, and the kernels still read any address (an encoder that does not align,
//! e.g. plain `postcard::to_slice` on a wire type, writes `p = varint_len(n)` and a valid file).
//!
//! How the encoder knows where it is: serde gives a `Serialize` impl no position, so a byte view
//! writes its pad as the byte string [`PAD_MARK`]`[..k]` (`k = varint_len(n)`, 1–5 zero bytes) and
//! the encoder's [`Writer`] flavor, which counts every byte it writes, recognizes that slice by its
//! address when postcard hands it over (right after its one-byte length `k`), and writes the real
//! `p` and `p` zero bytes in their place. The payload's length varint (`k` bytes) and bytes follow
//! as postcard writes them.

use postcard::ser_flavors::Flavor;

/// The largest pad a reader accepts. Encoders write at most `align_for(n) − 1` (31).
pub const MAX_PAD: usize = 63;

/// Zero bytes whose address marks a pad to [`Writer`]; `PAD_MARK[..k]` for a payload whose
/// length varint takes `k` bytes. A `static` (one address), never a `const`.
pub(crate) static PAD_MARK: [u8; 5] = [0; 5];

/// Bytes of postcard's varint for `n` (1 for `n < 128`, up to 5 for a `u32`, 10 for a `u64`).
pub(crate) const fn varint_len(n: usize) -> usize {
    let mut len = 1;
    let mut n = n >> 7;
    while n != 0 {
        len += 1;
        n >>= 7;
    }
    len
}

/// The file-offset alignment the encoder gives a payload of `n` bytes: 32 when `n ≥ 128`, else 4.
pub const fn align_for(n: usize) -> usize {
    if n >= 128 {
        32
    } else {
        4
    }
}

/// The alignment for a payload whose length varint takes `k` bytes: `k = 1` is `n < 128`.
const fn align_for_varint_len(k: usize) -> usize {
    if k == 1 {
        align_for(0)
    } else {
        align_for(128)
    }
}

/// The postcard flavor of the encoder: writes into `out` (or, without one, only counts, for
/// [`super::encoded_len`]) and replaces every [`PAD_MARK`] pad by the one that aligns the payload
/// after it. `base` is the file offset of the first byte written (the body starts after the
/// 16-byte header).
pub(crate) struct Writer<'b> {
    out: Option<&'b mut [u8]>,
    base: usize,
    pos: usize,
}

impl<'b> Writer<'b> {
    /// Writes into `out`, whose first byte is at file offset `base`.
    pub(crate) fn new(out: &'b mut [u8], base: usize) -> Self {
        Self {
            out: Some(out),
            base,
            pos: 0,
        }
    }

    /// Counts only.
    pub(crate) fn counting(base: usize) -> Writer<'static> {
        Writer {
            out: None,
            base,
            pos: 0,
        }
    }

    /// The pad that puts a payload at a multiple of its alignment, when its pad's one-byte length
    /// starts at `start` (relative to `base`) and its length varint takes `k` bytes.
    fn pad(&self, start: usize, k: usize) -> usize {
        let align = align_for_varint_len(k);
        let payload_at = self.base + start + 1 + k;
        (align - payload_at % align) % align
    }
}

impl Flavor for Writer<'_> {
    /// Bytes written.
    type Output = usize;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if let Some(out) = self.out.as_deref_mut() {
            *out.get_mut(self.pos)
                .ok_or(postcard::Error::SerializeBufferFull)? = byte;
        }
        self.pos = self
            .pos
            .checked_add(1)
            .ok_or(postcard::Error::SerializeBufferFull)?;
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let k = data.len();
        // A pad mark: postcard has just written its length `k` (one byte) at `pos − 1`.
        if core::ptr::eq(data.as_ptr(), PAD_MARK.as_ptr()) && (1..=PAD_MARK.len()).contains(&k) {
            let start = self
                .pos
                .checked_sub(1)
                .ok_or(postcard::Error::SerializeBufferFull)?;
            let p = self.pad(start, k);
            self.pos = start;
            // p ≤ 31 < 128: a one-byte varint.
            self.try_push(p as u8)?;
            for _ in 0..p {
                self.try_push(0)?;
            }
            return Ok(());
        }
        for &b in data {
            self.try_push(b)?;
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_len_matches_postcard() {
        for n in [
            0usize,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            u32::MAX as usize,
        ] {
            let mut buf = [0u8; 10];
            let used = postcard::to_slice(&(n as u32), &mut buf).unwrap().len();
            assert_eq!(varint_len(n), used, "{n}");
        }
    }

    #[test]
    fn pads_align_every_payload_size_at_every_offset() {
        for base in [0usize, 16, 17] {
            for lead in 0..40usize {
                for n in [0usize, 1, 4, 127, 128, 200, 16_384, 70_000] {
                    let payload = [7u8; 70_000];
                    let view = crate::I8Data::from_le_bytes(&payload[..n]);
                    let mut out = [0u8; 80_000];
                    let mut w = Writer::new(&mut out, base);
                    for _ in 0..lead {
                        w.try_push(9).unwrap();
                    }
                    let mut ser = postcard::Serializer { output: w };
                    serde::Serialize::serialize(&view, &mut ser).unwrap();
                    let len = ser.output.finalize().unwrap();
                    // The payload ends the output; it starts aligned.
                    let at = len - n;
                    assert_eq!(
                        (base + at) % align_for(n),
                        0,
                        "base {base} lead {lead} n {n}"
                    );
                    assert_eq!(&out[at..len], &payload[..n]);
                    // The counting writer agrees.
                    let mut c = Writer::counting(base);
                    for _ in 0..lead {
                        c.try_push(9).unwrap();
                    }
                    let mut ser = postcard::Serializer { output: c };
                    serde::Serialize::serialize(&view, &mut ser).unwrap();
                    assert_eq!(ser.output.finalize().unwrap(), len);
                    // And the reader reads it back.
                    let (back, rest) =
                        postcard::take_from_bytes::<crate::I8Data<'_>>(&out[lead..len]).unwrap();
                    assert_eq!(back.as_bytes(), &payload[..n]);
                    assert!(rest.is_empty());
                }
            }
        }
    }
}
