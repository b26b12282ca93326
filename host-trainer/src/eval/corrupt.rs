//! Input corruptions of the robustness protocol beyond Gaussian noise: salt-and-pepper noise,
//! one occluding square per image, and Gaussian blur; and the fixed list [`CORRUPTIONS`] that
//! `eval` measures (`metrics.json` `corruptions`).
//!
//! Every function takes raw samples `x` (`n × C·H·W`, row-major `[n, C, H, W]`, pixel units:
//! `[0, 1]` for images) and returns a corrupted copy; it never normalizes (the caller does, as
//! for the noise). The random ones draw from one [`Rng`] seeded with `seed`, image by image and
//! pixel by pixel in memory order, so the same `(x, seed)` gives the same bytes on every
//! platform. `lo, hi` is the data's value range (`Dataset::value_range`, `[0, 1]` for images).

use serde::{Deserialize, Serialize};

use crate::data::Rng;

/// A kind of input corruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `x + σ·ε`, `ε ~ N(0, 1)`, clipped ([`super::add_noise`]); severity σ in pixel units.
    Gaussian,
    /// [`salt_pepper`]; severity: the fraction `p` of pixels hit.
    SaltPepper,
    /// [`occlusion`]; severity: the patch side as a fraction of the image side.
    Occlusion,
    /// [`blur`]; severity: the kernel's σ in pixels.
    Blur,
}

impl Kind {
    /// The kebab-case name used in `metrics.json` and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gaussian => "gaussian",
            Self::SaltPepper => "salt-pepper",
            Self::Occlusion => "occlusion",
            Self::Blur => "blur",
        }
    }
}

/// One corruption at one severity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Corruption {
    pub kind: Kind,
    pub severity: f32,
}

impl Corruption {
    /// `kind:severity`, e.g. `salt-pepper:0.05`: the key of this corruption in `compare.json`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind.name(), self.severity)
    }

    /// A short human label: `gaussian σ=0.5`, `salt-pepper p=0.05`, `occlusion 25 %`,
    /// `blur σ=1 px`.
    pub fn label(&self) -> String {
        let s = self.severity;
        match self.kind {
            Kind::Gaussian => format!("gaussian σ={s}"),
            Kind::SaltPepper => format!("salt-pepper p={s}"),
            Kind::Occlusion => format!("occlusion {} %", (100.0 * s).round()),
            Kind::Blur => format!("blur σ={s} px"),
        }
    }
}

/// The corruptions `eval` measures, in `metrics.json` order. `gaussian σ = 0.5` is the
/// `noise_robustness` point at σ = 0.5 (the same noise draw, not evaluated twice): listed here so
/// that every axis is in one list; the whole Gaussian curve stays in `noise_robustness`. The
/// other seven cost one pass over the test split each.
pub const CORRUPTIONS: [Corruption; 8] = [
    Corruption {
        kind: Kind::Gaussian,
        severity: 0.5,
    },
    Corruption {
        kind: Kind::SaltPepper,
        severity: 0.05,
    },
    Corruption {
        kind: Kind::SaltPepper,
        severity: 0.1,
    },
    Corruption {
        kind: Kind::SaltPepper,
        severity: 0.2,
    },
    Corruption {
        kind: Kind::Occlusion,
        severity: 0.25,
    },
    Corruption {
        kind: Kind::Occlusion,
        severity: 0.5,
    },
    Corruption {
        kind: Kind::Blur,
        severity: 1.0,
    },
    Corruption {
        kind: Kind::Blur,
        severity: 2.0,
    },
];

