//! The firmware's decoded log (`firmware/run-qemu.sh` output, `docs/firmware.md`): the lines the
//! report needs, read strictly.
//!
//! ```text
//! INFO  board=mps2-an386 unit=instructions arena_capacity=1048576
//! INFO  model name=mlp:256,128 precision=Int8 layers=4 file_bytes=238405 arena_bytes=1171 …
//! INFO  layer_total=1 kind=LinearS8 samples=200 instructions=244353960 macs=40140800
//! INFO  done samples=200 instructions=292485040 macs=46950400
//! ```
//!
//! The count key is named after the board's `unit` (`instructions` under QEMU `-icount`,
//! `cycles` on hardware). Every error names the file and, for a bad line, its 1-based number.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Totals of one layer over all samples (`layer_total=` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerTotal {
    pub index: usize,
    /// Core layer kind, e.g. `LinearS8`.
    pub kind: String,
    /// Counted units (instructions or cycles) over all samples; layer 0 includes the input
    /// normalization (and int8 quantization).
    pub count: u64,
    /// Multiply-accumulates over all samples.
    pub macs: u64,
}

/// What a firmware run logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLog {
    /// `board=` (e.g. `mps2-an386`).
    pub board: String,
    /// `unit=`: `instructions` or `cycles`.
    pub unit: String,
    /// `model precision=`: `F32` or `Int8`.
    pub precision: String,
    pub file_bytes: u64,
    pub arena_bytes: u64,
    /// `done samples=`.
    pub samples: u64,
    /// `done <unit>=`: over all samples.
    pub count: u64,
    /// `done macs=`: over all samples.
    pub macs: u64,
    /// `layer_total=` lines, in layer order.
    pub layers: Vec<LayerTotal>,
}

impl DeviceLog {
    /// Reads and parses the log file at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = super::read_text(path)?;
        Self::parse(&text).with_context(|| path.display().to_string())
    }

    /// Parses a decoded log (see the module doc).
    pub fn parse(text: &str) -> Result<Self> {
        let (mut board, mut model, mut done) = (None, None, None);
        let mut layers = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = strip_level(raw);
            let at = || format!("line {}: '{}'", i + 1, raw.trim_end());
            if line.starts_with("error=") {
                bail!(
                    "{}: the firmware failed (docs/firmware.md lists the exit codes)",
                    at()
                );
            }
            if line.starts_with("board=") {
                let unit = text_field(line, "unit").with_context(at)?;
                if unit != "instructions" && unit != "cycles" {
                    bail!("{}: unit '{unit}' is neither instructions nor cycles", at());
                }
                board = Some((text_field(line, "board").with_context(at)?, unit));
            } else if line.starts_with("model ") {
                model = Some((
                    text_field(line, "precision").with_context(at)?,
                    num_field(line, "file_bytes").with_context(at)?,
                    num_field(line, "arena_bytes").with_context(at)?,
                ));
            } else if line.starts_with("layer_total=") || line.starts_with("done ") {
                let Some((_, unit)) = &board else {
                    bail!("{}: before the board=… unit=… line", at());
                };
                let samples = num_field(line, "samples").with_context(at)?;
                let count = num_field(line, unit).with_context(at)?;
                let macs = num_field(line, "macs").with_context(at)?;
                if line.starts_with("done ") {
                    if done.is_some() {
                        bail!("{}: a second done line", at());
                    }
                    done = Some((samples, count, macs));
                } else {
                    let index = num_field(line, "layer_total").with_context(at)?;
                    if index != layers.len() as u64 {
                        bail!("{}: expected layer_total={}", at(), layers.len());
                    }
                    layers.push((
                        samples,
                        LayerTotal {
                            index: layers.len(),
                            kind: text_field(line, "kind").with_context(at)?,
                            count,
                            macs,
                        },
                    ));
                }
            }
        }
        let Some((board, unit)) = board else {
            bail!("no 'board=… unit=…' line: not a log of firmware/run-qemu.sh");
        };
        let Some((precision, file_bytes, arena_bytes)) = model else {
            bail!("no 'model name=… precision=…' line: the firmware did not load the model");
        };
        let Some((samples, count, macs)) = done else {
            bail!("no 'done samples=… {unit}=… macs=…' line: the run did not finish");
        };
        if samples == 0 {
            bail!("done samples=0: the firmware ran no samples");
        }
        if layers.is_empty() {
            bail!("no 'layer_total=…' lines");
        }
        if let Some((s, l)) = layers.iter().find(|(s, _)| *s != samples) {
            bail!(
                "layer_total={} has samples={s}, the done line samples={samples}",
                l.index
            );
        }
        let layer_macs: u64 = layers.iter().map(|(_, l)| l.macs).sum();
        if layer_macs != macs {
            bail!("the layer_total lines add up to macs={layer_macs}, the done line says {macs}");
        }
        Ok(Self {
            board,
            unit,
            precision,
            file_bytes,
            arena_bytes,
            samples,
            count,
            macs,
            layers: layers.into_iter().map(|(_, l)| l).collect(),
        })
    }

    /// Mean count per inference.
    pub fn per_inference(&self) -> f64 {
        self.count as f64 / self.samples as f64
    }

    /// Count per multiply-accumulate (`None` for a model without MACs).
    pub fn per_mac(&self) -> Option<f64> {
        (self.macs > 0).then(|| self.count as f64 / self.macs as f64)
    }
}

