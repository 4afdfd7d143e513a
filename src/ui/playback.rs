//! Event sources that read a recording instead of a trainer: [`ReplaySource`] plays a file
//! with seeking, [`FollowSource`] takes in a file another process is still writing.
//!
//! A recording can be far larger than memory (100 000 snapshots of a 64-layer net is about a
//! gigabyte), so nothing holds it whole: one pass builds a sparse [`RecordingIndex`] (a byte
//! offset every [`INDEX_EVERY_BYTES`], the start of each run, every intervention), and a
//! seek re-reads from the nearest point that rebuilds the dashboard exactly. The dashboard's
//! histories are themselves bounded, so replay memory is the index plus one line.

use super::app::{App, Msg, update};
use super::event::EventSource;
use super::replay::{ReplayRequest, ReplayView};
use crate::config::Experiment;
use crate::protocol::Line;
use crate::protocol::{Command, Event};
use crate::recording::{Follower, Recording, RecordingError};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes between two index points.
pub const INDEX_EVERY_BYTES: u64 = 256 << 10;
/// A seek re-reads at most this much from the start of a run to rebuild every chart exactly;
/// farther in, it starts [`CONTEXT_SNAPSHOTS`] before the target and says what it skipped.
pub const EXACT_SEEK_BYTES: u64 = 64 << 20;
/// Snapshots re-read before a far seek's target: the charts' full-resolution window, twice.
pub const CONTEXT_SNAPSHOTS: u64 = 2 * super::app::RECENT_POINTS as u64;
/// Most records a follow source takes in per frame, so catching up never freezes the keys.
const FOLLOW_BATCH: usize = 5_000;
/// Longest a follow source spends reading per frame.
const FOLLOW_BUDGET: Duration = Duration::from_millis(30);

/// One run inside a recording: the header's, then one per reset or preset load.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Byte offset of its first record (its `started` line, if it has one).
    pub offset: u64,
    /// Lines before that offset.
    pub line: u64,
    /// Whether it begins with a `started` line (the first run of a headless file does not).
    pub has_started: bool,
    /// Its last step.
    pub last_step: u64,
}

/// A place to start reading: a snapshot's line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IndexPoint {
    /// Byte offset of the snapshot line.
    pub offset: u64,
    /// Lines before it.
    pub line: u64,
    /// Its step.
    pub step: u64,
    /// The run it belongs to.
    pub run: usize,
    /// Snapshots of the same run before it.
    pub ordinal: u64,
}

/// An applied command, for jumping between interventions.
#[derive(Clone, Debug, PartialEq)]
pub struct MarkerPoint {
    /// Byte offset of its line.
    pub offset: u64,
    /// Byte offset just past its line.
    pub end: u64,
    /// The step it took effect at.
    pub step: u64,
    /// The run it belongs to.
    pub run: usize,
    /// The command.
    pub command: Command,
}

/// What one pass over a recording learns: enough to seek anywhere without reading it all.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingIndex {
    /// Runs, in file order; never empty.
    pub runs: Vec<Run>,
    /// Sparse seek points, in file order.
    pub points: Vec<IndexPoint>,
    /// Interventions, in file order.
    pub markers: Vec<MarkerPoint>,
    /// Corrupt lines skipped (the reader names each on stderr of other tools).
    pub corrupt: u64,
    /// Snapshots in the file.
    pub snapshots: u64,
}