/// Salt-and-pepper noise: each pixel (spatial position, all `C` channels together)
/// independently becomes pepper (every channel = `lo`) with probability `p/2`, salt (every
/// channel = `hi`) with probability `p/2`, and is kept with probability `1 − p`. One uniform
/// `u ∈ [0, 1)` per pixel decides: `u < p/2` pepper, `p/2 ≤ u < p` salt. So the expected
/// fraction of hit pixels is `p`, half of them black, half white.
pub fn salt_pepper(
    x: &[f32],
    shape: [usize; 3],
    p: f32,
    (lo, hi): (f32, f32),
    seed: u64,
) -> Vec<f32> {
    let [c, h, w] = shape;
    let plane = h * w;
    let mut out = x.to_vec();
    let mut rng = Rng::new(seed);
    let (half, p) = (0.5 * p as f64, p as f64);
    for img in out.chunks_mut(c * plane) {
        for px in 0..plane {
            let u = rng.uniform();
            let v = if u < half {
                lo
            } else if u < p {
                hi
            } else {
                continue;
            };
            for ch in 0..c {
                img[ch * plane + px] = v;
            }
        }
    }
    out
}

/// The side in pixels of an occluding square of relative size `frac`:
/// `s = clamp(round(frac · min(H, W)), 1, min(H, W))` (7 and 14 on 28 × 28 for 0.25 and 0.5).
pub fn occlusion_side(frac: f32, h: usize, w: usize) -> usize {
    let m = h.min(w);
    ((frac as f64 * m as f64).round() as usize).clamp(1, m.max(1))
}

/// One occluding square per image: side `s` = [`occlusion_side`]`(frac, H, W)`, top-left corner
/// `(r, c)` uniform on `{0…H−s} × {0…W−s}` (`r = u₁ mod (H − s + 1)`, `c = u₂ mod (W − s + 1)`
/// with two 64-bit draws per image), every channel of the `s × s` pixels set to `fill` (the
/// range minimum: black). Exactly `s²` pixels per image change (fewer only where they already
/// equal `fill`).
pub fn occlusion(x: &[f32], shape: [usize; 3], frac: f32, fill: f32, seed: u64) -> Vec<f32> {
    let [c, h, w] = shape;
    let s = occlusion_side(frac, h, w);
    let mut out = x.to_vec();
    let mut rng = Rng::new(seed);
    for img in out.chunks_mut(c * h * w) {
        let r0 = (rng.next_u64() % (h - s + 1) as u64) as usize;
        let c0 = (rng.next_u64() % (w - s + 1) as u64) as usize;
        for ch in 0..c {
            for r in r0..r0 + s {
                let row = (ch * h + r) * w;
                img[row + c0..row + c0 + s].fill(fill);
            }
        }
    }
    out
}

/// The normalized 1-D Gaussian kernel of [`blur`]: radius `r = ⌈3σ⌉`,
/// `k[i] = exp(−i² / (2σ²)) / Σ_{|j|≤r} exp(−j² / (2σ²))` for `i = −r…r` (computed in f64,
/// stored as f32; index `i + r`).
pub fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let s = sigma as f64;
    let r = (3.0 * s).ceil() as i64;
    let raw: Vec<f64> = (-r..=r)
        .map(|i| (-((i * i) as f64) / (2.0 * s * s)).exp())
        .collect();
    let total: f64 = raw.iter().sum();
    raw.iter().map(|v| (v / total) as f32).collect()
}