/// The line without defmt-print's level prefix (`INFO  `, `WARN  `, …).
fn strip_level(line: &str) -> &str {
    let t = line.trim();
    for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] {
        if let Some(rest) = t.strip_prefix(level) {
            if rest.starts_with(char::is_whitespace) {
                return rest.trim_start();
            }
        }
    }
    t
}

/// The value of `key=value` (values end at whitespace).
fn text_field(line: &str, key: &str) -> Result<String> {
    line.split_whitespace()
        .find_map(|tok| tok.strip_prefix(key)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .with_context(|| format!("no {key}= field"))
}

fn num_field(line: &str, key: &str) -> Result<u64> {
    let v = text_field(line, key)?;
    v.parse()
        .with_context(|| format!("{key}={v} is not a whole number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
INFO  board=mps2-an386 unit=instructions arena_capacity=1048576
INFO  model name=mlp:256,128 precision=Int8 layers=2 file_bytes=1000 arena_bytes=64 input=1x28x28 classes=10 embedding_layer=0
INFO  layer=0 kind=Flatten in=Chw { c: 1, h: 28, w: 28 } out=Flat { n: 784 } macs=0
INFO  layer=1 kind=LinearS8 in=Flat { n: 784 } out=Flat { n: 10 } macs=7840
INFO  sample=0 instructions=100
INFO  sample=1 instructions=140
INFO  layer_total=0 kind=Flatten samples=2 instructions=40 macs=0
INFO  layer_total=1 kind=LinearS8 samples=2 instructions=200 macs=15680
INFO  done samples=2 instructions=240 macs=15680
INFO  ram static_bytes=1131036 stack_peak_bytes=16780
";

    #[test]
    fn parses_a_firmware_log() {
        let log = DeviceLog::parse(LOG).unwrap();
        assert_eq!(log.board, "mps2-an386");
        assert_eq!(log.unit, "instructions");
        assert_eq!(log.precision, "Int8");
        assert_eq!((log.file_bytes, log.arena_bytes), (1000, 64));
        assert_eq!((log.samples, log.count, log.macs), (2, 240, 15680));
        assert_eq!(log.layers.len(), 2);
        assert_eq!(log.layers[1].kind, "LinearS8");
        assert_eq!(log.layers[1].count, 200);
        assert_eq!(log.per_inference(), 120.0);
        assert_eq!(log.per_mac(), Some(240.0 / 15680.0));
    }

    #[test]
    fn cycles_name_the_count_key() {
        let log = DeviceLog::parse(&LOG.replace("instructions", "cycles")).unwrap();
        assert_eq!((log.unit.as_str(), log.count), ("cycles", 240));
    }

    fn err(text: &str) -> String {
        format!("{:#}", DeviceLog::parse(text).unwrap_err())
    }

    #[test]
    fn a_malformed_line_is_named_with_its_number() {
        let e = err(&LOG.replace("done samples=2", "done samples=two"));
        assert!(e.contains("line 9:"), "{e}");
        assert!(e.contains("samples=two is not a whole number"), "{e}");
        let e = err(&LOG.replace(" instructions=240", ""));
        assert!(
            e.contains("line 9:") && e.contains("no instructions= field"),
            "{e}"
        );
        let e = err(&LOG.replace("layer_total=1", "layer_total=5"));
        assert!(
            e.contains("line 8:") && e.contains("expected layer_total=1"),
            "{e}"
        );
    }

    #[test]
    fn missing_lines_are_named() {
        let without = |prefix: &str| -> String {
            LOG.lines()
                .filter(|l| !l.contains(prefix))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        assert!(err(&without("done")).contains("no 'done samples="));
        assert!(err(&without("board=")).contains("before the board="));
        assert!(err(&without("model name")).contains("no 'model name="));
        assert!(err(&without("layer_total")).contains("no 'layer_total="));
        assert!(err("").contains("no 'board="));
    }

    #[test]
    fn inconsistent_totals_and_failures_are_errors() {
        let e = err(&LOG.replace("samples=2 instructions=40", "samples=3 instructions=40"));
        assert!(e.contains("layer_total=0 has samples=3"), "{e}");
        let e = err(&LOG.replace("macs=15680\nINFO  ram", "macs=15681\nINFO  ram"));
        assert!(e.contains("add up to macs=15680"), "{e}");
        let e = err(&format!(
            "{LOG}INFO  done samples=2 instructions=240 macs=15680\n"
        ));
        assert!(e.contains("a second done line"), "{e}");
        let e = err(&LOG.replace("INFO  done", "ERROR error=InputIo exit=4\nINFO  done"));
        assert!(e.contains("the firmware failed"), "{e}");
        let e = err(&LOG.replace("unit=instructions", "unit=ticks"));
        assert!(e.contains("unit 'ticks'"), "{e}");
        let e = err(&LOG.replace("samples=2", "samples=0"));
        assert!(
            e.contains("done samples=0: the firmware ran no samples"),
            "{e}"
        );
    }
}