impl RecordingIndex {
    /// Reads `path` once, keeping a seek point every [`INDEX_EVERY_BYTES`].
    pub fn build(path: &Path) -> Result<Self, RecordingError> {
        let mut reading = Recording::open(path)?;
        let mut index = RecordingIndex {
            runs: vec![Run {
                offset: reading.offset(),
                line: reading.line_number(),
                has_started: false,
                last_step: 0,
            }],
            points: Vec::new(),
            markers: Vec::new(),
            corrupt: 0,
            snapshots: 0,
        };
        let mut ordinal = 0;
        loop {
            let (offset, line) = (reading.offset(), reading.line_number());
            let record = match reading.next() {
                None => break,
                Some(Ok(record)) => record,
                Some(Err(e)) if e.is_fatal() => return Err(e),
                Some(Err(_)) => {
                    index.corrupt += 1;
                    continue;
                }
            };
            let run = index.runs.len() - 1;
            if let Some(step) = record.event.step() {
                index.runs[run].last_step = index.runs[run].last_step.max(step);
            }
            match record.event {
                Event::Started { .. } => {
                    let first = &mut index.runs[0];
                    if run == 0 && !first.has_started && offset == first.offset {
                        first.has_started = true;
                    } else {
                        index.runs.push(Run {
                            offset,
                            line,
                            has_started: true,
                            last_step: 0,
                        });
                        ordinal = 0;
                    }
                }
                Event::Snapshot(s) => {
                    let due = index
                        .points
                        .last()
                        .is_none_or(|p| p.run != run || offset - p.offset >= INDEX_EVERY_BYTES);
                    if due {
                        index.points.push(IndexPoint {
                            offset,
                            line,
                            step: s.step,
                            run,
                            ordinal,
                        });
                    }
                    ordinal += 1;
                    index.snapshots += 1;
                }
                Event::Applied { step, command } if !matches!(command, Command::Step(_)) => {
                    index.markers.push(MarkerPoint {
                        offset,
                        end: reading.offset(),
                        step,
                        run,
                        command,
                    });
                }
                _ => {}
            }
        }
        Ok(index)
    }

    /// The last seek point of `run` at or before `step`.
    fn point_at_step(&self, run: usize, step: u64) -> Option<&IndexPoint> {
        self.points.iter().rfind(|p| p.run == run && p.step <= step)
    }

    /// The last seek point of `run` at or before byte `offset`.
    fn point_at_offset(&self, run: usize, offset: u64) -> Option<&IndexPoint> {
        self.points
            .iter()
            .rfind(|p| p.run == run && p.offset <= offset)
    }
}

/// Where a re-read stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Before the first record of a later step.
    Step(u64),
    /// After the record starting at this offset.
    Offset(u64),
}