/// Gaussian blur with standard deviation `sigma` pixels, per channel, separable: first along
/// rows, `y[r][c] = Σ_i k[i] · x[r][clamp(c + i, 0, W − 1)]`, then along columns the same way
/// (`k` = [`gaussian_kernel`], radius `⌈3σ⌉`; out-of-image taps take the nearest edge pixel,
/// "edges clamped"), accumulated in f32 in tap order. Deterministic (no seed). A weighted mean
/// with weights summing to 1: a constant image stays constant, the sum of an image whose mass
/// lies at least `⌈3σ⌉` pixels from every edge is kept (no tap is clamped there), and the
/// variance drops. Results are
/// clipped to `range` when given (rounding could step a last bit outside it).
pub fn blur(x: &[f32], shape: [usize; 3], sigma: f32, range: Option<(f32, f32)>) -> Vec<f32> {
    let [_, h, w] = shape;
    let k = gaussian_kernel(sigma);
    let r = (k.len() / 2) as i64;
    let mut out = vec![0.0f32; x.len()];
    let mut tmp = vec![0.0f32; h * w];
    // One H × W plane per (image, channel).
    for (src, dst) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(h * w)) {
        for row in 0..h {
            for col in 0..w {
                let mut acc = 0.0f32;
                for (t, kv) in k.iter().enumerate() {
                    let cc = (col as i64 + t as i64 - r).clamp(0, w as i64 - 1) as usize;
                    acc += kv * src[row * w + cc];
                }
                tmp[row * w + col] = acc;
            }
        }
        for row in 0..h {
            for col in 0..w {
                let mut acc = 0.0f32;
                for (t, kv) in k.iter().enumerate() {
                    let rr = (row as i64 + t as i64 - r).clamp(0, h as i64 - 1) as usize;
                    acc += kv * tmp[rr * w + col];
                }
                dst[row * w + col] = match range {
                    Some((lo, hi)) => acc.max(lo).min(hi),
                    None => acc,
                };
            }
        }
    }
    out
}

/// Applies `corruption` to raw samples `x`: the range `(lo, hi)` gives salt-and-pepper its
/// values, occlusion its fill `lo`, and clips Gaussian noise and blur. Gaussian noise and
/// salt-and-pepper draw from `seed`, occlusion too; blur ignores it.
pub fn corrupt(
    x: &[f32],
    shape: [usize; 3],
    corruption: Corruption,
    (lo, hi): (f32, f32),
    seed: u64,
) -> Vec<f32> {
    let s = corruption.severity;
    match corruption.kind {
        Kind::Gaussian => super::add_noise(x, s, Some((lo, hi)), seed),
        Kind::SaltPepper => salt_pepper(x, shape, s, (lo, hi), seed),
        Kind::Occlusion => occlusion(x, shape, s, lo, seed),
        Kind::Blur => blur(x, shape, s, Some((lo, hi))),
    }
}

