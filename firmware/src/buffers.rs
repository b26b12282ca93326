//! The firmware's static memory: the arena and the I/O buffers, in `.bss`, handed out once.

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::board::{ARENA_BYTES, MAX_INPUT_VALUES, MAX_RECORD_BYTES, READ_CHUNK_BYTES};

/// Every buffer a run needs, sized per board ([`crate::board`]).
pub struct Buffers {
    /// The model's arena, followed by the per-op counts (8 B per op, at its end) while running;
    /// the model's loading scratch before that ([`crate::checks::check_fits`]).
    pub arena: [u8; ARENA_BYTES],
    /// One decoded input sample (raw f32 values, C·H·W).
    pub input: [f32; MAX_INPUT_VALUES],
    /// One encoded dump record (logits, then embedding).
    pub record: [u8; MAX_RECORD_BYTES],
    /// Raw bytes read from the input file.
    pub chunk: [u8; READ_CHUNK_BYTES],
}

static mut BUFFERS: Buffers = Buffers {
    arena: [0; ARENA_BYTES],
    input: [0.0; MAX_INPUT_VALUES],
    record: [0; MAX_RECORD_BYTES],
    chunk: [0; READ_CHUNK_BYTES],
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
