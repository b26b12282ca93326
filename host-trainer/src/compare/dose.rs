//! `dose-response.png`: how the metrics move with the strength of the reverse step. Variants
//! named `FAMILY-bBETA` (e.g. `shrink-b0.01`, `lg-b0.1`: the same flags with `--beta-start` =
//! `--beta-end` = BETA) form a family; every family with at least two β is drawn as one line
//! of mean ± sample std over the seeds against β (log axis), in four panels — clean top-1, top-1
//! at input noise σ = 0.3, under feature noise S = 1, and at Gaussian noise σ = 0.5 — with the
//! null control's and the start's means as horizontal reference lines.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::report::{MeanStd, Report};
use super::{arms, feature_noise_key};
use crate::eval::plots;

/// File name in the comparison folder.
pub const PNG: &str = "dose-response.png";

/// One family of variants: its name and `(β, arm)` sorted by β.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub points: Vec<(f64, String)>,
}

/// `FAMILY-bBETA` → `(FAMILY, BETA)` for a positive finite BETA.
fn split_name(arm: &str) -> Option<(&str, f64)> {
    let (family, beta) = arm.rsplit_once("-b")?;
    let b: f64 = beta.parse().ok()?;
    (!family.is_empty() && b.is_finite() && b > 0.0).then_some((family, b))
}

/// The families of a report's variants with at least two β, by family name.
pub fn families(r: &Report) -> Vec<Family> {
    let mut by: BTreeMap<String, Vec<(f64, String)>> = BTreeMap::new();
    for a in r.summary.iter().filter(|a| a.role == arms::Role::Variant) {
        if let Some((family, b)) = split_name(&a.arm) {
            by.entry(family.to_string())
                .or_default()
                .push((b, a.arm.clone()));
        }
    }
    by.into_iter()
        .filter(|(_, p)| p.len() >= 2)
        .map(|(name, mut points)| {
            points.sort_by(|x, y| x.0.total_cmp(&y.0));
            Family { name, points }
        })
        .collect()
}

/// `(key, title)` of the panels; a key is a headline metric or a secondary one.
fn panels() -> [(String, &'static str); 4] {
    [
        ("top1".into(), "clean top-1 (%)"),
        ("robust_0_3".into(), "top-1 at input noise σ = 0.3 (%)"),
        (
            feature_noise_key(1.0),
            "top-1 under feature noise S = 1 (%)",
        ),
        ("gaussian:0.5".into(), "top-1 at input noise σ = 0.5 (%)"),
    ]
}

fn stat(r: &Report, arm: &str, key: &str) -> Option<MeanStd> {
    let a = r.summary.iter().find(|a| a.arm == arm)?;
    a.metrics
        .get(key)
        .or_else(|| a.secondary.get(key))
        .copied()
        .filter(|s| s.mean.is_some())
}

/// Draws `dose-response.png` into `path` (atomically) when the report has a family; returns
/// whether it did.
pub fn dose_response_png(path: &Path, r: &Report) -> Result<bool> {
    let fams = families(r);
    if fams.is_empty() {
        return Ok(false);
    }
    let betas: Vec<f64> = fams
        .iter()
        .flat_map(|f| f.points.iter().map(|p| p.0))
        .collect();
    let (bmin, bmax) = betas.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &b| {
        (lo.min(b), hi.max(b))
    });
    let (xlo, xhi) = (bmin / 1.6, bmax * 1.6);
    let refs = [(arms::CONTROLS[1], 1usize), (arms::START, 6usize)];
    let title = format!(
        "{} on {}: the strong step (t = 1, β₁ = β) — mean ± std over {} seeds; horizontal: null-control, start",
        r.settings.arch,
        r.settings.data,
        r.settings.seeds.len()
    );
    plots::render(path, (1500, 1100), |root| {
        let root = root.titled(&title, (plots::FAMILY, 22))?;
        for (area, (key, label)) in root.split_evenly((2, 2)).iter().zip(panels()) {
            let mut ys: Vec<f64> = Vec::new();
            for f in &fams {
                for (_, arm) in &f.points {
                    if let Some(s) = stat(r, arm, &key) {
                        let (m, sd) = (s.mean.unwrap_or(0.0), s.std.unwrap_or(0.0));
                        ys.extend([100.0 * (m - sd), 100.0 * (m + sd)]);
                    }
                }
            }
            for (arm, _) in refs {
                if let Some(m) = stat(r, arm, &key).and_then(|s| s.mean) {
                    ys.push(100.0 * m);
                }
            }
            let (lo, hi) = plots::range(ys.into_iter(), false);
            let mut chart = ChartBuilder::on(area)
                .caption(label, (plots::FAMILY, 20))
                .margin(14)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d((xlo..xhi).log_scale(), lo..hi)?;
            chart
                .configure_mesh()
                .light_line_style(RGBColor(235, 235, 235))
                .x_desc("β (log)")
                .x_label_formatter(&|v| format!("{v:.0e}"))
                .label_style((plots::FAMILY, 15))
                .draw()?;
            for (arm, c) in refs {
                if let Some(m) = stat(r, arm, &key).and_then(|s| s.mean) {
                    let y = 100.0 * m;
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(xlo, y), (xhi, y)],
                            plots::COLORS[c].stroke_width(1),
                        )))?
                        .label(arm)
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], plots::COLORS[c])
                        });
                }
            }
            for (i, f) in fams.iter().enumerate() {
                let color = plots::COLORS[(2 * i + 2) % plots::COLORS.len()];
                let pts: Vec<(f64, f64, f64)> = f
                    .points
                    .iter()
                    .filter_map(|(b, arm)| {
                        stat(r, arm, &key).map(|s| {
                            (
                                *b,
                                100.0 * s.mean.unwrap_or(0.0),
                                100.0 * s.std.unwrap_or(0.0),
                            )
                        })
                    })
                    .collect();
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|&(b, m, _)| (b, m)),
                        color.stroke_width(2),
                    ))?
                    .label(f.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart.draw_series(pts.iter().map(|&(b, m, sd)| {
                    ErrorBar::new_vertical(b, m - sd, m, m + sd, color.stroke_width(2), 10)
                }))?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .label_font((plots::FAMILY, 15))
                .draw()?;
        }
        Ok(())
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::split_name;

    #[test]
    fn family_names_split_at_the_last_b() {
        assert_eq!(split_name("shrink-b0.01"), Some(("shrink", 0.01)));
        assert_eq!(split_name("lg-b1e-3"), Some(("lg", 1e-3)));
        assert_eq!(split_name("a-b-b0.1"), Some(("a-b", 0.1)));
        assert_eq!(split_name("lg-b0"), None);
        assert_eq!(split_name("lg-bx"), None);
        assert_eq!(split_name("-b0.1"), None);
        assert_eq!(split_name("label-free"), None);
    }
}
