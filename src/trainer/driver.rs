//! The one driver: 1–4 runs ("lanes") advanced in lock-step. A single run is a comparison
//! with one lane; a fork adds a lane; headless runs, `gradlab compare` and sweeps use the same
//! rounds with a step budget.
//!
//! ```text
//!  LaneCommand ─▶ Driver::handle ─┐                      ┌─▶ LaneEvent (lane order)
//!                                 ├─ lanes[0..n] ─ pending events ─┤
//!  (idle)      ─▶ Driver::round ──┘  (one Lane::advance each,      └─▶ …
//!                                     dealt over threads)
//! ```
//!
//! Every round each live lane takes exactly one step, so all lanes stand at the same step
//! between rounds and their curves line up. Pause, single steps and reset act on every lane,
//! since acting on one would break the lock-step; switches, lesions and forks act on the lane
//! they name. Events of a round are sent in lane order once the round is over, so what a lane
//! reports does not depend on how the lanes were dealt over threads.

use super::analyses::Pacing;
use super::lane::{Lane, LaneStart};
use crate::learner::Learner;
use crate::metrics::Snapshot;
use crate::parallel::for_each_dealt;
use crate::protocol::{Command, Event, LaneCommand, LaneEvent, LaneId, MAX_LANES, RunState};
use anyhow::Result;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often each lane's own throughput is reported.
const RATE_EVERY: Duration = Duration::from_secs(1);
/// How long an idle driver thread waits for a command before looking again.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// Where the driver's events go; returns false once the consumer is gone.
pub type Outbox<'o> = dyn FnMut(LaneEvent) -> bool + 'o;

/// Lanes and the clock they share.
pub struct Driver<'a> {
    lanes: Vec<Lane<'a>>,
    paused: bool,
    /// Rounds still to take after a `Step(n)` while paused.
    steps_left: u32,
    threads: usize,
    /// Throughput reports (the dashboard); headless runs leave them out.
    rates_sent: Option<Instant>,
    /// Where `SaveWeights` writes: the working folder unless told otherwise.
    save_dir: PathBuf,
    /// How the lanes pace their live analyses.
    pacing: Pacing,
}

/// A lane after its driver is done with it.
pub struct FinishedLane<'a> {
    /// The network (None after a crash or a preset that did not build).
    pub learner: Option<Box<dyn Learner + 'a>>,
    /// The final measurement of a run with a step budget (None if it diverged).
    pub last: Option<Snapshot>,
    /// Time its own steps took, over its whole life.
    pub busy: Duration,
}

impl<'a> Driver<'a> {
    /// An empty driver dealing each round over `threads` threads, stepping unless `paused`.
    pub fn new(threads: usize, paused: bool) -> Self {
        Self {
            lanes: Vec::new(),
            paused,
            steps_left: 0,
            threads: threads.max(1),
            rates_sent: None,
            save_dir: PathBuf::from("."),
            pacing: Pacing::Cadence,
        }
    }

