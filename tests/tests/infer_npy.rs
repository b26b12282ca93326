//! `denoiserep infer --inputs X.npy --outputs Y.npy [--embeddings E.npy] [--dequantize]`: the
//! files it writes hold exactly what `denoiserep_core::Model::run` / `run_quantized` return, for
//! an f32 and an int8 model (the core's shared test models), with f32 and int8 inputs, over
//! several threads; bad inputs are refused naming the file and leave earlier outputs intact; the
//! CLI rules keep `--inputs` apart from the data-set options; and NumPy itself reads our files
//! and we read NumPy's (with the project's `.venv-tflm` python; skipped loudly without it).

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use clap::Parser;
use denoiserep_core::{Model, TensorData, TensorView};
use denoiserep_tests::{models, TempDir};
use denoiserep_trainer::cli::{clap_message, Cli, Command};
use denoiserep_trainer::infer_npy::{infer_npy, NpyReport};
use denoiserep_trainer::npy::{self, NpyArray, NpyData};

/// Samples in the batch; with `--threads 3` the ranges are 3, 3, 1 samples.
const N: usize = 7;

/// The small CNN (`[1, 12, 12]` → 10 logits, 8-value embedding) as f32 and int8 model files.
fn model_files(dir: &TempDir) -> (PathBuf, PathBuf, Vec<f32>) {
    let f32_model = models::small_cnn(11);
    let mut rng = models::Rng(5);
    let calib: Vec<Vec<f32>> = (0..16).map(|_| rng.vec(144, 0.0, 1.0)).collect();
    let int8_model = models::quantize_model(&f32_model, &calib);
    let (f, q) = (dir.path("f32.dnrp"), dir.path("int8.dnrp"));
    std::fs::write(&f, f32_model.encode().unwrap()).unwrap();
    std::fs::write(&q, int8_model.encode().unwrap()).unwrap();
    (f, q, rng.vec(N * 144, -0.2, 1.2))
}

/// `denoiserep infer ARGS` through the binary's own argument parsing; the error as main prints it.
fn infer(args: &[&str]) -> Result<NpyReport, String> {
    let argv = ["denoiserep", "infer", "--threads", "3"]
        .iter()
        .chain(args)
        .copied();
    let cli = Cli::try_parse_from(argv).map_err(|e| clap_message(&e))?;
    let Command::Infer(a) = cli.command else {
        unreachable!("an infer command")
    };
    let req = a
        .npy_request()
        .map_err(|e| format!("{e:#}"))?
        .expect("--inputs given");
    infer_npy(&req).map_err(|e| format!("{e:#}"))
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn read(path: &Path) -> NpyArray {
    npy::decode(&std::fs::read(path).unwrap()).unwrap()
}

fn save(path: &Path, shape: &[usize], data: NpyData) {
    let a = NpyArray {
        shape: shape.to_vec(),
        data,
    };
    std::fs::write(path, npy::encode(&a).unwrap()).unwrap();
}

/// What the core returns for one output: raw int8 values, or real values as bits.
#[derive(Debug, Clone, PartialEq)]
enum Want {
    I8(Vec<i8>),
    Bits(Vec<u32>),
}

fn want(t: &TensorView<'_>, dequantize: bool) -> Want {
    match t.data {
        TensorData::I8 { values, .. } if !dequantize => Want::I8(values.to_vec()),
        _ => {
            let mut v = vec![0f32; t.len()];
            t.dequantize_into(&mut v).unwrap();
            Want::Bits(v.iter().map(|x| x.to_bits()).collect())
        }
    }
}

fn got(a: &NpyArray) -> Want {
    match &a.data {
        NpyData::I8(v) => Want::I8(v.clone()),
        NpyData::F32(v) => Want::Bits(v.iter().map(|x| x.to_bits()).collect()),
    }
}

/// The core's outputs of every sample (`x` f32 raw or int8 quantized), concatenated.
fn expected(model: &Path, x: &NpyData, dequantize: bool) -> (Want, Want) {
    let bytes = std::fs::read(model).unwrap();
    let m = Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; m.arena_size()];
    let (mut logits, mut emb) = (Vec::new(), Vec::new());
    for i in 0..N {
        let o = match x {
            NpyData::F32(v) => m.run(&v[i * 144..(i + 1) * 144], &mut arena),
            NpyData::I8(q) => m.run_quantized(&q[i * 144..(i + 1) * 144], &mut arena),
        }
        .unwrap();
        logits.push(want(&o.logits, dequantize));
        emb.push(want(&o.embedding, dequantize));
    }
    let cat = |v: Vec<Want>| match &v[0] {
        Want::I8(_) => Want::I8(
            v.into_iter()
                .flat_map(|w| match w {
                    Want::I8(x) => x,
                    Want::Bits(_) => unreachable!(),
                })
                .collect(),
        ),
        Want::Bits(_) => Want::Bits(
            v.into_iter()
                .flat_map(|w| match w {
                    Want::Bits(x) => x,
                    Want::I8(_) => unreachable!(),
                })
                .collect(),
        ),
    };
    (cat(logits), cat(emb))
}

