//! Liveness: which tensors share a buffer, and when each buffer is live.
//!
//! One forward pass over the ops assigns every non-constant tensor a buffer and extends that
//! buffer's lifetime to every op that reads it; an [`Reuse::InPlace`] op additionally looks ahead
//! over the remaining ops (a clone of the iterator) to learn whether its input 0's buffer is read
//! later. No per-tensor scratch is needed beyond the caller's `buffer_of`.
//!
//! # Definitions (op indices, intervals inclusive)
//!
//! - A tensor produced by op `k` is *first* live at `k`; the graph input at 0 (it is written
//!   before op 0).
//! - A tensor read by op `k` is live at `k`; a graph output is live at `n_ops` (after the last op).
//! - A buffer's lifetime is `[min first, max use]` over the tensors assigned to it; a tensor that
//!   is never read (and is no graph output) still occupies `[k, k]`, the op that writes it.
//! - Inputs and the output of one op are therefore all live at that op and never share memory,
//!   except through [`Reuse`].
//! - An op's scratch ([`OpIo::scratch`] bytes) is a buffer of its own with the lifetime `[k, k]`
//!   of the op `k` that uses it: disjoint from that op's inputs and output, free for any other
//!   op. Scratch buffers are numbered after every tensor's buffer, in op order.

use crate::arena::align_up;
use crate::error::{Error, Result};

use super::cells::Cells;

/// The most inputs one op has (Conv: input, weights, bias; Add: two inputs; one spare).
pub const MAX_OP_INPUTS: usize = 4;

/// `buffer_of` entry of a tensor that has no buffer: a constant, or a tensor never produced.
pub const NO_BUFFER: u16 = u16::MAX;

/// How an op's output may share memory with its input 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// The output gets its own buffer.
    None,
    /// The output is a view of input 0's bytes (Reshape, Flatten): same buffer, which then lives
    /// until the last use of either tensor. Input 0 must be a non-constant tensor of the same byte
    /// size.
    Alias,
    /// The op may write its output over input 0 (elementwise: ReLU, Softmax, Add into input 0).
    /// Taken only when input 0's buffer is read by no later op (through any tensor sharing it)
    /// and holds no graph output, and input 0 is not a constant; otherwise the output gets its
    /// own buffer. Input 0 must have the output's byte size.
    InPlace,
}

/// The tensors one op reads and writes, by tensor id, and the scratch it needs while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpIo {
    /// Input tensor ids; only the first `n_inputs` count.
    pub inputs: [u16; MAX_OP_INPUTS],
    /// Number of inputs (at most [`MAX_OP_INPUTS`]).
    pub n_inputs: u8,
    /// Output tensor id.
    pub output: u16,
    /// Whether the output may share input 0's memory.
    pub reuse: Reuse,
    /// Bytes of scratch the op uses while it runs (0: none), e.g. a convolution's im2col
    /// buffer: a buffer of its own, live at this op only (see [`liveness`]).
    pub scratch: usize,
}

impl OpIo {
    /// An op reading `inputs` and writing `output`, or `None` with more than
    /// [`MAX_OP_INPUTS`] inputs.
    pub fn new(inputs: &[u16], output: u16, reuse: Reuse) -> Option<OpIo> {
        let mut io = OpIo {
            inputs: [0; MAX_OP_INPUTS],
            n_inputs: u8::try_from(inputs.len()).ok()?,
            output,
            reuse,
            scratch: 0,
        };
        io.inputs.get_mut(..inputs.len())?.copy_from_slice(inputs);
        Some(io)
    }

    /// The same op with `bytes` of scratch.
    pub fn with_scratch(self, bytes: usize) -> OpIo {
        OpIo {
            scratch: bytes,
            ..self
        }
    }

    /// The used inputs, or `None` if `n_inputs` exceeds [`MAX_OP_INPUTS`].
    pub fn inputs(&self) -> Option<&[u16]> {
        self.inputs.get(..usize::from(self.n_inputs))
    }
}

/// Size and lifetime of one buffer (8 B on a 32-bit target: op indices are u16, as a model's op
/// count is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifetime {
    /// Size in bytes, a multiple of `ARENA_ALIGN` (as [`liveness`] computes it).
    pub size: usize,
    /// First op index at which the buffer is live (inclusive).
    pub first: u16,
    /// Last op index at which the buffer is live (inclusive); `n_ops` for a graph output.
    pub last: u16,
}

