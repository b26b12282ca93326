//! Training steps/s of the trainer's own step on tch (see bench/train_speed.sh): the backbone
//! `mlp:256,128` on 1×28×28 inputs (784-256-128-10), cross-entropy, the trainer's Adam
//! (`optim::Adam`, lr 1e-3), batch 256 of random inputs (a pool of 16 batches), CPU. With
//! `--tch-adam` the optimizer is tch's built-in `nn::Adam` on an equivalent `nn::seq` instead.
//!
//! `cargo run --release -p denoiserep-trainer --example train_speed -- [--threads 2] [--steps 500] [--tch-adam]`

use std::time::Instant;

use denoiserep_trainer::data::Normalization;
use denoiserep_trainer::model::{Grads, Mode, Model};
use denoiserep_trainer::optim::Adam;
use denoiserep_trainer::Arch;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

const BATCH: i64 = 256;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a whole number"))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let threads = arg(&args, "--threads", 2);
    let (steps, warmup) = (arg(&args, "--steps", 500), arg(&args, "--warmup", 50));
    let builtin = args.iter().any(|a| a == "--tch-adam");
    tch::set_num_threads(threads as i32);
    tch::manual_seed(0);
    let xs: Vec<Tensor> = (0..16)
        .map(|_| Tensor::randn([BATCH, 1, 28, 28], (Kind::Float, Device::Cpu)))
        .collect();
    let ys: Vec<Tensor> = (0..16)
        .map(|_| Tensor::randint(10, [BATCH], (Kind::Int64, Device::Cpu)))
        .collect();

    let mut step: Box<dyn FnMut(usize) -> f64> = if builtin {
        let vs = nn::VarStore::new(Device::Cpu);
        let p = vs.root();
        let net = nn::seq()
            .add_fn(|x| x.flatten(1, -1))
            .add(nn::linear(&p / "1", 784, 256, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(&p / "3", 256, 128, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(&p / "5", 128, 10, Default::default()));
        let mut opt = nn::Adam::default().build(&vs, 1e-3)?;
        Box::new(move |i| {
            let loss = net
                .forward(&xs[i % 16])
                .cross_entropy_for_logits(&ys[i % 16]);
            opt.backward_step(&loss);
            let _keep = &vs;
            loss.double_value(&[])
        })
    } else {
        let arch = Arch::parse("mlp:256,128", [1, 28, 28], 10)?;
        let norm = Normalization {
            mean: vec![0.0],
            std: vec![1.0],
        };
        let model = Model::new(arch, norm, Device::Cpu);
        let mut opt = Adam::new(model.backbone_params(), 1e-3);
        let grads = Grads {
            backbone: true,
            denoisers: false,
        };
        Box::new(move |i| {
            let out = model.forward(&xs[i % 16], Mode::Plain, grads, true);
            let loss = out.logits.cross_entropy_for_logits(&ys[i % 16]);
            opt.zero_grad();
            loss.backward();
            opt.step();
            loss.double_value(&[])
        })
    };
    for i in 0..warmup {
        step(i);
    }
    let start = Instant::now();
    for i in 0..steps {
        step(i);
    }
    let secs = start.elapsed().as_secs_f64();
    let which = if builtin {
        "tch nn::Adam"
    } else {
        "denoiserep trainer step"
    };
    println!(
        "{which} (tch 0.24, libtorch 2.11.0) threads {threads}: {:.1} steps/s",
        steps as f64 / secs
    );
    Ok(())
}
