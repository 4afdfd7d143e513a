//! Driving a trainer: live commands in, events out, on its own thread or headless.

use super::learner::{Learner, build_learner};
use super::sink::{ChannelSink, MetricsSink};
use crate::config::{CellKind, Experiment, SkipMode};
use crate::metrics::{Divergence, Snapshot};
use crate::paths::PathStats;
use crate::report::{LesionResult, layer_sources, lesion_all, path_stats};
use crate::sources::LayerSources;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the caller can ask of a running trainer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Switch the skip mode from the next step on.
    SetSkip(SkipMode),
    /// Turn auxiliary losses on or off.
    SetAux(bool),
    /// Change the learning rate.
    SetLearningRate(f32),
    /// Switch the recurrent cell (recurrent nets only; each cell keeps its own weights).
    SetCell(CellKind),
    /// Stop stepping until `Resume` or `Step`.
    Pause,
    /// Continue stepping.
    Resume,
    /// While paused: run this many steps, then pause again.
    Step(u32),
    /// Start the same experiment again from step 0 with the same seed.
    Reset,
    /// Replace the experiment and start it from step 0.
    LoadPreset(Box<Experiment>),
    /// MLP nets: evaluate the test set with each block removed in turn (answered by
    /// `Event::Lesion`); the network itself is not changed.
    Lesion,
    /// End the trainer thread.
    Shutdown,
}

impl Command {
    /// A short label for charts and logs, e.g. `skip → residual`.
    pub fn label(&self) -> String {
        match self {
            Command::SetSkip(skip) => format!("skip → {}", skip.label()),
            Command::SetAux(on) => format!("aux {}", if *on { "on" } else { "off" }),
            Command::SetLearningRate(lr) => format!("lr → {lr:.3e}"),
            Command::SetCell(cell) => format!("cell → {}", cell.label()),
            Command::Pause => "pause".into(),
            Command::Resume => "resume".into(),
            Command::Step(n) => format!("step {n}"),
            Command::Reset => "reset".into(),
            Command::LoadPreset(e) => format!("load {}", e.name),
            Command::Lesion => "lesion".into(),
            Command::Shutdown => "shutdown".into(),
        }
    }
}

/// Whether the trainer is stepping, and if not, why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Steps are being taken.
    Running,
    /// Waiting for `Resume` or `Step`.
    Paused,
    /// NaN/Inf appeared; waiting for `Reset` or another preset.
    Diverged(Divergence),
    /// The trainer panicked; waiting for `Reset` or another preset.
    Crashed(String),
    /// A headless run reached its step budget.
    Finished,
}

/// What the trainer reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A new experiment was (re)started: consumers reset their history.
    Started(Box<Experiment>),
    /// A metrics snapshot.
    Snapshot(Box<Snapshot>),
    /// The run state changed at `step`.
    State {
        /// Updates applied when the state changed.
        step: u64,
        /// The new state.
        state: RunState,
    },
    /// A command took effect at `step` (the first step it influences).
    Applied {
        /// The step the command took effect at.
        step: u64,
        /// The command.
        command: Command,
    },
    /// Something failed without stopping the trainer (e.g. a preset that does not build).
    Error(String),
    /// MLP nets: path-length statistics of the network, every `path_every` steps.
    Paths {
        /// Updates applied before the measurement.
        step: u64,
        /// The decomposition on a sub-batch of [`LIVE_PATH_ROWS`] training rows.
        stats: Box<PathStats>,
    },
    /// The answer to `Command::Lesion`: the test set with each block removed in turn.
    Lesion {
        /// Updates applied when the lesions were evaluated.
        step: u64,
        /// Test loss of the intact network, evaluated with the lesions (the snapshot's test
        /// loss may be up to `test_every` steps old).
        intact_test_loss: f64,
        /// One result per block, input side first.
        results: Vec<LesionResult>,
    },
    /// MLP nets with dense read-outs or auxiliary losses: where each layer's gradient comes
    /// from (main head, each read-out, each auxiliary head), with the path statistics.
    Sources {
        /// Updates applied before the measurement.
        step: u64,
        /// One entry per hidden layer, input side first, on [`LIVE_PATH_ROWS`] training rows.
        layers: Vec<LayerSources>,
    },
}

