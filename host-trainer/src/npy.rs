//! NumPy `.npy` arrays in and out (`denoiserep infer --inputs X.npy --outputs Y.npy`), with
//! `npyz` reading and writing the header.
//!
//! Read: dtype `<f4` (little-endian float32) or `|i1` (int8; `<i1`, `>i1` too: one byte has no
//! byte order), C order (a Fortran-order header is refused unless the array has at most one
//! dimension, where both orders are the same bytes), any shape; the data must be exactly
//! `∏ shape × itemsize` bytes after the header. Everything else is an error that says what is
//! wrong (the dtype found, the order, the bytes missing or left over and where); any byte string
//! gives `Ok` or `Err`, never a panic.
//!
//! Write: format version 1.0 (2.0 for a header over 64 KiB, as NumPy), C order, `<f4` or `|i1`.

use anyhow::{bail, Result};
use npyz::WriterBuilder;

/// The values of an array, in C order.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `<f4`.
    F32(Vec<f32>),
    /// `|i1`.
    I8(Vec<i8>),
}

impl NpyData {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::I8(v) => v.len(),
        }
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dtype as NumPy writes it: `<f4` or `|i1`.
    pub fn dtype(&self) -> &'static str {
        match self {
            NpyData::F32(_) => "<f4",
            NpyData::I8(_) => "|i1",
        }
    }
}

/// An array: its shape (outermost first) and values (`∏ shape` of them).
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

/// `[2, 3]` as NumPy prints a shape: `(2, 3)`, `(5,)`, `()`.
pub fn shape_text(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Checks the header before npyz's parser sees it, refusing what that parser mishandles:
///
/// - a header length past the end of the file (npyz allocates the length first: up to 4 GiB for
///   a version-2.0 file of a few bytes);
/// - anything but the flat dict NumPy writes for a plain dtype (`{'descr': '<f4',
///   'fortran_order': False, 'shape': (2, 3), }`): its Python-literal parser backtracks
///   exponentially on nested brackets (found by the `npy` fuzz target: a 150-byte header of
///   `{{{{…` took minutes). One `{ }` pair, at most one `( )` pair, no `[ ]`;
/// - a shape that is not decimal integers, or whose dimensions multiply past `u64` (zeros
///   counted as ones: npyz multiplies them in file order, `(0, 2³², 2³²)` included, and panics on
///   overflow in debug builds; found by the `npy` fuzz target).
///
/// Files too short to hold the 10- or 12-byte preamble are left to npyz's own errors.
fn check_header(bytes: &[u8]) -> Result<()> {
    let (len, start) = match (bytes.get(6), bytes.get(8..12)) {
        (Some(1), Some(b)) => (usize::from(u16::from_le_bytes([b[0], b[1]])), 10usize),
        (Some(2 | 3), Some(b)) => (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12),
        _ => return Ok(()),
    };
    if !bytes.starts_with(b"\x93NUMPY") {
        return Ok(());
    }
    let Some(header) = bytes.get(start..start.saturating_add(len)) else {
        bail!(
            "truncated: a header of {len} bytes is announced, the file has {} after the \
             {start}-byte preamble",
            bytes.len().saturating_sub(start)
        );
    };
    let count = |c: u8| header.iter().filter(|&&b| b == c).count();
    if count(b'{') != 1 || count(b'}') != 1 || count(b'(') > 1 || count(b')') > 1 || count(b'[') > 0
    {
        bail!(
            "not a .npy file of a plain array: its header is not a flat dict with a shape tuple \
             (structured dtypes are not read)"
        );
    }
    let open = header.iter().position(|&b| b == b'(');
    let close = header.iter().position(|&b| b == b')');
    let (Some(open), Some(close)) = (open, close) else {
        return Ok(());
    };
    let Some(tuple) = header.get(open + 1..close) else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(tuple);
    let mut product = 1u64;
    for dim in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !dim.bytes().all(|b| b.is_ascii_digit()) {
            bail!("shape ({text}): dimension '{dim}' is not a decimal integer");
        }
        let Some(p) = dim
            .parse::<u64>()
            .ok()
            .and_then(|d| product.checked_mul(d.max(1)))
        else {
            bail!("shape ({text}) is too large");
        };
        product = p;
    }
    Ok(())
}

