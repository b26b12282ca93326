//! Reshape / Flatten: the same values under a new shape (equal element count, same dtype). The
//! planner gives the output the input's bytes, so nothing runs.

use super::same_dtype;
use crate::error::{Error, Result};
use crate::tensor::TensorInfo;

pub(super) fn prepare(index: u16, input: &TensorInfo, output: &TensorInfo) -> Result<()> {
    same_dtype(index, input, output)?;
    if input.shape.numel() != output.shape.numel() {
        return Err(Error::ShapeMismatch { op: index });
    }
    Ok(())
}
