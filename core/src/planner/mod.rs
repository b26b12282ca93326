//! Arena planning for a graph of ops: which activation tensors share memory, and where each lives.
//!
//! Two steps, both without allocation, into storage the caller provides (typed slices, or, inside
//! the crate, any [`Cells`] storage such as [`ByteCells`]: the same values packed into bytes, so
//! that `Model` can plan inside the caller's arena while loading):
//!
//! 1. [`liveness`]: walks the ops in execution order and gives every non-constant tensor a
//!    *buffer*. A tensor normally gets a buffer of its own; a [`Reuse::Alias`] output (Reshape,
//!    Flatten) shares input 0's buffer; a [`Reuse::InPlace`] output (ReLU, Softmax, Add) shares it
//!    when input 0's buffer is read by no later op and holds no graph output. Each buffer gets a
//!    [`Lifetime`]: its size rounded up to [`ARENA_ALIGN`](crate::ARENA_ALIGN) and the inclusive
//!    op-index interval `[first, last]` in which one of its tensors is written or read (the graph
//!    input from 0; graph outputs until `n_ops`, after the last op).
//! 2. [`greedy`]: tflite-micro's greedy-by-size placement. Buffers, largest first, each go to the
//!    lowest offset where they overlap no already placed buffer with an intersecting lifetime.
//!    [`plan`] also tries the same placement in execution order ([`Placement::ByFirstUse`],
//!    which is the ping-pong layout on a chain) and keeps the smaller of the two (by-size on a
//!    tie), and on a chain the two-ended layout of the old sequential planner ([`ping_pong`]), so
//!    no model needs more than any of these schemes alone.
//!
//! # Invariants of a plan
//!
//! - Every offset is a multiple of `ARENA_ALIGN`, and every `offset + size ≤ high_water`.
//! - Two buffers whose lifetimes intersect occupy disjoint byte ranges. Hence the bytes of a
//!   tensor are not written by any other op from the op that produces it to its last use (an
//!   in-place op overwrites its input 0 only at that input's last use).
//! - `max over ops k of Σ{size : buffer live at k} ≤ high_water ≤ Σ sizes`. Greedy-by-size
//!   alone is not always optimal: on a chain with sizes `40, 24, 32, 40` it needs 96 bytes where
//!   the ping-pong layout needs 72 (see the tests); [`plan`] picks the by-first-use layout there.
//!
//! # Arena layout
//!
//! ```text
//! arena (caller's &mut [u8], any alignment)
//! ├ 0..ARENA_ALIGN−1 bytes of slack, up to the first 4-aligned address: the base
//! └ base + offset[b] .. base + offset[b] + size[b]   buffer b, for every buffer
//!   (base + high_water is the end of the plan)
//! ```
//!
//! Offsets are relative to the 4-aligned base, so the high-water mark is the exact arena need of
//! the plan; the public `arena_size()` adds `ARENA_ALIGN − 1` bytes of slack for a misaligned
//! caller buffer. A tensor's bytes start at `offset[buffer_of[t]]` ([`PlanStorage::tensor_offset`]).

mod cells;
mod greedy;
mod liveness;
mod ping_pong;
#[cfg(test)]
mod tests;

pub use greedy::{greedy, greedy_by, Placement};
pub use liveness::{liveness, Lifetime, OpIo, Reuse, MAX_OP_INPUTS, NO_BUFFER};
pub use ping_pong::ping_pong;

pub use cells::{ByteCells, Cells, Packed};
pub(crate) use liveness::liveness_in;

use greedy::greedy_in;
use ping_pong::ping_pong_in;

use crate::error::Result;

/// The graph as the planner sees it; see [`liveness`] for each field.
#[derive(Debug, Clone)]
pub struct Graph<'g, I> {
    /// Byte size of each tensor, by tensor id (unaligned).
    pub tensor_bytes: &'g [usize],
    /// Whether each tensor is a constant (stored in the model file, never planned).
    pub is_constant: &'g [bool],
    /// The tensor written before op 0.
    pub input: u16,
    /// The tensors live after the last op.
    pub outputs: &'g [u16],
    /// The ops, in execution order.
    pub ops: I,
}

