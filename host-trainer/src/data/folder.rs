//! `folder:DIR[,C,H,W]`: an image-folder data set, one sub-folder per class, as torchvision's
//! `ImageFolder` reads it.
//!
//! - **Classes**: the sub-folders of `DIR`, in byte-wise sorted order of their names; class `k`
//!   is the `k`-th. At least 2. Files directly in `DIR` are ignored (a note on stderr).
//! - **Images**: every file under a class folder (nested folders included, walked depth-first in
//!   sorted order) whose extension is `.png`, `.jpg`, `.jpeg` or `.bmp` (any case), decoded with
//!   the `image` crate (the format is recognized from the bytes). Other files are ignored (a note
//!   on stderr counts them). Names starting with `.` (hidden files and folders) are skipped.
//!   A class folder without images, and an image that cannot be read or decoded, are errors that
//!   name the folder or file.
//! - **Colour**: `C = 1` is 8-bit luma by PIL's `convert("L")` rule (ITU-R 601-2),
//!   `L = (19595·R + 38470·G + 7471·B + 2¹⁵) >> 16`; `C = 3` is RGB. Alpha is dropped (not
//!   composited), 16-bit samples are scaled to 8 bits by the `image` crate.
//! - **Size** with `,C,H,W`: torchvision's `Resize` + `CenterCrop`. An image of `w × h` pixels
//!   is scaled by `s = max(H/h, W/w)` (the smallest scale that covers `H × W`) to
//!   `w' × h'` — `h' = H, w' = max(W, ⌊H·w/h⌋)` when `H/h ≥ W/w`, else
//!   `w' = W, h' = max(H, ⌊W·h/w⌋)`, which for a square target is `Resize(H)`'s rule — with a
//!   bilinear (triangle) filter whose support widens when shrinking (antialiased, like PIL's
//!   bilinear), then the centre `H × W` is cut out at `top = round((h' − H)/2)`,
//!   `left = round((w' − W)/2)`, halves rounded to even as Python's `round`. An image already
//!   `W × H` is used as is.
//! - **Size** without: the images' own size, which must then be the same for all (an error names
//!   two that differ); `C = 1` when every image is stored grayscale, else 3.
//! - **Values**: `byte / 255` in `[0, 1]`, CHW.
//! - **Split**: stratified and seeded by `--test-fraction` and the data seed
//!   ([`super::split::split_by_fraction`]).
//! - **Cache**: the decoded, resized pixel bytes are kept in
//!   `<data_dir>/folder-cache/folder-<key>.bin` (the shared checksummed container,
//!   [`super::cache`]; `key` = CRC-64 of the folder's absolute path and the size spec). It holds
//!   the manifest it was built from (the absolute folder, the size spec, each class name, each
//!   image's path, byte size and modification time); a cache whose manifest differs from the
//!   folder's, or that fails its checks, is rebuilt. A cache that cannot be written is a warning.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use image::imageops::{self, FilterType};
use image::{GrayImage, ImageBuffer, Pixel, RgbImage};

use super::split::split_by_fraction;
use super::{cache, Dataset, LoadOptions};

/// Image file extensions read (compared case-insensitively).
pub const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];
/// Largest `H` and `W` of a `folder:DIR,C,H,W` spec.
pub const MAX_SIDE: usize = 4096;
/// Folder of the caches, under the data folder.
pub const CACHE_DIR: &str = "folder-cache";

const MAGIC: &[u8; 8] = b"DRFOLDR\0";
const VERSION: u32 = 1;
/// Header fields of the cache: `n`, `C`, `H`, `W`, manifest bytes.
const FIELDS: usize = 5;
const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_XZ);

/// A parsed `folder:DIR[,C,H,W]` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderSpec {
    pub dir: PathBuf,
    /// `[C, H, W]` to convert, resize and crop to; `None`: the images' own size and colour.
    pub shape: Option<[usize; 3]>,
}

