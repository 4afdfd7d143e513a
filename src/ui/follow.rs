//! Following a recording another process is still writing, like `tail -F`: the file may not
//! exist yet, may grow, and may stop growing because its writer was killed.

use super::app::{Effect, Msg, ReplayStatus};
use super::event::EventSource;
use super::playback::shown;
use super::replay::{ReplayRequest, ReplayView};
use crate::protocol::Event;
use crate::recording::Follower;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Most records taken in per poll, so catching up never freezes the keys.
const FOLLOW_BATCH: usize = 5_000;
/// Longest a poll spends reading.
const FOLLOW_BUDGET: Duration = Duration::from_millis(30);
/// A file quiet this long without an `ended` line gets a note saying so.
const QUIET_SECONDS: f64 = 5.0;

/// Takes in a recording another process is still writing.
pub struct FollowSource {
    path: PathBuf,
    follower: Option<Follower>,
    started: bool,
    failed: bool,
    /// The run of the file being shown (its `run` number) and how many were seen.
    run: Option<u32>,
    runs: usize,
    last_step: u64,
    /// The clock when the newest line arrived.
    last_line_at: Option<f64>,
}

impl FollowSource {
    /// Follows `path`; a file that does not exist yet is waited for.
    pub fn open(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            follower: None,
            started: false,
            failed: false,
            run: None,
            runs: 1,
            last_step: 0,
            last_line_at: None,
        }
    }

    /// The view to put on the dashboard's replay screen for this source.
    pub fn view(path: &Path) -> ReplayView {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        ReplayView::new(name, true)
    }

    fn poll(&mut self, now: f64, out: &mut Vec<Msg>) {
        if self.failed {
            return;
        }
        if self.follower.is_none() {
            match Follower::open(&self.path) {
                Ok(follower) => self.follower = Some(follower),
                Err(_) => {
                    out.push(Msg::ReplayNote(format!(
                        "waiting for {} to appear",
                        self.path.display()
                    )));
                    return;
                }
            }
        }
        let Some(follower) = self.follower.as_mut() else {
            return;
        };
        let deadline = Instant::now() + FOLLOW_BUDGET;
        let mut took = false;
        for _ in 0..FOLLOW_BATCH {
            let polled = follower.poll();
            if !self.started
                && let Some(header) = follower.header()
            {
                self.started = true;
                out.push(shown(Event::Started {
                    preset: Box::new(header.preset.clone()),
                }));
            }
            let record = match polled {
                None => break,
                Some(Ok(record)) => record,
                Some(Err(e)) if e.is_fatal() => {
                    out.push(Msg::ReplayNote(format!("follow: {e}")));
                    self.failed = true;
                    break;
                }
                Some(Err(e)) => {
                    out.push(Msg::ReplayNote(format!("skipped {e}")));
                    continue;
                }
            };
            took = true;
            match self.run {
                None => self.run = Some(record.run),
                Some(run) if run != record.run => {
                    self.run = Some(record.run);
                    self.runs += 1;
                    self.last_step = 0;
                }
                Some(_) => {}
            }
            if let Some(step) = record.event.step() {
                self.last_step = self.last_step.max(step);
            }
            if let Event::Ended { step, reason } = &record.event {
                out.push(Msg::ReplayNote(format!(
                    "the run ended at step {step}: {reason}"
                )));
            }
            out.push(shown(record.event));
            if Instant::now() >= deadline {
                break;
            }
        }
        if took || self.last_line_at.is_none() {
            self.last_line_at = Some(now);
        }
        let ended = follower.ended();
        let quiet = now - self.last_line_at.unwrap_or(now);
        if !ended && !took && quiet >= QUIET_SECONDS {
            out.push(Msg::ReplayNote(format!(
                "no new line for {quiet:.0} s and no end line: the writer may have been killed"
            )));
        }
        out.push(Msg::ReplayStatus(ReplayStatus {
            run: self.runs - 1,
            runs: self.runs,
            last_step: self.last_step,
            at_end: ended,
        }));
    }
}

impl EventSource for FollowSource {
    fn perform(&mut self, effect: Effect) -> Vec<Msg> {
        let mut out = Vec::new();
        if let Effect::Replay(ReplayRequest::Poll { now }) = effect {
            self.poll(now, &mut out);
        }
        out
    }
}