#[test]
fn npy_outputs_equal_the_core_bit_for_bit() {
    let dir = TempDir::new("infer-npy-equal");
    let (f32_model, int8_model, raw) = model_files(&dir);
    let x = dir.path("x.npy");
    save(&x, &[N, 1, 12, 12], NpyData::F32(raw.clone()));
    let (y, e) = (dir.path("y.npy"), dir.path("e.npy"));
    let base = |m: &Path| {
        vec![
            "--model".to_string(),
            p(m).into(),
            "--inputs".into(),
            p(&x).into(),
            "--outputs".into(),
            p(&y).into(),
            "--embeddings".into(),
            p(&e).into(),
        ]
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        infer(&a).unwrap()
    };

    // f32 model, f32 inputs: f32 outputs, [N, 10] and [N, 8].
    let r = run(base(&f32_model));
    assert_eq!(
        (r.samples, r.logits_dtype, r.input_dtype),
        (N, "<f4", "<f4")
    );
    let (ly, ey) = (read(&y), read(&e));
    assert_eq!(
        (ly.shape.clone(), ey.shape.clone()),
        (vec![N, 10], vec![N, 8])
    );
    let (wl, we) = expected(&f32_model, &NpyData::F32(raw.clone()), false);
    assert_eq!((got(&ly), got(&ey)), (wl, we));

    // int8 model, f32 inputs: the raw int8 output tensors…
    let r = run(base(&int8_model));
    assert_eq!((r.logits_dtype, r.embedding_dtype), ("|i1", "|i1"));
    let (ly, ey) = (read(&y), read(&e));
    assert!(matches!(ly.data, NpyData::I8(_)), "{:?}", ly.data);
    let (wl, we) = expected(&int8_model, &NpyData::F32(raw.clone()), false);
    assert_eq!((got(&ly), got(&ey)), (wl, we));
    // …and with --dequantize their real values.
    let mut args = base(&int8_model);
    args.push("--dequantize".into());
    let r = run(args);
    assert_eq!(r.logits_dtype, "<f4");
    let (wl, we) = expected(&int8_model, &NpyData::F32(raw.clone()), true);
    assert_eq!((got(&read(&y)), got(&read(&e))), (wl, we));

    // int8 model, int8 inputs: fed as the quantized input tensor (run_quantized).
    let q: Vec<i8> = (0..N * 144)
        .map(|i| ((i * 37 + 11) % 256) as u8 as i8)
        .collect();
    save(&x, &[N, 1, 12, 12], NpyData::I8(q.clone()));
    let r = run(base(&int8_model));
    assert_eq!(r.input_dtype, "|i1");
    let (wl, we) = expected(&int8_model, &NpyData::I8(q), false);
    assert_eq!((got(&read(&y)), got(&read(&e))), (wl, we));
}

#[test]
fn bad_inputs_are_refused_naming_the_file_and_keep_earlier_outputs() {
    let dir = TempDir::new("infer-npy-errors");
    let (f32_model, _, raw) = model_files(&dir);
    let (x, y) = (dir.path("x.npy"), dir.path("y.npy"));
    std::fs::write(&y, b"earlier results").unwrap();
    let run = |x: &Path| {
        infer(&[
            "--model",
            p(&f32_model),
            "--inputs",
            p(x),
            "--outputs",
            p(&y),
        ])
        .unwrap_err()
    };
    save(&x, &[N, 144], NpyData::F32(raw.clone()));
    let e = run(&x);
    assert!(
        e.contains(&format!("--inputs {}: shape (7, 144)", x.display()))
            && e.contains("expected (N, 1, 12, 12)"),
        "{e}"
    );
    save(&x, &[0, 1, 12, 12], NpyData::F32(vec![]));
    assert!(run(&x).contains("holds no sample"), "{}", run(&x));
    save(&x, &[N, 1, 12, 12], NpyData::I8(vec![0; N * 144]));
    let e = run(&x);
    assert!(
        e.contains("int8 ('|i1') inputs") && e.contains("is f32"),
        "{e}"
    );
    let mut truncated = npy::encode(&NpyArray {
        shape: vec![N, 1, 12, 12],
        data: NpyData::F32(raw),
    })
    .unwrap();
    truncated.truncate(truncated.len() - 3);
    std::fs::write(&x, truncated).unwrap();
    let e = run(&x);
    assert!(
        e.contains(&format!("--inputs {}: truncated", x.display())),
        "{e}"
    );
    assert_eq!(std::fs::read(&y).unwrap(), b"earlier results");
}

