//! The model file format v3: the golden file of `docs/model-format.md` (encoded bytes, decoded
//! graph, outputs), round trips, every single bit flip, and one test per rejection with the
//! typed error naming the op or tensor.

mod common;

use common::{
    file_with_body, le_f32, le_i32, residual_cnn, small_cnn, small_mlp, square, with_int8,
    OwnedModel, OwnedOp, OwnedWeights, Rng,
};
use denoiserep_core::format::graph::{Node, Op, MAX_OP_INPUTS};
use denoiserep_core::format::{Body, HEADER_LEN};
use denoiserep_core::{
    encode, encoded_len, file_len, Activation, DType, Error, F32Data, Graph, Model, OpKind,
    QuantParams, FORMAT_VERSION, MAGIC,
};

/// The golden file of `docs/model-format.md` §7: input `[2]` → Linear 2→2 + ReLU (tensor 1) →
/// Add(tensor 1, input) (tensor 2, the embedding) → Linear 2→3 (tensor 3, the logits). Every
/// payload is small (< 128 bytes), so the encoder puts it on a multiple of 4 of the file
/// (`format::align`): the pad before it is 1 or 2 zero bytes here.
#[rustfmt::skip]
const GOLDEN: [u8; 148] = [
    // header: magic "DNRP", version 3, reserved 0, body length 132, CRC-32 0x9e7fdc24
    0x44, 0x4e, 0x52, 0x50, 0x03, 0x00, 0x00, 0x00, 0x84, 0x00, 0x00, 0x00, 0x24, 0xdc, 0x7f, 0x9e,
    // model info: name "r"; input 0, logits 3, embedding 2
    0x01, 0x72, 0x00, 0x03, 0x02,
    // input_mean [0.0]: pad of 1 byte, then 4 bytes at file offset 24;
    // input_std [1.0]: pad of 2 bytes, then 4 bytes at offset 32
    0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x00, 0x04, 0x00, 0x00, 0x80, 0x3f,
    // 4 tensors: [2] f32 activation (×3), [3] f32 activation
    0x04,
    0x01, 0x02, 0x00, 0x00,
    0x01, 0x02, 0x00, 0x00,
    0x01, 0x02, 0x00, 0x00,
    0x01, 0x03, 0x00, 0x00,
    // 3 ops. Op 0: tag 1 (Linear), inputs [0], output 1, ReLU, Weights::F32,
    0x03,
    0x01, 0x01, 0x00, 0x01, 0x01, 0x00,
    //   weights [1, -1, 0.5, 2]: pad 2, 16 bytes at offset 64; bias [0, -1]: pad 2, 8 bytes at 84
    0x02, 0x00, 0x00,
    0x10, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x80, 0xbf, 0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x00, 0x40,
    0x02, 0x00, 0x00,
    0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0xbf,
    // op 1: tag 4 (Add), inputs [1, 0], output 2, activation None
    0x04, 0x02, 0x01, 0x00, 0x02, 0x00,
    // op 2: tag 1 (Linear), inputs [2], output 3, activation None, Weights::F32,
    0x01, 0x01, 0x02, 0x03, 0x00, 0x00,
    //   weights [1, 0, 0, 1, 1, 1]: pad 2, 24 bytes at 108; bias [0, 0, 0.5]: pad 2, 12 bytes at 136
    0x02, 0x00, 0x00,
    0x18, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x80, 0x3f,
    0x02, 0x00, 0x00,
    0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f,
];

/// Body offsets (file offset − 16) of the golden file's fields that the tests patch.
mod at {
    pub const NAME: usize = 1;
    pub const T0_RANK: usize = 21;
    pub const T0_DIM: usize = 22;
    pub const T0_DTYPE: usize = 23;
    pub const T0_DATA: usize = 24;
    pub const OP0_TAG: usize = 38;
    pub const OP0_ACT: usize = 42;
    pub const OP0_WEIGHTS: usize = 43;
    pub const OP0_WEIGHTS_PAD: usize = 44;
    pub const OP1_TAG: usize = 76;
    pub const OP1_N_INPUTS: usize = 77;
    pub const OP2_BIAS_LEN: usize = 119;
}

fn golden_model() -> OwnedModel {
    let mut m = OwnedModel::new("r", &[2], &[0.0], &[1.0]);
    let h = m.linear(0, Activation::Relu, &[1.0, -1.0, 0.5, 2.0], &[0.0, -1.0]);
    let s = m.add(h, 0, Activation::None);
    let l = m.linear(
        s,
        Activation::None,
        &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
        &[0.0, 0.0, 0.5],
    );
    m.outputs(l, s)
}

fn body() -> Vec<u8> {
    GOLDEN[HEADER_LEN..].to_vec()
}

