//! Greedy offset assignment (the scheme of tflite-micro's `GreedyMemoryPlanner`).
//!
//! Buffers are placed one at a time, largest first (by size rounded up to `ARENA_ALIGN`; ties: earlier `first`, then lower index — a
//! total order, so the result does not depend on the sort's stability). Each buffer goes to the
//! lowest offset at which it overlaps, in memory, no already placed buffer whose lifetime
//! intersects its own. Large buffers placed first leave gaps that the small ones fill.
//!
//! The placed buffers are kept sorted by offset (in the front of the caller's `order` slice), so
//! finding the lowest fitting offset is one scan: starting from `candidate = 0`, for each placed
//! buffer `p` live at the same time, in ascending offset order, stop if the gap
//! `p.offset − candidate` holds the buffer, else `candidate = max(candidate, p.offset + p.size)`.
//! Every buffer before the stop ends at or below `candidate` and every one after starts at or
//! above `p.offset ≥ candidate + size`, so the offset is free; and no lower offset is, since each
//! lower gap was tried. `O(n²)` time, no allocation.

use core::cmp::Ordering;

use crate::arena::align_up;
use crate::error::{Error, Result};

use super::cells::{sort_by, Cells};
use super::liveness::Lifetime;

/// Assigns `offsets[i]` to each buffer `lifetimes[i]` and returns the high-water mark
/// `max(offsets[i] + size_i)` (0 without buffers), where `size_i` is `lifetimes[i].size` rounded
/// up to `ARENA_ALIGN`.
///
/// Guarantees: every offset is a multiple of `ARENA_ALIGN`; two buffers whose lifetimes
/// [intersect](Lifetime::intersects) occupy disjoint byte ranges `[offset, offset + size)`;
/// the high-water mark is at least the bytes live at any one op index and at most the sum of all
/// sizes.
///
/// `order` and `offsets` need at least `lifetimes.len()` entries (extra ones are left alone);
/// on return `order[..n]` lists the buffers by ascending offset. At most `u16::MAX` buffers.
///
/// Errors: [`Error::PlanCapacity`], [`Error::PlanBadLifetime`] (`first > last`),
/// [`Error::ModelSizeOverflow`]. Never panics.
pub fn greedy(lifetimes: &[Lifetime], order: &mut [u16], offsets: &mut [usize]) -> Result<usize> {
    greedy_by(lifetimes, order, offsets, Placement::BySize)
}

/// The order in which [`greedy_by`] places buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Largest first (tflite-micro); ties: earlier `first`, then lower index.
    BySize,
    /// Earliest `first` first (execution order); ties: larger size, then lower index. On a
    /// chain this is the ping-pong layout.
    ByFirstUse,
}

/// [`greedy`] with a choice of placement order; same guarantees.
pub fn greedy_by(
    lifetimes: &[Lifetime],
    order: &mut [u16],
    offsets: &mut [usize],
    placement: Placement,
) -> Result<usize> {
    greedy_in(lifetimes, lifetimes.len(), order, offsets, placement)
}

/// [`greedy_by`] on the first `n` buffers of any [`Cells`] storage (the interpreter's scratch
/// may be packed into the arena).
pub(crate) fn greedy_in<L, O>(
    lifetimes: &L,
    n: usize,
    order: &mut O,
    offsets: &mut [usize],
    placement: Placement,
) -> Result<usize>
where
    L: Cells<Lifetime> + ?Sized,
    O: Cells<u16> + ?Sized,
{
    if n > usize::from(u16::MAX) || n > lifetimes.len() || order.len() < n {
        return Err(Error::PlanCapacity);
    }
    let offsets = offsets.get_mut(..n).ok_or(Error::PlanCapacity)?;
    for i in 0..n {
        let lt = lifetimes.get(i).ok_or(Error::PlanCapacity)?;
        if lt.first > lt.last {
            return Err(Error::PlanBadLifetime { buffer: i });
        }
        align_up(lt.size).ok_or(Error::ModelSizeOverflow)?;
        order.set(i, u16::try_from(i).map_err(|_| Error::PlanCapacity)?)?;
    }
    sort_by(order, n, |a, b| placement_order(lifetimes, a, b, placement))?;

    let mut high_water = 0usize;
    for i in 0..n {
        // order[..i] are the placed buffers, sorted by offset.
        let id = order.get(i).ok_or(Error::PlanCapacity)?;
        let want = lifetimes.get(usize::from(id)).ok_or(Error::PlanCapacity)?;
        let size = align_up(want.size).ok_or(Error::ModelSizeOverflow)?;

        let mut candidate = 0usize;
        for k in 0..i {
            let p = order.get(k).ok_or(Error::PlanCapacity)?;
            let other = lifetimes.get(usize::from(p)).ok_or(Error::PlanCapacity)?;
            if !other.intersects(&want) {
                continue;
            }
            let start = *offsets.get(usize::from(p)).ok_or(Error::PlanCapacity)?;
            if start >= candidate && start - candidate >= size {
                break;
            }
            let end = align_up(other.size)
                .and_then(|s| start.checked_add(s))
                .ok_or(Error::ModelSizeOverflow)?;
            candidate = candidate.max(end);
        }
        let end = candidate
            .checked_add(size)
            .ok_or(Error::ModelSizeOverflow)?;
        high_water = high_water.max(end);
        *offsets
            .get_mut(usize::from(id))
            .ok_or(Error::PlanCapacity)? = candidate;

        // Keep order[..=i] sorted by offset: move `id` in front of the first larger offset.
        let mut pos = i;
        for k in 0..i {
            let p = order.get(k).ok_or(Error::PlanCapacity)?;
            if offsets.get(usize::from(p)).is_some_and(|&o| o > candidate) {
                pos = k;
                break;
            }
        }
        let mut k = i;
        while k > pos {
            let v = order.get(k - 1).ok_or(Error::PlanCapacity)?;
            order.set(k, v)?;
            k -= 1;
        }
        order.set(pos, id)?;
    }
    Ok(high_water)
}

/// A total order on buffer ids: [`Placement::BySize`] = size descending, then `first` ascending,
/// then index; [`Placement::ByFirstUse`] = `first` ascending, then size descending, then index.
fn placement_order<L: Cells<Lifetime> + ?Sized>(
    lifetimes: &L,
    a: u16,
    b: u16,
    placement: Placement,
) -> Ordering {
    let key = |i: u16| {
        lifetimes.get(usize::from(i)).map_or((0, u16::MAX), |lt| {
            (align_up(lt.size).unwrap_or(usize::MAX), lt.first)
        })
    };
    let ((size_a, first_a), (size_b, first_b)) = (key(a), key(b));
    let by_size = size_b.cmp(&size_a);
    let by_first = first_a.cmp(&first_b);
    match placement {
        Placement::BySize => by_size.then(by_first),
        Placement::ByFirstUse => by_first.then(by_size),
    }
    .then(a.cmp(&b))
}
