//! PNG plots of a run (plotters, bitmap backend): training curves and robustness curves.
//!
//! Text needs a TrueType font, loaded once at run time: `$DENOISEREP_FONT` if set, else the first
//! of [`FONT_CANDIDATES`] that exists (on Debian/Ubuntu `fonts-dejavu-core`, which
//! `scripts/setup.sh` installs). Files are written to a temp file beside the target and renamed,
//! so a plot is either complete or absent.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::{CorruptionPoint, EpochRecord, NoisePoint};

/// Font files tried in order when `$DENOISEREP_FONT` is not set.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", // Debian, Ubuntu: fonts-dejavu-core
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf", // Fedora
    "/usr/share/fonts/TTF/DejaVuSans.ttf",             // Arch
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",          // Alpine, older Fedora
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf", // macOS
    "/Library/Fonts/Arial.ttf",
];

pub(crate) const FAMILY: &str = "sans-serif";
/// Image sizes in pixels: training curves (two panels; three with denoisers), robustness (one
/// panel; two with corruptions, the noise panel keeping [`NOISE_PANEL_WIDTH`]).
const CURVES_SIZE: (u32, u32) = (1280, 520);
const CURVES_DENOISER_SIZE: (u32, u32) = (1920, 520);
const ROBUSTNESS_SIZE: (u32, u32) = (960, 600);
const ROBUSTNESS_CORRUPTIONS_SIZE: (u32, u32) = (1700, 600);
const NOISE_PANEL_WIDTH: u32 = 700;
/// Line colors, in series order (Okabe–Ito, readable by colour-blind readers).
pub(crate) const COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
    RGBColor(0, 0, 0),
];

/// Plots a training curve: left, loss vs epoch (total and CE on the left axis, the noise loss on
/// its own right axis); right, train and test accuracy vs epoch (a reconstruction model's
/// records, which carry `test_mse`: the train task loss and the test MSE). Each contiguous run of a phase
/// (`baseline`, `A`, `B`, …) is a shaded band labelled with the phase name. When the records
/// carry denoiser diagnostics, a third panel shows each denoised layer's noise L2 (solid) next to
/// its analytic optimum (dashed) and the zero predictor's 1.
pub fn training_curves(path: &Path, title: &str, curve: &[EpochRecord]) -> Result<()> {
    if curve.is_empty() {
        bail!("{}: no epochs to plot", path.display());
    }
    let with_denoisers = curve.iter().any(|r| !r.denoisers.is_empty());
    let size = if with_denoisers {
        CURVES_DENOISER_SIZE
    } else {
        CURVES_SIZE
    };
    render(path, size, |root| {
        let root = root.titled(title, (FAMILY, 26))?;
        let (left, right) = root.split_horizontally(CURVES_SIZE.0 / 2);
        let (right, third) = right.split_horizontally(CURVES_SIZE.0 / 2);
        if with_denoisers {
            denoiser_panel(&third, curve)?;
        }
        let x0 = curve.iter().map(|r| r.epoch).min().unwrap_or(0) as f64 - 0.5;
        let x1 = curve.iter().map(|r| r.epoch).max().unwrap_or(0) as f64 + 0.5;
        let loss = range(curve.iter().flat_map(|r| [r.train_loss, r.ce_loss]), true);
        let noise = range(curve.iter().map(|r| r.noise_loss), true);
        let mut chart = ChartBuilder::on(&left)
            .caption("loss", (FAMILY, 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            .build_cartesian_2d(x0..x1, loss.0..loss.1)?
            .set_secondary_coord(x0..x1, noise.0..noise.1);
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&epoch_label)
            .y_desc("loss (total, CE)")
            .label_style((FAMILY, 14))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("noise loss")
            .label_style((FAMILY, 14))
            .draw()?;
        phase_bands(&mut chart, curve, loss)?;
        let series = [("total", 0usize), ("CE", 1)];
        for (name, c) in series {
            let pts = points(curve, |r| if c == 0 { r.train_loss } else { r.ce_loss });
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, COLORS[c].filled())))?;
            chart
                .draw_series(LineSeries::new(pts, COLORS[c].stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], COLORS[c].stroke_width(2))
                });
        }
        let noise_pts = points(curve, |r| r.noise_loss);
        chart.draw_secondary_series(
            noise_pts
                .iter()
                .map(|&p| Circle::new(p, 3, COLORS[2].filled())),
        )?;
        chart
            .draw_secondary_series(LineSeries::new(noise_pts, COLORS[2].stroke_width(2)))?
            .label("noise (right axis)")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], COLORS[2].stroke_width(2))
            });
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FAMILY, 14))
            .draw()?;

        // A reconstruction model has no accuracy: the right panel shows its train and test MSE.
        let mse = curve.iter().all(|r| r.test_mse.is_some());
        let right_value = |r: &EpochRecord, c: usize| match (mse, c) {
            (false, 0) => r.train_accuracy,
            (false, _) => r.test_accuracy,
            (true, 0) => r.ce_loss,
            (true, _) => r.test_mse.unwrap_or(f64::NAN),
        };
        let acc = range(
            curve
                .iter()
                .flat_map(|r| [right_value(r, 0), right_value(r, 1)]),
            mse,
        );
        let acc = if mse {
            acc
        } else {
            (acc.0.min(1.0), acc.1.max(0.0))
        };
        let (caption, y_desc) = if mse {
            ("reconstruction MSE", "MSE (normalized units)")
        } else {
            ("accuracy", "top-1 accuracy")
        };
        let mut chart = ChartBuilder::on(&right)
            .caption(caption, (FAMILY, 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, acc.0..acc.1)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&epoch_label)
            .y_desc(y_desc)
            .label_style((FAMILY, 14))
            .draw()?;
        phase_bands(&mut chart, curve, acc)?;
        for (name, c) in [("train", 0usize), ("test", 1)] {
            let pts = points(curve, |r| right_value(r, c));
            chart
                .draw_series(LineSeries::new(pts.clone(), COLORS[c].stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], COLORS[c].stroke_width(2))
                });
            chart.draw_series(
                pts.into_iter()
                    .map(|p| Circle::new(p, 3, COLORS[c].filled())),
            )?;
        }
        legend(&mut chart)?;
        Ok(())
    })
}

