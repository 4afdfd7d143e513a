//! Recordings: a session's complete lab notebook as JSON Lines.
//!
//! ```text
//! {"format":"gradlab-recording","version":2,"gradlab_version":"0.1.0","preset":{…},"seed":7,…}
//! {"run":1,"type":"started","preset":{…}}
//! {"run":1,"type":"command","step":200,"command":{"set_skip":"Residual"}}
//! {"run":1,"type":"snapshot","preset":"plain-deep","step":200,"loss":0.69,…,"layers":[…]}
//! {"run":1,"type":"ended","step":1000,"reason":"reset"}
//! {"run":2,"type":"started","preset":{…}}
//! …
//! {"run":2,"type":"ended","step":350,"reason":"quit"}
//! ```
//!
//! The first line is a [`Header`]; every later line is a [`crate::protocol::Line`]: one
//! [`crate::protocol::Event`] (the very type the driver sends the dashboard) with the number of
//! the run it belongs to. A reset or a loaded preset starts the next run; every orderly end
//! writes an `ended` line, so a file without one was cut (SIGKILL, power loss). A snapshot
//! line is the `--json` object with `run` and `"type":"snapshot"` added, so
//! `jq 'select(.type=="snapshot") | .loss'` works. Non-finite numbers are written as `null`.
//!
//! [`writer`] appends lines with a bounded flush delay, [`reader`] streams them back one line
//! at a time (whole files or, with [`reader::Follower`], files still being written). Files of
//! version 1 (no runs) are converted line by line at the reader's edge, in [`legacy`].

pub mod cast;
pub mod export;
mod legacy;
pub mod plot;
pub mod reader;
pub mod reproduce;
pub mod writer;

use crate::config::Experiment;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

pub use reader::{Follower, Recording, TruncatedTail};
pub use writer::Recorder;

/// The `format` value of a recording's header line.
pub const FORMAT: &str = "gradlab-recording";

/// The newest format version this build writes and reads.
///
/// Adding a field or an event type does not change it (readers ignore what they do not
/// know); a change of meaning does. Version 1 had no runs: [`legacy`] converts its lines.
pub const VERSION: u64 = 2;

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