/// A record read but not yet applied, with where its line starts.
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
    /// The simulated step playback has reached.
    clock: f64,
    last_pump: Option<Instant>,
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
            clock: 0.0,
            last_pump: None,
            at_end: false,
        })
    }

    /// The view to put in `App::replay` for this source.
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

    /// Byte offset of the next record not yet applied.
    pub fn position(&self) -> u64 {
        self.pending
            .as_ref()
            .map_or_else(|| self.reading.offset(), |p| p.offset)
    }

    /// Shows the recording's first step: call once before the first frame.
    pub fn start(
        &mut self,
        app: &mut App,
        feed: &mut dyn FnMut(&mut App, Event),
    ) -> Result<(), RecordingError> {
        self.rebuild(app, feed, 0, Stop::Step(0))?;
        self.clock = 0.0;
        Ok(())
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

    /// Applies records of the current run up to `stop`; a later run's `started` line is left
    /// pending. Returns whether anything was applied.
    fn feed_until(
        &mut self,
        app: &mut App,
        feed: &mut dyn FnMut(&mut App, Event),
        stop: Stop,
    ) -> bool {
        let run_offset = self.index.runs[self.run].offset;
        let mut fed = false;
        loop {
            let Some(next) = self.peek() else {
                self.at_end = true;
                return fed;
            };
            let boundary =
                matches!(next.record.event, Event::Started { .. }) && next.offset != run_offset;
            let due = match stop {
                Stop::Step(step) => next.record.event.step().is_none_or(|s| s <= step),
                Stop::Offset(offset) => next.offset <= offset,
            };
            if boundary || !due {
                return fed;
            }
            let Some(Pending { record, .. }) = self.pending.take() else {
                return fed;
            };
            if let Event::Ended { step, reason } = &record.event
                && let Some(view) = app.replay.as_mut()
            {
                view.note = Some(format!("the recorded run ended at step {step}: {reason}"));
            }
            feed(app, record.event);
            fed = true;
        }
    }

    /// Rebuilds the dashboard for `run` from scratch, up to `stop`.
    fn rebuild(
        &mut self,
        app: &mut App,
        feed: &mut dyn FnMut(&mut App, Event),
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
        app.error = None;
        app.state = crate::protocol::RunState::Running;
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
            feed(app, Event::Started { preset });
        }
        match from {
            Some(point) => {
                let skipped: Vec<(u64, Command)> = self
                    .index
                    .markers
                    .iter()
                    .filter(|m| m.run == run && m.offset < point.offset)
                    .map(|m| (m.step, m.command.clone()))
                    .collect();
                for (step, command) in skipped {
                    // Switches and markers of the skipped part still matter on screen.
                    feed(app, Event::Applied { step, command });
                }
                self.reading.seek(point.offset, point.line)?;
                if let Some(view) = app.replay.as_mut() {
                    view.note = Some(format!(
                        "far seek: charts start at step {} (the file is large)",
                        point.step
                    ));
                }
            }
            None => self.reading.seek(info.offset, info.line)?,
        }
        self.feed_until(app, feed, stop);
        Ok(())
    }

    fn seek(
        &mut self,
        app: &mut App,
        feed: &mut dyn FnMut(&mut App, Event),
        request: ReplayRequest,
    ) -> Result<(), RecordingError> {
        let here = self.position();
        match request {
            ReplayRequest::SeekBy(delta) => {
                let now = app.step;
                let last = self.index.runs[self.run].last_step;
                let target = now.saturating_add_signed(delta).min(last);
                let close = self
                    .index
                    .point_at_step(self.run, target)
                    .is_none_or(|p| p.offset.saturating_sub(here) <= EXACT_SEEK_BYTES);
                if delta > 0 && close {
                    // Forward and near: keep what is on screen and read on.
                    self.feed_until(app, feed, Stop::Step(target));
                } else {
                    self.rebuild(app, feed, self.run, Stop::Step(target))?;
                }
                self.clock = target as f64;
            }
            ReplayRequest::Start => {
                self.rebuild(app, feed, 0, Stop::Step(0))?;
                self.clock = 0.0;
            }
            ReplayRequest::End => {
                let run = self.index.runs.len() - 1;
                self.rebuild(app, feed, run, Stop::Step(u64::MAX))?;
                self.clock = self.index.runs[run].last_step as f64;
            }
            ReplayRequest::NextMarker | ReplayRequest::PrevMarker => {
                // Position by (run, step): landing on a marker shows its step, so "previous"
                // must skip the marker just landed on.
                let (run, step) = (self.run, app.step);
                let marker = if request == ReplayRequest::NextMarker {
                    self.index
                        .markers
                        .iter()
                        .find(|m| m.run > run || (m.run == run && m.step > step))
                } else {
                    self.index
                        .markers
                        .iter()
                        .rev()
                        .find(|m| m.run < run || (m.run == run && m.step < step))
                };
                let Some(marker) = marker.cloned() else {
                    if let Some(view) = app.replay.as_mut() {
                        view.note = Some("no more interventions that way".into());
                    }
                    return Ok(());
                };
                let forward_near = request == ReplayRequest::NextMarker
                    && marker.run == self.run
                    && marker.offset >= here
                    && marker.offset - here <= EXACT_SEEK_BYTES;
                if forward_near {
                    self.feed_until(app, feed, Stop::Offset(marker.offset));
                } else {
                    self.rebuild(app, feed, marker.run, Stop::Offset(marker.offset))?;
                }
                // On to the first snapshot the command influenced, so the effect is on screen.
                self.feed_until(app, feed, Stop::Step(marker.step));
                self.clock = marker.step as f64;
                if let Some(view) = app.replay.as_mut() {
                    view.note = Some(format!(
                        "intervention at step {}: {}",
                        marker.step,
                        marker.command.label()
                    ));
                }
            }
        }
        Ok(())
    }

    fn sync_view(&self, app: &mut App) {
        let at_end = self.at_end && self.pending.is_none();
        let run = self.run;
        let last_step = self.index.runs.get(run).map_or(0, |r| r.last_step);
        if let Some(view) = app.replay.as_mut() {
            view.run = run;
            view.runs = self.index.runs.len();
            view.last_step = last_step;
            view.at_end = at_end;
            if at_end && view.playing {
                view.playing = false;
            }
        }
    }
}

impl EventSource for ReplaySource {
    fn pump(&mut self, app: &mut App, feed: &mut dyn FnMut(&mut App, Event)) -> bool {
        let now = Instant::now();
        let elapsed = self
            .last_pump
            .map_or(0.0, |then| now.duration_since(then).as_secs_f64());
        self.last_pump = Some(now);
        let Some(view) = app.replay.as_ref() else {
            return false;
        };
        if !view.playing {
            return false;
        }
        // A long stall (a huge seek) must not turn into a burst of simulated steps.
        self.clock += elapsed.min(0.5) * view.steps_per_sec();
        let mut changed = self.feed_until(app, feed, Stop::Step(self.clock as u64));
        let run_done = self.clock >= self.index.runs[self.run].last_step as f64;
        let next_run = matches!(
            self.pending.as_ref().map(|p| &p.record.event),
            Some(Event::Started { .. })
        );
        if run_done && next_run && self.run + 1 < self.index.runs.len() {
            self.run += 1;
            self.clock = 0.0;
            changed |= self.feed_until(app, feed, Stop::Step(0));
        }
        self.sync_view(app);
        changed
    }

