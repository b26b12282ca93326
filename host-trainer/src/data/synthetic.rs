//! A seeded synthetic image data set for fast tests: each class has a random prototype image in
//! `[0, 1]`; samples are the prototype plus Gaussian noise, clipped to `[0, 1]`.

use anyhow::{bail, Context, Result};

use super::{Dataset, Rng, Split};

/// `synthetic[:C,H,W,classes,n_train,n_test]`; default `1,8,8,4,512,128`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticSpec {
    pub shape: [usize; 3],
    pub classes: usize,
    pub n_train: usize,
    pub n_test: usize,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            shape: [1, 8, 8],
            classes: 4,
            n_train: 512,
            n_test: 128,
        }
    }
}

impl SyntheticSpec {
    /// Parses `C,H,W,classes,n_train,n_test` (empty = default).
    pub fn parse(arg: &str) -> Result<Self> {
        if arg.is_empty() {
            return Ok(Self::default());
        }
        let v = arg
            .split(',')
            .enumerate()
            .map(|(i, s)| {
                s.trim().parse::<usize>().with_context(|| {
                    format!(
                        "synthetic spec '{arg}': field {} ('{s}') is not a whole number",
                        i + 1
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if v.len() != 6 || v.contains(&0) || v[3] < 2 {
            bail!("synthetic spec '{arg}': expected six positive numbers C,H,W,classes,n_train,n_test with classes >= 2");
        }
        Ok(Self {
            shape: [v[0], v[1], v[2]],
            classes: v[3],
            n_train: v[4],
            n_test: v[5],
        })
    }
}

/// Generates the synthetic data set; labels cycle through the classes (balanced).
pub fn synthetic(spec: &SyntheticSpec, seed: u64) -> Result<Dataset> {
    let d: usize = spec.shape.iter().product();
    let mut rng = Rng::new(seed);
    let protos: Vec<f32> = (0..spec.classes * d)
        .map(|_| rng.uniform() as f32)
        .collect();
    let mut make = |n: usize| {
        let mut split = Split::default();
        for i in 0..n {
            let c = i % spec.classes;
            split.y.push(c as u32);
            for &p in &protos[c * d..(c + 1) * d] {
                split
                    .x
                    .push((p + 0.25 * rng.normal() as f32).clamp(0.0, 1.0));
            }
        }
        split
    };
    let train = make(spec.n_train);
    let test = make(spec.n_test);
    Ok(Dataset {
        name: "synthetic".into(),
        shape: spec.shape,
        num_classes: spec.classes,
        train,
        test,
        value_range: Some((0.0, 1.0)),
    })
}
