//! Models from other formats, turned into the core's model format ([`crate::model_file`]).
//! tch-free: the fuzz crate (`fuzz/`) builds it without libtorch.
//!
//! * [`onnx`]: the ONNX schema, graph decoder and architecture mapping behind
//!   `denoiserep import MODEL.onnx` (the trainer then loads the weights);
//! * [`tflite_import`]: an int8 TensorFlow Lite flatbuffer (`denoiserep import MODEL.tflite`),
//!   run by the core bit for bit as TFLite-Micro runs it (`docs/interop.md`).

pub mod onnx;
pub mod tflite_import;

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::model_file::ModelFile;
pub use tflite_import::import_tflite;

/// The file extensions [`import_file`] reads, with what each is.
pub const IMPORT_EXTENSIONS: &[(&str, &str)] = &[("tflite", "an int8 TensorFlow Lite model")];

/// Imports the model at `path`, picked by its extension (case-insensitive; see
/// [`IMPORT_EXTENSIONS`]). The core model is named after the file stem; every error names the
/// file.
pub fn import_file(path: &Path) -> Result<ModelFile> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let read = || std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let model = match ext.as_deref() {
        Some("tflite") => import_tflite(&read()?, &name),
        _ => {
            let list: Vec<String> = IMPORT_EXTENSIONS
                .iter()
                .map(|(e, what)| format!(".{e} ({what})"))
                .collect();
            bail!(
                "{}: cannot tell the model format from the extension; supported: {}",
                path.display(),
                list.join(", ")
            );
        }
    };
    model.with_context(|| format!("importing {}", path.display()))
}
