//! Indexed storage the planner reads and writes: a typed slice (`[u16]`, `[Lifetime]`, `[bool]`),
//! or the same values packed little-endian into caller bytes ([`ByteCells`]).
//!
//! The byte form lets [`crate::Model`] keep its planning scratch in the caller's arena while
//! loading (the arena is unused until the first run; tflite-micro plans in its arena's tail too)
//! instead of on the stack, without `unsafe`: a `&mut [u8]` cannot be reinterpreted as
//! `&mut [Lifetime]` in safe Rust, so each access encodes or decodes one value (load time only).

use core::cmp::Ordering;
use core::marker::PhantomData;

use crate::error::{Error, Result};

use super::liveness::Lifetime;

/// Values the planner indexes: `get` is `None` out of range; `set` fails with
/// [`Error::PlanCapacity`] out of range (and [`Error::ModelSizeOverflow`] for a value the storage
/// cannot encode).
pub trait Cells<V: Copy> {
    /// Number of cells.
    fn len(&self) -> usize;
    /// Whether there is no cell.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Cell `i`.
    fn get(&self, i: usize) -> Option<V>;
    /// Writes cell `i`.
    fn set(&mut self, i: usize, v: V) -> Result<()>;
}

impl<V: Copy> Cells<V> for [V] {
    fn len(&self) -> usize {
        <[V]>::len(self)
    }

    fn get(&self, i: usize) -> Option<V> {
        <[V]>::get(self, i).copied()
    }

    fn set(&mut self, i: usize, v: V) -> Result<()> {
        *self.get_mut(i).ok_or(Error::PlanCapacity)? = v;
        Ok(())
    }
}

/// A value with a fixed little-endian byte encoding, for [`ByteCells`].
pub trait Packed: Copy {
    /// Encoded size in bytes.
    const BYTES: usize;
    /// Decodes `b` (exactly [`Packed::BYTES`] long).
    fn unpack(b: &[u8]) -> Option<Self>;
    /// Encodes into `b` (exactly [`Packed::BYTES`] long).
    fn pack(self, b: &mut [u8]) -> Result<()>;
}

impl Packed for bool {
    const BYTES: usize = 1;

    fn unpack(b: &[u8]) -> Option<Self> {
        Some(*b.first()? != 0)
    }

    fn pack(self, b: &mut [u8]) -> Result<()> {
        *b.first_mut().ok_or(Error::PlanCapacity)? = u8::from(self);
        Ok(())
    }
}

impl Packed for u16 {
    const BYTES: usize = 2;

    fn unpack(b: &[u8]) -> Option<Self> {
        Some(u16::from_le_bytes(b.try_into().ok()?))
    }

    fn pack(self, b: &mut [u8]) -> Result<()> {
        b.copy_from_slice(&self.to_le_bytes());
        Ok(())
    }
}

/// `size` as a u32 (a plan's end must fit a u32 anyway: `ModelSizeOverflow`), `first`, `last`.
impl Packed for Lifetime {
    const BYTES: usize = 8;

    fn unpack(b: &[u8]) -> Option<Self> {
        let b: [u8; 8] = b.try_into().ok()?;
        Some(Lifetime {
            size: usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok()?,
            first: u16::from_le_bytes([b[4], b[5]]),
            last: u16::from_le_bytes([b[6], b[7]]),
        })
    }

    fn pack(self, b: &mut [u8]) -> Result<()> {
        let size = u32::try_from(self.size).map_err(|_| Error::ModelSizeOverflow)?;
        let b: &mut [u8; 8] = b.try_into().map_err(|_| Error::PlanCapacity)?;
        b[..4].copy_from_slice(&size.to_le_bytes());
        b[4..6].copy_from_slice(&self.first.to_le_bytes());
        b[6..].copy_from_slice(&self.last.to_le_bytes());
        Ok(())
    }
}

/// `len` values of `V` packed into caller bytes.
#[derive(Debug)]
pub struct ByteCells<'b, V> {
    bytes: &'b mut [u8],
    _v: PhantomData<V>,
}

impl<'b, V: Packed> ByteCells<'b, V> {
    /// `n` cells at the front of `scratch` and the rest of it, or `None` if it is too short.
    pub fn take(scratch: &'b mut [u8], n: usize) -> Option<(Self, &'b mut [u8])> {
        let (bytes, rest) = scratch.split_at_mut_checked(n.checked_mul(V::BYTES)?)?;
        Some((
            ByteCells {
                bytes,
                _v: PhantomData,
            },
            rest,
        ))
    }

    fn range(i: usize) -> Option<core::ops::Range<usize>> {
        let start = i.checked_mul(V::BYTES)?;
        Some(start..start.checked_add(V::BYTES)?)
    }
}

impl<V: Packed> Cells<V> for ByteCells<'_, V> {
    fn len(&self) -> usize {
        self.bytes.len() / V::BYTES
    }

    fn get(&self, i: usize) -> Option<V> {
        V::unpack(self.bytes.get(Self::range(i)?)?)
    }

    fn set(&mut self, i: usize, v: V) -> Result<()> {
        let cell = Self::range(i)
            .and_then(|r| self.bytes.get_mut(r))
            .ok_or(Error::PlanCapacity)?;
        v.pack(cell)
    }
}

/// Sorts `cells[..n]` by `cmp` (insertion sort: no scratch, `O(n²)` on a few hundred ids at load
/// time). With a total order, as every caller's, the result is the one any sort gives.
pub fn sort_by<C, F>(cells: &mut C, n: usize, mut cmp: F) -> Result<()>
where
    C: Cells<u16> + ?Sized,
    F: FnMut(u16, u16) -> Ordering,
{
    for i in 1..n {
        let x = cells.get(i).ok_or(Error::PlanCapacity)?;
        let mut j = i;
        while j > 0 {
            let y = cells.get(j - 1).ok_or(Error::PlanCapacity)?;
            if cmp(y, x) != Ordering::Greater {
                break;
            }
            cells.set(j, y)?;
            j -= 1;
        }
        cells.set(j, x)?;
    }
    Ok(())
}
