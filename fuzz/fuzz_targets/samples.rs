//! Input-sample (`DNRI`) and output-dump (`DNRD`) files (`docs/dump-format.md`): the header
//! decoders, the implied file length, and every record, as a reader of such a file does.
#![no_main]

use denoiserep_core::samples::decode_sample;
use denoiserep_core::{DumpHeader, DumpValues, InputHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    inputs(data);
    dump(data);
});

/// An input file: header, then `n_samples` records of `sample_len` f32 values.
fn inputs(data: &[u8]) {
    let Ok(h) = InputHeader::decode(data) else {
        return;
    };
    // A decoded header re-encodes to the same bytes.
    assert_eq!(h.encode()[..], data[..InputHeader::LEN]);
    // Records are read only from a file of the announced length that holds at least one (so the
    // buffer below is bounded by the input's length, as in a real reader).
    if h.file_len() != Some(data.len()) || h.n_samples == 0 {
        return;
    }
    let mut values = vec![0f32; h.sample_len as usize];
    let records = data[InputHeader::LEN..].chunks_exact(h.record_len());
    assert_eq!(records.len(), h.n_samples as usize);
    for record in records {
        decode_sample(record, &mut values).expect("a whole record decodes");
    }
    // A record of the wrong length is refused.
    assert!(decode_sample(&data[..data.len().min(3)], &mut values).is_err());
}

/// A dump file: header, then `n_samples` records of logits and embedding (f32 or int8).
fn dump(data: &[u8]) {
    let Ok(h) = DumpHeader::decode(data) else {
        return;
    };
    assert_eq!(h.encode()[..], data[..DumpHeader::LEN]);
    if h.file_len() != Some(data.len()) || h.n_samples == 0 || h.record_len() == 0 {
        return;
    }
    let n_values = h.logits_len as usize + h.embedding_len as usize;
    let mut values = vec![0f32; n_values];
    for record in data[DumpHeader::LEN..].chunks_exact(h.record_len()) {
        match h.values {
            DumpValues::F32 => decode_sample(record, &mut values).expect("whole f32 record"),
            DumpValues::I8 { logits, embedding } => {
                let (l, e) = record.split_at(h.logits_len as usize);
                for (q, p) in [(l, logits), (e, embedding)] {
                    for &b in q {
                        let v = p.scale * (i32::from(b as i8) - i32::from(p.zero_point)) as f32;
                        std::hint::black_box(v);
                    }
                }
            }
        }
    }
}
