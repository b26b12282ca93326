//! The model partition: a flash region the linker leaves empty (memory.x `MODEL`), holding one
//! model file at its start. Its length comes from the file's own header
//! ([`denoiserep_core::file_len`]); the rest of the partition is ignored.

use core::ptr::addr_of;

use crate::exit::Failure;

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

/// The model file at the start of `partition`: exactly the bytes its header announces.
/// An erased or empty partition, or a broken header, is the core's error
/// ([`Failure::ModelRejected`]); a file longer than the partition is [`Failure::ModelTooLarge`].
pub fn model_file(partition: &[u8]) -> Result<&[u8], Failure> {
    let file_len = denoiserep_core::file_len(partition).map_err(Failure::ModelRejected)?;
    partition.get(..file_len).ok_or(Failure::ModelTooLarge {
        file_len,
        partition_len: partition.len(),
    })
}
