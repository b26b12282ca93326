//! The core end to end, without the trainer: build a small CNN in memory (f32), quantize it to
//! int8 (per-channel weights, calibrated activations), encode both to the model format, decode
//! them zero-copy, plan their arenas and run them on a few inputs.
//!
//! Run: `cargo run -p denoiserep-core --release --example demo`

#[path = "../tests/common/mod.rs"]
mod common;

use common::{quantize_model, small_cnn, Rng};
use denoiserep_core::{Model, Precision, TensorView};

const SEED: u64 = 2024;
const CALIBRATION_INPUTS: usize = 64;
const TEST_INPUTS: usize = 200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let f32_desc = small_cnn(SEED);
    let mut rng = Rng(SEED + 1);
    let calib: Vec<Vec<f32>> = (0..CALIBRATION_INPUTS)
        .map(|_| rng.vec(144, 0.0, 1.0))
        .collect();
    let int8_desc = quantize_model(&f32_desc, &calib);

    let f32_file = f32_desc.encode()?;
    let int8_file = int8_desc.encode()?;
    let f32_model = Model::from_bytes(&f32_file)?;
    let int8_model = Model::from_bytes(&int8_file)?;

    for model in [&f32_model, &int8_model] {
        describe(
            model,
            if model.precision() == Precision::F32 {
                f32_file.len()
            } else {
                int8_file.len()
            },
        );
    }

    // One input in detail.
    let input = Rng(SEED + 2).vec(144, 0.0, 1.0);
    let mut f32_arena = vec![0u8; f32_model.arena_size()];
    let mut int8_arena = vec![0u8; int8_model.arena_size()];
    let f = f32_model.run(&input, &mut f32_arena)?;
    println!("\none input (seed {}):", SEED + 2);
    print_tensor("  f32  logits   ", &f.logits);
    print_tensor("  f32  embedding", &f.embedding);
    let q = int8_model.run(&input, &mut int8_arena)?;
    print_tensor("  int8 logits   ", &q.logits);
    print_tensor("  int8 embedding", &q.embedding);

    // Agreement of int8 with f32 over many inputs.
    let mut agree = 0;
    let mut max_err = 0.0f32;
    for _ in 0..TEST_INPUTS {
        let x = rng.vec(144, 0.0, 1.0);
        let f = f32_model.run(&x, &mut f32_arena)?;
        let (fa, mut fl) = (f.logits.argmax(), vec![0.0; 10]);
        f.logits.dequantize_into(&mut fl)?;
        let q = int8_model.run(&x, &mut int8_arena)?;
        let mut ql = vec![0.0; 10];
        q.logits.dequantize_into(&mut ql)?;
        agree += usize::from(q.logits.argmax() == fa);
        for (a, b) in fl.iter().zip(&ql) {
            max_err = max_err.max((a - b).abs());
        }
    }
    println!(
        "\nint8 vs f32 over {TEST_INPUTS} random inputs: argmax agrees on {agree}/{TEST_INPUTS}, \
         max |logit difference| = {max_err:.4}"
    );
    Ok(())
}

fn describe(model: &Model<'_>, file_len: usize) {
    let info = model.info();
    let shape = |id: u16| model.tensor(id).map_or("?".into(), |t| t.shape.to_string());
    println!(
        "\nmodel `{}` ({:?}): file {} bytes, arena {} bytes, input {} (tensor {}), {} classes, \
         embedding = tensor {}",
        info.name,
        model.precision(),
        file_len,
        model.arena_size(),
        shape(info.input),
        info.input,
        model.num_classes(),
        info.embedding
    );
    for (i, node) in model.nodes().enumerate() {
        let Ok(node) = node else { continue };
        let ins: Vec<String> = node
            .inputs
            .ids()
            .iter()
            .map(|&t| format!("t{t}:{}", shape(t)))
            .collect();
        println!(
            "  {i}: {:<16} {:>16} -> t{}:{}",
            node.op.kind().name(),
            ins.join(" "),
            node.output,
            shape(node.output)
        );
    }
}

fn print_tensor(label: &str, t: &TensorView<'_>) {
    let mut v = vec![0.0; t.len()];
    t.dequantize_into(&mut v).expect("sized to the tensor");
    let shown: Vec<String> = v.iter().map(|x| format!("{x:+.3}")).collect();
    println!("{label} [{}]  argmax {:?}", shown.join(" "), t.argmax());
}