impl FolderSpec {
    /// Parses `DIR` or `DIR,C,H,W` (without touching the file system). When the text after the
    /// last comma is a whole number, the last three fields must be `C,H,W` (`C` 1 or 3, `H` and
    /// `W` from 1 to [`MAX_SIDE`]); a folder whose name itself ends in `,<number>` is written with
    /// a trailing `/`.
    pub fn parse(arg: &str) -> Result<Self> {
        if arg.is_empty() {
            bail!("expected folder:DIR or folder:DIR,C,H,W");
        }
        let fields: Vec<&str> = arg.rsplitn(4, ',').collect();
        let number = |s: &str| s.trim().parse::<usize>().ok();
        if fields.len() < 2 || number(fields[0]).is_none() {
            return Ok(Self {
                dir: PathBuf::from(arg),
                shape: None,
            });
        }
        let shape = match fields[..] {
            [w, h, c, dir] if !dir.is_empty() => match (number(c), number(h), number(w)) {
                (Some(c), Some(h), Some(w)) => Some(([c, h, w], dir)),
                _ => None,
            },
            _ => None,
        };
        let Some(([c, h, w], dir)) = shape else {
            bail!(
                "'{arg}': expected DIR,C,H,W (three whole numbers after the folder; a folder whose \
                 name ends in ',<number>' is written with a trailing '/')"
            );
        };
        if c != 1 && c != 3 {
            bail!("'{arg}': C = {c}, expected 1 (grayscale) or 3 (RGB)");
        }
        if !(1..=MAX_SIDE).contains(&h) || !(1..=MAX_SIDE).contains(&w) {
            bail!("'{arg}': H = {h}, W = {w}, each must be from 1 to {MAX_SIDE}");
        }
        Ok(Self {
            dir: PathBuf::from(dir),
            shape: Some([c, h, w]),
        })
    }

    /// The size spec as the manifest and reports write it: `C,H,W` or `auto`.
    fn size_text(&self) -> String {
        self.shape
            .map_or("auto".into(), |[c, h, w]| format!("{c},{h},{w}"))
    }
}

/// What [`scan`] found in a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Class names (the sub-folder names), class `k` at index `k`.
    pub classes: Vec<String>,
    /// Every image with its class, classes in order, each class's images in walk order.
    pub images: Vec<(PathBuf, u32)>,
    /// Files that are not images (wrong extension, or directly in the folder), skipped.
    pub ignored: Vec<PathBuf>,
}

/// Entries of `dir` that are not hidden, sorted by the bytes of their names, with whether each
/// is a folder (symbolic links followed).
fn sorted_entries(dir: &Path) -> Result<Vec<(OsString, PathBuf, bool)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))? {
        let entry = entry.with_context(|| format!("{}: cannot list", dir.display()))?;
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let meta =
            fs::metadata(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        out.push((name, path, meta.is_dir()));
    }
    out.sort_by(|a, b| a.0.as_encoded_bytes().cmp(b.0.as_encoded_bytes()));
    Ok(out)
}

/// Whether `path` has one of the [`EXTENSIONS`].
fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Lists the classes and images of `dir` (see the module doc); errors for no or one class folder
/// and for a class folder without images.
pub fn scan(dir: &Path) -> Result<Listing> {
    let mut listing = Listing {
        classes: Vec::new(),
        images: Vec::new(),
        ignored: Vec::new(),
    };
    let mut class_dirs = Vec::new();
    for (name, path, is_dir) in sorted_entries(dir)? {
        if is_dir {
            listing.classes.push(name.to_string_lossy().into_owned());
            class_dirs.push(path);
        } else {
            listing.ignored.push(path);
        }
    }
    match class_dirs.len() {
        0 => bail!(
            "{}: no class folders (expected one sub-folder of images per class)",
            dir.display()
        ),
        1 => bail!(
            "{}: one class folder ('{}'), need at least 2",
            dir.display(),
            listing.classes[0]
        ),
        _ => {}
    }
    for (class, class_dir) in class_dirs.iter().enumerate() {
        let before = listing.images.len();
        let mut stack = vec![class_dir.clone()];
        while let Some(folder) = stack.pop() {
            let entries = sorted_entries(&folder)?;
            // Depth-first in sorted order: sub-folders go on the stack in reverse.
            let mut subfolders = Vec::new();
            for (_, path, is_dir) in entries {
                if is_dir {
                    subfolders.push(path);
                } else if is_image(&path) {
                    listing.images.push((path, class as u32));
                } else {
                    listing.ignored.push(path);
                }
            }
            stack.extend(subfolders.into_iter().rev());
        }
        if listing.images.len() == before {
            bail!(
                "{}: class folder without images (.png, .jpg, .jpeg or .bmp)",
                class_dir.display()
            );
        }
    }
    Ok(listing)
}

