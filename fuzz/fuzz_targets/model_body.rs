//! Model bodies: the fuzz input is the body (postcard model info, tensor table and ops, format
//! v3); the harness prepends
//! a valid 16-byte header (magic `DNRP`, version, reserved 0, body length, CRC-32/ISO-HDLC of the
//! body, the `crc` crate's implementation as in core) so that mutations reach the body decoder,
//! validation, planning and the kernels instead of dying at the CRC check.
#![no_main]

mod common;

use denoiserep_core::{FORMAT_VERSION, MAGIC};
use libfuzzer_sys::fuzz_target;

/// The model format's body checksum (`docs/model-format.md`).
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

fuzz_target!(|body: &[u8]| {
    let Ok(len) = u32::try_from(body.len()) else {
        return;
    };
    let mut file = Vec::with_capacity(16 + body.len());
    file.extend_from_slice(&MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&0u16.to_le_bytes());
    file.extend_from_slice(&len.to_le_bytes());
    file.extend_from_slice(&CRC32.checksum(body).to_le_bytes());
    file.extend_from_slice(body);
    let seed = body
        .iter()
        .fold(0u32, |h, &b| h.rotate_left(5) ^ u32::from(b));
    common::check_model(&file, seed);
    // Decoding alone (no validation) never panics either, and agrees with from_bytes: a body
    // that loads decodes, and re-encoding what it decodes gives the same bytes.
    let body = denoiserep_core::format::Body::read(&file);
    if let Ok(model) = denoiserep_core::Model::from_bytes(&file) {
        let body = body.expect("a body that loads decodes");
        let tensors: Vec<_> = body.tensors().map(|t| t.expect("decoded once")).collect();
        let nodes: Vec<_> = body.nodes().map(|n| n.expect("decoded once")).collect();
        assert_eq!(
            (tensors.len(), nodes.len()),
            (model.tensor_count(), model.op_count())
        );
        let graph = denoiserep_core::Graph {
            info: body.info,
            tensors: &tensors,
            nodes: &nodes,
        };
        // Re-encoding what decoded gives a file of `encoded_len` bytes (the counting encoder
        // agrees with the writing one) that decodes to the same graph: not necessarily the same
        // bytes, and not necessarily no longer than the input. Postcard also accepts
        // non-minimal varints such as `80 00` for 0, which the encoder never writes; and a
        // payload's pad (format v3) may be shorter in the input than the encoder's, which pads
        // each payload to its alignment in the new file.
        let len = denoiserep_core::encoded_len(&graph).expect("a loaded graph has a length");
        let mut again = vec![0u8; len];
        let n = denoiserep_core::encode(&graph, &mut again).expect("a loaded graph re-encodes");
        assert_eq!(n, len, "encode wrote what encoded_len counted");
        let again = &again[..n];
        let body2 = denoiserep_core::format::Body::read(again).expect("re-encoded file decodes");
        assert_eq!(body2.info, body.info);
        assert!(body2
            .tensors()
            .map(|t| t.expect("decodes"))
            .eq(tensors.iter().copied()));
        assert!(body2
            .nodes()
            .map(|n| n.expect("decodes"))
            .eq(nodes.iter().copied()));
    };
});