/// Caller-provided storage for a plan.
#[derive(Debug)]
pub struct PlanStorage<'s> {
    /// Per tensor: its buffer, or [`NO_BUFFER`] (same length as `Graph::tensor_bytes`).
    pub buffer_of: &'s mut [u16],
    /// Per buffer: size and lifetime; its length bounds the number of buffers.
    pub lifetimes: &'s mut [Lifetime],
    /// Scratch for [`greedy`], at least one entry per buffer.
    pub order: &'s mut [u16],
    /// Per buffer: offset from the aligned arena base, at least one entry per buffer.
    pub offsets: &'s mut [usize],
}

impl PlanStorage<'_> {
    /// Offset of tensor `t`'s bytes from the aligned arena base, or `None` for a constant or a
    /// tensor without a buffer (or out of range). Meaningful after [`plan`].
    pub fn tensor_offset(&self, t: u16) -> Option<usize> {
        let b = *self.buffer_of.get(usize::from(t))?;
        if b == NO_BUFFER {
            return None;
        }
        self.offsets.get(usize::from(b)).copied()
    }
}

/// Summary of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaPlan {
    /// Number of buffers (`lifetimes[..buffers]`, `offsets[..buffers]`).
    pub buffers: usize,
    /// Bytes from the aligned base to the end of the highest buffer: the plan's exact need.
    pub high_water: usize,
}

/// Runs [`liveness`] then [`place`] on `graph`, filling `storage`.
pub fn plan<I: Iterator<Item = OpIo> + Clone>(
    graph: Graph<'_, I>,
    storage: &mut PlanStorage<'_>,
) -> Result<ArenaPlan> {
    let buffers = liveness(
        graph.tensor_bytes,
        graph.is_constant,
        graph.input,
        graph.outputs,
        graph.ops,
        storage.buffer_of,
        storage.lifetimes,
    )?;
    let lifetimes = storage
        .lifetimes
        .get(..buffers)
        .ok_or(crate::error::Error::PlanCapacity)?;
    let high_water = place(lifetimes, storage.order, storage.offsets)?;
    Ok(ArenaPlan {
        buffers,
        high_water,
    })
}

/// The placement step of [`plan`] on buffers [`liveness`] found: the better of the two
/// [`greedy_by`] placements, or the [`ping_pong`] layout of a chain when that is smaller.
/// Writes `offsets[..lifetimes.len()]` (per buffer) and returns the high-water mark; `order` as
/// for [`greedy`]. Public on its own so that a caller can reuse the storage of `tensor_bytes`
/// (no longer read once liveness is done) for `offsets`: the interpreter does, to keep its
/// loading stack small.
pub fn place(lifetimes: &[Lifetime], order: &mut [u16], offsets: &mut [usize]) -> Result<usize> {
    place_in(lifetimes, lifetimes.len(), order, offsets)
}

/// [`place`] on the first `n` buffers of any [`Cells`] storage.
pub(crate) fn place_in<L, O>(
    lifetimes: &L,
    n: usize,
    order: &mut O,
    offsets: &mut [usize],
) -> Result<usize>
where
    L: Cells<Lifetime> + ?Sized,
    O: Cells<u16> + ?Sized,
{
    let by_size = greedy_in(lifetimes, n, order, offsets, Placement::BySize)?;
    let by_first = greedy_in(lifetimes, n, order, offsets, Placement::ByFirstUse)?;
    let chain = ping_pong_in(lifetimes, n, order, offsets)?;
    let best = by_size.min(by_first);
    match chain {
        Some(w) if w < best => Ok(w),
        _ => {
            let placement = if by_first < by_size {
                Placement::ByFirstUse
            } else {
                Placement::BySize
            };
            greedy_in(lifetimes, n, order, offsets, placement)
        }
    }
}
