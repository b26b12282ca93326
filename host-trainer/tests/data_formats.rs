//! Loaders end to end on small real files (IDX, IDX.gz, CIFAR-10, CSV) written into a temp dir,
//! the errors they give on bad files, and property tests: decoders never panic on any bytes.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use denoiserep_trainer::data::{self, cifar10, csv, idx, LoadOptions, Split};
use proptest::prelude::*;

/// A fresh, empty temp folder per test.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("drep-data-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An IDX set of `h × w` images: image `i` has every pixel `i·17 mod 256`, label `i mod 3`.
fn write_idx_set(dir: &Path, n_train: u32, n_test: u32, h: u32, w: u32, gzip: bool) {
    let write = |name: &str, bytes: Vec<u8>| {
        if gzip {
            fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            fs::write(dir.join(name), bytes).unwrap();
        }
    };
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let px: Vec<u8> = (0..n)
            .flat_map(|i| std::iter::repeat_n((i * 17 % 256) as u8, (h * w) as usize))
            .collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
        write(
            &format!("{prefix}-images-idx3-ubyte"),
            idx_bytes(&[n, h, w], &px),
        );
        write(
            &format!("{prefix}-labels-idx1-ubyte"),
            idx_bytes(&[n], &labels),
        );
    }
}

fn load_err(spec: &str) -> String {
    format!(
        "{:#}",
        data::load(spec, &LoadOptions::default()).unwrap_err()
    )
}