/// Training rows the live path statistics run on: fewer than `gradlab run --json` uses, so
/// they stay cheap enough to compute every `path_every` steps.
pub const LIVE_PATH_ROWS: usize = 8;
/// Random paths per length for the live path statistics.
pub const LIVE_PATH_SAMPLES: usize = 4;

/// The live analyses due before the next step: on the experiment's `path_every` cadence, an
/// MLP's path statistics and (dense or auxiliary nets) its gradient sources.
pub fn live_analyses(trainer: &mut dyn Learner) -> Vec<Event> {
    let every = trainer.experiment().path_every.max(1) as u64;
    if !trainer.step().is_multiple_of(every) {
        return Vec::new();
    }
    analyses_now(trainer)
}

/// Whether `command` changes the wiring the path statistics and gradient sources describe.
pub(crate) fn rewires(command: &Command) -> bool {
    matches!(command, Command::SetSkip(_) | Command::SetAux(_))
}

/// The path statistics and gradient sources of the network as it is now, whatever the
/// cadence: sent right after a switch changes so the panel never shows the old wiring.
pub fn analyses_now(trainer: &mut dyn Learner) -> Vec<Event> {
    let step = trainer.step();
    if trainer.divergence().is_some() {
        return Vec::new();
    }
    let seed = trainer.experiment().seed ^ step;
    let Some(mlp) = trainer.as_mlp() else {
        return Vec::new();
    };
    let mut events = Vec::new();
    // A net that has gone non-finite has no meaningful decomposition; the divergence event
    // says what happened.
    if let Some(stats) = path_stats(mlp, LIVE_PATH_ROWS, LIVE_PATH_SAMPLES, seed).filter(|s| {
        s.by_length
            .iter()
            .all(|l| l.contribution.is_finite() && l.grad_per_path.is_finite())
    }) {
        events.push(Event::Paths {
            step,
            stats: Box::new(stats),
        });
    }
    if let Some(layers) = layer_sources(mlp, LIVE_PATH_ROWS).filter(|layers| {
        layers.iter().all(|l| {
            l.total.is_finite()
                && l.main.is_finite()
                && l.readouts.iter().chain(&l.aux).all(|v| v.is_finite())
        })
    }) {
        events.push(Event::Sources { step, layers });
    }
    events
}

/// Runs a trainer headless for `steps` updates, applying `schedule` commands at their steps,
/// and ends with one measurement without an update. Returns the final snapshot.
pub fn run_headless(
    trainer: &mut dyn Learner,
    steps: u64,
    schedule: &[(u64, Command)],
    sink: &mut dyn MetricsSink,
) -> Option<Snapshot> {
    run_headless_until(trainer, steps, schedule, sink, &AtomicBool::new(false))
}

/// `run_headless` that also ends, between two steps and without a final measurement, once
/// `stop` is set (e.g. by a signal handler). Returns None when stopped.
pub fn run_headless_until(
    trainer: &mut dyn Learner,
    steps: u64,
    schedule: &[(u64, Command)],
    sink: &mut dyn MetricsSink,
    stop: &AtomicBool,
) -> Option<Snapshot> {
    let mut next_command = 0;
    loop {
        let stepping = trainer.step() < steps && trainer.divergence().is_none();
        if stepping && stop.load(Ordering::Relaxed) {
            return None;
        }
        match advance_headless(trainer, steps, schedule, &mut next_command, sink) {
            HeadlessProgress::Running => {}
            HeadlessProgress::Done(last) => return last.map(|s| *s),
        }
    }
}

/// Where a headless run stands after [`advance_headless`].
#[derive(Clone, Debug, PartialEq)]
pub enum HeadlessProgress {
    /// More steps to take.
    Running,
    /// The run ended: its final snapshot, or None when it diverged or the sink hung up.
    Done(Option<Box<Snapshot>>),
}

