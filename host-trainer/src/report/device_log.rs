//! The firmware's decoded log (`firmware/run-qemu.sh` output, `docs/firmware.md`): the lines the
//! report needs, read strictly.
//!
//! ```text
//! INFO  math=libm
//! INFO  board=mps2-an386 unit=instructions arena_capacity=1048576 tensor_capacity=32
//! INFO  model name=mlp:256,128 precision=Int8 ops=4 tensors=5 file_bytes=238405 arena_bytes=1171 input=1x28x28 classes=10 embedding_tensor=3
//! INFO  op=1 kind=linear in=784 out=256 macs=200704
//! INFO  op_total=1 kind=linear samples=200 instructions=244353960 macs=40140800
//! INFO  done samples=200 instructions=292485040 macs=46950400
//! ```
//!
//! `math=` (the core's f32 Softmax / GELU / LayerNorm math, `libm` or `fast`) is optional, for
//! logs of firmware from before it; the demo report refuses a log whose math is not the host's.
//! The count key is named after the board's `unit` (`instructions` under QEMU `-icount`,
//! `cycles` on hardware). Every error names the file and, for a bad line, its 1-based number.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Totals of one op over all samples (`op_total=` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpTotal {
    pub index: usize,
    /// Core op kind (`OpKind::name`), e.g. `conv2d`, `depthwise_conv2d`, `add`.
    pub kind: String,
    /// Counted units (instructions or cycles) over all samples; op 0 includes the input
    /// normalization (and int8 quantization) and the copy of constant tensors.
    pub count: u64,
    /// Multiply-accumulates over all samples.
    pub macs: u64,
}

/// What a firmware run logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLog {
    /// `math=`: the core's f32 Softmax / GELU / LayerNorm math in the firmware (`libm` or
    /// `fast`); `None` in logs of firmware from before that line.
    pub math: Option<String>,
    /// `board=` (e.g. `mps2-an386`).
    pub board: String,
    /// `unit=`: `instructions` or `cycles`.
    pub unit: String,
    /// `model precision=`: `F32` or `Int8`.
    pub precision: String,
    pub file_bytes: u64,
    pub arena_bytes: u64,
    /// `model tensors=`: entries of the model's tensor table.
    pub tensors: u64,
    /// `model embedding_tensor=`: id of the embedding tensor.
    pub embedding_tensor: u64,
    /// `done samples=`.
    pub samples: u64,
    /// `done <unit>=`: over all samples.
    pub count: u64,
    /// `done macs=`: over all samples.
    pub macs: u64,
    /// `op_total=` lines, in execution order (as many as the `model` line's `ops=`).
    pub ops: Vec<OpTotal>,
}

/// The `model` line's fields this parser keeps.
struct ModelLine {
    precision: String,
    ops: u64,
    tensors: u64,
    file_bytes: u64,
    arena_bytes: u64,
    embedding_tensor: u64,
}