    fn dispatch(&mut self, app: &mut App, feed: &mut dyn FnMut(&mut App, Event)) -> bool {
        // Nothing is ever sent to a trainer: there is none.
        app.outbox.clear();
        let requests = match app.replay.as_mut() {
            Some(view) => std::mem::take(&mut view.requests),
            None => return false,
        };
        if requests.is_empty() {
            return false;
        }
        for request in requests {
            if let Err(e) = self.seek(app, feed, request) {
                app.error = Some(format!("replay: {e}"));
            }
        }
        self.sync_view(app);
        true
    }
}

/// Takes in a recording another process is still writing, like `tail -f`.
pub struct FollowSource {
    follower: Follower,
    started: bool,
    failed: bool,
    /// Records taken in so far: a `started` line first of all is the header's run, not a new one.
    seen: u64,
}

impl FollowSource {
    /// Starts following `path` (which must exist; its header may not be written yet).
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        Ok(Self {
            follower: Follower::open(path)?,
            started: false,
            failed: false,
            seen: 0,
        })
    }

    /// The view to put in `App::replay` for this source.
    pub fn view(path: &Path) -> ReplayView {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        ReplayView::new(name, true)
    }

    /// Feeds the header's preset once the header line has been read.
    fn start_if_ready(&mut self, app: &mut App, feed: &mut dyn FnMut(&mut App, Event)) {
        if !self.started
            && let Some(header) = self.follower.header()
        {
            self.started = true;
            feed(
                app,
                Event::Started {
                    preset: Box::new(header.preset.clone()),
                },
            );
        }
    }
}

impl EventSource for FollowSource {
    fn pump(&mut self, app: &mut App, feed: &mut dyn FnMut(&mut App, Event)) -> bool {
        let frozen = app.replay.as_ref().is_some_and(|v| !v.playing);
        if self.failed || frozen {
            return false;
        }
        let deadline = Instant::now() + FOLLOW_BUDGET;
        let mut changed = false;
        for _ in 0..FOLLOW_BATCH {
            let polled = self.follower.poll();
            self.start_if_ready(app, feed);
            let record = match polled {
                None => break,
                Some(Ok(record)) => record,
                Some(Err(e)) => {
                    changed = true;
                    if e.is_fatal() {
                        app.error = Some(format!("follow: {e}"));
                        self.failed = true;
                        break;
                    }
                    if let Some(view) = app.replay.as_mut() {
                        view.note = Some(format!("skipped {e}"));
                    }
                    continue;
                }
            };
            if let Some(step) = record.event.step()
                && let Some(view) = app.replay.as_mut()
            {
                view.last_step = view.last_step.max(step);
            }
            self.seen += 1;
            if matches!(record.event, Event::Started { .. })
                && self.seen > 1
                && let Some(view) = app.replay.as_mut()
            {
                view.last_step = 0;
                view.runs += 1;
                view.run += 1;
            }
            if let Event::Ended { step, reason } = &record.event
                && let Some(view) = app.replay.as_mut()
            {
                view.note = Some(format!("the run ended at step {step}: {reason}"));
            }
            feed(app, record.event);
            changed = true;
            if Instant::now() >= deadline {
                break;
            }
        }
        if self.follower.ended()
            && let Some(view) = app.replay.as_mut()
            && !view.at_end
        {
            view.at_end = true;
            changed = true;
        }
        changed
    }

    fn dispatch(&mut self, app: &mut App, _feed: &mut dyn FnMut(&mut App, Event)) -> bool {
        app.outbox.clear();
        if let Some(view) = app.replay.as_mut() {
            view.requests.clear();
        }
        false
    }
}

/// Feeds events straight into `update`: the feed tests and tools use without a terminal.
pub fn apply(app: &mut App, event: Event) {
    update(app, Msg::Trainer(event));
}
