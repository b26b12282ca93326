//! Planner tests: hand-computed layouts, error cases and properties over random graphs.

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::arena::{align_up, ARENA_ALIGN};
use crate::error::Error;

const X: u16 = NO_BUFFER;

fn op(inputs: &[u16], output: u16, reuse: Reuse) -> OpIo {
    OpIo::new(inputs, output, reuse).unwrap()
}

/// A finished plan, in owned storage.
#[derive(Debug)]
struct Planned {
    buffer_of: Vec<u16>,
    lifetimes: Vec<Lifetime>,
    offsets: Vec<usize>,
    high_water: usize,
}

impl Planned {
    fn tensor_offset(&self, t: u16) -> Option<usize> {
        let b = *self.buffer_of.get(usize::from(t))?;
        self.offsets.get(usize::from(b)).copied()
    }
}

fn run(
    tensor_bytes: &[usize],
    is_constant: &[bool],
    input: u16,
    outputs: &[u16],
    ops: &[OpIo],
) -> core::result::Result<Planned, Error> {
    let n = tensor_bytes.len();
    // Room for one scratch buffer per op besides the tensors' buffers.
    let slots = n + ops.len();
    let mut buffer_of = vec![0u16; n];
    let mut lifetimes = vec![Lifetime::default(); slots];
    let mut order = vec![0u16; slots];
    let mut offsets = vec![usize::MAX; slots];
    let mut storage = PlanStorage {
        buffer_of: &mut buffer_of,
        lifetimes: &mut lifetimes,
        order: &mut order,
        offsets: &mut offsets,
    };
    let graph = Graph {
        tensor_bytes,
        is_constant,
        input,
        outputs,
        ops: ops.iter().copied(),
    };
    let p = plan(graph, &mut storage)?;
    for t in 0..n as u16 {
        let want = match buffer_of[usize::from(t)] {
            X => None,
            b => Some(offsets[usize::from(b)]),
        };
        assert_eq!(storage_offset(&buffer_of, &offsets, t), want);
    }
    lifetimes.truncate(p.buffers);
    offsets.truncate(p.buffers);
    Ok(Planned {
        buffer_of,
        lifetimes,
        offsets,
        high_water: p.high_water,
    })
}

/// `PlanStorage::tensor_offset` on finished storage.
fn storage_offset(buffer_of: &[u16], offsets: &[usize], t: u16) -> Option<usize> {
    let mut buffer_of = buffer_of.to_vec();
    let mut offsets = offsets.to_vec();
    let storage = PlanStorage {
        buffer_of: &mut buffer_of,
        lifetimes: &mut [],
        order: &mut [],
        offsets: &mut offsets,
    };
    storage.tensor_offset(t)
}

fn lt(size: usize, first: u16, last: u16) -> Lifetime {
    Lifetime { size, first, last }
}

// ---------------------------------------------------------------- hand-computed layouts

/// in(98 B) → conv(w) → c(200) → relu in place → r → reshape alias → f → linear(w2) → out(37 B).
///
/// Buffers: 0 = in [0,0] 100 B; 1 = c/r/f [0,3] 200 B; 2 = out [3,4] 40 B.
/// Greedy: 1 @0; 0 meets 1 at op 0 → @200; 2 meets 1 at op 3, not 0 → @200. High water 300
/// = in + conv out, the old ping-pong size.
#[test]
fn chain_with_in_place_and_alias() {
    let bytes = [98, 1000, 200, 200, 200, 1000, 37];
    let consts = [false, true, false, false, false, true, false];
    let ops = [
        op(&[0, 1], 2, Reuse::None),
        op(&[2], 3, Reuse::InPlace),
        op(&[3], 4, Reuse::Alias),
        op(&[4, 5], 6, Reuse::None),
    ];
    let p = run(&bytes, &consts, 0, &[6], &ops).unwrap();
    assert_eq!(p.buffer_of, [0, X, 1, 1, 1, X, 2]);
    assert_eq!(p.lifetimes, [lt(100, 0, 0), lt(200, 0, 3), lt(40, 3, 4)]);
    assert_eq!(p.offsets, [200, 0, 200]);
    assert_eq!(p.high_water, 300);
    assert_eq!(p.tensor_offset(6), Some(200));
}

