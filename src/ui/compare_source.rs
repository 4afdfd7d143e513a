//! The live dashboard's event source: one trainer thread, until a fork hands its network to
//! the lock-step driver of the compare view (or the lock-step driver from the start, for
//! `gradlab compare`).
//!
//! With `--record FILE`, the original run (run 1) goes on recording into FILE across a fork:
//! the driver steps it exactly as its own thread would, so the recording stays one run that
//! `gradlab reproduce` can check. Twins are not recorded.

use super::app::{App, Msg, update};
use super::event::{EventSource, drain, pump_trainer, record};
use crate::recording::Recorder;
use crate::trainer::lockstep::{LaneStart, LockstepCommand, LockstepEvent, LockstepHandle};
use crate::trainer::{Command, Event, TrainerHandle, lockstep::spawn_lockstep};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What is training right now.
enum Driver {
    /// The single-run dashboard's trainer thread.
    Single(TrainerHandle),
    /// The compare view's lock-step driver.
    Lockstep(LockstepHandle),
    /// Nothing (a fork failed to hand the network over).
    Gone,
}

/// A live source that can turn into a comparison.
pub struct CompareSource {
    driver: Driver,
    recorder: Option<Recorder>,
    base_dir: Option<PathBuf>,
    threads: usize,
}

impl CompareSource {
    /// The single-run dashboard on `handle`, recording run 1 to `recorder`; a fork spreads
    /// the runs over `threads` threads.
    pub fn single(
        handle: TrainerHandle,
        recorder: Option<Recorder>,
        base_dir: Option<PathBuf>,
        threads: usize,
    ) -> Self {
        Self {
            driver: Driver::Single(handle),
            recorder,
            base_dir,
            threads,
        }
    }

    /// A comparison already running on the lock-step driver.
    pub fn lockstep(handle: LockstepHandle, threads: usize) -> Self {
        Self {
            driver: Driver::Lockstep(handle),
            recorder: None,
            base_dir: None,
            threads,
        }
    }

    /// Writes `interrupted` when a signal ended the dashboard, then flushes and closes the
    /// recording. Call it after the loop, whatever ended it.
    pub fn close_recording(&mut self, signal: Option<&str>) -> std::io::Result<()> {
        let Some(mut recorder) = self.recorder.take() else {
            return Ok(());
        };
        // Events sent after the last frame were not shown, but they happened.
        match &self.driver {
            Driver::Single(handle) => {
                while let Ok(event) = handle.events.try_recv() {
                    recorder.record(&event)?;
                }
            }
            Driver::Lockstep(handle) => {
                while let Ok(event) = handle.events.try_recv() {
                    if let LockstepEvent::Run { run: 0, event } = event {
                        recorder.record(&event)?;
                    }
                }
            }
            Driver::Gone => {}
        }
        if let Some(signal) = signal {
            recorder.interrupted(signal)?;
        }
        recorder.close()
    }

    /// Asks the trainer to stop and waits up to `timeout` for it; a trainer stuck in a long
    /// step must not keep the shell waiting.
    pub fn shut_down(self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let wait = |finished: &dyn Fn() -> bool| {
            while !finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            finished()
        };
        match self.driver {
            Driver::Single(handle) => {
                let _ = handle.commands.send(Command::Shutdown);
                if wait(&|| handle.thread.is_finished()) {
                    let _ = handle.thread.join();
                }
            }
            Driver::Lockstep(handle) => {
                let _ = handle.commands.send(LockstepCommand::Shutdown);
                if wait(&|| handle.thread.is_finished()) {
                    let _ = handle.thread.join();
                }
            }
            Driver::Gone => {}
        }
    }

    /// Stops the single trainer between two steps, takes its network and starts the lock-step
    /// driver on it, with the twin asked for.
    fn fork_single(&mut self, app: &mut App, feed: &mut dyn FnMut(&mut App, Event)) {
        let Some(request) = app.fork_request.take() else {
            return;
        };
        let Driver::Single(handle) = std::mem::replace(&mut self.driver, Driver::Gone) else {
            return;
        };
        let _ = handle.commands.send(Command::Shutdown);
        // The thread ends after its current step; everything it sent before is shown first,
        // so the twin's copy of the history ends exactly where its network stands.
        let learner = handle.thread.join().ok().flatten();
        // Its channel is closed now: that is the hand-over, not the run ending.
        while let Ok(event) = handle.events.try_recv() {
            record(&mut self.recorder, app, &event);
            feed(app, event);
        }
        let paused = app.state == crate::trainer::RunState::Paused;
        let started = learner.ok_or_else(|| "the trainer had stopped".to_string());
        let started = started.and_then(|learner| {
            let start = LaneStart::Running {
                learner,
                base_dir: self.base_dir.clone(),
            };
            spawn_lockstep(vec![start], self.threads, paused).map_err(|e| format!("{e:#}"))
        });
        match started {
            Ok(lockstep) => {
                let fork = LockstepCommand::Fork {
                    from: request.from,
                    flip: request.flip,
                };
                let _ = lockstep.commands.send(fork);
                self.driver = Driver::Lockstep(lockstep);
            }
            Err(error) => {
                update(
                    app,
                    Msg::Trainer(Event::Error(format!("cannot fork: {error}"))),
                );
                update(app, Msg::TrainerGone);
            }
        }
    }
}

impl EventSource for CompareSource {
    fn pump(&mut self, app: &mut App, feed: &mut dyn FnMut(&mut App, Event)) -> bool {
        let handle = match &self.driver {
            Driver::Single(handle) => {
                return pump_trainer(&handle.events, &mut self.recorder, app, feed);
            }
            Driver::Lockstep(handle) => handle,
            Driver::Gone => return false,
        };
        let recorder = &mut self.recorder;
        drain(&handle.events, app, |app, event| {
            if let LockstepEvent::Run { run: 0, event } = &event {
                record(recorder, app, event);
            }
            update(app, Msg::Lockstep(event));
        })
    }

    fn dispatch(&mut self, app: &mut App, feed: &mut dyn FnMut(&mut App, Event)) -> bool {
        let handle = match &self.driver {
            Driver::Single(handle) => {
                for command in std::mem::take(&mut app.outbox) {
                    // A send fails only once the trainer is gone, which `pump` reports.
                    let _ = handle.commands.send(command);
                }
                if app.fork_request.is_some() {
                    self.fork_single(app, feed);
                    return true;
                }
                return false;
            }
            Driver::Lockstep(handle) => handle,
            Driver::Gone => return false,
        };
        let send = |command| {
            let _ = handle.commands.send(command);
        };
        // Before the twin is announced the dashboard's own run still lives in `app`.
        for command in std::mem::take(&mut app.outbox) {
            send(LockstepCommand::Run(0, command));
        }
        if let Some(view) = app.compare.as_mut() {
            for (run, state) in view.runs.iter_mut().enumerate() {
                for command in std::mem::take(&mut state.app.outbox) {
                    send(LockstepCommand::Run(run, command));
                }
            }
        }
        if let Some(request) = app.fork_request.take() {
            send(LockstepCommand::Fork {
                from: request.from,
                flip: request.flip,
            });
        }
        false
    }
}
