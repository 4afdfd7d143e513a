//! Playing a recording with seeking: [`ReplaySource`] carries out the replay requests
//! `update` makes and answers with the recorded events as messages.
//!
//! A recording can be far larger than memory (100 000 snapshots of a 64-layer net is about a
//! gigabyte), so nothing holds it whole: one pass builds a sparse
//! [`super::replay_index::RecordingIndex`], and a seek re-reads from the nearest point that
//! rebuilds the dashboard exactly. The dashboard's histories are themselves bounded, so
//! replay memory is the index plus one line.

use super::app::{Effect, Msg, ReplayStatus};
use super::event::EventSource;
use super::replay::{ReplayRequest, ReplayView};
use super::replay_index::RecordingIndex;
use crate::config::Experiment;
use crate::protocol::{Event, LaneEvent, Line};
use crate::recording::{Recording, RecordingError};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// A seek re-reads at most this much from the start of a run to rebuild every chart exactly;
/// farther in, it starts [`CONTEXT_SNAPSHOTS`] before the target and says what it skipped.
pub const EXACT_SEEK_BYTES: u64 = 64 << 20;
/// Snapshots re-read before a far seek's target: the charts' full-resolution window, twice.
pub const CONTEXT_SNAPSHOTS: u64 = 2 * super::run_view::RECENT_POINTS as u64;

/// A recorded event as the message a live run's event would be.
pub fn shown(event: Event) -> Msg {
    Msg::Lane(LaneEvent { lane: 0, event })
}

/// Where a re-read stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Before the first record of a later step.
    Step(u64),
    /// After the record starting at this offset.
    Offset(u64),
}

/// A record read but not yet shown, with where its line starts.
struct Pending {
    record: Line,
    offset: u64,
}

/// Plays a recording into the dashboard: play/pause, speed, seek by step, jump to markers.
pub struct ReplaySource {
    path: PathBuf,
    reading: Recording<BufReader<File>>,
    header_preset: Experiment,
    index: RecordingIndex,
    /// The run being shown.
    run: usize,
    /// The next record, read ahead to see whether it is due.
    pending: Option<Pending>,
    at_end: bool,
}