/// in(100) → conv1 (36 B scratch) → c1(200) → conv2 (50 B scratch) → out(40).
///
/// Buffers: 0 = in [0,0] 100; 1 = c1 [0,1] 200; 2 = out [1,2] 40; then the scratch buffers,
/// 3 = conv1's [0,0] 36 and 4 = conv2's [1,1] 52 (rounded up). Greedy by size: 1 @0; 0 meets 1
/// → @200; 4 meets 1 but not 0 → @200; 2 meets 1 and 4 → @252; 3 meets 1 and 0 → @300. High
/// water 336 = in + c1 + conv1's scratch, the peak at op 0 (op 1 needs 200 + 40 + 52 = 292).
#[test]
fn scratch_is_a_buffer_live_at_its_op_only() {
    let bytes = [100, 200, 40];
    let consts = [false; 3];
    let ops = [
        op(&[0], 1, Reuse::None).with_scratch(36),
        op(&[1], 2, Reuse::None).with_scratch(50),
    ];
    let p = run(&bytes, &consts, 0, &[2], &ops).unwrap();
    assert_eq!(p.buffer_of, [0, 1, 2]);
    assert_eq!(
        p.lifetimes,
        [
            lt(100, 0, 0),
            lt(200, 0, 1),
            lt(40, 1, 2),
            lt(36, 0, 0),
            lt(52, 1, 1)
        ]
    );
    assert_eq!(p.offsets, [200, 0, 252, 300, 200]);
    assert_eq!(p.high_water, 336);
    // Without the scratch: in + c1 = 300.
    let plain = [op(&[0], 1, Reuse::None), op(&[1], 2, Reuse::None)];
    assert_eq!(
        run(&bytes, &consts, 0, &[2], &plain).unwrap().high_water,
        300
    );
    // Too little room for the scratch buffers.
    let mut buffer_of = vec![0u16; 3];
    let mut lifetimes = vec![Lifetime::default(); 4];
    assert_eq!(
        liveness(
            &bytes,
            &consts,
            0,
            &[2],
            ops.iter().copied(),
            &mut buffer_of,
            &mut lifetimes
        ),
        Err(Error::PlanCapacity)
    );
}

/// x(64) → conv1 → c1(128) → conv2 → c2(64); add(c2, x) in place over c2 → out.
///
/// Buffers: 0 = x [0,2]; 1 = c1 [0,1]; 2 = c2/out [1,3]. At op 1, x, c1 and c2 are all live.
/// Greedy order 1, 0, 2: 1 @0, 0 @128, 2 @192; high water 256 = 64 + 128 + 64.
#[test]
fn residual_block_keeps_x_live_across_both_convs() {
    let bytes = [64, 500, 128, 500, 64, 64];
    let consts = [false, true, false, true, false, false];
    let ops = [
        op(&[0, 1], 2, Reuse::None),
        op(&[2, 3], 4, Reuse::None),
        op(&[4, 0], 5, Reuse::InPlace),
    ];
    let p = run(&bytes, &consts, 0, &[5], &ops).unwrap();
    assert_eq!(p.buffer_of, [0, X, 1, X, 2, 2]);
    assert_eq!(p.lifetimes, [lt(64, 0, 2), lt(128, 0, 1), lt(64, 1, 3)]);
    assert_eq!(p.offsets, [128, 0, 192]);
    assert_eq!(p.high_water, 256);
}

/// x(128) → q, k, v (linears, 128 each) → s = q·kᵀ (64) → softmax in place → a = p·v (128)
/// → add(a, x) in place → y.
///
/// Buffers: 0 = x [0,6]; 1 = q [0,3]; 2 = k [1,3]; 3 = v [2,5]; 4 = s/p [3,5] 64 B;
/// 5 = a/y [5,7]. Greedy order 0,1,2,3,5,4: 0 @0, 1 @128, 2 @256, 3 @384; 5 meets 0 and 3 only
/// → the gap @128; 4 meets all → @512. High water 576 = x + q + k + v + s, live at op 3.
#[test]
fn attention_block() {
    let bytes = [128, 9, 9, 9, 128, 128, 128, 64, 64, 128, 128];
    let mut consts = [false; 11];
    consts[1..4].fill(true);
    let ops = [
        op(&[0, 1], 4, Reuse::None),
        op(&[0, 2], 5, Reuse::None),
        op(&[0, 3], 6, Reuse::None),
        op(&[4, 5], 7, Reuse::None),
        op(&[7], 8, Reuse::InPlace),
        op(&[8, 6], 9, Reuse::None),
        op(&[9, 0], 10, Reuse::InPlace),
    ];
    let p = run(&bytes, &consts, 0, &[10], &ops).unwrap();
    assert_eq!(p.buffer_of, [0, X, X, X, 1, 2, 3, 4, 4, 5, 5]);
    assert_eq!(
        p.lifetimes,
        [
            lt(128, 0, 6),
            lt(128, 0, 3),
            lt(128, 1, 3),
            lt(128, 2, 5),
            lt(64, 3, 5),
            lt(128, 5, 7),
        ]
    );
    assert_eq!(p.offsets, [0, 128, 256, 384, 512, 128]);
    assert_eq!(p.high_water, 576);
}

