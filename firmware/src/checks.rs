//! The firmware's decisions that need no hardware, tested on the host: where the model file ends
//! in its partition, whether a model fits the static buffers, the dump header a model produces,
//! and how many MACs an op does.

use denoiserep_core::format::graph::{Node, Op};
use denoiserep_core::{DType, DumpHeader, DumpValues, Error, Model, TensorInfo};

use crate::board::{ARENA_BYTES, MAX_INPUT_VALUES, MAX_RECORD_BYTES, TENSOR_CAPACITY};
#[cfg(test)]
use crate::failure::ExitCode;
use crate::failure::{Buffer, Failure};

/// The firmware's model type: room for [`TENSOR_CAPACITY`] tensors.
pub type FirmwareModel<'a> = Model<'a, TENSOR_CAPACITY>;

/// The model file at the start of `partition`: exactly the bytes its header announces.
/// An erased or empty partition, or a broken header, is the core's error
/// ([`Failure::ModelRejected`]); a file longer than the partition is [`Failure::ModelTooLarge`].
pub fn model_file(partition: &[u8]) -> Result<&[u8], Failure> {
    let file_len = denoiserep_core::file_len(partition).map_err(Failure::ModelRejected)?;
    partition.get(..file_len).ok_or(Failure::ModelTooLarge {
        file_len,
        partition_len: partition.len(),
    })
}

/// Multiply-accumulates of one evaluation of `node`, whose first input is `input` and whose
/// output is `output`: `rows · in · out` for Linear (= output elements · input's last dim),
/// `B · M · N · K` for BatchMatMul (`a` is `[B, M, K]` with or without `adj_y`: again output
/// elements · input's last dim), `output elements · C_in · kh · kw` for Conv2d,
/// `output elements · kh · kw` for DepthwiseConv2d, 0 for every other kind. Padded taps count
/// (as in CMSIS-NN's and TFLite-Micro's MAC counts).
pub fn macs(node: &Node<'_>, input: &TensorInfo, output: &TensorInfo) -> u64 {
    let out = output.shape.numel().unwrap_or(0) as u64;
    let window = |kernel: [u16; 2]| u64::from(kernel[0]) * u64::from(kernel[1]);
    match &node.op {
        Op::Linear(_) | Op::BatchMatMul(_) => {
            let rank = input.shape.rank();
            let in_features = input.shape.dim(rank.wrapping_sub(1)).unwrap_or(0) as u64;
            out * in_features
        }
        Op::Conv2d(c) => {
            let in_channels = input.shape.dim(0).unwrap_or(0) as u64;
            out * in_channels * window(c.window.kernel)
        }
        Op::DepthwiseConv2d(d) => out * window(d.window.kernel),
        _ => 0,
    }
}

/// [`macs`] of `node` in `model` (0 if a tensor id is unknown, which a loaded model never has).
pub fn node_macs<const T: usize>(model: &Model<'_, T>, node: &Node<'_>) -> u64 {
    let input = node.inputs.ids().first().and_then(|&id| model.tensor(id));
    match (input, model.tensor(node.output)) {
        (Some(input), Some(output)) => macs(node, &input, &output),
        _ => 0,
    }
}

/// The dump header for this model's outputs (0 samples; the caller sets the count). The same
/// values `DumpHeader::for_outputs` derives from a run's outputs: both read the logits and
/// embedding tensors the model info names.
pub fn dump_header<const T: usize>(model: &Model<'_, T>) -> Result<DumpHeader, Failure> {
    let reject = Failure::ModelRejected(Error::ModelBadOutputs);
    let info = model.info();
    let logits = model.tensor(info.logits).ok_or(reject)?;
    let embedding = model.tensor(info.embedding).ok_or(reject)?;
    let values = match (logits.dtype, embedding.dtype) {
        (DType::I8(l), DType::I8(e)) => DumpValues::I8 {
            logits: l,
            embedding: e,
        },
        (DType::F32, DType::F32) => DumpValues::F32,
        // A dump has one element type; the core's `DumpHeader::for_outputs` refuses mixed
        // outputs with the same error.
        _ => return Err(Failure::ModelRejected(Error::SamplesBadHeader)),
    };
    Ok(DumpHeader {
        n_samples: 0,
        logits_len: len32(&logits)?,
        embedding_len: len32(&embedding)?,
        values,
    })
}

