//! `.npy` files (`denoiserep infer --inputs X.npy`): `npy::decode` on arbitrary bytes returns an
//! array or an error, never panics; an array it returns has exactly as many values as its shape
//! says, and encodes and decodes back to itself.
#![no_main]

use denoiserep_trainer::npy::{decode, encode, NpyData};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(a) = decode(data) else {
        return;
    };
    let n: usize = a.shape.iter().product();
    let len = match &a.data {
        NpyData::F32(v) => v.len(),
        NpyData::I8(v) => v.len(),
    };
    assert_eq!(n, len, "shape {:?} but {len} values", a.shape);
    let again = decode(&encode(&a).expect("a decoded array encodes")).expect("decodes back");
    assert_eq!(again.shape, a.shape);
    match (&again.data, &a.data) {
        (NpyData::F32(x), NpyData::F32(y)) => {
            assert!(x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()))
        }
        (NpyData::I8(x), NpyData::I8(y)) => assert_eq!(x, y),
        _ => panic!("the dtype changed"),
    }
});