/// The denoiser panel of [`training_curves`]: per layer, `noise_l2` (solid) and `optimal_l2`
/// (dashed) per epoch, the zero predictor's L2 = 1 as a grey line.
fn denoiser_panel(area: &Area, curve: &[EpochRecord]) -> Result<()> {
    let x0 = curve.iter().map(|r| r.epoch).min().unwrap_or(0) as f64 - 0.5;
    let x1 = curve.iter().map(|r| r.epoch).max().unwrap_or(0) as f64 + 0.5;
    let ys = curve
        .iter()
        .flat_map(|r| r.denoisers.iter().flat_map(|g| [g.noise_l2, g.optimal_l2]))
        .chain([1.0]);
    let (lo, hi) = range(ys, false);
    let mut chart = ChartBuilder::on(area)
        .caption("denoisers: noise L2 vs optimum", (FAMILY, 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_label_formatter(&epoch_label)
        .y_desc("L2 per element (zero predictor = 1)")
        .label_style((FAMILY, 14))
        .draw()?;
    phase_bands(&mut chart, curve, (lo, hi))?;
    chart
        .draw_series(LineSeries::new(
            [(x0, 1.0), (x1, 1.0)],
            RGBColor(128, 128, 128).stroke_width(1),
        ))?
        .label("zero predictor")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(128, 128, 128)));
    let mut layers: Vec<usize> = curve
        .iter()
        .flat_map(|r| r.denoisers.iter().map(|g| g.layer))
        .collect();
    layers.sort_unstable();
    layers.dedup();
    for (i, &layer) in layers.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let series = |f: fn(&super::DenoiserDiag) -> f64| -> Vec<(f64, f64)> {
            curve
                .iter()
                .filter_map(|r| {
                    let g = r.denoisers.iter().find(|g| g.layer == layer)?;
                    Some((r.epoch as f64, f(g)))
                })
                .filter(|(_, y)| y.is_finite())
                .collect()
        };
        let noise = series(|g| g.noise_l2);
        chart.draw_series(noise.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        chart
            .draw_series(LineSeries::new(noise, color.stroke_width(2)))?
            .label(format!("layer {layer}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(DashedLineSeries::new(
            series(|g| g.optimal_l2),
            6,
            4,
            color.stroke_width(1),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 14))
        .draw()?;
    Ok(())
}

/// Plots accuracy vs input-noise σ, one line per `(name, points)` series (e.g. one per model).
pub fn robustness(path: &Path, title: &str, series: &[(String, Vec<NoisePoint>)]) -> Result<()> {
    let series: Vec<RobustnessSeries> = series
        .iter()
        .map(|(name, noise)| RobustnessSeries {
            name: name.clone(),
            noise: noise.clone(),
            corruptions: Vec::new(),
        })
        .collect();
    robustness_all(path, title, &series)
}

/// One model's robustness results (`metrics.json` `noise_robustness` and `corruptions`).
#[derive(Debug, Clone, PartialEq)]
pub struct RobustnessSeries {
    pub name: String,
    pub noise: Vec<NoisePoint>,
    pub corruptions: Vec<CorruptionPoint>,
}

/// `robustness.png`: left, accuracy vs input-noise σ, one line per series; right (when any series
/// has corruption points), top-1 under each corruption as grouped bars — one group per
/// corruption in the order of the first series that has them, one bar per series in the line's
/// colour (named by the left panel's legend), bars from 0, the clean accuracy (σ = 0) of each
/// series as a dashed line across the panel.
pub fn robustness_all(path: &Path, title: &str, series: &[RobustnessSeries]) -> Result<()> {
    if series
        .iter()
        .all(|s| s.noise.is_empty() && s.corruptions.is_empty())
    {
        bail!("{}: no robustness points to plot", path.display());
    }
    let with_corruptions = series.iter().any(|s| !s.corruptions.is_empty());
    let size = if with_corruptions {
        ROBUSTNESS_CORRUPTIONS_SIZE
    } else {
        ROBUSTNESS_SIZE
    };
    render(path, size, |root| {
        if !with_corruptions {
            return noise_panel(root, Some(title), series);
        }
        let root = root.titled(title, (FAMILY, 24))?;
        let (left, right) = root.split_horizontally(NOISE_PANEL_WIDTH);
        noise_panel(&left, None, series)?;
        corruption_panel(&right, series)
    })
}

/// Accuracy vs σ, one line per series; `caption` = the plot title when it is the only panel.
fn noise_panel(area: &Area, caption: Option<&str>, series: &[RobustnessSeries]) -> Result<()> {
    let all = || series.iter().flat_map(|s| s.noise.iter());
    let xmax = all()
        .map(|p| p.sigma as f64)
        .filter(|s| s.is_finite())
        .fold(0.0, f64::max);
    let xmax = if xmax > 0.0 { xmax * 1.05 } else { 1.0 };
    let acc = range(all().map(|p| p.accuracy), false);
    let mut builder = ChartBuilder::on(area);
    match caption {
        Some(title) => builder.caption(title, (FAMILY, 24)),
        None => builder.caption("Gaussian input noise", (FAMILY, 20)),
    };
    let mut chart = builder
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(0.0..xmax, acc.0.min(1.0)..acc.1.max(0.0))?;
    chart
        .configure_mesh()
        .x_desc("input noise σ (pixel units)")
        .y_desc("top-1 accuracy")
        .label_style((FAMILY, 15))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut pts: Vec<(f64, f64)> = s
            .noise
            .iter()
            .map(|p| (p.sigma as f64, p.accuracy))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 15))
        .draw()?;
    Ok(())
}

