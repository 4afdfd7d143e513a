//! One run of the driver: its network, what it was started from, and the one function that
//! steps it ([`Lane::advance`]), with panic capture.

use super::analyses::{AnalysisClock, Pacing, analyses_now, lesion_event, live_analyses};
use crate::config::Experiment;
use crate::learner::{Learner, build_learner};
use crate::metrics::Snapshot;
use crate::protocol::{Command, Event, RunState};
use crate::weights::Weights;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a lane's network comes from.
pub enum Origin<'a> {
    /// Built from an experiment at step 0 (announced with `Started`).
    Fresh(Box<Experiment>),
    /// A network already built, possibly trained for some steps (borrowed by headless runs
    /// whose caller inspects the network afterwards).
    Running(Box<dyn Learner + 'a>),
}

/// How one run of the driver begins.
pub struct LaneStart<'a> {
    /// The network.
    pub origin: Origin<'a>,
    /// Folder relative CSV task paths are resolved against (for building and resets).
    pub base_dir: Option<PathBuf>,
    /// Headless runs: updates to take before the final measurement (None: run until stopped).
    pub budget: Option<u64>,
    /// Headless runs: commands to apply at given steps, in step order.
    pub schedule: Vec<(u64, Command)>,
    /// Whether to compute the live analyses (path statistics, spectrum) on their cadence and
    /// after rewiring switches: off for headless runs whose events nobody keeps.
    pub live_analyses: bool,
    /// Weights a fresh run starts from (and a reset returns to) instead of the preset's
    /// initialisation; checked against the preset by the caller.
    pub weights: Option<Arc<Weights>>,
}

impl<'a> LaneStart<'a> {
    /// A run of `experiment` from step 0.
    pub fn fresh(experiment: Experiment, base_dir: Option<PathBuf>) -> Self {
        Self {
            origin: Origin::Fresh(Box::new(experiment)),
            base_dir,
            budget: None,
            schedule: Vec::new(),
            live_analyses: true,
            weights: None,
        }
    }

    /// A run of a network that already exists.
    pub fn running(learner: Box<dyn Learner + 'a>, base_dir: Option<PathBuf>) -> Self {
        Self {
            origin: Origin::Running(learner),
            base_dir,
            budget: None,
            schedule: Vec::new(),
            live_analyses: true,
            weights: None,
        }
    }

    /// Starts (and resets) from `weights` instead of the preset's initialisation.
    pub fn with_weights(mut self, weights: Arc<Weights>) -> Self {
        self.weights = Some(weights);
        self
    }

    /// Skips the live analyses: nobody reads their events.
    pub fn without_live_analyses(mut self) -> Self {
        self.live_analyses = false;
        self
    }

    /// Stops after `steps` updates with one final measurement, applying `schedule` on the way.
    pub fn with_budget(mut self, steps: u64, schedule: Vec<(u64, Command)>) -> Self {
        self.budget = Some(steps);
        self.schedule = schedule;
        self
    }
}

/// One run: its network and everything needed to restart or fork it.
pub(super) struct Lane<'a> {
    pub(super) learner: Option<Box<dyn Learner + 'a>>,
    pub(super) experiment: Experiment,
    pub(super) base_dir: Option<PathBuf>,
    /// Switches flipped at forks, re-applied after a reset so a twin stays a twin.
    pub(super) flips: Vec<Command>,
    /// Weights a (re)start loads after building the network (`--load-weights`).
    pub(super) start_weights: Option<Arc<Weights>>,
    budget: Option<u64>,
    schedule: Vec<(u64, Command)>,
    live_analyses: bool,
    /// Training and analysis time of the current run, which paces its live analyses.
    clock: AnalysisClock,
    next_command: usize,
    /// Diverged, crashed or finished: no steps until a reset.
    pub(super) stopped: bool,
    /// The final measurement of a finished headless run.
    pub(super) last: Option<Snapshot>,
    /// Events not yet sent, in order.
    pub(super) pending: Vec<Event>,
    busy: Duration,
    busy_steps: u64,
    /// Time its own steps took, over its whole life.
    pub(super) busy_total: Duration,
}

impl<'a> Lane<'a> {
    /// A lane for `start`; a fresh one is built by the caller with [`Lane::restart`].
    pub(super) fn new(start: LaneStart<'a>) -> Self {
        let (learner, experiment) = match start.origin {
            Origin::Running(learner) => {
                let experiment = learner.experiment().clone();
                (Some(learner), experiment)
            }
            Origin::Fresh(experiment) => (None, *experiment),
        };
        Self {
            learner,
            experiment,
            base_dir: start.base_dir,
            flips: Vec::new(),
            start_weights: start.weights,
            budget: start.budget,
            schedule: start.schedule,
            live_analyses: start.live_analyses,
            clock: AnalysisClock::default(),
            next_command: 0,
            stopped: false,
            last: None,
            pending: Vec::new(),
            busy: Duration::ZERO,
            busy_steps: 0,
            busy_total: Duration::ZERO,
        }
    }