    /// Paces every lane's live analyses as `pacing` says (the dashboard: [`Pacing::Budget`]).
    pub fn with_pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
        self
    }

    /// Writes `SaveWeights` files into `dir` instead of the working folder.
    pub fn with_save_dir(mut self, dir: PathBuf) -> Self {
        self.save_dir = dir;
        self
    }

    /// Reports each lane's throughput every second (`Event::Throughput`).
    pub fn with_rates(mut self) -> Self {
        self.rates_sent = Some(Instant::now());
        self
    }

    /// Adds a lane (at most [`MAX_LANES`] for a live driver); a fresh one is built and
    /// announced at once. False when the consumer is gone.
    pub fn add(&mut self, start: LaneStart<'a>, out: &mut Outbox<'_>) -> bool {
        let fresh = matches!(start.origin, super::lane::Origin::Fresh(_));
        let mut lane = Lane::new(start);
        lane.pace(self.pacing);
        if fresh {
            lane.restart(self.state());
        }
        self.lanes.push(lane);
        self.flush(out)
    }

    /// Whether a round would step anything now.
    pub fn wants_steps(&self) -> bool {
        let live = self.lanes.iter().any(Lane::is_live);
        live && (!self.paused || self.steps_left > 0)
    }

    /// Lanes held.
    pub fn len(&self) -> usize {
        self.lanes.len()
    }

    /// Whether the driver holds no lane.
    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }

    /// The lanes' networks and final measurements, in lane order.
    pub fn finish(self) -> Vec<FinishedLane<'a>> {
        self.lanes
            .into_iter()
            .map(|lane| FinishedLane {
                busy: lane.busy_total,
                learner: lane.learner,
                last: lane.last,
            })
            .collect()
    }

    fn state(&self) -> RunState {
        if self.paused {
            RunState::Paused
        } else {
            RunState::Running
        }
    }

    /// Carries out one command; false on `Shutdown` or once the consumer is gone.
    pub fn handle(&mut self, order: LaneCommand, out: &mut Outbox<'_>) -> bool {
        let LaneCommand { lane, command } = order;
        if lane >= self.lanes.len() && !matches!(command, Command::Shutdown) {
            return true;
        }
        match command {
            Command::Shutdown => return false,
            Command::Pause => {
                self.paused = true;
                self.steps_left = 0;
                self.each_live(|lane| Event::State {
                    step: lane.step(),
                    state: RunState::Paused,
                });
                self.each(|lane| applied(lane, &Command::Pause));
            }
            Command::Resume => {
                if self.paused {
                    self.paused = false;
                    self.each_live(|lane| Event::State {
                        step: lane.step(),
                        state: RunState::Running,
                    });
                    self.each(|lane| applied(lane, &Command::Resume));
                }
            }
            Command::Step(n) => {
                if self.paused {
                    self.steps_left = self.steps_left.saturating_add(n);
                }
                self.each(|lane| applied(lane, &Command::Step(n)));
            }
            Command::Reset => {
                let state = self.state();
                for lane in &mut self.lanes {
                    lane.pending.push(applied(lane, &Command::Reset));
                    lane.restart(state.clone());
                }
            }
            Command::LoadPreset(experiment) if self.lanes.len() == 1 => {
                let state = self.state();
                let lane = &mut self.lanes[0];
                lane.pending
                    .push(applied(lane, &Command::LoadPreset(experiment.clone())));
                lane.experiment = *experiment;
                lane.flips.clear();
                // Weights loaded for the old preset need not fit the new one.
                lane.start_weights = None;
                lane.restart(state);
            }
            Command::LoadPreset(_) => self.lanes[lane].pending.push(Event::error(
                "the compare view keeps its runs: quit and start another comparison",
            )),
            Command::Lesion => self.lanes[lane].lesion(),
            Command::SaveWeights => self.lanes[lane].save_weights(&self.save_dir),
            Command::Fork { flip } => self.fork(lane, flip.map(|f| *f)),
            // Everything else is a live switch of this lane.
            switch => self.lanes[lane].switch(switch),
        }
        self.flush(out)
    }

    /// Queues `event(lane)` on every lane.
    fn each(&mut self, event: impl Fn(&Lane) -> Event) {
        for lane in &mut self.lanes {
            let e = event(lane);
            lane.pending.push(e);
        }
    }

    /// Queues `event(lane)` on every lane that is still running (a stopped lane keeps its
    /// diverged or crashed state).
    fn each_live(&mut self, event: impl Fn(&Lane) -> Event) {
        for lane in self.lanes.iter_mut().filter(|l| l.is_live()) {
            let e = event(lane);
            lane.pending.push(e);
        }
    }

    /// Copies lane `from` into a new lane and flips one switch on the copy.
    fn fork(&mut self, from: LaneId, flip: Option<Command>) {
        let parent = &self.lanes[from];
        let refusal = if self.lanes.len() >= MAX_LANES {
            Some(format!("a comparison holds at most {MAX_LANES} runs"))
        } else if !parent.is_live() {
            Some("this run has stopped: reset it before forking".to_string())
        } else {
            None
        };
        if let Some(message) = refusal {
            self.lanes[from].pending.push(Event::error(message));
            return;
        }
        let Some(mut twin) = parent.fork(flip.as_ref()) else {
            return;
        };
        twin.pace(self.pacing);
        let step = twin.step();
        twin.pending.push(Event::Forked {
            from,
            step,
            flip: flip.clone(),
        });
        if let Some(command) = flip {
            let rewired = command.rewires();
            twin.pending.push(Event::Applied { step, command });
            if rewired {
                twin.refresh();
            }
        }
        twin.pending.push(Event::State {
            step,
            state: self.state(),
        });
        self.lanes.push(twin);
    }

    /// One step of every live lane, dealt over the threads; false once the consumer is gone.
    /// A lone lane's run takes up to two threads; lanes sharing the driver take one each.
    pub fn round(&mut self, out: &mut Outbox<'_>) -> bool {
        let threads = self.threads;
        let mut live: Vec<&mut Lane<'a>> = self
            .lanes
            .iter_mut()
            .filter(|lane| lane.is_live())
            .collect();
        let per_run = crate::parallel::threads_per_run(threads, live.len());
        for lane in live.iter_mut() {
            lane.set_threads(per_run);
        }
        if threads <= 1 || live.len() <= 1 {
            live.iter_mut().for_each(|lane| lane.advance());
        } else {
            // A lane catches its own panics (a crash of that run), so no worker can fail.
            let _ = for_each_dealt(
                "driver",
                &mut live,
                threads,
                |lane| lane.advance(),
                |_, ()| {},
            );
        }
        self.steps_left = self.steps_left.saturating_sub(1);
        self.flush(out) && self.report_rates(out)
    }

    /// Sends every lane's pending events, lane by lane; false once the consumer is gone.
    fn flush(&mut self, out: &mut Outbox<'_>) -> bool {
        for (lane, state) in self.lanes.iter_mut().enumerate() {
            for event in state.pending.drain(..) {
                if !out(LaneEvent { lane, event }) {
                    return false;
                }
            }
        }
        true
    }

    fn report_rates(&mut self, out: &mut Outbox<'_>) -> bool {
        let Some(sent) = self.rates_sent else {
            return true;
        };
        if sent.elapsed() < RATE_EVERY {
            return true;
        }
        self.rates_sent = Some(Instant::now());
        for (lane, state) in self.lanes.iter_mut().enumerate() {
            if let Some(steps_per_sec) = state.take_rate() {
                let event = Event::Throughput { steps_per_sec };
                if !out(LaneEvent { lane, event }) {
                    return false;
                }
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

/// The caller's end of a driver thread.
pub struct DriverHandle {
    /// Commands to the driver.
    pub commands: Sender<LaneCommand>,
    /// Events from the driver.
    pub events: Receiver<LaneEvent>,
    /// The thread; it ends on `Shutdown` or when `commands` is dropped.
    pub thread: JoinHandle<()>,
}

impl DriverHandle {
    /// Sends `command` to `lane`; a send fails only once the driver is gone, which the event
    /// channel reports.
    pub fn send(&self, lane: LaneId, command: Command) {
        let _ = self.commands.send(LaneCommand { lane, command });
    }
}

/// Starts a driver thread on `starts` (at most [`MAX_LANES`]), dealing each round over
/// `threads` threads, stepping at once unless `paused`.
pub fn spawn_driver(
    starts: Vec<LaneStart<'static>>,
    threads: usize,
    paused: bool,
) -> Result<DriverHandle> {
    let (command_tx, command_rx) = channel::<LaneCommand>();
    let (event_tx, event_rx) = channel();
    let thread = std::thread::Builder::new()
        .name("gradlab-driver".into())
        .spawn(move || {
            let mut out = |event| event_tx.send(event).is_ok();
            let mut driver = Driver::new(threads, paused)
                .with_rates()
                .with_pacing(Pacing::Budget);
            for start in starts.into_iter().take(MAX_LANES) {
                if !driver.add(start, &mut out) {
                    return;
                }
            }
            loop {
                let stepping = driver.wants_steps();
                let next = if stepping {
                    match command_rx.try_recv() {
                        Ok(command) => Some(command),
                        Err(TryRecvError::Empty) => None,
                        Err(TryRecvError::Disconnected) => return,
                    }
                } else {
                    match command_rx.recv_timeout(IDLE_WAIT) {
                        Ok(command) => Some(command),
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                };
                let alive = match next {
                    Some(command) => driver.handle(command, &mut out),
                    None => driver.round(&mut out),
                };
                if !alive {
                    return;
                }
            }
        })?;
    Ok(DriverHandle {
        commands: command_tx,
        events: event_rx,
        thread,
    })
}
