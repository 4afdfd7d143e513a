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
pub mod output;
pub mod plot;
pub mod plot_style;
pub mod plot_sweep;
pub mod reader;
pub mod reproduce;
pub mod runs;
pub mod writer;

use crate::config::Experiment;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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
    /// The CPU feature level the kernels ran at (`x86-64-v4`, `x86-64-v3`, `baseline`):
    /// results are bit-identical for a seed, build and feature level, so `reproduce` names a
    /// different level as the reason two machines differ. Absent in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_features: Option<String>,
    /// The revision of the training step's arithmetic (`model::ENGINE_REVISION`): a
    /// recording from another revision (or from before the field existed) need not
    /// reproduce bit-identically, and `reproduce` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<u32>,
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
            cpu_features: Some(crate::model::kernels::cpu_feature_level().into()),
            engine: Some(crate::model::ENGINE_REVISION),
        }
    }
}

/// Why a recording could not be read, or which line of it is bad.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is empty (or its header line is not complete yet).
    #[error("the file is empty: no recording header")]
    Empty,
    /// The first line is not a gradlab recording header.
    #[error("not a gradlab recording: {0}")]
    NotARecording(String),
    /// The file was written by a newer format version.
    #[error(
        "recording format version {found} is newer than this gradlab {} reads (up to {VERSION}); upgrade gradlab",
        env!("CARGO_PKG_VERSION")
    )]
    NewerVersion {
        /// The file's version.
        found: u64,
    },
    /// A line after the header does not parse.
    #[error("line {line}: corrupt record: {message}")]
    Corrupt {
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A followed file became shorter than what was already read: it was replaced or truncated.
    #[error("the recording shrank: it was truncated or replaced")]
    Shrunk,
}

impl RecordingError {
    /// Whether reading can go on after this error (a corrupt line can be skipped).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, RecordingError::Corrupt { .. })
    }
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds: the header is for people and
/// `jq`, and a fixed width keeps it easy to cut).
pub fn rfc3339_utc(time: SystemTime) -> String {
    let at = OffsetDateTime::from(time);
    let whole = at.replace_nanosecond(0).unwrap_or(at);
    // Formatting a UTC time as RFC 3339 fails only for years outside 0..=9999.
    whole
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
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
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_matches_known_instants() {
        let at = |s: u64| rfc3339_utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        let with_fraction = UNIX_EPOCH + Duration::from_millis(1_700_000_000_750);
        assert_eq!(rfc3339_utc(with_fraction), "2023-11-14T22:13:20Z");
    }
}
