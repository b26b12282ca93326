//! The application shared by the `footprint-sine` binaries: TFLite-Micro's `hello_world`
//! topology (x → Dense 16 + ReLU → Dense 16 + ReLU → Dense 1) in int8, compiled into flash, run by
//! the core with a static arena. It exists to compare footprints with TFLite-Micro and MicroFlow on
//! their own example (docs/benchmarks.md, "How this compares"); the weights are seeded random
//! (`sine_models` in core/tests/fixtures.rs), which does not change code size or RAM.

use denoiserep_core::{Error, Model, TensorData};

/// The file's bytes at an alignment of 4: the encoder puts each payload at a multiple of 4 of the
/// file (32 for payloads of 128 bytes or more; this model has none), so this one word of
/// alignment puts every weight on a word (`docs/model-format.md` §2, "Tensor payloads").
#[repr(C, align(4))]
struct WordAligned<B: ?Sized>(B);

static FILE: &WordAligned<[u8]> = &WordAligned(*include_bytes!(
    "../../../../core/tests/fixtures/sine_int8.dnrp"
));

/// The model file, in flash (`.rodata`): 745 bytes.
pub static MODEL: &[u8] = &FILE.0;

/// Arena bytes, a compile-time constant so the arena can be a static; [`infer`] checks that it is
/// at least `Model::arena_size()`.
pub const ARENA_BYTES: usize = 72;

/// The arena, 8-byte aligned like the core's planner expects of any buffer it is given.
#[repr(C, align(8))]
pub struct Arena(pub [u8; ARENA_BYTES]);

/// Plan slots: the model has 4 tensors (input, two hidden, output) and two int8 Linears with a
/// widened-input scratch buffer (16 inputs each; the 1-input first layer needs none), so the
/// `Model` value holds 6 slots, not the default 256.
pub type SineModel = Model<'static, 6>;

/// Decodes and validates [`MODEL`] once (zero-copy) and checks that [`ARENA_BYTES`] suffices.
pub fn load() -> Result<SineModel, Error> {
    let model = SineModel::from_bytes_with_capacity(MODEL)?;
    if model.arena_size() > ARENA_BYTES {
        return Err(Error::ArenaTooSmall);
    }
    Ok(model)
}

/// Runs the model on `x` (one f32 input); returns the int8 output value.
pub fn infer(model: &SineModel, x: f32, arena: &mut Arena) -> Result<i8, Error> {
    let out = model.run(&[x], &mut arena.0)?;
    match out.logits.data {
        TensorData::I8 { values, .. } => values.first().copied().ok_or(Error::KernelBadArguments),
        TensorData::F32(_) => Err(Error::KernelBadArguments),
    }
}
