//! Evaluation of the fused model (batched, no gradients): top-1 accuracy, retrieval on the
//! embedding (queries = test split, gallery = train split), accuracy under input noise and under
//! the corruptions of [`eval::corrupt`].

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use crate::data::{Dataset, Normalization, Split};
use crate::eval::anomaly::{self, AnomalyMetrics, ReconstructionMetrics, ReconstructionNoisePoint};
use crate::eval::corrupt::{self, CORRUPTIONS};
use crate::eval::{self, CorruptionPoint, FeatureNoisePoint, NoisePoint, Retrieval, NOISE_SIGMAS};
use crate::model::{Grads, Mode, Model, Output};
use crate::rng::mix;

/// Samples per evaluation batch.
pub const EVAL_BATCH: i64 = 1024;

/// The headline numbers of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub test_accuracy: f64,
    pub retrieval: Retrieval,
    pub noise_robustness: Vec<NoisePoint>,
    pub corruptions: Vec<CorruptionPoint>,
}

/// Raw samples (`n × C·H·W`) normalized and stacked as `[n, C, H, W]` on `device`.
pub fn to_tensor(x: &[f32], shape: [usize; 3], norm: &Normalization, device: Device) -> Tensor {
    let mut v = x.to_vec();
    norm.apply(&mut v, shape);
    let [c, h, w] = shape.map(|s| s as i64);
    Tensor::from_slice(&v).view([-1, c, h, w]).to_device(device)
}

/// Labels as an int64 tensor on `device`.
pub fn labels(y: &[u32], device: Device) -> Tensor {
    let v: Vec<i64> = y.iter().map(|&l| l as i64).collect();
    Tensor::from_slice(&v).to_device(device)
}

/// Calls `f` with the `mode` forward's output of each batch of [`EVAL_BATCH`] rows of `x`
/// (`[n, C, H, W]`, normalized), without gradients, `feature_noise` added as in
/// [`Model::forward_noisy`].
pub fn for_each_batch(
    model: &Model,
    x: &Tensor,
    mode: Mode,
    feature_noise: &[(usize, f64)],
    mut f: impl FnMut(&Output),
) {
    tch::no_grad(|| {
        let params = model.layer_params(mode, Grads::NONE);
        let n = x.size()[0];
        let mut start = 0;
        while start < n {
            let len = EVAL_BATCH.min(n - start);
            let x = x.narrow(0, start, len);
            f(&model.forward_noisy(&x, &params, mode, Grads::NONE, false, feature_noise));
            start += len;
        }
    })
}

/// Fused-model logits and embeddings of normalized inputs `x: [n, C, H, W]`, on the CPU.
pub fn outputs(model: &Model, x: &Tensor) -> (Tensor, Tensor) {
    let (mut logits, mut emb) = (Vec::new(), Vec::new());
    for_each_batch(model, x, Mode::Fused, &[], |out| {
        logits.push(out.logits.to_device(Device::Cpu));
        emb.push(out.embedding.to_device(Device::Cpu));
    });
    (Tensor::cat(&logits, 0), Tensor::cat(&emb, 0))
}

/// Fraction of `x` whose fused-model argmax equals `y` (int64 on the same device); NaN for a
/// reconstruction model (it predicts no class).
pub fn accuracy(model: &Model, x: &Tensor, y: &Tensor) -> f64 {
    if model.arch.reconstructs() {
        return f64::NAN;
    }
    let (logits, _) = outputs(model, x);
    let hits = logits
        .argmax(-1, false)
        .eq_tensor(&y.to_device(Device::Cpu))
        .sum(Kind::Int64);
    hits.int64_value(&[]) as f64 / y.size()[0].max(1) as f64
}