/// The value range corruptions use: the data's declared range, else (`csv` data) the smallest
/// and largest value in `x`; `(0, 1)` for no values.
pub fn range_of(declared: Option<(f32, f32)>, x: &[f32]) -> (f32, f32) {
    declared.unwrap_or_else(|| {
        let lo = x.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if lo <= hi {
            (lo, hi)
        } else {
            (0.0, 1.0)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` images of shape `shape` with values uniform in `[0.1, 0.9)` (never the range ends).
    fn images(n: usize, shape: [usize; 3], seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let len = n * shape.iter().product::<usize>();
        (0..len).map(|_| 0.1 + 0.8 * rng.uniform() as f32).collect()
    }

    fn changed(a: &[f32], b: &[f32]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    }

    #[test]
    fn salt_pepper_hits_a_fraction_p_of_pixels_half_black_half_white() {
        let shape = [3, 16, 16];
        let x = images(200, shape, 1);
        let pixels = 200 * 16 * 16;
        for p in [0.05f32, 0.1, 0.2] {
            let y = salt_pepper(&x, shape, p, (0.0, 1.0), 7);
            // Every channel of a hit pixel changes, so changed values = 3 × hit pixels.
            let hit = changed(&x, &y);
            assert_eq!(hit % 3, 0);
            let frac = (hit / 3) as f64 / pixels as f64;
            // Binomial sd √(p(1−p)/N) ≤ 0.0016 here; allow 5 sd.
            let sd = (p as f64 * (1.0 - p as f64) / pixels as f64).sqrt();
            assert!((frac - p as f64).abs() < 5.0 * sd, "p {p}: {frac}");
            let black = y.iter().filter(|&&v| v == 0.0).count() / 3;
            let white = y.iter().filter(|&&v| v == 1.0).count() / 3;
            assert_eq!(black + white, hit / 3);
            let share = black as f64 / (hit / 3) as f64;
            assert!((share - 0.5).abs() < 0.05, "p {p}: black share {share}");
            // Pixels move together across channels.
            for img in y.chunks(3 * 256) {
                for px in 0..256 {
                    let v = [img[px], img[256 + px], img[512 + px]];
                    let hit = v.iter().filter(|&&c| c == 0.0 || c == 1.0).count();
                    assert!(hit == 0 || hit == 3, "{v:?}");
                }
            }
        }
        assert_eq!(salt_pepper(&x, shape, 0.0, (0.0, 1.0), 7), x);
    }

    #[test]
    fn occlusion_blacks_out_exactly_one_square_per_image() {
        assert_eq!(occlusion_side(0.25, 28, 28), 7);
        assert_eq!(occlusion_side(0.5, 28, 28), 14);
        assert_eq!(occlusion_side(0.5, 32, 20), 10);
        assert_eq!(occlusion_side(0.001, 28, 28), 1);
        let shape = [2, 28, 28];
        let x = images(50, shape, 2);
        for frac in [0.25f32, 0.5] {
            let s = occlusion_side(frac, 28, 28);
            let y = occlusion(&x, shape, frac, 0.0, 9);
            let mut corners = std::collections::BTreeSet::new();
            for (a, b) in x.chunks(2 * 784).zip(y.chunks(2 * 784)) {
                // Exact area: s² pixels in each of the 2 channels.
                assert_eq!(changed(a, b), 2 * s * s);
                // …forming one s × s square, the same in both channels.
                let hits: Vec<(usize, usize)> = (0..784)
                    .filter(|&i| b[i] == 0.0)
                    .map(|i| (i / 28, i % 28))
                    .collect();
                let (r0, c0) = hits[0];
                assert!(hits
                    .iter()
                    .all(|&(r, c)| (r0..r0 + s).contains(&r) && (c0..c0 + s).contains(&c)));
                assert!((0..784).all(|i| (b[i] == 0.0) == (b[784 + i] == 0.0)));
                corners.insert((r0, c0));
            }
            // Positions vary from image to image.
            assert!(corners.len() > 25, "{frac}: {corners:?}");
        }
    }

    #[test]
    fn blur_keeps_constants_and_interior_mass_and_lowers_variance() {
        let k = gaussian_kernel(1.0);
        assert_eq!(k.len(), 7);
        assert!((k.iter().map(|&v| v as f64).sum::<f64>() - 1.0).abs() < 1e-6);
        // Centre tap: 1 / (1 + 2(e^(−1/2) + e^(−2) + e^(−9/2))) = 0.399050…
        let centre = 1.0 / (1.0 + 2.0 * ((-0.5f64).exp() + (-2.0f64).exp() + (-4.5f64).exp()));
        assert!((k[3] as f64 - centre).abs() < 1e-7, "{}", k[3]);
        assert!((centre - 0.399_050_3).abs() < 1e-6);
        assert_eq!(k[0], k[6]);
        assert_eq!(gaussian_kernel(2.0).len(), 13);
        let shape = [1, 32, 32];
        // Constant image: unchanged (to rounding).
        let flat = vec![0.37f32; 3 * 1024];
        for sigma in [1.0, 2.0] {
            let y = blur(&flat, [3, 32, 32], sigma, None);
            assert!(y.iter().all(|v| (v - 0.37).abs() < 1e-6), "σ {sigma}");
        }
        // Edges clamped: a lone 1 in a corner keeps the weight of every tap that falls outside,
        // (Σ_{i≤0} k[i])² = (Σ_{i≥0} k[i])² on both axes.
        let half: f32 = k[..4].iter().sum();
        for corner in [0, 1023] {
            let mut dot = vec![0.0f32; 1024];
            dot[corner] = 1.0;
            let y = blur(&dot, shape, 1.0, None);
            assert!(
                (y[corner] - half * half).abs() < 1e-6,
                "{corner}: {}",
                y[corner]
            );
        }
        // Mass in the central 8 × 8 only, 12 px from every edge (≥ ⌈3σ⌉ = 3 and 6): the sum is
        // kept.
        let mut x = vec![0.0f32; 1024];
        let mut rng = Rng::new(3);
        for r in 12..20 {
            for c in 12..20 {
                x[r * 32 + c] = rng.uniform() as f32;
            }
        }
        let sum = |v: &[f32]| v.iter().map(|&a| a as f64).sum::<f64>();
        for sigma in [1.0, 2.0] {
            let y = blur(&x, shape, sigma, None);
            assert!(
                (sum(&y) - sum(&x)).abs() < 1e-4,
                "σ {sigma}: {} {}",
                sum(&y),
                sum(&x)
            );
            assert!(changed(&x, &y) > 64, "σ {sigma}: the mass did not spread");
        }
        // Variance of white noise drops (by ≈ Σk² per axis: ×0.08 for σ = 1).
        let noise = images(1, shape, 4);
        let var = |v: &[f32]| {
            let m = sum(v) / v.len() as f64;
            v.iter().map(|&a| (a as f64 - m).powi(2)).sum::<f64>() / v.len() as f64
        };
        let (v0, v1, v2) = (
            var(&noise),
            var(&blur(&noise, shape, 1.0, None)),
            var(&blur(&noise, shape, 2.0, None)),
        );
        assert!(v1 < 0.2 * v0 && v2 < v1, "{v0} {v1} {v2}");
        // Deterministic, clipped to the range.
        assert_eq!(
            blur(&noise, shape, 1.0, None),
            blur(&noise, shape, 1.0, None)
        );
        let clipped = blur(&noise, shape, 1.0, Some((0.45, 0.55)));
        assert!(clipped.iter().all(|v| (0.45..=0.55).contains(v)));
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let shape = [1, 28, 28];
        let x = images(20, shape, 5);
        let bits = |v: Vec<f32>| v.iter().map(|a| a.to_bits()).collect::<Vec<u32>>();
        for c in CORRUPTIONS {
            let a = bits(corrupt(&x, shape, c, (0.0, 1.0), 11));
            assert_eq!(
                a,
                bits(corrupt(&x, shape, c, (0.0, 1.0), 11)),
                "{}",
                c.key()
            );
            assert_ne!(a, bits(x.clone()), "{} changed nothing", c.key());
            let b = bits(corrupt(&x, shape, c, (0.0, 1.0), 12));
            if c.kind == Kind::Blur {
                assert_eq!(a, b, "blur is not random");
            } else {
                assert_ne!(a, b, "{}: seeds 11 and 12 agree", c.key());
            }
        }
    }

    #[test]
    fn the_protocol_list_is_consistent() {
        // Every Gaussian entry is a noise_robustness σ (its accuracy is taken from there).
        for c in CORRUPTIONS.iter().filter(|c| c.kind == Kind::Gaussian) {
            assert!(
                super::super::NOISE_SIGMAS.contains(&c.severity),
                "{}",
                c.key()
            );
        }
        let keys: Vec<String> = CORRUPTIONS.iter().map(Corruption::key).collect();
        assert_eq!(keys[1], "salt-pepper:0.05");
        assert_eq!(keys[6], "blur:1");
        let mut dedup = keys.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), keys.len());
        assert_eq!(CORRUPTIONS[4].label(), "occlusion 25 %");
        assert_eq!(
            serde_json::to_string(&Kind::SaltPepper).unwrap(),
            "\"salt-pepper\""
        );
        assert_eq!(range_of(None, &[0.5, -2.0, 3.0]), (-2.0, 3.0));
        assert_eq!(range_of(Some((0.0, 1.0)), &[5.0]), (0.0, 1.0));
    }
}
