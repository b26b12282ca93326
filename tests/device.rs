//! Running the firmware (`firmware/`) in QEMU from tests: find QEMU and defmt-print, build the
//! firmware once, run it on a model placed in its flash partition with inputs from a host file,
//! collect the exit code, the dump file and the decoded defmt log, and compute the host's dump of
//! the same model and inputs with the core library.
//!
//! QEMU always runs under a deadline ([`QEMU_TIMEOUT`]) and is killed past it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use denoiserep_core::samples::{encode_record, encode_sample};
use denoiserep_core::{file_len, Activation, DumpHeader, Error, InputHeader, Model};
use denoiserep_trainer::export::footprint::op_cost;

use crate::models::{quantize_model, square, OwnedModel, Rng};
use crate::repo_root;

/// Where the firmware expects its model partition (memory.x `MODEL` of mps2-an386).
pub const MODEL_PARTITION_ADDR: u32 = 0x0010_0000;
/// Length of that partition.
pub const MODEL_PARTITION_LEN: usize = 3 * 1024 * 1024;
/// The firmware's static arena on mps2-an386 (`firmware/src/board.rs`).
pub const ARENA_CAPACITY: usize = 1024 * 1024;
/// The firmware's tensor capacity (`firmware/src/board.rs` `TENSOR_CAPACITY`; its log's
/// `tensor_capacity=`, checked by [`firmware_refuses_too_many_tensors`]): a model with more
/// tensors is rejected at load with `DecodeTooManyTensors`.
pub const TENSOR_CAPACITY: usize = 160;
/// Longest a single QEMU run may take before it is killed.
pub const QEMU_TIMEOUT: Duration = Duration::from_secs(120);
/// Instructions per SysTick tick under `-icount shift=0` on mps2-an386.
pub const INSTRUCTIONS_PER_TICK: u64 = 40;
/// Most stack the firmware may use, in bytes, while loading a model and while running it (the
/// `stack` line's painted `load_peak_bytes` and `run_peak_bytes`). The goal is 4 KB of RAM beyond
/// the static arena and I/O buffers, stack *and* other static state (32 B), so 4 096 − 32 B. With
/// the DSP and FPU kernels of issue 14 (their frames: the f32 im2col patch, the depthwise
/// placement tables) the peaks are 2 812–2 844 B loading and up to ≈ 3.9 KB running
/// (docs/firmware.md, "RAM"); the limit still fails if the loading scratch comes back onto the
/// stack (≈ 4.9 KB at capacity 160).
pub const STACK_LIMIT: u64 = 4096 - 32;

