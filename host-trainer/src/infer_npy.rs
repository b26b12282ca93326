//! `denoiserep infer --inputs X.npy --outputs Y.npy [--embeddings E.npy] [--dequantize]`: a
//! batch of inputs from a NumPy file run through `denoiserep-core`, the outputs written as NumPy
//! files, so that another runtime's outputs can be compared with the core's in a few lines of
//! Python (`docs/interop.md`, "NumPy in and out"). No data set is involved.
//!
//! **Inputs** (`X.npy`, [`crate::npy`]): shape `[N, …input dims]` with `N ≥ 1`, the per-sample
//! dims exactly the model's input tensor's (`[N, C, H, W]` for a `[C, H, W]` model; no
//! reshaping, so a layout mix-up is refused rather than run), C order:
//! * `<f4`: raw values as [`Model::run`] takes them (e.g. pixels in `[0, 1]`): the core computes
//!   `x̂ = (x − μ[c]) / σ[c]` and, for an int8 model, `q = clamp(round(x̂ / s) + zp, −128, 127)`;
//! * `|i1`: the int8 input tensor's values as is ([`Model::run_quantized`]: already normalized
//!   and quantized with the input's scale `s` and zero point `zp`), as TFLite-Micro takes its
//!   input; int8 models only.
//!
//! **Outputs**: `Y.npy` holds the logits, shape `[N, …logits dims]`; `--embeddings E.npy` the
//! embedding, `[N, …embedding dims]`. An f32 model's are `<f4`; an int8 model's are the raw
//! output tensors `|i1` (`real = s·(q − zp)` with the tensor's own `s`, `zp`), or with
//! `--dequantize` those real values as `<f4` (for an f32 model `--dequantize` changes nothing).
//! Row `i` is sample `i`, whatever the thread count. Files are written atomically, and only after
//! every sample ran: an error leaves existing files as they were.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use denoiserep_core::{DType, Model, Precision, TensorView};

use crate::infer::read_model;
use crate::npy::{self, shape_text, NpyArray, NpyData};
use crate::parallel::par_chunks;
use crate::run::write_atomic;

/// What `denoiserep infer --inputs` was asked to do.
#[derive(Debug, Clone)]
pub struct NpyRequest {
    pub model: PathBuf,
    pub inputs: PathBuf,
    pub outputs: PathBuf,
    pub embeddings: Option<PathBuf>,
    /// Write an int8 model's outputs as dequantized f32.
    pub dequantize: bool,
    /// Worker threads (≥ 1).
    pub threads: usize,
}

/// What `denoiserep infer --inputs` did.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyReport {
    pub name: String,
    pub precision: Precision,
    /// Samples run (`N`).
    pub samples: usize,
    /// The input's dtype, `<f4` or `|i1`.
    pub input_dtype: &'static str,
    /// Shape and dtype of `--outputs`.
    pub logits_shape: Vec<usize>,
    pub logits_dtype: &'static str,
    /// Shape and dtype of `--embeddings` (what it holds or would hold).
    pub embedding_shape: Vec<usize>,
    pub embedding_dtype: &'static str,
    /// Wall seconds of the command.
    pub seconds: f64,
}

/// Reads `--inputs` and checks it against the model's input tensor `dims` (and dtype: int8
/// inputs need an int8 model). Errors name the file.
fn read_inputs(path: &Path, model: &Model<'_>, model_path: &Path) -> Result<(usize, NpyData)> {
    let flag = || format!("--inputs {}", path.display());
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", flag()))?;
    let NpyArray { shape, data } = npy::decode(&bytes).with_context(flag)?;
    let dims: Vec<usize> = model
        .input_info()
        .shape
        .dims()
        .iter()
        .map(|&d| d as usize)
        .collect();
    let expected = || format!("(N, {})", shape_text(&dims).trim_matches(['(', ')', ',']));
    if shape.len() != dims.len() + 1 || shape[1..] != dims[..] {
        bail!(
            "{}: shape {}, the model's input is {} per sample: expected {} (batch first, C order)",
            flag(),
            shape_text(&shape),
            shape_text(&dims),
            expected()
        );
    }
    if shape[0] == 0 {
        bail!("{}: shape {} holds no sample", flag(), shape_text(&shape));
    }
    if matches!(data, NpyData::I8(_)) && model.precision() != Precision::Int8 {
        bail!(
            "{}: int8 ('|i1') inputs are fed as the quantized input tensor, but model {} is f32; \
             give its raw inputs as float32 ('<f4')",
            flag(),
            model_path.display()
        );
    }
    Ok((shape[0], data))
}

/// One output of every sample: its per-sample dims and values (raw int8, or real values).
#[derive(Debug, Clone, PartialEq)]
struct Column {
    dims: Vec<usize>,
    data: NpyData,
}

