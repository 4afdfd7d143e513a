//! `gradlab reproduce`: run each of a recording's runs again, from the experiment it started
//! with and with its commands at their steps, and compare every snapshot field with what was
//! recorded.
//!
//! A run starts from its `started` line's experiment (the header's for a headless run 1); the
//! commands applied before its end form its schedule (a reset or a loaded preset is what ends
//! it). The recording is streamed once to index the runs and once per run in step with the
//! re-run, so a long recording is compared in constant memory.

use super::runs::{self, Damage, RunInfo};
use super::{Header, VERSION};
use crate::learner::build_learner;
use crate::metrics::Snapshot;
use crate::protocol::{Event, Line};
use crate::trainer::{MetricsSink, run_headless};
use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

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
    /// The recorded value as JSON, for fields that are not numbers (labels, flags).
    pub recorded_json: String,
    /// The reproduced value as JSON.
    pub reproduced_json: String,
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

/// How far to re-run: a finished run to its budget; an unfinished one (reset, interrupted,
/// killed, diverged) one step past its last snapshot, so that snapshot is measured as part of
/// an updating step as it was recorded.
fn steps(run: &RunInfo) -> u64 {
    run.finished.unwrap_or(run.last_step + 1)
}

/// One run's result.
#[derive(Clone, Debug, PartialEq)]
pub struct RunReport {
    /// The run's number in the file.
    pub run: u32,
    /// The preset it started from.
    pub preset: String,
    /// What comparing found.
    pub report: Report,
}

/// Every run's result, and what can be said about the file as a whole.
#[derive(Clone, Debug, PartialEq)]
pub struct Reproduction {
    /// One entry per run compared, in file order.
    pub runs: Vec<RunReport>,
    /// The file comes from an older format or build: differences are expected, not alarming.
    pub older_build: Option<String>,
    /// Lines of the recording that were skipped.
    pub damage: Damage,
}

impl Reproduction {
    /// All runs together.
    pub fn total(&self) -> Report {
        let mut total = Report::default();
        for r in &self.runs {
            total.compared += r.report.compared;
            total.missing += r.report.missing;
            total.differing_fields += r.report.differing_fields;
            if let Some(d) = &r.report.largest
                && total
                    .largest
                    .as_ref()
                    .is_none_or(|t| d.relative > t.relative)
            {
                total.largest = Some(d.clone());
            }
        }
        total
    }

    /// Whether every run was reproduced exactly.
    pub fn identical(&self) -> bool {
        self.runs.iter().all(|r| r.report.identical())
    }
}

/// Why a file's numbers may legitimately differ from this build's: it was written by another
/// gradlab, or in an older format.
fn older_build(header: &Header) -> Option<String> {
    let this = env!("CARGO_PKG_VERSION");
    if header.version < VERSION {
        Some(format!(
            "recorded in format version {} by gradlab {}: recordings of older builds need not reproduce bit-identically",
            header.version, header.gradlab_version
        ))
    } else if header.gradlab_version != this {
        Some(format!(
            "recorded by gradlab {} (this is {this}): recordings of other builds need not reproduce bit-identically",
            header.gradlab_version
        ))
    } else if header.engine != Some(crate::model::ENGINE_REVISION) {
        let there = header.engine.map_or("an older engine".to_string(), |r| {
            format!("engine revision {r}")
        });
        Some(format!(
            "recorded by {there} (this build's is revision {}): the training step sums in a \
             different order (e.g. batches cut into shards), so the numbers need not reproduce \
             bit-identically",
            crate::model::ENGINE_REVISION
        ))
    } else {
        let here = crate::model::kernels::cpu_feature_level();
        match &header.cpu_features {
            Some(there) if there != here => Some(format!(
                "recorded on a CPU at feature level {there} (this one is {here}): its kernels sum \
                 in a different order, so the numbers need not reproduce bit-identically"
            )),
            _ => None,
        }
    }
}

/// Re-runs each run of the recording at `path` (or only `run`) and compares; `base_dir`
/// resolves relative CSV task paths. Progress goes to stderr when it takes over a second.
pub fn reproduce(path: &Path, run: Option<u32>, base_dir: Option<&Path>) -> Result<Reproduction> {
    let index = runs::index(path)?;
    let selected: Vec<&RunInfo> = index
        .select(run)?
        .into_iter()
        .filter(|r| r.snapshots > 0)
        .collect();
    if selected.is_empty() {
        bail!(
            "{}: the recording holds no snapshot to compare",
            path.display()
        );
    }
    let progress = Progress::new(selected.iter().map(|r| steps(r)).sum());
    let mut results = Vec::new();
    for info in selected {
        progress.start_run(info);
        let report = reproduce_run(path, info, base_dir, &progress)?;
        progress.finish_run(info);
        results.push(RunReport {
            run: info.run,
            preset: info.experiment.name.clone(),
            report,
        });
    }
    progress.bar.finish_and_clear();
    Ok(Reproduction {
        runs: results,
        older_build: older_build(&index.header),
        damage: index.damage,
    })
}

