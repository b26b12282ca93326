//! `.onnx` files (`denoiserep import MODEL.onnx`): the tch-free half of the import, the graph
//! decoder (`interop::onnx::graph::decode`) and the architecture mapping
//! (`interop::onnx::mapping::map`), on arbitrary bytes must return an error or a mapping, never
//! panic; a mapping holds, for every tensor, exactly as many values as its dims say, and an
//! arch that parses again from its own spec.
#![no_main]

use denoiserep_trainer::arch::Arch;
use denoiserep_trainer::interop::onnx::{graph, mapping};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(g) = graph::decode(data) else {
        return;
    };
    let Ok(m) = mapping::map(&g) else {
        return;
    };
    for (name, p) in &m.tensors {
        assert_eq!(
            p.data.len(),
            p.dims.iter().product::<usize>(),
            "tensor {name}: dims {:?}",
            p.dims
        );
    }
    Arch::parse(&m.arch.spec, m.arch.input_shape, m.arch.num_classes)
        .expect("a mapped arch's spec parses again");
});