fn load(body: &[u8]) -> Result<(), Error> {
    Model::from_bytes(&file_with_body(body)).map(|_| ())
}

#[test]
fn golden_bytes_encode_exactly() {
    let m = golden_model();
    m.with_graph(|g| assert_eq!(encoded_len(g).unwrap(), GOLDEN.len()));
    assert_eq!(m.encode().unwrap(), GOLDEN);
    // The unvalidated serde path (plain postcard, which knows no file offsets) writes a valid
    // file of the same graph with the shortest pads (`varint_len` of each payload's length).
    let raw = m.raw();
    assert_eq!(raw.len(), GOLDEN.len() - 5);
    let (a, b) = (Body::read(&raw).unwrap(), Body::read(&GOLDEN).unwrap());
    assert_eq!(a.info, b.info);
    assert!(a
        .nodes()
        .map(Result::unwrap)
        .eq(b.nodes().map(Result::unwrap)));
}

#[test]
fn golden_bytes_decode_and_run() {
    let body = Body::read(&GOLDEN).unwrap();
    let m = golden_model();
    assert_eq!(body.info, m.info());
    assert_eq!((body.tensor_count(), body.op_count()), (4, 3));
    let nodes: Vec<Node<'_>> = body.nodes().map(Result::unwrap).collect();
    assert_eq!(nodes[1].op.kind(), OpKind::Add);
    assert_eq!(nodes[1].inputs.ids(), [1, 0]);
    let Op::Linear(lin) = nodes[0].op else {
        panic!("{:?}", nodes[0])
    };
    assert_eq!(lin.activation, Activation::Relu);
    let denoiserep_core::format::graph::Weights::F32 { weights, bias } = lin.weights else {
        panic!()
    };
    assert_eq!(weights.iter().collect::<Vec<_>>(), [1.0, -1.0, 0.5, 2.0]);
    assert_eq!(bias.iter().collect::<Vec<_>>(), [0.0, -1.0]);

    let model = Model::from_bytes(&GOLDEN).unwrap();
    // Tensors 0, 1 and 2 are live at op 1 (8 bytes each); the planned region is 24 bytes.
    assert_eq!(model.plan_size(), 24);
    assert_eq!(model.arena_size(), 27);
    let mut arena = vec![0u8; model.arena_size()];
    let mut steps = vec![];
    let out = model
        .run_with(&[3.0, 1.0], &mut arena, |s| {
            let mut v = vec![0.0; s.output.len()];
            s.output.dequantize_into(&mut v).unwrap();
            steps.push(v);
        })
        .unwrap();
    assert_eq!(steps, [vec![2.0, 2.5], vec![5.0, 3.5], vec![5.0, 3.5, 9.0]]);
    let mut logits = [0.0; 3];
    out.logits.dequantize_into(&mut logits).unwrap();
    assert_eq!(logits, [5.0, 3.5, 9.0]);
    assert_eq!(out.embedding.get_f32(0), Some(5.0));
    assert_eq!(out.embedding.get_f32(1), Some(3.5));
    assert_eq!(out.logits.argmax(), Some(2));
}

#[test]
fn file_len_reads_the_header() {
    assert_eq!(file_len(&GOLDEN), Ok(148));
    // Firmware slices a file out of a larger flash partition with it.
    let mut flash = GOLDEN.to_vec();
    flash.extend([0xFF; 100]);
    let n = file_len(&flash).unwrap();
    assert!(Model::from_bytes(&flash[..n]).is_ok());
    assert_eq!(
        Model::from_bytes(&flash).unwrap_err(),
        Error::DecodeLengthMismatch
    );
}

/// Decodes `bytes` and checks the info, tensor table and ops equal `m`'s; re-encodes them.
fn check_round_trip(m: &OwnedModel) {
    let bytes = m.encode().unwrap();
    let body = Body::read(&bytes).unwrap();
    let tensors: Vec<_> = body.tensors().map(Result::unwrap).collect();
    let nodes: Vec<_> = body.nodes().map(Result::unwrap).collect();
    m.with_graph(|g| {
        assert_eq!(body.info, g.info);
        assert_eq!(&tensors[..], g.tensors);
        assert_eq!(&nodes[..], g.nodes);
    });
    let again = Graph {
        info: body.info,
        tensors: &tensors,
        nodes: &nodes,
    };
    let mut out = vec![0u8; bytes.len()];
    assert_eq!(encode(&again, &mut out), Ok(bytes.len()));
    assert_eq!(out, bytes);
}

