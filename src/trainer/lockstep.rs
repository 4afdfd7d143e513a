//! The dashboard's compare view: 2–4 runs advanced in lock-step by one driver thread.
//!
//! Every round each live run takes exactly one step, so all runs stand at the same step between
//! rounds and their curves line up. A round's runs are dealt over `threads` threads (one per
//! core, as `gradlab compare` does), and each run is stepped by [`advance_headless`], the loop
//! body of a lone headless run: a run here takes bit for bit the steps it would take alone.
//! Pause, single steps and reset act on every run, since acting on one would break the
//! lock-step; switches (skip, aux, lr, cell) and lesions act on the run they name.

use super::learner::{Learner, build_learner};
use super::session::{
    Command, Event, HeadlessProgress, RunState, advance_headless, analyses_now, rewires,
};
use super::session::{lesion_event, panic_message};
use super::sink::VecSink;
use crate::config::Experiment;
use anyhow::Result;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most runs a comparison holds: four columns still leave each about 30 columns at 120 wide.
pub const MAX_RUNS: usize = 4;
/// How often each run's own throughput is reported.
const RATE_EVERY: Duration = Duration::from_secs(1);
/// How long a paused driver waits for a command before looking again.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// What the dashboard can ask of the driver.
#[derive(Clone, Debug, PartialEq)]
pub enum LockstepCommand {
    /// A command for run `.0`. Pause, Resume, Step and Reset act on every run.
    Run(usize, Command),
    /// Copy run `from` as it stands into a new run and apply `flip` to the copy.
    Fork {
        /// The run to copy.
        from: usize,
        /// The switch to flip on the copy (None: an identical twin).
        flip: Option<Command>,
    },
    /// End the driver thread.
    Shutdown,
}

/// What the driver reports.
#[derive(Clone, Debug, PartialEq)]
pub enum LockstepEvent {
    /// An event of one run, as a lone trainer thread would send it.
    Run {
        /// Index of the run, in the order runs were started or forked.
        run: usize,
        /// The event.
        event: Event,
    },
    /// Run `run` was forked from run `from` after `step` updates; its own events follow.
    Forked {
        /// The parent.
        from: usize,
        /// The new run's index.
        run: usize,
        /// Updates both had applied at the fork.
        step: u64,
    },
    /// Updates per second of the time run `run`'s own steps took (what it would do alone).
    Busy {
        /// The run.
        run: usize,
        /// Its steps per busy second over the last report interval.
        steps_per_sec: f64,
    },
}

/// How one run of a comparison begins.
pub enum LaneStart {
    /// Built from an experiment at step 0 (announced with `Started`).
    Fresh {
        /// The experiment.
        experiment: Box<Experiment>,
        /// Folder relative CSV task paths are resolved against.
        base_dir: Option<PathBuf>,
    },
    /// A network already trained for some steps (the dashboard's run, handed over at a fork).
    Running {
        /// The network.
        learner: Box<dyn Learner>,
        /// Folder relative CSV task paths are resolved against (for a reset).
        base_dir: Option<PathBuf>,
    },
}

/// The caller's end of the driver thread.
pub struct LockstepHandle {
    /// Commands to the driver.
    pub commands: Sender<LockstepCommand>,
    /// Events from the driver.
    pub events: Receiver<LockstepEvent>,
    /// The thread; it ends on `Shutdown` or when `commands` is dropped.
    pub thread: JoinHandle<()>,
}

/// Starts the driver on `starts` (at most [`MAX_RUNS`]), spreading each round over `threads`
/// threads, stepping at once unless `paused`.
pub fn spawn_lockstep(
    starts: Vec<LaneStart>,
    threads: usize,
    paused: bool,
) -> Result<LockstepHandle> {
    let (command_tx, command_rx) = channel();
    let (event_tx, event_rx) = channel();
    let thread = std::thread::Builder::new()
        .name("gradlab-lockstep".into())
        .spawn(move || {
            let mut driver = Driver {
                lanes: Vec::new(),
                paused,
                steps_left: 0,
                threads: threads.max(1),
                events: event_tx,
                commands: command_rx,
                rates_sent: Instant::now(),
            };
            for start in starts.into_iter().take(MAX_RUNS) {
                driver.add_lane(start);
            }
            driver.run();
        })?;
    Ok(LockstepHandle {
        commands: command_tx,
        events: event_rx,
        thread,
    })
}

/// One run of the comparison.
struct Lane {
    learner: Option<Box<dyn Learner>>,
    experiment: Experiment,
    base_dir: Option<PathBuf>,
    /// Switches flipped at forks, re-applied after a reset so a twin stays a twin.
    flips: Vec<Command>,
    /// Diverged or crashed: no steps until a reset.
    stopped: bool,
    /// Events of the current round, sent in run order once the round is over.
    pending: VecSink,
    busy: Duration,
    busy_steps: u64,
}

impl Lane {
    fn step(&self) -> u64 {
        self.learner.as_ref().map_or(0, |l| l.step())
    }