/// Takes one step of a headless run, or its final measurement once the budget is spent.
/// `run_headless` is this in a loop, so runs advanced in lock-step (`gradlab compare`) take
/// exactly the steps a lone run takes. `next_command` indexes `schedule` between calls.
pub fn advance_headless(
    trainer: &mut dyn Learner,
    steps: u64,
    schedule: &[(u64, Command)],
    next_command: &mut usize,
    sink: &mut dyn MetricsSink,
) -> HeadlessProgress {
    if trainer.step() < steps && trainer.divergence().is_none() {
        while let Some((_, command)) = schedule
            .get(*next_command)
            .filter(|(at, _)| *at <= trainer.step())
        {
            *next_command += 1;
            trainer.apply(command);
            let applied = Event::Applied {
                step: trainer.step(),
                command: command.clone(),
            };
            if !sink.send(applied) {
                return HeadlessProgress::Done(None);
            }
            // As the dashboard's trainer does: analyses of the new wiring right away.
            if rewires(command) {
                for event in analyses_now(trainer) {
                    if !sink.send(event) {
                        return HeadlessProgress::Done(None);
                    }
                }
            }
        }
        let every = trainer.experiment().metrics_every as u64;
        for event in live_analyses(trainer) {
            if !sink.send(event) {
                return HeadlessProgress::Done(None);
            }
        }
        let measure = trainer.step().is_multiple_of(every);
        if let Some(snapshot) = trainer.train_step(true, measure)
            && !sink.send(Event::Snapshot(Box::new(snapshot)))
        {
            return HeadlessProgress::Done(None);
        }
        return HeadlessProgress::Running;
    }
    if let Some(divergence) = trainer.divergence() {
        let step = trainer.step();
        sink.send(Event::State {
            step,
            state: RunState::Diverged(divergence.clone()),
        });
        return HeadlessProgress::Done(None);
    }
    let last = trainer.train_step(false, true);
    if let Some(snapshot) = &last {
        sink.send(Event::Snapshot(Box::new(snapshot.clone())));
    }
    sink.send(Event::State {
        step: trainer.step(),
        state: RunState::Finished,
    });
    HeadlessProgress::Done(last.map(Box::new))
}

/// The caller's end of a trainer thread.
pub struct TrainerHandle {
    /// Commands to the trainer.
    pub commands: Sender<Command>,
    /// Events from the trainer.
    pub events: Receiver<Event>,
    /// The thread; it ends on `Shutdown` or when `commands` is dropped, and hands back the
    /// network as it stands (None after a crash or a preset that did not build), so the
    /// dashboard can fork it into a comparison.
    pub thread: JoinHandle<Option<Box<dyn Learner>>>,
}

/// Starts a trainer thread on `experiment`, running at once.
pub fn spawn_trainer(experiment: Experiment, base_dir: Option<PathBuf>) -> Result<TrainerHandle> {
    let (command_tx, command_rx) = channel();
    let (event_tx, event_rx) = channel();
    let thread = std::thread::Builder::new()
        .name("gradlab-trainer".into())
        .spawn(move || {
            let mut session = Session {
                experiment,
                base_dir,
                trainer: None,
                state: RunState::Running,
                steps_left: 0,
                sink: ChannelSink(event_tx),
                commands: command_rx,
            };
            session.run();
            session.trainer.take()
        })?;
    Ok(TrainerHandle {
        commands: command_tx,
        events: event_rx,
        thread,
    })
}

/// The state a trainer thread keeps between steps.
struct Session {
    experiment: Experiment,
    base_dir: Option<PathBuf>,
    trainer: Option<Box<dyn Learner>>,
    state: RunState,
    /// Steps still to take after a `Step(n)` while paused.
    steps_left: u32,
    sink: ChannelSink,
    commands: Receiver<Command>,
}

/// What the loop should do after handling a command.
enum Flow {
    Continue,
    Exit,
}

impl Session {
    fn run(&mut self) {
        self.start();
        loop {
            // A panic anywhere in a step is caught so the caller keeps its thread and screen.
            let outcome = catch_unwind(AssertUnwindSafe(|| self.run_until_exit()));
            match outcome {
                Ok(()) => return,
                Err(payload) => {
                    let message = panic_message(&payload);
                    self.trainer = None;
                    self.set_state(RunState::Crashed(message));
                }
            }
        }
    }

