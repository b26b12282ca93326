//! One run of the firmware: load the model from the partition, check that it fits, run every
//! sample of the input file, write the dump, and log what happened and what it cost.
//!
//! Log lines (defmt, `info`) have a fixed `key=value` shape so that tests and `bench/device.sh` can
//! read them after `defmt-print`:
//!
//! ```text
//! board=mps2-an386 unit=instructions arena_capacity=1048576
//! model name=mnist-mlp-int8 precision=Int8 layers=3 file_bytes=51569 arena_bytes=915 input=1x28x28 classes=10 embedding_layer=1
//! layer=1 kind=LinearS8 in=Flat { n: 784 } out=Flat { n: 64 } macs=50176
//! sample=0 instructions=335315
//! layer_total=1 kind=LinearS8 samples=8 instructions=2446760 macs=401408
//! done samples=8 instructions=2682520 macs=406528
//! ```
//!
//! (`unit` is `cycles` on real hardware, and the count keys are named after it.)
//! Layer 0's count includes the input normalization (and int8 quantization) the core does first.

use denoiserep_core::{DumpHeader, Model};

use crate::board::{self, ARENA_BYTES, MAX_LAYERS};
use crate::buffers::Buffers;
use crate::checks::{check_fits, dump_header, macs, model_file};
use crate::counter::InstructionCounter;
use crate::failure::Failure;
use crate::io::{DumpFile, InputFile};
use crate::partition;

/// What a successful run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub struct Summary {
    /// Samples run.
    pub samples: u32,
    /// Instructions (cycles on hardware) over all inferences.
    pub count: u64,
}

/// Runs the model in the partition on every sample of the input file; see the module docs.
pub fn run(counter: &InstructionCounter, buffers: &mut Buffers) -> Result<Summary, Failure> {
    defmt::info!(
        "board={=str} unit={=str} arena_capacity={=usize}",
        board::NAME,
        board::COUNT_UNIT,
        ARENA_BYTES
    );
    let file = model_file(partition::partition())?;
    let model =
        Model::<MAX_LAYERS>::from_bytes_with_capacity(file).map_err(Failure::ModelRejected)?;
    log_model(&model, file.len());
    let header = dump_header(&model)?;
    check_fits(&model, &header)?;

    let input_len = model.input_len();
    let mut input = InputFile::open(input_len)?;
    let header = DumpHeader {
        n_samples: input.n_samples(),
        ..header
    };
    let mut dump = DumpFile::create(&header)?;
    let record_len = header.record_len();
    let mut per_layer = [0u64; MAX_LAYERS];
    let mut total = 0u64;
    for sample in 0..input.n_samples() {
        let x = &mut buffers.input[..input_len];
        input.read_sample(x, &mut buffers.chunk)?;
        let start = counter.count();
        let mut last = start;
        let outputs = model
            .run_with(x, &mut buffers.arena, |index, _| {
                let now = counter.count();
                if let Some(slot) = per_layer.get_mut(index) {
                    *slot += now - last;
                }
                last = now;
            })
            .map_err(|error| Failure::RunFailed { sample, error })?;
        let spent = last - start;
        total += spent;
        defmt::info!(
            "sample={=u32} {=str}={=u64}",
            sample,
            board::COUNT_UNIT,
            spent
        );
        dump.write_record(&outputs, &mut buffers.record[..record_len])?;
    }
    log_totals(&model, &per_layer, input.n_samples(), total);
    Ok(Summary {
        samples: input.n_samples(),
        count: total,
    })
}

fn log_model(model: &Model<'_, MAX_LAYERS>, file_bytes: usize) {
    let meta = model.metadata();
    let [c, h, w] = meta.input_shape;
    defmt::info!(
        "model name={=str} precision={} layers={=usize} file_bytes={=usize} arena_bytes={=usize} input={=u16}x{=u16}x{=u16} classes={=u32} embedding_layer={=u16}",
        meta.name,
        meta.precision,
        model.layers().len(),
        file_bytes,
        model.arena_size(),
        c,
        h,
        w,
        meta.num_classes,
        meta.embedding_layer
    );
    for (index, planned) in model.layers().iter().enumerate() {
        defmt::info!(
            "layer={=usize} kind={} in={} out={} macs={=u64}",
            index,
            planned.layer.kind(),
            planned.input.shape,
            planned.output.shape,
            macs(planned)
        );
    }
}

fn log_totals(model: &Model<'_, MAX_LAYERS>, per_layer: &[u64], samples: u32, total: u64) {
    let mut all_macs = 0u64;
    for (index, (planned, &spent)) in model.layers().iter().zip(per_layer).enumerate() {
        let macs = macs(planned) * u64::from(samples);
        all_macs += macs;
        defmt::info!(
            "layer_total={=usize} kind={} samples={=u32} {=str}={=u64} macs={=u64}",
            index,
            planned.layer.kind(),
            samples,
            board::COUNT_UNIT,
            spent,
            macs
        );
    }
    defmt::info!(
        "done samples={=u32} {=str}={=u64} macs={=u64}",
        samples,
        board::COUNT_UNIT,
        total,
        all_macs
    );
}