impl Column {
    /// An empty column for tensor `id` of `model`: int8 raw unless `dequantize`.
    fn for_tensor(model: &Model<'_>, id: u16, dequantize: bool) -> Result<Self> {
        let info = model
            .tensor(id)
            .ok_or_else(|| anyhow!("output tensor {id} is missing from the model"))?;
        let dims = info.shape.dims().iter().map(|&d| d as usize).collect();
        let data = match info.dtype {
            DType::I8(_) if !dequantize => NpyData::I8(Vec::new()),
            _ => NpyData::F32(Vec::new()),
        };
        Ok(Self { dims, data })
    }

    /// Appends one sample's tensor: int8 values as they are, or real values.
    fn push(&mut self, t: &TensorView<'_>) -> Result<()> {
        let n: usize = self.dims.iter().product();
        if t.len() != n {
            bail!("an output has {} values, its tensor {n}", t.len());
        }
        match (&mut self.data, t.data) {
            (NpyData::I8(v), denoiserep_core::TensorData::I8 { values, .. }) => {
                v.extend_from_slice(values)
            }
            (NpyData::F32(v), _) => {
                let start = v.len();
                v.resize(start + n, 0.0);
                t.dequantize_into(&mut v[start..])
                    .map_err(|e| anyhow!("{e}"))?;
            }
            (NpyData::I8(_), _) => bail!("an int8 output came back as f32"),
        }
        Ok(())
    }

    /// Appends the rows of `other` (the next samples).
    fn append(&mut self, other: Column) {
        match (&mut self.data, other.data) {
            (NpyData::I8(a), NpyData::I8(b)) => a.extend(b),
            (NpyData::F32(a), NpyData::F32(b)) => a.extend(b),
            _ => unreachable!("columns of one tensor share their dtype"),
        }
    }

    /// The `[N, …dims]` array of the `n` samples.
    fn into_array(self, n: usize) -> NpyArray {
        NpyArray {
            shape: std::iter::once(n).chain(self.dims).collect(),
            data: self.data,
        }
    }
}

/// `denoiserep infer --inputs` (module doc).
pub fn infer_npy(req: &NpyRequest) -> Result<NpyReport> {
    let started = Instant::now();
    let bytes = read_model(&req.model)?;
    let model = Model::from_bytes(&bytes).map_err(|e| anyhow!("{e}"))?;
    let (n, inputs) = read_inputs(&req.inputs, &model, &req.model)?;
    let input_dtype = inputs.dtype();
    let info = *model.info();
    let len = model.input_len();
    let columns = || -> Result<(Column, Column)> {
        Ok((
            Column::for_tensor(&model, info.logits, req.dequantize)?,
            Column::for_tensor(&model, info.embedding, req.dequantize)?,
        ))
    };
    let parts = par_chunks(n, req.threads, |range| -> Result<(Column, Column)> {
        let (mut logits, mut embedding) = columns()?;
        let mut arena = vec![0u8; model.arena_size()];
        for i in range {
            let run = match &inputs {
                NpyData::F32(x) => model.run(&x[i * len..(i + 1) * len], &mut arena),
                NpyData::I8(q) => model.run_quantized(&q[i * len..(i + 1) * len], &mut arena),
            };
            let o = run.map_err(|e| {
                anyhow!(
                    "--inputs {}: sample {i}: running model {}: {e}",
                    req.inputs.display(),
                    req.model.display()
                )
            })?;
            logits.push(&o.logits)?;
            embedding.push(&o.embedding)?;
        }
        Ok((logits, embedding))
    })?;
    let (mut logits, mut embedding) = columns()?;
    for (l, e) in parts {
        logits.append(l);
        embedding.append(e);
    }
    let (logits, embedding) = (logits.into_array(n), embedding.into_array(n));
    let report = NpyReport {
        name: info.name.to_string(),
        precision: model.precision(),
        samples: n,
        input_dtype,
        logits_shape: logits.shape.clone(),
        logits_dtype: logits.data.dtype(),
        embedding_shape: embedding.shape.clone(),
        embedding_dtype: embedding.data.dtype(),
        seconds: 0.0,
    };
    // Encode both before writing either: a failure leaves no half-written pair behind.
    let logits = npy::encode(&logits)?;
    let embedding = req
        .embeddings
        .as_ref()
        .map(|p| npy::encode(&embedding).map(|b| (p, b)))
        .transpose()?;
    write_atomic(&req.outputs, &logits)
        .with_context(|| format!("--outputs {}", req.outputs.display()))?;
    if let Some((path, bytes)) = embedding {
        write_atomic(path, &bytes).with_context(|| format!("--embeddings {}", path.display()))?;
    }
    Ok(NpyReport {
        seconds: started.elapsed().as_secs_f64(),
        ..report
    })
}