/// Per-sample reconstruction errors of the fused model on normalized inputs `x: [n, C, H, W]`:
/// `e_i = (1/D)·Σ_j (x̂_ij − x_ij)²`, `x̂ = [n, D]` the model's output (a reconstruction model's
/// `logits`), `D = C·H·W` — the anomaly score of `eval::anomaly`.
pub fn reconstruction_errors(model: &Model, x: &Tensor) -> Result<Vec<f64>> {
    let (out, _) = outputs(model, x);
    let target = x.to_device(Device::Cpu).flatten(1, -1);
    if out.size() != target.size() {
        anyhow::bail!(
            "arch {}: output shape {:?} is not the flattened input's {:?}: not a reconstruction model",
            model.arch.spec,
            out.size(),
            target.size()
        );
    }
    let e = (out - target)
        .square()
        .mean_dim(1, false, Kind::Double)
        .contiguous();
    Ok(Vec::<f64>::try_from(&e)?)
}

/// Mean per-sample reconstruction error of the fused model on normalized inputs `x`
/// ([`reconstruction_errors`]); 0 for an empty `x`.
pub fn reconstruction_mse(model: &Model, x: &Tensor) -> Result<f64> {
    Ok(anomaly::mean(&reconstruction_errors(model, x)?))
}

/// Evaluation of a reconstruction model: the test MSE on `data.test` (the normal classes when
/// `anomaly` is given), and with `anomaly = (whole test split, normal classes)` the ROC AUC of the
/// per-sample error as anomaly score, anomalous = class not normal ([`anomaly::roc_auc`]). Under
/// each input-noise σ of [`NOISE_SIGMAS`] (the same draws as [`evaluate`]: `mix(seed, i)`, raw
/// inputs, clipped to the data's range) the error is measured against the noisy input.
pub fn evaluate_reconstruction(
    model: &Model,
    data: &Dataset,
    anomaly: Option<(&Split, &[u32])>,
    seed: u64,
) -> Result<ReconstructionMetrics> {
    let (shape, norm, dev) = (data.shape, &model.normalization, model.device);
    let test_mse = reconstruction_mse(model, &to_tensor(&data.test.x, shape, norm, dev))?;
    // The split every score is measured on, and which of its samples are anomalous.
    let (split, anomalous): (&Split, Vec<bool>) = match anomaly {
        Some((full, normal)) => (
            full,
            full.y
                .iter()
                .map(|c| normal.binary_search(c).is_err())
                .collect(),
        ),
        None => (&data.test, vec![false; data.test.len()]),
    };
    let normal_mean = |e: &[f64]| {
        let v: Vec<f64> = e
            .iter()
            .zip(&anomalous)
            .filter(|(_, &a)| !a)
            .map(|(&e, _)| e)
            .collect();
        anomaly::mean(&v)
    };
    let auc = |e: &[f64]| {
        anomaly
            .is_some()
            .then(|| anomaly::roc_auc(e, &anomalous))
            .flatten()
    };
    let mut noise = Vec::with_capacity(NOISE_SIGMAS.len());
    let mut clean = None;
    for (i, &sigma) in NOISE_SIGMAS.iter().enumerate() {
        let noisy = eval::add_noise(&split.x, sigma, data.value_range, mix(seed, i as u64));
        let e = reconstruction_errors(model, &to_tensor(&noisy, shape, norm, dev))?;
        noise.push(ReconstructionNoisePoint {
            sigma,
            mse_normal: normal_mean(&e),
            auc: auc(&e),
        });
        if sigma == 0.0 {
            clean = Some(e);
        }
    }
    let clean = match clean {
        Some(e) => e,
        None => reconstruction_errors(model, &to_tensor(&split.x, shape, norm, dev))?,
    };
    let anomaly = match anomaly {
        Some((_, normal)) => {
            let Some(auc) = auc(&clean) else {
                anyhow::bail!(
                    "anomaly evaluation: the test split needs normal and anomalous samples \
                     (normal classes {}), and finite errors",
                    anomaly::format_classes(normal)
                );
            };
            let anomalous_errors: Vec<f64> = clean
                .iter()
                .zip(&anomalous)
                .filter(|(_, &a)| a)
                .map(|(&e, _)| e)
                .collect();
            Some(AnomalyMetrics {
                normal_classes: normal.to_vec(),
                n_normal: anomalous.iter().filter(|&&a| !a).count(),
                n_anomalous: anomalous_errors.len(),
                auc,
                mse_normal: normal_mean(&clean),
                mse_anomalous: anomaly::mean(&anomalous_errors),
            })
        }
        None => None,
    };
    Ok(ReconstructionMetrics {
        test_mse,
        anomaly,
        noise,
    })
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(
        &t.to_kind(Kind::Float).contiguous().flatten(0, -1),
    )?)
}