/// Exit codes of the firmware (`firmware/src/exit.rs`, docs/firmware.md).
pub mod exit {
    /// Every sample ran.
    pub const OK: i32 = 0;
    /// The core rejected the model.
    pub const MODEL_REJECTED: i32 = 1;
    /// The model header announces more bytes than the partition holds.
    pub const MODEL_TOO_LARGE: i32 = 2;
    /// The model does not fit the static buffers.
    pub const MODEL_DOES_NOT_FIT: i32 = 3;
    /// The input file cannot be read.
    pub const INPUT_IO: i32 = 4;
    /// The input file is invalid for this model.
    pub const INPUT_INVALID: i32 = 5;
    /// A Rust panic in the firmware.
    pub const PANIC: i32 = 101;
    /// A CPU fault in the firmware.
    pub const HARD_FAULT: i32 = 102;
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin")))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Environment variable naming the ledger file: every host == device comparison, every skipped
/// device test and every model the firmware refuses for its size
/// ([`firmware_refuses_too_many_tensors`]) appends one line there (scripts/test.sh sets it and
/// prints the totals).
pub const LEDGER_ENV: &str = "DENOISEREP_DEVICE_LEDGER";
/// Set to `1` to make a missing QEMU fail the device tests instead of skipping them (implied by
/// `CI`).
pub const REQUIRE_ENV: &str = "DENOISEREP_REQUIRE_DEVICE";

/// True when a missing QEMU must fail the run: `CI` is set (to anything but "", "0" or "false",
/// as every CI service does) or `DENOISEREP_REQUIRE_DEVICE=1`.
pub fn device_required() -> bool {
    let set = |name: &str| {
        std::env::var(name)
            .map(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
            .unwrap_or(false)
    };
    set("CI") || set(REQUIRE_ENV)
}

/// Appends `line` to the ledger ([`LEDGER_ENV`]), if one is set. One `write` of a short line in
/// append mode, so concurrent test processes never interleave within a line.
fn ledger(line: &str) {
    let Some(path) = std::env::var_os(LEDGER_ENV) else {
        return;
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening the device ledger {path:?}: {e}"));
    f.write_all(format!("{line}\n").as_bytes())
        .unwrap_or_else(|e| panic!("writing the device ledger {path:?}: {e}"));
}

/// `qemu-system-arm`, or `None` after printing a loud SKIPPED banner naming `test` and the fix
/// (and counting the skip in the ledger). Tests return early on `None`; this is the only reason a
/// device test may skip, and under [`device_required`] it does not: it fails.
pub fn qemu_or_skip(test: &str) -> Option<PathBuf> {
    let found = on_path("qemu-system-arm");
    if let Some(qemu) = &found {
        check_qemu_version(qemu);
    } else if device_required() {
        panic!(
            "{test}: qemu-system-arm not found, and CI or {REQUIRE_ENV}=1 is set, so the device \
             tests must run: install it (SETUP_QEMU=1 bash scripts/setup.sh, or apt-get install \
             qemu-system-arm)"
        );
    } else {
        ledger_skip(test);
        // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "\n######################################################################\n\
             # SKIPPED {test}: qemu-system-arm not found, the firmware was NOT run.\n\
             # Install it: SETUP_QEMU=1 bash scripts/setup.sh (apt-get install\n\
             # qemu-system-arm), or run README's test command (scripts/test.sh).\n\
             ######################################################################\n"
        );
    }
    found
}

/// Counts one skipped oracle test (no QEMU, no TFLite-Micro) in the ledger.
pub fn ledger_skip(test: &str) {
    ledger(&format!("skipped\t{test}"));
}

/// Counts one host == device comparison of `samples` samples in the ledger. Call it only after
/// the comparison passed; [`assert_dumps_equal`] does.
pub fn record_comparison(what: &str, samples: usize) {
    ledger(&format!("compared\t{samples}\t{what}"));
}

/// Asserts that the firmware was built with the host's math ([`check_math`]) and that its dump
/// equals the host's byte for byte — same length, same header,
/// then record by record so a failure names the first differing sample — that the samples did
/// not all give the same outputs (a comparison of constants proves little), and counts the
/// comparison in the ledger. Returns the dump's header.
pub fn assert_dumps_equal(what: &str, host: &[u8], device: &DeviceRun) -> DumpHeader {
    assert_eq!(device.exit_code, exit::OK, "{what}: {}", device.explain());
    check_math(what, device);
    let dump = device
        .dump
        .as_deref()
        .unwrap_or_else(|| panic!("{what}: the firmware wrote no output.dnrd"));
    let header = DumpHeader::decode(host).expect("host dump header");
    assert_eq!(
        Some(host.len()),
        header.file_len(),
        "{what}: host dump length"
    );
    assert_eq!(
        dump.len(),
        host.len(),
        "{what}: dump lengths differ\n{}",
        device.explain()
    );
    assert_eq!(
        &dump[..DumpHeader::LEN],
        &host[..DumpHeader::LEN],
        "{what}: dump headers differ"
    );
    let record = header.record_len();
    let host_records: Vec<&[u8]> = host[DumpHeader::LEN..].chunks(record).collect();
    for (i, (d, h)) in dump[DumpHeader::LEN..]
        .chunks(record)
        .zip(&host_records)
        .enumerate()
    {
        assert_eq!(d, *h, "{what}: sample {i}: device and host outputs differ");
    }
    assert!(
        host_records.len() < 2 || host_records.iter().any(|r| *r != host_records[0]),
        "{what}: every sample gave the same outputs"
    );
    record_comparison(what, header.n_samples as usize);
    header
}

/// Prints `msg` on the process's stderr, past the test harness's capture, so that what a device
/// test compared shows in every run (scripts/test.sh), not only with `--nocapture`.
pub fn report(msg: &str) {
    let _ = writeln!(std::io::stderr(), "[device] {msg}");
}

/// Fails (never skips) when QEMU is older than 7.0, which lacks what the firmware relies on.
fn check_qemu_version(qemu: &Path) {
    let out = Command::new(qemu)
        .arg("--version")
        .output()
        .expect("running qemu-system-arm --version");
    let text = String::from_utf8_lossy(&out.stdout);
    let major: Option<u32> = text
        .split("version ")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse().ok());
    match major {
        Some(m) if m >= 7 => {}
        _ => panic!(
            "{} reports {:?}: QEMU >= 7.0 is needed (semihosting file I/O, -icount on \
             mps2-an386); install a newer one (SETUP_QEMU=1 bash scripts/setup.sh, or your \
             package manager)",
            qemu.display(),
            text.lines().next().unwrap_or("")
        ),
    }
}

/// `defmt-print` (required whenever QEMU is there: the log is how the firmware reports).
pub fn defmt_print() -> PathBuf {
    on_path("defmt-print").unwrap_or_else(|| {
        panic!(
            "defmt-print not found: install it with `cargo install defmt-print --version 1.2.0 \
             --locked` (scripts/setup.sh does), then rerun"
        )
    })
}

/// Builds the firmware for mps2-an386 once per test process and returns the ELF of `bin`: the
/// build whose f32 math matches this host's core ([`denoiserep_core::MATH`]): `cargo build
/// --release --locked` in `firmware/` (a no-op when scripts/test.sh already built it), or, when
/// the tests are built with `--features fast-math`, the same with `--features fast-math` into
/// `firmware/target/fast-math/`.
pub fn firmware_elf(bin: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let fw = repo_root().join("firmware");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut args = vec!["build", "--release", "--locked", "--bins"];
        let fast = denoiserep_core::MATH == "fast";
        if fast {
            args.extend([
                "--features",
                "fast-math",
                "--target-dir",
                "target/fast-math",
            ]);
        }
        let status = Command::new(cargo)
            .args(&args)
            .current_dir(&fw)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("running cargo build in firmware/");
        assert!(
            status.success(),
            "building the firmware in {} failed (the target needs `rustup target add \
             thumbv7em-none-eabihf`; scripts/setup.sh does it)",
            fw.display()
        );
        let target = if fast { "target/fast-math" } else { "target" };
        fw.join(target).join("thumbv7em-none-eabihf/release")
    });
    let elf = dir.join(bin);
    assert!(elf.is_file(), "{} missing after the build", elf.display());
    elf
}

