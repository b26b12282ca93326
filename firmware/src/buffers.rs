//! The firmware's static memory: the arena and the I/O buffers, in `.bss`, handed out once.

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::board::{
    ARENA_BYTES, MAX_INPUT_VALUES, MAX_RECORD_BYTES, READ_CHUNK_BYTES, TENSOR_CAPACITY,
};

/// Every buffer a run needs, sized per board ([`crate::board`]).
pub struct Buffers {
    /// The model's arena ([`denoiserep_core::Model::arena_size`] must not exceed its length).
    pub arena: [u8; ARENA_BYTES],
    /// One decoded input sample (raw f32 values, C·H·W).
    pub input: [f32; MAX_INPUT_VALUES],
    /// One encoded dump record (logits, then embedding).
    pub record: [u8; MAX_RECORD_BYTES],
    /// Raw bytes read from the input file.
    pub chunk: [u8; READ_CHUNK_BYTES],
    /// Per-op counts (instructions or cycles) summed over the samples; a loaded model has fewer
    /// ops than tensors, so one slot per tensor suffices (8 B each).
    pub op_counts: [u64; TENSOR_CAPACITY],
}

static mut BUFFERS: Buffers = Buffers {
    arena: [0; ARENA_BYTES],
    input: [0.0; MAX_INPUT_VALUES],
    record: [0; MAX_RECORD_BYTES],
    chunk: [0; READ_CHUNK_BYTES],
    op_counts: [0; TENSOR_CAPACITY],
};
static TAKEN: AtomicBool = AtomicBool::new(false);

impl Buffers {
    /// The buffers, the first time; `None` afterwards (so there is never a second `&mut`).
    pub fn take() -> Option<&'static mut Buffers> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: `TAKEN` makes this the only reference ever created to `BUFFERS`.
        Some(unsafe { &mut *addr_of_mut!(BUFFERS) })
    }
}