/// Grouped bars of top-1 per corruption (see [`robustness_all`]).
fn corruption_panel(area: &Area, series: &[RobustnessSeries]) -> Result<()> {
    let groups: Vec<super::corrupt::Corruption> = series
        .iter()
        .find(|s| !s.corruptions.is_empty())
        .map(|s| s.corruptions.iter().map(|p| p.corruption()).collect())
        .unwrap_or_default();
    let n = groups.len().max(1) as f64;
    let top = series
        .iter()
        .flat_map(|s| s.corruptions.iter().map(|p| p.accuracy))
        .filter(|a| a.is_finite())
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.02;
    let labels: Vec<String> = groups.iter().map(|c| c.label()).collect();
    let tick = move |x: &f64| -> String {
        let i = x.round();
        if (x - i).abs() < 1e-9 && i >= 0.0 && (i as usize) < labels.len() {
            labels[i as usize].clone()
        } else {
            String::new()
        }
    };
    let mut chart = ChartBuilder::on(area)
        .caption("corruptions (dashed: clean top-1)", (FAMILY, 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(-0.5..n - 0.5, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_labels(groups.len().max(1) * 2 + 1)
        .x_label_formatter(&tick)
        .y_desc("top-1 accuracy")
        .label_style((FAMILY, 13))
        .draw()?;
    let k = series.len().max(1) as f64;
    let width = 0.8 / k;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let bars = s.corruptions.iter().filter_map(|p| {
            let g = groups.iter().position(|c| *c == p.corruption())? as f64;
            let x0 = g - 0.4 + i as f64 * width;
            p.accuracy.is_finite().then(|| {
                Rectangle::new([(x0, 0.0), (x0 + width * 0.9, p.accuracy)], color.filled())
            })
        });
        chart.draw_series(bars)?;
        if let Some(clean) = s.noise.iter().find(|p| p.sigma == 0.0) {
            chart.draw_series(DashedLineSeries::new(
                [(-0.5, clean.accuracy), (n - 0.5, clean.accuracy)],
                6,
                4,
                color.stroke_width(1),
            ))?;
        }
    }
    Ok(())
}

pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws into a PNG atomically (`crate::atomic`: temp file with a `.png` suffix, then rename).
pub(crate) fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area) -> Result<()>,
) -> Result<()> {
    ensure_font()?;
    crate::atomic::write_with(path, |tmp| {
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok(())
    })
    .with_context(|| format!("writing plot {}", path.display()))
}

