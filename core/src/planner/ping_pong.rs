//! The two-ended layout of a chain: when the buffers, taken in order of first use, each meet
//! only their neighbours (buffer `i` intersects `i − 1` and `i + 1` and no other), they fit in
//! `W = max_i (size_i + size_{i+1})` bytes with even buffers at offset 0 and odd ones ending at
//! `W`. This is the layout of the sequential planner the graph planner replaced; [`super::plan`]
//! keeps it whenever it is smaller than the greedy ones, so no chain needs more than before.

use crate::arena::align_up;
use crate::error::{Error, Result};

use super::cells::{sort_by, Cells};
use super::liveness::Lifetime;

/// Places a chain two-ended and returns its size, or `Ok(None)` when the buffers do not form a
/// chain (offsets are then unspecified). `order` and `offsets` as for [`super::greedy`].
pub fn ping_pong(
    lifetimes: &[Lifetime],
    order: &mut [u16],
    offsets: &mut [usize],
) -> Result<Option<usize>> {
    ping_pong_in(lifetimes, lifetimes.len(), order, offsets)
}

/// [`ping_pong`] on the first `n` buffers of any [`Cells`] storage.
pub(crate) fn ping_pong_in<L, O>(
    lifetimes: &L,
    n: usize,
    order: &mut O,
    offsets: &mut [usize],
) -> Result<Option<usize>>
where
    L: Cells<Lifetime> + ?Sized,
    O: Cells<u16> + ?Sized,
{
    if n > usize::from(u16::MAX) || n > lifetimes.len() || order.len() < n {
        return Err(Error::PlanCapacity);
    }
    let offsets = offsets.get_mut(..n).ok_or(Error::PlanCapacity)?;
    for i in 0..n {
        order.set(i, i as u16)?; // n ≤ u16::MAX
    }
    let key = |i: u16| {
        lifetimes
            .get(usize::from(i))
            .map_or((u16::MAX, u16::MAX), |l| (l.first, l.last))
    };
    sort_by(order, n, |a, b| key(a).cmp(&key(b)).then(a.cmp(&b)))?;
    let get = |order: &O, k: usize| -> Result<(Lifetime, usize)> {
        let id = usize::from(order.get(k).ok_or(Error::PlanCapacity)?);
        let lt = lifetimes.get(id).ok_or(Error::PlanCapacity)?;
        let size = align_up(lt.size).ok_or(Error::ModelSizeOverflow)?;
        Ok((lt, size))
    };
    let mut width = 0usize;
    for k in 0..n {
        let (a, size_a) = get(order, k)?;
        width = width.max(size_a);
        if k + 1 < n {
            let (b, size_b) = get(order, k + 1)?;
            if !a.intersects(&b) && a.size > 0 && b.size > 0 {
                // Not touching its successor is fine only if nothing later touches it either;
                // keep the rule simple: a chain's neighbours meet.
                return Ok(None);
            }
            width = width.max(size_a.checked_add(size_b).ok_or(Error::ModelSizeOverflow)?);
        }
        if k + 2 < n && a.intersects(&get(order, k + 2)?.0) {
            return Ok(None);
        }
    }
    for k in 0..n {
        let (_, size) = get(order, k)?;
        let id = usize::from(order.get(k).ok_or(Error::PlanCapacity)?);
        *offsets.get_mut(id).ok_or(Error::PlanCapacity)? =
            if k % 2 == 0 { 0 } else { width - size };
    }
    Ok(Some(width))
}
