//! A model file's bytes at a 64-byte boundary of memory.
//!
//! The model format (v3) puts every tensor payload of 128 bytes or more at a 32-byte multiple of
//! the file (`denoiserep_core::format::align`), so a file loaded here hands the core's host
//! kernels weights that never split a cache line (the f32 Linear loses 20–30 % on misaligned
//! weights on an Intel Xeon: docs/benchmarks.md, host part 7). `Vec<u8>` gives no such
//! guarantee (the allocator's alignment is 16 at best), so the bytes sit at an offset inside a
//! slightly larger buffer. Nothing depends on it for correctness: the core reads any address.

use std::ops::Deref;
use std::path::Path;

/// The alignment of [`ModelBytes`] (a cache line).
pub const FILE_ALIGN: usize = 64;

/// A model file's bytes, starting at a [`FILE_ALIGN`]-byte boundary; derefs to `[u8]`.
#[derive(Clone)]
pub struct ModelBytes {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl ModelBytes {
    /// A copy of `bytes` at a [`FILE_ALIGN`]-byte boundary.
    pub fn new(bytes: &[u8]) -> Self {
        Self::at_residue(bytes, 0)
    }

    /// A copy of `bytes` starting at an address `≡ residue (mod FILE_ALIGN)` (`residue` is taken
    /// mod [`FILE_ALIGN`]); the latency bench's `LATENCY_ALIGN` uses it to misplace files on
    /// purpose.
    pub fn at_residue(bytes: &[u8], residue: usize) -> Self {
        let mut buf = vec![0u8; bytes.len() + FILE_ALIGN - 1];
        let start =
            (residue % FILE_ALIGN + FILE_ALIGN - buf.as_ptr() as usize % FILE_ALIGN) % FILE_ALIGN;
        buf[start..start + bytes.len()].copy_from_slice(bytes);
        Self {
            buf,
            start,
            len: bytes.len(),
        }
    }

    /// Reads the file at `path`.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        Ok(Self::new(&std::fs::read(path)?))
    }
}

impl Deref for ModelBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl std::fmt::Debug for ModelBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelBytes({} bytes)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_start_on_a_cache_line_and_are_the_files() {
        for n in [0usize, 1, 63, 64, 65, 1000] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            // Several allocations, so that the allocator's own alignment varies.
            for _ in 0..8 {
                let _spacer = vec![0u8; n % 48 + 1];
                let m = ModelBytes::new(&data);
                assert_eq!(m.as_ptr() as usize % FILE_ALIGN, 0, "n = {n}");
                assert_eq!(&m[..], &data[..]);
                assert_eq!(&m.clone()[..], &data[..]);
                for residue in [1usize, 32, 63, 64 + 5] {
                    let m = ModelBytes::at_residue(&data, residue);
                    assert_eq!(m.as_ptr() as usize % FILE_ALIGN, residue % FILE_ALIGN);
                    assert_eq!(&m[..], &data[..]);
                }
            }
        }
    }
}
