//! One pass over a recording that learns enough to seek anywhere without reading it all: the
//! start of each run, a byte offset every [`INDEX_EVERY_BYTES`], every intervention.

use crate::protocol::{Command, Event};
use crate::recording::{Recording, RecordingError};
use std::path::Path;

/// Bytes between two index points.
pub const INDEX_EVERY_BYTES: u64 = 256 << 10;

/// One run inside a recording: the header's, then one per reset or preset load.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Its number in the file (the `run` field of its lines).
    pub number: u32,
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
    /// The first corrupt line's number, for the notice replay shows.
    pub first_corrupt: Option<u64>,
    /// Snapshots in the file.
    pub snapshots: u64,
}

impl RecordingIndex {
    /// Reads `path` once, keeping a seek point every [`INDEX_EVERY_BYTES`].
    pub fn build(path: &Path) -> Result<Self, RecordingError> {
        let mut reading = Recording::open(path)?;
        let mut index = RecordingIndex {
            runs: vec![Run {
                number: 1,
                offset: reading.offset(),
                line: reading.line_number(),
                has_started: false,
                last_step: 0,
            }],
            points: Vec::new(),
            markers: Vec::new(),
            corrupt: 0,
            first_corrupt: None,
            snapshots: 0,
        };
        let mut ordinal = 0;
        let mut file_run = None;
        loop {
            let (offset, line) = (reading.offset(), reading.line_number());
            let record = match reading.next() {
                None => break,
                Some(Ok(record)) => record,
                Some(Err(e)) if e.is_fatal() => return Err(e),
                Some(Err(e)) => {
                    index.corrupt += 1;
                    if let (None, RecordingError::Corrupt { line, .. }) = (index.first_corrupt, &e)
                    {
                        index.first_corrupt = Some(*line);
                    }
                    continue;
                }
            };
            // Lines name their run; a new number starts a new run (a reset or a loaded preset).
            let starts = matches!(record.event, Event::Started { .. });
            match file_run {
                None => {
                    file_run = Some(record.run);
                    index.runs[0].number = record.run;
                    index.runs[0].has_started = starts;
                }
                Some(current) if current != record.run => {
                    file_run = Some(record.run);
                    index.runs.push(Run {
                        number: record.run,
                        offset,
                        line,
                        has_started: starts,
                        last_step: 0,
                    });
                    ordinal = 0;
                }
                Some(_) => {}
            }
            let run = index.runs.len() - 1;
            if let Some(step) = record.event.step() {
                index.runs[run].last_step = index.runs[run].last_step.max(step);
            }
            match record.event {
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
    pub(super) fn point_at_step(&self, run: usize, step: u64) -> Option<&IndexPoint> {
        self.points.iter().rfind(|p| p.run == run && p.step <= step)
    }

    /// The last seek point of `run` at or before byte `offset`.
    pub(super) fn point_at_offset(&self, run: usize, offset: u64) -> Option<&IndexPoint> {
        self.points
            .iter()
            .rfind(|p| p.run == run && p.offset <= offset)
    }
}
