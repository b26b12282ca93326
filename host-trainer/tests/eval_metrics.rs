//! Evaluation: the fast retrieval against the reference implementation, accuracy, robustness
//! noise, and the PNG plots (decoded back and inspected).

use std::path::PathBuf;

use denoiserep_trainer::data::Rng;
use denoiserep_trainer::eval::{self, DenoiserDiag, EpochRecord, NoisePoint, Retrieval};

fn random(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// Clustered embeddings: label prototype + noise, so mAP is far from both 0 and 1.
fn clustered(n: usize, dim: usize, classes: u32, rng: &mut Rng) -> (Vec<f32>, Vec<u32>) {
    let protos = random(classes as usize * dim, &mut Rng::new(99));
    let labels: Vec<u32> = (0..n)
        .map(|_| (rng.next_u64() % classes as u64) as u32)
        .collect();
    let x = labels
        .iter()
        .flat_map(|&l| {
            let p = &protos[l as usize * dim..(l as usize + 1) * dim];
            p.iter()
                .map(|v| v + 1.5 * rng.normal() as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    (x, labels)
}

fn assert_close(a: Retrieval, b: Retrieval) {
    assert!((a.map - b.map).abs() < 1e-6, "map {} vs {}", a.map, b.map);
    assert!(
        (a.rank1 - b.rank1).abs() < 1e-9,
        "rank1 {} vs {}",
        a.rank1,
        b.rank1
    );
}

#[test]
fn retrieval_matches_reference_on_random_data() {
    let mut rng = Rng::new(5);
    // Dims that are and are not multiples of 8; query counts across the block size.
    for &(nq, ng, dim, classes) in &[
        (1, 1, 1, 2),
        (7, 50, 3, 3),
        (33, 200, 16, 5),
        (70, 300, 129, 10),
        (64, 1000, 128, 10),
    ] {
        let (q, ql) = clustered(nq, dim, classes, &mut rng);
        let (g, gl) = clustered(ng, dim, classes, &mut rng);
        let fast = eval::retrieval(&q, &ql, &g, &gl, dim);
        let slow = eval::retrieval_naive(&q, &ql, &g, &gl, dim);
        assert_close(fast, slow);
        for threads in [1, 2, 3, 8] {
            assert_eq!(
                eval::retrieval_threads(&q, &ql, &g, &gl, dim, threads),
                fast
            );
        }
        if ng >= 200 {
            assert!(
                fast.map > 0.05 && fast.map < 0.99,
                "uninformative test data: {fast:?}"
            );
        }
    }
}

#[test]
fn retrieval_ties_queries_without_matches_and_zero_vectors() {
    // Gallery: duplicates (exact ties broken by index), a zero vector, a label no query has.
    let g = [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, -1.0, 0.0];
    let gl = [0, 1, 1, 2, 1, 7];
    // Query 0 (label 1): ties at indices 0, 1, 4 (sim 1): rank 1 is gallery 0 (label 0), so
    // relevant items 1, 4 are at ranks 2, 3; item 2 (zero vector) ties with item 3 at sim 0 and
    // comes first by index: rank 4.
    // Query 1 (label 5) has no relevant item and is skipped.
    let q = [3.0, 0.0, 0.0, 1.0];
    let ql = [1, 5];
    let r = eval::retrieval(&q, &ql, &g, &gl, 2);
    let expected = (1.0 / 2.0 + 2.0 / 3.0 + 3.0 / 4.0) / 3.0;
    assert!((r.map - expected).abs() < 1e-12, "{r:?} vs {expected}");
    assert_eq!(r.rank1, 0.0);
    assert_eq!(r, eval::retrieval_naive(&q, &ql, &g, &gl, 2));
    let none = eval::retrieval(&q, &[8, 9], &g, &gl, 2);
    assert_eq!(
        none,
        Retrieval {
            map: 0.0,
            rank1: 0.0
        }
    );
    // Gallery against itself: rank 1 is right for items 0, 3, 5 only (ties go to index 0).
    let own = eval::retrieval(&g, &gl, &g, &gl, 2);
    assert_eq!(own.rank1, 0.5);
    assert_eq!(own, eval::retrieval_naive(&g, &gl, &g, &gl, 2));
}

#[test]
fn accuracy_and_argmax() {
    let logits = [
        0.1, 0.9, 0.0, /**/ 2.0, 2.0, 1.0, /**/ -1.0, -3.0, -0.5,
    ];
    assert_eq!(eval::argmax(&logits[3..6]), 0);
    assert_eq!(eval::accuracy(&logits, 3, &[1, 1, 2]), 2.0 / 3.0);
    assert_eq!(eval::accuracy(&[], 3, &[]), 0.0);
}

#[test]
fn add_noise_is_seeded_pixel_units_and_clipped() {
    let x: Vec<f32> = (0..1000).map(|i| (i % 11) as f32 / 10.0).collect();
    let a = eval::add_noise(&x, 0.3, Some((0.0, 1.0)), 1);
    assert_eq!(a, eval::add_noise(&x, 0.3, Some((0.0, 1.0)), 1));
    assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
    let moved = a
        .iter()
        .zip(&x)
        .filter(|(a, b)| (*a - *b).abs() > 0.05)
        .count();
    assert!(moved > 700, "{moved}");
    assert_eq!(eval::add_noise(&x, 0.0, Some((0.0, 1.0)), 1), x);
}

fn plot_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("drep-plots-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Decodes a PNG written by the plots and returns (width, height, non-white pixel fraction,
/// distinct colors).
fn inspect_png(path: &std::path::Path) -> (u32, u32, f64, usize) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    let ink = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    let mut colors: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colors.sort_unstable();
    colors.dedup();
    (w, h, ink as f64 / (w * h) as f64, colors.len())
}

#[test]
fn plots_write_complete_pngs() {
    let dir = plot_dir();
    let curve: Vec<EpochRecord> = (1..=12)
        .map(|e| EpochRecord {
            epoch: e,
            phase: if e <= 4 {
                "baseline"
            } else if (e - 5) / 4 % 2 == 0 {
                "A"
            } else {
                "B"
            }
            .into(),
            train_loss: 2.0 / e as f64,
            ce_loss: 1.8 / e as f64,
            noise_loss: 5.0 + e as f64,
            train_accuracy: 1.0 - 0.5 / e as f64,
            test_accuracy: 0.97 - 0.5 / e as f64,
            test_mse: None,
            denoisers: if e <= 4 {
                Vec::new()
            } else {
                (0..3)
                    .map(|k| DenoiserDiag {
                        layer: 2 * k + 1,
                        t: 3 - k,
                        noise_loss: 1.8 - 0.01 * e as f64,
                        zero_predictor_loss: 1.7979,
                        noise_l2: 1.0 - 0.02 * e as f64,
                        optimal_l2: 0.7 + 0.05 * k as f64,
                        step_norm: 0.01 * e as f64,
                        weight_change: 0.001 * e as f64,
                    })
                    .collect()
            },
            seconds: 1.0,
        })
        .collect();
    let p = dir.join("curves.png");
    eval::plots::training_curves(&p, "mlp:256,128 on mnist — label-guided", &curve).unwrap();
    let (w, h, ink, colors) = inspect_png(&p);
    // Three panels: loss, accuracy, denoisers (the records carry diagnostics).
    assert_eq!((w, h), (1920, 520));
    assert!(ink > 0.02 && ink < 0.9, "ink {ink}");
    assert!(colors > 20, "{colors} colors: no lines/bands/text?");
    // Without diagnostics: two panels.
    let plain: Vec<EpochRecord> = curve
        .iter()
        .map(|r| EpochRecord {
            denoisers: Vec::new(),
            ..r.clone()
        })
        .collect();
    eval::plots::training_curves(&p, "mlp:256,128 on mnist — baseline", &plain).unwrap();
    assert_eq!(inspect_png(&p).0, 1280);

    // Short runs: one and three epochs (axis ranges and ticks of a degenerate curve).
    for n in [1, 3] {
        let p = dir.join(format!("curves{n}.png"));
        eval::plots::training_curves(&p, "short run", &curve[..n]).unwrap();
        let (_, _, ink, _) = inspect_png(&p);
        assert!(ink > 0.02, "ink {ink}");
        std::fs::remove_file(&p).unwrap();
    }

    let series = vec![
        (
            "baseline".to_string(),
            eval::NOISE_SIGMAS
                .iter()
                .map(|&s| NoisePoint {
                    sigma: s,
                    accuracy: 0.98 - s as f64,
                })
                .collect(),
        ),
        (
            "DenoiseRep".to_string(),
            eval::NOISE_SIGMAS
                .iter()
                .map(|&s| NoisePoint {
                    sigma: s,
                    accuracy: 0.98 - 0.7 * s as f64,
                })
                .collect(),
        ),
    ];
    let p = dir.join("robustness.png");
    eval::plots::robustness(&p, "accuracy under input noise", &series).unwrap();
    let (_, _, ink, colors) = inspect_png(&p);
    assert!(ink > 0.01 && colors > 10, "ink {ink} colors {colors}");
    // No temp files left behind.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");

    // With corruptions: a second panel of bars, wider.
    let with: Vec<eval::plots::RobustnessSeries> = series
        .iter()
        .enumerate()
        .map(|(i, (name, noise))| eval::plots::RobustnessSeries {
            name: name.clone(),
            noise: noise.clone(),
            corruptions: eval::corrupt::CORRUPTIONS
                .iter()
                .enumerate()
                .map(|(j, c)| eval::CorruptionPoint {
                    kind: c.kind,
                    severity: c.severity,
                    accuracy: 0.9 - 0.05 * j as f64 + 0.02 * i as f64,
                })
                .collect(),
        })
        .collect();
    let q = dir.join("robustness-all.png");
    eval::plots::robustness_all(&q, "accuracy under noise and corruptions", &with).unwrap();
    let (w, h, ink, colors) = inspect_png(&q);
    assert_eq!((w, h), (1700, 600));
    assert!(ink > 0.05 && colors > 10, "ink {ink} colors {colors}");
    let (w0, _, ink0, _) = inspect_png(&p);
    assert_eq!(w0, 960);
    assert!(ink > ink0, "the bar panel adds ink: {ink} vs {ink0}");
    std::fs::remove_file(&q).unwrap();

    let e = eval::plots::training_curves(&dir.join("x.png"), "t", &[]).unwrap_err();
    assert!(format!("{e:#}").contains("no epochs"));
    let e = eval::plots::robustness(&dir.join("missing/dir/r.png"), "t", &series).unwrap_err();
    assert!(format!("{e:#}").contains("missing/dir/r.png"), "{e:#}");
    if std::env::var_os("DENOISEREP_KEEP_PLOTS").is_none() {
        std::fs::remove_dir_all(&dir).unwrap();
    } else {
        eprintln!("plots kept in {}", dir.display());
    }
}