/// PIL's `convert("L")`: `L = (19595·R + 38470·G + 7471·B + 2¹⁵) >> 16` (ITU-R 601-2 luma; a
/// gray pixel `(g, g, g)` gives `g` exactly, the weights summing to 2¹⁶).
pub fn luma(rgb: &RgbImage) -> GrayImage {
    GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0;
        let l = (19595 * u32::from(r) + 38470 * u32::from(g) + 7471 * u32::from(b) + 0x8000) >> 16;
        image::Luma([l as u8])
    })
}

/// The size `(w', h')` an image of `w × h` is scaled to so that it covers `target_w × target_h`
/// with its aspect ratio kept (module doc; integer arithmetic, exact).
pub fn cover_size(w: u32, h: u32, target_w: u32, target_h: u32) -> (u32, u32) {
    let (w, h, tw, th) = (
        u64::from(w),
        u64::from(h),
        u64::from(target_w),
        u64::from(target_h),
    );
    let (rw, rh) = if th * w >= tw * h {
        ((th * w / h).max(tw), th)
    } else {
        (tw, (tw * h / w).max(th))
    };
    (
        u32::try_from(rw).unwrap_or(u32::MAX),
        u32::try_from(rh).unwrap_or(u32::MAX),
    )
}

/// `round((big − small) / 2)` with halves to even (Python's `round`, as torchvision's
/// `CenterCrop`).
pub fn center_offset(big: u32, small: u32) -> u32 {
    let d = big.saturating_sub(small);
    let k = d / 2;
    if d % 2 == 1 && k % 2 == 1 {
        k + 1
    } else {
        k
    }
}

/// `img` scaled to cover `w × h` ([`cover_size`], triangle filter) and center-cropped to it.
pub fn resize_cover_crop<P>(
    img: &ImageBuffer<P, Vec<u8>>,
    w: u32,
    h: u32,
) -> ImageBuffer<P, Vec<u8>>
where
    P: Pixel<Subpixel = u8> + 'static,
{
    let (iw, ih) = img.dimensions();
    let (rw, rh) = cover_size(iw, ih, w, h);
    let resized = if (rw, rh) == (iw, ih) {
        img.clone()
    } else {
        imageops::resize(img, rw, rh, FilterType::Triangle)
    };
    imageops::crop_imm(&resized, center_offset(rw, w), center_offset(rh, h), w, h).to_image()
}

/// Interleaved (HWC) bytes with `c` channels as planes (CHW).
fn hwc_to_chw(hwc: &[u8], c: usize) -> Vec<u8> {
    let hw = hwc.len() / c;
    let mut out = vec![0u8; hwc.len()];
    for (i, px) in hwc.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            out[ch * hw + i] = v;
        }
    }
    out
}

/// One decoded image before it is stored.
enum Decoded {
    /// Converted and resized: `C·H·W` bytes.
    Sized(Vec<u8>),
    /// Own size (no size spec): the RGB pixels, and whether the file is grayscale.
    Own { rgb: RgbImage, gray: bool },
}

/// Reads and decodes one image; the error names the file.
fn decode(path: &Path, shape: Option<[usize; 3]>) -> Result<Decoded> {
    let img = image::io::Reader::open(path)
        .and_then(|r| r.with_guessed_format())
        .with_context(|| format!("{}: cannot read", path.display()))?
        .decode()
        .with_context(|| format!("{}: not a readable PNG, JPEG or BMP image", path.display()))?;
    let gray = !img.color().has_color();
    let rgb = img.to_rgb8();
    Ok(match shape {
        None => Decoded::Own { rgb, gray },
        Some([c, h, w]) => {
            let (w, h) = (w as u32, h as u32);
            Decoded::Sized(if c == 1 {
                resize_cover_crop(&luma(&rgb), w, h).into_raw()
            } else {
                hwc_to_chw(&resize_cover_crop(&rgb, w, h).into_raw(), 3)
            })
        }
    })
}

