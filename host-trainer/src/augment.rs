//! `--augment`: seeded random input transforms for the epochs that train the backbone with
//! cross-entropy (baseline, label-guided B, penalty-control). Denoiser epochs, the diagnostics,
//! calibration and every evaluation see the clean inputs: a denoiser models the distribution of
//! the layer inputs the deployed model will see.
//!
//! Spec: comma-separated parts, `none` for nothing:
//!
//! * `shift:N` — translate each sample by `(dy, dx)`, both uniform in `−N..=N`, filling the
//!   uncovered border with the value of a raw 0 pixel (`−mean[c] / std[c]` after
//!   normalization: black for MNIST; what padding before `Normalize` gives in torchvision's
//!   `RandomCrop(padding = N)`). On a `[C, H, W]` sample:
//!   `out[c, y, x] = in[c, y + dy, x + dx]` where inside, else `fill[c]`.
//! * `hflip` — mirror each sample left–right with probability ½ (`out[c, y, x] = in[c, y, W−1−x]`;
//!   not for digits, whose mirror images are other symbols).
//!
//! Draws come from [`Rng`] seeded per epoch by the caller, in sample order (`dy`, `dx`, then
//! the flip bit), so a run is reproducible on every machine.

use std::fmt;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::rng::Rng;

/// The largest `shift:N` accepted.
pub const MAX_SHIFT: usize = 64;

/// Parsed `--augment` spec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augment {
    /// Largest translation in pixels along each axis (0: none).
    pub shift: usize,
    /// Random horizontal flips.
    pub hflip: bool,
}

impl Augment {
    /// Parses `none` or comma-separated `shift:N` and `hflip` (each at most once).
    pub fn parse(spec: &str) -> std::result::Result<Self, String> {
        let mut a = Self::default();
        if spec.trim() == "none" {
            return Ok(a);
        }
        let (mut seen_shift, mut seen_flip) = (false, false);
        for part in spec.split(',').map(str::trim) {
            if part == "hflip" {
                if seen_flip {
                    return Err("hflip given twice".into());
                }
                seen_flip = true;
                a.hflip = true;
            } else if let Some(n) = part.strip_prefix("shift:") {
                if seen_shift {
                    return Err("shift given twice".into());
                }
                seen_shift = true;
                a.shift = n
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_SHIFT).contains(n))
                    .ok_or_else(|| {
                        format!("shift:{n}: the shift must be a whole number 1..={MAX_SHIFT}")
                    })?;
            } else {
                return Err(format!(
                    "unknown part '{part}' (expected shift:N, hflip or none, comma-separated)"
                ));
            }
        }
        Ok(a)
    }

    /// Whether the spec changes nothing.
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }

    /// Refuses a spec that cannot apply to samples of `shape` (`[C, H, W]`).
    pub fn check(&self, shape: [usize; 3]) -> Result<()> {
        let [_, h, w] = shape;
        if self.shift > 0 && (h < 2 || w < 2) {
            bail!(
                "--augment shift:{}: the input is {shape:?} (C, H, W), not an image; shifts need H, W ≥ 2",
                self.shift
            );
        }
        if self.hflip && w < 2 {
            bail!("--augment hflip: the input is {shape:?} (C, H, W); flips need W ≥ 2");
        }
        Ok(())
    }

    /// `x` (`[N, C, H, W]`, normalized) transformed sample by sample with draws from `rng`;
    /// `fill` (`[C]`) is the normalized value of a raw 0 pixel. Returns `x` itself when the
    /// spec is `none`.
    pub fn apply(&self, x: &Tensor, fill: &Tensor, rng: &mut Rng) -> Tensor {
        if self.is_none() {
            return x.shallow_clone();
        }
        let size = x.size();
        let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
        let s = self.shift as i64;
        let fill = fill.to_device(x.device()).view([1, c, 1, 1]);
        let padded = if s > 0 {
            (x - &fill).constant_pad_nd([s, s, s, s]) + &fill
        } else {
            x.shallow_clone()
        };
        let span = 2 * self.shift as u64 + 1;
        let samples: Vec<Tensor> = (0..n)
            .map(|i| {
                let mut t = padded.get(i);
                if s > 0 {
                    // Offsets into the padded sample: 0..=2s, i.e. a shift of −s..=s.
                    let oy = (rng.next_u64() % span) as i64;
                    let ox = (rng.next_u64() % span) as i64;
                    t = t.narrow(1, oy, h).narrow(2, ox, w);
                }
                if self.hflip && rng.next_u64() & 1 == 1 {
                    t = t.flip([2]);
                }
                t
            })
            .collect();
        Tensor::stack(&samples, 0)
    }
}

