//! `csv:FILE`: tabular data, one sample per line: `label,feature_1,…,feature_F`.
//!
//! - Separator `,`; spaces around a cell and one pair of surrounding double quotes are ignored;
//!   blank lines are skipped; `\n` or `\r\n` line ends; a UTF-8 byte-order mark is skipped.
//! - Header: the first non-blank line is a header when any of its cells is not a number.
//! - Label: an integer (`3`, `-1`, `7.0`). The distinct labels, sorted ascending, are mapped to
//!   classes `0..K` (e.g. labels {−1, 1} → classes {0, 1}; {3, 5, 10} → {0, 1, 2}).
//! - Features: finite numbers (`f32`), the same count on every line; stored as raw values,
//!   shape `[F, 1, 1]`, no value range (robustness noise is not clipped).
//! - Split: stratified and seeded by `--test-fraction` and `--seed` (see [`super::split`]).
//!
//! Errors give the file, the 1-based line and the 1-based character column of the bad cell.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::split::split_by_fraction;
use super::Dataset;

/// A parsed CSV table before label mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Header cells, when the file has a header row.
    pub header: Option<Vec<String>>,
    /// Raw integer label of each row.
    pub labels: Vec<i64>,
    /// `labels.len() × n_features` feature values, row-major.
    pub features: Vec<f32>,
    pub n_features: usize,
}

impl Table {
    /// Maps the raw labels to classes `0..K` (ascending order of raw label); returns the classes
    /// and the sorted distinct raw labels (`classes[i]` came from `raw[classes[i]]`).
    pub fn classes(&self) -> (Vec<u32>, Vec<i64>) {
        let mut raw = self.labels.clone();
        raw.sort_unstable();
        raw.dedup();
        let classes = self
            .labels
            .iter()
            .map(|l| raw.binary_search(l).unwrap_or(0) as u32)
            .collect();
        (classes, raw)
    }
}

/// Parses CSV bytes (see the module doc). Any byte string gives `Ok` or `Err`, never a panic.
pub fn parse(bytes: &[u8]) -> Result<Table> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let (line, col) = line_col(bytes, e.valid_up_to());
            bail!(
                "line {line}, column {col}: invalid UTF-8 (byte offset {})",
                e.valid_up_to()
            );
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut table = Table {
        header: None,
        labels: Vec::new(),
        features: Vec::new(),
        n_features: 0,
    };
    let mut width: Option<(usize, usize)> = None; // (cells per row, line that set it)
    for (i, line) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<(usize, &str)> = cells(line).collect();
        match width {
            None => {
                if cells.len() < 2 {
                    bail!(
                        "line {line_no}: {} cell(s), need a label and at least one feature",
                        cells.len()
                    );
                }
                width = Some((cells.len(), line_no));
                table.n_features = cells.len() - 1;
                if cells.iter().any(|(_, c)| c.parse::<f64>().is_err()) {
                    table.header = Some(cells.iter().map(|(_, c)| c.to_string()).collect());
                    continue;
                }
            }
            Some((w, first)) if cells.len() != w => {
                bail!(
                    "line {line_no}: {} cells, expected {w} as on line {first}",
                    cells.len()
                )
            }
            Some(_) => {}
        }
        let (col, label) = cells[0];
        let value: f64 = label
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15)
            .with_context(|| {
                format!("line {line_no}, column {col}: label '{label}' is not an integer class")
            })?;
        table.labels.push(value as i64);
        for (field, &(col, cell)) in cells.iter().enumerate().skip(1) {
            match cell.parse::<f32>() {
                Ok(v) if v.is_finite() => table.features.push(v),
                _ => bail!(
                    "line {line_no}, column {col} (field {}): '{cell}' is not a finite number",
                    field + 1
                ),
            }
        }
    }
    if table.labels.is_empty() {
        bail!("no data rows");
    }
    Ok(table)
}

/// Loads `csv:FILE`, split stratified by `test_fraction` with `seed`.
pub fn load(path: &Path, test_fraction: f64, seed: u64) -> Result<Dataset> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        bail!("test fraction {test_fraction} must be strictly between 0 and 1");
    }
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let table = parse(&bytes).with_context(|| path.display().to_string())?;
    let (y, raw) = table.classes();
    if raw.len() < 2 {
        bail!(
            "{}: every row has label {}, need at least 2 classes",
            path.display(),
            raw[0]
        );
    }
    let d = table.n_features;
    let (train, test) = split_by_fraction(
        &table.features,
        &y,
        raw.len(),
        d,
        test_fraction,
        seed,
        &path.display().to_string(),
    )?;
    Ok(Dataset {
        name: format!("csv:{}", path.display()),
        shape: [d, 1, 1],
        num_classes: raw.len(),
        train,
        test,
        value_range: None,
    })
}

/// Cells of one line with their 1-based character column, trimmed and unquoted.
fn cells(line: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut col = 1;
    line.split(',').map(move |raw| {
        let lead = raw.len() - raw.trim_start().len();
        let start = col + raw[..lead].chars().count();
        col += raw.chars().count() + 1;
        let c = raw.trim();
        let c = c
            .strip_prefix('"')
            .and_then(|c| c.strip_suffix('"'))
            .map_or(c, str::trim);
        (start, c)
    })
}

/// 1-based line and column (in bytes) of byte `offset`.
fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_detection_and_values() {
        let t = parse(b"label, a ,\"b\"\r\n1,0.5,2\n\n-1, 3e1 ,\"-4\"\n").unwrap();
        assert_eq!(t.header, Some(vec!["label".into(), "a".into(), "b".into()]));
        assert_eq!(t.labels, vec![1, -1]);
        assert_eq!(t.features, vec![0.5, 2.0, 30.0, -4.0]);
        assert_eq!(t.classes(), (vec![1, 0], vec![-1, 1]));
        let t = parse(b"3,1\n7.0,2\n").unwrap();
        assert_eq!(t.header, None);
        assert_eq!(t.labels, vec![3, 7]);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = |b: &[u8]| format!("{:#}", parse(b).unwrap_err());
        assert_eq!(
            e(b"y,a,b\n1,2,3\n0,4, x\n"),
            "line 3, column 6 (field 3): 'x' is not a finite number"
        );
        assert_eq!(
            e(b"1,2\n1.5,3\n"),
            "line 2, column 1: label '1.5' is not an integer class"
        );
        assert_eq!(
            e(b"1,2\n1,3,4\n"),
            "line 2: 3 cells, expected 2 as on line 1"
        );
        assert_eq!(
            e(b"1,2\n0,nan\n"),
            "line 2, column 3 (field 2): 'nan' is not a finite number"
        );
        assert!(e(b"1,2\n0,\xff\n").starts_with("line 2, column 3: invalid UTF-8"));
        assert_eq!(e(b"y,a\n"), "no data rows");
        assert!(e(b"5\n").contains("need a label"));
    }
}