    fn run_until_exit(&mut self) {
        loop {
            let stepping = matches!(self.state, RunState::Running) || self.steps_left > 0;
            let next = if stepping {
                match self.commands.try_recv() {
                    Ok(command) => Some(command),
                    Err(std::sync::mpsc::TryRecvError::Empty) => None,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                }
            } else {
                match self.commands.recv_timeout(Duration::from_millis(250)) {
                    Ok(command) => Some(command),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            if let Some(command) = next {
                if let Flow::Exit = self.handle(command) {
                    return;
                }
                continue;
            }
            if !self.take_step() {
                return;
            }
        }
    }

    /// Builds the trainer for the current experiment and announces it.
    fn start(&mut self) {
        self.steps_left = 0;
        match build_learner(self.experiment.clone(), self.base_dir.as_deref()) {
            Ok(trainer) => {
                self.trainer = Some(trainer);
                self.sink
                    .send(Event::Started(Box::new(self.experiment.clone())));
                let state = match self.state {
                    RunState::Paused => RunState::Paused,
                    _ => RunState::Running,
                };
                self.set_state(state);
            }
            Err(error) => {
                self.trainer = None;
                self.sink.send(Event::Error(format!("{error:#}")));
                self.set_state(RunState::Crashed(format!("{error:#}")));
            }
        }
    }

    fn set_state(&mut self, state: RunState) {
        self.state = state.clone();
        let step = self.trainer.as_ref().map_or(0, |t| t.step());
        self.sink.send(Event::State { step, state });
    }

    fn handle(&mut self, command: Command) -> Flow {
        let step = self.trainer.as_ref().map_or(0, |t| t.step());
        match &command {
            Command::Shutdown => return Flow::Exit,
            Command::Pause => {
                self.steps_left = 0;
                self.set_state(RunState::Paused);
            }
            Command::Resume => {
                if matches!(self.state, RunState::Paused) {
                    self.set_state(RunState::Running);
                }
            }
            Command::Step(n) => {
                if matches!(self.state, RunState::Paused) {
                    self.steps_left = self.steps_left.saturating_add(*n);
                }
            }
            Command::Reset => {
                self.sink.send(Event::Applied {
                    step,
                    command: command.clone(),
                });
                self.start();
                return Flow::Continue;
            }
            Command::LoadPreset(experiment) => {
                self.experiment = (**experiment).clone();
                self.sink.send(Event::Applied {
                    step,
                    command: command.clone(),
                });
                self.start();
                return Flow::Continue;
            }
            Command::Lesion => {
                let event = lesion_event(self.trainer.as_mut(), step);
                // An analysis, not a switch: no `Applied`, so no marker on the charts.
                return if self.sink.send(event) {
                    Flow::Continue
                } else {
                    Flow::Exit
                };
            }
            Command::SetSkip(_)
            | Command::SetAux(_)
            | Command::SetLearningRate(_)
            | Command::SetCell(_) => {
                if let Some(trainer) = self.trainer.as_mut() {
                    trainer.apply(&command);
                }
            }
        }
        let rewired = rewires(&command);
        if !self.sink.send(Event::Applied { step, command }) {
            return Flow::Exit;
        }
        // The panels drop their analyses when the wiring changes; refresh them now rather than
        // leave them empty until the next `path_every` step.
        if rewired && let Some(trainer) = self.trainer.as_mut() {
            for event in analyses_now(trainer.as_mut()) {
                if !self.sink.send(event) {
                    return Flow::Exit;
                }
            }
        }
        Flow::Continue
    }

    /// One step; false when the consumer has gone away.
    fn take_step(&mut self) -> bool {
        let Some(trainer) = self.trainer.as_mut() else {
            self.steps_left = 0;
            self.state = RunState::Paused;
            return true;
        };
        for event in live_analyses(trainer.as_mut()) {
            if !self.sink.send(event) {
                return false;
            }
        }
        let measure = trainer
            .step()
            .is_multiple_of(trainer.experiment().metrics_every as u64);
        let snapshot = trainer.train_step(true, measure);
        let diverged = trainer.divergence().cloned();
        if let Some(snapshot) = snapshot
            && !self.sink.send(Event::Snapshot(Box::new(snapshot)))
        {
            return false;
        }
        if self.steps_left > 0 {
            self.steps_left -= 1;
        }
        if let Some(divergence) = diverged {
            self.steps_left = 0;
            self.set_state(RunState::Diverged(divergence));
        }
        true
    }
}

/// The answer to `Command::Lesion` for `trainer` at `step`.
pub(crate) fn lesion_event(trainer: Option<&mut Box<dyn Learner>>, step: u64) -> Event {
    match trainer.and_then(|t| t.as_mlp()) {
        Some(mlp) => Event::Lesion {
            step,
            intact_test_loss: mlp.evaluate_test(crate::model::Lesion(None)).0,
            results: lesion_all(mlp),
        },
        None => Event::Error("lesions need an MLP (this is a recurrent net)".into()),
    }
}

pub(crate) fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the trainer panicked".to_string()
    }
}