/// The seed stream of corruption `j` of [`CORRUPTIONS`]: `mix(seed, 5·2³² + j)`, apart from the
/// noise streams `mix(seed, i)` and the training streams (`train.rs`: `e`, `e + 2³²`, `e + 3·2³²`;
/// `run.rs`: `4·2³²`).
pub const CORRUPTION_STREAM: u64 = 5 << 32;

/// Full evaluation of the fused model on `data`. The robustness noise for σ index `i` is seeded
/// with `mix(seed, i)`; noise is added to raw inputs (pixel units), clipped to the data's value
/// range, then normalized. Then each corruption `j` of [`CORRUPTIONS`] is applied to the raw test
/// inputs ([`corrupt::corrupt`], seed `mix(seed, CORRUPTION_STREAM + j)`, range = the data's or,
/// without one, the test split's min and max) and normalized; a `gaussian` entry takes its
/// accuracy from the `noise_robustness` point of the same σ (the same draw), so the corruptions
/// cost one test-split pass each for the other seven. A reconstruction model gets the retrieval
/// only (accuracy NaN, no robustness points): see [`evaluate_reconstruction`].
pub fn evaluate(model: &Model, data: &Dataset, seed: u64) -> Result<Evaluation> {
    let (shape, norm, dev) = (data.shape, &model.normalization, model.device);
    let (test_logits, test_emb) = outputs(model, &to_tensor(&data.test.x, shape, norm, dev));
    let (_, train_emb) = outputs(model, &to_tensor(&data.train.x, shape, norm, dev));
    let retrieval = eval::retrieval(
        &to_vec(&test_emb)?,
        &data.test.y,
        &to_vec(&train_emb)?,
        &data.train.y,
        model.arch.embedding_dim,
    );
    if model.arch.reconstructs() {
        // No class is predicted: no accuracy, no accuracy-under-noise (the reconstruction
        // protocol of `evaluate_reconstruction` replaces them); retrieval on the bottleneck.
        return Ok(Evaluation {
            test_accuracy: f64::NAN,
            retrieval,
            noise_robustness: Vec::new(),
            corruptions: Vec::new(),
        });
    }
    let test_accuracy = eval::accuracy(&to_vec(&test_logits)?, data.num_classes, &data.test.y);
    let mut noise_robustness = Vec::new();
    for (i, &sigma) in NOISE_SIGMAS.iter().enumerate() {
        let noisy = eval::add_noise(&data.test.x, sigma, data.value_range, mix(seed, i as u64));
        let (logits, _) = outputs(model, &to_tensor(&noisy, shape, norm, dev));
        noise_robustness.push(NoisePoint {
            sigma,
            accuracy: eval::accuracy(&to_vec(&logits)?, data.num_classes, &data.test.y),
        });
    }
    let range = corrupt::range_of(data.value_range, &data.test.x);
    let mut corruptions = Vec::with_capacity(CORRUPTIONS.len());
    for (j, &c) in CORRUPTIONS.iter().enumerate() {
        let accuracy = if c.kind == corrupt::Kind::Gaussian {
            noise_robustness
                .iter()
                .find(|p| p.sigma == c.severity)
                .map(|p| p.accuracy)
                .with_context(|| format!("internal: {} is not a noise σ", c.key()))?
        } else {
            let x = corrupt::corrupt(
                &data.test.x,
                shape,
                c,
                range,
                mix(seed, CORRUPTION_STREAM + j as u64),
            );
            let (logits, _) = outputs(model, &to_tensor(&x, shape, norm, dev));
            eval::accuracy(&to_vec(&logits)?, data.num_classes, &data.test.y)
        };
        corruptions.push(CorruptionPoint {
            kind: c.kind,
            severity: c.severity,
            accuracy,
        });
    }
    Ok(Evaluation {
        test_accuracy,
        retrieval,
        noise_robustness,
        corruptions,
    })
}

