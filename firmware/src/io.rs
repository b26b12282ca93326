//! Host files over semihosting, in the core's layouts (`docs/dump-format.md`): samples come from
//! [`INPUT_PATH`], outputs go to [`OUTPUT_PATH`], both relative to the debugger's (QEMU's) working
//! directory. Encoding and decoding are the core's ([`denoiserep_core::samples`]); this module only
//! moves bytes.

use core::ffi::CStr;

use denoiserep_core::samples::{decode_sample, encode_record};
use denoiserep_core::{DumpHeader, InputHeader, Outputs};
use semihosting::fs::File;
use semihosting::io::{Read, Write};

use crate::failure::Failure;

/// The input file (`DNRI` layout), read sample by sample.
pub const INPUT_PATH: &CStr = c"input.dnri";
/// The dump file (`DNRD` layout), written record by record.
pub const OUTPUT_PATH: &CStr = c"output.dnrd";

fn errno(e: &semihosting::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

/// An open input file whose header has been checked against the model.
pub struct InputFile {
    file: File,
    header: InputHeader,
}

impl InputFile {
    /// Opens [`INPUT_PATH`] and checks its header, that its samples have `input_len` values, and
    /// that the file holds exactly the samples the header announces.
    pub fn open(input_len: usize) -> Result<Self, Failure> {
        let io = |e: semihosting::io::Error| Failure::InputIo { errno: errno(&e) };
        let mut file = File::open(INPUT_PATH).map_err(io)?;
        let mut bytes = [0u8; InputHeader::LEN];
        file.read_exact(&mut bytes).map_err(io)?;
        let header = InputHeader::decode(&bytes).map_err(Failure::InputBadHeader)?;
        if header.sample_len as usize != input_len {
            return Err(Failure::InputSampleLength {
                file: header.sample_len,
                model: input_len,
            });
        }
        let actual = file.metadata().map_err(io)?.len();
        let expected = header.file_len().map_or(u64::MAX, |n| n as u64);
        if actual != expected {
            return Err(Failure::InputFileLength { expected, actual });
        }
        Ok(Self { file, header })
    }

    /// Number of samples in the file.
    pub fn n_samples(&self) -> u32 {
        self.header.n_samples
    }

    /// Reads the next sample into `out` (`sample_len` values), `chunk.len()` bytes per call.
    pub fn read_sample(&mut self, out: &mut [f32], chunk: &mut [u8]) -> Result<(), Failure> {
        let per_chunk = chunk.len() / 4;
        for values in out.chunks_mut(per_chunk) {
            let bytes = &mut chunk[..values.len() * 4];
            self.file
                .read_exact(bytes)
                .map_err(|e| Failure::InputIo { errno: errno(&e) })?;
            decode_sample(bytes, values).map_err(Failure::InputBadHeader)?;
        }
        Ok(())
    }
}

/// The dump file being written.
pub struct DumpFile {
    file: File,
}

impl DumpFile {
    /// Creates (truncates) [`OUTPUT_PATH`] and writes `header`.
    pub fn create(header: &DumpHeader) -> Result<Self, Failure> {
        let mut file = File::create(OUTPUT_PATH).map_err(output_io)?;
        file.write_all(&header.encode()).map_err(output_io)?;
        Ok(Self { file })
    }

    /// Appends one record (logits, then embedding), encoded by the core into `scratch`.
    pub fn write_record(
        &mut self,
        outputs: &Outputs<'_>,
        scratch: &mut [u8],
    ) -> Result<(), Failure> {
        let n = encode_record(outputs, scratch).map_err(|_| Failure::OutputIo { errno: -1 })?;
        self.file.write_all(&scratch[..n]).map_err(output_io)
    }
}

fn output_io(e: semihosting::io::Error) -> Failure {
    Failure::OutputIo { errno: errno(&e) }
}