fn reproduce_run(
    path: &Path,
    info: &RunInfo,
    base_dir: Option<&Path>,
    progress: &Progress,
) -> Result<Report> {
    let mut trainer = build_learner(info.experiment.clone(), base_dir)?;
    let mut sink = Comparer {
        recorded: Box::new(runs::run_lines(path, info)?),
        pending: None,
        report: Report::default(),
        error: None,
        progress,
    };
    run_headless(trainer.as_mut(), steps(info), &info.schedule(), &mut sink);
    if let Some(error) = sink.error {
        return Err(error);
    }
    // Recorded snapshots after the re-run's last one were never reproduced.
    let mut report = sink.report;
    report.missing += u64::from(sink.pending.is_some());
    for line in sink.recorded {
        if let Event::Snapshot(_) = line?.event {
            report.missing += 1;
        }
    }
    Ok(report)
}

/// A progress bar on stderr that only appears once reproducing has taken a second.
struct Progress {
    bar: ProgressBar,
    since: Instant,
    /// Steps of the runs already done.
    done: std::cell::Cell<u64>,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps, {eta} left")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Self {
            bar,
            since: Instant::now(),
            done: std::cell::Cell::new(0),
        }
    }

    fn start_run(&self, info: &RunInfo) {
        self.bar
            .set_message(format!("run {} ({})", info.run, info.experiment.name));
    }

    fn finish_run(&self, info: &RunInfo) {
        self.done.set(self.done.get() + steps(info));
        self.bar.set_position(self.done.get());
    }

    /// The re-run of the current run measured `step`.
    fn at(&self, step: u64) {
        if self.bar.is_hidden() && self.since.elapsed() > Duration::from_secs(1) {
            // indicatif draws nothing when stderr is not a terminal, so logs stay clean.
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        self.bar.set_position(self.done.get() + step);
    }
}

/// Compares each re-run snapshot with the recorded one of the same step, in lock step.
struct Comparer<'a> {
    recorded: Box<dyn Iterator<Item = Result<Line>> + 'a>,
    /// A recorded snapshot ahead of the re-run, waiting for its step.
    pending: Option<Snapshot>,
    report: Report,
    error: Option<anyhow::Error>,
    progress: &'a Progress,
}

impl Comparer<'_> {
    fn next_recorded(&mut self) -> Result<Option<Snapshot>> {
        if let Some(s) = self.pending.take() {
            return Ok(Some(s));
        }
        for line in self.recorded.by_ref() {
            if let Event::Snapshot(s) = line?.event {
                return Ok(Some(*s));
            }
        }
        Ok(None)
    }

    /// Returns false once the recording has no more snapshots.
    fn compare(&mut self, reproduced: &Snapshot) -> Result<bool> {
        self.progress.at(reproduced.step);
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

impl MetricsSink for Comparer<'_> {
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
                    recorded_json: a.to_string(),
                    reproduced_json: b.to_string(),
                    relative,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_preset;

    #[test]
    fn another_cpu_feature_level_is_named_as_the_reason_numbers_may_differ() {
        let experiment = load_preset("plain-shallow").expect("built-in preset");
        let mut header = Header::new(&experiment, Some(10));
        assert_eq!(older_build(&header), None, "same build, same CPU");
        header.cpu_features = Some("a-level-no-cpu-has".into());
        let why = older_build(&header).expect("a reason");
        assert!(why.contains("a-level-no-cpu-has"), "{why}");
        assert!(
            why.contains(crate::model::kernels::cpu_feature_level()),
            "{why}"
        );
        // Recordings from before the field existed are not blamed on the CPU.
        header.cpu_features = None;
        assert_eq!(older_build(&header), None);
    }

    #[test]
    fn another_engine_revision_is_named_as_the_reason_numbers_may_differ() {
        let experiment = load_preset("plain-shallow").expect("built-in preset");
        let mut header = Header::new(&experiment, Some(10));
        assert_eq!(header.engine, Some(crate::model::ENGINE_REVISION));
        header.engine = None;
        let why = older_build(&header).expect("a reason");
        assert!(why.contains("older engine"), "{why}");
        header.engine = Some(crate::model::ENGINE_REVISION - 1);
        let why = older_build(&header).expect("a reason");
        assert!(
            why.contains(&format!("revision {}", crate::model::ENGINE_REVISION - 1)),
            "{why}"
        );
    }
}
