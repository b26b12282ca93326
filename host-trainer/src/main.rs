//! `denoiserep`: the command-line trainer. Exit codes: 0 success, 2 any error (printed once as
//! `denoiserep: error: …` with its cause chain).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use denoiserep_trainer::cli::{Cli, Command};
use denoiserep_trainer::{
    cli, compare, export, import, infer, infer_npy, interop, npy, report, run, runtime,
};

fn main() -> ExitCode {
    // Before anything touches libtorch (and before any thread exists): see `runtime`.
    runtime::pin_mkl();
    // Every flag value is checked here (`cli::rules`), before any work.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help`, `--version`: printed as clap prints them.
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // Bare `denoiserep`: clap would print the whole help; one error line names the choices.
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let names: Vec<String> = Cli::command()
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .filter(|n| n != "help")
                .collect();
            eprintln!(
                "denoiserep: error: no subcommand given; expected one of {} (see denoiserep --help)",
                names.join(", ")
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("denoiserep: error: {}", cli::clap_message(&e));
            return ExitCode::from(2);
        }
    };
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("denoiserep: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(args) => {
            runtime::init_threads(args.threads)?;
            let req = args.request(std::io::stderr().is_terminal())?;
            let out = req.out.clone();
            let s = run::train(req)?;
            let m = &s.metrics;
            println!("{}: {}, {:.1} s", out.display(), run::summary(m), s.seconds);
        }
        Command::Eval(args) => {
            runtime::init_threads(args.threads)?;
            let m = run::eval_run(
                &args.run,
                args.data.as_deref(),
                args.device.resolve()?,
                &args.feature_noise,
            )?;
            println!("{}: {}", args.run.display(), run::summary(&m));
            for f in &m.feature_noise {
                let s = f.s.map_or("per-layer √((1−ᾱ)/ᾱ)".to_string(), |s| {
                    s.to_string()
                });
                let den = match (f.denoised_retrieval_map, f.denoised_retrieval_rank1) {
                    (Some(a), Some(b)) => format!(
                        "; denoised embedding mAP {:.2}% Rank-1 {:.2}%",
                        100.0 * a,
                        100.0 * b
                    ),
                    _ => String::new(),
                };
                let acc = if f.accuracy.is_nan() {
                    "no accuracy (reconstruction model)".to_string()
                } else {
                    format!("test accuracy {:.2}%", 100.0 * f.accuracy)
                };
                println!(
                    "  feature noise s = {s}: {acc}, retrieval mAP {:.2}% Rank-1 {:.2}%{den}",
                    100.0 * f.retrieval_map,
                    100.0 * f.retrieval_rank1
                );
            }
        }
        Command::Export(args) => {
            runtime::init_threads(args.threads)?;
            let o = export::export(&args.request(std::io::stderr().is_terminal()))?;
            for w in &o.warnings {
                eprintln!("denoiserep: warning: {w}");
            }
            let r = &o.report;
            let fp = &r.footprint;
            let d = &r.denoiserep_overhead;
            println!(
                "{}: {} {}{} ({}), {} parameters, {} MACs, {} file bytes, {} arena bytes",
                args.out.display(),
                r.arch,
                match r.precision {
                    export::ExportPrecision::F32 => "f32",
                    export::ExportPrecision::Int8 => "int8",
                },
                match r.format {
                    export::ExportFormat::Dnrp => "",
                    export::ExportFormat::Onnx => " ONNX",
                    export::ExportFormat::Tflite => " TFLite",
                },
                r.regime,
                fp.parameters,
                fp.macs,
                fp.file_bytes,
                fp.arena_bytes
            );
            println!(
                "baseline (no denoisers): {} parameters, {} MACs, {} file bytes, {} arena bytes; \
                 DenoiseRep adds {} parameters, {} MACs, {} bytes; report {}",
                r.baseline.parameters,
                r.baseline.macs,
                r.baseline.file_bytes,
                r.baseline.arena_bytes,
                d.parameters,
                d.macs,
                d.file_bytes,
                o.json.display()
            );
        }
        Command::Infer(args) => {
            if let Some(req) = args.npy_request()? {
                let r = infer_npy::infer_npy(&req)?;
                let embeddings = match &req.embeddings {
                    Some(p) => format!(
                        ", embeddings {} {} {}",
                        p.display(),
                        npy::shape_text(&r.embedding_shape),
                        r.embedding_dtype
                    ),
                    None => String::new(),
                };
                println!(
                    "{} ({}, {}): {} samples ('{}') -> logits {} {} {}{embeddings}, {:.1} s",
                    args.model.display(),
                    r.name,
                    infer::precision_name(r.precision),
                    r.samples,
                    r.input_dtype,
                    req.outputs.display(),
                    npy::shape_text(&r.logits_shape),
                    r.logits_dtype,
                    r.seconds
                );
                return Ok(());
            }
            let req = args.request(std::io::stderr().is_terminal())?;
            let r = infer::infer(&req)?;
            if let Some(path) = &args.json {
                infer::InferSummary::new(&req, &r).write(path)?;
            }
            let retrieval = match r.retrieval {
                Some(x) => format!(
                    ", retrieval mAP {:.2}% Rank-1 {:.2}%",
                    100.0 * x.map,
                    100.0 * x.rank1
                ),
                None => String::new(),
            };
            let precision = match r.precision {
                denoiserep_core::Precision::F32 => "f32",
                denoiserep_core::Precision::Int8 => "int8",
            };
            let headline = match &r.reconstruction {
                None => format!("test accuracy {:.2}%", 100.0 * r.test_accuracy),
                Some(x) => match (x.auc, x.mse_anomalous) {
                    (Some(auc), Some(bad)) => format!(
                        "reconstruction MSE normal {:.4}, anomalous {bad:.4}, anomaly ROC AUC {auc:.4}",
                        x.mse_normal
                    ),
                    _ => format!(
                        "reconstruction MSE {:.4} (no AUC without --normal-classes)",
                        x.mse_normal
                    ),
                },
            };
            println!(
                "{} ({}, {precision}): {headline} on {} samples{retrieval}, {:.1} s",
                args.model.display(),
                r.name,
                r.samples,
                r.seconds
            );
        }
        Command::Report(args) => report::run(&args.demo, &args.out)?,
        Command::Import(args) => {
            if import::Source::of(&args.model)? == import::Source::Tflite {
                tflite_import(&args)?;
            } else {
                runtime::init_threads(args.threads)?;
                let req = args.request()?;
                let o = import::import(&req)?;
                println!("{}", o.summary(&req));
            }
        }
        Command::Compare(args) => {
            runtime::init_threads(args.threads)?;
            let line = cli::shell_line(
                std::iter::once("denoiserep".to_string()).chain(std::env::args().skip(1)),
            );
            let req = args.request(line, std::io::stderr().is_terminal())?;
            if req.mode == compare::Mode::EmitCommands {
                print!("{}", compare::emit_commands(&req)?);
                return Ok(());
            }
            let o = compare::compare(&req)?;
            for e in o.report.paired.iter().filter(|e| e.primary) {
                let p = &e.paired;
                let pp = |x: Option<f64>| x.map_or("–".into(), |v| format!("{:+.2}", 100.0 * v));
                println!(
                    "primary: {} − {} on top-1: {} pp, 95 % CI [{}, {}] pp over {} seeds: {}",
                    e.arm,
                    e.control,
                    pp(p.mean),
                    pp(p.ci_low),
                    pp(p.ci_high),
                    p.n,
                    p.verdict.word()
                );
            }
            for v in o.report.verdicts.iter().filter(|v| v.beats_all_controls) {
                println!("{} beats all four controls on {}", v.arm, v.metric);
            }
            println!(
                "{}: {} arms × {} seeds, {:.1} s; {}, {}",
                args.out.display(),
                o.report.summary.len(),
                o.report.settings.seeds.len(),
                o.report.wall_seconds,
                o.markdown.display(),
                o.png.display()
            );
        }
    }
    Ok(())
}

/// `denoiserep import MODEL.tflite --out MODEL.dnrp`: the core model file of an int8 TFLite
/// model, encoded and loaded back by the core before anything is written.
fn tflite_import(args: &cli::ImportArgs) -> anyhow::Result<()> {
    if args.arch.is_some() || args.data.is_some() || args.mean.is_some() || args.std.is_some() {
        anyhow::bail!(
            "import {}: --arch, --data, --mean and --std are for .onnx and .safetensors models; a \
             .tflite model carries its own architecture and input quantization",
            args.model.display()
        );
    }
    let t0 = std::time::Instant::now();
    let model = interop::import_file(&args.model)?;
    // Encoded and loaded back by the core before anything is written.
    let bytes = model.encode()?;
    let fp = export::footprint(&bytes)?;
    run::write_atomic(&args.out, &bytes)?;
    println!(
        "{}: imported {} ({} ops, {} parameters, {} MACs, {} file bytes, {} arena \
         bytes) in {:.2} s",
        args.out.display(),
        args.model.display(),
        model.nodes.len(),
        fp.parameters,
        fp.macs,
        fp.file_bytes,
        fp.arena_bytes,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
