//! `gradlab export --csv`: one row per snapshot, per-layer columns, for pandas and spreadsheets.
//!
//! Two streaming passes: the first finds how many layer and auxiliary-loss columns the widest
//! snapshot needs (a `load` can change the depth mid-recording), the second writes rows.

use super::Recording;
use crate::metrics::Snapshot;
use crate::protocol::Event;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Per-layer quantities, in column order; each becomes `layer{i}_{name}`.
pub const LAYER_FIELDS: [&str; 5] = [
    "weight_grad_norm",
    "act_grad_norm",
    "act_rms",
    "gate_mean",
    "update_ratio",
];

/// Whole-network columns before the auxiliary and per-layer ones.
pub const FIXED_COLUMNS: [&str; 16] = [
    "step",
    "preset",
    "loss",
    "main_loss",
    "train_accuracy",
    "test_accuracy",
    "test_loss",
    "diverged",
    "learning_rate",
    "skip",
    "aux_enabled",
    "grad_norm",
    "grad_ratio_first_last",
    "grad_ratio_db",
    "measured_chi1",
    "last_command",
];

/// The column names for `layers` hidden layers and `aux` auxiliary losses.
pub fn columns(layers: usize, aux: usize) -> Vec<String> {
    let mut names: Vec<String> = FIXED_COLUMNS.iter().map(|s| s.to_string()).collect();
    names.extend((0..aux).map(|i| format!("aux_loss{i}")));
    for i in 0..layers {
        names.extend(LAYER_FIELDS.iter().map(|f| format!("layer{i}_{f}")));
    }
    names
}

/// Writes the CSV for the recording at `input` to `output`; returns the number of rows.
///
/// Corrupt lines are skipped with a warning on stderr, as is a truncated last line.
pub fn export_csv(input: &Path, output: &Path) -> Result<u64> {
    let open =
        || Recording::open(input).with_context(|| format!("cannot read {}", input.display()));
    let (mut layers, mut aux) = (0, 0);
    for record in open()? {
        if let Ok(Event::Snapshot(s)) = record.map(|line| line.event) {
            layers = layers.max(s.layers.len());
            aux = aux.max(s.aux_losses.len());
        }
    }
    let file =
        File::create(output).with_context(|| format!("cannot create {}", output.display()))?;
    let mut out = BufWriter::new(file);
    writeln!(out, "{}", columns(layers, aux).join(","))?;
    let mut recording = open()?;
    let mut rows = 0;
    let mut last_command = String::new();
    let mut row = String::new();
    for record in recording.by_ref() {
        match record.map(|line| line.event) {
            Ok(Event::Applied { command, .. }) => last_command = command.label(),
            Ok(Event::Snapshot(s)) => {
                row.clear();
                write_row(&mut row, &s, &last_command, layers, aux);
                writeln!(out, "{row}")?;
                rows += 1;
            }
            Ok(_) => {}
            Err(e) if !e.is_fatal() => eprintln!("gradlab: {}: {e}", input.display()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(tail) = recording.truncated() {
        eprintln!(
            "gradlab: {}: line {} is incomplete ({} bytes) and was skipped",
            input.display(),
            tail.line,
            tail.bytes
        );
    }
    out.flush()?;
    Ok(rows)
}

fn write_row(row: &mut String, s: &Snapshot, last_command: &str, layers: usize, aux: usize) {
    let num = |row: &mut String, v: f64| {
        let _ = write!(row, ",{v}");
    };
    let opt = |row: &mut String, v: Option<f64>| match v {
        Some(v) => {
            let _ = write!(row, ",{v}");
        }
        None => row.push(','),
    };
    let _ = write!(row, "{}", s.step);
    row.push(',');
    row.push_str(&quote(&s.preset));
    num(row, s.loss);
    num(row, s.main_loss);
    opt(row, s.train_accuracy);
    opt(row, s.test_accuracy);
    opt(row, s.test_loss);
    let _ = write!(row, ",{}", s.diverged);
    num(row, s.learning_rate);
    row.push(',');
    row.push_str(&quote(&s.skip));
    let _ = write!(row, ",{}", s.aux_enabled);
    num(row, s.grad_norm);
    num(row, s.grad_ratio_first_last);
    num(row, s.grad_ratio_db);
    num(row, s.measured_chi1);
    row.push(',');
    row.push_str(&quote(last_command));
    for i in 0..aux {
        opt(row, s.aux_losses.get(i).copied());
    }
    for i in 0..layers {
        match s.layers.get(i) {
            Some(l) => {
                num(row, l.weight_grad_norm);
                num(row, l.act_grad_norm);
                num(row, l.act_rms);
                opt(row, l.gate_mean);
                num(row, l.update_ratio);
            }
            None => row.push_str(&",".repeat(LAYER_FIELDS.len())),
        }
    }
}

/// RFC 4180 quoting, only where needed.
fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
