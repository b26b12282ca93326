//! The one place where arena bytes become typed slices.
//!
//! The caller's arena is a plain `&mut [u8]` of any alignment. [`aligned`] picks the first
//! 4-byte-aligned sub-slice of the planned size (the planner adds `ARENA_ALIGN − 1` bytes of slack
//! for this); [`f32s_mut`] and [`i8s_mut`] then view 4-aligned regions as `f32` / `i8`. Model
//! weights are never viewed this way: they stay byte slices read with `from_le_bytes`.

use crate::error::{Error, Result};

/// Alignment of every tensor inside the arena, in bytes.
pub const ARENA_ALIGN: usize = 4;

/// Rounds `n` up to a multiple of [`ARENA_ALIGN`], or `None` on overflow.
pub const fn align_up(n: usize) -> Option<usize> {
    match n.checked_add(ARENA_ALIGN - 1) {
        Some(v) => Some(v / ARENA_ALIGN * ARENA_ALIGN),
        None => None,
    }
}

/// The first `ARENA_ALIGN`-aligned sub-slice of `arena` with `len` bytes.
pub(crate) fn aligned(arena: &mut [u8], len: usize) -> Result<&mut [u8]> {
    let offset = arena.as_ptr().align_offset(ARENA_ALIGN);
    let end = offset.checked_add(len).ok_or(Error::ArenaTooSmall)?;
    arena.get_mut(offset..end).ok_or(Error::ArenaTooSmall)
}

/// Views 4-aligned bytes as `f32`s (`bytes.len() / 4` of them).
pub(crate) fn f32s_mut(bytes: &mut [u8]) -> Result<&mut [f32]> {
    // SAFETY: `align_to_mut` only reinterprets the correctly aligned middle part. `f32` has no
    // invalid bit patterns and no padding, so every byte pattern is a valid `f32` and every `f32`
    // written is a valid byte pattern; the result borrows `bytes` mutably, so nothing aliases it.
    let (head, body, _tail) = unsafe { bytes.align_to_mut::<f32>() };
    if head.is_empty() {
        Ok(body)
    } else {
        Err(Error::ArenaTooSmall)
    }
}

/// Views 4-aligned bytes as `u32`s (`bytes.len() / 4` of them): a kernel's scratch.
pub(crate) fn u32s_mut(bytes: &mut [u8]) -> Result<&mut [u32]> {
    // SAFETY: as in `f32s_mut`: `u32` has no invalid bit patterns and no padding.
    let (head, body, _tail) = unsafe { bytes.align_to_mut::<u32>() };
    if head.is_empty() {
        Ok(body)
    } else {
        Err(Error::ArenaTooSmall)
    }
}

/// Views 4-aligned bytes as `f32`s, read-only (`bytes.len() / 4` of them).
pub(crate) fn f32s(bytes: &[u8]) -> Result<&[f32]> {
    // SAFETY: as in `f32s_mut`; the result borrows `bytes` immutably.
    let (head, body, _tail) = unsafe { bytes.align_to::<f32>() };
    if head.is_empty() {
        Ok(body)
    } else {
        Err(Error::ArenaTooSmall)
    }
}

/// Views bytes as `i8`s, read-only.
pub(crate) fn i8s(bytes: &[u8]) -> &[i8] {
    // SAFETY: as in `i8s_mut`; the result borrows `bytes` immutably.
    let (_head, body, _tail) = unsafe { bytes.align_to::<i8>() };
    body
}

/// Views bytes as `i8`s.
pub(crate) fn i8s_mut(bytes: &mut [u8]) -> &mut [i8] {
    // SAFETY: `i8` and `u8` have the same size, alignment 1 (so `head` and `tail` are empty) and
    // no invalid bit patterns; the result borrows `bytes` mutably, so nothing aliases it.
    let (_head, body, _tail) = unsafe { bytes.align_to_mut::<i8>() };
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_up_rounds_to_four() {
        assert_eq!(align_up(0), Some(0));
        assert_eq!(align_up(1), Some(4));
        assert_eq!(align_up(4), Some(4));
        assert_eq!(align_up(5), Some(8));
        assert_eq!(align_up(usize::MAX), None);
    }

    #[repr(align(4))]
    struct Aligned<const N: usize>([u8; N]);

    #[test]
    fn aligned_finds_the_aligned_window_or_reports_too_small() {
        let mut storage = Aligned([0u8; 19]);
        let buf = &mut storage.0;
        for offset in 0..4 {
            let a = aligned(&mut buf[offset..], 12).unwrap();
            assert_eq!(a.as_ptr() as usize % ARENA_ALIGN, 0);
            assert_eq!(a.len(), 12);
        }
        assert_eq!(
            aligned(&mut buf[1..14], 12).unwrap_err(),
            Error::ArenaTooSmall
        );
    }

    #[test]
    fn f32_view_requires_alignment() {
        let mut buf = [0u8; 12];
        let misaligned = if (buf.as_ptr() as usize).is_multiple_of(4) {
            1
        } else {
            0
        };
        assert_eq!(
            f32s_mut(&mut buf[misaligned..misaligned + 8]).unwrap_err(),
            Error::ArenaTooSmall
        );
        let a = aligned(&mut buf, 8).unwrap();
        let v = f32s_mut(a).unwrap();
        v[1] = 1.5;
        assert_eq!(v, [0.0, 1.5]);
    }
}