#[test]
fn in_place_falls_back_when_input_is_read_later_or_an_output() {
    // x → relu(x) → r; add(r, x): x is read after the relu, so r gets its own buffer.
    let ops = [op(&[0], 1, Reuse::InPlace), op(&[1, 0], 2, Reuse::None)];
    let p = run(&[8, 8, 8], &[false; 3], 0, &[2], &ops).unwrap();
    assert_eq!(p.buffer_of, [0, 1, 2]);
    // Read later through an alias: f = reshape(x); relu(x) → r; add(r, f).
    let ops = [
        op(&[0], 1, Reuse::Alias),
        op(&[0], 2, Reuse::InPlace),
        op(&[2, 1], 3, Reuse::None),
    ];
    let p = run(&[8; 4], &[false; 4], 0, &[3], &ops).unwrap();
    assert_eq!(p.buffer_of, [0, 0, 1, 2]);
    assert_eq!(p.lifetimes[0], lt(8, 0, 2));
    // x is a graph output: relu(x) may not overwrite it.
    let ops = [op(&[0], 1, Reuse::InPlace)];
    let p = run(&[8, 8], &[false; 2], 0, &[0, 1], &ops).unwrap();
    assert_eq!(p.buffer_of, [0, 1]);
    assert_eq!(p.lifetimes, [lt(8, 0, 1), lt(8, 0, 1)]);
    assert_eq!(p.high_water, 16);
    // An alias of x is a graph output.
    let ops = [op(&[0], 1, Reuse::Alias), op(&[0], 2, Reuse::InPlace)];
    let p = run(&[8; 3], &[false; 3], 0, &[1, 2], &ops).unwrap();
    assert_eq!(p.buffer_of, [0, 0, 1]);
    // In place over a constant: own buffer.
    let ops = [op(&[1], 2, Reuse::InPlace)];
    let p = run(&[8; 3], &[false, true, false], 0, &[2], &ops).unwrap();
    assert_eq!(p.buffer_of, [0, X, 1]);
    // In place over the graph input, which dies there: shared.
    let ops = [op(&[0], 1, Reuse::InPlace)];
    let p = run(&[8; 2], &[false; 2], 0, &[1], &ops).unwrap();
    assert_eq!(p.buffer_of, [0, 0]);
    assert_eq!(p.lifetimes, [lt(8, 0, 1)]);
    assert_eq!(p.high_water, 8);
}

#[test]
fn alias_keeps_the_source_buffer_live_until_the_last_view_use() {
    // x → a = conv(x); f = flatten(a); b = conv(x); add(f, b).
    let ops = [
        op(&[0], 1, Reuse::None),
        op(&[1], 2, Reuse::Alias),
        op(&[0], 3, Reuse::None),
        op(&[2, 3], 4, Reuse::None),
    ];
    let p = run(&[4, 12, 12, 4, 12], &[false; 5], 0, &[4], &ops).unwrap();
    assert_eq!(p.buffer_of, [0, 1, 1, 2, 3]);
    assert_eq!(
        p.lifetimes,
        [lt(4, 0, 2), lt(12, 0, 3), lt(4, 2, 3), lt(12, 3, 4)]
    );
    // Greedy: 1 @0; 3 [3,4] meets 1 → @12; 0 [0,2] meets 1 → @12; 2 [2,3] meets 0, 1 and 3
    // (all at 0..24) → @24.
    assert_eq!(p.offsets, [12, 0, 24, 12]);
    assert_eq!(p.high_water, 28);
}

#[test]
fn unread_tensor_occupies_its_producing_op_and_zero_sized_tensors_are_free() {
    let ops = [op(&[0], 1, Reuse::None), op(&[0], 2, Reuse::None)];
    let p = run(&[0, 5, 4], &[false; 3], 0, &[2], &ops).unwrap();
    assert_eq!(p.lifetimes, [lt(0, 0, 1), lt(8, 0, 0), lt(4, 1, 2)]);
    assert_eq!(p.offsets, [0, 0, 0]);
    assert_eq!(p.high_water, 8);
}