/// Decodes a `.npy` file (module doc).
pub fn decode(bytes: &[u8]) -> Result<NpyArray> {
    check_header(bytes)?;
    let file = npyz::NpyFile::new(bytes).map_err(|e| anyhow::anyhow!("not a .npy file: {e}"))?;
    let header = file.header().clone();
    let shape = header
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| anyhow::anyhow!("a dimension of shape {:?} does not fit", header.shape()))?;
    let dtype = match header.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        other => bail!(
            "dtype {}: a structured or array dtype; expected '<f4' (little-endian float32) or \
             '|i1' (int8)",
            other.descr()
        ),
    };
    let size: usize = match dtype.as_str() {
        "<f4" => 4,
        "|i1" | "<i1" | ">i1" => 1,
        _ => bail!(
            "dtype '{dtype}': expected '<f4' (little-endian float32) or '|i1' (int8); convert with \
             x.astype(numpy.float32) or x.astype(numpy.int8)"
        ),
    };
    if header.order() == npyz::Order::Fortran && shape.len() > 1 {
        bail!(
            "Fortran order (fortran_order: True) for shape {}: expected C order; write \
             numpy.ascontiguousarray(x)",
            shape_text(&shape)
        );
    }
    let data = file.into_inner();
    let header_len = bytes.len() - data.len();
    let expected = shape
        .iter()
        .try_fold(size, |a, &d| a.checked_mul(d))
        .filter(|&b| b <= isize::MAX as usize);
    let Some(expected) = expected else {
        bail!("shape {} is too large", shape_text(&shape));
    };
    if data.len() < expected {
        bail!(
            "truncated: shape {} of '{dtype}' needs {expected} data bytes after the {header_len}-byte \
             header, the file has {}",
            shape_text(&shape),
            data.len()
        );
    }
    if data.len() > expected {
        bail!(
            "{} unexpected trailing bytes from byte offset {} (shape {} of '{dtype}' ends there)",
            data.len() - expected,
            header_len + expected,
            shape_text(&shape)
        );
    }
    let data = if size == 4 {
        NpyData::F32(
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    } else {
        NpyData::I8(data.iter().map(|&b| b as i8).collect())
    };
    Ok(NpyArray { shape, data })
}

