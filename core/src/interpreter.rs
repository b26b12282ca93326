//! The interpreter: a validated, planned model ([`Model::from_bytes`]) and its evaluation
//! ([`Model::run`]).
//!
//! Prepare/eval split as in tflite-micro: `from_bytes` decodes and checks everything (header,
//! CRC, tensor table, that every op reads only the input, constants or tensors produced by an
//! *earlier* op, that every tensor has one producer, each op's parameters and shapes) and plans
//! the arena; `run` only dispatches to kernels and cannot fail except for a wrong input length
//! or a small arena. The model borrows the file bytes (which may live in flash) and the caller
//! owns the arena; both must outlive the returned outputs.
//!
//! # What the `Model` value holds
//!
//! The decoded model info and, per tensor, two words: where its entry starts in the tensor table
//! and its arena offset (8 B per tensor on a 32-bit target) — nothing per op, and no shapes or
//! dtypes: ops are decoded from the file again at every run (varints and borrowed slices; a few
//! dozen instructions per op), and so is each tensor's entry when an op touches it
//! ([`decode_entry`]: a few varints, no copy of a constant's data; once per op and tensor, and
//! not again for the tensor the previous op wrote), so RAM grows by 8 B per tensor
//! and not at all with the op count. `T` is the tensor capacity (default [`MAX_TENSORS`]);
//! firmware picks a `T` that fits its stack (`Model<'_, 160>` is 1 348 B on thumbv7em).
//!
//! # Stack use
//!
//! Loading builds the model in place and keeps the planner's scratch (13 bytes per tensor slot
//! on a 32-bit target: constant flags, buffers, lifetimes, placement order; the tensor sizes and
//! per-buffer offsets share the model's own offsets, see `Model::plan_with`), the graph check's
//! and the body decoder's in functions that are never inlined, so that scratch is on the stack
//! only while loading. [`Model::from_bytes_in_place_with_scratch`] takes the planner's and the
//! graph check's scratch from caller bytes instead ([`LOAD_SCRATCH_PER_TENSOR`] per tensor of the
//! model; firmware passes its arena, unused until the first run), so nothing `T`-sized but the
//! model itself is on the stack. Returning a `Model<T>` by value ([`Model::from_bytes_with_capacity`]) and each
//! later move can cost a stack slot of its size; [`Model::from_bytes_in_place`] builds it in a
//! place the caller owns, where it stays (`firmware/src/session.rs` does so). `docs/firmware.md`
//! has the measured numbers.
//!
//! # Arena layout
//!
//! ```text
//! arena (caller's &mut [u8], any alignment)
//! ├ 0..3 bytes of alignment slack (ARENA_ALIGN − 1 at most)
//! ├ planned region   every activation tensor at its greedy-planned offset (see `planner`):
//! │                  tensors whose lifetimes overlap never share bytes; Reshape outputs alias
//! │                  their input; a standalone activation reuses its input when it dies there
//! └ constant region  constant tensors, copied from the file at the start of each run
//! ```
//!
//! [`Model::plan_size`] is the size of the two regions; [`Model::arena_size`] adds the slack, so
//! an arena of `arena_size()` bytes works at any address and one byte less fails at the worst
//! one (and `plan_size()` bytes suffice for a 4-aligned arena, one less does not).

use heapless::Vec;

use crate::arena::{align_up, aligned, f32s, f32s_mut, i8s, i8s_mut, ARENA_ALIGN};
use crate::error::{Error, Result};
use crate::format::graph::{ModelInfo, Node, OpKind};
use crate::format::{Body, Nodes};
use crate::kernels;
use crate::ops::{self, In, Out, Sharing, Values, ValuesMut};
use crate::planner::{self, ByteCells, Cells, Lifetime, OpIo, Reuse, NO_BUFFER};
use crate::tensor::{decode_entry, DType, Shape, TensorData, TensorInfo, TensorView};

/// Default tensor capacity of a [`Model`].
pub const MAX_TENSORS: usize = 256;

/// Bytes of load scratch per tensor that [`Model::from_bytes_in_place_with_scratch`] needs:
/// the planner's constant flag (1), buffer (2), lifetime (8) and placement-order entry (2).
pub const LOAD_SCRATCH_PER_TENSOR: usize = 13;

/// Bytes of load scratch per op that uses arena scratch (a Conv2d's im2col buffer) that
/// [`Model::from_bytes_in_place_with_scratch`] needs on top of [`LOAD_SCRATCH_PER_TENSOR`]: the
/// scratch buffer's lifetime (8) and placement-order entry (2).
pub const LOAD_SCRATCH_PER_SCRATCH_OP: usize = 10;

/// Arena offset marking a tensor that has no planned bytes (never produced or read).
const UNPLANNED: usize = usize::MAX;

/// One tensor as the interpreter uses it, decoded on demand from its entry in the tensor table
/// (the file, which may be in flash) plus its planned arena offset. Never stored: the `Model`
/// keeps only where each entry starts and each offset (8 B per tensor on a 32-bit target).
#[derive(Debug, Clone, Copy)]
struct Tensor<'a> {
    /// Shape and dtype (with the int8 quantization).
    info: TensorInfo,
    /// Offset of its bytes from the aligned arena base, or [`UNPLANNED`].
    offset: usize,
    /// A constant's bytes in the file, `None` for any other tensor.
    data: Option<&'a [u8]>,
}