// ---------------------------------------------------------------- greedy alone

#[test]
fn greedy_places_largest_first_in_the_lowest_gap() {
    // 0 and 1 never meet; 2 meets both; 3 meets only 1.
    let lts = [lt(16, 0, 1), lt(8, 2, 3), lt(4, 1, 2), lt(8, 3, 3)];
    let mut order = [0u16; 4];
    let mut offsets = [0usize; 4];
    let high = greedy(&lts, &mut order, &mut offsets).unwrap();
    // Order 0 (16), 1 (8, first 2), 3 (8, first 3), 2 (4): 0 @0, 1 @0, 3 @8, 2 @16.
    assert_eq!(offsets, [0, 0, 16, 8]);
    assert_eq!(high, 20);
    // `order` ends sorted by offset.
    assert_eq!(order, [0, 1, 3, 2]);
}

#[test]
fn greedy_rounds_sizes_and_handles_empty_input() {
    let mut offsets = [7usize; 2];
    assert_eq!(greedy(&[], &mut [], &mut []), Ok(0));
    let high = greedy(&[lt(1, 0, 0), lt(3, 0, 0)], &mut [0; 2], &mut offsets).unwrap();
    assert_eq!((offsets, high), ([0, 4], 8));
}

#[test]
fn greedy_errors() {
    let lts = [lt(4, 0, 0), lt(4, 2, 1)];
    assert_eq!(
        greedy(&lts, &mut [0; 2], &mut [0; 2]),
        Err(Error::PlanBadLifetime { buffer: 1 })
    );
    let lts = [lt(4, 0, 0); 2];
    assert_eq!(
        greedy(&lts, &mut [0; 1], &mut [0; 2]),
        Err(Error::PlanCapacity)
    );
    assert_eq!(
        greedy(&lts, &mut [0; 2], &mut [0; 1]),
        Err(Error::PlanCapacity)
    );
    let lts = [lt(usize::MAX, 0, 0)];
    assert_eq!(
        greedy(&lts, &mut [0; 1], &mut [0; 1]),
        Err(Error::ModelSizeOverflow)
    );
    let lts = [lt(usize::MAX - 7, 0, 0), lt(usize::MAX - 7, 0, 0)];
    assert_eq!(
        greedy(&lts, &mut [0; 2], &mut [0; 2]),
        Err(Error::ModelSizeOverflow)
    );
}

/// A chain `t0 → op0 → t1 → … → tn` (graph output tn) with the given tensor sizes.
fn chain(sizes: &[usize]) -> Planned {
    let ops: Vec<OpIo> = (1..sizes.len() as u16)
        .map(|t| op(&[t - 1], t, Reuse::None))
        .collect();
    let last = sizes.len() as u16 - 1;
    run(sizes, &vec![false; sizes.len()], 0, &[last], &ops).unwrap()
}

/// The old sequential planner's work region: `max over layers (in + out)`, sizes rounded to 4.
fn ping_pong(sizes: &[usize]) -> usize {
    sizes
        .windows(2)
        .map(|w| align_up(w[0]).unwrap() + align_up(w[1]).unwrap())
        .max()
        .unwrap_or(0)
}

#[test]
fn plan_keeps_the_ping_pong_layout_where_greedy_by_size_loses() {
    // Sizes 40, 24, 32, 40; lifetimes [0,0], [0,1], [1,2], [2,3]. Greedy by size: both 40s @0
    // (they never meet), 32 meets the second 40 → @40, 24 meets the first 40 and the 32 → @72:
    // 96 bytes. Ping-pong needs max(40 + 24, 24 + 32, 32 + 40) = 72; by first use places
    // 40 @0, 24 @40, 32 @0, 40 @32, and `plan` keeps it.
    let sizes = [40, 24, 32, 40];
    let lifetimes = [lt(40, 0, 0), lt(24, 0, 1), lt(32, 1, 2), lt(40, 2, 3)];
    let (mut order, mut offsets) = ([0u16; 4], [0usize; 4]);
    let by_size = greedy_by(&lifetimes, &mut order, &mut offsets, Placement::BySize).unwrap();
    assert_eq!((by_size, offsets), (96, [0, 72, 40, 0]));
    let p = chain(&sizes);
    assert_eq!(p.offsets, [0, 40, 0, 32]);
    assert_eq!((p.high_water, ping_pong(&sizes)), (72, 72));
}

