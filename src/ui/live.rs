//! The live dashboard's source: the one driver (one lane for a single run, a lane more for
//! each fork, several from the start for `gradlab compare`), the preset files the picker
//! reads, and the recording of lane 0.
//!
//! With `--record FILE`, the run the dashboard started with (lane 0) is recorded, across
//! forks: the driver steps it exactly as it would step it alone, so the recording stays what
//! `gradlab reproduce` can check. Twins are not recorded.

use super::app::{Effect, Msg};
use super::event::EventSource;
use super::picker::{Picker, PresetSource};
use crate::protocol::{Command, LaneCommand, LaneEvent};
use crate::recording::Recorder;
use crate::trainer::DriverHandle;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where the picker looks for preset files besides the built-in ones.
const PRESET_FOLDER: &str = "presets";

/// A running driver, its events forwarded into the dashboard's inbox.
pub struct LiveSource {
    commands: Sender<LaneCommand>,
    driver: JoinHandle<()>,
    forwarder: JoinHandle<()>,
    recorder: Option<Recorder>,
    preset_folder: PathBuf,
}

/// How long the forwarder gathers the driver's events before passing them on, for a
/// dashboard drawing `fps` frames a second: half a frame, so an event reaches the screen at
/// most half a frame later than it would, and the forwarder wakes a few dozen times a second
/// rather than hundreds (each wake-up takes a core from a training shard, the other waiting).
pub fn forward_pause(fps: u32) -> Duration {
    Duration::from_secs_f64(0.5 / f64::from(fps.clamp(1, 240)))
}

impl LiveSource {
    /// The dashboard on `driver`, drawing `fps` frames a second: its events go to `inbox` as
    /// `Msg::Lane` (and `Msg::DriverGone` when it ends); lane 0 is recorded to `recorder`.
    pub fn start(
        driver: DriverHandle,
        recorder: Option<Recorder>,
        inbox: Sender<Msg>,
        fps: u32,
    ) -> std::io::Result<Self> {
        let pause = forward_pause(fps);
        let DriverHandle {
            commands,
            events,
            thread,
        } = driver;
        let forwarder = std::thread::Builder::new()
            .name("gradlab-forward".into())
            .spawn(move || {
                while let Ok(first) = events.recv() {
                    for event in std::iter::once(first).chain(events.try_iter()) {
                        if inbox.send(Msg::Lane(event)).is_err() {
                            return;
                        }
                    }
                    // Gather a fast run's events for a moment: waking once per snapshot
                    // (hundreds a second) takes a core from the training threads, and
                    // the dashboard draws at most every frame anyway.
                    std::thread::sleep(pause);
                }
                let _ = inbox.send(Msg::DriverGone);
            })?;
        Ok(Self {
            commands,
            driver: thread,
            forwarder,
            recorder,
            preset_folder: PathBuf::from(PRESET_FOLDER),
        })
    }

    /// Stops the driver (waiting up to `timeout` for its current step), records what lane 0
    /// sent that was not shown yet, writes the line that ends the run (`reason`: `quit`, a
    /// signal's name) and closes the recording.
    pub fn close(
        self,
        reason: &str,
        inbox: &Receiver<Msg>,
        timeout: Duration,
    ) -> std::io::Result<()> {
        let _ = self.commands.send(LaneCommand {
            lane: 0,
            command: Command::Shutdown,
        });
        let deadline = Instant::now() + timeout;
        while !self.driver.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let finished = self.driver.is_finished();
        if finished {
            let _ = self.driver.join();
            let _ = self.forwarder.join();
        }
        let Some(mut recorder) = self.recorder else {
            return Ok(());
        };
        // Events sent after the last frame were not shown, but they happened.
        for msg in inbox.try_iter() {
            if let Msg::Lane(LaneEvent { lane: 0, event }) = msg {
                recorder.record(&event)?;
            }
        }
        recorder.end(reason)?;
        recorder.close()
    }
}

impl EventSource for LiveSource {
    fn perform(&mut self, effect: Effect) -> Vec<Msg> {
        match effect {
            Effect::Send(command) => {
                // A send fails only once the driver is gone, which the forwarder reports.
                let _ = self.commands.send(command);
                Vec::new()
            }
            Effect::DiscoverPresets => vec![Msg::Presets(Picker::discover(&self.preset_folder))],
            Effect::LoadPreset(source) => {
                let loaded = PresetSource::load(&source).map_err(|e| format!("{e:#}"));
                vec![Msg::PresetLoaded(loaded.map(Box::new))]
            }
            Effect::Replay(_) | Effect::Suspend => Vec::new(),
        }
    }

    fn observe(&mut self, msg: &Msg) -> Vec<Msg> {
        let (Some(recorder), Msg::Lane(LaneEvent { lane: 0, event })) = (&mut self.recorder, msg)
        else {
            return Vec::new();
        };
        match recorder.record(event) {
            Ok(()) => Vec::new(),
            Err(e) => {
                // A failed write stops the recording, not the training; the user is told at
                // once and again on the way out.
                self.recorder = None;
                vec![Msg::RecordingStopped(e.to_string())]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarder_gathers_for_half_a_frame_at_any_frame_rate() {
        assert_eq!(forward_pause(20), Duration::from_millis(25));
        for fps in [1, 20, 60, 240] {
            let frame = Duration::from_secs_f64(1.0 / f64::from(fps));
            assert!(forward_pause(fps) * 2 <= frame + Duration::from_nanos(1));
        }
        // Rates outside what the dashboard accepts are clamped, never a zero or endless pause.
        assert_eq!(forward_pause(0), forward_pause(1));
        assert_eq!(forward_pause(10_000), forward_pause(240));
    }
}
