//! The model partition: a flash region the linker leaves empty (memory.x `MODEL`), holding one
//! model file at its start. Its length comes from the file's own header
//! ([`denoiserep_core::file_len`]); the rest of the partition is ignored.

use core::ptr::addr_of;

extern "C" {
    static __model_partition_start: u8;
    static __model_partition_end: u8;
}

/// The whole model partition (memory.x `MODEL`), read-only.
pub fn partition() -> &'static [u8] {
    // SAFETY: memory.x defines both symbols as the bounds of the MODEL region, which is mapped
    // (flash), holds no linker output and is never written while the firmware runs.
    unsafe {
        let start = addr_of!(__model_partition_start);
        let end = addr_of!(__model_partition_end);
        core::slice::from_raw_parts(start, end as usize - start as usize)
    }
}