// ---------------------------------------------------------------- liveness errors

#[test]
fn liveness_errors() {
    let f = [false; 3];
    let none = |i: &[u16], o| op(i, o, Reuse::None);
    // Input id out of range, and too many inputs.
    let e = run(&[4; 3], &f, 0, &[2], &[none(&[0], 1), none(&[3], 2)]);
    assert_eq!(e.unwrap_err(), Error::PlanBadTensorId { op: 1 });
    let mut bad = none(&[0], 1);
    bad.n_inputs = 5;
    let e = run(&[4; 3], &f, 0, &[1], &[bad]);
    assert_eq!(e.unwrap_err(), Error::PlanBadTensorId { op: 0 });
    // Output id out of range.
    let e = run(&[4; 3], &f, 0, &[2], &[none(&[0], 9)]);
    assert_eq!(e.unwrap_err(), Error::PlanBadTensorId { op: 0 });
    // Read before produced; produced twice; writes the graph input; writes a constant.
    let e = run(&[4; 3], &f, 0, &[2], &[none(&[1], 2), none(&[0], 1)]);
    assert_eq!(e.unwrap_err(), Error::PlanBadProducer { op: 0 });
    let e = run(&[4; 3], &f, 0, &[1], &[none(&[0], 1), none(&[0], 1)]);
    assert_eq!(e.unwrap_err(), Error::PlanBadProducer { op: 1 });
    let e = run(&[4; 3], &f, 0, &[0], &[none(&[0], 0)]);
    assert_eq!(e.unwrap_err(), Error::PlanBadProducer { op: 0 });
    let e = run(&[4; 3], &[false, true, false], 0, &[2], &[none(&[0], 1)]);
    assert_eq!(e.unwrap_err(), Error::PlanBadProducer { op: 0 });
    // Reuse: size mismatch, no input, alias of a constant.
    let e = run(&[4, 8], &[false; 2], 0, &[1], &[op(&[0], 1, Reuse::Alias)]);
    assert_eq!(e.unwrap_err(), Error::PlanBadReuse { op: 0 });
    let e = run(
        &[4, 8],
        &[false; 2],
        0,
        &[1],
        &[op(&[0], 1, Reuse::InPlace)],
    );
    assert_eq!(e.unwrap_err(), Error::PlanBadReuse { op: 0 });
    let e = run(&[4, 4], &[false; 2], 0, &[1], &[op(&[], 1, Reuse::InPlace)]);
    assert_eq!(e.unwrap_err(), Error::PlanBadReuse { op: 0 });
    let e = run(
        &[4; 3],
        &[false, true, false],
        0,
        &[2],
        &[op(&[1], 2, Reuse::Alias)],
    );
    assert_eq!(e.unwrap_err(), Error::PlanBadReuse { op: 0 });
    // Graph tensors: input out of range or constant, output never produced.
    let e = run(&[4; 3], &f, 3, &[2], &[none(&[0], 2)]);
    assert_eq!(e.unwrap_err(), Error::PlanBadGraphTensor);
    let e = run(&[4; 3], &[true, false, false], 0, &[2], &[none(&[0], 2)]);
    assert_eq!(e.unwrap_err(), Error::PlanBadGraphTensor);
    let e = run(&[4; 3], &f, 0, &[1], &[none(&[0], 2)]);
    assert_eq!(e.unwrap_err(), Error::PlanBadGraphTensor);
    // Sizes overflow.
    let e = run(&[4, usize::MAX], &[false; 2], 0, &[1], &[none(&[0], 1)]);
    assert_eq!(e.unwrap_err(), Error::ModelSizeOverflow);
}

#[test]
fn liveness_capacity() {
    let ops = [op(&[0], 1, Reuse::None), op(&[1], 2, Reuse::None)];
    let (bytes, consts) = ([4usize; 3], [false; 3]);
    let mut buffer_of = [0u16; 3];
    let mut lifetimes = [Lifetime::default(); 3];
    let it = ops.iter().copied();
    let call = |buffer_of: &mut [u16], lifetimes: &mut [Lifetime], consts: &[bool]| {
        liveness(&bytes, consts, 0, &[2], it.clone(), buffer_of, lifetimes)
    };
    assert_eq!(call(&mut buffer_of, &mut lifetimes, &consts), Ok(3));
    assert_eq!(
        call(&mut buffer_of, &mut lifetimes[..2], &consts),
        Err(Error::PlanCapacity)
    );
    assert_eq!(
        call(&mut buffer_of[..2], &mut lifetimes, &consts),
        Err(Error::PlanCapacity)
    );
    assert_eq!(
        call(&mut buffer_of, &mut lifetimes, &consts[..2]),
        Err(Error::PlanCapacity)
    );
}