#[test]
fn cli_rules_keep_inputs_apart_from_data_set_options() {
    let dir = TempDir::new("infer-npy-cli");
    let (f32_model, _, raw) = model_files(&dir);
    let x = dir.path("x.npy");
    save(&x, &[N, 1, 12, 12], NpyData::F32(raw));
    let parse = |extra: &[&str]| {
        let argv = ["denoiserep", "infer", "--model", p(&f32_model)]
            .into_iter()
            .chain(extra.iter().copied());
        Cli::try_parse_from(argv)
            .map(|_| ())
            .map_err(|e| clap_message(&e))
    };
    let y = dir.path("y.npy");
    let ok = ["--inputs", p(&x), "--outputs", p(&y)];
    assert_eq!(parse(&ok), Ok(()));
    for extra in [
        &["--data", "synthetic"][..],
        &["--limit", "3"],
        &["--json", "s.json"],
        &["--dump", "d.bin"],
        &["--data-dir", "data"],
    ] {
        let e = parse(&[&ok[..], extra].concat()).unwrap_err();
        assert!(
            e.contains("cannot be used with") && e.contains(extra[0]) && e.contains("--inputs"),
            "{extra:?}: {e}"
        );
    }
    let e = parse(&["--inputs", p(&x)]).unwrap_err();
    assert!(e.contains("--outputs"), "{e}");
    let e = parse(&["--outputs", p(&y)]).unwrap_err();
    assert!(e.contains("--inputs"), "{e}");
    let e = parse(&[]).unwrap_err();
    assert!(e.contains("--data"), "{e}");
    let e = parse(&["--data", "synthetic", "--dequantize"]).unwrap_err();
    assert!(e.contains("--inputs"), "{e}");
}

/// The project's python with NumPy, or `None` after a loud SKIPPED banner (a panic under CI or
/// `DENOISEREP_REQUIRE_DEVICE=1`, as the TFLite-Micro tests).
fn numpy_or_skip(test: &str) -> Option<PathBuf> {
    let python = denoiserep_tests::repo_root().join(".venv-tflm/bin/python");
    let ok = Process::new(&python)
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if denoiserep_tests::device::device_required() {
        panic!("{test}: .venv-tflm/bin/python with numpy is missing under CI: run bash scripts/setup.sh tflm");
    }
    denoiserep_tests::device::ledger_skip(test);
    eprintln!(
        "\n######################################################################\n\
         # SKIPPED {test}: .venv-tflm/bin/python with numpy not found,\n\
         # the NumPy cross-check was NOT run. Install it: bash scripts/setup.sh tflm\n\
         ######################################################################\n"
    );
    None
}

#[test]
fn numpy_reads_our_files_and_we_read_numpys() {
    let Some(python) = numpy_or_skip("infer_npy::numpy_reads_our_files_and_we_read_numpys") else {
        return;
    };
    let dir = TempDir::new("infer-npy-numpy");
    let (_, int8_model, _) = model_files(&dir);
    let (x, y, e) = (dir.path("x.npy"), dir.path("y.npy"), dir.path("e.npy"));
    // NumPy writes the inputs (float32, values k/1000), we run them, NumPy checks our outputs.
    let script = format!(
        "import numpy as np\n\
         np.save({x:?}, (np.arange({n} * 144, dtype=np.float32) % 1000 / 1000).reshape({n}, 1, 12, 12))\n",
        x = p(&x),
        n = N
    );
    let out = Process::new(&python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let args = [
        "--model",
        p(&int8_model),
        "--inputs",
        p(&x),
        "--outputs",
        p(&y),
        "--embeddings",
        p(&e),
        "--dequantize",
    ];
    infer(&args).unwrap();
    let raw: Vec<f32> = (0..N * 144).map(|i| (i % 1000) as f32 / 1000.0).collect();
    let (wl, _) = expected(&int8_model, &NpyData::F32(raw), true);
    let Want::Bits(bits) = wl else { unreachable!() };
    let script = format!(
        "import numpy as np\n\
         y = np.load({y:?}); e = np.load({e:?})\n\
         assert y.dtype == np.float32 and y.shape == ({n}, 10), (y.dtype, y.shape)\n\
         assert e.shape == ({n}, 8), e.shape\n\
         print(' '.join(str(v) for v in y.view(np.uint32).ravel()))\n",
        y = p(&y),
        e = p(&e),
        n = N
    );
    let out = Process::new(&python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let numpy_bits: Vec<u32> = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(numpy_bits, bits, "NumPy reads our logits bit for bit");
}
