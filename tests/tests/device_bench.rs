//! Device benchmark (ignored by default; `bench/device.sh` runs it): instruction counts per
//! inference, per op and per MAC for the MNIST-shaped MLP and CNN, f32 and int8, on the
//! firmware in QEMU mps2-an386 under `-icount shift=0` (deterministic emulated instructions, not
//! cycles). Prints markdown tables for docs/benchmarks.md ("Device"). Outputs are still checked
//! against the host core so the numbers belong to a correct run.
//!
//! `DENOISEREP_BENCH_DIR=<dir>` also writes each model and the input file there (for
//! `firmware/run-qemu.sh`).

use std::collections::BTreeMap;

use denoiserep_core::Model;
use denoiserep_tests::device::{
    assert_dumps_equal, defmt_print, digit_like_inputs, f32_and_int8, field, field_u64,
    firmware_elf, host_dump, input_file, mnist_cnn, mnist_mlp, qemu_or_skip, run_firmware,
};

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
