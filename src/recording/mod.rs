//! Recordings: a run's complete lab notebook as JSON Lines.
//!
//! ```text
//! {"format":"gradlab-recording","version":1,"gradlab_version":"0.1.0","preset":{…},"seed":7,…}
//! {"type":"command","step":200,"command":{"set_skip":{"Residual":{"scale":1.0}}},"label":"skip → residual"}
//! {"type":"snapshot","preset":"plain-deep","step":200,"loss":0.69,…,"layers":[…]}
//! {"type":"state","step":1000,"state":"finished"}
//! ```
//!
//! The first line is a [`Header`]; every later line is one [`Record`] tagged by `type`. A
//! snapshot line is the `--json` object with `"type":"snapshot"` added, so
//! `jq 'select(.type=="snapshot") | .loss'` works. Non-finite numbers are written as `null`.
//!
//! [`writer`] appends records with a bounded flush delay, [`reader`] streams them back one line
//! at a time (whole files or, with [`reader::Follower`], files still being written).

pub mod cast;
pub mod export;
pub mod plot;
pub mod reader;
pub mod reproduce;
pub mod writer;

use crate::config::Experiment;
use crate::metrics::Snapshot;
use crate::paths::PathStats;
use crate::report::LesionResult;
use crate::sources::LayerSources;
use crate::trainer::{Command, Event, RunState};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

pub use reader::{Follower, Recording, TruncatedTail};
pub use writer::Recorder;

/// The `format` value of a recording's header line.
pub const FORMAT: &str = "gradlab-recording";

/// The newest format version this build writes and reads.
pub const VERSION: u64 = 1;

/// The first line of a recording: what was run, where and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// Format version; readers reject versions newer than [`VERSION`].
    pub version: u64,
    /// `CARGO_PKG_VERSION` of the gradlab that wrote the file.
    pub gradlab_version: String,
    /// The experiment as loaded, `--set` overrides included.
    pub preset: Experiment,
    /// The seed (also inside `preset`; repeated for `jq` and pandas users).
    pub seed: u64,
    /// When recording started, RFC 3339 in UTC.
    pub started_at: String,
    /// The machine's host name.
    pub host: String,
    /// The step budget of a headless run (absent for dashboard sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
}

impl Header {
    /// A header for `experiment`, stamped with this build, the current time and host.
    pub fn new(experiment: &Experiment, steps: Option<u64>) -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            gradlab_version: env!("CARGO_PKG_VERSION").into(),
            preset: experiment.clone(),
            seed: experiment.seed,
            started_at: rfc3339_utc(SystemTime::now()),
            host: host_name(),
            steps,
        }
    }
}

/// One line after the header, as read back.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// A (new) experiment started: after `reset` or `load`, history starts again.
    Started {
        /// The experiment now running.
        preset: Box<Experiment>,
    },
    /// A command took effect at `step`.
    Command {
        /// The first step the command influences.
        step: u64,
        /// The command.
        command: Command,
        /// Its short label, for markers.
        label: String,
    },
    /// A metrics snapshot: the `--json` object.
    Snapshot(Box<SnapshotRecord>),
    /// The run state changed.
    State {
        /// Updates applied when it changed.
        step: u64,
        /// The new state.
        state: RunState,
    },
    /// The trainer reported an error it survived.
    Error {
        /// The error in words.
        message: String,
    },
    /// The recording process was stopped by a signal; the last line of such a file.
    Interrupted {
        /// Updates applied when the run stopped.
        step: u64,
        /// The signal's name, e.g. `SIGTERM`.
        signal: String,
    },
    /// A live path-length decomposition (every `path_every` steps).
    Paths {
        /// Updates applied before the measurement.
        step: u64,
        /// The decomposition.
        stats: Box<PathStats>,
    },
    /// Single-block lesions evaluated on request.
    Lesion {
        /// Updates applied when the lesions were evaluated.
        step: u64,
        /// Test loss of the intact network at that step.
        intact_test_loss: f64,
        /// One result per block, input side first.
        results: Vec<LesionResult>,
    },
    /// Where each layer's gradient came from (dense read-outs, auxiliary heads), live.
    Sources {
        /// Updates applied before the measurement.
        step: u64,
        /// One entry per hidden layer, input side first.
        layers: Vec<LayerSources>,
    },
    /// A record type from a newer writer of the same version: skipped by readers.
    #[serde(other)]
    Unknown,
}

