//! The model file format: golden bytes, round trip, and one test per rejection.

mod common;

use common::{le_f32, le_i32, small_cnn, small_mlp, OwnedLayer, OwnedModel, Rng};
use denoiserep_core::{
    decode, encode, encoded_len, file_len, Activation, Error, F32Data, Layer, LayerKind, LinearF32,
    Metadata, Model, Precision, QuantParams, FORMAT_VERSION, MAX_LAYERS,
};

/// `y = 1·x0 − 2·x1 + 0.5` on a `[1, 1, 2]` input: Flatten, then Linear 2→1.
#[rustfmt::skip]
const GOLDEN: [u8; 55] = [
    // header: magic "DNRP", version 1, reserved 0, body length 39, CRC-32 0x994a936f
    0x44, 0x4e, 0x52, 0x50, 0x01, 0x00, 0x00, 0x00, 0x27, 0x00, 0x00, 0x00, 0x6f, 0x93, 0x4a, 0x99,
    // metadata: name "t"; input_shape 1,1,2; num_classes 1; embedding_layer 1
    0x01, 0x74, 0x01, 0x01, 0x02, 0x01, 0x01,
    // input_mean [0.0] (4 bytes), input_std [1.0] (4 bytes), precision F32, input_quant None
    0x04, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00,
    // 2 layers; layer 0: tag 8 (Flatten)
    0x02, 0x08,
    // layer 1: tag 1 (LinearF32); in 2, out 1, activation None
    0x01, 0x02, 0x01, 0x00,
    // weights [1.0, -2.0] (8 bytes), bias [0.5] (4 bytes)
    0x08, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x04, 0x00, 0x00, 0x00, 0x3f,
];

fn golden_model() -> OwnedModel {
    OwnedModel {
        name: "t".into(),
        input_shape: [1, 1, 2],
        num_classes: 1,
        embedding_layer: 1,
        mean: le_f32(&[0.0]),
        std: le_f32(&[1.0]),
        precision: Precision::F32,
        input_quant: None,
        layers: vec![
            OwnedLayer::Flatten,
            OwnedLayer::linear_f32(2, 1, Activation::None, &[1.0, -2.0], &[0.5]),
        ],
    }
}

/// A complete file around `body`, with a correct header and CRC (no validation).
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

/// Encodes without validation (postcard of (metadata, layers)), to build invalid files.
fn raw_file(meta: &Metadata<'_>, layers: &[Layer<'_>]) -> Vec<u8> {
    file_with_body(&postcard::to_stdvec(&(meta, layers)).unwrap())
}

fn raw_owned(m: &OwnedModel) -> Vec<u8> {
    raw_file(&m.metadata(), &m.layers())
}

#[test]
fn golden_bytes_encode_exactly() {
    let m = golden_model();
    assert_eq!(
        encoded_len(&m.metadata(), &m.layers()).unwrap(),
        GOLDEN.len()
    );
    assert_eq!(m.encode().unwrap(), GOLDEN);
    // The unvalidated serde path writes the same bytes as `encode`.
    assert_eq!(raw_owned(&m), GOLDEN);
}

#[test]
fn golden_bytes_decode_and_run() {
    let d = decode(&GOLDEN).unwrap();
    assert_eq!(d.metadata, golden_model().metadata());
    assert_eq!(d.layers.len(), 2);
    assert_eq!(d.layers[0], Layer::Flatten);
    let Layer::LinearF32(LinearF32 { weights, bias, .. }) = d.layers[1] else {
        panic!("{:?}", d.layers[1])
    };
    assert_eq!(weights.iter().collect::<Vec<_>>(), [1.0, -2.0]);
    assert_eq!(bias.get(0), Some(0.5));
    let model = Model::from_bytes(&GOLDEN).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let out = model.run(&[3.0, 1.0], &mut arena).unwrap();
    assert_eq!(out.logits.get_f32(0), Some(1.5));
    assert_eq!(out.embedding, out.logits);
}