impl Tensor<'_> {
    /// Size of the tensor in bytes, or `None` on overflow (never after a successful load).
    fn bytes(&self) -> Option<usize> {
        self.info.bytes()
    }

    /// Whether the tensor is a constant (its bytes are in the model file).
    fn is_constant(&self) -> bool {
        self.data.is_some()
    }

    /// Whether the dtype is int8.
    fn int8(&self) -> bool {
        matches!(self.info.dtype, DType::I8(_))
    }
}

/// A validated, planned model, ready to run. Borrows the model file bytes.
#[derive(Debug, Clone)]
pub struct Model<'a, const T: usize = MAX_TENSORS> {
    body: Body<'a>,
    /// Per tensor: where its entry starts in the tensor table ([`Body::tensor_table`]; the
    /// table is at most a body long, whose length is a u32). 4 B per tensor.
    entries: Vec<u32, T>,
    /// Per tensor: offset of its bytes from the aligned arena base, or [`UNPLANNED`] (4 B per
    /// tensor on a 32-bit target); then, past the tensors, the offset of each op's arena scratch
    /// (ops with [`ops::scratch_bytes`] `> 0`, in execution order). While loading it holds the
    /// tensors' byte sizes, then the planner's per-buffer offsets (see [`Model::plan`]).
    offsets: Vec<usize, T>,
    /// Bytes of the planned region (the greedy high-water mark).
    planned_bytes: usize,
    /// Bytes of the planned plus the constant region.
    plan_bytes: usize,
}

/// Where a run's input comes from: real values (normalized and, for int8, quantized by the
/// core) or an int8 tensor taken as is.
#[derive(Clone, Copy)]
enum RawInput<'x> {
    Real(&'x [f32]),
    Quantized(&'x [i8]),
}

/// What [`Model::run_with`] shows after each op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step<'r> {
    /// Index of the op (execution order).
    pub index: usize,
    /// Its kind.
    pub kind: OpKind,
    /// Id of the tensor it wrote.
    pub output_id: u16,
    /// The tensor it wrote (valid until a later op reuses its bytes).
    pub output: TensorView<'r>,
}

/// What [`Model::run`] returns: the logits and the embedding, borrowed from the arena.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outputs<'r> {
    /// The logits tensor (`ModelInfo::logits`).
    pub logits: TensorView<'r>,
    /// The embedding tensor (`ModelInfo::embedding`).
    pub embedding: TensorView<'r>,
}

impl<'a> Model<'a> {
    /// Decodes, validates and plans a model file (see `docs/model-format.md`) with room for
    /// [`MAX_TENSORS`] tensors. Zero-copy: the model borrows `bytes`. Every check happens here;
    /// see [`Error`] for what is rejected.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        Self::from_bytes_with_capacity(bytes)
    }
}

impl<'a, const T: usize> Model<'a, T> {
    /// [`Model::from_bytes`] with room for `T` tensors: a model with more is rejected with
    /// [`Error::DecodeTooManyTensors`].
    pub fn from_bytes_with_capacity(bytes: &'a [u8]) -> Result<Self> {
        // Built in place: a separate `slots` vector moved into the model afterwards would be a
        // second `T`-slot copy on the stack (see "Stack use" in the module docs).
        let mut model = Model {
            body: Body::read(bytes)?,
            entries: Vec::new(),
            offsets: Vec::new(),
            planned_bytes: 0,
            plan_bytes: 0,
        };
        model.finish_load(None)?;
        Ok(model)
    }

