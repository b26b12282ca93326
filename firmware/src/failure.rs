//! What can go wrong in a run ([`Failure`]) and the exit code of each class ([`ExitCode`]).
//!
//! | code | [`ExitCode`] | meaning |
//! |---:|---|---|
//! | 0 | `Ok` | every sample ran, the dump is complete |
//! | 1 | `ModelRejected` | the core rejected the model in the partition (no model, corrupt, invalid) |
//! | 2 | `ModelTooLarge` | the model header announces more bytes than the partition holds |
//! | 3 | `ModelDoesNotFit` | the model's arena, input or output record exceeds this build's buffers |
//! | 4 | `InputIo` | `input.dnri` cannot be opened or read |
//! | 5 | `InputInvalid` | `input.dnri` is not a valid input file for this model |
//! | 6 | `OutputIo` | `output.dnrd` cannot be created or written |
//! | 7 | `RunFailed` | the core returned an error while running a sample |
//! | 8 | `CalibrationMismatch` | (`icount-calibrate` only) SysTick does not count as documented |
//! | 101 | `Panic` | a Rust panic (a bug in the firmware) |
//! | 102 | `HardFault` | a CPU fault (a bug in the firmware) |

use denoiserep_core::Error;

/// The process exit code QEMU returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
#[repr(u8)]
pub enum ExitCode {
    /// Every sample ran, the dump is complete.
    Ok = 0,
    /// The core rejected the model in the partition.
    ModelRejected = 1,
    /// The model header announces more bytes than the partition holds.
    ModelTooLarge = 2,
    /// The model's arena, input or output record exceeds this build's buffers.
    ModelDoesNotFit = 3,
    /// The input file cannot be opened or read.
    InputIo = 4,
    /// The input file is not a valid input file for this model.
    InputInvalid = 5,
    /// The dump file cannot be created or written.
    OutputIo = 6,
    /// The core returned an error while running a sample.
    RunFailed = 7,
    /// SysTick does not count as documented (`icount-calibrate`).
    CalibrationMismatch = 8,
    /// A Rust panic.
    Panic = 101,
    /// A CPU fault.
    HardFault = 102,
}

/// Which static buffer a model does not fit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub enum Buffer {
    /// The arena.
    Arena,
    /// The input sample buffer (f32 values).
    Input,
    /// The dump record buffer (bytes).
    Record,
}

/// What went wrong, with the detail the log line prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub enum Failure {
    /// The core's error for the model file.
    ModelRejected(Error),
    /// `file_len` bytes announced, `partition_len` available.
    ModelTooLarge {
        /// Length the model header announces.
        file_len: usize,
        /// Length of the partition.
        partition_len: usize,
    },
    /// `need` units of `buffer` needed, `have` available (bytes; f32 values for the input).
    ModelDoesNotFit {
        /// The buffer.
        buffer: Buffer,
        /// What the model needs.
        need: usize,
        /// What this build has.
        have: usize,
    },
    /// A semihosting error (host `errno`) on the input file.
    InputIo {
        /// Host errno, or −1 when the host gave none (e.g. the file ended early).
        errno: i32,
    },
    /// The input file's header is invalid.
    InputBadHeader(Error),
    /// The input samples do not have the model's input length.
    InputSampleLength {
        /// `sample_len` in the file.
        file: u32,
        /// C·H·W of the model.
        model: usize,
    },
    /// The input file's length is not what its header announces.
    InputFileLength {
        /// Header-implied length.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// A semihosting error (host `errno`) on the dump file.
    OutputIo {
        /// Host errno, or −1.
        errno: i32,
    },
    /// The core's error while running sample `sample`.
    RunFailed {
        /// Sample index.
        sample: u32,
        /// The core's error.
        error: Error,
    },
}

impl Failure {
    /// The exit code of this failure's class.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::ModelRejected(_) => ExitCode::ModelRejected,
            Failure::ModelTooLarge { .. } => ExitCode::ModelTooLarge,
            Failure::ModelDoesNotFit { .. } => ExitCode::ModelDoesNotFit,
            Failure::InputIo { .. } => ExitCode::InputIo,
            Failure::InputBadHeader(_)
            | Failure::InputSampleLength { .. }
            | Failure::InputFileLength { .. } => ExitCode::InputInvalid,
            Failure::OutputIo { .. } => ExitCode::OutputIo,
            Failure::RunFailed { .. } => ExitCode::RunFailed,
        }
    }
}
