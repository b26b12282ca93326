//! `denoiserep`: the command-line trainer. Exit codes: 0 success, 2 any error (printed once as
//! `denoiserep: error: …` with its cause chain).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use denoiserep_trainer::cli::{Cli, Command};
use denoiserep_trainer::run;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            if let Some(n) = args.threads {
                tch::set_num_threads(n);
            }
            let req = args.request(std::io::stderr().is_terminal())?;
            let out = req.out.clone();
            let s = run::train(req)?;
            let m = &s.metrics;
            println!(
                "{}: test accuracy {:.2}%, retrieval mAP {:.2}% Rank-1 {:.2}%, {:.1} s",
                out.display(),
                100.0 * m.test_accuracy,
                100.0 * m.retrieval_map,
                100.0 * m.retrieval_rank1,
                s.seconds
            );
        }
        Command::Eval(args) => {
            if let Some(n) = args.threads {
                tch::set_num_threads(n);
            }
            let m = run::eval_run(&args.run, args.data.as_deref(), args.device.resolve()?)?;
            println!(
                "{}: test accuracy {:.2}%, retrieval mAP {:.2}% Rank-1 {:.2}%",
                args.run.display(),
                100.0 * m.test_accuracy,
                100.0 * m.retrieval_map,
                100.0 * m.retrieval_rank1
            );
        }
    }
    Ok(())
}