/// The firmware's `math=` line (the f32 Softmax / GELU / LayerNorm math it was built with) must
/// name this host's ([`denoiserep_core::MATH`]): `libm` and `fast` (the `fast-math` feature)
/// give different bits, so a comparison across them would fail for a reason that is no bug, or,
/// on a model without those ops, pass while proving nothing about them. Panics, naming both,
/// before any output is compared.
pub fn check_math(what: &str, run: &DeviceRun) {
    let device = run.lines_with("math=").find_map(|l| field(l, "math"));
    assert_eq!(
        device,
        Some(denoiserep_core::MATH),
        "{what}: the firmware logs math={device:?} but this host's core runs math={}: refusing \
         to compare (build the tests and the firmware both with or both without `fast-math`)\n{}",
        denoiserep_core::MATH,
        run.explain()
    );
}

/// What one QEMU run produced.
#[derive(Debug)]
pub struct DeviceRun {
    /// QEMU's exit status (the firmware's semihosting exit code).
    pub exit_code: i32,
    /// `output.dnrd`, if the firmware wrote one.
    pub dump: Option<Vec<u8>>,
    /// The defmt log, decoded by defmt-print, one message per line (no location lines).
    pub log: String,
}

impl DeviceRun {
    /// Lines of the log containing `needle`.
    pub fn lines_with<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.log.lines().filter(move |l| l.contains(needle))
    }

    /// A panic message with the whole log, for assertion failures.
    pub fn explain(&self) -> String {
        format!("exit code {}; firmware log:\n{}", self.exit_code, self.log)
    }
}

/// The value of `key=` in `line` (up to the next space).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}=");
    let at = line
        .match_indices(&pat)
        .find(|(i, _)| *i == 0 || line.as_bytes()[i - 1] == b' ')?
        .0;
    let rest = &line[at + pat.len()..];
    Some(rest.split(' ').next().unwrap_or(rest))
}

/// `field` parsed as an integer.
pub fn field_u64(line: &str, key: &str) -> Option<u64> {
    field(line, key)?.parse().ok()
}

