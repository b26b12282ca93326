//! `compare.png`: one panel per metric (top-1, mAP, Rank-1, top-1 at σ = 0.3); in each, one row
//! per arm with every seed's value (small dark dots), the mean (large dot) and mean ± std (error
//! bar); a vertical line marks the null control's mean.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::report::Report;
use super::{arms, METRICS};
use crate::eval::plots;

/// Metrics drawn, by key.
const PANELS: [&str; 4] = ["top1", "map", "rank1", "robust_0_3"];
const ROW_PX: u32 = 34;

/// Draws the comparison plot (atomic write).
pub fn compare_png(path: &Path, r: &Report) -> Result<()> {
    let names: Vec<&str> = r.summary.iter().map(|a| a.arm.as_str()).collect();
    // At least two rows keep the segmented axis non-empty (a comparison always has eight or more).
    let n = names.len().max(2);
    let height = 160 + ROW_PX * n as u32;
    let size = (1500, 2 * height);
    let title = format!(
        "{} on {}: mean ± std over {} seeds (small dots: seeds; vertical line: null-control mean)",
        r.settings.arch,
        r.settings.data,
        r.settings.seeds.len()
    );
    plots::render(path, size, |root| {
        let root = root.titled(&title, (plots::FAMILY, 24))?;
        let panels = root.split_evenly((2, 2));
        for (area, key) in panels.iter().zip(PANELS) {
            let (_, label, get) = METRICS
                .iter()
                .find(|(k, _, _)| *k == key)
                .expect("PANELS are METRICS keys");
            let values = |arm: &str| -> Vec<f64> {
                r.runs
                    .iter()
                    .filter(|x| x.arm == arm)
                    .map(|x| 100.0 * get(&x.metrics))
                    .collect()
            };
            let stat = |arm: &str| {
                r.summary
                    .iter()
                    .find(|a| a.arm == arm)
                    .and_then(|a| a.metrics.get(key))
                    .copied()
            };
            // The axis covers every seed's value and every mean ± std.
            let spread = names.iter().filter_map(|a| stat(a)).flat_map(|s| {
                let (m, sd) = (s.mean.unwrap_or(f64::NAN), s.std.unwrap_or(0.0));
                [100.0 * (m - sd), 100.0 * (m + sd)]
            });
            let all: Vec<f64> = names.iter().flat_map(|a| values(a)).chain(spread).collect();
            let (lo, hi) = plots::range(all.into_iter(), false);
            let label = if key.starts_with("robust") {
                format!("top-1 at {label}")
            } else {
                label.to_string()
            };
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{label} (%)"), (plots::FAMILY, 20))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(210)
                .build_cartesian_2d(lo..hi, (0..n - 1).into_segmented())?;
            chart
                .configure_mesh()
                .light_line_style(RGBColor(235, 235, 235))
                .y_labels(n)
                .y_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => n
                        .checked_sub(1 + *i)
                        .and_then(|j| names.get(j))
                        .map_or(String::new(), |s| s.to_string()),
                    SegmentValue::Last => String::new(),
                })
                .x_desc(format!("{label} (%)"))
                .label_style((plots::FAMILY, 15))
                .draw()?;
            if let Some(m) = stat(arms::CONTROLS[1]).and_then(|s| s.mean) {
                let x = 100.0 * m;
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(x, SegmentValue::Exact(0)), (x, SegmentValue::Last)],
                    plots::COLORS[1].stroke_width(1),
                )))?;
            }
            for (i, arm) in names.iter().enumerate() {
                let row = SegmentValue::CenterOf(n - 1 - i);
                let color = plots::COLORS[0];
                if let Some(s) = stat(arm) {
                    if let Some(m) = s.mean {
                        let (m, sd) = (100.0 * m, 100.0 * s.std.unwrap_or(0.0));
                        chart.draw_series(std::iter::once(ErrorBar::new_horizontal(
                            row.clone(),
                            m - sd,
                            m,
                            m + sd,
                            color.stroke_width(2),
                            12,
                        )))?;
                        chart.draw_series(std::iter::once(Circle::new(
                            (m, row.clone()),
                            6,
                            color.filled(),
                        )))?;
                    }
                }
                chart.draw_series(
                    values(arm)
                        .into_iter()
                        .map(|v| Circle::new((v, row.clone()), 3, RGBColor(40, 40, 40).filled())),
                )?;
            }
        }
        Ok(())
    })
}
