//! `gradlab export --csv`: one row per snapshot, per-layer and per-time-step columns, for
//! pandas and spreadsheets.
//!
//! The first pass ([`runs::index`]) finds the runs and how many layer, auxiliary-loss and
//! time-step columns the widest snapshot needs (a loaded preset can change the depth); the
//! second writes each run's rows, led by its run number, so rows of two runs never mix.
//! Hidden layers are numbered 1..n from the input (`layer1_…` is the first hidden layer), time
//! steps 1..T from the first input, as everywhere else in gradlab.

use super::output::{check_output, write_whole};
use super::runs::{self, Damage, RunInfo};
use crate::metrics::{LayerMetrics, Snapshot, TimestepMetrics};
use crate::protocol::Event;
use anyhow::{Context, Result};
use std::path::Path;

/// Per-layer quantities, in column order; each becomes `layer{l}_{name}`, l = 1..n.
pub const LAYER_FIELDS: [&str; 6] = [
    "weight_grad_norm",
    "act_grad_norm",
    "act_rms",
    "gate_mean",
    "gate_bias_mean",
    "update_ratio",
];

/// Per-time-step quantities of recurrent nets; each becomes `t{t}_{name}`, t = 1..T.
pub const TIMESTEP_FIELDS: [&str; 3] = ["hidden_grad_norm", "forget_gate_mean", "update_gate_mean"];

/// Whole-network columns before the auxiliary, per-layer and per-time-step ones.
pub const FIXED_COLUMNS: [&str; 17] = [
    "run",
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

/// How many of each repeated column group a CSV needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Widths {
    /// Hidden layers.
    pub layers: usize,
    /// Auxiliary losses.
    pub aux: usize,
    /// Time steps; 0 leaves out the recurrent columns (`cell` and `t…`) altogether.
    pub timesteps: usize,
}

impl Widths {
    fn of(runs: &[&RunInfo]) -> Self {
        runs.iter().fold(Self::default(), |w, r| Self {
            layers: w.layers.max(r.layers),
            aux: w.aux.max(r.aux),
            timesteps: w.timesteps.max(r.timesteps),
        })
    }
}

/// The column names for a CSV of these widths.
pub fn columns(widths: Widths) -> Vec<String> {
    let mut names: Vec<String> = FIXED_COLUMNS.iter().map(|s| s.to_string()).collect();
    names.extend((1..=widths.aux).map(|i| format!("aux_loss{i}")));
    for l in 1..=widths.layers {
        names.extend(LAYER_FIELDS.iter().map(|f| format!("layer{l}_{f}")));
    }
    if widths.timesteps > 0 {
        names.push("cell".into());
        for t in 1..=widths.timesteps {
            names.extend(TIMESTEP_FIELDS.iter().map(|f| format!("t{t}_{f}")));
        }
    }
    names
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct Exported {
    /// Rows (snapshots) written.
    pub rows: u64,
    /// Runs they came from.
    pub runs: usize,
    /// Lines of the recording that were skipped.
    pub damage: Damage,
}

/// Writes the CSV of the recording at `input` (every run, or only `run`) to `output`.
///
/// The output is written whole to a temporary file beside it and renamed into place, so a
/// failure never leaves half a CSV; an existing output is replaced only with `force`. Corrupt
/// lines are named on stderr once and skipped.
pub fn export_csv(input: &Path, output: &Path, run: Option<u32>, force: bool) -> Result<Exported> {
    check_output(input, output, force)?;
    let index = runs::index(input)?;
    let selected = index.select(run)?;
    let widths = Widths::of(&selected);
    let mut rows = 0;
    write_whole(output, force, |file| {
        let mut csv = csv::Writer::from_writer(std::io::BufWriter::new(file));
        csv.write_record(columns(widths))?;
        let mut record = Vec::new();
        for info in &selected {
            let mut last_command = String::new();
            for line in runs::run_lines(input, info)? {
                match line?.event {
                    Event::Applied { command, .. } => last_command = command.label(),
                    Event::Snapshot(s) => {
                        row(&mut record, info.run, &s, &last_command, widths);
                        csv.write_record(&record)?;
                        rows += 1;
                    }
                    _ => {}
                }
            }
        }
        csv.flush()?;
        Ok(())
    })
    .with_context(|| format!("cannot export {}", input.display()))?;
    Ok(Exported {
        rows,
        runs: selected.len(),
        damage: index.damage,
    })
}

/// Fills `record` with one snapshot's cells, empty where a value is absent.
fn row(record: &mut Vec<String>, run: u32, s: &Snapshot, last_command: &str, widths: Widths) {
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| v.to_string());
    record.clear();
    record.extend([
        run.to_string(),
        s.step.to_string(),
        s.preset.clone(),
        s.loss.to_string(),
        s.main_loss.to_string(),
        opt(s.train_accuracy),
        opt(s.test_accuracy),
        opt(s.test_loss),
        s.diverged.to_string(),
        s.learning_rate.to_string(),
        s.skip.clone(),
        s.aux_enabled.to_string(),
        s.grad_norm.to_string(),
        s.grad_ratio_first_last.to_string(),
        s.grad_ratio_db.to_string(),
        s.measured_chi1.to_string(),
        last_command.to_string(),
    ]);
    record.extend((0..widths.aux).map(|i| opt(s.aux_losses.get(i).copied())));
    for i in 0..widths.layers {
        match s.layers.get(i) {
            Some(l) => record.extend(layer_cells(l)),
            None => record.extend(std::iter::repeat_n(String::new(), LAYER_FIELDS.len())),
        }
    }
    if widths.timesteps > 0 {
        record.push(s.cell.clone().unwrap_or_default());
        for i in 0..widths.timesteps {
            match s.timesteps.get(i) {
                Some(t) => record.extend(timestep_cells(t)),
                None => record.extend(std::iter::repeat_n(String::new(), TIMESTEP_FIELDS.len())),
            }
        }
    }
}

/// One layer's cells in [`LAYER_FIELDS`] order.
fn layer_cells(l: &LayerMetrics) -> [String; 6] {
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| v.to_string());
    [
        l.weight_grad_norm.to_string(),
        l.act_grad_norm.to_string(),
        l.act_rms.to_string(),
        opt(l.gate_mean),
        opt(l.gate_bias_mean),
        l.update_ratio.to_string(),
    ]
}

/// One time step's cells in [`TIMESTEP_FIELDS`] order.
fn timestep_cells(t: &TimestepMetrics) -> [String; 3] {
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| v.to_string());
    [
        t.hidden_grad_norm.to_string(),
        opt(t.forget_gate_mean),
        opt(t.update_gate_mean),
    ]
}
