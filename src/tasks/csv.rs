//! Reading a user's CSV file into a task.
//!
//! The format is deliberately plain: fields are split on commas and trimmed, with no quoting
//! or escaping, because the lab only needs numeric tables. A first line containing any field
//! that is not a number is taken as a header; blank lines and lines starting with `#` are
//! skipped. Errors name the file, the 1-based line and column, and what was expected.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::{Split, TaskKind, standardise};

/// Fewer rows than this cannot give a meaningful train/test split.
const MIN_ROWS: usize = 5;

/// Labels become output logits, so an absurd label would build an absurd network.
const MAX_CLASSES: usize = 4096;

/// A parsed and standardised table, not yet split.
#[derive(Debug)]
pub(super) struct Table {
    pub kind: TaskKind,
    pub input_dims: usize,
    pub rows: Split,
}

/// Reads `path` and parses it; the path as shown in errors is the resolved one, so the user
/// sees which file was actually opened.
pub(super) fn load(path: &Path, classification: bool) -> Result<Table> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {shown}"))?;
    parse(&text, &shown, classification)
}

/// Parses CSV `text`; `file` only labels error messages.
///
/// Inputs are standardised per column over the whole file (mean 0, standard deviation 1), so
/// raw units do not decide which layers saturate. Regression targets are standardised too,
/// so that, as for the teacher task, predicting the mean scores MSE = 1.
pub(super) fn parse(text: &str, file: &str, classification: bool) -> Result<Table> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut columns: Option<(usize, usize)> = None; // (count, line that set it)
    let mut inputs = Vec::new();
    let mut labels = Vec::new();
    let mut targets = Vec::new();
    let mut rows = 0usize;
    let mut saw_header = false;

    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        if line == 1 && fields.iter().any(|f| f.parse::<f64>().is_err()) {
            saw_header = true;
            continue;
        }
        let count = match columns {
            Some((count, first)) => {
                if fields.len() != count {
                    bail!(
                        "{file}:{line}: expected {count} columns like line {first}, found {}",
                        fields.len()
                    );
                }
                count
            }
            None => {
                if fields.len() < 2 {
                    bail!(
                        "{file}:{line}: expected at least 2 columns (features, then the {}), found 1",
                        if classification { "label" } else { "target" }
                    );
                }
                columns = Some((fields.len(), line));
                fields.len()
            }
        };
        for (col, field) in fields[..count - 1].iter().enumerate() {
            inputs.push(number(field, file, line, col + 1)?);
        }
        let last = fields[count - 1];
        if classification {
            labels.push(label(last, file, line, count)?);
        } else {
            targets.push(number(last, file, line, count)?);
        }
        rows += 1;
    }

    if rows == 0 {
        let what = if saw_header {
            "has a header but no data rows"
        } else {
            "is empty"
        };
        bail!("{file}: the file {what}; expected at least {MIN_ROWS} data rows");
    }
    if rows < MIN_ROWS {
        bail!("{file}: expected at least {MIN_ROWS} data rows, found {rows}");
    }
    let input_dims = columns.map_or(1, |(count, _)| count - 1);
    standardise(&mut inputs, input_dims);

    let kind = if classification {
        let classes = labels.iter().max().map_or(0, |&max| max + 1);
        if classes < 2 {
            bail!(
                "{file}: every class label is 0; a classification task needs at least 2 classes \
                 (set classification: false for a regression target)"
            );
        }
        TaskKind::Classification { classes }
    } else {
        standardise(&mut targets, 1);
        TaskKind::Regression { outputs: 1 }
    };
    Ok(Table {
        kind,
        input_dims,
        rows: Split {
            inputs,
            labels,
            targets,
            len: rows,
        },
    })
}

fn number(field: &str, file: &str, line: usize, col: usize) -> Result<f32> {
    match field.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => bail!("{file}:{line}:{col}: expected a finite number, found {field:?}"),
        Err(_) => bail!("{file}:{line}:{col}: expected a number, found {field:?}"),
    }
}

