//! Several experiments trained side by side on the same data stream (`gradlab compare`).
//!
//! The MLP trainers draw their batches and initial weights from the seed alone, so runs that
//! share a seed and a model shape start from the same weights and see the same batches; what
//! differs is only what the presets (or their overrides) change. Each run is stepped with
//! [`advance_headless`], the loop body of a lone headless run, so a run in a comparison takes
//! exactly the steps it would take alone.

use crate::config::Experiment;
use crate::metrics::Snapshot;
use crate::parallel::for_each_dealt;
use crate::report::{Analyses, RunReport, build_report};
use crate::trainer::{HeadlessProgress, LastSnapshot, Learner, advance_headless, build_learner};
use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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

/// A run being advanced in lock-step with others on one thread.
struct Lane {
    index: usize,
    learner: Box<dyn Learner>,
    sink: LastSnapshot,
    done: Option<Option<Box<Snapshot>>>,
    busy: Duration,
}

/// Trains every entry for `steps` updates, `threads` at a time, and reports each.
///
/// Runs are dealt round-robin to at most `threads` threads (each trainer is single-threaded);
/// on a thread its runs take one step each in turn, so they progress together even when
/// there are more runs than threads. Results do not depend on `threads`.
pub fn run_compare(
    entries: &[CompareEntry],
    steps: u64,
    threads: usize,
    analyses: &Analyses,
) -> Result<Vec<CompareRun>> {
    let threads = threads.clamp(1, entries.len().max(1));
    let mut groups: Vec<Vec<Lane>> = (0..threads).map(|_| Vec::new()).collect();
    for (index, entry) in entries.iter().enumerate() {
        let learner = build_learner(entry.experiment.clone(), entry.base_dir.as_deref())
            .with_context(|| format!("cannot build {}", entry.label))?;
        groups[index % threads].push(Lane {
            index,
            learner,
            sink: LastSnapshot::default(),
            done: None,
            busy: Duration::ZERO,
        });
    }
    let started = Instant::now();
    for_each_dealt(
        "compare",
        &mut groups,
        threads,
        |lanes| step_in_turn(lanes, steps),
        |_, ()| {},
    )?;
    let wall = started.elapsed().as_secs_f64();
    let mut lanes: Vec<Lane> = groups.into_iter().flatten().collect();
    lanes.sort_by_key(|lane| lane.index);
    lanes
        .into_iter()
        .map(|mut lane| {
            let label = entries[lane.index].label.clone();
            let snapshot = lane
                .done
                .flatten()
                .map(|s| *s)
                .or(lane.sink.0.take())
                .ok_or_else(|| anyhow!("{label}: the run produced no measurement"))?;
            let taken = lane.learner.step() as f64;
            Ok(CompareRun {
                steps_per_sec: taken / wall.max(1e-9),
                busy_steps_per_sec: taken / lane.busy.as_secs_f64().max(1e-9),
                report: build_report(lane.learner.as_mut(), snapshot, analyses),
                label,
            })
        })
        .collect()
}

/// One step of each unfinished run in turn, until all are done.
fn step_in_turn(lanes: &mut [Lane], steps: u64) {
    let mut cursors = vec![0usize; lanes.len()];
    while lanes.iter().any(|lane| lane.done.is_none()) {
        for (lane, cursor) in lanes.iter_mut().zip(&mut cursors) {
            if lane.done.is_some() {
                continue;
            }
            let start = Instant::now();
            let progress =
                advance_headless(lane.learner.as_mut(), steps, &[], cursor, &mut lane.sink);
            lane.busy += start.elapsed();
            if let HeadlessProgress::Done(last) = progress {
                lane.done = Some(last);
            }
        }
    }
}