    /// [`Model::from_bytes_with_capacity`] into a place the caller owns, returning the model in
    /// it (`place` is `None` again on an error). Returning a `Model<T>` by value costs a stack
    /// copy of its `T` slots in most callers; this builds it where it stays (see "Stack use" in
    /// the module docs).
    pub fn from_bytes_in_place<'p>(
        bytes: &'a [u8],
        place: &'p mut Option<Self>,
    ) -> Result<&'p Self> {
        Self::load_in_place(bytes, place, None)
    }

    /// [`Model::from_bytes_in_place`] with the loading scratch (the planner's and the graph
    /// check's, [`LOAD_SCRATCH_PER_TENSOR`] bytes per tensor of the model, any alignment) in
    /// `scratch` instead of on the stack. Firmware passes its arena, which is unused until the
    /// first run (tflite-micro plans in its arena's tail the same way); the scratch bytes are
    /// garbage afterwards. A too short `scratch` fails with [`Error::LoadScratchTooSmall`] (its
    /// `need` in bytes).
    pub fn from_bytes_in_place_with_scratch<'p>(
        bytes: &'a [u8],
        place: &'p mut Option<Self>,
        scratch: &mut [u8],
    ) -> Result<&'p Self> {
        Self::load_in_place(bytes, place, Some(scratch))
    }

    fn load_in_place<'p>(
        bytes: &'a [u8],
        place: &'p mut Option<Self>,
        scratch: Option<&mut [u8]>,
    ) -> Result<&'p Self> {
        *place = None;
        let body = Body::read(bytes)?;
        let loaded = place
            .insert(Model {
                body,
                entries: Vec::new(),
                offsets: Vec::new(),
                planned_bytes: 0,
                plan_bytes: 0,
            })
            .finish_load(scratch);
        if let Err(error) = loaded {
            // Never leave a half-loaded model in the caller's place.
            *place = None;
            return Err(error);
        }
        // Just filled; the error is unreachable (no panic path in the core).
        place.as_ref().ok_or(Error::ModelNoOps)
    }

    /// Everything [`Model::from_bytes_with_capacity`] does after decoding the body: the tensor
    /// table, the input and graph checks, and the plan (scratch on the stack, or in `scratch`).
    fn finish_load(&mut self, scratch: Option<&mut [u8]>) -> Result<()> {
        self.read_tensors()?;
        self.check_input()?;
        if self.body.op_count() == 0 {
            return Err(Error::ModelNoOps);
        }
        match scratch {
            Some(scratch) => {
                let n = self.entries.len();
                let need = self.load_scratch_need();
                if scratch.len() < need {
                    return Err(Error::LoadScratchTooSmall { need });
                }
                let (mut produced, _) = ByteCells::<bool>::take(scratch, n)
                    .ok_or(Error::LoadScratchTooSmall { need })?;
                self.validate_graph_with(&mut produced)?;
                self.plan_in(scratch)
            }
            None => {
                self.validate_graph()?;
                self.plan()
            }
        }
    }

    /// Number of ops that use arena scratch ([`ops::scratch_bytes`] `> 0`).
    fn scratch_ops(&self) -> usize {
        self.body
            .nodes()
            .filter(|n| n.as_ref().is_ok_and(|n| ops::scratch_bytes(&n.op) > 0))
            .count()
    }

    /// Bytes of load scratch [`Model::from_bytes_in_place_with_scratch`] needs:
    /// [`LOAD_SCRATCH_PER_TENSOR`] per tensor plus [`LOAD_SCRATCH_PER_SCRATCH_OP`] per op with
    /// arena scratch.
    fn load_scratch_need(&self) -> usize {
        self.entries
            .len()
            .saturating_mul(LOAD_SCRATCH_PER_TENSOR)
            .saturating_add(
                self.scratch_ops()
                    .saturating_mul(LOAD_SCRATCH_PER_SCRATCH_OP),
            )
    }

    /// Decodes and checks the tensor table, recording where each entry starts.
    #[inline(never)]
    fn read_tensors(&mut self) -> Result<()> {
        let mut start = 0usize;
        for (id, desc) in self.body.tensors_with_end().enumerate() {
            let (desc, end) = desc?;
            let tensor = id as u16; // < tensor count, a u16
            let info = TensorInfo {
                shape: desc.shape,
                dtype: desc.dtype,
            };
            let bytes_len = info.bytes().ok_or(Error::ModelSizeOverflow)?;
            let quant_ok = match desc.dtype {
                DType::F32 => true,
                DType::I8(q) => q.is_valid(),
            };
            if !quant_ok || desc.data.is_some_and(|d| d.len() != bytes_len) {
                return Err(Error::ModelBadTensor { tensor });
            }
            if let (Some(d), DType::F32) = (desc.data, desc.dtype) {
                let finite = d
                    .chunks_exact(4)
                    .all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite());
                if !finite {
                    return Err(Error::ModelBadTensor { tensor });
                }
            }
            // The fast decoder used at run time must read this entry as postcard just did.
            let fast = self.body.tensor_table().get(start..).and_then(decode_entry);
            let agrees = fast.is_some_and(|(shape, dtype, data)| {
                shape == desc.shape
                    && dtype == desc.dtype
                    && match (data, desc.data) {
                        (None, None) => true,
                        (Some(a), Some(b)) => core::ptr::eq(a, b),
                        _ => false,
                    }
            });
            if !agrees {
                return Err(Error::ModelBadTensor { tensor });
            }
            let entry = u32::try_from(start).map_err(|_| Error::ModelSizeOverflow)?;
            self.entries
                .push(entry)
                .map_err(|_| Error::DecodeTooManyTensors)?;
            self.offsets
                .push(UNPLANNED)
                .map_err(|_| Error::DecodeTooManyTensors)?;
            start = end;
        }
        Ok(())
    }

    /// Tensor `id`, decoded from its table entry (`None` for an id outside the table; a
    /// loaded model's entries always decode). A `TensorDesc`: varints and a borrowed
    /// slice, no copy of a constant's bytes; [`decode_entry`], not serde, as this runs for every
    /// tensor an op touches).
    fn tensor_at(&self, id: u16) -> Option<Tensor<'a>> {
        let i = usize::from(id);
        let start = usize::try_from(*self.entries.get(i)?).ok()?;
        let (shape, dtype, data) = decode_entry(self.body.tensor_table().get(start..)?)?;
        Some(Tensor {
            info: TensorInfo { shape, dtype },
            offset: *self.offsets.get(i)?,
            data,
        })
    }

    /// Runs liveness + placement and places the constants after the planned region, with the
    /// planner's scratch on the stack.
    ///
    /// Never inlined: its `[_; T]` scratch lives only while it runs, 13 B per tensor slot on a
    /// 32-bit target (constant flags 1, buffers 2, lifetimes 8, placement order 2; see
    /// [`Model::plan_with`]). [`Model::plan_in`] puts the same scratch in caller bytes instead.
    /// The buffers need one slot per tensor plus one per op with arena scratch: together at
    /// most `T`, else [`Error::PlanCapacity`].
    #[inline(never)]
    fn plan(&mut self) -> Result<()> {
        let n = self.entries.len();
        let slots = n.saturating_add(self.scratch_ops());
        let mut is_constant = [false; T];
        let mut buffer_of = [NO_BUFFER; T];
        let mut lifetimes = [Lifetime::default(); T];
        let mut order = [0u16; T];
        self.plan_with(
            is_constant.get_mut(..n).ok_or(Error::PlanCapacity)?,
            buffer_of.get_mut(..n).ok_or(Error::PlanCapacity)?,
            lifetimes.get_mut(..slots).ok_or(Error::PlanCapacity)?,
            order.get_mut(..slots).ok_or(Error::PlanCapacity)?,
        )
    }

    /// [`Model::plan`] with the scratch packed into `scratch` ([`LOAD_SCRATCH_PER_TENSOR`] bytes
    /// per tensor and [`LOAD_SCRATCH_PER_SCRATCH_OP`] per op with arena scratch, any
    /// alignment): nothing `T`-sized on the stack.
    #[inline(never)]
    fn plan_in(&mut self, scratch: &mut [u8]) -> Result<()> {
        let n = self.entries.len();
        let slots = n.saturating_add(self.scratch_ops());
        let short = Error::LoadScratchTooSmall {
            need: self.load_scratch_need(),
        };
        let (mut is_constant, rest) = ByteCells::<bool>::take(scratch, n).ok_or(short)?;
        let (mut buffer_of, rest) = ByteCells::<u16>::take(rest, n).ok_or(short)?;
        let (mut lifetimes, rest) = ByteCells::<Lifetime>::take(rest, slots).ok_or(short)?;
        let (mut order, _) = ByteCells::<u16>::take(rest, slots).ok_or(short)?;
        self.plan_with(&mut is_constant, &mut buffer_of, &mut lifetimes, &mut order)
    }

    /// The plan on `n`-cell scratch (`n` = tensor count): constant flags, each tensor's buffer,
    /// and on `n + s`-cell scratch (`s` = ops with arena scratch) each buffer's lifetime and the
    /// placement order. The tensor sizes that liveness reads and the per-buffer offsets that
    /// placement writes both live in `self.offsets` (sizes first; liveness is done with them
    /// before placement starts; it grows to `n + s` entries for placement), and the per-buffer
    /// offsets are parked in the lifetimes' `size` fields (no longer read) while `self.offsets`
    /// is rewritten per tensor, then per scratch op (the last `s` buffers, in op order) — no
    /// second per-tensor array.
    fn plan_with<C, B, L, O>(
        &mut self,
        is_constant: &mut C,
        buffer_of: &mut B,
        lifetimes: &mut L,
        order: &mut O,
    ) -> Result<()>
    where
        C: Cells<bool> + ?Sized,
        B: Cells<u16> + ?Sized,
        L: Cells<Lifetime> + ?Sized,
        O: Cells<u16> + ?Sized,
    {
        let n = self.entries.len();
        for id in 0..n {
            let t = self
                .tensor_at(id as u16)
                .ok_or(Error::DecodeUnexpectedEnd)?;
            let size = t.bytes().ok_or(Error::ModelSizeOverflow)?;
            *self.offsets.get_mut(id).ok_or(Error::PlanCapacity)? = size;
            is_constant.set(id, t.is_constant())?;
        }
        let outputs = [self.body.info.logits, self.body.info.embedding];
        let n_scratch = self.scratch_ops();
        let buffers = planner::liveness_in(
            self.offsets.get(..n).ok_or(Error::PlanCapacity)?,
            &*is_constant,
            self.body.info.input,
            &outputs,
            OpIos {
                nodes: self.body.nodes(),
                is_constant: &*is_constant,
            },
            buffer_of,
            lifetimes,
        )?;
        for _ in 0..n_scratch {
            self.offsets.push(0).map_err(|_| Error::PlanCapacity)?;
        }
        let high_water = planner::place_in(&*lifetimes, buffers, order, &mut self.offsets)?;
        for b in 0..buffers {
            let mut lt = lifetimes.get(b).ok_or(Error::PlanCapacity)?;
            lt.size = *self.offsets.get(b).ok_or(Error::PlanCapacity)?;
            lifetimes.set(b, lt)?;
        }
        let mut end = high_water;
        for id in 0..n {
            let offset = if is_constant.get(id).unwrap_or(false) {
                let len = self
                    .tensor_at(id as u16)
                    .and_then(|t| t.bytes())
                    .and_then(align_up)
                    .ok_or(Error::ModelSizeOverflow)?;
                let at = end;
                end = end.checked_add(len).ok_or(Error::ModelSizeOverflow)?;
                at
            } else {
                match buffer_of.get(id).unwrap_or(NO_BUFFER) {
                    NO_BUFFER => UNPLANNED,
                    b => {
                        lifetimes
                            .get(usize::from(b))
                            .ok_or(Error::PlanCapacity)?
                            .size
                    }
                }
            };
            *self.offsets.get_mut(id).ok_or(Error::PlanCapacity)? = offset;
        }
        // The scratch buffers are the last `n_scratch`, in op order (`planner::liveness`).
        let first_scratch = buffers.checked_sub(n_scratch).ok_or(Error::PlanCapacity)?;
        for j in 0..n_scratch {
            let lt = lifetimes
                .get(first_scratch + j)
                .ok_or(Error::PlanCapacity)?;
            *self.offsets.get_mut(n + j).ok_or(Error::PlanCapacity)? = lt.size;
        }
        u32::try_from(end).map_err(|_| Error::ModelSizeOverflow)?;
        self.planned_bytes = high_water;
        self.plan_bytes = end;
        Ok(())
    }

    /// Checks the input tensor and its normalization.
    fn check_input(&self) -> Result<()> {
        let info = &self.body.info;
        let input = self
            .tensor_at(info.input)
            .filter(|t| !t.is_constant())
            .ok_or(Error::ModelBadInput)?;
        let dim0 = input.info.shape.dim(0).unwrap_or(0);
        let (mean, std) = (info.input_mean, info.input_std);
        let len_ok = |n: usize| n == 1 || n == dim0;
        let ok = mean.is_whole()
            && std.is_whole()
            && mean.len() == std.len()
            && len_ok(mean.len())
            && mean.iter().all(f32::is_finite)
            && std.iter().all(|v| v.is_finite() && v > 0.0);
        if !ok {
            return Err(Error::ModelBadNormalization);
        }
        Ok(())
    }

    /// Graph checks: ids in range, every input produced before it is read, one producer per
    /// tensor, arity, and each op's own `prepare`; then the logits and embedding are produced.
    /// Never inlined, like [`Model::plan`], so its scratch (`T` flags) is not in the caller's
    /// frame.
    #[inline(never)]
    fn validate_graph(&self) -> Result<()> {
        let mut produced = [false; T];
        let n = self.entries.len();
        self.validate_graph_with(produced.get_mut(..n).ok_or(Error::PlanCapacity)?)
    }

    /// [`Model::validate_graph`] with the per-tensor "produced" flags in `produced` (one cell
    /// per tensor).
    #[inline(never)]
    fn validate_graph_with<P: Cells<bool> + ?Sized>(&self, produced: &mut P) -> Result<()> {
        let body = &self.body;
        let n = self.entries.len();
        for id in 0..n {
            produced.set(id, false)?;
        }
        // Ids are checked against the table (n cells) before they index `produced`.
        let set = |p: &mut P, id: u16| {
            let _ = p.set(usize::from(id), true);
        };
        let get = |p: &P, id: u16| p.get(usize::from(id)).unwrap_or(false);
        set(produced, body.info.input);
        for id in 0..n {
            let t = self
                .tensor_at(id as u16)
                .ok_or(Error::DecodeUnexpectedEnd)?;
            if t.is_constant() {
                set(produced, id as u16);
            }
        }
        let mut infos = [TensorInfo {
            shape: crate::tensor::Shape::default(),
            dtype: DType::F32,
        }; crate::format::graph::MAX_OP_INPUTS];
        for (k, node) in body.nodes().enumerate() {
            let node = node?;
            let op = k as u16; // < op count, a u16
            let ids = node.inputs.ids();
            if !node.op.kind().arity().contains(&ids.len()) {
                return Err(Error::OpBadArity { op });
            }
            for (info, &id) in infos.iter_mut().zip(ids) {
                let t = self.tensor_at(id).ok_or(Error::GraphBadTensorId { op })?;
                if !get(produced, id) {
                    return Err(Error::GraphTensorNotProduced { op });
                }
                *info = t.info;
            }
            let out = self
                .tensor_at(node.output)
                .ok_or(Error::GraphBadTensorId { op })?
                .info;
            if get(produced, node.output) {
                return Err(Error::GraphTwoProducers { op });
            }
            ops::prepare(op, &node, infos.get(..ids.len()).unwrap_or(&[]), &out)?;
            set(produced, node.output);
        }
        let info = body.info;
        for id in [info.logits, info.embedding] {
            let is_const = self.tensor_at(id).is_some_and(|t| t.is_constant());
            if usize::from(id) >= n || !get(produced, id) || is_const {
                return Err(Error::ModelBadOutputs);
            }
        }
        // One element type for both outputs (a dump record has one): with Quantize / Dequantize
        // in the graph they could differ.
        let is_f32 = |id: u16| self.tensor_at(id).map(|t| t.info.dtype == DType::F32);
        if is_f32(info.logits) != is_f32(info.embedding) {
            return Err(Error::ModelBadOutputs);
        }
        Ok(())
    }

    /// The model info (name, input/logits/embedding tensor ids, input normalization).
    pub fn info(&self) -> &ModelInfo<'a> {
        &self.body.info
    }

    /// The arena [`Model::run`] needs, in bytes, for an arena at *any* address: [`plan_size`]
    /// plus `ARENA_ALIGN − 1` bytes of alignment slack. Exact: one byte less fails for an arena
    /// at the worst address.
    ///
    /// [`plan_size`]: Model::plan_size
    pub fn arena_size(&self) -> usize {
        self.plan_bytes.saturating_add(ARENA_ALIGN - 1)
    }

    /// The arena a 4-aligned caller buffer needs (no slack). Exact: one byte less fails.
    pub fn plan_size(&self) -> usize {
        self.plan_bytes
    }

    /// Bytes of the planned activation region alone (without constants).
    pub fn activation_bytes(&self) -> usize {
        self.planned_bytes
    }

    /// Number of tensors in the tensor table.
    pub fn tensor_count(&self) -> usize {
        self.entries.len()
    }

    /// Shape and dtype of tensor `id`.
    pub fn tensor(&self, id: u16) -> Option<TensorInfo> {
        self.tensor_at(id).map(|t| t.info)
    }

    /// Offset of tensor `id` in the (aligned) arena, `None` for a tensor no op uses.
    pub fn tensor_offset(&self, id: u16) -> Option<usize> {
        let offset = *self
            .offsets
            .get(..self.entries.len())?
            .get(usize::from(id))?;
        (offset != UNPLANNED).then_some(offset)
    }

    /// The input tensor (normalized and, for int8, quantized input).
    pub fn input_info(&self) -> TensorInfo {
        self.tensor(self.body.info.input).unwrap_or(TensorInfo {
            shape: crate::tensor::Shape::default(),
            dtype: DType::F32,
        })
    }

    /// `Int8` when the input tensor is int8, else `F32` (a summary for logs; ops carry their own
    /// dtypes).
    pub fn precision(&self) -> crate::tensor::Precision {
        match self.input_info().dtype {
            DType::F32 => crate::tensor::Precision::F32,
            DType::I8(_) => crate::tensor::Precision::Int8,
        }
    }

    /// Number of logits (the logits tensor's element count).
    pub fn num_classes(&self) -> usize {
        self.tensor(self.body.info.logits)
            .and_then(|t| t.shape.numel())
            .unwrap_or(0)
    }

    /// Number of values [`Model::run`] expects (the input tensor's element count).
    pub fn input_len(&self) -> usize {
        self.input_info().shape.numel().unwrap_or(0)
    }

    /// Number of ops.
    pub fn op_count(&self) -> usize {
        self.body.op_count()
    }

    /// The ops in execution order (decoded from the file on the fly; never an error after a
    /// successful load, but typed as one to stay panic-free).
    pub fn nodes(&self) -> Nodes<'a> {
        self.body.nodes()
    }

    /// Runs the model on one raw input (the input tensor's values, row-major, e.g. pixels in
    /// [0, 1] in CHW order).
    ///
    /// The core normalizes `x̂ = (x − μ) / σ` and, for an int8 input tensor, quantizes
    /// `q = clamp(round(x̂ / s) + zp, −128, 127)` itself. No allocation; the outputs borrow
    /// `arena`, which must hold at least [`Model::arena_size`] bytes.
    pub fn run<'r>(&self, input: &[f32], arena: &'r mut [u8]) -> Result<Outputs<'r>> {
        self.run_with(input, arena, |_| {})
    }

    /// [`Model::run`], calling `after_op` with a [`Step`] right after each op has written its
    /// output (input normalization and constants happen before op 0). Firmware uses it to count
    /// cycles or instructions per op; the exporter's calibration reads every op's output.
    pub fn run_with<'r, F>(
        &self,
        input: &[f32],
        arena: &'r mut [u8],
        after_op: F,
    ) -> Result<Outputs<'r>>
    where
        F: FnMut(Step<'_>),
    {
        self.run_from(RawInput::Real(input), arena, after_op)
    }

    /// Runs an int8 model on an input that is already quantized: `input` is copied into the
    /// input tensor as is (no normalization, no quantization), as TFLite-Micro's interpreter takes
    /// its int8 input tensor. [`Error::RunInputNotInt8`] for an f32 model,
    /// [`Error::RunBadInputLength`] unless `input.len() == Model::input_len()`.
    pub fn run_quantized<'r>(&self, input: &[i8], arena: &'r mut [u8]) -> Result<Outputs<'r>> {
        self.run_from(RawInput::Quantized(input), arena, |_| {})
    }

    /// The one run loop behind [`Model::run_with`] and [`Model::run_quantized`].
    fn run_from<'r, F>(
        &self,
        input: RawInput<'_>,
        arena: &'r mut [u8],
        mut after_op: F,
    ) -> Result<Outputs<'r>>
    where
        F: FnMut(Step<'_>),
    {
        let len = match input {
            RawInput::Real(x) => x.len(),
            RawInput::Quantized(q) => {
                if !matches!(self.input_info().dtype, DType::I8(_)) {
                    return Err(Error::RunInputNotInt8);
                }
                q.len()
            }
        };
        if len != self.input_len() {
            return Err(Error::RunBadInputLength);
        }
        let arena = aligned(arena, self.plan_bytes)?;
        // Constants, and only they, sit at or past the planned region (`Model::plan`): only
        // their entries are decoded here.
        let n = self.entries.len();
        for (id, &offset) in self.offsets.iter().enumerate().take(n) {
            if offset < self.planned_bytes || offset == UNPLANNED {
                continue;
            }
            let t = self
                .tensor_at(id as u16)
                .ok_or(Error::DecodeUnexpectedEnd)?;
            if let Some(data) = t.data {
                region_mut(arena, &t)?.copy_from_slice(data);
            }
        }
        match input {
            RawInput::Real(x) => self.write_input(x, arena)?,
            RawInput::Quantized(q) => {
                let slot = self
                    .tensor_at(self.body.info.input)
                    .ok_or(Error::ModelBadInput)?;
                for (o, &v) in i8s_mut(region_mut(arena, &slot)?).iter_mut().zip(q) {
                    *o = v;
                }
            }
        }
        // The tensor the previous op wrote, already decoded: usually the next op's input 0.
        let mut last = None;
        // Offsets of the ops' arena scratch, in op order, past the tensors' offsets.
        let mut scratch_offsets = self.offsets.iter().skip(n);
        for (index, node) in self.body.nodes().enumerate() {
            let node = node?;
            let scratch_len = ops::scratch_bytes(&node.op);
            let scratch = if scratch_len > 0 {
                let at = *scratch_offsets.next().ok_or(Error::KernelBadArguments)?;
                Some((at, scratch_len))
            } else {
                None
            };
            let out = self.eval(&node, arena, &last, scratch)?;
            last = Some((node.output, out));
            after_op(Step {
                index,
                kind: node.op.kind(),
                output_id: node.output,
                output: view_of(&out, arena)?,
            });
        }
        let arena: &'r [u8] = arena;
        let output = |id: u16| {
            let t = self.tensor_or(id, &last).ok_or(Error::ModelBadOutputs)?;
            view_of(&t, arena)
        };
        Ok(Outputs {
            logits: output(self.body.info.logits)?,
            embedding: output(self.body.info.embedding)?,
        })
    }

    /// Normalizes (and for int8 quantizes) the raw input into the input tensor's bytes.
    fn write_input(&self, input: &[f32], arena: &mut [u8]) -> Result<()> {
        let info = &self.body.info;
        let slot = self.tensor_at(info.input).ok_or(Error::ModelBadInput)?;
        let groups = info.input_mean.len().max(1);
        let per = input.len() / groups;
        let norm = info.input_mean.iter().zip(info.input_std.iter());
        let bytes = region_mut(arena, &slot)?;
        match slot.info.dtype {
            DType::F32 => {
                let out = f32s_mut(bytes)?;
                for ((o_plane, x_plane), (mean, std)) in
                    out.chunks_mut(per).zip(input.chunks(per)).zip(norm)
                {
                    for (o, &x) in o_plane.iter_mut().zip(x_plane) {
                        *o = (x - mean) / std;
                    }
                }
            }
            DType::I8(q) => {
                let out = i8s_mut(bytes);
                for ((o_plane, x_plane), (mean, std)) in
                    out.chunks_mut(per).zip(input.chunks(per)).zip(norm)
                {
                    kernels::normalize_quantize(x_plane, mean, std, q, o_plane);
                }
            }
        }
        Ok(())
    }

    /// Tensor `id`, taken from `last` (an id and its decoded tensor) when the ids match.
    fn tensor_or(&self, id: u16, last: &Option<(u16, Tensor<'a>)>) -> Option<Tensor<'a>> {
        match last {
            Some((last_id, t)) if *last_id == id => Some(*t),
            _ => self.tensor_at(id),
        }
    }

    /// Runs one op on the arena as planned; returns its output tensor (decoded once per op, for
    /// the caller's [`Step`] view and as the next op's `last`: the tensor the previous op wrote,
    /// not decoded again when this op reads it). `scratch`: the op's arena scratch as
    /// `(offset, bytes)`, planned disjoint from its inputs and output.
    fn eval(
        &self,
        node: &Node<'_>,
        arena: &mut [u8],
        last: &Option<(u16, Tensor<'a>)>,
        scratch: Option<(usize, usize)>,
    ) -> Result<Tensor<'a>> {
        let out_slot = self
            .tensor_at(node.output)
            .ok_or(Error::KernelBadArguments)?;
        let out_slot = &out_slot;
        match ops::sharing(&node.op) {
            Sharing::Alias | Sharing::InPlace => {
                let first = node
                    .inputs
                    .ids()
                    .first()
                    .and_then(|&id| self.tensor_or(id, last))
                    .ok_or(Error::KernelBadArguments)?;
                if first.offset == out_slot.offset && ops::sharing(&node.op) == Sharing::Alias {
                    return Ok(*out_slot);
                }
                // A Reshape of a constant: the planner gave it its own bytes; copy, nothing to
                // run.
                let len = out_slot.bytes().ok_or(Error::KernelBadArguments)?;
                if first.offset != out_slot.offset {
                    let src = first.offset;
                    let end = src.checked_add(len).ok_or(Error::KernelBadArguments)?;
                    if end > arena.len() {
                        return Err(Error::ArenaTooSmall);
                    }
                    let dst = out_slot.offset;
                    if dst.checked_add(len).is_none_or(|e| e > arena.len()) {
                        return Err(Error::ArenaTooSmall);
                    }
                    arena.copy_within(src..end, dst);
                }
                let out = out_view(out_slot, region_mut(arena, out_slot)?)?;
                ops::eval_in_place(node, out)?;
                return Ok(*out_slot);
            }
            Sharing::None => {}
        }
        let out_start = out_slot.offset;
        let out_len = out_slot.bytes().ok_or(Error::KernelBadArguments)?;
        let (lo, rest) = arena
            .split_at_mut_checked(out_start)
            .ok_or(Error::ArenaTooSmall)?;
        let (out_bytes, hi) = rest
            .split_at_mut_checked(out_len)
            .ok_or(Error::ArenaTooSmall)?;
        let hi_start = out_start + out_len;
        // The scratch, cut out of the part below or above the output; the inputs are read from
        // the (up to three) pieces left, each with its start offset.
        let (pieces, scratch): ([(usize, &[u8]); 3], &mut [u8]) = match scratch {
            None => ([(0, lo), (hi_start, hi), (usize::MAX, &[])], &mut []),
            Some((at, len)) => {
                let end = at.checked_add(len).ok_or(Error::KernelBadArguments)?;
                let (base, part, other): (usize, &mut [u8], (usize, &[u8])) = if end <= out_start {
                    (0, lo, (hi_start, hi))
                } else if at >= hi_start {
                    (hi_start, hi, (0, lo))
                } else {
                    return Err(Error::KernelBadArguments);
                };
                let (below, rest) = part
                    .split_at_mut_checked(at - base)
                    .ok_or(Error::ArenaTooSmall)?;
                let (s, above) = rest.split_at_mut_checked(len).ok_or(Error::ArenaTooSmall)?;
                ([(base, &*below), (end, &*above), other], s)
            }
        };
        // Unused entries (past the op's inputs) are never read; `ops::eval` gets `list[..n]`.
        let mut list: [In<'_>; crate::format::graph::MAX_OP_INPUTS] = [In {
            info: TensorInfo {
                shape: Shape::default(),
                dtype: DType::F32,
            },
            values: Values::I8(&[]),
        }; 4];
        for (dst, &id) in list.iter_mut().zip(node.inputs.ids()) {
            let s = self.tensor_or(id, last).ok_or(Error::KernelBadArguments)?;
            let info = s.info;
            let start = s.offset;
            let len = info.bytes().ok_or(Error::KernelBadArguments)?;
            let bytes = pieces
                .iter()
                .find_map(|&(base, piece)| {
                    let from = start.checked_sub(base)?;
                    piece.get(from..from.checked_add(len)?)
                })
                .ok_or(Error::KernelBadArguments)?;
            *dst = In {
                info,
                values: values(&info, bytes)?,
            };
        }
        let n = node.inputs.ids().len();
        let output = out_view(out_slot, out_bytes)?;
        ops::eval(node, list.get(..n).unwrap_or(&[]), output, scratch)?;
        Ok(*out_slot)
    }
}

/// A read-only view of tensor `s` in the arena (after an op, or after the run).
fn view_of<'r>(s: &Tensor<'_>, arena: &'r [u8]) -> Result<TensorView<'r>> {
    let start = s.offset;
    let len = s.bytes().ok_or(Error::ModelSizeOverflow)?;
    let bytes = start
        .checked_add(len)
        .and_then(|end| arena.get(start..end))
        .ok_or(Error::ArenaTooSmall)?;
    let info = s.info;
    let data = match (values(&info, bytes)?, info.dtype) {
        (Values::F32(v), _) => TensorData::F32(v),
        (Values::I8(v), DType::I8(quant)) => TensorData::I8 { values: v, quant },
        _ => return Err(Error::KernelBadArguments),
    };
    Ok(TensorView {
        shape: info.shape,
        data,
    })
}

/// The bytes of `slot` in the aligned arena.
fn region_mut<'x>(arena: &'x mut [u8], slot: &Tensor<'_>) -> Result<&'x mut [u8]> {
    let start = slot.offset;
    let len = slot.bytes().ok_or(Error::ModelSizeOverflow)?;
    start
        .checked_add(len)
        .and_then(|end| arena.get_mut(start..end))
        .ok_or(Error::ArenaTooSmall)
}

fn values<'r>(info: &TensorInfo, bytes: &'r [u8]) -> Result<Values<'r>> {
    Ok(match info.dtype {
        DType::F32 => Values::F32(f32s(bytes)?),
        DType::I8(_) => Values::I8(i8s(bytes)),
    })
}

