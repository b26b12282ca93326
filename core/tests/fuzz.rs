//! Property tests: no byte string makes the decoder or the engine panic. Random bytes, random
//! bodies behind a valid header and CRC, truncations, mutations (with and without a fixed-up CRC)
//! and huge lengths all return `Err` or a model that runs.

mod common;

use common::{small_cnn, small_mlp, Rng};
use denoiserep_core::{Model, FORMAT_VERSION};
use proptest::prelude::*;

fn file_with_body(body: &[u8]) -> Vec<u8> {
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(body);
    let mut f = b"DNRP".to_vec();
    f.extend(FORMAT_VERSION.to_le_bytes());
    f.extend(0u16.to_le_bytes());
    f.extend((body.len() as u32).to_le_bytes());
    f.extend(crc.to_le_bytes());
    f.extend(body);
    f
}

/// Valid files to mutate: an f32 MLP, an f32 CNN and the int8 CNN.
fn seeds() -> Vec<Vec<u8>> {
    let cnn = small_cnn(21);
    let mut rng = Rng(4);
    let calib: Vec<Vec<f32>> = (0..4).map(|_| rng.vec(144, 0.0, 1.0)).collect();
    vec![
        small_mlp(20).encode().unwrap(),
        cnn.encode().unwrap(),
        common::quantize_model(&cnn, &calib).encode().unwrap(),
    ]
}

/// Whatever decodes must also run without panicking (on a bounded arena).
fn load_and_maybe_run(bytes: &[u8]) -> bool {
    match Model::from_bytes(bytes) {
        Err(_) => false,
        Ok(model) => {
            if model.arena_size() <= 1 << 22 && model.input_len() <= 1 << 16 {
                let input = vec![0.5f32; model.input_len()];
                let mut arena = vec![0u8; model.arena_size()];
                let out = model
                    .run(&input, &mut arena)
                    .expect("a validated model runs");
                assert_eq!(out.logits.len(), model.metadata().num_classes as usize);
            }
            true
        }
    }
}

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
    fn truncations_are_rejected(which in 0usize..3, cut in any::<prop::sample::Index>()) {
        let file = &seeds()[which];
        let n = cut.index(file.len());
        prop_assert!(Model::from_bytes(&file[..n]).is_err());
        // A truncated body behind a header fixed up for it is still rejected.
        prop_assert!(Model::from_bytes(&file_with_body(&file[16..16 + n.saturating_sub(16)])).is_err());
    }

    #[test]
    fn mutations_with_fixed_crc_never_panic(
        which in 0usize..3,
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
        which in 0usize..3,
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
        which in 0usize..3,
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