    /// A twin of this lane as it stands, with `flip` applied to the twin.
    pub(super) fn fork(&self, flip: Option<&Command>) -> Option<Lane<'static>> {
        let mut twin = self.learner.as_ref()?.fork();
        let mut flips = self.flips.clone();
        if let Some(flip) = flip {
            twin.apply(flip);
            flips.push(flip.clone());
        }
        let mut lane = Lane::new(LaneStart::running(twin, self.base_dir.clone()));
        lane.flips = flips;
        lane.start_weights = self.start_weights.clone();
        Some(lane)
    }

    /// Paces this lane's live analyses as `pacing` says, from now on.
    pub(super) fn pace(&mut self, pacing: Pacing) {
        self.clock = AnalysisClock::new(pacing);
    }

    /// Updates applied so far (0 without a network).
    pub(super) fn step(&self) -> u64 {
        self.learner.as_ref().map_or(0, |l| l.step())
    }

    /// Lets this lane's run use up to `threads` threads.
    pub(super) fn set_threads(&mut self, threads: usize) {
        if let Some(learner) = self.learner.as_mut() {
            learner.set_threads(threads);
        }
    }

    /// Whether the lane takes steps in the next round.
    pub(super) fn is_live(&self) -> bool {
        self.learner.is_some() && !self.stopped
    }

    /// Builds the network from the experiment at step 0 and re-applies the fork flips;
    /// queues `Started` (or the error) and the state.
    pub(super) fn restart(&mut self, state: RunState) {
        self.stopped = false;
        self.next_command = 0;
        self.last = None;
        self.clock = AnalysisClock::new(self.clock.pacing());
        let weights = self.start_weights.clone();
        let built = guard(|| {
            let mut learner = build_learner(self.experiment.clone(), self.base_dir.as_deref())?;
            if let Some(weights) = &weights {
                learner.load_weights(weights)?;
            }
            anyhow::Ok(learner)
        })
        .and_then(|built| built.map_err(|e| format!("{e:#}")));
        match built {
            Ok(mut learner) => {
                self.pending.push(Event::Started {
                    preset: Box::new(self.experiment.clone()),
                });
                for flip in &self.flips {
                    learner.apply(flip);
                    self.pending.push(Event::Applied {
                        step: 0,
                        command: flip.clone(),
                    });
                }
                self.learner = Some(learner);
                self.pending.push(Event::State { step: 0, state });
            }
            Err(error) => {
                self.learner = None;
                self.stopped = true;
                self.pending.push(Event::error(error.clone()));
                self.pending.push(Event::State {
                    step: 0,
                    state: RunState::Crashed(error),
                });
            }
        }
    }

    /// Applies a switch and queues `Applied`, then fresh analyses if it rewired the net.
    pub(super) fn switch(&mut self, command: Command) {
        let step = self.step();
        let rewired = command.rewires();
        self.with_learner(|learner, pending, clock| {
            learner.apply(&command);
            pending.push(Event::Applied { step, command });
            // The panels drop their analyses when the wiring changes; refresh them now
            // rather than leave them empty until the next `path_every` step.
            if rewired {
                pending.extend(analyses_now(learner, clock));
            }
        });
    }

    /// Queues the answer to a lesion request.
    pub(super) fn lesion(&mut self) {
        let step = self.step();
        if self.learner.is_none() {
            self.pending.push(lesion_event(None, step));
            return;
        }
        self.with_learner(|learner, pending, _| {
            pending.push(lesion_event(Some(learner), step));
        });
    }

    /// Writes the network's weights to a fresh file in `dir` (never replacing one) and queues
    /// `WeightsSaved`, or the error.
    pub(super) fn save_weights(&mut self, dir: &Path) {
        let step = self.step();
        if self.learner.is_none() {
            self.pending.push(Event::error(
                "nothing to save: this run has no network (it crashed)",
            ));
            return;
        }
        self.with_learner(|learner, pending, _| {
            let stem = crate::weights::save::stem_for(&learner.experiment().name, step);
            let saved = crate::weights::format::encode(&learner.weights())
                .and_then(|bytes| crate::weights::save::save_fresh(dir, &stem, &bytes));
            pending.push(match saved {
                Ok(path) => Event::WeightsSaved {
                    step,
                    path: path.display().to_string(),
                },
                Err(e) => Event::error(format!("weights not saved: {e:#}")),
            });
        });
    }

    /// Queues path statistics and sources of the net as wired now.
    pub(super) fn refresh(&mut self) {
        self.with_learner(|learner, pending, clock| {
            pending.extend(analyses_now(learner, clock));
        });
    }

    /// One step: scheduled commands due, analyses due, a training step (or, once the budget
    /// is spent, the final measurement). A panic stops this lane only.
    pub(super) fn advance(&mut self) {
        if !self.is_live() {
            return;
        }
        let start = Instant::now();
        let outcome = {
            let Lane {
                learner,
                budget,
                schedule,
                live_analyses,
                clock,
                next_command,
                pending,
                ..
            } = self;
            let Some(learner) = learner.as_mut() else {
                return;
            };
            let steps = Steps {
                budget: *budget,
                schedule,
                live_analyses: *live_analyses,
            };
            guard(|| step_once(learner.as_mut(), &steps, clock, next_command, pending))
        };
        self.busy += start.elapsed();
        self.busy_total += start.elapsed();
        self.busy_steps += 1;
        match outcome {
            Ok(Progress::Running) => {}
            Ok(Progress::Done(last)) => {
                self.stopped = true;
                self.last = last.map(|s| *s);
            }
            Err(message) => self.crash(message),
        }
    }

    /// Runs `f` on the network with panic capture; a panic becomes a crash of this lane.
    fn with_learner(
        &mut self,
        f: impl FnOnce(&mut dyn Learner, &mut Vec<Event>, &mut AnalysisClock),
    ) {
        let Some(learner) = self.learner.as_mut() else {
            return;
        };
        let (pending, clock) = (&mut self.pending, &mut self.clock);
        if let Err(message) = guard(|| f(learner.as_mut(), pending, clock)) {
            self.crash(message);
        }
    }

    fn crash(&mut self, message: String) {
        let step = self.step();
        self.learner = None;
        self.stopped = true;
        self.pending.push(Event::State {
            step,
            state: RunState::Crashed(message),
        });
    }

    /// Steps per busy second since the last call, if any step was taken.
    pub(super) fn take_rate(&mut self) -> Option<f64> {
        if self.busy_steps == 0 {
            return None;
        }
        let rate = self.busy_steps as f64 / self.busy.as_secs_f64().max(1e-9);
        self.busy = Duration::ZERO;
        self.busy_steps = 0;
        Some(rate)
    }
}