#[test]
fn idx_plain_and_gz_load_any_image_size() {
    for gzip in [false, true] {
        let dir = temp_dir(&format!("idx-{gzip}"));
        write_idx_set(&dir, 12, 6, 5, 7, gzip);
        let d = data::load(&format!("idx:{}", dir.display()), &LoadOptions::default()).unwrap();
        assert_eq!(d.shape, [1, 5, 7]);
        assert_eq!(d.num_classes, 3);
        assert_eq!((d.train.len(), d.test.len()), (12, 6));
        assert_eq!(d.train.y[..4], [0, 1, 2, 0]);
        assert_eq!(d.train.sample(3)[34], 51.0 / 255.0);
        assert_eq!(d.test.sample(5)[0], 85.0 / 255.0);
        assert_eq!(d.value_range, Some((0.0, 1.0)));
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn idx_errors_name_file_and_position() {
    let dir = temp_dir("idx-bad");
    let spec = format!("idx:{}", dir.display());
    write_idx_set(&dir, 4, 2, 3, 3, false);
    // Truncated images: 4 images of 9 bytes, one byte missing.
    let f = dir.join("train-images-idx3-ubyte");
    let full = fs::read(&f).unwrap();
    fs::write(&f, &full[..full.len() - 1]).unwrap();
    let e = load_err(&spec);
    assert!(
        e.contains(&spec) && e.contains("train-images-idx3-ubyte") && e.contains("truncated"),
        "{e}"
    );
    assert!(e.contains("at byte offset 51"), "{e}");
    // Oversized.
    let mut long = full.clone();
    long.extend_from_slice(&[0, 0]);
    fs::write(&f, &long).unwrap();
    assert!(load_err(&spec).contains("2 unexpected trailing bytes from byte offset 52"));
    fs::write(&f, &full).unwrap();
    // Label/image count mismatch.
    fs::write(
        dir.join("t10k-labels-idx1-ubyte"),
        idx_bytes(&[3], &[0, 1, 2]),
    )
    .unwrap();
    let e = load_err(&spec);
    assert!(
        e.contains("count mismatch") && e.contains("t10k-labels-idx1-ubyte has 3 labels"),
        "{e}"
    );
    // Test label outside the train classes (train labels are 0..2).
    fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_bytes(&[2], &[0, 7])).unwrap();
    let e = load_err(&spec);
    assert!(e.contains("label 7 at byte offset 9"), "{e}");
    // Different test image size.
    fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_bytes(&[2], &[0, 1])).unwrap();
    fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        idx_bytes(&[2, 2, 2], &[0; 8]),
    )
    .unwrap();
    assert!(load_err(&spec).contains("test images are 2×2, train images 3×3"));
    // Missing file and missing folder.
    fs::remove_file(dir.join("t10k-images-idx3-ubyte")).unwrap();
    let e = load_err(&spec);
    assert!(
        e.contains("neither") && e.contains("t10k-images-idx3-ubyte.gz"),
        "{e}"
    );
    let e = load_err("idx:/nonexistent/denoiserep");
    assert!(
        e.contains("/nonexistent/denoiserep: no such directory"),
        "{e}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cifar10_subset_of_batches() {
    let dir = temp_dir("cifar");
    let record = |label: u8, v: u8| {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(v, cifar10::PIXELS));
        r
    };
    fs::write(
        dir.join("data_batch_2.bin"),
        [record(1, 10), record(9, 20)].concat(),
    )
    .unwrap();
    fs::write(dir.join("data_batch_4.bin"), record(3, 30)).unwrap();
    fs::write(dir.join("test_batch.bin"), record(5, 255)).unwrap();
    let spec = format!("cifar10:{}", dir.display());
    let d = data::load(&spec, &LoadOptions::default()).unwrap();
    assert_eq!(d.shape, [3, 32, 32]);
    assert_eq!(d.num_classes, 10);
    assert_eq!(d.train.y, vec![1, 9, 3]);
    assert_eq!(d.train.sample(2)[3071], 30.0 / 255.0);
    assert_eq!(d.test.y, vec![5]);
    // Truncated test batch: the error names the file and the offset of the short record.
    fs::write(dir.join("test_batch.bin"), &record(5, 0)[..100]).unwrap();
    let e = load_err(&spec);
    assert!(
        e.contains("test_batch.bin") && e.contains("byte offset 0 is truncated to 100 bytes"),
        "{e}"
    );
    fs::remove_file(dir.join("data_batch_2.bin")).unwrap();
    fs::remove_file(dir.join("data_batch_4.bin")).unwrap();
    assert!(load_err(&spec).contains("no train batch"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn csv_header_label_mapping_and_stratified_split() {
    let dir = temp_dir("csv");
    let f = dir.join("t.csv");
    let mut text = String::from("label,f1,f2\n");
    for i in 0..100 {
        let label = [-5, 10, 42][i % 3];
        text.push_str(&format!("{label},{},{}\n", i as f32 * 0.5, -(i as f32)));
    }
    fs::write(&f, &text).unwrap();
    let opts = LoadOptions {
        test_fraction: 0.25,
        seed: 11,
        ..LoadOptions::default()
    };
    let spec = format!("csv:{}", f.display());
    let d = data::load(&spec, &opts).unwrap();
    assert_eq!(d.shape, [2, 1, 1]);
    assert_eq!(d.num_classes, 3);
    assert_eq!(d.value_range, None);
    assert_eq!((d.train.len(), d.test.len()), (75, 25));
    // Row i has label index i % 3 and features (i/2, −i): check the mapping on every sample.
    for s in [&d.train, &d.test] {
        for k in 0..s.len() {
            let i = -s.sample(k)[1] as usize;
            assert_eq!(s.sample(k)[0], i as f32 * 0.5);
            assert_eq!(s.y[k] as usize, i % 3);
        }
    }
    for c in 0..3 {
        let t = d.test.y.iter().filter(|&&y| y == c).count();
        assert!((8..=9).contains(&t), "class {c}: {t}");
    }
    assert_eq!(d, data::load(&spec, &opts).unwrap());
    let other = data::load(
        &spec,
        &LoadOptions {
            seed: 12,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_ne!(d.test, other.test);
    // A bad cell: line and column.
    fs::write(&f, "y,a,b\n1,2,3\n0,4,abc\n").unwrap();
    let e = load_err(&spec);
    assert!(
        e.contains(&spec) && e.contains("t.csv") && e.contains("line 3, column 5 (field 3): 'abc'"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        data::load(
            &spec,
            &LoadOptions {
                test_fraction: 1.0,
                ..opts
            }
        )
        .unwrap_err()
    );
    assert!(e.contains("test fraction 1"), "{e}");
    assert!(load_err("csv:/nonexistent/x.csv").contains("reading /nonexistent/x.csv"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_and_malformed_specs() {
    assert!(load_err("mnist2").contains("unknown data spec 'mnist2'"));
    assert!(load_err("idx:").contains("expected idx:DIR"));
    assert!(load_err("synthetic:1,2").contains("synthetic spec"));
    let d = data::load("synthetic:1,4,4,3,30,9", &LoadOptions::default()).unwrap();
    assert_eq!((d.train.len(), d.test.len(), d.num_classes), (30, 9, 3));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn idx_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = idx::decode(&bytes);
        let _ = idx::gunzip_if_gz(bytes);
    }

    #[test]
    fn idx_decode_structured(dims in proptest::collection::vec(0u32..6, 1..4), extra in -3i64..3, t in prop_oneof![Just(8u8), any::<u8>()]) {
        let n: i64 = dims.iter().map(|&d| d as i64).product();
        let len = (n + extra).max(0) as usize;
        let extra = len as i64 - n;
        let mut b = idx_bytes(&dims, &vec![1u8; len]);
        b[2] = t;
        match idx::decode(&b) {
            Ok(a) => {
                prop_assert_eq!(t, 8);
                prop_assert_eq!(extra, 0);
                prop_assert_eq!(a.data.len() as i64, n);
            }
            Err(e) => prop_assert!(t != 8 || extra != 0, "{e:#}"),
        }
    }

    #[test]
    fn gz_prefix_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..128)) {
        let mut b = vec![0x1f, 0x8b, 8, 0];
        b.extend(tail);
        let _ = idx::gunzip_if_gz(b);
    }

    #[test]
    fn cifar_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..7000)) {
        let mut s = Split::default();
        let ok = cifar10::decode_batch(&bytes, &mut s).is_ok();
        prop_assert_eq!(ok, !bytes.is_empty() && bytes.len() % cifar10::RECORD == 0
            && bytes.chunks(cifar10::RECORD).all(|r| r[0] < 10));
        prop_assert_eq!(s.x.len(), s.len() * cifar10::PIXELS);
    }

    #[test]
    fn csv_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = csv::parse(&bytes);
    }

    #[test]
    fn csv_parse_never_panics_on_csvish_text(text in "[0-9a-z,.\\-\"\r\n \u{feff}é]{0,200}") {
        if let Ok(t) = csv::parse(text.as_bytes()) {
            prop_assert_eq!(t.features.len(), t.labels.len() * t.n_features);
        }
    }
}
