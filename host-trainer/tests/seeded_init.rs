//! Seeded initialization: a model built right after `tch::manual_seed(s)` has the same tensors
//! each time, and another seed gives other tensors.
//!
//! This is its own test binary with one test on purpose: libtorch's CPU generator is one per
//! process, so in the library's unit tests (parallel threads) another test drawing random numbers
//! between the seed and the model's draws changes them. That happened once under load, to this
//! check when it lived in `model.rs`'s ViT test.

use denoiserep_trainer::data::Normalization;
use denoiserep_trainer::{Arch, Model};
use std::collections::HashMap;
use tch::{Device, Tensor};

fn params(spec: &str, shape: [usize; 3], seed: i64) -> HashMap<String, Tensor> {
    tch::manual_seed(seed);
    let arch = Arch::parse(spec, shape, 5).expect("architecture");
    let norm = Normalization {
        mean: vec![0.0; shape[0]],
        std: vec![1.0; shape[0]],
    };
    Model::new(arch, norm, Device::Cpu)
        .backbone_params()
        .into_iter()
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_tensors_and_another_seed_does_not() {
    for (spec, shape) in [
        ("vit:4,16,2,2,2", [1, 8, 8]),
        ("mlp:32,16", [1, 8, 8]),
        ("resnet8", [3, 16, 16]),
    ] {
        let a = params(spec, shape, 5);
        let b = params(spec, shape, 5);
        let c = params(spec, shape, 6);
        assert_eq!(a.len(), b.len(), "{spec}");
        let mut differ = 0;
        for (n, t) in &a {
            assert!(t.equal(&b[n]), "{spec}: {n} differs with the same seed");
            if !t.equal(&c[n]) {
                differ += 1;
            }
        }
        // Zero-initialized biases and unit norm weights are the same under any seed; every
        // randomly initialized tensor is not.
        assert!(differ > 0, "{spec}: seed 6 gave seed 5's tensors");
    }
}
