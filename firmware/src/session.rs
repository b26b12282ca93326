//! One run of the firmware: load the model from the partition, check that it fits, run every
//! sample of the input file, write the dump, and log what happened and what it cost.
//!
//! Log lines (defmt, `info`) have a fixed `key=value` shape so that tests, the host's
//! `denoiserep report` (`host-trainer/src/report/device_log.rs`) and `bench/device.sh` can read
//! them after `defmt-print`:
//!
//! ```text
//! board=mps2-an386 unit=instructions arena_capacity=1048576 tensor_capacity=32
//! model name=residual-dw-int8 precision=Int8 ops=6 tensors=7 file_bytes=463 arena_bytes=1731 input=1x12x12 classes=10 embedding_tensor=5
//! op=0 kind=conv2d in=1x12x12 out=4x12x12 macs=5184
//! op=2 kind=add in=4x12x12,4x12x12 out=4x12x12 macs=0
//! sample=0 instructions=494960
//! op_total=0 kind=conv2d samples=4 instructions=797520 macs=20736
//! done samples=4 instructions=1979960 macs=41632
//! stack model_bytes=1216 load_peak_bytes=5244 run_peak_bytes=3028
//! ```
//!
//! (`unit` is `cycles` on real hardware, and the count keys are named after it.) `in=` lists the
//! shapes of every input of the op, comma-separated; shapes are dims joined by `x`. Op 0's count
//! includes the input normalization (and int8 quantization) and the copy of constant tensors that
//! the core does before it. `stack` reports `size_of` the model value and the peak stack (painted,
//! from the top of the stack, so including `main`'s frame) while loading and while running.

use core::mem::size_of;

use denoiserep_core::format::graph::Inputs;
use denoiserep_core::{DumpHeader, Error, Shape};

use crate::board::{self, ARENA_BYTES, TENSOR_CAPACITY};
use crate::buffers::Buffers;
use crate::checks::{check_fits, dump_header, model_file, node_macs, FirmwareModel};
use crate::counter::InstructionCounter;
use crate::failure::Failure;
use crate::io::{DumpFile, InputFile};
use crate::{partition, stack};

/// What a successful run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub struct Summary {
    /// Samples run.
    pub samples: u32,
    /// Instructions (cycles on hardware) over all inferences.
    pub count: u64,
}

/// A shape logged as its dims joined by `x` (`16x32x32`).
struct Dims(Shape);

impl defmt::Format for Dims {
    fn format(&self, f: defmt::Formatter<'_>) {
        for (i, d) in self.0.dims().iter().enumerate() {
            if i > 0 {
                defmt::write!(f, "x");
            }
            defmt::write!(f, "{=u32}", d);
        }
    }
}

/// The shapes of an op's inputs, comma-separated (`4x12x12,4x12x12`).
struct InShapes<'m, 'a> {
    model: &'m FirmwareModel<'a>,
    inputs: Inputs,
}

impl defmt::Format for InShapes<'_, '_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        for (i, &id) in self.inputs.ids().iter().enumerate() {
            if i > 0 {
                defmt::write!(f, ",");
            }
            match self.model.tensor(id) {
                Some(t) => defmt::write!(f, "{}", Dims(t.shape)),
                None => defmt::write!(f, "?"),
            }
        }
    }
}