/// Encodes `array` as a `.npy` file (C order, `<f4` or `|i1`). Errors when the values are not
/// `∏ shape` (a caller bug, reported rather than written).
pub fn encode(array: &NpyArray) -> Result<Vec<u8>> {
    let n: usize = array.shape.iter().product();
    if n != array.data.len() {
        bail!(
            "{} values do not fill shape {}",
            array.data.len(),
            shape_text(&array.shape)
        );
    }
    let shape: Vec<u64> = array.shape.iter().map(|&d| d as u64).collect();
    let mut out = Vec::new();
    match &array.data {
        NpyData::F32(v) => {
            let mut w = npyz::WriteOptions::<f32>::new()
                .default_dtype()
                .shape(&shape)
                .writer(&mut out)
                .begin_nd()?;
            w.extend(v.iter().copied())?;
            w.finish()?;
        }
        NpyData::I8(v) => {
            let mut w = npyz::WriteOptions::<i8>::new()
                .default_dtype()
                .shape(&shape)
                .writer(&mut out)
                .begin_nd()?;
            w.extend(v.iter().copied())?;
            w.finish()?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1.0 file with `dict` as its header text (padded as NumPy pads it) and `data`.
    fn raw(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut text = dict.to_string();
        while (10 + text.len() + 1) % 64 != 0 {
            text.push(' ');
        }
        text.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn round_trips_f32_and_i8_with_their_shapes() {
        let a = NpyArray {
            shape: vec![2, 1, 3],
            data: NpyData::F32(vec![0.5, -1.0, f32::MIN_POSITIVE, 3.25, f32::MAX, -0.0]),
        };
        let bytes = encode(&a).unwrap();
        assert!(bytes.starts_with(b"\x93NUMPY"));
        assert_eq!(
            bytes.len() % 64,
            24,
            "64-byte aligned header, then 24 data bytes"
        );
        let back = decode(&bytes).unwrap();
        assert_eq!(back.shape, a.shape);
        let (NpyData::F32(x), NpyData::F32(y)) = (&back.data, &a.data) else {
            panic!("dtype changed: {back:?}");
        };
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(x), bits(y), "bit for bit, -0.0 included");
        let b = NpyArray {
            shape: vec![4],
            data: NpyData::I8(vec![-128, -1, 0, 127]),
        };
        assert_eq!(decode(&encode(&b).unwrap()).unwrap(), b);
        let empty = NpyArray {
            shape: vec![0, 3],
            data: NpyData::F32(vec![]),
        };
        assert_eq!(decode(&encode(&empty).unwrap()).unwrap(), empty);
        assert!(encode(&NpyArray {
            shape: vec![2],
            data: NpyData::I8(vec![1])
        })
        .is_err());
    }

    #[test]
    fn reads_numpys_own_header_text() {
        let f = raw(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }",
            &[0, 0, 128, 63, 0, 0, 0, 64],
        );
        let a = decode(&f).unwrap();
        assert_eq!(
            (a.shape, a.data),
            (vec![1, 2], NpyData::F32(vec![1.0, 2.0]))
        );
        // A 1-D array is the same bytes in either order.
        let f = raw(
            "{'descr': '|i1', 'fortran_order': True, 'shape': (2,), }",
            &[255, 7],
        );
        assert_eq!(decode(&f).unwrap().data, NpyData::I8(vec![-1, 7]));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |b: &[u8]| format!("{:#}", decode(b).unwrap_err());
        let dict = |descr: &str, fortran: &str, shape: &str| {
            format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
        };
        let f64s = raw(&dict("<f8", "False", "(1,)"), &[0; 8]);
        assert!(e(&f64s).contains("dtype '<f8'"), "{}", e(&f64s));
        let big = raw(&dict(">f4", "False", "(1,)"), &[0; 4]);
        assert!(e(&big).contains("dtype '>f4'"), "{}", e(&big));
        let fortran = raw(&dict("<f4", "True", "(2, 2)"), &[0; 16]);
        assert!(e(&fortran).contains("Fortran order"), "{}", e(&fortran));
        let short = raw(&dict("<f4", "False", "(2, 3)"), &[0; 20]);
        assert!(
            e(&short).contains("truncated: shape (2, 3) of '<f4' needs 24 data bytes after the 128-byte header, the file has 20"),
            "{}",
            e(&short)
        );
        let long = raw(&dict("|i1", "False", "(3,)"), &[0; 5]);
        assert!(
            e(&long).contains("2 unexpected trailing bytes from byte offset 131"),
            "{}",
            e(&long)
        );
        assert!(e(b"PK\x03\x04").contains("not a .npy file"));
        assert!(e(b"").contains("not a .npy file"));
        assert_eq!(shape_text(&[5]), "(5,)");
        assert_eq!(shape_text(&[2, 3]), "(2, 3)");
    }

    #[test]
    fn nested_header_brackets_are_refused_before_the_literal_parser() {
        // The fuzz target's timeout input (the literal parser took over a minute on it).
        let mut header = b"{{'cscr': '|i1', 'fortran_order': False, 'sr':".to_vec();
        header.extend_from_slice(&[b'{'; 24]);
        header.extend_from_slice(b" False, 'shape': (5, 2, 2), }");
        header.resize(118, b' ');
        header.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&[0u8; 20]);
        let e = format!("{:#}", decode(&bytes).unwrap_err());
        assert!(e.contains("flat dict"), "{e}");
        // NumPy's own header still reads.
        let a = NpyArray {
            shape: vec![2],
            data: NpyData::I8(vec![1, -1]),
        };
        assert_eq!(decode(&encode(&a).unwrap()).unwrap().shape, vec![2]);
    }

    /// Inputs the parser in npyz panics or over-allocates on (overflow checks are on in debug
    /// and fuzz builds): they are refused with an error before npyz sees them.
    #[test]
    fn shapes_whose_products_overflow_and_headers_longer_than_the_file_are_refused() {
        let e = |b: &[u8]| format!("{:#}", decode(b).unwrap_err());
        for shape in [
            "(4294967296, 4294967296)",
            "(0, 4294967296, 4294967296)",
            "(4294967296, 4294967296, 0)",
            "(18446744073709551615, 2)",
        ] {
            let f = raw(
                &format!("{{'descr': '|i1', 'fortran_order': False, 'shape': {shape}, }}"),
                &[],
            );
            assert!(e(&f).contains("too large"), "{shape}: {}", e(&f));
        }
        let f = raw(
            "{'descr': '|i1', 'fortran_order': False, 'shape': (0x10,), }",
            &[0; 16],
        );
        assert!(e(&f).contains("decimal"), "{}", e(&f));
        // Version 2.0: a 4-byte header length of 4 GiB in a 16-byte file.
        let mut f = b"\x93NUMPY\x02\x00".to_vec();
        f.extend_from_slice(&u32::MAX.to_le_bytes());
        f.extend_from_slice(b"{'de");
        assert!(
            e(&f).contains("header of 4294967295 bytes") && e(&f).contains("4 after"),
            "{}",
            e(&f)
        );
        // Zero-sized arrays with large other dimensions still read, as NumPy writes them.
        let f = raw(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1000000, 1000000), }",
            &[],
        );
        assert_eq!(decode(&f).unwrap().shape, vec![0, 1_000_000, 1_000_000]);
    }

    use proptest::prelude::*;

    fn array() -> impl Strategy<Value = NpyArray> {
        proptest::collection::vec(0usize..5, 0..4).prop_flat_map(|shape| {
            let n: usize = shape.iter().product();
            let f = proptest::collection::vec(any::<u32>().prop_map(f32::from_bits), n)
                .prop_map(NpyData::F32);
            let i = proptest::collection::vec(any::<i8>(), n).prop_map(NpyData::I8);
            (Just(shape), prop_oneof![f, i]).prop_map(|(shape, data)| NpyArray { shape, data })
        })
    }

    /// The bits of an array's values (NaN payloads included), for exact comparison.
    fn bits(a: &NpyArray) -> (Vec<usize>, Vec<u32>, bool) {
        match &a.data {
            NpyData::F32(v) => (
                a.shape.clone(),
                v.iter().map(|x| x.to_bits()).collect(),
                true,
            ),
            NpyData::I8(v) => (
                a.shape.clone(),
                v.iter().map(|&x| x as u8 as u32).collect(),
                false,
            ),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Any shape (rank 0–3, zero-sized dims included) and any values — every f32 bit
        /// pattern, NaNs and infinities too — come back bit for bit.
        #[test]
        fn encode_then_decode_is_exact(a in array()) {
            let back = decode(&encode(&a).unwrap()).unwrap();
            prop_assert_eq!(bits(&back), bits(&a));
        }

        /// A valid file with bytes changed, cut short or extended gives `Ok` or `Err`, never
        /// a panic; an `Ok` holds exactly `∏ shape` values.
        #[test]
        fn mutated_files_never_panic(
            a in array(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in proptest::option::of(any::<usize>()),
            extra in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut bytes = encode(&a).unwrap();
            for (at, b) in edits {
                let n = bytes.len();
                bytes[at % n] = b;
            }
            if let Some(c) = cut {
                let n = bytes.len();
                bytes.truncate(c % (n + 1));
            }
            bytes.extend(extra);
            if let Ok(got) = decode(&bytes) {
                prop_assert_eq!(got.data.len(), got.shape.iter().product::<usize>());
            }
        }
    }
}
