//! One run of the firmware: load the model from the partition, check that it fits, run every
//! sample of the input file, write the dump, and log what happened and what it cost.
//!
//! Log lines (defmt, `info`) have a fixed `key=value` shape so that tests, the host's
//! `denoiserep report` (`host-trainer/src/report/device_log.rs`) and `bench/device.sh` can read
//! them after `defmt-print`:
//!
//! ```text
//! board=mps2-an386 unit=instructions arena_capacity=1048576 tensor_capacity=128
//! model name=residual-dw-int8 precision=Int8 ops=6 tensors=7 file_bytes=463 arena_bytes=1731 input=1x12x12 classes=10 embedding_tensor=5
//! op=0 kind=conv2d in=1x12x12 out=4x12x12 macs=5184
//! op=2 kind=add in=4x12x12,4x12x12 out=4x12x12 macs=0
//! sample=0 instructions=489800
//! op_total=0 kind=conv2d samples=4 instructions=797800 macs=20736
//! done samples=4 instructions=1959280 macs=41632
//! stack model_bytes=1088 load_peak_bytes=2988 run_peak_bytes=3020
//! ```
//!
//! (`unit` is `cycles` on real hardware, and the count keys are named after it.) `in=` lists the
//! shapes of every input of the op, comma-separated; shapes are dims joined by `x`. Op 0's count
//! includes the input normalization (and int8 quantization) and the copy of constant tensors that
//! the core does before it. `stack` reports `size_of` the model value and the peak stack (painted,
//! from the top of the stack, so including `main`'s frame) while loading and while running; the
//! device tests hold both to 4 KB (docs/firmware.md, "RAM").

use core::mem::size_of;

use denoiserep_core::format::graph::Inputs;
use denoiserep_core::{DumpHeader, Error, Shape};

use crate::board::{self, ARENA_BYTES, TENSOR_CAPACITY};
use crate::buffers::Buffers;
use crate::checks::{
    check_fits, dump_header, model_file, node_macs, FirmwareModel, OP_COUNT_BYTES,
};
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
    // Built in this frame's `place` (which `run`, inlined into `main`, keeps for the whole run)
    // and only borrowed afterwards: returning the model by value would copy it (≈ 1.5 KiB at
    // T = 32) into a second stack slot.
    let mut place = None;
    let model = load(file, &mut place, &mut buffers.arena).map_err(Failure::ModelRejected)?;
    // The peak so far is the load's (main painted the stack before calling `run`).
    let load_peak = stack::peak();
    stack::paint();
    serve(model, file.len(), load_peak, counter, buffers)
}

/// Everything after the load: the log, the checks, the files and the sample loop. Never inlined,
/// so that its state (files, counters, loop variables) is not in `run`'s frame, which is live
/// while loading; only the model itself is (borrowed here, never copied).
#[inline(never)]
fn serve(
    model: &FirmwareModel<'_>,
    file_bytes: usize,
    load_peak: usize,
    counter: &InstructionCounter,
    buffers: &mut Buffers,
) -> Result<Summary, Failure> {
    log_model(model, file_bytes)?;
    let header = dump_header(model)?;
    check_fits(model, &header)?;

    let Buffers {
        arena,
        input: input_values,
        record,
        chunk,
    } = buffers;
    // The per-op counts take the arena's tail (`check_fits` counted them in its need).
    let counts_at = ARENA_BYTES.saturating_sub(model.op_count() * OP_COUNT_BYTES);
    let (arena, op_counts) = arena.split_at_mut(counts_at);
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
                let at = step.index * OP_COUNT_BYTES;
                if let Some(cell) = op_counts.get_mut(at..at + OP_COUNT_BYTES) {
                    let mut sum = [0u8; OP_COUNT_BYTES];
                    sum.copy_from_slice(cell);
                    cell.copy_from_slice(&(u64::from_le_bytes(sum) + (now - last)).to_le_bytes());
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

/// Decodes, validates and plans the model into `place`, with the core's loading scratch (13 B per
/// tensor: the planner's arrays and the graph check's flags) in `scratch` — the arena, unused
/// until the first inference — instead of on the stack. Never inlined: the load's frames are
/// gone before the first inference instead of staying in `run`'s frame for the whole run.
#[inline(never)]
fn load<'p, 'a>(
    file: &'a [u8],
    place: &'p mut Option<FirmwareModel<'a>>,
    scratch: &mut [u8],
) -> Result<&'p FirmwareModel<'a>, Error> {
    FirmwareModel::from_bytes_in_place_with_scratch(file, place, scratch)
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
    op_counts: &[u8],
    samples: u32,
    total: u64,
) -> Result<(), Failure> {
    let mut all_macs = 0u64;
    for (index, (node, cell)) in model
        .nodes()
        .zip(op_counts.chunks_exact(OP_COUNT_BYTES))
        .enumerate()
    {
        let node = node.map_err(Failure::ModelRejected)?;
        let mut sum = [0u8; OP_COUNT_BYTES];
        sum.copy_from_slice(cell);
        let spent = u64::from_le_bytes(sum);
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