#[test]
fn round_trip_models_decode_to_what_was_encoded() {
    let mut with_const = OwnedModel::new("const", &[4], &[0.0], &[1.0]);
    let c = with_const.constant_f32(&[4], &[1.0, -1.0, 0.5, 0.25]);
    let s = with_const.add(0, c, Activation::Relu6);
    let with_const = with_const.outputs(s, s);
    for (i, f) in [
        golden_model(),
        small_mlp(3),
        small_cnn(7),
        residual_cnn(8),
        common::dw_separable(9),
    ]
    .into_iter()
    .enumerate()
    {
        let (f, q) = with_int8(f, i as u64);
        check_round_trip(&f);
        check_round_trip(&q);
    }
    check_round_trip(&with_const);
}

#[test]
fn encode_reports_a_small_buffer() {
    let m = golden_model();
    m.with_graph(|g| {
        let mut out = [0u8; 147];
        assert_eq!(encode(g, &mut out), Err(Error::EncodeBufferTooSmall));
        let mut tiny = [0u8; 3];
        assert_eq!(encode(g, &mut tiny), Err(Error::EncodeBufferTooSmall));
        let mut big = [0u8; 200];
        assert_eq!(encode(g, &mut big), Ok(148));
        assert_eq!(big[..148], GOLDEN);
    });
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let cnn = with_int8(small_cnn(11), 9).1;
    let res = with_int8(residual_cnn(12), 10).1;
    let files = [
        GOLDEN.to_vec(),
        small_mlp(5).encode().unwrap(),
        cnn.encode().unwrap(),
        res.encode().unwrap(),
    ];
    for file in &files {
        assert!(Model::from_bytes(file).is_ok());
        let mut f = file.clone();
        for byte in 0..f.len() {
            for bit in 0..8 {
                f[byte] ^= 1 << bit;
                let rejected = Model::from_bytes(&f).is_err();
                assert!(rejected, "flip of byte {byte} bit {bit} accepted");
                f[byte] ^= 1 << bit;
            }
        }
    }
}

#[test]
fn header_errors_are_typed() {
    let cases: [(usize, u8, Error); 6] = [
        (0, b'X', Error::DecodeBadMagic),
        // a v2 file: no v2 reader is kept (re-export)
        (4, 2, Error::DecodeUnsupportedVersion { found: 2 }),
        (4, 4, Error::DecodeUnsupportedVersion { found: 4 }),
        (7, 1, Error::DecodeBadHeader),
        (12, 0x55, Error::DecodeBadCrc),
        (40, 0x13, Error::DecodeBadCrc),
    ];
    for (at, v, e) in cases {
        let mut f = GOLDEN.to_vec();
        f[at] = v;
        assert_eq!(Model::from_bytes(&f).unwrap_err(), e, "byte {at}");
    }
    let mut v2 = GOLDEN.to_vec();
    v2[4] = 2;
    assert_eq!(
        Model::from_bytes(&v2).unwrap_err().to_string(),
        "the model file has format version 2; this build reads only version 3: export the model \
         again with this build (`denoiserep export --run DIR`)"
    );
    assert_eq!(&GOLDEN[..4], MAGIC);
    assert_eq!(GOLDEN[4..6], FORMAT_VERSION.to_le_bytes());
    let mut f = GOLDEN.to_vec();
    f[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        Model::from_bytes(&f).unwrap_err(),
        Error::DecodeLengthMismatch
    );
    assert_eq!(
        Model::from_bytes(&GOLDEN[..10]).unwrap_err(),
        Error::DecodeUnexpectedEnd
    );
    assert_eq!(
        Model::from_bytes(&[]).unwrap_err(),
        Error::DecodeUnexpectedEnd
    );
    for n in 16..GOLDEN.len() {
        assert_eq!(
            Model::from_bytes(&GOLDEN[..n]).unwrap_err(),
            Error::DecodeLengthMismatch
        );
    }
}