impl Lifetime {
    /// Whether the two inclusive intervals `[first, last]` share an op index: then the buffers
    /// must not overlap in memory.
    pub fn intersects(&self, other: &Lifetime) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// Assigns buffers to tensors and computes the buffers' lifetimes.
///
/// - `tensor_bytes[t]`: byte size of tensor `t` (unaligned; rounded up to `ARENA_ALIGN` here).
/// - `is_constant[t]`: constants live in the model file and get no buffer.
/// - `graph_input`: written before op 0, so its buffer is live from 0.
/// - `graph_outputs`: live until after the last op (`last = n_ops`).
/// - `ops`: in execution order, at most `u16::MAX` of them; cloned to look ahead for
///   [`Reuse::InPlace`].
/// - `buffer_of` (out, same length as `tensor_bytes`): the buffer of each tensor, or
///   [`NO_BUFFER`] for constants and tensors never produced.
/// - `lifetimes` (out): buffers `0..n`, where `n` is the returned count; at most
///   `min(lifetimes.len(), u16::MAX)` buffers. The tensors' buffers come first, then one
///   scratch buffer per op with [`OpIo::scratch`] `> 0`, in op order, each live at its op only.
///
/// Errors: [`Error::PlanCapacity`] (slice lengths, too many buffers or ops), [`Error::PlanBadGraphTensor`],
/// [`Error::PlanBadTensorId`], [`Error::PlanBadProducer`], [`Error::PlanBadReuse`] and
/// [`Error::ModelSizeOverflow`]. Never panics.
pub fn liveness<I: Iterator<Item = OpIo> + Clone>(
    tensor_bytes: &[usize],
    is_constant: &[bool],
    graph_input: u16,
    graph_outputs: &[u16],
    ops: I,
    buffer_of: &mut [u16],
    lifetimes: &mut [Lifetime],
) -> Result<usize> {
    liveness_in(
        tensor_bytes,
        is_constant,
        graph_input,
        graph_outputs,
        ops,
        buffer_of,
        lifetimes,
    )
}

/// [`liveness`] on any [`Cells`] storage (the interpreter's scratch may be packed into the
/// arena).
pub(crate) fn liveness_in<I, C, B, L>(
    tensor_bytes: &[usize],
    is_constant: &C,
    graph_input: u16,
    graph_outputs: &[u16],
    ops: I,
    buffer_of: &mut B,
    lifetimes: &mut L,
) -> Result<usize>
where
    I: Iterator<Item = OpIo> + Clone,
    C: Cells<bool> + ?Sized,
    B: Cells<u16> + ?Sized,
    L: Cells<Lifetime> + ?Sized,
{
    let n_tensors = tensor_bytes.len();
    if is_constant.len() != n_tensors || buffer_of.len() != n_tensors {
        return Err(Error::PlanCapacity);
    }
    for &t in graph_outputs.iter().chain([graph_input].iter()) {
        if is_constant.get(usize::from(t)) != Some(false) {
            return Err(Error::PlanBadGraphTensor);
        }
    }
    for t in 0..n_tensors {
        buffer_of.set(t, NO_BUFFER)?;
    }
    let capacity = lifetimes.len().min(usize::from(NO_BUFFER));
    let mut n_buffers = 0usize;
    let input_bytes = *tensor_bytes
        .get(usize::from(graph_input))
        .ok_or(Error::PlanBadGraphTensor)?;
    let b = push_buffer(lifetimes, capacity, &mut n_buffers, input_bytes, 0)?;
    set(buffer_of, graph_input, b).map_err(|_| Error::PlanBadGraphTensor)?;

    let mut n_ops = 0u16;
    for (k, op) in ops.clone().enumerate() {
        // Op indices and `n_ops` are u16 (`Lifetime`): at most `u16::MAX` ops.
        let at = u16::try_from(k).map_err(|_| Error::PlanCapacity)?;
        n_ops = at.checked_add(1).ok_or(Error::PlanCapacity)?;
        let bad_id = Error::PlanBadTensorId { op: k };
        let inputs = op.inputs().ok_or(bad_id)?;
        for &t in inputs {
            if is_constant.get(usize::from(t)).ok_or(bad_id)? {
                continue;
            }
            extend(buffer_of, lifetimes, t, n_buffers, at)
                .ok_or(Error::PlanBadProducer { op: k })??;
        }

        let out_bytes = *tensor_bytes.get(usize::from(op.output)).ok_or(bad_id)?;
        let out_free = is_constant.get(usize::from(op.output)) == Some(false)
            && buffer_of.get(usize::from(op.output)) == Some(NO_BUFFER);
        if !out_free {
            return Err(Error::PlanBadProducer { op: k });
        }
        let shared = match op.reuse {
            Reuse::None => None,
            Reuse::Alias | Reuse::InPlace => {
                let bad_reuse = Error::PlanBadReuse { op: k };
                let src = *inputs.first().ok_or(bad_reuse)?;
                if tensor_bytes.get(usize::from(src)) != Some(&out_bytes) {
                    return Err(bad_reuse);
                }
                // Input 0 was checked above: a constant, or a tensor with a buffer.
                let src_buffer = buffer(buffer_of, src, n_buffers);
                match (op.reuse, src_buffer) {
                    (Reuse::Alias, None) => return Err(bad_reuse),
                    (Reuse::Alias, b) => b,
                    (_, Some(b)) if !used_after(ops.clone(), k, b, &*buffer_of, graph_outputs) => {
                        Some(b)
                    }
                    _ => None,
                }
            }
        };
        let b = match shared {
            Some(b) => b,
            None => push_buffer(lifetimes, capacity, &mut n_buffers, out_bytes, at)?,
        };
        set(buffer_of, op.output, b).map_err(|_| bad_id)?;
    }

    for &t in graph_outputs {
        extend(buffer_of, lifetimes, t, n_buffers, n_ops).ok_or(Error::PlanBadGraphTensor)??;
    }
    // The scratch buffers, after every tensor's, each live at its op only.
    for (k, op) in ops.enumerate() {
        if op.scratch > 0 {
            let at = u16::try_from(k).map_err(|_| Error::PlanCapacity)?;
            push_buffer(lifetimes, capacity, &mut n_buffers, op.scratch, at)?;
        }
    }
    Ok(n_buffers)
}

/// Extends the lifetime of tensor `t`'s buffer to op `at`; `None` if `t` has no buffer yet.
fn extend<B, L>(
    buffer_of: &B,
    lifetimes: &mut L,
    t: u16,
    n_buffers: usize,
    at: u16,
) -> Option<Result<()>>
where
    B: Cells<u16> + ?Sized,
    L: Cells<Lifetime> + ?Sized,
{
    let b = usize::from(buffer(buffer_of, t, n_buffers)?);
    let mut lt = lifetimes.get(b)?;
    lt.last = lt.last.max(at);
    Some(lifetimes.set(b, lt))
}

/// Appends buffer `*n_buffers` of `bytes` (rounded up to `ARENA_ALIGN`), live from op `first`.
fn push_buffer<L: Cells<Lifetime> + ?Sized>(
    lifetimes: &mut L,
    capacity: usize,
    n_buffers: &mut usize,
    bytes: usize,
    first: u16,
) -> Result<u16> {
    if *n_buffers >= capacity {
        return Err(Error::PlanCapacity);
    }
    let b = u16::try_from(*n_buffers).map_err(|_| Error::PlanCapacity)?;
    lifetimes.set(
        *n_buffers,
        Lifetime {
            size: align_up(bytes).ok_or(Error::ModelSizeOverflow)?,
            first,
            last: first,
        },
    )?;
    *n_buffers += 1;
    Ok(b)
}

/// The buffer of tensor `t` if it has one of the `n_buffers` assigned so far.
fn buffer<B: Cells<u16> + ?Sized>(buffer_of: &B, t: u16, n_buffers: usize) -> Option<u16> {
    let b = buffer_of.get(usize::from(t))?;
    (usize::from(b) < n_buffers).then_some(b)
}

/// `buffer_of[t] = b`; an error if `t` is out of range.
fn set<B: Cells<u16> + ?Sized>(buffer_of: &mut B, t: u16, b: u16) -> Result<()> {
    buffer_of.set(usize::from(t), b)
}

/// Whether buffer `b` holds a graph output or is read by an op after op `k`.
///
/// Tensors that will join `b` later (aliases, in-place outputs) are produced by an op reading a
/// tensor already in `b`, so looking at the tensors assigned by op `k` suffices.
fn used_after<I: Iterator<Item = OpIo>, B: Cells<u16> + ?Sized>(
    ops: I,
    k: usize,
    b: u16,
    buffer_of: &B,
    graph_outputs: &[u16],
) -> bool {
    let in_b = |t: &u16| buffer_of.get(usize::from(*t)) == Some(b);
    graph_outputs.iter().any(in_b)
        || ops
            .skip(k.saturating_add(1))
            .any(|op| op.inputs().unwrap_or(&[]).iter().any(in_b))
}