fn out_view<'r>(slot: &Tensor<'_>, bytes: &'r mut [u8]) -> Result<Out<'r>> {
    Ok(Out {
        info: slot.info,
        values: if slot.int8() {
            ValuesMut::I8(i8s_mut(bytes))
        } else {
            ValuesMut::F32(f32s_mut(bytes)?)
        },
    })
}

/// The ops as the planner sees them. A Reshape of a constant gets a buffer of its own (the
/// constant lives outside the planned region; [`Model::eval`] copies it).
struct OpIos<'a, 'c, C: ?Sized> {
    nodes: Nodes<'a>,
    is_constant: &'c C,
}

// Not derived: a derive would require `C: Clone`, which `[bool]` is not.
impl<C: ?Sized> Clone for OpIos<'_, '_, C> {
    fn clone(&self) -> Self {
        OpIos {
            nodes: self.nodes.clone(),
            is_constant: self.is_constant,
        }
    }
}

impl<C: Cells<bool> + ?Sized> Iterator for OpIos<'_, '_, C> {
    type Item = OpIo;

    fn next(&mut self) -> Option<OpIo> {
        // Every node decoded once in `Body::read`, so `ok()` never drops one.
        let node = self.nodes.next()?.ok()?;
        let constant_input = node
            .inputs
            .ids()
            .first()
            .and_then(|&id| self.is_constant.get(usize::from(id)))
            .unwrap_or(false);
        let reuse = match ops::sharing(&node.op) {
            Sharing::None => Reuse::None,
            Sharing::Alias if constant_input => Reuse::None,
            Sharing::Alias => Reuse::Alias,
            Sharing::InPlace => Reuse::InPlace,
        };
        OpIo::new(node.inputs.ids(), node.output, reuse)
            .map(|io| io.with_scratch(ops::scratch_bytes(&node.op)))
    }
}