/// The clean train split's embeddings: the retrieval gallery of every [`feature_noise`] level.
pub fn gallery(model: &Model, data: &Dataset) -> Tensor {
    let (shape, norm, dev) = (data.shape, &model.normalization, model.device);
    outputs(model, &to_tensor(&data.train.x, shape, norm, dev)).1
}

/// The feature-noise positive control: the fused model on the test split with `N(0, s_k²)` added
/// to the input of every weighted layer `k` (`per_layer`, noise from tch's RNG seeded with
/// `seed`): top-1, retrieval on the noisy embedding (gallery = `train_emb`, the clean train
/// split's embeddings from [`gallery`]), and retrieval on that embedding after an explicit
/// reverse step of the next layer's denoiser.
pub fn feature_noise(
    model: &Model,
    data: &Dataset,
    train_emb: &Tensor,
    s: Option<f64>,
    per_layer: Vec<(usize, f64)>,
    seed: u64,
) -> Result<FeatureNoisePoint> {
    let (shape, norm, dev) = (data.shape, &model.normalization, model.device);
    let x = to_tensor(&data.test.x, shape, norm, dev);
    // The denoiser of the first weighted layer after the embedding layer, if any: its input is
    // the embedding (through any ReLU between them, applied below as in the forward).
    let next = model
        .arch
        .weighted_layers()
        .into_iter()
        .find(|&k| k > model.arch.embedding_layer);
    let relu_between = next.is_some_and(|k| {
        model.arch.nodes[model.arch.embedding_layer + 1..k]
            .iter()
            .any(|n| matches!(n.spec, crate::arch::LayerSpec::Relu))
    });
    let denoiser = next.and_then(|k| model.denoisers.iter().find(|d| d.layer == k));
    tch::manual_seed(seed as i64);
    let (mut logits, mut emb, mut den) = (Vec::new(), Vec::new(), Vec::new());
    for_each_batch(model, &x, Mode::Fused, &per_layer, |out| {
        if let Some(d) = denoiser {
            let z = if relu_between {
                out.embedding.relu()
            } else {
                out.embedding.shallow_clone()
            };
            let stepped = d.with_terms(false, |t| crate::fuse::reverse_step(&z, t, d.coeffs));
            den.push(stepped.to_device(Device::Cpu));
        }
        logits.push(out.logits.to_device(Device::Cpu));
        emb.push(out.embedding.to_device(Device::Cpu));
    });
    let cat = |v: Vec<Tensor>| (!v.is_empty()).then(|| Tensor::cat(&v, 0));
    let (logits, emb, denoised) = (cat(logits), cat(emb), cat(den));
    let (Some(logits), Some(emb)) = (logits, emb) else {
        anyhow::bail!("feature noise: the test split is empty");
    };
    let dim = model.arch.embedding_dim;
    let train = to_vec(train_emb)?;
    let r = eval::retrieval(&to_vec(&emb)?, &data.test.y, &train, &data.train.y, dim);
    let dr = match denoised {
        Some(d) => {
            // Gallery through the same step (clean train embeddings, denoised alike).
            let z = if relu_between {
                train_emb.relu()
            } else {
                train_emb.shallow_clone()
            };
            let g = tch::no_grad(|| {
                let dd = denoiser.expect("denoised implies a denoiser");
                dd.with_terms(false, |t| {
                    crate::fuse::reverse_step(&z.to_device(dev), t, dd.coeffs)
                })
                .to_device(Device::Cpu)
            });
            Some(eval::retrieval(
                &to_vec(&d)?,
                &data.test.y,
                &to_vec(&g)?,
                &data.train.y,
                dim,
            ))
        }
        None => None,
    };
    Ok(FeatureNoisePoint {
        s,
        per_layer,
        accuracy: if model.arch.reconstructs() {
            f64::NAN
        } else {
            eval::accuracy(&to_vec(&logits)?, data.num_classes, &data.test.y)
        },
        retrieval_map: r.map,
        retrieval_rank1: r.rank1,
        denoised_retrieval_map: dr.map(|r| r.map),
        denoised_retrieval_rank1: dr.map(|r| r.rank1),
    })
}