#[test]
fn body_errors_are_typed() {
    let patch = |at: usize, v: u8| {
        let mut b = body();
        b[at] = v;
        load(&b)
    };
    // Unknown op tags name the op; tag 0 is never used.
    assert_eq!(
        patch(at::OP0_TAG, 99),
        Err(Error::DecodeUnknownOpKind { op: 0 })
    );
    assert_eq!(
        patch(at::OP0_TAG, 0),
        Err(Error::DecodeUnknownOpKind { op: 0 })
    );
    assert_eq!(
        patch(at::OP1_TAG, 21),
        Err(Error::DecodeUnknownOpKind { op: 1 })
    );
    // More inputs than MAX_OP_INPUTS (the Add claims 5).
    assert_eq!(MAX_OP_INPUTS, 4);
    assert_eq!(
        patch(at::OP1_N_INPUTS, 5),
        Err(Error::DecodeTooManyInputs { op: 1 })
    );
    // A byte after the last op.
    let mut b = body();
    b.push(0);
    assert_eq!(load(&b), Err(Error::DecodeTrailingBytes));
    // Truncated body (with a matching header and CRC).
    let b = body();
    assert_eq!(load(&b[..b.len() - 1]), Err(Error::DecodeUnexpectedEnd));
    // Huge tensor length: the last bias claims 2^32 − 1 bytes.
    let mut b = body()[..at::OP2_BIAS_LEN].to_vec();
    b.extend([0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
    b.extend(&body()[at::OP2_BIAS_LEN + 1..]);
    assert_eq!(load(&b), Err(Error::DecodeUnexpectedEnd));
    // Overlong varint for the name length.
    let mut b = vec![
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
    ];
    b.extend(&body()[2..]);
    assert_eq!(load(&b), Err(Error::DecodeBadVarint));
    // A tensor count above u16 (varint 65536).
    let mut b = body()[..20].to_vec();
    b.extend([0x80, 0x80, 0x04]);
    b.extend(&body()[21..]);
    assert_eq!(load(&b), Err(Error::DecodeBadVarint));
    // A pad byte that is not zero, a pad longer than 63 bytes (format v3 §2: tensor payloads).
    assert_eq!(
        patch(at::OP0_WEIGHTS_PAD + 1, 1),
        Err(Error::DecodeBadValue)
    );
    let mut b = body()[..at::OP0_WEIGHTS_PAD].to_vec();
    b.push(64);
    b.extend([0u8; 64]);
    b.extend(&body()[at::OP0_WEIGHTS_PAD + 3..]);
    assert_eq!(load(&b), Err(Error::DecodeBadValue));
    // 63 zero bytes are a valid pad (the payload is then unaligned: readers do not care).
    let mut b = body()[..at::OP0_WEIGHTS_PAD].to_vec();
    b.push(63);
    b.extend([0u8; 63]);
    b.extend(&body()[at::OP0_WEIGHTS_PAD + 3..]);
    assert_eq!(load(&b), Ok(()));
    // Invalid UTF-8 name.
    assert_eq!(patch(at::NAME, 0xFF), Err(Error::DecodeBadUtf8));
    // Unknown dtype tag, bad option tag, a zero dim, rank 0, rank 5.
    assert_eq!(patch(at::T0_DTYPE, 7), Err(Error::DecodeBadValue));
    assert_eq!(patch(at::T0_DATA, 2), Err(Error::DecodeBadValue));
    assert_eq!(patch(at::T0_DIM, 0), Err(Error::DecodeBadValue));
    assert_eq!(patch(at::T0_RANK, 0), Err(Error::DecodeBadValue));
    assert_eq!(patch(at::T0_RANK, 5), Err(Error::DecodeBadValue));
    // Unknown activation and Weights tags in op 0.
    assert_eq!(patch(at::OP0_ACT, 3), Err(Error::DecodeBadValue));
    assert_eq!(patch(at::OP0_WEIGHTS, 2), Err(Error::DecodeBadValue));
}

#[test]
fn too_many_tensors_for_the_capacity_is_rejected() {
    // The golden model has 4 tensors.
    assert!(Model::<'_, 4>::from_bytes_with_capacity(&GOLDEN).is_ok());
    assert_eq!(
        Model::<'_, 3>::from_bytes_with_capacity(&GOLDEN).unwrap_err(),
        Error::DecodeTooManyTensors
    );
    // The default capacity: unused tensors count too.
    let mut m = golden_model();
    while m.tensors.len() < denoiserep_core::MAX_TENSORS {
        m.tensor(&[1], DType::F32);
    }
    assert!(Model::from_bytes(&m.raw()).is_ok());
    m.tensor(&[1], DType::F32);
    expect_err(&m, Error::DecodeTooManyTensors);
}

/// Both the loader (on the raw bytes) and `encode` report `e`.
fn expect_err(m: &OwnedModel, e: Error) {
    assert_eq!(Model::from_bytes(&m.raw()).unwrap_err(), e);
    assert_eq!(m.encode().unwrap_err(), e, "encode validates too");
}

#[test]
fn model_errors_are_typed() {
    let mut m = golden_model();
    m.nodes.clear();
    expect_err(&m, Error::ModelNoOps);
    // The input id is out of range, or a constant.
    let mut m = golden_model();
    m.input = 9;
    expect_err(&m, Error::ModelBadInput);
    let mut m = golden_model();
    m.tensors[0].data = Some(le_f32(&[1.0, 2.0]));
    expect_err(&m, Error::ModelBadInput);
    // Normalization: std 0, NaN mean, neither 1 nor dim-0 values, bytes not whole f32s.
    for (mean, std) in [
        (le_f32(&[0.0]), le_f32(&[0.0])),
        (le_f32(&[f32::NAN]), le_f32(&[1.0])),
        (le_f32(&[0.0; 3]), le_f32(&[1.0; 3])),
        (le_f32(&[0.0; 2]), le_f32(&[1.0])),
        (vec![0, 0, 0], le_f32(&[1.0])),
    ] {
        let mut m = golden_model();
        (m.mean, m.std) = (mean, std);
        expect_err(&m, Error::ModelBadNormalization);
    }
    // One value per dim-0 index is fine.
    let mut m = golden_model();
    (m.mean, m.std) = (le_f32(&[0.0, 1.0]), le_f32(&[1.0, 2.0]));
    assert!(m.encode().is_ok());
    // Outputs: out of range, never produced, a constant.
    let mut m = golden_model();
    m.logits = 9;
    expect_err(&m, Error::ModelBadOutputs);
    let mut m = golden_model();
    m.embedding = m.tensor(&[2], DType::F32);
    expect_err(&m, Error::ModelBadOutputs);
    let mut m = golden_model();
    m.logits = m.constant_f32(&[3], &[1.0; 3]);
    expect_err(&m, Error::ModelBadOutputs);
    // Tensor errors name the tensor: int8 scale 0, constant data of the wrong length or NaN.
    let mut m = golden_model();
    m.tensors[2].dtype = DType::I8(QuantParams {
        scale: 0.0,
        zero_point: 0,
    });
    expect_err(&m, Error::ModelBadTensor { tensor: 2 });
    let mut m = golden_model();
    let c = m.constant_f32(&[2], &[1.0; 3]);
    expect_err(&m, Error::ModelBadTensor { tensor: c });
    let mut m = golden_model();
    let c = m.constant_f32(&[2], &[1.0, f32::NAN]);
    expect_err(&m, Error::ModelBadTensor { tensor: c });
    // A tensor whose byte size overflows usize (65535⁴ f32 values).
    let mut m = golden_model();
    m.tensor(&[65535; 4], DType::F32);
    expect_err(&m, Error::ModelSizeOverflow);
}

#[test]
fn graph_errors_name_the_op() {
    // Op 0 reads tensor 2, which op 1 produces later.
    let mut m = golden_model();
    m.nodes[0].inputs = vec![2];
    expect_err(&m, Error::GraphTensorNotProduced { op: 0 });
    // Op 2 reads its own output.
    let mut m = golden_model();
    m.nodes[2].inputs = vec![3];
    expect_err(&m, Error::GraphTensorNotProduced { op: 2 });
    // Op 1 writes tensor 1 again; op 0 writes the input; op 2 writes a constant.
    let mut m = golden_model();
    m.nodes[1].output = 1;
    expect_err(&m, Error::GraphTwoProducers { op: 1 });
    let mut m = golden_model();
    m.nodes[0].output = 0;
    expect_err(&m, Error::GraphTwoProducers { op: 0 });
    let mut m = golden_model();
    let c = m.constant_f32(&[3], &[0.0; 3]);
    m.nodes[2].output = c;
    expect_err(&m, Error::GraphTwoProducers { op: 2 });
    // Ids outside the tensor table, read or written.
    let mut m = golden_model();
    m.nodes[2].inputs = vec![9];
    expect_err(&m, Error::GraphBadTensorId { op: 2 });
    let mut m = golden_model();
    m.nodes[1].output = 4;
    expect_err(&m, Error::GraphBadTensorId { op: 1 });
    // Wrong arity: Add with one input, Linear with two.
    let mut m = golden_model();
    m.nodes[1].inputs = vec![1];
    expect_err(&m, Error::OpBadArity { op: 1 });
    let mut m = golden_model();
    m.nodes[0].inputs = vec![0, 0];
    expect_err(&m, Error::OpBadArity { op: 0 });
    let mut m = golden_model();
    m.nodes[2].inputs = vec![];
    expect_err(&m, Error::OpBadArity { op: 2 });
    // Unsupported dtypes: an int8 output of an f32 Add; f32 weights on an int8 input.
    let q = DType::I8(QuantParams {
        scale: 0.1,
        zero_point: 0,
    });
    let mut m = golden_model();
    m.tensors[2].dtype = q;
    expect_err(&m, Error::OpUnsupportedDType { op: 1 });
    let mut m = golden_model();
    m.tensors[0].dtype = q;
    expect_err(&m, Error::OpUnsupportedDType { op: 0 });
    // Shapes that do not chain: the logits tensor is not the Linear's [3]; the Add's inputs
    // differ ([3] and [2]).
    let mut m = golden_model();
    m.tensors[3].dims = vec![4];
    expect_err(&m, Error::ShapeMismatch { op: 2 });
    let mut m = golden_model();
    m.tensors[3].dims = vec![1, 3];
    expect_err(&m, Error::ShapeMismatch { op: 2 });
    let mut m = OwnedModel::new("m", &[2], &[0.0], &[1.0]);
    let h = m.linear(0, Activation::None, &[1.0; 6], &[0.0; 3]);
    let s = m.tensor(&[3], DType::F32);
    m.push(
        OwnedOp::Add {
            act: Activation::None,
        },
        &[h, 0],
        s,
    );
    let m = m.outputs(s, s);
    expect_err(&m, Error::ShapeMismatch { op: 1 });
    // Linear on a rank-3 input works on the last dim; Conv2d needs rank 3.
    let mut m = golden_model();
    m.nodes[0].op = OwnedOp::Conv2d {
        window: square(1, 1, 0),
        act: Activation::None,
        w: OwnedWeights::f32(&[1.0; 4], &[0.0; 2]),
    };
    expect_err(&m, Error::ShapeMismatch { op: 0 });
}

#[test]
fn unknown_tags_and_too_many_inputs_are_decode_errors_naming_the_op() {
    // Written by hand (the typed API cannot hold them): op 2 with tag 200 (a two-byte
    // varint), and op 1 of the golden file with 5 inputs.
    let b = body();
    let mut t = b[..82].to_vec();
    t.extend([0xC8, 0x01]);
    t.extend(&b[83..]);
    assert_eq!(load(&t), Err(Error::DecodeUnknownOpKind { op: 2 }));
    let mut t = b[..77].to_vec();
    t.extend([0x05, 0x01, 0x00, 0x00, 0x00, 0x00]);
    t.extend(&b[80..]);
    assert_eq!(load(&t), Err(Error::DecodeTooManyInputs { op: 1 }));
    // A decode error comes before any validation error, wherever it is.
    let mut t = b.clone();
    t[0] = 0xFF; // name length 16 383 (a two-byte varint), past the body
    t[1] = 0x7F;
    assert_eq!(load(&t), Err(Error::DecodeUnexpectedEnd));
}

#[test]
fn op_errors_are_typed() {
    let f32w = |w: &[f32], b: &[f32]| OwnedWeights::f32(w, b);
    let linear = |w| OwnedOp::Linear {
        act: Activation::None,
        w,
    };
    // Weight count does not match in × out; bytes not whole f32s; a bias of the wrong length.
    let mut m = golden_model();
    m.nodes[2].op = linear(f32w(&[1.0; 5], &[0.0; 3]));
    expect_err(&m, Error::OpBadTensorLength { op: 2 });
    let mut m = golden_model();
    let mut w = le_f32(&[1.0; 6]);
    w.push(0);
    m.nodes[2].op = linear(OwnedWeights::F32 {
        w,
        b: le_f32(&[0.0; 3]),
    });
    expect_err(&m, Error::OpBadTensorLength { op: 2 });
    // Non-finite weight and bias.
    let mut m = golden_model();
    m.nodes[0].op = linear(f32w(&[1.0, f32::INFINITY, 0.0, 0.0], &[0.0; 2]));
    expect_err(&m, Error::OpNonFiniteWeight { op: 0 });
    let mut m = golden_model();
    m.nodes[0].op = linear(f32w(&[1.0; 4], &[f32::NAN, 0.0]));
    expect_err(&m, Error::OpNonFiniteWeight { op: 0 });
    // Zero output features.
    let mut m = golden_model();
    m.nodes[2].op = linear(f32w(&[], &[]));
    expect_err(&m, Error::OpBadParam { op: 2 });
    // Conv windows: padding ≥ kernel, stride 0, a window larger than the input.
    let cnn = small_cnn(1);
    let with_window = |op: usize, window| {
        let mut m = cnn.clone();
        match &mut m.nodes[op].op {
            OwnedOp::Conv2d { window: w, .. } | OwnedOp::MaxPool(w) => *w = window,
            _ => unreachable!(),
        }
        m
    };
    expect_err(
        &with_window(0, square(3, 1, 3)),
        Error::OpBadParam { op: 0 },
    );
    expect_err(
        &with_window(2, square(3, 0, 0)),
        Error::OpBadParam { op: 2 },
    );
    expect_err(
        &with_window(1, square(2, 0, 0)),
        Error::OpBadParam { op: 1 },
    );
    expect_err(
        &with_window(1, square(13, 1, 0)),
        Error::ShapeMismatch { op: 1 },
    );
    // A window that fits but does not give the output tensor's shape.
    expect_err(
        &with_window(1, square(3, 3, 0)),
        Error::ShapeMismatch { op: 1 },
    );
    // Softmax β must be finite and > 0.
    let res = residual_cnn(1);
    for beta in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let mut m = res.clone();
        m.nodes[6].op = OwnedOp::Softmax { beta };
        expect_err(&m, Error::OpBadParam { op: 6 });
    }
    // Reshape to another element count; Mean to the wrong count; Mean of a rank-1 tensor.
    let mut m = small_mlp(1);
    m.tensors[1].dims = vec![15];
    expect_err(&m, Error::ShapeMismatch { op: 0 });
    let mut m = small_cnn(1);
    m.tensors[5].dims = vec![9];
    expect_err(&m, Error::ShapeMismatch { op: 4 });
    let mut m = golden_model();
    m.nodes[2].op = OwnedOp::Mean;
    expect_err(&m, Error::ShapeMismatch { op: 2 });
}

#[test]
fn int8_op_errors_are_typed() {
    let (f, q) = with_int8(small_mlp(4), 2);
    assert!(q.encode().is_ok());
    fn weights(
        m: &mut OwnedModel,
        op: usize,
    ) -> (&mut Vec<u8>, &mut Vec<u8>, &mut Vec<u8>, &mut Vec<u8>) {
        match m.nodes[op].op.weights_mut() {
            Some(OwnedWeights::S8 { w, b, m, s }) => (w, b, m, s),
            _ => panic!("not int8"),
        }
    }
    // f32 weights on int8 tensors.
    let mut m = q.clone();
    m.nodes[2].op = f.nodes[2].op.clone();
    expect_err(&m, Error::OpUnsupportedDType { op: 2 });
    // int8 weights on f32 tensors.
    let mut m = f.clone();
    m.nodes[1].op = q.nodes[1].op.clone();
    expect_err(&m, Error::OpUnsupportedDType { op: 1 });
    // Multiplier below 2^30; shift out of range.
    let mut m = q.clone();
    weights(&mut m, 1).2[..4].copy_from_slice(&(1i32 << 29).to_le_bytes());
    expect_err(&m, Error::OpBadMultiplier { op: 1 });
    let mut m = q.clone();
    weights(&mut m, 2).3[0] = 31;
    expect_err(&m, Error::OpBadMultiplier { op: 2 });
    // A bias that can push the accumulator past i32::MAX.
    let mut m = q.clone();
    weights(&mut m, 1).1[..4].copy_from_slice(&(i32::MAX - 10).to_le_bytes());
    expect_err(&m, Error::OpAccumulatorOverflow { op: 1 });
    // A positive shift with a large accumulator: the left shift would overflow.
    let mut m = q.clone();
    let (_, b, _, s) = weights(&mut m, 1);
    b[..4].copy_from_slice(&le_i32(&[1 << 28]));
    s[0] = 4;
    expect_err(&m, Error::OpAccumulatorOverflow { op: 1 });
    // Wrong multiplier count; weights one short.
    let mut m = q.clone();
    let (_, _, mult, _) = weights(&mut m, 1);
    mult.truncate(mult.len() - 4);
    expect_err(&m, Error::OpBadTensorLength { op: 1 });
    let mut m = q.clone();
    weights(&mut m, 2).0.pop();
    expect_err(&m, Error::OpBadTensorLength { op: 2 });
    // A Reshape whose output has another quantization.
    let mut m = q.clone();
    m.tensors[1].dtype = DType::I8(QuantParams {
        scale: 0.5,
        zero_point: 3,
    });
    expect_err(&m, Error::OpUnsupportedDType { op: 0 });
    // Softmax: output not at scale 1/256, zero point −128.
    let (_, rq) = with_int8(residual_cnn(3), 4);
    let mut m = rq.clone();
    m.tensors[7].dtype = DType::I8(QuantParams {
        scale: 1.0 / 256.0,
        zero_point: 0,
    });
    expect_err(&m, Error::OpUnsupportedDType { op: 6 });
    // Add: an output scale so small that its multiplier is ≥ 1.
    let mut m = rq.clone();
    m.tensors[3].dtype = DType::I8(QuantParams {
        scale: 1e-9,
        zero_point: 0,
    });
    assert_eq!(m.nodes[2].output, 3);
    // (the Add's output feeds the avg pool, which must keep the same quantization)
    m.tensors[4].dtype = m.tensors[3].dtype;
    m.tensors[5].dtype = m.tensors[3].dtype;
    expect_err(&m, Error::OpBadMultiplier { op: 2 });
    // Mean over a plane whose int8 sum could overflow i32.
    let mut m = OwnedModel::new("big", &[1, 65535, 300], &[0.0], &[1.0]);
    let g = m.mean(0);
    let mut m = m.outputs(g, g);
    for t in &mut m.tensors {
        t.dtype = DType::I8(QuantParams {
            scale: 0.1,
            zero_point: 0,
        });
    }
    expect_err(&m, Error::OpAccumulatorOverflow { op: 0 });
}

#[test]
fn every_op_kind_round_trips_its_tag() {
    for (i, k) in OpKind::ALL.into_iter().enumerate() {
        assert_eq!(k.tag(), i as u32 + 1);
        assert_eq!(OpKind::from_tag(k.tag()), Some(k));
        assert_eq!(k.to_string(), k.name());
    }
    assert_eq!(OpKind::from_tag(0), None);
    assert_eq!(OpKind::from_tag(21), None);
    assert_eq!(OpKind::Add.arity(), 2..=2);
    assert_eq!(OpKind::Mean.arity(), 1..=1);
    assert_eq!(OpKind::LayerNorm.arity(), 3..=3);
    assert_eq!(OpKind::Concat.arity(), 2..=4);
    assert_eq!(OpKind::Slice.tag(), 20);
    assert_eq!(OpKind::BatchMatMul.name(), "batch_matmul");
    assert_eq!(OpKind::DepthwiseConv2d.name(), "depthwise_conv2d");
}

#[test]
fn f32_data_reads_unaligned_bytes() {
    let mut buf = vec![0u8; 1];
    buf.extend(le_f32(&[1.5, -2.25]));
    let d = F32Data::from_le_bytes(&buf[1..]);
    assert_eq!(d.len(), 2);
    assert_eq!(d.iter().collect::<Vec<_>>(), [1.5, -2.25]);
    assert_eq!(d.get(2), None);
    assert_eq!(d.get(usize::MAX), None);
    assert_eq!(d.slice(1, 1).unwrap().get(0), Some(-2.25));
    assert_eq!(d.slice(usize::MAX, 2), None);
}

#[test]
fn error_messages_say_what_and_where() {
    assert_eq!(
        Error::DecodeBadCrc.to_string(),
        "the CRC-32 of the model body does not match the header"
    );
    assert_eq!(
        Error::ShapeMismatch { op: 3 }.to_string(),
        "op 3: the op's tensor shapes do not chain (input shape not accepted, or the output \
         tensor's shape is not the one the op computes)"
    );
    assert_eq!(
        Error::GraphTensorNotProduced { op: 7 }.to_string(),
        "op 7: the op reads a tensor that no earlier op produced (and that is neither the input \
         nor a constant)"
    );
    assert_eq!(
        Error::ModelBadTensor { tensor: 12 }.to_string(),
        "tensor 12: the tensor's int8 scale is not finite and positive, or its constant data has \
         the wrong length"
    );
    // Every op-indexed error says which op first.
    for e in [
        Error::DecodeUnknownOpKind { op: 5 },
        Error::DecodeTooManyInputs { op: 5 },
        Error::GraphBadTensorId { op: 5 },
        Error::GraphTensorNotProduced { op: 5 },
        Error::GraphTwoProducers { op: 5 },
        Error::OpBadArity { op: 5 },
        Error::ShapeMismatch { op: 5 },
        Error::OpBadParam { op: 5 },
        Error::OpBadTensorLength { op: 5 },
        Error::OpNonFiniteWeight { op: 5 },
        Error::OpUnsupportedDType { op: 5 },
        Error::OpBadMultiplier { op: 5 },
        Error::OpAccumulatorOverflow { op: 5 },
    ] {
        assert!(e.to_string().starts_with("op 5: the op"), "{e}");
    }
    // And a load error's message is the one the loader returned.
    let mut m = golden_model();
    m.nodes[1].output = 1;
    let e = Model::from_bytes(&m.raw()).unwrap_err();
    assert!(e
        .to_string()
        .starts_with("op 1: the op writes a tensor that already has a producer"));
}

#[test]
fn random_seeded_models_round_trip() {
    let mut rng = Rng(5);
    for _ in 0..8 {
        let seed = rng.next_u64();
        check_round_trip(&small_cnn(seed));
        check_round_trip(&residual_cnn(seed));
    }
}

/// The annotated hex dump in `docs/model-format.md` §7 is these bytes, field after field with
/// no gap: each dump line's offset follows the previous line's bytes.
#[test]
fn the_documented_hex_dump_is_the_golden_file() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/model-format.md"
    ))
    .unwrap();
    let start = doc.find("offset  bytes").expect("the dump's heading");
    let dump = &doc[start..];
    let dump = &dump[..dump.find("```").unwrap()];
    let mut bytes = vec![];
    for line in dump.lines().skip(1) {
        let mut words = line.split_whitespace();
        let Some(Ok(offset)) = words.next().map(str::parse::<usize>) else {
            continue;
        };
        assert_eq!(offset, bytes.len(), "line `{line}`");
        for w in words.take_while(|w| w.len() == 2) {
            match u8::from_str_radix(w, 16) {
                Ok(b) => bytes.push(b),
                Err(_) => break,
            }
        }
    }
    assert_eq!(bytes, GOLDEN);
}
