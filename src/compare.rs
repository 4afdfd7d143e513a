//! Several experiments trained side by side on the same data stream (`gradlab compare`).
//!
//! The MLP trainers draw their batches and initial weights from the seed alone, so runs that
//! share a seed and a model shape start from the same weights and see the same batches; what
//! differs is only what the presets (or their overrides) change. Each run is a lane of the
//! one [`Driver`], stepped by the function a lone run is stepped by, so a run in a comparison
//! takes exactly the steps it would take alone.

use crate::config::Experiment;
use crate::learner::build_learner;
use crate::metrics::Snapshot;
use crate::protocol::{Event, LaneEvent};
use crate::report::{Analyses, RunReport, build_report};
use crate::trainer::{Driver, LaneStart};
use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// One configuration of a comparison: a label for the table and the experiment to run.
#[derive(Clone, Debug)]
pub struct CompareEntry {
    /// What the table calls it (the `--preset` argument).
    pub label: String,
    /// The experiment, overrides applied.
    pub experiment: Experiment,
    /// Folder relative CSV task paths are resolved against.
    pub base_dir: Option<PathBuf>,
}

/// One run's outcome in a comparison: its report and how fast it trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareRun {
    /// The entry's label.
    pub label: String,
    /// Updates per second of wall-clock time over the whole comparison.
    pub steps_per_sec: f64,
    /// Updates per second of the time this run's own steps took (its thread's share).
    pub busy_steps_per_sec: f64,
    /// The same report `gradlab run --json` prints.
    #[serde(flatten)]
    pub report: RunReport,
}

/// Trains every entry for `steps` updates in lock-step on one [`Driver`], dealing each round
/// over at most `threads` threads (each trainer is single-threaded), and reports each. Results
/// do not depend on `threads`.
pub fn run_compare(
    entries: &[CompareEntry],
    steps: u64,
    threads: usize,
    analyses: &Analyses,
) -> Result<Vec<CompareRun>> {
    let threads = threads.clamp(1, entries.len().max(1));
    let mut driver = Driver::new(threads, false);
    // A run that diverges has no final measurement; its newest snapshot stands in.
    let mut newest: Vec<Option<Snapshot>> = vec![None; entries.len()];
    let mut discard = |lane_event: LaneEvent| {
        if let (Event::Snapshot(s), Some(slot)) =
            (lane_event.event, newest.get_mut(lane_event.lane))
        {
            *slot = Some(*s);
        }
        true
    };
    for entry in entries {
        let learner = build_learner(entry.experiment.clone(), entry.base_dir.as_deref())
            .with_context(|| format!("cannot build {}", entry.label))?;
        let start =
            LaneStart::running(learner, entry.base_dir.clone()).with_budget(steps, Vec::new());
        driver.add(start, &mut discard);
    }
    let started = Instant::now();
    while driver.wants_steps() {
        driver.round(&mut discard);
    }
    let wall = started.elapsed().as_secs_f64();
    driver
        .finish()
        .into_iter()
        .zip(entries)
        .zip(newest)
        .map(|((lane, entry), newest)| {
            let label = entry.label.clone();
            let mut learner = lane
                .learner
                .ok_or_else(|| anyhow!("{label}: the run crashed"))?;
            let snapshot = lane
                .last
                .or(newest)
                .ok_or_else(|| anyhow!("{label}: the run produced no measurement"))?;
            let taken = learner.step() as f64;
            Ok(CompareRun {
                steps_per_sec: taken / wall.max(1e-9),
                busy_steps_per_sec: taken / lane.busy.as_secs_f64().max(1e-9),
                report: build_report(learner.as_mut(), snapshot, analyses),
                label,
            })
        })
        .collect()
}