impl fmt::Display for Augment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.shift > 0 {
            parts.push(format!("shift:{}", self.shift));
        }
        if self.hflip {
            parts.push("hflip".into());
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn ramp(n: i64, c: i64, h: i64, w: i64) -> Tensor {
        Tensor::arange(n * c * h * w, (Kind::Float, tch::Device::Cpu)).view([n, c, h, w])
    }

    fn at(t: &Tensor, idx: [i64; 4]) -> f64 {
        t.double_value(&idx)
    }

    #[test]
    fn parse_accepts_the_documented_specs_and_refuses_the_rest() {
        assert_eq!(Augment::parse("none").unwrap(), Augment::default());
        let a = Augment::parse("shift:2,hflip").unwrap();
        assert_eq!((a.shift, a.hflip), (2, true));
        assert_eq!(a.to_string(), "shift:2,hflip");
        assert_eq!(Augment::parse(&a.to_string()).unwrap(), a);
        assert_eq!(Augment::parse("hflip").unwrap().to_string(), "hflip");
        for bad in [
            "",
            "shift",
            "shift:0",
            "shift:-1",
            "shift:x",
            "shift:65",
            "flip",
            "hflip,hflip",
            "shift:1,shift:2",
        ] {
            assert!(Augment::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn check_refuses_tabular_inputs() {
        let a = Augment::parse("shift:2").unwrap();
        assert!(a.check([1, 28, 28]).is_ok());
        let e = a.check([640, 1, 1]).unwrap_err().to_string();
        assert!(e.contains("not an image"), "{e}");
        assert!(Augment::parse("hflip").unwrap().check([3, 4, 1]).is_err());
        assert!(Augment::default().check([640, 1, 1]).is_ok());
    }

    #[test]
    fn none_is_the_identity() {
        let x = ramp(3, 2, 4, 5);
        let y = Augment::default().apply(
            &x,
            &Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
            &mut Rng::new(1),
        );
        assert!(y.equal(&x));
    }

    /// Every output pixel is the input pixel at the drawn offset or the channel's fill, and
    /// the draws are the documented ones.
    #[test]
    fn shift_moves_pixels_by_the_drawn_offset_and_fills_the_border() {
        let (n, c, h, w, s) = (16i64, 2i64, 5i64, 6i64, 2usize);
        let x = ramp(n, c, h, w) + 1.0; // no input pixel equals a fill value
        let fill = Tensor::from_slice(&[-0.5f32, -7.25]);
        let a = Augment {
            shift: s,
            hflip: false,
        };
        let y = a.apply(&x, &fill, &mut Rng::new(42));
        assert_eq!(y.size(), x.size());
        let mut rng = Rng::new(42);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..n {
            let oy = (rng.next_u64() % 5) as i64 - s as i64;
            let ox = (rng.next_u64() % 5) as i64 - s as i64;
            seen.insert((oy, ox));
            for ch in 0..c {
                for yy in 0..h {
                    for xx in 0..w {
                        let (sy, sx) = (yy + oy, xx + ox);
                        let want = if (0..h).contains(&sy) && (0..w).contains(&sx) {
                            at(&x, [i, ch, sy, sx])
                        } else {
                            [-0.5, -7.25][ch as usize]
                        };
                        assert_eq!(
                            at(&y, [i, ch, yy, xx]),
                            want,
                            "sample {i} ch {ch} ({yy},{xx}) offset ({oy},{ox})"
                        );
                    }
                }
            }
        }
        assert!(seen.len() > 8, "offsets drawn: {seen:?}");
    }

    #[test]
    fn hflip_mirrors_about_half_the_samples() {
        let (n, h, w) = (200i64, 3i64, 4i64);
        let x = ramp(n, 1, h, w);
        let a = Augment {
            shift: 0,
            hflip: true,
        };
        let y = a.apply(
            &x,
            &Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)),
            &mut Rng::new(3),
        );
        let mut flipped = 0;
        for i in 0..n {
            let same = y.get(i).equal(&x.get(i));
            let mirrored = y.get(i).equal(&x.get(i).flip([2]));
            assert!(same ^ mirrored, "sample {i} is neither kept nor mirrored");
            flipped += mirrored as i32;
        }
        assert!((70..=130).contains(&flipped), "{flipped} of {n} flipped");
    }

    #[test]
    fn the_same_seed_gives_the_same_batch() {
        let x = ramp(8, 3, 6, 6);
        let fill = Tensor::zeros([3], (Kind::Float, tch::Device::Cpu));
        let a = Augment {
            shift: 3,
            hflip: true,
        };
        let y1 = a.apply(&x, &fill, &mut Rng::new(9));
        let y2 = a.apply(&x, &fill, &mut Rng::new(9));
        let y3 = a.apply(&x, &fill, &mut Rng::new(10));
        assert!(y1.equal(&y2));
        assert!(!y1.equal(&y3));
    }
}