/// Where a lane stands after one call of [`step_once`].
enum Progress {
    /// More steps to take.
    Running,
    /// The run ended: its final snapshot, or None when it diverged.
    Done(Option<Box<Snapshot>>),
}

/// The one step function every run goes through, live or headless: scheduled commands due
/// at this step, analyses on their cadence, then a training step; with a budget spent, one
/// final measurement without an update and `Finished`.
/// What a lane's steps follow: its budget, its scheduled commands, whether to analyse.
struct Steps<'s> {
    budget: Option<u64>,
    schedule: &'s [(u64, Command)],
    live_analyses: bool,
}

fn step_once(
    learner: &mut dyn Learner,
    steps: &Steps<'_>,
    clock: &mut AnalysisClock,
    next_command: &mut usize,
    pending: &mut Vec<Event>,
) -> Progress {
    let Steps {
        budget,
        schedule,
        live_analyses: analyse,
    } = *steps;
    if let Some(divergence) = learner.divergence() {
        pending.push(Event::State {
            step: learner.step(),
            state: RunState::Diverged(divergence.clone()),
        });
        return Progress::Done(None);
    }
    if budget.is_some_and(|steps| learner.step() >= steps) {
        let last = learner.train_step(false, true);
        if let Some(snapshot) = &last {
            pending.push(Event::Snapshot(Box::new(snapshot.clone())));
        }
        pending.push(Event::State {
            step: learner.step(),
            state: RunState::Finished,
        });
        return Progress::Done(last.map(Box::new));
    }
    while let Some((_, command)) = schedule
        .get(*next_command)
        .filter(|(at, _)| *at <= learner.step())
    {
        *next_command += 1;
        learner.apply(command);
        pending.push(Event::Applied {
            step: learner.step(),
            command: command.clone(),
        });
        // As a live switch does: analyses of the new wiring right away.
        if analyse && command.rewires() {
            pending.extend(analyses_now(learner, clock));
        }
    }
    if analyse {
        pending.extend(live_analyses(learner, clock));
    }
    let every = learner.experiment().metrics_every as u64;
    let measure = learner.step().is_multiple_of(every);
    let start = Instant::now();
    let snapshot = learner.train_step(true, measure);
    clock.trained(start.elapsed());
    if let Some(snapshot) = snapshot {
        pending.push(Event::Snapshot(Box::new(snapshot)));
    }
    if let Some(divergence) = learner.divergence() {
        pending.push(Event::State {
            step: learner.step(),
            state: RunState::Diverged(divergence.clone()),
        });
        return Progress::Done(None);
    }
    Progress::Running
}

/// Runs `f`, turning a panic into its message.
fn guard<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panic_message(&payload))
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the trainer panicked".to_string()
    }
}