#[test]
fn file_len_reads_the_header() {
    assert_eq!(file_len(&GOLDEN), Ok(55));
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

#[test]
fn round_trip_models_decode_to_what_was_encoded() {
    let f32_cnn = small_cnn(7);
    let mut rng = Rng(1);
    let calib: Vec<Vec<f32>> = (0..8).map(|_| rng.vec(144, 0.0, 1.0)).collect();
    for m in [
        small_mlp(3),
        f32_cnn.clone(),
        common::quantize_model(&f32_cnn, &calib),
    ] {
        let bytes = m.encode().unwrap();
        let d = decode(&bytes).unwrap();
        assert_eq!(d.metadata, m.metadata());
        assert_eq!(&d.layers[..], &m.layers()[..]);
        // Re-encoding the decoded model gives the same bytes.
        let mut again = vec![0u8; bytes.len()];
        assert_eq!(encode(&d.metadata, &d.layers, &mut again), Ok(bytes.len()));
        assert_eq!(again, bytes);
    }
}

#[test]
fn encode_reports_a_small_buffer() {
    let m = golden_model();
    let mut out = [0u8; 54];
    assert_eq!(
        encode(&m.metadata(), &m.layers(), &mut out),
        Err(Error::EncodeBufferTooSmall)
    );
    let mut tiny = [0u8; 3];
    assert_eq!(
        encode(&m.metadata(), &m.layers(), &mut tiny),
        Err(Error::EncodeBufferTooSmall)
    );
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let mut rng = Rng(9);
    let cnn = small_cnn(11);
    let calib: Vec<Vec<f32>> = (0..4).map(|_| rng.vec(144, 0.0, 1.0)).collect();
    let files = [
        GOLDEN.to_vec(),
        small_mlp(5).encode().unwrap(),
        common::quantize_model(&cnn, &calib).encode().unwrap(),
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
    let mut f = GOLDEN.to_vec();
    f[0] = b'X';
    assert_eq!(Model::from_bytes(&f).unwrap_err(), Error::DecodeBadMagic);
    let mut f = GOLDEN.to_vec();
    f[4] = 2;
    assert_eq!(
        Model::from_bytes(&f).unwrap_err(),
        Error::DecodeUnsupportedVersion
    );
    let mut f = GOLDEN.to_vec();
    f[7] = 1;
    assert_eq!(Model::from_bytes(&f).unwrap_err(), Error::DecodeBadHeader);
    let mut f = GOLDEN.to_vec();
    f[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        Model::from_bytes(&f).unwrap_err(),
        Error::DecodeLengthMismatch
    );
    let mut f = GOLDEN.to_vec();
    f[12] ^= 0xFF;
    assert_eq!(Model::from_bytes(&f).unwrap_err(), Error::DecodeBadCrc);
    let mut f = GOLDEN.to_vec();
    f[40] ^= 0x01;
    assert_eq!(Model::from_bytes(&f).unwrap_err(), Error::DecodeBadCrc);
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
    let body = &GOLDEN[16..];
    // Unknown layer tag 99 in place of Flatten's tag 8 (layer 0).
    let mut b = body.to_vec();
    b[20] = 99;
    assert_eq!(
        Model::from_bytes(&file_with_body(&b)).unwrap_err(),
        Error::DecodeUnknownLayerKind { layer: 0 }
    );
    // Tag 0 is never used.
    b[20] = 0;
    assert_eq!(
        Model::from_bytes(&file_with_body(&b)).unwrap_err(),
        Error::DecodeUnknownLayerKind { layer: 0 }
    );
    // A byte after the last layer.
    let mut b = body.to_vec();
    b.push(0);
    assert_eq!(
        Model::from_bytes(&file_with_body(&b)).unwrap_err(),
        Error::DecodeTrailingBytes
    );
    // Truncated body (with a matching header and CRC).
    assert_eq!(
        Model::from_bytes(&file_with_body(&body[..body.len() - 1])).unwrap_err(),
        Error::DecodeUnexpectedEnd
    );
    // Huge tensor length: the bias length varint claims 2^32 − 1 bytes.
    let mut b = body[..body.len() - 5].to_vec();
    b.extend([0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
    assert_eq!(
        Model::from_bytes(&file_with_body(&b)).unwrap_err(),
        Error::DecodeUnexpectedEnd
    );
    // Overlong varint for the name length.
    let mut b = vec![
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
    ];
    b.extend(&body[2..]);
    assert_eq!(
        Model::from_bytes(&file_with_body(&b)).unwrap_err(),
        Error::DecodeBadVarint
    );
    // Invalid UTF-8 name.
    let mut b = body.to_vec();
    b[1] = 0xFF;
    assert_eq!(
        Model::from_bytes(&file_with_body(&b)).unwrap_err(),
        Error::DecodeBadUtf8
    );
    // Unknown precision tag and bad option tag.
    let mut b = body.to_vec();
    b[17] = 7;
    assert_eq!(
        Model::from_bytes(&file_with_body(&b)).unwrap_err(),
        Error::DecodeBadValue
    );
    let mut b = body.to_vec();
    b[18] = 2;
    assert_eq!(
        Model::from_bytes(&file_with_body(&b)).unwrap_err(),
        Error::DecodeBadValue
    );
    // Unknown activation tag in layer 1.
    let mut b = body.to_vec();
    b[24] = 9;
    assert_eq!(
        Model::from_bytes(&file_with_body(&b)).unwrap_err(),
        Error::DecodeBadValue
    );
    // Layer count above MAX_LAYERS, and a huge layer count.
    let mut b = body.to_vec();
    b[19] = (MAX_LAYERS + 1) as u8;
    assert_eq!(
        Model::from_bytes(&file_with_body(&b)).unwrap_err(),
        Error::DecodeTooManyLayers
    );
    let mut b = body[..19].to_vec();
    b.extend([0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
    b.extend(&body[20..]);
    assert_eq!(
        Model::from_bytes(&file_with_body(&b)).unwrap_err(),
        Error::DecodeTooManyLayers
    );
}

#[test]
fn too_many_layers_is_rejected_before_running_out_of_space() {
    let mut m = golden_model();
    m.layers = std::iter::repeat_n(OwnedLayer::Relu, MAX_LAYERS)
        .chain([OwnedLayer::Flatten])
        .collect();
    assert_eq!(
        Model::from_bytes(&raw_owned(&m)).unwrap_err(),
        Error::DecodeTooManyLayers
    );
    // Exactly MAX_LAYERS is fine.
    m.layers = std::iter::repeat_n(OwnedLayer::Relu, MAX_LAYERS - 1)
        .chain([OwnedLayer::Flatten])
        .collect();
    m.num_classes = 2;
    assert!(Model::from_bytes(&raw_owned(&m)).is_ok());
}

fn expect_err(m: &OwnedModel, e: Error) {
    assert_eq!(Model::from_bytes(&raw_owned(m)).unwrap_err(), e);
    assert_eq!(m.encode().unwrap_err(), e, "encode validates too");
}

#[test]
fn metadata_errors_are_typed() {
    let mut m = golden_model();
    m.layers.clear();
    expect_err(&m, Error::ModelNoLayers);
    let mut m = golden_model();
    m.input_shape = [1, 0, 2];
    expect_err(&m, Error::ModelBadInputShape);
    let mut m = golden_model();
    m.std = le_f32(&[0.0]);
    expect_err(&m, Error::ModelBadNormalization);
    let mut m = golden_model();
    m.mean = le_f32(&[0.0, 1.0]);
    expect_err(&m, Error::ModelBadNormalization);
    let mut m = golden_model();
    m.mean = vec![0, 0, 0];
    expect_err(&m, Error::ModelBadNormalization);
    let mut m = golden_model();
    m.mean = le_f32(&[f32::NAN]);
    expect_err(&m, Error::ModelBadNormalization);
    let mut m = golden_model();
    m.input_quant = Some(QuantParams {
        scale: 1.0,
        zero_point: 0,
    });
    expect_err(&m, Error::ModelBadInputQuant);
    let mut m = golden_model();
    m.embedding_layer = 2;
    expect_err(&m, Error::ModelBadEmbeddingLayer);
    let mut m = golden_model();
    m.num_classes = 2;
    expect_err(&m, Error::ModelBadNumClasses);
}

#[test]
fn layer_errors_name_the_layer() {
    // Linear before Flatten: the input is CHW, Linear wants a flat vector.
    let mut m = golden_model();
    m.layers.swap(0, 1);
    expect_err(&m, Error::ShapeMismatch { layer: 0 });
    // Wrong in_features.
    let mut m = golden_model();
    m.layers[1] = OwnedLayer::linear_f32(3, 1, Activation::None, &[1.0; 3], &[0.5]);
    expect_err(&m, Error::ShapeMismatch { layer: 1 });
    // Weight count does not match in × out.
    let mut m = golden_model();
    m.layers[1] = OwnedLayer::linear_f32(2, 1, Activation::None, &[1.0; 3], &[0.5]);
    expect_err(&m, Error::LayerBadTensorLength { layer: 1 });
    // Weight bytes not a multiple of 4.
    let mut m = golden_model();
    if let OwnedLayer::LinearF32 { w, .. } = &mut m.layers[1] {
        w.push(0);
    }
    expect_err(&m, Error::LayerBadTensorLength { layer: 1 });
    // Non-finite weight.
    let mut m = golden_model();
    m.layers[1] = OwnedLayer::linear_f32(2, 1, Activation::None, &[1.0, f32::INFINITY], &[0.5]);
    expect_err(&m, Error::LayerNonFiniteWeight { layer: 1 });
    // Zero output features.
    let mut m = golden_model();
    m.layers[1] = OwnedLayer::linear_f32(2, 0, Activation::None, &[], &[]);
    expect_err(&m, Error::LayerBadParam { layer: 1 });
    // Conv with padding >= kernel, with stride 0, and one that does not fit the input.
    let cnn = small_cnn(1);
    let mut m = cnn.clone();
    if let OwnedLayer::Conv2dF32 { pad, .. } = &mut m.layers[0] {
        *pad = 3;
    }
    expect_err(&m, Error::LayerBadParam { layer: 0 });
    let mut m = cnn.clone();
    if let OwnedLayer::Conv2dF32 { stride, .. } = &mut m.layers[2] {
        *stride = 0;
    }
    expect_err(&m, Error::LayerBadParam { layer: 2 });
    let mut m = cnn.clone();
    m.input_shape = [1, 2, 2];
    expect_err(&m, Error::ShapeMismatch { layer: 2 });
    let mut m = cnn.clone();
    m.layers[1] = OwnedLayer::MaxPool2d { k: 13, stride: 1 };
    expect_err(&m, Error::ShapeMismatch { layer: 1 });
    let mut m = cnn.clone();
    m.layers[1] = OwnedLayer::MaxPool2d { k: 2, stride: 0 };
    expect_err(&m, Error::LayerBadParam { layer: 1 });
    // Conv2d after Flatten.
    let mut m = cnn.clone();
    m.layers.insert(0, OwnedLayer::Flatten);
    m.embedding_layer += 1;
    expect_err(&m, Error::ShapeMismatch { layer: 1 });
}

#[test]
fn int8_layer_errors_are_typed() {
    let mut rng = Rng(2);
    let calib: Vec<Vec<f32>> = (0..4).map(|_| rng.vec(16, -1.0, 1.0)).collect();
    let q = common::quantize_model(&small_mlp(4), &calib);
    assert!(q.encode().is_ok());
    // An f32 layer fed with int8 activations.
    let mut m = q.clone();
    m.layers[2] = small_mlp(4).layers[2].clone();
    expect_err(&m, Error::LayerPrecisionMismatch { layer: 2 });
    // int8 model without input quantization.
    let mut m = q.clone();
    m.input_quant = None;
    expect_err(&m, Error::ModelBadInputQuant);
    let mut m = q.clone();
    m.input_quant = Some(QuantParams {
        scale: -1.0,
        zero_point: 0,
    });
    expect_err(&m, Error::ModelBadInputQuant);
    // Multiplier below 2^30, shift out of range.
    let mut m = q.clone();
    if let OwnedLayer::LinearS8 { m: mult, .. } = &mut m.layers[1] {
        mult[..4].copy_from_slice(&(1i32 << 29).to_le_bytes());
    }
    expect_err(&m, Error::LayerBadMultiplier { layer: 1 });
    let mut m = q.clone();
    if let OwnedLayer::LinearS8 { s, .. } = &mut m.layers[2] {
        s[0] = 31;
    }
    expect_err(&m, Error::LayerBadMultiplier { layer: 2 });
    // Output scale zero.
    let mut m = q.clone();
    if let OwnedLayer::LinearS8 { out, .. } = &mut m.layers[1] {
        out.scale = 0.0;
    }
    expect_err(&m, Error::LayerBadQuant { layer: 1 });
    // A bias that can push the accumulator past i32::MAX.
    let mut m = q.clone();
    if let OwnedLayer::LinearS8 { b, .. } = &mut m.layers[1] {
        b[..4].copy_from_slice(&(i32::MAX - 10).to_le_bytes());
    }
    expect_err(&m, Error::LayerAccumulatorOverflow { layer: 1 });
    // Wrong multiplier count.
    let mut m = q.clone();
    if let OwnedLayer::LinearS8 { m: mult, .. } = &mut m.layers[1] {
        mult.truncate(mult.len() - 4);
    }
    expect_err(&m, Error::LayerBadTensorLength { layer: 1 });
    // A positive shift with a large accumulator: the left shift would overflow.
    let mut m = q.clone();
    if let OwnedLayer::LinearS8 { b, s, .. } = &mut m.layers[1] {
        b[..4].copy_from_slice(&le_i32(&[1 << 28]));
        s[0] = 4;
    }
    expect_err(&m, Error::LayerAccumulatorOverflow { layer: 1 });
}

#[test]
fn every_layer_kind_round_trips_its_tag() {
    for k in LayerKind::ALL {
        assert_eq!(LayerKind::from_tag(k.tag()), Some(k));
    }
    assert_eq!(LayerKind::from_tag(0), None);
    assert_eq!(LayerKind::from_tag(9), None);
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
        Error::ShapeMismatch { layer: 3 }.to_string(),
        "layer 3: a layer's input shape does not match what the previous layer produces"
    );
}