/// A fresh, empty directory under the system temp dir; removed by [`TempDir::drop`].
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `…/denoiserep-device-<pid>-<n>-<tag>`.
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "denoiserep-device-{}-{n}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `elf` in QEMU mps2-an386 (`-icount shift=0`, semihosting on) in a temp dir holding
/// `input.dnri` (if given), with `model` (if given) written into the model partition by QEMU's
/// loader, and decodes the defmt log with `defmt_print`.
pub fn run_firmware(
    qemu: &Path,
    defmt_print: &Path,
    elf: &Path,
    model: Option<&[u8]>,
    input: Option<&[u8]>,
) -> DeviceRun {
    let dir = TempDir::new(elf.file_name().and_then(|n| n.to_str()).unwrap_or("fw"));
    let mut cmd = Command::new(qemu);
    cmd.args(["-M", "mps2-an386", "-nographic"])
        .args(["-icount", "shift=0"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-kernel")
        .arg(elf);
    if let Some(model) = model {
        assert!(
            model.len() <= MODEL_PARTITION_LEN,
            "model larger than the partition"
        );
        std::fs::write(dir.0.join("model.dnrp"), model).expect("writing model.dnrp");
        cmd.args([
            "-device",
            &format!("loader,file=model.dnrp,addr={MODEL_PARTITION_ADDR:#x},force-raw=on"),
        ]);
    }
    if let Some(input) = input {
        std::fs::write(dir.0.join("input.dnri"), input).expect("writing input.dnri");
    }
    let frames = dir.0.join("defmt.bin");
    let stdout = std::fs::File::create(&frames).expect("creating defmt.bin");
    let mut child = cmd
        .current_dir(&dir.0)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting qemu-system-arm");
    let deadline = Instant::now() + QEMU_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for QEMU") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("QEMU did not finish within {QEMU_TIMEOUT:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let exit_code = status
        .code()
        .unwrap_or_else(|| panic!("QEMU killed by a signal; stderr: {stderr}"));
    let decoded = Command::new(defmt_print)
        .args(["--log-format", "{L} {s}", "-e"])
        .arg(elf)
        .stdin(std::fs::File::open(&frames).expect("opening defmt.bin"))
        .output()
        .expect("running defmt-print");
    assert!(
        decoded.status.success(),
        "defmt-print failed: {}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let mut log = String::from_utf8(decoded.stdout).expect("defmt-print prints UTF-8");
    if !stderr.trim().is_empty() {
        log.push_str(&format!("[qemu stderr] {stderr}"));
    }
    DeviceRun {
        exit_code,
        dump: std::fs::read(dir.0.join("output.dnrd")).ok(),
        log,
    }
}

/// An input file (core layout, `docs/dump-format.md`) holding `samples`.
pub fn input_file(samples: &[Vec<f32>]) -> Vec<u8> {
    let sample_len = samples.first().map_or(0, Vec::len);
    let header = InputHeader {
        n_samples: samples.len() as u32,
        sample_len: sample_len as u32,
    };
    let mut out = header.encode().to_vec();
    let mut record = vec![0u8; sample_len * 4];
    for s in samples {
        assert_eq!(s.len(), sample_len, "samples of different lengths");
        encode_sample(s, &mut record).expect("sample encodes");
        out.extend_from_slice(&record);
    }
    out
}

/// The dump the host core writes for `model` on `samples` (the same bytes `denoiserep infer
/// --dump` writes): header from the first run's outputs, then one record per sample.
pub fn host_dump(model: &[u8], samples: &[Vec<f32>]) -> Result<Vec<u8>, Error> {
    let model = Model::from_bytes(model)?;
    let mut arena = vec![0u8; model.arena_size()];
    let mut out = Vec::new();
    let mut record = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let outputs = model.run(s, &mut arena)?;
        if i == 0 {
            let header = DumpHeader::for_outputs(&outputs, samples.len() as u32)?;
            out.extend_from_slice(&header.encode());
            record.resize(header.record_len(), 0);
        }
        let n = encode_record(&outputs, &mut record)?;
        out.extend_from_slice(&record[..n]);
    }
    Ok(out)
}

/// The error the core reports for `file` placed at the start of an otherwise zero-filled model
/// partition, read the way the firmware reads it (length from the header, then decode): the
/// error the device must log.
pub fn host_partition_error(file: &[u8]) -> Option<Error> {
    let mut partition = vec![0u8; MODEL_PARTITION_LEN];
    partition[..file.len()].copy_from_slice(file);
    let len = match file_len(&partition) {
        Ok(len) => len,
        Err(e) => return Some(e),
    };
    let file = partition.get(..len)?;
    Model::from_bytes(file).err()
}

/// An MNIST-shaped MLP with random weights (seeded): 1×28×28 → reshape `[784]` → Linear
/// 784→64 + ReLU (the embedding) → Linear 64→10.
pub fn mnist_mlp(seed: u64) -> OwnedModel {
    let mut rng = Rng(seed);
    let mut m = OwnedModel::new("mnist-mlp", &[1, 28, 28], &[0.1307], &[0.3081]);
    let flat = m.reshape(0, &[784]);
    let h = m.linear(
        flat,
        Activation::Relu,
        &rng.vec(784 * 64, -0.08, 0.08),
        &rng.vec(64, -0.1, 0.1),
    );
    let logits = m.linear(
        h,
        Activation::None,
        &rng.vec(640, -0.3, 0.3),
        &rng.vec(10, -0.1, 0.1),
    );
    m.outputs(logits, h)
}

/// An MNIST-shaped CNN with random weights (seeded): 1×28×28 → Conv3×3(1→8, pad 1) + ReLU →
/// MaxPool 2 → Conv3×3(8→16, pad 1) + ReLU → MaxPool 2 → Mean (global average pool, `[16]`,
/// the embedding) → Linear 16→10.
pub fn mnist_cnn(seed: u64) -> OwnedModel {
    let mut rng = Rng(seed);
    let mut m = OwnedModel::new("mnist-cnn", &[1, 28, 28], &[0.1307], &[0.3081]);
    let c1 = m.conv2d(
        0,
        square(3, 1, 1),
        Activation::Relu,
        &rng.vec(72, -0.5, 0.5),
        &rng.vec(8, -0.1, 0.1),
    );
    let p1 = m.max_pool(c1, square(2, 2, 0));
    let c2 = m.conv2d(
        p1,
        square(3, 1, 1),
        Activation::Relu,
        &rng.vec(1152, -0.2, 0.2),
        &rng.vec(16, -0.1, 0.1),
    );
    let p2 = m.max_pool(c2, square(2, 2, 0));
    let emb = m.mean(p2);
    let logits = m.linear(
        emb,
        Activation::None,
        &rng.vec(160, -0.6, 0.6),
        &rng.vec(10, -0.1, 0.1),
    );
    m.outputs(logits, emb)
}

/// `n` digit-like 28×28 inputs in [0, 1] (seeded): mostly 0 with a random blob of ink, so the
/// activations look like MNIST's rather than like uniform noise.
pub fn digit_like_inputs(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let (cy, cx) = (rng.uniform(8.0, 20.0), rng.uniform(8.0, 20.0));
            let r = rng.uniform(3.0, 9.0);
            (0..784)
                .map(|i| {
                    let (y, x) = ((i / 28) as f32, (i % 28) as f32);
                    let d = ((y - cy) * (y - cy) + (x - cx) * (x - cx)).sqrt();
                    if (d - r).abs() < 1.5 {
                        (rng.uniform(0.5, 1.0) * 255.0).round() / 255.0
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect()
}

/// The f32 model and its int8 post-training quantization (calibrated on 32 seeded inputs).
pub fn f32_and_int8(model: OwnedModel, seed: u64) -> [OwnedModel; 2] {
    let calibration = digit_like_inputs(32, seed);
    let mut int8 = quantize_model(&model, &calibration);
    int8.name = format!("{}-int8", model.name);
    [model, int8]
}

/// Runs the model file `file` (named `what` in messages) on `samples` on the host core and in
/// the firmware, asserts byte-identical dumps ([`assert_dumps_equal`]), a consistent log
/// ([`check_log`]) and the stack bound ([`check_stack`]), and returns the device run; `None` when
/// QEMU is missing (skipped loudly).
pub fn host_equals_device(what: &str, file: &[u8], samples: &[Vec<f32>]) -> Option<DeviceRun> {
    let qemu = qemu_or_skip(what)?;
    let host = host_dump(file, samples).expect("host core runs the model");
    let elf = firmware_elf("denoiserep-firmware");
    let run = run_firmware(
        &qemu,
        &defmt_print(),
        &elf,
        Some(file),
        Some(&input_file(samples)),
    );
    let header = assert_dumps_equal(what, &host, &run);
    let model = Model::from_bytes(file).expect("the model loads");
    check_log(what, &run, &model, file.len(), samples.len());
    check_stack(what, &run);
    report(&format!(
        "{what}: {} samples x ({} logits + {} embedding values, {} B/value) bit-identical host \
         == device; {} ops, {} tensors, {} per-op instruction totals logged",
        header.n_samples,
        header.logits_len,
        header.embedding_len,
        header.value_size(),
        model.op_count(),
        model.tensor_count(),
        model.op_count(),
    ));
    Some(run)
}

/// A model with more tensors than the firmware holds ([`TENSOR_CAPACITY`]): the firmware must
/// refuse it cleanly at load (exit 1, the log's last line `error=ModelRejected(
/// DecodeTooManyTensors) exit=1`, no dump, no fault) and its log must state the capacity this
/// test assumes. Reported loudly and counted as `refused` in the ledger: the model was *not*
/// compared host == device. `false` (skipped loudly) when QEMU is missing.
pub fn firmware_refuses_too_many_tensors(what: &str, file: &[u8], samples: &[Vec<f32>]) -> bool {
    let tensors = Model::from_bytes(file)
        .expect("the model loads")
        .tensor_count();
    assert!(
        tensors > TENSOR_CAPACITY,
        "{what}: {tensors} tensors fit the firmware"
    );
    let Some(qemu) = qemu_or_skip(what) else {
        return false;
    };
    let run = run_firmware(
        &qemu,
        &defmt_print(),
        &firmware_elf("denoiserep-firmware"),
        Some(file),
        Some(&input_file(samples)),
    );
    let capacity = run
        .lines_with("tensor_capacity=")
        .find_map(|l| field_u64(l, "tensor_capacity"))
        .unwrap_or_else(|| panic!("{what}: no tensor_capacity in the log\n{}", run.explain()));
    assert_eq!(
        capacity, TENSOR_CAPACITY as u64,
        "{what}: the firmware's tensor capacity changed; update TENSOR_CAPACITY"
    );
    assert_eq!(
        run.exit_code,
        exit::MODEL_REJECTED,
        "{what}\n{}",
        run.explain()
    );
    let line = format!(
        "error=ModelRejected(DecodeTooManyTensors) exit={}",
        exit::MODEL_REJECTED
    );
    assert!(
        run.log.lines().any(|l| l.ends_with(&line)) && !run.log.contains("HardFault"),
        "{what}: expected a log line ending with `{line}`\n{}",
        run.explain()
    );
    assert!(
        run.dump.is_none(),
        "{what}: no dump may be written on failure"
    );
    ledger(&format!("refused\t{what}"));
    report(&format!(
        "{what}: NOT RUN ON THE DEVICE: {tensors} tensors, the firmware holds {capacity} \
         (refused cleanly with DecodeTooManyTensors)"
    ));
    true
}

/// The `stack` line of a successful run: the model value's size and the painted peaks while
/// loading and while running, each at most [`STACK_LIMIT`]; reported, and returned as
/// `(model_bytes, load_peak_bytes, run_peak_bytes)`.
pub fn check_stack(what: &str, run: &DeviceRun) -> (u64, u64, u64) {
    let line = run
        .lines_with("stack model_bytes=")
        .next()
        .unwrap_or_else(|| panic!("{what}: no stack line\n{}", run.explain()));
    let get =
        |key: &str| field_u64(line, key).unwrap_or_else(|| panic!("{what}: no {key}= in {line}"));
    let (model, load, run_peak) = (
        get("model_bytes"),
        get("load_peak_bytes"),
        get("run_peak_bytes"),
    );
    report(&format!(
        "{what}: stack model_bytes={model} load_peak_bytes={load} run_peak_bytes={run_peak}"
    ));
    for (key, peak) in [("load_peak_bytes", load), ("run_peak_bytes", run_peak)] {
        assert!(
            peak <= STACK_LIMIT,
            "{what}: {key}={peak} exceeds {STACK_LIMIT} B: {line}"
        );
    }
    (model, load, run_peak)
}

/// Multiply-accumulates of one inference of `model`, op by op, as the host's exporter counts
/// them (`footprint::op_cost`).
pub fn op_macs(model: &Model<'_>) -> Vec<u64> {
    model
        .nodes()
        .map(|n| op_cost(model, &n.expect("node decodes")).1)
        .collect()
}

/// The firmware's log of a successful run of `model` on `samples` samples is consistent with the
/// host: the `model` line (name, ops, tensors, file and arena bytes, embedding tensor), one `op=`
/// line per op with its kind and the MACs the host counts, one instruction count per sample,
/// one `op_total=` line per op (kind, samples, MACs × samples), and the per-sample counts and
/// the per-op totals both add up to the `done` line's total, whose MACs are the host's.
pub fn check_log(
    what: &str,
    run: &DeviceRun,
    model: &Model<'_>,
    file_bytes: usize,
    samples: usize,
) {
    let head = run
        .lines_with("model name=")
        .next()
        .unwrap_or_else(|| panic!("{what}: no model line\n{}", run.explain()));
    let info = model.info();
    assert_eq!(field(head, "name"), Some(info.name), "{what}: {head}");
    assert_eq!(
        field_u64(head, "ops"),
        Some(model.op_count() as u64),
        "{what}: {head}"
    );
    assert_eq!(
        field_u64(head, "tensors"),
        Some(model.tensor_count() as u64),
        "{what}: {head}"
    );
    assert_eq!(
        field_u64(head, "file_bytes"),
        Some(file_bytes as u64),
        "{what}: {head}"
    );
    assert_eq!(
        field_u64(head, "arena_bytes"),
        Some(model.arena_size() as u64),
        "{what}: {head}"
    );
    assert_eq!(
        field_u64(head, "classes"),
        Some(model.num_classes() as u64),
        "{what}: {head}"
    );
    assert_eq!(
        field_u64(head, "embedding_tensor"),
        Some(u64::from(info.embedding)),
        "{what}: {head}"
    );

    let kinds: Vec<&str> = model
        .nodes()
        .map(|n| n.expect("node decodes").op.kind().name())
        .collect();
    let macs = op_macs(model);
    let op_lines: Vec<&str> = run
        .log
        .lines()
        .filter(|l| field(l, "op").is_some())
        .collect();
    assert_eq!(
        op_lines.len(),
        model.op_count(),
        "{what}\n{}",
        run.explain()
    );
    for (i, line) in op_lines.iter().enumerate() {
        assert_eq!(field_u64(line, "op"), Some(i as u64), "{what}: {line}");
        assert_eq!(field(line, "kind"), Some(kinds[i]), "{what}: {line}");
        assert_eq!(field_u64(line, "macs"), Some(macs[i]), "{what}: {line}");
    }

    let per_sample: Vec<u64> = run
        .log
        .lines()
        .filter(|l| field(l, "sample").is_some())
        .map(|l| field_u64(l, "instructions").expect("instructions="))
        .collect();
    assert_eq!(per_sample.len(), samples, "{what}\n{}", run.explain());
    assert!(
        per_sample.iter().all(|&n| n > 0),
        "{what}: zero instruction count"
    );
    let n = samples as u64;
    let totals: Vec<&str> = run.lines_with("op_total=").collect();
    assert_eq!(totals.len(), model.op_count(), "{what}\n{}", run.explain());
    let mut per_op = 0;
    for (i, line) in totals.iter().enumerate() {
        assert_eq!(
            field_u64(line, "op_total"),
            Some(i as u64),
            "{what}: {line}"
        );
        assert_eq!(field(line, "kind"), Some(kinds[i]), "{what}: {line}");
        assert_eq!(field_u64(line, "samples"), Some(n), "{what}: {line}");
        assert_eq!(field_u64(line, "macs"), Some(macs[i] * n), "{what}: {line}");
        per_op += field_u64(line, "instructions").expect("instructions=");
    }
    let done = run
        .lines_with("done samples=")
        .next()
        .unwrap_or_else(|| panic!("{what}: no done line\n{}", run.explain()));
    assert_eq!(field_u64(done, "samples"), Some(n), "{what}: {done}");
    let total = field_u64(done, "instructions").expect("instructions=");
    assert_eq!(per_sample.iter().sum::<u64>(), total, "{what}: {done}");
    assert_eq!(per_op, total, "{what}: {done}");
    assert_eq!(
        field_u64(done, "macs"),
        Some(macs.iter().sum::<u64>() * n),
        "{what}: {done}"
    );
}