#[test]
fn planner_errors_display_their_index() {
    use std::string::ToString;
    let s = Error::PlanBadTensorId { op: 7 }.to_string();
    assert!(s.starts_with("op 7: "), "{s}");
    let s = Error::PlanBadLifetime { buffer: 3 }.to_string();
    assert!(s.starts_with("buffer 3: "), "{s}");
    assert!(!Error::PlanCapacity.to_string().is_empty());
}

// ---------------------------------------------------------------- properties

/// Raw material for one op of a random DAG; indices are reduced modulo what exists.
#[derive(Debug, Clone)]
struct RawOp {
    inputs: [u16; MAX_OP_INPUTS],
    n_inputs: u8,
    reuse: u8,
    size: usize,
}

fn raw_op() -> impl Strategy<Value = RawOp> {
    (
        any::<[u16; MAX_OP_INPUTS]>(),
        1u8..=MAX_OP_INPUTS as u8,
        0u8..3,
        0usize..300,
    )
        .prop_map(|(inputs, n_inputs, reuse, size)| RawOp {
            inputs,
            n_inputs,
            reuse,
            size,
        })
}

/// A random valid DAG: tensor 0 is the input, then `n_const` constants, then one output per op.
/// Input 0 of every op is a non-constant earlier tensor, the others any earlier tensor; alias
/// and in-place outputs copy input 0's size. Graph outputs: the last tensor and those picked
/// by `out_mask`.
#[derive(Debug, Clone)]
struct Dag {
    bytes: Vec<usize>,
    consts: Vec<bool>,
    outputs: Vec<u16>,
    ops: Vec<OpIo>,
    producer: Vec<Option<usize>>,
}

fn dag(input_size: usize, n_const: usize, raw: &[RawOp], out_mask: u64) -> Dag {
    let mut bytes = vec![input_size];
    let mut consts = vec![false];
    let mut producer = vec![None];
    for c in 0..n_const {
        bytes.push(7 + c);
        consts.push(true);
        producer.push(None);
    }
    let mut activations: Vec<u16> = vec![0];
    let mut ops = Vec::new();
    for (k, r) in raw.iter().enumerate() {
        let out = bytes.len() as u16;
        let mut inputs = [0u16; MAX_OP_INPUTS];
        inputs[0] = activations[usize::from(r.inputs[0]) % activations.len()];
        let used = usize::from(r.n_inputs);
        for (slot, raw) in inputs.iter_mut().zip(r.inputs).take(used).skip(1) {
            *slot = raw % out;
        }
        let reuse = [Reuse::None, Reuse::Alias, Reuse::InPlace][usize::from(r.reuse)];
        let size = match reuse {
            Reuse::None => r.size,
            _ => bytes[usize::from(inputs[0])],
        };
        ops.push(OpIo {
            inputs,
            n_inputs: r.n_inputs,
            output: out,
            reuse,
            scratch: 0,
        });
        bytes.push(size);
        consts.push(false);
        producer.push(Some(k));
        activations.push(out);
    }
    let mut outputs = vec![*activations.last().unwrap()];
    for (i, &t) in activations.iter().enumerate() {
        if out_mask >> (i % 64) & 1 == 1 && !outputs.contains(&t) {
            outputs.push(t);
        }
    }
    Dag {
        bytes,
        consts,
        outputs,
        ops,
        producer,
    }
}

fn arb_dag() -> impl Strategy<Value = Dag> {
    (
        0usize..300,
        0usize..4,
        prop::collection::vec(raw_op(), 1..40),
        any::<u64>(),
    )
        .prop_map(|(input, n_const, raw, mask)| {
            // Outputs are rare: mask bits set with probability 1/8.
            let sparse = mask & (mask >> 1) & (mask >> 2);
            dag(input, n_const, &raw, sparse)
        })
}