impl ReplaySource {
    /// Opens `path` and indexes it; the replay starts at the first snapshot.
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        let index = RecordingIndex::build(path)?;
        let reading = Recording::open(path)?;
        let header_preset = reading.header().preset.clone();
        Ok(Self {
            path: path.to_path_buf(),
            reading,
            header_preset,
            index,
            run: 0,
            pending: None,
            at_end: false,
        })
    }

    /// The view to put on the dashboard's replay screen for this source.
    pub fn view(&self) -> ReplayView {
        let name = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        let mut view = ReplayView::new(name, false);
        view.runs = self.index.runs.len();
        view.last_step = self.index.runs.first().map_or(0, |r| r.last_step);
        view
    }

    /// The index built when the file was opened.
    pub fn index(&self) -> &RecordingIndex {
        &self.index
    }

    /// Byte offset of the next record not yet shown.
    pub fn position(&self) -> u64 {
        self.pending
            .as_ref()
            .map_or_else(|| self.reading.offset(), |p| p.offset)
    }

    /// The messages that show the recording's first step: apply them before the first frame.
    pub fn start(&mut self) -> Result<Vec<Msg>, RecordingError> {
        let mut out = Vec::new();
        self.rebuild(&mut out, 0, Stop::Step(0))?;
        out.push(self.status());
        // Skipped lines are said, not hidden: the replay shows the rest of the file.
        if let Some(first) = self.index.first_corrupt {
            out.push(Msg::ReplayNote(format!(
                "{} corrupt line(s) skipped, the first at line {first}",
                self.index.corrupt
            )));
        }
        Ok(out)
    }

    fn peek(&mut self) -> Option<&Pending> {
        while self.pending.is_none() {
            let offset = self.reading.offset();
            match self.reading.next()? {
                Ok(record) => self.pending = Some(Pending { record, offset }),
                // The index pass already stopped on fatal errors; corrupt lines are skipped.
                Err(e) if e.is_fatal() => return None,
                Err(_) => continue,
            }
        }
        self.pending.as_ref()
    }

    /// Shows records of the current run up to `stop`; a later run's first line is left
    /// pending.
    fn feed_until(&mut self, out: &mut Vec<Msg>, stop: Stop) {
        let number = self.index.runs[self.run].number;
        loop {
            let Some(next) = self.peek() else {
                self.at_end = true;
                return;
            };
            let boundary = next.record.run != number;
            let due = match stop {
                Stop::Step(step) => next.record.event.step().is_none_or(|s| s <= step),
                Stop::Offset(offset) => next.offset <= offset,
            };
            if boundary || !due {
                return;
            }
            let Some(Pending { record, .. }) = self.pending.take() else {
                return;
            };
            if let Event::Ended { step, reason } = &record.event {
                out.push(Msg::ReplayNote(format!(
                    "the recorded run ended at step {step}: {reason}"
                )));
            }
            out.push(shown(record.event));
        }
    }

    /// Rebuilds the dashboard for `run` from scratch, up to `stop`.
    fn rebuild(
        &mut self,
        out: &mut Vec<Msg>,
        run: usize,
        stop: Stop,
    ) -> Result<(), RecordingError> {
        let Some(info) = self.index.runs.get(run).cloned() else {
            return Ok(());
        };
        let target = match stop {
            Stop::Step(step) => self.index.point_at_step(run, step).cloned(),
            Stop::Offset(offset) => self.index.point_at_offset(run, offset).cloned(),
        };
        // Far into a long run, start a window before the target instead of at the run start.
        let far = target.filter(|t| t.offset.saturating_sub(info.offset) > EXACT_SEEK_BYTES);
        let from = far.and_then(|t| {
            let wanted = t.ordinal.saturating_sub(CONTEXT_SNAPSHOTS);
            self.index
                .points
                .iter()
                .rfind(|p| p.run == run && p.ordinal <= wanted)
                .cloned()
        });
        self.pending = None;
        self.at_end = false;
        self.run = run;
        if !info.has_started || from.is_some() {
            let preset = if info.has_started {
                self.reading.seek(info.offset, info.line)?;
                match self.reading.next() {
                    Some(Ok(Line {
                        event: Event::Started { preset },
                        ..
                    })) => preset,
                    _ => Box::new(self.header_preset.clone()),
                }
            } else {
                Box::new(self.header_preset.clone())
            };
            out.push(shown(Event::Started { preset }));
        }
        match from {
            Some(point) => {
                let skipped = self
                    .index
                    .markers
                    .iter()
                    .filter(|m| m.run == run && m.offset < point.offset);
                for m in skipped {
                    // Switches and markers of the skipped part still matter on screen.
                    out.push(shown(Event::Applied {
                        step: m.step,
                        command: m.command.clone(),
                    }));
                }
                self.reading.seek(point.offset, point.line)?;
                out.push(Msg::ReplayNote(format!(
                    "far seek: charts start at step {} (the file is large)",
                    point.step
                )));
            }
            None => self.reading.seek(info.offset, info.line)?,
        }
        self.feed_until(out, stop);
        Ok(())
    }

    /// Plays on to `step`; at the end of a run whose successor exists, moves on to it.
    fn play_to(&mut self, out: &mut Vec<Msg>, step: u64) {
        self.feed_until(out, Stop::Step(step));
        let run_done = step >= self.index.runs[self.run].last_step;
        let next_run = self.pending.is_some();
        if run_done && next_run && self.run + 1 < self.index.runs.len() {
            self.run += 1;
            self.feed_until(out, Stop::Step(0));
        }
    }

    fn seek(&mut self, out: &mut Vec<Msg>, request: ReplayRequest) -> Result<(), RecordingError> {
        let here = self.position();
        match request {
            ReplayRequest::PlayTo(step) => self.play_to(out, step),
            ReplayRequest::Poll { .. } => {}
            ReplayRequest::SeekBy { from, steps } => {
                let last = self.index.runs[self.run].last_step;
                let target = from.saturating_add_signed(steps).min(last);
                let close = self
                    .index
                    .point_at_step(self.run, target)
                    .is_none_or(|p| p.offset.saturating_sub(here) <= EXACT_SEEK_BYTES);
                if steps > 0 && close {
                    // Forward and near: keep what is on screen and read on.
                    self.feed_until(out, Stop::Step(target));
                } else {
                    self.rebuild(out, self.run, Stop::Step(target))?;
                }
            }
            ReplayRequest::Start => self.rebuild(out, 0, Stop::Step(0))?,
            ReplayRequest::End => {
                let run = self.index.runs.len() - 1;
                self.rebuild(out, run, Stop::Step(u64::MAX))?;
            }
            ReplayRequest::NextMarker { from } | ReplayRequest::PrevMarker { from } => {
                // Position by (run, step): landing on a marker shows its step, so "previous"
                // must skip the marker just landed on.
                let run = self.run;
                let next = matches!(request, ReplayRequest::NextMarker { .. });
                let marker = if next {
                    self.index
                        .markers
                        .iter()
                        .find(|m| m.run > run || (m.run == run && m.step > from))
                } else {
                    self.index
                        .markers
                        .iter()
                        .rev()
                        .find(|m| m.run < run || (m.run == run && m.step < from))
                };
                let Some(marker) = marker.cloned() else {
                    out.push(Msg::ReplayNote("no more interventions that way".into()));
                    return Ok(());
                };
                let forward_near = next
                    && marker.run == self.run
                    && marker.offset >= here
                    && marker.offset - here <= EXACT_SEEK_BYTES;
                if forward_near {
                    self.feed_until(out, Stop::Offset(marker.offset));
                } else {
                    self.rebuild(out, marker.run, Stop::Offset(marker.offset))?;
                }
                // On to the first snapshot the command influenced, so the effect is on screen.
                self.feed_until(out, Stop::Step(marker.step));
                out.push(Msg::ReplayNote(format!(
                    "intervention at step {}: {}",
                    marker.step,
                    marker.command.label()
                )));
            }
        }
        Ok(())
    }

    fn status(&self) -> Msg {
        Msg::ReplayStatus(ReplayStatus {
            run: self.run,
            runs: self.index.runs.len(),
            last_step: self.index.runs.get(self.run).map_or(0, |r| r.last_step),
            at_end: self.at_end && self.pending.is_none(),
        })
    }
}

impl EventSource for ReplaySource {
    fn perform(&mut self, effect: Effect) -> Vec<Msg> {
        let mut out = Vec::new();
        match effect {
            Effect::Replay(request) => {
                if let Err(e) = self.seek(&mut out, request) {
                    out.push(Msg::ReplayNote(format!("replay: {e}")));
                }
                out.push(self.status());
            }
            // A recording has no trainer to command and keeps its preset.
            Effect::Send(_) | Effect::DiscoverPresets | Effect::LoadPreset(_) | Effect::Suspend => {
            }
        }
        out
    }
}