/// A snapshot line: the snapshot plus any fields this build does not know (kept for replay).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SnapshotRecord {
    /// The snapshot.
    #[serde(flatten)]
    pub snapshot: Snapshot,
    /// Fields beyond `Snapshot`'s, e.g. path-length statistics added by later builds.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Record {
    /// Whether this record ends a run (nothing follows it in a headless recording).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Record::Interrupted { .. }
                | Record::State {
                    state: RunState::Finished,
                    ..
                }
        )
    }
}

/// One line to write, borrowing from the event so recording never clones a snapshot.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RecordOut<'a> {
    Started {
        preset: &'a Experiment,
    },
    Command {
        step: u64,
        command: &'a Command,
        label: String,
    },
    Snapshot(&'a Snapshot),
    State {
        step: u64,
        state: &'a RunState,
    },
    Error {
        message: &'a str,
    },
    Interrupted {
        step: u64,
        signal: &'a str,
    },
    Paths {
        step: u64,
        stats: &'a PathStats,
    },
    Lesion {
        step: u64,
        intact_test_loss: f64,
        results: &'a [LesionResult],
    },
    Sources {
        step: u64,
        layers: &'a [LayerSources],
    },
}

impl<'a> RecordOut<'a> {
    /// The line for `event`: every event the dashboard can show, so a recording is complete.
    fn from_event(event: &'a Event) -> Option<Self> {
        Some(match event {
            Event::Paths { step, stats } => RecordOut::Paths { step: *step, stats },
            Event::Sources { step, layers } => RecordOut::Sources {
                step: *step,
                layers,
            },
            Event::Lesion {
                step,
                intact_test_loss,
                results,
            } => RecordOut::Lesion {
                step: *step,
                intact_test_loss: *intact_test_loss,
                results,
            },
            Event::Started(preset) => RecordOut::Started { preset },
            Event::Snapshot(snapshot) => RecordOut::Snapshot(snapshot),
            Event::State { step, state } => RecordOut::State { step: *step, state },
            Event::Applied { step, command } => RecordOut::Command {
                step: *step,
                command,
                label: command.label(),
            },
            Event::Error(message) => RecordOut::Error { message },
        })
    }
}

/// Why a recording could not be read, or which line of it is bad.
#[derive(Debug)]
pub enum RecordingError {
    /// The file could not be opened or read.
    Io(std::io::Error),
    /// The file is empty (or its header line is not complete yet).
    Empty,
    /// The first line is not a gradlab recording header.
    NotARecording(String),
    /// The file was written by a newer format version.
    NewerVersion {
        /// The file's version.
        found: u64,
    },
    /// A line after the header does not parse.
    Corrupt {
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A followed file became shorter than what was already read: it was replaced or truncated.
    Shrunk,
}

impl RecordingError {
    /// Whether reading can go on after this error (a corrupt line can be skipped).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, RecordingError::Corrupt { .. })
    }
}

impl fmt::Display for RecordingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordingError::Io(e) => write!(f, "{e}"),
            RecordingError::Empty => write!(f, "the file is empty: no recording header"),
            RecordingError::NotARecording(why) => write!(f, "not a gradlab recording: {why}"),
            RecordingError::NewerVersion { found } => write!(
                f,
                "recording format version {found} is newer than this gradlab {} reads (up to {VERSION}); upgrade gradlab",
                env!("CARGO_PKG_VERSION")
            ),
            RecordingError::Corrupt { line, message } => {
                write!(f, "line {line}: corrupt record: {message}")
            }
            RecordingError::Shrunk => {
                write!(f, "the recording shrank: it was truncated or replaced")
            }
        }
    }
}

impl std::error::Error for RecordingError {}

impl From<std::io::Error> for RecordingError {
    fn from(e: std::io::Error) -> Self {
        RecordingError::Io(e)
    }
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil: exact for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// The host name, from the kernel where it says so, else the environment.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .chain(
            ["HOSTNAME", "COMPUTERNAME"]
                .iter()
                .filter_map(|v| std::env::var(v).ok()),
        )
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_matches_known_instants() {
        let at = |s: u64| rfc3339_utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
