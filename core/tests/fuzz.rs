//! Property tests: no byte string makes the decoder or the interpreter panic. Random bytes, random
//! bodies behind a valid header and CRC, truncations, mutations (with and without a fixed-up CRC)
//! and huge lengths all return `Err` or a model that runs.

mod common;

use common::{
    file_with_body, residual_cnn, small_cnn, small_mlp, vit_models, with_int8, OwnedModel,
};
use denoiserep_core::{Error, Model, LOAD_SCRATCH_PER_TENSOR, MAX_TENSORS};
use proptest::prelude::*;
use std::sync::OnceLock;

/// Valid files to mutate: an f32 MLP, an f32 CNN, the int8 CNN, the int8 residual block and the
/// ViT block in f32 and int8.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let (vit_f32, vit_int8) = vit_models(24);
        let models: Vec<OwnedModel> = vec![
            small_mlp(20),
            small_cnn(21),
            with_int8(small_cnn(21), 4).1,
            with_int8(residual_cnn(22), 5).1,
            vit_f32,
            vit_int8,
        ];
        models.iter().map(|m| m.encode().unwrap()).collect()
    })
}

/// Whatever loads must also run without panicking (on a bounded arena), with outputs of the
/// declared shapes; the loader never reports a planner-internal error (validation comes first).
fn load_and_maybe_run(bytes: &[u8]) -> bool {
    same_with_scratch(bytes);
    match Model::from_bytes(bytes) {
        Err(e) => {
            assert!(
                !matches!(
                    e,
                    Error::PlanBadTensorId { .. }
                        | Error::PlanBadProducer { .. }
                        | Error::PlanBadReuse { .. }
                        | Error::PlanBadGraphTensor
                        | Error::PlanCapacity
                        | Error::PlanBadLifetime { .. }
                        | Error::KernelBadArguments
                ),
                "internal error {e:?} from the loader"
            );
            false
        }
        Ok(model) => {
            if model.arena_size() <= 1 << 22 && model.input_len() <= 1 << 16 {
                let input = vec![0.5f32; model.input_len()];
                let mut arena = vec![0u8; model.arena_size()];
                let out = model
                    .run(&input, &mut arena)
                    .expect("a validated model runs");
                let info = model.info();
                let numel = |id| model.tensor(id).unwrap().shape.numel().unwrap();
                assert_eq!(out.logits.len(), numel(info.logits));
                assert_eq!(out.embedding.len(), numel(info.embedding));
                assert_eq!(out.logits.len(), model.num_classes());
            }
            true
        }
    }
}

/// Loading with the scratch in caller bytes (`from_bytes_in_place_with_scratch`, the firmware's
/// path: the planner on `ByteCells`) gives the same result as the stack path: the same error, or
/// the same plan (arena sizes and every tensor's offset).
fn same_with_scratch(bytes: &[u8]) {
    let stack = Model::from_bytes(bytes);
    let mut scratch = vec![0xA5u8; LOAD_SCRATCH_PER_TENSOR * MAX_TENSORS];
    let mut place: Option<Model<'_>> = None;
    let packed = Model::from_bytes_in_place_with_scratch(bytes, &mut place, &mut scratch);
    match (&stack, packed) {
        (Err(a), Err(b)) => assert_eq!(*a, b),
        (Ok(a), Ok(b)) => {
            assert_eq!(
                (a.arena_size(), a.activation_bytes(), a.tensor_count()),
                (b.arena_size(), b.activation_bytes(), b.tensor_count())
            );
            for id in 0..a.tensor_count() as u16 {
                assert_eq!(a.tensor_offset(id), b.tensor_offset(id), "tensor {id}");
            }
        }
        (a, b) => panic!("stack path {a:?}, scratch path {b:?}"),
    }
}

