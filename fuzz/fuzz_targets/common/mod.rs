//! Shared by the model targets: run a decoded model the way firmware and `denoiserep infer` do.

use denoiserep_core::{Error, Model, TensorData};

/// Largest arena (bytes) or input (values) the harness allocates. A well-formed model may declare
/// a huge input shape (a conv or max-pool layer carries no per-pixel weights); decoding and
/// planning such a model is fuzzed in full, only running it is skipped above this size.
pub const MAX_ALLOC: usize = 1 << 20;

/// Decodes `file` with [`Model::from_bytes`]; when that succeeds, runs the model on a
/// deterministic input (mixing ordinary values with ±0, ±∞ and NaN, chosen by `seed`) in an arena
/// of exactly [`Model::arena_size`] bytes, and checks that:
/// - the run succeeds (a model that validated must run) and its outputs have the planned lengths
///   and one element type;
/// - the outputs are the same bits at a second, different arena misalignment (`arena_size`
///   holds for an arena of any alignment);
/// - every op's output (`run_with`) has its tensor's element count;
/// - `arena_size() − 1` bytes at an address ≡ 1 (mod 4) and `plan_size() − 1` bytes 4-aligned
///   fail with `ArenaTooSmall` (the sizes are exact), shorter arenas and a wrong input length
///   fail too, never a panic or an out-of-bounds access (AddressSanitizer watches the arena's
///   neighbours).
pub fn check_model(file: &[u8], seed: u32) {
    let Ok(model) = Model::from_bytes(file) else {
        return;
    };
    let size = model.arena_size();
    let n = model.input_len();
    if size > MAX_ALLOC || n > MAX_ALLOC {
        return;
    }
    let input = input_values(n, seed);
    let first = (seed % 4) as usize;
    let mut outputs = Vec::new();
    for misalign in [first, (first + 1) % 4] {
        // Exactly `size` bytes, in their own allocation so that ASan flags any access past them.
        let mut buf = vec![0u8; misalign + size];
        let out = model
            .run(&input, &mut buf[misalign..])
            .expect("a model that passed from_bytes must run with arena_size bytes");
        let info = model.info();
        assert_eq!(out.logits.len(), numel(&model, info.logits));
        assert_eq!(out.embedding.len(), numel(&model, info.embedding));
        let same_type = matches!(
            (out.logits.data, out.embedding.data),
            (TensorData::I8 { .. }, TensorData::I8 { .. })
                | (TensorData::F32(_), TensorData::F32(_))
        );
        assert!(
            same_type,
            "logits and embedding of one model differ in type"
        );
        outputs.push((bits(&out.logits.data), bits(&out.embedding.data)));
    }
    assert_eq!(
        outputs[0], outputs[1],
        "outputs depend on the arena's alignment"
    );
    // Every op reports an output of its tensor's shape (run_with's view).
    let mut buf = vec![0u8; size];
    model
        .run_with(&input, &mut buf, |step| {
            assert_eq!(step.output.len(), numel(&model, step.output_id));
        })
        .expect("runs again");
    // `arena_size` is exact: one byte less at an address ≡ 1 (mod 4) fails (and so does
    // `plan_size() − 1` 4-aligned), never a panic; shorter arenas fail too.
    let mut buf = vec![0u8; size + 3];
    let base = buf.as_ptr() as usize;
    let at1 = (5 - base % 4) % 4;
    let r = model.run(&input, &mut buf[at1..at1 + size - 1]);
    assert!(
        matches!(r, Err(Error::ArenaTooSmall)),
        "arena_size() - 1 bytes ran"
    );
    let at0 = (4 - base % 4) % 4;
    let plan = model.plan_size();
    if plan > 0 {
        let r = model.run(&input, &mut buf[at0..at0 + plan - 1]);
        assert!(
            matches!(r, Err(Error::ArenaTooSmall)),
            "plan_size() - 1 bytes ran"
        );
    }
    let short = size.saturating_sub(1 + (seed as usize >> 2) % 8);
    let mut buf = vec![0u8; short];
    // (A 4-aligned allocation needs only `plan_size()` bytes, so only shorter ones must fail.)
    let r = model.run(&input, &mut buf);
    assert!(
        short >= plan || r.is_err(),
        "{short} < plan_size() bytes ran"
    );
    let mut longer = input;
    longer.push(0.0);
    let mut buf = vec![0u8; size];
    assert!(model.run(&longer, &mut buf).is_err());
}

/// The bit patterns of a tensor's values (f32 bits, or int8 values), NaN-safe for comparison.
fn bits(data: &TensorData<'_>) -> Vec<u32> {
    match *data {
        TensorData::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
        TensorData::I8 { values, .. } => values.iter().map(|&q| q as u32).collect(),
    }
}

fn numel(model: &Model<'_>, id: u16) -> usize {
    let t = model.tensor(id).expect("validated output ids are tensors");
    t.shape.numel().expect("planned shapes fit in usize")
}

/// `n` input values: mostly pseudo-random in [-2, 2), with a few special values.
fn input_values(n: usize, seed: u32) -> Vec<f32> {
    const SPECIAL: [f32; 6] = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e30];
    let mut state = seed | 1;
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            if seed & 0x100 != 0 && i % 17 == 3 {
                SPECIAL[(state % SPECIAL.len() as u32) as usize]
            } else {
                (state >> 8) as f32 / (1u32 << 22) as f32 - 2.0
            }
        })
        .collect()
}