fn overlap(a: (usize, usize), b: (usize, usize)) -> bool {
    a.1 > 0 && b.1 > 0 && a.0 < b.0 + b.1 && b.0 < a.0 + a.1
}

/// Properties (i)–(iv) of a greedy plan over `lifetimes`.
fn check_layout(lifetimes: &[Lifetime], offsets: &[usize], high: usize) {
    let n_ops = lifetimes.iter().map(|l| l.last).max().unwrap_or(0);
    for (i, a) in lifetimes.iter().enumerate() {
        // (iv)
        assert_eq!(offsets[i] % ARENA_ALIGN, 0);
        assert!(offsets[i] + align_up(a.size).unwrap() <= high);
        // (i)
        for (j, b) in lifetimes.iter().enumerate().skip(i + 1) {
            if a.intersects(b) {
                let ra = (offsets[i], align_up(a.size).unwrap());
                let rb = (offsets[j], align_up(b.size).unwrap());
                assert!(
                    !overlap(ra, rb),
                    "buffers {i} {a:?}@{ra:?} and {j} {b:?}@{rb:?}"
                );
            }
        }
    }
    // (ii)
    for k in 0..=n_ops {
        let live: usize = lifetimes
            .iter()
            .filter(|l| l.first <= k && k <= l.last)
            .map(|l| align_up(l.size).unwrap())
            .sum();
        assert!(
            live <= high,
            "{live} bytes live at op {k}, high water {high}"
        );
    }
    // (iii)
    let total: usize = lifetimes.iter().map(|l| align_up(l.size).unwrap()).sum();
    assert!(high <= total);
}

