//! Device benchmark (ignored by default; `bench/device.sh` runs it): instruction counts per
//! inference, per op and per MAC for the MNIST-shaped MLP and CNN, f32 and int8, on the
//! firmware in QEMU mps2-an386 under `-icount shift=0` (deterministic emulated instructions, not
//! cycles). Prints markdown tables for docs/benchmarks.md ("Device"). Outputs are still checked
//! against the host core so the numbers belong to a correct run.
//!
//! `whole_model_instruction_counts` does the same for the MLPerf Tiny architectures at their
//! benchmark input sizes (`resnet8` on 3×32×32, `ds-cnn` on 1×49×10, `mobilenet-v1:0.25` on
//! 3×96×96) and the demo MLP (`mlp:256,128` on 1×28×28), random seeded weights exported through
//! the real exporter, and prints one `JSON {…}` line per model and precision
//! (`{"layer": "<model>", "macs": …, "instructions": …, "cmsis_nn_instructions": null}`, per
//! inference), which `bench/device.sh --json FILE` collects.
//!
//! `DENOISEREP_BENCH_DIR=<dir>` also writes each model and the input file there (for
//! `firmware/run-qemu.sh`).

use std::collections::BTreeMap;

use denoiserep_core::Model;
use denoiserep_tests::device::{
    assert_dumps_equal, defmt_print, digit_like_inputs, f32_and_int8, field, field_u64,
    firmware_elf, host_dump, host_equals_device, input_file, mnist_cnn, mnist_mlp, qemu_or_skip,
    run_firmware,
};
use denoiserep_tests::{random_arch_model, random_samples};
use denoiserep_trainer::export::{quantize, to_f32, RangeMethod};
use denoiserep_trainer::rng::Rng;

const SAMPLES: usize = 8;

#[test]
#[ignore = "benchmark: run with bench/device.sh"]
fn device_instruction_counts() {
    let Some(qemu) = qemu_or_skip("device_instruction_counts") else {
        return;
    };
    let (defmt, elf) = (defmt_print(), firmware_elf("denoiserep-firmware"));
    let samples = digit_like_inputs(SAMPLES, 99);
    let input = input_file(&samples);
    let out_dir = std::env::var_os("DENOISEREP_BENCH_DIR").map(std::path::PathBuf::from);
    if let Some(dir) = &out_dir {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("input.dnri"), &input).unwrap();
    }

    let mut models = Vec::new();
    models.extend(f32_and_int8(mnist_mlp(11), 12));
    models.extend(f32_and_int8(mnist_cnn(21), 22));

    println!("\n| model | file bytes | arena bytes | instructions / inference | MACs / inference | instructions / MAC (whole model) | static RAM | stack peak |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut layer_rows = Vec::new();
    // kind -> (instructions, MACs) summed over the ops with MACs of every model
    let mut by_kind: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for desc in &models {
        let file = desc.encode().unwrap();
        if let Some(dir) = &out_dir {
            std::fs::write(dir.join(format!("{}.dnrp", desc.name)), &file).unwrap();
        }
        let model = Model::from_bytes(&file).unwrap();
        let run = run_firmware(&qemu, &defmt, &elf, Some(&file), Some(&input));
        assert_dumps_equal(&desc.name, &host_dump(&file, &samples).unwrap(), &run);
        let done = run.lines_with("done samples=").next().unwrap();
        let (total, macs) = (
            field_u64(done, "instructions").unwrap(),
            field_u64(done, "macs").unwrap(),
        );
        let ram = run.lines_with("ram static_bytes=").next().unwrap();
        let n = SAMPLES as u64;
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {} B | {} B |",
            desc.name,
            file.len(),
            model.arena_size(),
            total / n,
            macs / n,
            total as f64 / macs as f64,
            field_u64(ram, "static_bytes").unwrap(),
            field_u64(ram, "stack_peak_bytes").unwrap(),
        );
        for line in run.lines_with("op_total=") {
            let kind = field(line, "kind").unwrap().to_string();
            let spent = field_u64(line, "instructions").unwrap();
            let layer_macs = field_u64(line, "macs").unwrap();
            let per_mac = if layer_macs > 0 {
                let e = by_kind.entry(kind.clone()).or_default();
                e.0 += spent;
                e.1 += layer_macs;
                format!("{:.2}", spent as f64 / layer_macs as f64)
            } else {
                "–".into()
            };
            layer_rows.push(format!(
                "| {} | {} | {} | {} | {} | {} |",
                desc.name,
                field(line, "op_total").unwrap(),
                kind,
                spent / n,
                layer_macs / n,
                per_mac
            ));
        }
    }
    println!("\n| model | op | kind | instructions / inference | MACs | instructions / MAC |");
    println!("|---|---:|---|---:|---:|---:|");
    for row in &layer_rows {
        println!("{row}");
    }
    println!("\n| op kind | instructions / MAC (all ops of that kind above) |");
    println!("|---|---:|");
    for (kind, (spent, macs)) in &by_kind {
        println!("| {kind} | {:.2} |", *spent as f64 / *macs as f64);
    }
}