const N_SEEDS: usize = 6;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        prop_assert!(Model::from_bytes(&bytes).is_err());
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        load_and_maybe_run(&file_with_body(&body));
    }

    #[test]
    fn truncations_are_rejected(which in 0usize..N_SEEDS, cut in any::<prop::sample::Index>()) {
        let file = &seeds()[which];
        let n = cut.index(file.len());
        prop_assert!(Model::from_bytes(&file[..n]).is_err());
        // A truncated body behind a header fixed up for it is still rejected.
        prop_assert!(Model::from_bytes(&file_with_body(&file[16..16 + n.saturating_sub(16)])).is_err());
    }

    #[test]
    fn mutations_with_fixed_crc_never_panic(
        which in 0usize..N_SEEDS,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut body = seeds()[which][16..].to_vec();
        for (at, v) in edits {
            let i = at.index(body.len());
            body[i] = v;
        }
        load_and_maybe_run(&file_with_body(&body));
    }

    #[test]
    fn mutations_without_fixing_the_crc_are_rejected(
        which in 0usize..N_SEEDS,
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut file = seeds()[which].clone();
        let i = at.index(file.len());
        file[i] ^= xor;
        prop_assert!(Model::from_bytes(&file).is_err());
    }

    #[test]
    fn huge_varints_spliced_into_the_body_never_panic(
        which in 0usize..N_SEEDS,
        at in any::<prop::sample::Index>(),
        huge in prop::sample::select(vec![
            vec![0xFFu8, 0xFF, 0xFF, 0xFF, 0x0F],
            vec![0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            vec![0x80, 0x80, 0x80, 0x80, 0x10],
            vec![0xFF, 0xFF, 0x03],
        ]),
        replace in any::<bool>(),
    ) {
        let mut body = seeds()[which][16..].to_vec();
        let i = at.index(body.len());
        if replace {
            let end = (i + huge.len()).min(body.len());
            body.splice(i..end, huge);
        } else {
            body.splice(i..i, huge);
        }
        load_and_maybe_run(&file_with_body(&body));
    }
}

/// Typed mutations of a valid graph (ids, dims, dtypes, outputs), written without validation:
/// these reach the graph checks far more often than byte edits do.
fn mutate_graph(m: &mut OwnedModel, edits: &[(u8, u16, u16)]) {
    use denoiserep_core::{DType, QuantParams};
    for &(what, a, b) in edits {
        let nt = m.tensors.len() as u16;
        let nn = m.nodes.len();
        match what % 8 {
            0 if nn > 0 => {
                let n = &mut m.nodes[a as usize % nn];
                let k = b as usize % n.inputs.len().max(1);
                if let Some(i) = n.inputs.get_mut(k) {
                    *i = b % (nt + 2);
                }
            }
            1 if nn > 0 => m.nodes[a as usize % nn].output = b % (nt + 2),
            2 => {
                let t = &mut m.tensors[a as usize % nt as usize];
                let k = b as usize % t.dims.len();
                t.dims[k] = 1 + (b as usize >> 4) % 9;
            }
            3 => {
                m.tensors[a as usize % nt as usize].dtype = if b % 2 == 0 {
                    DType::F32
                } else {
                    DType::I8(QuantParams {
                        scale: 0.01 * f32::from(b % 7),
                        zero_point: (b >> 3) as i8,
                    })
                }
            }
            4 => m.logits = b % (nt + 1),
            5 => m.embedding = b % (nt + 1),
            6 if nn > 1 => m.nodes.swap(a as usize % nn, b as usize % nn),
            7 if nn > 0 => {
                let n = &mut m.nodes[a as usize % nn];
                if b % 2 == 0 {
                    n.inputs.push(b % nt);
                } else {
                    n.inputs.pop();
                }
            }
            _ => {}
        }
    }
}

fn seed_models() -> Vec<OwnedModel> {
    let (vit_f32, vit_int8) = vit_models(25);
    vec![
        small_mlp(20),
        small_cnn(21),
        with_int8(small_cnn(21), 4).1,
        with_int8(residual_cnn(22), 5).1,
        with_int8(common::dw_separable(23), 6).1,
        vit_f32,
        vit_int8,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn typed_graph_mutations_never_panic(
        which in 0usize..7,
        edits in proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u16>()), 1..4),
    ) {
        let mut m = seed_models().swap_remove(which);
        mutate_graph(&mut m, &edits);
        if m.nodes.iter().all(|n| n.inputs.len() <= 4) {
            let bytes = m.raw();
            let loaded = load_and_maybe_run(&bytes);
            // `encode` agrees with the loader.
            prop_assert_eq!(m.encode().is_ok(), loaded);
        }
    }
}

/// The mutation properties above are not vacuous: low-bit flips in weights (with the CRC fixed
/// up) give valid models, and those are run too.
#[test]
fn many_low_bit_mutations_load_and_run() {
    for file in seeds() {
        let body = &file[16..];
        let mut loaded = 0;
        let mut tried = 0;
        for i in (0..body.len()).step_by(5) {
            let mut b = body.to_vec();
            b[i] ^= 0x01;
            tried += 1;
            loaded += usize::from(load_and_maybe_run(&file_with_body(&b)));
        }
        assert!(
            loaded * 2 > tried,
            "only {loaded} of {tried} mutated models loaded"
        );
    }
}