    /// One step (on a worker thread); a panic stops this run only.
    fn advance(&mut self) {
        let Some(learner) = self.learner.as_mut() else {
            return;
        };
        let start = Instant::now();
        let pending = &mut self.pending;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            advance_headless(learner.as_mut(), u64::MAX, &[], &mut 0, pending)
        }));
        self.busy += start.elapsed();
        self.busy_steps += 1;
        match outcome {
            Ok(HeadlessProgress::Running) => {}
            Ok(HeadlessProgress::Done(_)) => self.stopped = true,
            Err(payload) => {
                let step = self.step();
                self.learner = None;
                self.stopped = true;
                self.pending.events.push(Event::State {
                    step,
                    state: RunState::Crashed(panic_message(&payload)),
                });
            }
        }
    }
}

struct Driver {
    lanes: Vec<Lane>,
    paused: bool,
    /// Rounds still to take after a `Step(n)` while paused.
    steps_left: u32,
    threads: usize,
    events: Sender<LockstepEvent>,
    commands: Receiver<LockstepCommand>,
    rates_sent: Instant,
}

impl Driver {
    fn run(&mut self) {
        loop {
            let live = self.lanes.iter().any(|l| l.learner.is_some() && !l.stopped);
            // With every run stopped (diverged, crashed) only a reset can bring work.
            let stepping = live && (!self.paused || self.steps_left > 0);
            let next = if stepping {
                match self.commands.try_recv() {
                    Ok(command) => Some(command),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match self.commands.recv_timeout(IDLE_WAIT) {
                    Ok(command) => Some(command),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            let alive = match next {
                Some(LockstepCommand::Shutdown) => return,
                Some(command) => self.handle(command),
                None => self.round(),
            };
            if !alive {
                return;
            }
        }
    }

    /// Sends one event of run `run`; false when the dashboard has gone away.
    fn send(&self, run: usize, event: Event) -> bool {
        self.events.send(LockstepEvent::Run { run, event }).is_ok()
    }

    /// Sends `event(run)` for every run; false when the dashboard has gone away.
    fn send_all(&self, event: impl Fn(&Lane) -> Event) -> bool {
        self.lanes
            .iter()
            .enumerate()
            .all(|(run, lane)| self.send(run, event(lane)))
    }

    fn state(&self) -> RunState {
        if self.paused {
            RunState::Paused
        } else {
            RunState::Running
        }
    }

    fn add_lane(&mut self, start: LaneStart) {
        let run = self.lanes.len();
        let (learner, experiment, base_dir) = match start {
            LaneStart::Running { learner, base_dir } => {
                let experiment = learner.experiment().clone();
                (Some(learner), experiment, base_dir)
            }
            LaneStart::Fresh {
                experiment,
                base_dir,
            } => (None, *experiment, base_dir),
        };
        let fresh = learner.is_none();
        self.lanes.push(Lane {
            learner,
            experiment,
            base_dir,
            flips: Vec::new(),
            stopped: false,
            pending: VecSink::default(),
            busy: Duration::ZERO,
            busy_steps: 0,
        });
        if fresh {
            self.restart(run);
        }
    }

    /// Builds run `run` from its experiment at step 0, re-applying its fork flips.
    fn restart(&mut self, run: usize) -> bool {
        let state = self.state();
        let lane = &mut self.lanes[run];
        lane.stopped = false;
        let mut events = Vec::new();
        match build_learner(lane.experiment.clone(), lane.base_dir.as_deref()) {
            Ok(mut learner) => {
                events.push(Event::Started(Box::new(lane.experiment.clone())));
                for flip in &lane.flips {
                    learner.apply(flip);
                    events.push(Event::Applied {
                        step: 0,
                        command: flip.clone(),
                    });
                }
                lane.learner = Some(learner);
                events.push(Event::State { step: 0, state });
            }
            Err(error) => {
                lane.learner = None;
                lane.stopped = true;
                events.push(Event::Error(format!("{error:#}")));
                events.push(Event::State {
                    step: 0,
                    state: RunState::Crashed(format!("{error:#}")),
                });
            }
        }
        events.into_iter().all(|event| self.send(run, event))
    }

    /// Carries out one command; false when the dashboard has gone away.
    fn handle(&mut self, command: LockstepCommand) -> bool {
        match command {
            LockstepCommand::Shutdown => false,
            LockstepCommand::Fork { from, flip } => self.fork(from, flip),
            LockstepCommand::Run(run, command) => self.handle_run(run, command),
        }
    }

    fn handle_run(&mut self, run: usize, command: Command) -> bool {
        let Some(step) = self.lanes.get(run).map(Lane::step) else {
            return true;
        };
        match &command {
            Command::Pause => {
                self.paused = true;
                self.steps_left = 0;
                self.send_all(|lane| Event::State {
                    step: lane.step(),
                    state: RunState::Paused,
                }) && self.send_all(|lane| applied(lane, &command))
            }
            Command::Resume => {
                if !self.paused {
                    return true;
                }
                self.paused = false;
                self.send_all(|lane| Event::State {
                    step: lane.step(),
                    state: RunState::Running,
                }) && self.send_all(|lane| applied(lane, &command))
            }
            Command::Step(n) => {
                if self.paused {
                    self.steps_left = self.steps_left.saturating_add(*n);
                }
                self.send_all(|lane| applied(lane, &command))
            }
            Command::Reset => (0..self.lanes.len()).all(|run| {
                let reset = applied(&self.lanes[run], &command);
                self.send(run, reset) && self.restart(run)
            }),
            Command::LoadPreset(_) => self.send(
                run,
                Event::Error(
                    "the compare view keeps its runs: quit and start another comparison".into(),
                ),
            ),
            Command::Lesion => {
                let event = lesion_event(self.lanes[run].learner.as_mut(), step);
                self.send(run, event)
            }
            Command::Shutdown => false,
            Command::SetSkip(_)
            | Command::SetAux(_)
            | Command::SetLearningRate(_)
            | Command::SetCell(_) => {
                if let Some(learner) = self.lanes[run].learner.as_mut() {
                    learner.apply(&command);
                }
                let rewired = rewires(&command);
                self.send(run, Event::Applied { step, command }) && (!rewired || self.refresh(run))
            }
        }
    }

    /// Copies run `from` into a new run and flips one switch on the copy.
    fn fork(&mut self, from: usize, flip: Option<Command>) -> bool {
        let Some(parent) = self.lanes.get(from) else {
            return true;
        };
        let refusal = if self.lanes.len() >= MAX_RUNS {
            Some(format!("a comparison holds at most {MAX_RUNS} runs"))
        } else if parent.learner.is_none() || parent.stopped {
            Some("this run has stopped: reset it before forking".to_string())
        } else {
            None
        };
        if let Some(message) = refusal {
            return self.send(from, Event::Error(message));
        }
        let Some(mut twin) = parent.learner.as_ref().map(|l| l.fork()) else {
            return true;
        };
        let step = twin.step();
        let mut flips = parent.flips.clone();
        if let Some(flip) = &flip {
            twin.apply(flip);
            flips.push(flip.clone());
        }
        let run = self.lanes.len();
        self.lanes.push(Lane {
            learner: Some(twin),
            experiment: parent.experiment.clone(),
            base_dir: parent.base_dir.clone(),
            flips,
            stopped: false,
            pending: VecSink::default(),
            busy: Duration::ZERO,
            busy_steps: 0,
        });
        if self
            .events
            .send(LockstepEvent::Forked { from, run, step })
            .is_err()
        {
            return false;
        }
        let state = self.state();
        let rewired = flip.as_ref().is_some_and(rewires);
        flip.is_none_or(|command| self.send(run, Event::Applied { step, command }))
            && (!rewired || self.refresh(run))
            && self.send(run, Event::State { step, state })
    }

    /// Path statistics and gradient sources of run `run` as wired now, as the single-run
    /// trainer sends them after a switch; false when the dashboard is gone.
    fn refresh(&mut self, run: usize) -> bool {
        let events = self.lanes[run]
            .learner
            .as_mut()
            .map_or_else(Vec::new, |learner| analyses_now(learner.as_mut()));
        events.into_iter().all(|event| self.send(run, event))
    }

    /// One step of every live run, spread over the threads; false when the dashboard is gone.
    fn round(&mut self) -> bool {
        let threads = self.threads;
        let mut groups: Vec<Vec<&mut Lane>> = (0..threads).map(|_| Vec::new()).collect();
        let live = self
            .lanes
            .iter_mut()
            .filter(|lane| lane.learner.is_some() && !lane.stopped);
        for (i, lane) in live.enumerate() {
            groups[i % threads].push(lane);
        }
        std::thread::scope(|scope| {
            let mut groups = groups.into_iter();
            let own = groups.next().unwrap_or_default();
            for group in groups.filter(|g| !g.is_empty()) {
                scope.spawn(move || group.into_iter().for_each(|lane| lane.advance()));
            }
            // This thread takes the first group rather than idling while the others work.
            own.into_iter().for_each(|lane| lane.advance());
        });
        if self.steps_left > 0 {
            self.steps_left -= 1;
        }
        for run in 0..self.lanes.len() {
            let events = std::mem::take(&mut self.lanes[run].pending.events);
            if !events.into_iter().all(|event| self.send(run, event)) {
                return false;
            }
        }
        self.report_rates()
    }

    fn report_rates(&mut self) -> bool {
        if self.rates_sent.elapsed() < RATE_EVERY {
            return true;
        }
        self.rates_sent = Instant::now();
        for (run, lane) in self.lanes.iter_mut().enumerate() {
            if lane.busy_steps == 0 {
                continue;
            }
            let steps_per_sec = lane.busy_steps as f64 / lane.busy.as_secs_f64().max(1e-9);
            lane.busy = Duration::ZERO;
            lane.busy_steps = 0;
            if self
                .events
                .send(LockstepEvent::Busy { run, steps_per_sec })
                .is_err()
            {
                return false;
            }
        }
        true
    }
}

/// `Applied` for `command` at the lane's current step.
fn applied(lane: &Lane, command: &Command) -> Event {
    Event::Applied {
        step: lane.step(),
        command: command.clone(),
    }
}