/// The models of the whole-model rows: arch spec, input shape, classes.
const WHOLE_MODELS: [(&str, [usize; 3], usize); 4] = [
    ("resnet8", [3, 32, 32], 10),
    ("ds-cnn", [1, 49, 10], 12),
    ("mobilenet-v1:0.25", [3, 96, 96], 2),
    ("mlp:256,128", [1, 28, 28], 10),
];

/// Inputs per whole model (the counts are per inference; kernels are data-independent up to a
/// few instructions of requantization branches, so 2 samples are enough).
const WHOLE_SAMPLES: usize = 2;

#[test]
#[ignore = "benchmark: run with bench/device.sh"]
fn whole_model_instruction_counts() {
    if qemu_or_skip("whole_model_instruction_counts").is_none() {
        return;
    }
    println!("\n| model (input) | precision | MACs / inference | instructions / inference | instructions / MAC | heaviest op kinds (instructions / MAC) |");
    println!("|---|---|---:|---:|---:|---|");
    // `DENOISEREP_BENCH_MODELS=mlp,ds-cnn` runs only the models whose spec starts with one of
    // those prefixes (the seeds stay those of the full run).
    let only = std::env::var("DENOISEREP_BENCH_MODELS").ok();
    for (i, (spec, shape, classes)) in WHOLE_MODELS.into_iter().enumerate() {
        if let Some(only) = &only {
            if !only.split(',').any(|p| spec.starts_with(p)) {
                continue;
            }
        }
        let seed = 300 + i as u64;
        let model = random_arch_model(spec, shape, classes, seed);
        let fused = model.fused().expect("fuses");
        let len: usize = shape.iter().product();
        let mut rng = Rng::new(seed);
        let samples: Vec<Vec<f32>> = random_samples(&mut rng, WHOLE_SAMPLES, len, 0.0, 1.0)
            .chunks(len)
            .map(<[f32]>::to_vec)
            .collect();
        let calib = random_samples(&mut rng, 16, len, 0.0, 1.0);
        let files = [
            ("int8", quantize(&fused, &calib, RangeMethod::MinMax, false)),
            ("f32", to_f32(&fused)),
        ];
        for (tag, desc) in files {
            let file = desc.expect("exports").encode().expect("encodes");
            let what = format!("{spec} {tag}");
            let run = host_equals_device(&what, &file, &samples).expect("QEMU is present");
            let done = run.lines_with("done samples=").next().expect("done line");
            let n = field_u64(done, "samples").unwrap();
            let (total, macs) = (
                field_u64(done, "instructions").unwrap() / n,
                field_u64(done, "macs").unwrap() / n,
            );
            if std::env::var_os("DENOISEREP_BENCH_OPS").is_some() {
                // The per-op shapes and totals (for `bench/cmsis-nn`'s layer tables).
                for line in run
                    .log
                    .lines()
                    .filter(|l| l.contains(" op=") || l.contains("op_total="))
                {
                    println!("OPS {what}: {line}");
                }
            }
            let mut kinds: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for line in run.lines_with("op_total=") {
                let e = kinds
                    .entry(field(line, "kind").unwrap().to_string())
                    .or_default();
                e.0 += field_u64(line, "instructions").unwrap() / n;
                e.1 += field_u64(line, "macs").unwrap() / n;
            }
            let mut heavy: Vec<_> = kinds.into_iter().filter(|(_, (_, m))| *m > 0).collect();
            heavy.sort_by_key(|(_, (spent, _))| std::cmp::Reverse(*spent));
            let heavy: Vec<String> = heavy
                .iter()
                .map(|(k, (spent, m))| format!("{k} {:.2}", *spent as f64 / *m as f64))
                .collect();
            let shape_txt = format!("{}x{}x{}", shape[0], shape[1], shape[2]);
            println!(
                "| `{spec}` ({shape_txt}) | {tag} | {macs} | {total} | {:.2} | {} |",
                total as f64 / macs as f64,
                heavy.join(", ")
            );
            println!(
                "JSON {}",
                serde_json::json!({
                    "layer": format!("{spec} {tag} ({shape_txt})"),
                    "macs": macs,
                    "instructions": total,
                    "cmsis_nn_instructions": null,
                })
            );
        }
    }
}