/// Registers the plot font with plotters once per process (see the module doc).
fn ensure_font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    let loaded = FONT.get_or_init(|| {
        let path = match std::env::var_os("DENOISEREP_FONT") {
            Some(p) => PathBuf::from(p),
            None => FONT_CANDIDATES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    "no font for plot text: install fonts-dejavu-core (scripts/setup.sh does) or set DENOISEREP_FONT to a .ttf file".to_string()
                })?,
        };
        let bytes = std::fs::read(&path).map_err(|e| format!("reading font {}: {e}", path.display()))?;
        // plotters keeps registered fonts for the whole process; leaking the one file is intended.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
            .map_err(|_| format!("{}: not a TrueType/OpenType font", path.display()))?;
        Ok(path)
    });
    loaded.as_ref().map(|_| ()).map_err(|e| anyhow!("{e}"))
}

/// `(lo, hi)` of the finite values with 5% padding; `(0, 1)` when none; from 0 when `from_zero`
/// and all values are non-negative.
pub(crate) fn range(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        return (0.0, 1.0);
    }
    let lo = if from_zero && lo >= 0.0 { 0.0 } else { lo };
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (if lo == 0.0 { 0.0 } else { lo - pad }, hi + pad)
}

/// Tick label of an epoch axis: whole epochs only (no "1.5").
fn epoch_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        String::new()
    }
}

fn points(curve: &[EpochRecord], f: impl Fn(&EpochRecord) -> f64) -> Vec<(f64, f64)> {
    curve
        .iter()
        .map(|r| (r.epoch as f64, f(r)))
        .filter(|(_, y)| y.is_finite())
        .collect()
}

/// Shaded background band and label for each contiguous run of one phase.
fn phase_bands(chart: &mut Chart, curve: &[EpochRecord], (y0, y1): (f64, f64)) -> Result<()> {
    let mut start = 0;
    while start < curve.len() {
        let phase = &curve[start].phase;
        let end = curve[start..]
            .iter()
            .position(|r| &r.phase != phase)
            .map_or(curve.len(), |k| start + k);
        let (a, b) = (
            curve[start].epoch as f64 - 0.5,
            curve[end - 1].epoch as f64 + 0.5,
        );
        let tint = phase_color(phase).mix(0.15);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(a, y0), (b, y1)],
            tint.filled(),
        )))?;
        let top = y1 - (y1 - y0) * 0.02;
        chart.draw_series(std::iter::once(Text::new(
            phase.clone(),
            (a + 0.05 * (b - a).min(1.0), top),
            (FAMILY, 14).into_font().color(&phase_color(phase)),
        )))?;
        start = end;
    }
    Ok(())
}

fn phase_color(phase: &str) -> RGBColor {
    match phase {
        "A" => RGBColor(0, 114, 178),
        "B" => RGBColor(213, 94, 0),
        "label-free" => RGBColor(0, 158, 115),
        "penalty-control" => RGBColor(204, 121, 167),
        _ => RGBColor(110, 110, 110),
    }
}

fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 14))
        .draw()?;
    Ok(())
}