impl DeviceLog {
    /// Reads and parses the log file at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = super::read_text(path)?;
        Self::parse(&text).with_context(|| path.display().to_string())
    }

    /// Parses a decoded log (see the module doc).
    pub fn parse(text: &str) -> Result<Self> {
        let (mut board, mut model, mut done, mut math) = (None, None, None, None);
        let mut ops = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = strip_level(raw);
            let at = || format!("line {}: '{}'", i + 1, raw.trim_end());
            if line.starts_with("error=") {
                bail!(
                    "{}: the firmware failed (docs/firmware.md lists the exit codes)",
                    at()
                );
            }
            if line.starts_with("math=") {
                math = Some(text_field(line, "math").with_context(at)?);
            } else if line.starts_with("board=") {
                let unit = text_field(line, "unit").with_context(at)?;
                if unit != "instructions" && unit != "cycles" {
                    bail!("{}: unit '{unit}' is neither instructions nor cycles", at());
                }
                board = Some((text_field(line, "board").with_context(at)?, unit));
            } else if line.starts_with("model ") {
                model = Some(ModelLine {
                    precision: text_field(line, "precision").with_context(at)?,
                    ops: num_field(line, "ops").with_context(at)?,
                    tensors: num_field(line, "tensors").with_context(at)?,
                    file_bytes: num_field(line, "file_bytes").with_context(at)?,
                    arena_bytes: num_field(line, "arena_bytes").with_context(at)?,
                    embedding_tensor: num_field(line, "embedding_tensor").with_context(at)?,
                });
            } else if line.starts_with("op_total=") || line.starts_with("done ") {
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
                    let index = num_field(line, "op_total").with_context(at)?;
                    if index != ops.len() as u64 {
                        bail!("{}: expected op_total={}", at(), ops.len());
                    }
                    ops.push((
                        samples,
                        OpTotal {
                            index: ops.len(),
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
        let Some(model) = model else {
            bail!("no 'model name=… precision=…' line: the firmware did not load the model");
        };
        let Some((samples, count, macs)) = done else {
            bail!("no 'done samples=… {unit}=… macs=…' line: the run did not finish");
        };
        if samples == 0 {
            bail!("done samples=0: the firmware ran no samples");
        }
        if ops.is_empty() {
            bail!("no 'op_total=…' lines");
        }
        if ops.len() as u64 != model.ops {
            bail!(
                "{} op_total lines, the model line says ops={}",
                ops.len(),
                model.ops
            );
        }
        if let Some((s, o)) = ops.iter().find(|(s, _)| *s != samples) {
            bail!(
                "op_total={} has samples={s}, the done line samples={samples}",
                o.index
            );
        }
        let op_macs: u64 = ops.iter().map(|(_, o)| o.macs).sum();
        if op_macs != macs {
            bail!("the op_total lines add up to macs={op_macs}, the done line says {macs}");
        }
        Ok(Self {
            math,
            board,
            unit,
            precision: model.precision,
            file_bytes: model.file_bytes,
            arena_bytes: model.arena_bytes,
            tensors: model.tensors,
            embedding_tensor: model.embedding_tensor,
            samples,
            count,
            macs,
            ops: ops.into_iter().map(|(_, o)| o).collect(),
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

    /// A real log's shape (`firmware/run-qemu.sh` on a residual CNN, trimmed to 3 ops).
    const LOG: &str = "\
INFO  board=mps2-an386 unit=instructions arena_capacity=1048576 tensor_capacity=32
INFO  model name=res-dw precision=Int8 ops=3 tensors=4 file_bytes=1000 arena_bytes=64 input=1x12x12 classes=10 embedding_tensor=2
INFO  op=0 kind=conv2d in=1x12x12 out=4x12x12 macs=5184
INFO  op=1 kind=depthwise_conv2d in=4x12x12 out=4x12x12 macs=5184
INFO  op=2 kind=add in=4x12x12,4x12x12 out=4x12x12 macs=0
INFO  sample=0 instructions=100
INFO  sample=1 instructions=140
INFO  op_total=0 kind=conv2d samples=2 instructions=100 macs=10368
INFO  op_total=1 kind=depthwise_conv2d samples=2 instructions=100 macs=10368
INFO  op_total=2 kind=add samples=2 instructions=40 macs=0
INFO  done samples=2 instructions=240 macs=20736
INFO  stack model_bytes=1088 load_peak_bytes=2988 run_peak_bytes=3020
INFO  ram static_bytes=1131300 stack_peak_bytes=3020
";

    #[test]
    fn parses_a_firmware_log() {
        let log = DeviceLog::parse(LOG).unwrap();
        assert_eq!(log.board, "mps2-an386");
        assert_eq!(log.unit, "instructions");
        assert_eq!(log.precision, "Int8");
        assert_eq!((log.file_bytes, log.arena_bytes), (1000, 64));
        assert_eq!((log.tensors, log.embedding_tensor), (4, 2));
        assert_eq!((log.samples, log.count, log.macs), (2, 240, 20736));
        assert_eq!(log.ops.len(), 3);
        assert_eq!(log.ops[1].kind, "depthwise_conv2d");
        assert_eq!((log.ops[1].count, log.ops[1].macs), (100, 10368));
        assert_eq!(log.ops[2].kind, "add");
        assert_eq!(log.per_inference(), 120.0);
        assert_eq!(log.per_mac(), Some(240.0 / 20736.0));
        assert_eq!(log.math, None, "a log from before the math= line");
        let with_math = DeviceLog::parse(&format!("INFO  math=fast\n{LOG}")).unwrap();
        assert_eq!(with_math.math.as_deref(), Some("fast"));
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
        assert!(e.contains("line 11:"), "{e}");
        assert!(e.contains("samples=two is not a whole number"), "{e}");
        let e = err(&LOG.replace(" instructions=240", ""));
        assert!(
            e.contains("line 11:") && e.contains("no instructions= field"),
            "{e}"
        );
        let e = err(&LOG.replace("op_total=1", "op_total=5"));
        assert!(
            e.contains("line 9:") && e.contains("expected op_total=1"),
            "{e}"
        );
        let e = err(&LOG.replace(" tensors=4", ""));
        assert!(
            e.contains("line 2:") && e.contains("no tensors= field"),
            "{e}"
        );
        let e = err(&LOG.replace("embedding_tensor=2", "embedding_layer=2"));
        assert!(e.contains("no embedding_tensor= field"), "{e}");
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
        assert!(err(&without("op_total")).contains("no 'op_total="));
        assert!(err("").contains("no 'board="));
    }

    #[test]
    fn a_log_of_the_v1_firmware_is_refused() {
        // layers=/layer_total= (format v1) instead of ops=/op_total=.
        let v1 = LOG
            .replace("ops=3", "layers=3")
            .replace("op_total=", "layer_total=");
        assert!(err(&v1).contains("no ops= field"));
    }

    #[test]
    fn inconsistent_totals_and_failures_are_errors() {
        let e = err(&LOG.replace("samples=2 instructions=40", "samples=3 instructions=40"));
        assert!(e.contains("op_total=2 has samples=3"), "{e}");
        let e = err(&LOG.replace("macs=20736\nINFO  stack", "macs=20737\nINFO  stack"));
        assert!(e.contains("add up to macs=20736"), "{e}");
        let e = err(&LOG.replace("ops=3", "ops=4"));
        assert!(
            e.contains("3 op_total lines, the model line says ops=4"),
            "{e}"
        );
        let e = err(&format!(
            "{LOG}INFO  done samples=2 instructions=240 macs=20736\n"
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