/// Decodes every image on `threads` threads; results in file order, the first failing file's
/// error.
fn decode_all(paths: &[&Path], shape: Option<[usize; 3]>, threads: usize) -> Result<Vec<Decoded>> {
    let parts = crate::parallel::par_chunks(paths.len(), threads, |range| {
        paths[range]
            .iter()
            .map(|p| decode(p, shape))
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(parts.into_iter().flatten().collect())
}

/// The pixel bytes (`n × C·H·W`, CHW) of the images in `listing` and their shape.
fn pixels(
    listing: &Listing,
    shape: Option<[usize; 3]>,
    threads: usize,
) -> Result<(Vec<u8>, [usize; 3])> {
    let paths: Vec<&Path> = listing.images.iter().map(|(p, _)| p.as_path()).collect();
    let decoded = decode_all(&paths, shape, threads)?;
    if let Some(shape) = shape {
        let mut out = Vec::with_capacity(decoded.len() * shape.iter().product::<usize>());
        for d in decoded {
            if let Decoded::Sized(px) = d {
                out.extend_from_slice(&px);
            }
        }
        return Ok((out, shape));
    }
    let mut own = Vec::with_capacity(decoded.len());
    for d in decoded {
        if let Decoded::Own { rgb, gray } = d {
            own.push((rgb, gray));
        }
    }
    let (w, h) = own[0].0.dimensions();
    if let Some(i) = own.iter().position(|(img, _)| img.dimensions() != (w, h)) {
        let (w2, h2) = own[i].0.dimensions();
        bail!(
            "{} is {w2}×{h2} pixels but {} is {w}×{h}: images of different sizes need the size \
             given as folder:DIR,C,H,W (they are then resized and center-cropped to it)",
            paths[i].display(),
            paths[0].display()
        );
    }
    let c = if own.iter().all(|(_, gray)| *gray) {
        1
    } else {
        3
    };
    let mut out = Vec::with_capacity(own.len() * c * (w * h) as usize);
    for (rgb, _) in &own {
        if c == 1 {
            out.extend_from_slice(luma(rgb).as_raw());
        } else {
            out.extend_from_slice(&hwc_to_chw(rgb.as_raw(), 3));
        }
    }
    Ok((out, [c, h as usize, w as usize]))
}

/// The manifest a cache is valid for: the absolute folder, the size spec, the classes, and each
/// image's label, path, byte size and modification time (nanoseconds since the Unix epoch; 0
/// where the file system has none). Bytes (paths need not be UTF-8).
fn manifest(abs_dir: &Path, spec: &FolderSpec, listing: &Listing) -> Result<Vec<u8>> {
    let mut m = b"denoiserep folder cache manifest 1\ndir\t".to_vec();
    m.extend_from_slice(abs_dir.as_os_str().as_encoded_bytes());
    m.extend_from_slice(format!("\nsize\t{}\n", spec.size_text()).as_bytes());
    for name in &listing.classes {
        m.extend_from_slice(format!("class\t{name}\n").as_bytes());
    }
    for (path, label) in &listing.images {
        let meta =
            fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        m.extend_from_slice(format!("{label}\t").as_bytes());
        m.extend_from_slice(path.as_os_str().as_encoded_bytes());
        m.extend_from_slice(format!("\t{}\t{mtime}\n", meta.len()).as_bytes());
    }
    Ok(m)
}

/// The cache file of a folder and size spec: `<data_dir>/folder-cache/folder-<key>.bin`,
/// `key` = the CRC-64 (XZ) of the absolute folder's bytes, a NUL and the size spec, in hex.
pub fn cache_path(data_dir: &Path, abs_dir: &Path, spec: &FolderSpec) -> PathBuf {
    let mut digest = CRC64.digest();
    digest.update(abs_dir.as_os_str().as_encoded_bytes());
    digest.update(b"\0");
    digest.update(spec.size_text().as_bytes());
    data_dir
        .join(CACHE_DIR)
        .join(format!("folder-{:016x}.bin", digest.finalize()))
}

/// Serializes the cache: fields `n`, `C`, `H`, `W`, manifest length; payload the manifest,
/// then the `n·C·H·W` pixel bytes.
pub fn encode_cache(manifest: &[u8], pixels: &[u8], n: usize, shape: [usize; 3]) -> Vec<u8> {
    let [c, h, w] = shape;
    let fields = [n, c, h, w, manifest.len()].map(|v| v as u32);
    let mut payload = Vec::with_capacity(manifest.len() + pixels.len());
    payload.extend_from_slice(manifest);
    payload.extend_from_slice(pixels);
    cache::seal(MAGIC, VERSION, &fields, &payload)
}

/// A verified cache's parts: its manifest, pixel bytes, sample count and `[C, H, W]` shape.
pub type CacheView<'a> = (&'a [u8], &'a [u8], usize, [usize; 3]);

/// A verified cache ([`CacheView`]); the error says what is wrong and where.
pub fn decode_cache(bytes: &[u8]) -> Result<CacheView<'_>> {
    let (f, payload) = cache::open(bytes, MAGIC, VERSION, FIELDS, |f| {
        let f: Vec<usize> = f.iter().map(|&v| v as usize).collect();
        f[0].checked_mul(f[1])
            .and_then(|v| v.checked_mul(f[2]))
            .and_then(|v| v.checked_mul(f[3]))
            .and_then(|v| v.checked_add(f[4]))
            .context("sizes at byte offsets 12–31 overflow")
    })?;
    let m = f[4] as usize;
    let shape = [f[1] as usize, f[2] as usize, f[3] as usize];
    Ok((&payload[..m], &payload[m..], f[0] as usize, shape))
}

/// Loads `folder:DIR[,C,H,W]` (module doc): from the cache when it matches the folder, else by
/// decoding every image (and writing the cache).
pub fn load(spec: &FolderSpec, opts: &LoadOptions) -> Result<Dataset> {
    let dir = &spec.dir;
    if !dir.is_dir() {
        bail!("{}: no such directory", dir.display());
    }
    let listing = scan(dir)?;
    if let Some(first) = listing.ignored.first() {
        eprintln!(
            "[data] folder {}: ignored {} file(s) that are not class images (.png, .jpg, .jpeg, \
             .bmp inside a class folder), e.g. {}",
            dir.display(),
            listing.ignored.len(),
            first.display()
        );
    }
    let abs = std::path::absolute(dir)
        .with_context(|| format!("{}: cannot make the path absolute", dir.display()))?;
    let manifest = manifest(&abs, spec, &listing)?;
    let cache_file = cache_path(&opts.data_dir, &abs, spec);
    let n = listing.images.len();
    let cached = fs::read(&cache_file).ok().and_then(|bytes| {
        let (m, px, cn, shape) = decode_cache(&bytes).ok()?;
        (m == manifest.as_slice() && cn == n).then(|| (px.to_vec(), shape))
    });
    let from_cache = cached.is_some();
    let (px, shape) = match cached {
        Some(c) => c,
        None => {
            let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
            let (px, shape) = pixels(&listing, spec.shape, threads)?;
            let written = fs::create_dir_all(cache_file.parent().unwrap_or(Path::new(".")))
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    crate::atomic::write_atomic(
                        &cache_file,
                        &encode_cache(&manifest, &px, n, shape),
                    )
                });
            if let Err(e) = written {
                eprintln!(
                    "[data] warning: folder {}: the cache {} was not written: {e:#}",
                    dir.display(),
                    cache_file.display()
                );
            }
            (px, shape)
        }
    };
    let shown: Vec<String> = listing
        .classes
        .iter()
        .enumerate()
        .take(12)
        .map(|(k, name)| format!("{k} = {name}"))
        .collect();
    eprintln!(
        "[data] folder {}: {n} images in {} classes ({}{}), {}×{}×{}{}",
        dir.display(),
        listing.classes.len(),
        shown.join(", "),
        if listing.classes.len() > 12 {
            ", …"
        } else {
            ""
        },
        shape[0],
        shape[1],
        shape[2],
        if from_cache { " (from the cache)" } else { "" }
    );
    let x: Vec<f32> = px.iter().map(|&b| f32::from(b) / 255.0).collect();
    let y: Vec<u32> = listing.images.iter().map(|&(_, label)| label).collect();
    let (train, test) = split_by_fraction(
        &x,
        &y,
        listing.classes.len(),
        shape.iter().product(),
        opts.test_fraction,
        opts.seed,
        &dir.display().to_string(),
    )?;
    Ok(Dataset {
        name: format!("folder:{}", dir.display()),
        shape,
        num_classes: listing.classes.len(),
        train,
        test,
        value_range: Some((0.0, 1.0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_the_folder_and_the_optional_shape() {
        let p = |s: &str| FolderSpec::parse(s);
        assert_eq!(
            p("imgs").unwrap(),
            FolderSpec {
                dir: "imgs".into(),
                shape: None
            }
        );
        assert_eq!(p("a,b/x,3,32,32").unwrap().shape, Some([3, 32, 32]));
        assert_eq!(p("a,b/x,3,32,32").unwrap().dir, PathBuf::from("a,b/x"));
        assert_eq!(p("my,1,2,3/").unwrap().dir, PathBuf::from("my,1,2,3/"));
        assert_eq!(p("a,b").unwrap().dir, PathBuf::from("a,b"));
        let e = |s: &str| format!("{:#}", p(s).unwrap_err());
        assert!(e("").contains("expected folder:DIR"));
        assert!(
            e("d,28,28").contains("expected DIR,C,H,W"),
            "{}",
            e("d,28,28")
        );
        assert!(e("d,x,28,28").contains("expected DIR,C,H,W"));
        assert!(e(",1,28,28").contains("expected DIR,C,H,W"));
        assert!(e("d,2,28,28").contains("C = 2"));
        assert!(e("d,3,0,28").contains("H = 0"));
        assert!(e("d,3,8,5000").contains("from 1 to 4096"));
    }

    #[test]
    fn cover_size_and_center_crop_follow_torchvision() {
        // Resize(24) of a 40×30 (w×h) image: shorter side 30 → 24, longer ⌊24·40/30⌋ = 32.
        assert_eq!(cover_size(40, 30, 24, 24), (32, 24));
        assert_eq!(cover_size(30, 40, 24, 24), (24, 32));
        assert_eq!(cover_size(10, 10, 24, 24), (24, 24));
        // Non-square target 16×8 (w×h) from 10×10: width binds.
        assert_eq!(cover_size(10, 10, 16, 8), (16, 16));
        // ⌊·⌋ never leaves it below the target.
        assert_eq!(cover_size(7, 3, 5, 2), (5, 2));
        // round((33 − 24)/2) = round(4.5) = 4; round((35 − 24)/2) = round(5.5) = 6.
        assert_eq!(center_offset(33, 24), 4);
        assert_eq!(center_offset(35, 24), 6);
        assert_eq!(center_offset(32, 24), 4);
        assert_eq!(center_offset(24, 24), 0);
    }

    #[test]
    fn luma_is_pils_rule_and_exact_on_gray() {
        let img = RgbImage::from_raw(3, 1, vec![255, 0, 0, 0, 255, 0, 77, 77, 77]).unwrap();
        // 19595·255 / 65536 = 76.24 → 76; 38470·255 / 65536 = 149.69 → 150.
        assert_eq!(luma(&img).into_raw(), vec![76, 150, 77]);
    }

    #[test]
    fn crop_takes_the_center_of_a_resized_image() {
        // 6×2 image, columns 0..6 valued 10·col; target 2×2: scale 1 (height binds, w' = 6),
        // crop at left = round(4 / 2) = 2: columns 2 and 3.
        let img = GrayImage::from_fn(6, 2, |x, _| image::Luma([10 * x as u8]));
        let out = resize_cover_crop(&img, 2, 2);
        assert_eq!(out.into_raw(), vec![20, 30, 20, 30]);
        assert_eq!(hwc_to_chw(&[1, 2, 3, 4, 5, 6], 3), vec![1, 4, 2, 5, 3, 6]);
    }

    #[test]
    fn cache_round_trips_and_rejects_corruption() {
        let manifest = b"m\n".to_vec();
        let px: Vec<u8> = (0..2 * 12).map(|i| i as u8).collect();
        let bytes = encode_cache(&manifest, &px, 2, [3, 2, 2]);
        let (m, p, n, shape) = decode_cache(&bytes).unwrap();
        assert_eq!((m, p, n, shape), (&manifest[..], &px[..], 2, [3, 2, 2]));
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        let e = format!("{:#}", decode_cache(&bad).unwrap_err());
        assert!(e.contains("checksum mismatch"), "{e}");
        let e = format!("{:#}", decode_cache(&bytes[..bytes.len() - 1]).unwrap_err());
        assert!(e.contains("implies"), "{e}");
    }
}