/// Runs the model in the partition on every sample of the input file; see the module docs.
pub fn run(counter: &InstructionCounter, buffers: &mut Buffers) -> Result<Summary, Failure> {
    defmt::info!(
        "board={=str} unit={=str} arena_capacity={=usize} tensor_capacity={=usize}",
        board::NAME,
        board::COUNT_UNIT,
        ARENA_BYTES,
        TENSOR_CAPACITY
    );
    let file = model_file(partition::partition())?;
    // Matched by reference: moving the model out of the `Result` would copy it (≈ 2 KiB at
    // T = 64) into a second stack slot.
    let loaded = load(file);
    let model = match &loaded {
        Ok(model) => model,
        Err(error) => return Err(Failure::ModelRejected(*error)),
    };
    // The peak so far is the load's (main painted the stack before calling `run`).
    let load_peak = stack::peak();
    stack::paint();
    log_model(model, file.len())?;
    let header = dump_header(model)?;
    check_fits(model, &header)?;

    let Buffers {
        arena,
        input: input_values,
        record,
        chunk,
        op_counts,
    } = buffers;
    let input_len = model.input_len();
    let mut input = InputFile::open(input_len)?;
    let header = DumpHeader {
        n_samples: input.n_samples(),
        ..header
    };
    let mut dump = DumpFile::create(&header)?;
    let record_len = header.record_len();
    op_counts.fill(0);
    let mut total = 0u64;
    for sample in 0..input.n_samples() {
        let x = &mut input_values[..input_len];
        input.read_sample(x, chunk)?;
        let start = counter.count();
        let mut last = start;
        let outputs = model
            .run_with(x, arena, |step| {
                let now = counter.count();
                if let Some(slot) = op_counts.get_mut(step.index) {
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
        dump.write_record(&outputs, &mut record[..record_len])?;
    }
    log_totals(model, op_counts, input.n_samples(), total)?;
    defmt::info!(
        "stack model_bytes={=usize} load_peak_bytes={=usize} run_peak_bytes={=usize}",
        size_of::<FirmwareModel<'_>>(),
        load_peak,
        stack::peak_since_paint()
    );
    Ok(Summary {
        samples: input.n_samples(),
        count: total,
    })
}

/// Decodes, validates and plans the model. Never inlined: the core's planning scratch
/// (`[_; T]` arrays) then lives in this frame, which is gone before the first inference, instead
/// of in `run`'s frame for the whole run.
/// Returns the core's `Result` as is: mapping its error would copy the model into a new `Result`.
#[inline(never)]
fn load(file: &[u8]) -> Result<FirmwareModel<'_>, Error> {
    FirmwareModel::from_bytes_with_capacity(file)
}

/// The `model` line and one `op=` line per op.
fn log_model(model: &FirmwareModel<'_>, file_bytes: usize) -> Result<(), Failure> {
    let info = model.info();
    defmt::info!(
        "model name={=str} precision={} ops={=usize} tensors={=usize} file_bytes={=usize} arena_bytes={=usize} input={} classes={=usize} embedding_tensor={=u16}",
        info.name,
        model.precision(),
        model.op_count(),
        model.tensor_count(),
        file_bytes,
        model.arena_size(),
        Dims(model.input_info().shape),
        model.num_classes(),
        info.embedding
    );
    for (index, node) in model.nodes().enumerate() {
        let node = node.map_err(Failure::ModelRejected)?;
        let out = model
            .tensor(node.output)
            .map_or(Shape::default(), |t| t.shape);
        defmt::info!(
            "op={=usize} kind={=str} in={} out={} macs={=u64}",
            index,
            node.op.kind().name(),
            InShapes {
                model,
                inputs: node.inputs,
            },
            Dims(out),
            node_macs(model, &node)
        );
    }
    Ok(())
}

/// One `op_total=` line per op and the `done` line.
fn log_totals(
    model: &FirmwareModel<'_>,
    op_counts: &[u64],
    samples: u32,
    total: u64,
) -> Result<(), Failure> {
    let mut all_macs = 0u64;
    for (index, (node, &spent)) in model.nodes().zip(op_counts).enumerate() {
        let node = node.map_err(Failure::ModelRejected)?;
        let macs = node_macs(model, &node) * u64::from(samples);
        all_macs += macs;
        defmt::info!(
            "op_total={=usize} kind={=str} samples={=u32} {=str}={=u64} macs={=u64}",
            index,
            node.op.kind().name(),
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
    Ok(())
}