/// End to end: no op writes over bytes that a tensor still needs.
fn check_no_clobber(d: &Dag, p: &Planned) {
    let n_ops = d.ops.len();
    // Reference last use per tensor, computed independently of the planner.
    let mut last: Vec<Option<usize>> = d.producer.clone();
    last[0] = Some(0);
    for (k, o) in d.ops.iter().enumerate() {
        for &t in o.inputs().unwrap() {
            last[usize::from(t)] = Some(k);
        }
    }
    for &t in &d.outputs {
        last[usize::from(t)] = Some(n_ops);
    }
    let range = |t: u16| {
        (
            p.tensor_offset(t).unwrap(),
            align_up(d.bytes[usize::from(t)]).unwrap(),
        )
    };
    for (t, &c) in d.consts.iter().enumerate() {
        assert_eq!(c, p.buffer_of[t] == X, "tensor {t}");
    }
    for (k, o) in d.ops.iter().enumerate() {
        if o.reuse == Reuse::Alias {
            assert_eq!(
                p.buffer_of[usize::from(o.output)],
                p.buffer_of[usize::from(o.inputs[0])]
            );
            continue; // a view: writes nothing
        }
        let out = range(o.output);
        for t in 0..d.bytes.len() as u16 {
            let ti = usize::from(t);
            let before = t == 0 || d.producer[ti].is_some_and(|p| p < k);
            if d.consts[ti] || t == o.output || !before || last[ti].unwrap() < k {
                continue;
            }
            if overlap(range(t), out) {
                let same = p.buffer_of[ti] == p.buffer_of[usize::from(o.inputs[0])];
                assert!(
                    o.reuse == Reuse::InPlace && same && last[ti] == Some(k),
                    "op {k} ({o:?}) writes over tensor {t} (last use {:?})",
                    last[ti]
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_dags_plan_safely(d in arb_dag()) {
        let p = run(&d.bytes, &d.consts, 0, &d.outputs, &d.ops).unwrap();
        check_layout(&p.lifetimes, &p.offsets, p.high_water);
        check_no_clobber(&d, &p);
    }

    #[test]
    fn greedy_layout_properties_on_random_lifetimes(
        raw in prop::collection::vec((0usize..200, 0u16..20, 0u16..6), 0..60),
    ) {
        let lts: Vec<Lifetime> = raw.iter().map(|&(s, f, len)| lt(s, f, f + len)).collect();
        let mut order = vec![0u16; lts.len()];
        let mut offsets = vec![0usize; lts.len()];
        let high = greedy(&lts, &mut order, &mut offsets).unwrap();
        check_layout(&lts, &offsets, high);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, (0..lts.len() as u16).collect::<Vec<_>>());
        prop_assert!(order.windows(2).all(|w| offsets[usize::from(w[0])] <= offsets[usize::from(w[1])]));
    }

    /// Chains of two alternating sizes plan to exactly the old ping-pong size.
    #[test]
    fn alternating_chain_matches_ping_pong(a in 0usize..500, b in 0usize..500, n in 2usize..30) {
        let sizes: Vec<usize> = (0..n).map(|i| if i % 2 == 0 { a } else { b }).collect();
        let p = chain(&sizes);
        prop_assert_eq!(p.high_water, ping_pong(&sizes));
        prop_assert_eq!(p.high_water, align_up(a).unwrap() + align_up(b).unwrap());
    }

    /// On any chain the plan needs no more than the old ping-pong planner (`max(in + out)`).
    #[test]
    fn chains_never_need_more_than_ping_pong(sizes in prop::collection::vec(1usize..300, 2..16)) {
        let p = chain(&sizes);
        prop_assert!(p.high_water <= ping_pong(&sizes), "{} > {}", p.high_water, ping_pong(&sizes));
    }

    /// An out-of-range id in any op of a valid graph is reported at that op.
    #[test]
    fn out_of_range_id_is_an_error(d in arb_dag(), which in any::<usize>(), slot in 0usize..5, id in any::<u16>()) {
        let mut d = d;
        let k = which % d.ops.len();
        let n = d.bytes.len() as u16;
        let bad = n.saturating_add(id % (u16::MAX - n));
        let o = &mut d.ops[k];
        match slot {
            4 => o.output = bad,
            s if s < usize::from(o.n_inputs) => o.inputs[s] = bad,
            _ => o.inputs[0] = bad,
        }
        let e = run(&d.bytes, &d.consts, 0, &d.outputs, &d.ops).unwrap_err();
        prop_assert_eq!(e, Error::PlanBadTensorId { op: k });
    }

    /// Arbitrary garbage never panics; whatever succeeds still satisfies the layout properties.
    #[test]
    fn garbage_never_panics(
        bytes in prop::collection::vec(prop_oneof![0usize..64, Just(usize::MAX), Just(usize::MAX / 2)], 0..12),
        const_bits in any::<u16>(),
        const_len_delta in 0usize..10,
        input in 0u16..16,
        outputs in prop::collection::vec(0u16..16, 0..4),
        ops in prop::collection::vec((any::<[u16; 4]>(), 0u8..7, 0u16..16, 0u8..3), 0..12),
        capacity in 0usize..14,
        order_len in 0usize..14,
    ) {
        let consts: Vec<bool> = (0..bytes.len()).map(|i| const_bits >> i & 1 == 1).collect();
        // Occasionally a mismatched length.
        let const_len = if const_len_delta == 0 { bytes.len() + 1 } else { bytes.len() };
        let consts: Vec<bool> = consts.iter().copied().chain([false]).take(const_len).collect();
        let ops: Vec<OpIo> = ops
            .iter()
            .map(|&(inputs, n_inputs, output, r)| OpIo {
                inputs: inputs.map(|i| i % 16),
                n_inputs,
                output,
                reuse: [Reuse::None, Reuse::Alias, Reuse::InPlace][usize::from(r)],
                scratch: usize::from(output % 3) * 6,
            })
            .collect();
        let mut buffer_of = vec![0u16; bytes.len()];
        let mut lifetimes = vec![Lifetime::default(); capacity];
        let mut order = vec![0u16; order_len];
        let mut offsets = vec![0usize; order_len];
        let mut storage = PlanStorage {
            buffer_of: &mut buffer_of,
            lifetimes: &mut lifetimes,
            order: &mut order,
            offsets: &mut offsets,
        };
        let graph = Graph {
            tensor_bytes: &bytes,
            is_constant: &consts,
            input,
            outputs: &outputs,
            ops: ops.iter().copied(),
        };
        if let Ok(p) = plan(graph, &mut storage) {
            check_layout(&lifetimes[..p.buffers], &offsets[..p.buffers], p.high_water);
        }
    }

    /// Greedy on garbage lifetimes (huge sizes, reversed intervals) never panics.
    #[test]
    fn greedy_garbage_never_panics(
        raw in prop::collection::vec((prop_oneof![0usize..64, usize::MAX - 64..=usize::MAX, Just(usize::MAX / 3)], any::<u16>(), any::<u16>()), 0..10),
    ) {
        let lts: Vec<Lifetime> = raw.iter().map(|&(s, f, l)| lt(s, f, l)).collect();
        let _ = greedy(&lts, &mut [0; 10], &mut [0; 10]);
    }
}
