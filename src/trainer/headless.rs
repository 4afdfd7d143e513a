//! Headless runs: one lane of the driver with a step budget, its events going to a sink.

use super::driver::Driver;
use super::lane::LaneStart;
use super::sink::MetricsSink;
use crate::learner::Learner;
use crate::metrics::Snapshot;
use crate::protocol::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs a trainer headless for `steps` updates, applying `schedule` commands at their steps,
/// and ends with one measurement without an update. Returns the final snapshot.
pub fn run_headless(
    trainer: &mut dyn Learner,
    steps: u64,
    schedule: &[(u64, Command)],
    sink: &mut dyn MetricsSink,
) -> Option<Snapshot> {
    let stop = AtomicBool::new(false);
    run_headless_until(
        trainer,
        steps,
        schedule,
        sink,
        &stop,
        crate::parallel::cores(),
    )
}

/// `run_headless` on `threads` threads (the run takes `parallel::threads_per_run` of them)
/// that also ends, between two steps and without a final measurement, once `stop` is set
/// (e.g. by a signal handler). Returns None when stopped, when the run diverged, or when the
/// sink hung up.
pub fn run_headless_until(
    trainer: &mut dyn Learner,
    steps: u64,
    schedule: &[(u64, Command)],
    sink: &mut dyn MetricsSink,
    stop: &AtomicBool,
    threads: usize,
) -> Option<Snapshot> {
    let mut driver = Driver::new(threads, false);
    let mut start =
        LaneStart::running(Box::new(trainer), None).with_budget(steps, schedule.to_vec());
    if !sink.wants_analyses() {
        start = start.without_live_analyses();
    }
    let mut out = |lane_event: crate::protocol::LaneEvent| sink.send(lane_event.event);
    if !driver.add(start, &mut out) {
        return None;
    }
    while driver.wants_steps() {
        if stop.load(Ordering::Relaxed) || !driver.round(&mut out) {
            return None;
        }
    }
    driver
        .finish()
        .into_iter()
        .next()
        .and_then(|lane| lane.last)
}

/// A borrowed network is a network: headless callers keep theirs to inspect afterwards.
impl<L: Learner + ?Sized> Learner for &mut L {
    fn experiment(&self) -> &crate::config::Experiment {
        (**self).experiment()
    }
    fn step(&self) -> u64 {
        (**self).step()
    }
    fn divergence(&self) -> Option<&crate::metrics::Divergence> {
        (**self).divergence()
    }
    fn train_step(&mut self, update: bool, measure: bool) -> Option<Snapshot> {
        (**self).train_step(update, measure)
    }
    fn apply(&mut self, command: &Command) {
        (**self).apply(command)
    }
    fn learning_rate(&self) -> f32 {
        (**self).learning_rate()
    }
    fn set_threads(&mut self, threads: usize) {
        (**self).set_threads(threads)
    }
    fn threads_used(&self) -> usize {
        (**self).threads_used()
    }
    fn as_mlp(&mut self) -> Option<&mut crate::model::Trainer> {
        (**self).as_mlp()
    }
    fn fork(&self) -> Box<dyn Learner> {
        (**self).fork()
    }
    fn weights(&mut self) -> crate::weights::Weights {
        (**self).weights()
    }
    fn load_weights(&mut self, weights: &crate::weights::Weights) -> anyhow::Result<()> {
        (**self).load_weights(weights)
    }
    fn checkpoint(&mut self) -> anyhow::Result<crate::weights::Weights> {
        (**self).checkpoint()
    }
    fn restore(&mut self, checkpoint: &crate::weights::Weights) -> anyhow::Result<()> {
        (**self).restore(checkpoint)
    }
}
