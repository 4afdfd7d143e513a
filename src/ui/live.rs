//! The live dashboard's event source: the one driver, with one lane for a single run and a
//! lane more for each fork (or several from the start, for `gradlab compare`).
//!
//! With `--record FILE`, the run the dashboard started with (lane 0) is recorded, across
//! forks: the driver steps it exactly as it would step it alone, so the recording stays
//! what `gradlab reproduce` can check. Twins are not recorded.

use super::app::{App, Msg, update};
use super::event::{EventSource, drain};
use crate::protocol::{Command, Event, LaneEvent};
use crate::recording::Recorder;
use crate::trainer::DriverHandle;
use std::time::{Duration, Instant};

/// A running driver and the recording of its first lane.
pub struct LiveSource {
    driver: DriverHandle,
    recorder: Option<Recorder>,
}

impl LiveSource {
    /// The dashboard on `driver`, recording lane 0 to `recorder`.
    pub fn new(driver: DriverHandle, recorder: Option<Recorder>) -> Self {
        Self { driver, recorder }
    }

    /// Writes the line that ends the run (`reason`: `quit`, a signal's name), then flushes
    /// and closes the recording. Call it after the loop, whatever ended it.
    pub fn close_recording(&mut self, reason: &str) -> std::io::Result<()> {
        let Some(mut recorder) = self.recorder.take() else {
            return Ok(());
        };
        // Events sent after the last frame were not shown, but they happened.
        while let Ok(lane_event) = self.driver.events.try_recv() {
            if lane_event.lane == 0 {
                recorder.record(&lane_event.event)?;
            }
        }
        recorder.end(reason)?;
        recorder.close()
    }

    /// Asks the driver to stop and waits up to `timeout` for it; a driver stuck in a long
    /// step must not keep the shell waiting.
    pub fn shut_down(self, timeout: Duration) {
        self.driver.send(0, Command::Shutdown);
        let deadline = Instant::now() + timeout;
        while !self.driver.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.driver.thread.is_finished() {
            let _ = self.driver.thread.join();
        }
    }
}

impl EventSource for LiveSource {
    fn pump(&mut self, app: &mut App, feed: &mut dyn FnMut(&mut App, Event)) -> bool {
        let recorder = &mut self.recorder;
        drain(&self.driver.events, app, |app, lane_event: LaneEvent| {
            if lane_event.lane == 0 {
                record(recorder, app, &lane_event.event);
            }
            if app.compare.is_none() && lane_event.lane == 0 {
                feed(app, lane_event.event);
            } else {
                update(app, Msg::Lane(lane_event));
            }
        })
    }

    fn dispatch(&mut self, app: &mut App, _feed: &mut dyn FnMut(&mut App, Event)) -> bool {
        // Before the twin is announced the dashboard's own run still lives in `app`.
        for command in std::mem::take(&mut app.outbox) {
            self.driver.send(0, command);
        }
        if let Some(view) = app.compare.as_mut() {
            for (lane, state) in view.runs.iter_mut().enumerate() {
                for command in std::mem::take(&mut state.app.outbox) {
                    self.driver.send(lane, command);
                }
            }
        }
        if let Some(request) = app.fork_request.take() {
            let flip = request.flip.map(Box::new);
            self.driver.send(request.from, Command::Fork { flip });
        }
        false
    }
}

/// Writes `event` to the recording; a failed write stops the recording, not the training.
pub fn record(recorder: &mut Option<Recorder>, app: &mut App, event: &Event) {
    if let Some(writer) = recorder.as_mut()
        && let Err(e) = writer.record(event)
    {
        app.error = Some(format!("recording stopped: {e}"));
        *recorder = None;
    }
}
