//! The owned model buffers live in [`crate::model_file`] (tch-free, so the importers and the fuzz
//! crate use them too); re-exported here where the exporter has always found them.

pub use crate::model_file::*;
