//! CSV tables (`csv:FILE`): `csv::parse`, then the label → class mapping.
#![no_main]

use denoiserep_trainer::data::csv;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(t) = csv::parse(data) else {
        return;
    };
    assert!(t.n_features >= 1);
    assert!(!t.labels.is_empty());
    assert_eq!(t.features.len(), t.labels.len() * t.n_features);
    assert!(t.features.iter().all(|v| v.is_finite()));
    if let Some(h) = &t.header {
        assert_eq!(h.len(), t.n_features + 1);
    }
    let (classes, raw) = t.classes();
    assert_eq!(classes.len(), t.labels.len());
    for (&c, &l) in classes.iter().zip(&t.labels) {
        assert_eq!(raw[c as usize], l);
    }
});
