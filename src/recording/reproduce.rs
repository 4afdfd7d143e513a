//! `gradlab reproduce`: run a recording's preset again with its commands at their steps and
//! compare every snapshot field with what was recorded.
//!
//! The recording is streamed twice (once for the schedule, once in step with the re-run), so a
//! long recording is compared in constant memory.

use super::Recording;
use crate::learner::build_learner;
use crate::metrics::Snapshot;
use crate::protocol::{Command, Event, RunState};
use crate::trainer::{MetricsSink, run_headless};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;

/// The largest difference between a recorded and a reproduced number.
#[derive(Clone, Debug, PartialEq)]
pub struct Deviation {
    /// Step of the snapshot.
    pub step: u64,
    /// JSON path of the field, e.g. `layers[3].act_grad_norm`.
    pub field: String,
    /// The recorded value (`None` for null, i.e. non-finite, or a non-number).
    pub recorded: Option<f64>,
    /// The reproduced value.
    pub reproduced: Option<f64>,
    /// |recorded − reproduced| / max(|recorded|, |reproduced|); 1 when only one is a number.
    pub relative: f64,
}

/// What comparing a re-run with its recording found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Snapshots present in both and compared field by field.
    pub compared: u64,
    /// Recorded snapshots whose step the re-run never measured.
    pub missing: u64,
    /// Fields that differ (numbers by any amount, other values at all).
    pub differing_fields: u64,
    /// The largest relative deviation, when any field differs.
    pub largest: Option<Deviation>,
}

impl Report {
    /// Whether every recorded snapshot was reproduced exactly.
    pub fn identical(&self) -> bool {
        self.missing == 0 && self.differing_fields == 0
    }
}

/// The run a recording describes: its commands and how far it went.
struct Plan {
    schedule: Vec<(u64, Command)>,
    steps: u64,
}

fn plan<R: BufRead>(recording: Recording<R>) -> Result<Plan> {
    let mut schedule = Vec::new();
    let mut last_snapshot = None;
    let mut finished = None;
    let mut started = 0;
    for record in recording {
        match record?.event {
            Event::Applied { step, command } => match command {
                Command::Reset | Command::LoadPreset(_) => bail!(
                    "the recording restarts training at step {step} ({}); reproduce replays one run only",
                    command.label()
                ),
                _ => schedule.push((step, command)),
            },
            Event::Snapshot(s) => last_snapshot = Some(s.step),
            Event::State {
                step,
                state: RunState::Finished,
            } => finished = Some(step),
            Event::Started { .. } => {
                started += 1;
                if started > 1 {
                    bail!("the recording holds more than one run; reproduce replays one run only");
                }
            }
            _ => {}
        }
    }
    // An unfinished run (interrupted, killed, diverged) is re-run one step past its last
    // snapshot, so that snapshot is measured as part of an updating step as it was recorded.
    let steps = match (finished, last_snapshot) {
        (Some(step), _) => step,
        (None, Some(step)) => step + 1,
        (None, None) => bail!("the recording holds no snapshot to compare"),
    };
    Ok(Plan { schedule, steps })
}

/// Re-runs the recording at `path` and compares; `base_dir` resolves relative CSV task paths.
pub fn reproduce(path: &Path, base_dir: Option<&Path>) -> Result<Report> {
    let open = || Recording::open(path).with_context(|| format!("cannot read {}", path.display()));
    let plan = plan(open()?)?;
    let recording = open()?;
    let experiment = recording.header().preset.clone();
    let mut trainer = build_learner(experiment, base_dir)?;
    let mut sink = Comparer {
        recorded: recording,
        pending: None,
        report: Report::default(),
        error: None,
    };
    run_headless(trainer.as_mut(), plan.steps, &plan.schedule, &mut sink);
    if let Some(error) = sink.error {
        return Err(error);
    }
    // Recorded snapshots after the re-run's last one were never reproduced.
    let mut report = sink.report;
    report.missing += u64::from(sink.pending.is_some());
    for record in sink.recorded {
        if let Event::Snapshot(_) = record?.event {
            report.missing += 1;
        }
    }
    Ok(report)
}

/// Compares each re-run snapshot with the recorded one of the same step, in lock step.
struct Comparer<R> {
    recorded: Recording<R>,
    /// A recorded snapshot ahead of the re-run, waiting for its step.
    pending: Option<Snapshot>,
    report: Report,
    error: Option<anyhow::Error>,
}

impl<R: BufRead> Comparer<R> {
    fn next_recorded(&mut self) -> Result<Option<Snapshot>> {
        if let Some(s) = self.pending.take() {
            return Ok(Some(s));
        }
        for record in self.recorded.by_ref() {
            if let Event::Snapshot(s) = record?.event {
                return Ok(Some(*s));
            }
        }
        Ok(None)
    }

    /// Returns false once the recording has no more snapshots.
    fn compare(&mut self, reproduced: &Snapshot) -> Result<bool> {
        loop {
            let Some(recorded) = self.next_recorded()? else {
                return Ok(false);
            };
            if recorded.step < reproduced.step {
                self.report.missing += 1;
                continue;
            }
            if recorded.step > reproduced.step {
                self.pending = Some(recorded);
                return Ok(true);
            }
            self.report.compared += 1;
            let a = serde_json::to_value(&recorded)?;
            let b = serde_json::to_value(reproduced)?;
            diff(&a, &b, &mut String::new(), recorded.step, &mut self.report);
            return Ok(true);
        }
    }
}

impl<R: BufRead> MetricsSink for Comparer<R> {
    fn send(&mut self, event: Event) -> bool {
        let Event::Snapshot(snapshot) = event else {
            return true;
        };
        match self.compare(&snapshot) {
            Ok(more) => more,
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }
}

fn diff(a: &Value, b: &Value, path: &mut String, step: u64, report: &mut Report) {
    let len = path.len();
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (key, va) in x {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                diff(va, y.get(key).unwrap_or(&Value::Null), path, step, report);
                path.truncate(len);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                path.push_str(&format!("[{i}]"));
                diff(va, vb, path, step, report);
                path.truncate(len);
            }
        }
        _ if a == b => {}
        _ => {
            let (ra, rb) = (a.as_f64(), b.as_f64());
            let relative = match (ra, rb) {
                (Some(x), Some(y)) => (x - y).abs() / x.abs().max(y.abs()).max(f64::MIN_POSITIVE),
                _ => 1.0,
            };
            report.differing_fields += 1;
            if report
                .largest
                .as_ref()
                .is_none_or(|d| relative > d.relative)
            {
                report.largest = Some(Deviation {
                    step,
                    field: path.clone(),
                    recorded: ra,
                    reproduced: rb,
                    relative,
                });
            }
        }
    }
}