fn len32(info: &TensorInfo) -> Result<u32, Failure> {
    info.shape
        .numel()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(Failure::ModelRejected(Error::ModelSizeOverflow))
}

/// Bytes of the per-op counts at the end of the static arena: one little-endian u64
/// (instructions or cycles summed over the samples) per op.
pub const OP_COUNT_BYTES: usize = 8;

/// What a run needs of the static arena: the model's [`Model::arena_size`] plus its per-op
/// counts ([`OP_COUNT_BYTES`] per op, kept in the arena's tail rather than in a static array, so
/// that they cost no RAM beyond the arena: docs/firmware.md, "RAM").
pub fn arena_need<const T: usize>(model: &Model<'_, T>) -> usize {
    model
        .arena_size()
        .saturating_add(model.op_count().saturating_mul(OP_COUNT_BYTES))
}

/// Refuses (instead of crashing on) a model larger than this build's static buffers.
pub fn check_fits<const T: usize>(
    model: &Model<'_, T>,
    header: &DumpHeader,
) -> Result<(), Failure> {
    let checks = [
        (Buffer::Arena, arena_need(model), ARENA_BYTES),
        (Buffer::Input, model.input_len(), MAX_INPUT_VALUES),
        (Buffer::Record, header.record_len(), MAX_RECORD_BYTES),
    ];
    for (buffer, need, have) in checks {
        if need > have {
            return Err(Failure::ModelDoesNotFit { buffer, need, have });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::test_models::{attention_products, conv_gap, linear_rows, mlp, residual_dw, Rng};
    use denoiserep_core::samples::encode_record;
    use denoiserep_core::InputHeader;

    use super::*;

    fn model(file: &[u8]) -> FirmwareModel<'_> {
        FirmwareModel::from_bytes_with_capacity(file).unwrap()
    }

    #[test]
    fn model_file_is_sliced_by_its_header() {
        let file = mlp(1, 8).encode().unwrap();
        let mut partition = vec![0xFFu8; file.len() + 4096]; // erased flash after the file
        partition[..file.len()].copy_from_slice(&file);
        assert_eq!(model_file(&partition), Ok(&file[..]));
        assert_eq!(
            model_file(&[0u8; 64]),
            Err(Failure::ModelRejected(Error::DecodeBadMagic))
        );
        assert_eq!(
            model_file(&[0xFFu8; 64]),
            Err(Failure::ModelRejected(Error::DecodeBadMagic))
        );
        assert_eq!(
            model_file(&partition[..file.len() - 1]),
            Err(Failure::ModelTooLarge {
                file_len: file.len(),
                partition_len: file.len() - 1,
            })
        );
    }

    #[test]
    fn check_fits_names_the_buffer_that_is_too_small() {
        let ok = residual_dw(2, 12, false).encode().unwrap();
        let m = model(&ok);
        assert_eq!(check_fits(&m, &dump_header(&m).unwrap()), Ok(()));

        // 20 channels of 128×128 f32 = 1.25 MiB of activations.
        let big_arena = conv_gap([1, 128, 128], 20).encode().unwrap();
        let m = model(&big_arena);
        assert!(m.arena_size() > ARENA_BYTES);
        assert_eq!(
            check_fits(&m, &dump_header(&m).unwrap()),
            Err(Failure::ModelDoesNotFit {
                buffer: Buffer::Arena,
                need: m.arena_size() + OP_COUNT_BYTES * m.op_count(),
                have: ARENA_BYTES,
            })
        );

        let side = (MAX_INPUT_VALUES as f64).sqrt() as u16 + 1;
        let big_input = conv_gap([1, usize::from(side), usize::from(side)], 1)
            .encode()
            .unwrap();
        let m = model(&big_input);
        assert_eq!(
            check_fits(&m, &dump_header(&m).unwrap()),
            Err(Failure::ModelDoesNotFit {
                buffer: Buffer::Input,
                need: usize::from(side) * usize::from(side),
                have: MAX_INPUT_VALUES,
            })
        );

        // Logits = embedding = n f32 values: a record of 8·n bytes.
        let n = MAX_RECORD_BYTES / 8 + 1;
        let big_record = conv_gap([1, 1, 1], n).encode().unwrap();
        let m = model(&big_record);
        assert_eq!(
            check_fits(&m, &dump_header(&m).unwrap()),
            Err(Failure::ModelDoesNotFit {
                buffer: Buffer::Record,
                need: 8 * n,
                have: MAX_RECORD_BYTES,
            })
        );
    }

    #[test]
    fn dump_header_equals_the_cores_header_from_real_outputs() {
        let mut rng = Rng(4);
        for desc in [
            residual_dw(3, 12, false),
            residual_dw(3, 12, true),
            mlp(5, 8),
            linear_rows(3, 5, 2),
        ] {
            let file = desc.encode().unwrap();
            let m = model(&file);
            let mut arena = vec![0u8; m.arena_size()];
            let input = rng.vec(m.input_len(), 0.0, 1.0);
            let outputs = m.run(&input, &mut arena).unwrap();
            let from_outputs = DumpHeader::for_outputs(&outputs, 7).unwrap();
            let from_model = DumpHeader {
                n_samples: 7,
                ..dump_header(&m).unwrap()
            };
            assert_eq!(from_model.encode(), from_outputs.encode(), "{}", desc.name);
        }
    }

    #[test]
    fn macs_per_op_kind() {
        // conv 1→4 3×3 on 12×12 (576 outputs · 1 · 9), depthwise 3×3 (576 · 9), add, max pool,
        // mean, linear 4→10.
        let expected = [576 * 9, 576 * 9, 0, 0, 0, 40];
        for int8 in [false, true] {
            let file = residual_dw(6, 12, int8).encode().unwrap();
            let m = model(&file);
            let macs: Vec<u64> = m.nodes().map(|n| node_macs(&m, &n.unwrap())).collect();
            assert_eq!(macs, expected, "int8={int8}");
        }
        // Linear on 3 rows: rows · in · out; the ReLU after it: 0.
        let file = linear_rows(3, 5, 2).encode().unwrap();
        let m = model(&file);
        let macs: Vec<u64> = m.nodes().map(|n| node_macs(&m, &n.unwrap())).collect();
        assert_eq!(macs, [3 * 5 * 2, 0]);
        // The MLP: reshape 0, 784·16, 16·10 (a rank-1 Linear is one row).
        let file = mlp(1, 28).encode().unwrap();
        let m = model(&file);
        let macs: Vec<u64> = m.nodes().map(|n| node_macs(&m, &n.unwrap())).collect();
        assert_eq!(macs, [0, 784 * 16, 160]);
        // Attention on 2 heads × 5 tokens × 4: q·kᵀ 2·5·5·4, then p·v 2·5·4·5.
        let file = attention_products(2, 5, 4).encode().unwrap();
        let m = model(&file);
        let macs: Vec<u64> = m.nodes().map(|n| node_macs(&m, &n.unwrap())).collect();
        assert_eq!(macs, [2 * 5 * 5 * 4, 2 * 5 * 4 * 5]);
    }

    #[test]
    fn a_model_with_more_tensors_than_the_capacity_is_rejected() {
        // A chain of ReLUs: input + TENSOR_CAPACITY outputs.
        let mut desc = linear_rows(1, 4, 4);
        desc.nodes.truncate(1);
        desc.tensors.truncate(2);
        for t in 2..=TENSOR_CAPACITY {
            desc.tensors.push((vec![1, 4], DType::F32));
            desc.nodes.push(crate::test_models::OwnedNode {
                op: crate::test_models::OwnedOp::Activation(denoiserep_core::Activation::Relu),
                inputs: vec![t as u16 - 1],
                output: t as u16,
            });
        }
        desc.logits = TENSOR_CAPACITY as u16;
        let file = desc.encode().unwrap();
        assert_eq!(desc.tensors.len(), TENSOR_CAPACITY + 1);
        assert_eq!(
            FirmwareModel::from_bytes_with_capacity(&file).err(),
            Some(Error::DecodeTooManyTensors)
        );
        desc.tensors.pop();
        desc.nodes.pop();
        desc.logits -= 1;
        let file = desc.encode().unwrap();
        let m = model(&file);
        assert_eq!(m.op_count(), TENSOR_CAPACITY - 1);
    }

    /// Writes models, input files and the host core's dumps for trying the firmware in QEMU
    /// (`docs/firmware.md`, "Try it"), when `FIRMWARE_DEMO_DIR` names a directory.
    #[test]
    fn write_demo_files() {
        let Some(dir) = std::env::var_os("FIRMWARE_DEMO_DIR") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let models = [
            ("residual_dw_f32", residual_dw(11, 12, false)),
            ("residual_dw_int8", residual_dw(11, 12, true)),
            ("mlp_f32", mlp(12, 28)),
        ];
        for (name, desc) in models {
            let file = desc.encode().unwrap();
            let m = model(&file);
            let n = 4u32;
            let mut rng = Rng(100);
            let header = InputHeader {
                n_samples: n,
                sample_len: m.input_len() as u32,
            };
            let mut inputs = header.encode().to_vec();
            let mut dump = Vec::new();
            let mut arena = vec![0u8; m.arena_size()];
            for i in 0..n {
                let x = rng.vec(m.input_len(), 0.0, 1.0);
                inputs.extend(x.iter().flat_map(|v| v.to_le_bytes()));
                let out = m.run(&x, &mut arena).unwrap();
                if i == 0 {
                    dump.extend(DumpHeader::for_outputs(&out, n).unwrap().encode());
                }
                let mut rec = vec![0u8; dump_header(&m).unwrap().record_len()];
                let len = encode_record(&out, &mut rec).unwrap();
                dump.extend(&rec[..len]);
            }
            std::fs::write(dir.join(format!("{name}.dnrp")), &file).unwrap();
            std::fs::write(dir.join(format!("{name}.dnri")), &inputs).unwrap();
            std::fs::write(dir.join(format!("{name}.host.dnrd")), &dump).unwrap();
        }
    }

    #[test]
    fn exit_codes_are_distinct_and_as_documented() {
        let classes = [
            (Failure::ModelRejected(Error::DecodeBadCrc), 1),
            (
                Failure::ModelTooLarge {
                    file_len: 2,
                    partition_len: 1,
                },
                2,
            ),
            (
                Failure::ModelDoesNotFit {
                    buffer: Buffer::Arena,
                    need: 2,
                    have: 1,
                },
                3,
            ),
            (Failure::InputIo { errno: 2 }, 4),
            (Failure::InputBadHeader(Error::SamplesBadMagic), 5),
            (Failure::InputSampleLength { file: 1, model: 2 }, 5),
            (
                Failure::InputFileLength {
                    expected: 1,
                    actual: 2,
                },
                5,
            ),
            (Failure::OutputIo { errno: 28 }, 6),
            (
                Failure::RunFailed {
                    sample: 0,
                    error: Error::ArenaTooSmall,
                },
                7,
            ),
        ];
        for (failure, code) in classes {
            assert_eq!(failure.exit_code() as u8, code, "{failure:?}");
        }
        assert_eq!(ExitCode::Ok as u8, 0);
        assert_eq!(ExitCode::CalibrationMismatch as u8, 8);
        assert_eq!(ExitCode::Panic as u8, 101);
        assert_eq!(ExitCode::HardFault as u8, 102);
    }
}
