//! Table lookup, int8 (any elementwise int8 function: GELU, sigmoid, tanh, …).

use crate::error::{Error, Result};

/// Entries of an int8 lookup table: one per int8 input value.
pub const LUT_S8_LEN: usize = 256;

/// `output[i] = table[input[i] + 128]`: the table lists the output for every input value from
/// −128 to 127, in that order (an exporter computes it from the input and output quantization,
/// e.g. `quantize(gelu(dequantize(q, s_in)), s_out)`). Exact; no arithmetic.
///
/// `Err(KernelBadArguments)` unless `table` holds exactly [`LUT_S8_LEN`] values and the input and
/// output lengths are equal.
pub fn lut_s8(table: &[i8], input: &[i8], output: &mut [i8]) -> Result<()> {
    let table = <&[i8; LUT_S8_LEN]>::try_from(table).map_err(|_| Error::KernelBadArguments)?;
    if input.len() != output.len() {
        return Err(Error::KernelBadArguments);
    }
    for (o, &q) in output.iter_mut().zip(input) {
        // q + 128 as an index: flipping the sign bit of the two's-complement byte.
        *o = table[usize::from(q as u8 ^ 0x80)];
    }
    Ok(())
}