/// Accepts integral floats such as `2.0` or `2.000e+00`, since tools like `numpy.savetxt`
/// write every column, labels included, in float notation.
fn label(field: &str, file: &str, line: usize, col: usize) -> Result<usize> {
    let value = field
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0 && v.fract() == 0.0);
    match value {
        Some(v) if v < MAX_CLASSES as f64 => Ok(v as usize),
        Some(_) => bail!(
            "{file}:{line}:{col}: class label {field} is too large (labels must be below {MAX_CLASSES})"
        ),
        None => bail!(
            "{file}:{line}:{col}: expected a non-negative integer class label, found {field:?}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TaskSpec;
    use crate::tasks::build_task;

    fn error(text: &str, classification: bool) -> String {
        match parse(text, "data.csv", classification) {
            Ok(table) => panic!("expected an error, parsed {table:?}"),
            Err(e) => e.to_string(),
        }
    }

    const GOOD: &str = "\
x1, x2, class
# a comment, then a blank line

1.0, 10, 0
2.0, 20, 1
3.0, 30, 2
4.0, 40, 0
5.0, 50, 1.0
";

    #[test]
    fn good_file_with_header_comments_and_blank_lines() {
        let table = match parse(GOOD, "data.csv", true) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(table.kind, TaskKind::Classification { classes: 3 });
        assert_eq!(table.input_dims, 2);
        assert_eq!(table.rows.len, 5);
        assert_eq!(table.rows.labels, [0, 1, 2, 0, 1]);
        assert!(table.rows.targets.is_empty());
        // Both columns are 1..5 up to scale, so they standardise to the same values.
        let col0: Vec<f32> = table.rows.inputs.iter().step_by(2).copied().collect();
        let col1: Vec<f32> = table
            .rows
            .inputs
            .iter()
            .skip(1)
            .step_by(2)
            .copied()
            .collect();
        for (a, b) in col0.iter().zip(&col1) {
            assert!((a - b).abs() < 1e-6);
        }
        let mean: f32 = col0.iter().sum::<f32>() / 5.0;
        let var: f32 = col0.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 5.0;
        assert!(
            mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5,
            "{mean} {var}"
        );
        assert!((col0[0] + std::f32::consts::SQRT_2).abs() < 1e-5);
    }

    #[test]
    fn header_only_skipped_on_line_one() {
        let numeric_first = "1,2,0\n2,3,1\n3,4,0\n4,5,1\n5,6,0\n";
        match parse(numeric_first, "data.csv", true) {
            Ok(t) => assert_eq!(t.rows.len, 5, "a numeric first line is data"),
            Err(e) => panic!("{e}"),
        }
        let late_header = "1,2,0\na,b,c\n";
        assert_eq!(
            error(late_header, true),
            "data.csv:2:1: expected a number, found \"a\""
        );
        // Any one non-numeric field makes line 1 a header.
        let partial = "x,2,0\n1,2,0\n2,3,1\n3,4,0\n4,5,1\n5,6,0\n";
        match parse(partial, "data.csv", true) {
            Ok(t) => assert_eq!(t.rows.len, 5),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn regression_targets_are_read_and_standardised() {
        let text = "a,t\n1,10\n2,20\n3,30\n4,40\n5,50\n";
        let table = match parse(text, "data.csv", false) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(table.kind, TaskKind::Regression { outputs: 1 });
        assert!(table.rows.labels.is_empty());
        assert_eq!(table.rows.targets.len(), 5);
        assert!((table.rows.targets[4] - std::f32::consts::SQRT_2).abs() < 1e-5);
    }

    #[test]
    fn ragged_row_names_line_and_expected_columns() {
        let text = "a,b,c,d\n1,2,3,0\n1,2,3,1\n1,2,3,0\n\n1,2,1\n";
        assert_eq!(
            error(text, true),
            "data.csv:6: expected 4 columns like line 2, found 3"
        );
    }

    #[test]
    fn non_numeric_field_names_line_and_column() {
        let text = "1,2,3,0\n1,2,3,1\n1, abc ,3,0\n";
        assert_eq!(
            error(text, true),
            "data.csv:3:2: expected a number, found \"abc\""
        );
        assert_eq!(
            error("1,2,0\n1,,1\n", true),
            "data.csv:2:2: expected a number, found \"\""
        );
        assert_eq!(
            error("1,2,0\n1,NaN,1\n", true),
            "data.csv:2:2: expected a finite number, found \"NaN\""
        );
        assert_eq!(
            error("1,2,0\n1,2,x\n", false),
            "data.csv:2:3: expected a number, found \"x\""
        );
    }

    #[test]
    fn bad_labels_name_line_and_column() {
        assert_eq!(
            error("1,2,3,0\n1,2,3,2.5\n", true),
            "data.csv:2:4: expected a non-negative integer class label, found \"2.5\""
        );
        assert_eq!(
            error("1,2,3,-1\n", true),
            "data.csv:1:4: expected a non-negative integer class label, found \"-1\""
        );
        assert_eq!(
            error("1,2,3,1e9\n", true),
            "data.csv:1:4: class label 1e9 is too large (labels must be below 4096)"
        );
    }

    #[test]
    fn too_few_rows_single_class_and_empty_files_are_errors() {
        assert_eq!(
            error("", true),
            "data.csv: the file is empty; expected at least 5 data rows"
        );
        assert_eq!(
            error("x,y\n\n# nothing\n", true),
            "data.csv: the file has a header but no data rows; expected at least 5 data rows"
        );
        assert_eq!(
            error("1,0\n2,1\n3,0\n", true),
            "data.csv: expected at least 5 data rows, found 3"
        );
        assert!(
            error("1,0\n2,0\n3,0\n4,0\n5,0\n", true)
                .starts_with("data.csv: every class label is 0")
        );
        assert_eq!(
            error("1\n2\n", true),
            "data.csv:1: expected at least 2 columns (features, then the label), found 1"
        );
    }

    #[test]
    fn build_task_reads_relative_path_from_base_dir() {
        let dir = std::env::temp_dir().join(format!("gradlab-tasks-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        let mut text = String::from("f1,f2,label\n");
        for i in 0..20 {
            text.push_str(&format!("{},{},{}\n", i, i * i, i % 3));
        }
        if let Err(e) = std::fs::write(dir.join("toy.csv"), &text) {
            panic!("cannot write fixture: {e}");
        }
        let spec = TaskSpec::Csv {
            path: "toy.csv".into(),
            classification: true,
        };
        let task = match build_task(&spec, 1, Some(&dir)) {
            Ok(t) => t,
            Err(e) => panic!("{e:#}"),
        };
        assert_eq!(task.name, "toy.csv");
        assert_eq!(task.kind, TaskKind::Classification { classes: 3 });
        assert_eq!(task.input_dims, 2);
        assert_eq!((task.train.len, task.test.len), (16, 4));
        let again = build_task(&spec, 1, Some(&dir)).ok();
        assert_eq!(again.as_ref(), Some(&task));

        let missing = TaskSpec::Csv {
            path: "absent.csv".into(),
            classification: true,
        };
        match build_task(&missing, 1, Some(&dir)) {
            Ok(_) => panic!("a missing file must be an error"),
            Err(e) => {
                let expected = format!("cannot read {}", dir.join("absent.csv").display());
                assert_eq!(e.to_string(), expected);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
