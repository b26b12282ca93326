//! `--data folder:DIR[,C,H,W]`: image folders written by the test (PNG, JPEG and BMP of odd sizes,
//! grayscale and RGB) load with the right classes, shapes and values, a stratified and seeded
//! split, a cache that is used, checked and rebuilt, and errors that name the folder or file.

use std::path::Path;

use denoiserep_tests::TempDir;
use denoiserep_trainer::cli::rules::data_spec;
use denoiserep_trainer::data::{self, folder, Dataset, LoadOptions};
use image::{GrayImage, Luma, Rgb, RgbImage};

const RED: [u8; 3] = [200, 40, 10];
/// Image `i` of class `b_red`: red with blue `10 + i`, so the images of the class differ.
fn red(i: u8) -> [u8; 3] {
    [RED[0], RED[1], RED[2] + i]
}
const BLUE: [u8; 3] = [5, 60, 230];
const GRAY: u8 = 77;
const JPEG: [u8; 3] = [120, 120, 120];

fn rgb(path: &Path, w: u32, h: u32, c: [u8; 3]) {
    RgbImage::from_pixel(w, h, Rgb(c)).save(path).unwrap();
}

/// Four classes in byte order `a_gray` (PNG, grayscale), `b_red` (PNG, RGB), `c_blue` (BMP),
/// `d_jpeg` (JPEG); 6, 10, 5, 4 images of odd, differing sizes; plus files the loader skips.
fn write_folder(root: &Path) {
    for class in ["a_gray", "b_red", "c_blue", "d_jpeg/nested", ".hidden"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
    }
    for i in 0..6 {
        let img = GrayImage::from_pixel(15 + i, 31 - i, Luma([GRAY]));
        img.save(root.join(format!("a_gray/{i}.png"))).unwrap();
    }
    for i in 0..10 {
        rgb(
            &root.join(format!("b_red/{i}.PNG")),
            37,
            23 + 2 * i,
            red(i as u8),
        );
    }
    for i in 0..5 {
        rgb(&root.join(format!("c_blue/{i}.bmp")), 9 + i, 9, BLUE);
    }
    for i in 0..4 {
        let sub = if i % 2 == 0 {
            "d_jpeg"
        } else {
            "d_jpeg/nested"
        };
        rgb(&root.join(format!("{sub}/{i}.jpg")), 17, 13, JPEG);
    }
    std::fs::write(root.join("b_red/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("b_red/.DS_Store"), "hidden").unwrap();
    std::fs::write(root.join("README"), "top-level file").unwrap();
    std::fs::write(root.join(".hidden/x.png"), "hidden folder").unwrap();
}

fn opts(data_dir: &Path, seed: u64) -> LoadOptions {
    LoadOptions {
        test_fraction: 0.25,
        seed,
        data_dir: data_dir.to_path_buf(),
    }
}

fn load(spec: &str, o: &LoadOptions) -> Dataset {
    data::load(spec, o).unwrap_or_else(|e| panic!("{spec}: {e:#}"))
}

/// Every sample of both splits with its label.
fn samples(d: &Dataset) -> Vec<(u32, Vec<f32>)> {
    [&d.train, &d.test]
        .iter()
        .flat_map(|s| (0..s.len()).map(|i| (s.y[i], s.sample(i).to_vec())))
        .collect()
}

/// PIL's luma of an RGB colour.
fn luma(c: [u8; 3]) -> u8 {
    ((19595 * c[0] as u32 + 38470 * c[1] as u32 + 7471 * c[2] as u32 + 0x8000) >> 16) as u8
}

#[test]
fn classes_shapes_and_values_of_a_mixed_folder() {
    let tmp = TempDir::new("folder-values");
    let root = tmp.path("imgs");
    write_folder(&root);
    let o = opts(&tmp.path("data"), 0);
    let spec = format!("folder:{},3,8,6", root.display());
    assert_eq!(data_spec(spec.clone()), Ok(spec.clone()));
    let d = load(&spec, &o);
    assert_eq!((d.shape, d.num_classes), ([3, 8, 6], 4));
    assert_eq!(d.train.len() + d.test.len(), 25);
    assert_eq!(d.value_range, Some((0.0, 1.0)));
    let mut per_class = [0usize; 4];
    let mut reds = Vec::new();
    for (y, x) in samples(&d) {
        per_class[y as usize] += 1;
        assert_eq!(x.len(), 3 * 8 * 6);
        // Every image is one flat colour: each channel plane is constant.
        let colour: Vec<f32> = x.chunks(48).map(|plane| plane[0]).collect();
        for (ch, plane) in x.chunks(48).enumerate() {
            assert!(plane.iter().all(|&v| v == colour[ch]), "class {y} ch {ch}");
        }
        let byte = |ch: usize| colour[ch] * 255.0;
        match y {
            // A constant colour stays exactly that colour through resize and crop.
            0 => assert_eq!(colour, [GRAY as f32 / 255.0; 3]),
            1 => reds.push(
                colour
                    .iter()
                    .map(|&v| (v * 255.0).round() as u8)
                    .collect::<Vec<_>>(),
            ),
            2 => assert_eq!(colour, BLUE.map(|b| b as f32 / 255.0)),
            // JPEG is lossy: a flat grey comes back within a few levels.
            _ => assert!(
                (0..3).all(|ch| (byte(ch) - JPEG[ch] as f32).abs() <= 3.0),
                "{colour:?}"
            ),
        }
    }
    reds.sort();
    assert_eq!(reds, (0..10).map(|i| red(i).to_vec()).collect::<Vec<_>>());
    assert_eq!(
        per_class,
        [6, 10, 5, 4],
        "hidden, non-image and top-level files skipped"
    );

    // Grayscale: PIL's luma of each colour.
    let d = load(&format!("folder:{},1,5,7", root.display()), &o);
    assert_eq!(d.shape, [1, 5, 7]);
    for (y, x) in samples(&d) {
        let is = |g: u8| x.iter().all(|&v| v == g as f32 / 255.0);
        match y {
            0 => assert!(is(GRAY)),
            1 => assert!((0..10).any(|i| is(luma(red(i)))), "{x:?}"),
            2 => assert!(is(luma(BLUE))),
            _ => {}
        }
    }
}

#[test]
fn split_is_stratified_seeded_and_cache_is_used_checked_and_rebuilt() {
    let tmp = TempDir::new("folder-split-cache");
    let root = tmp.path("imgs");
    write_folder(&root);
    let data_dir = tmp.path("data");
    let spec = format!("folder:{},3,4,4", root.display());
    let a = load(&spec, &opts(&data_dir, 1));
    // 25 images, test fraction 0.25 → round(6.25) = 6 test samples; shares 1.44, 2.4, 1.2, 0.96
    // → floors 1, 2, 1, 0 and the two largest remainders (class 3: 0.96, class 0: 0.44) get one.
    let count = |d: &Dataset, k: u32| d.test.y.iter().filter(|&&y| y == k).count();
    assert_eq!(
        (0..4).map(|k| count(&a, k)).collect::<Vec<_>>(),
        [2, 2, 1, 1]
    );
    assert_eq!(a.train.len(), 19);
    assert_eq!(a, load(&spec, &opts(&data_dir, 1)), "same seed, same split");
    let b = load(&spec, &opts(&data_dir, 2));
    assert_ne!(a.test.x, b.test.x, "another seed, another split");

    // The cache exists and is read: a valid cache with other pixels is what loads.
    let abs = std::path::absolute(&root).unwrap();
    let fspec = folder::FolderSpec::parse(&format!("{},3,4,4", root.display())).unwrap();
    let cache = folder::cache_path(&data_dir, &abs, &fspec);
    let bytes = std::fs::read(&cache).expect("the cache was written");
    let (manifest, px, n, shape) = folder::decode_cache(&bytes).unwrap();
    assert_eq!((n, shape), (25, [3, 4, 4]));
    let dark = vec![0u8; px.len()];
    std::fs::write(&cache, folder::encode_cache(manifest, &dark, n, shape)).unwrap();
    let from_cache = load(&spec, &opts(&data_dir, 1));
    assert!(
        from_cache.train.x.iter().all(|&v| v == 0.0),
        "pixels came from the cache"
    );

    // A corrupt cache is rebuilt from the images (and rewritten valid).
    let mut corrupt = std::fs::read(&cache).unwrap();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    std::fs::write(&cache, &corrupt).unwrap();
    assert_eq!(load(&spec, &opts(&data_dir, 1)), a);
    assert!(folder::decode_cache(&std::fs::read(&cache).unwrap()).is_ok());

    // A changed image (another size in bytes) makes the cache stale: the new pixels load.
    rgb(&root.join("c_blue/0.bmp"), 12, 12, RED);
    let changed = load(&spec, &opts(&data_dir, 1));
    let reds = samples(&changed)
        .iter()
        .filter(|(y, x)| *y == 2 && x[0] == RED[0] as f32 / 255.0)
        .count();
    assert_eq!(reds, 1);
}

#[test]
fn own_size_without_a_spec_and_errors_that_name_the_culprit() {
    let tmp = TempDir::new("folder-errors");
    let o = opts(&tmp.path("data"), 0);
    let root = tmp.path("same");
    for (class, v) in [("x", 10u8), ("y", 250)] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..3 {
            GrayImage::from_pixel(5, 3, Luma([v]))
                .save(root.join(format!("{class}/{i}.png")))
                .unwrap();
        }
    }
    // No size: the images' own 5×3, one channel since every image is grayscale.
    let d = load(&format!("folder:{}", root.display()), &o);
    assert_eq!((d.shape, d.num_classes), ([1, 3, 5], 2));
    rgb(&root.join("y/3.bmp"), 5, 3, RED);
    assert_eq!(
        load(&format!("folder:{}", root.display()), &o).shape,
        [3, 3, 5]
    );

    let err = |spec: String| format!("{:#}", data::load(&spec, &o).unwrap_err());
    rgb(&root.join("y/4.bmp"), 6, 3, RED);
    let e = err(format!("folder:{}", root.display()));
    assert!(
        e.contains("y/4.bmp is 6×3 pixels but") && e.contains("x/0.png is 5×3"),
        "{e}"
    );
    std::fs::remove_file(root.join("y/4.bmp")).unwrap();

    // A corrupt image: the error names the file.
    let bad = root.join("x/1.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n garbage").unwrap();
    let e = err(format!("folder:{},1,4,4", root.display()));
    assert!(
        e.contains(&format!("{}: not a readable", bad.display())),
        "{e}"
    );
    // A truncated one too.
    let mut png = Vec::new();
    GrayImage::from_pixel(20, 20, Luma([3]))
        .write_to(
            &mut std::io::Cursor::new(&mut png),
            image::ImageOutputFormat::Png,
        )
        .unwrap();
    std::fs::write(&bad, &png[..png.len() / 2]).unwrap();
    let e = err(format!("folder:{},1,4,4", root.display()));
    assert!(e.contains(&bad.display().to_string()), "{e}");
    std::fs::remove_file(&bad).unwrap();

    // An empty class folder, a single class, no class folders.
    std::fs::create_dir_all(root.join("z")).unwrap();
    std::fs::write(root.join("z/readme.md"), "no images").unwrap();
    let e = err(format!("folder:{}", root.display()));
    assert!(
        e.contains(&format!(
            "{}: class folder without images",
            root.join("z").display()
        )),
        "{e}"
    );
    let one = tmp.path("one");
    std::fs::create_dir_all(one.join("only")).unwrap();
    rgb(&one.join("only/a.png"), 2, 2, RED);
    assert!(err(format!("folder:{}", one.display()))
        .contains("one class folder ('only'), need at least 2"));
    let none = tmp.path("none");
    std::fs::create_dir_all(&none).unwrap();
    std::fs::write(none.join("a.png"), b"x").unwrap();
    assert!(err(format!("folder:{}", none.display())).contains("no class folders"));
    assert!(data_spec(format!("folder:{},2,4,4", none.display()))
        .unwrap_err()
        .contains("C = 2"));
}
