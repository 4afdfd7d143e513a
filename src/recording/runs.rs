//! A recording as the runs it holds, read with one policy for bad lines.
//!
//! Every tool that reads a whole recording (export, plot, reproduce, the sweep's tail loss)
//! goes through [`Checked`]: a corrupt line is reported once as `FILE:LINE: corrupt record: …`
//! and skipped, a torn last line is reported once, and [`Damage::summary`] says at the end how
//! many lines were skipped. Tools that read a file several times report on the first pass only
//! ([`index`]) and read quietly after that, so each bad line is named once.

use super::{Header, Recording, RecordingError, TruncatedTail};
use crate::config::Experiment;
use crate::protocol::{Command, Event, Line, RunState};
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Lines of one file that could not be used.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Damage {
    /// The file, as the user named it.
    pub file: PathBuf,
    /// Complete lines that did not parse.
    pub corrupt: u64,
    /// The incomplete last line a killed writer left, if any.
    pub truncated: Option<TruncatedTail>,
}

impl Damage {
    /// Lines skipped in all.
    pub fn skipped(&self) -> u64 {
        self.corrupt + u64::from(self.truncated.is_some())
    }

    /// The closing sentence for stderr, when anything was skipped.
    pub fn summary(&self) -> Option<String> {
        let skipped = self.skipped();
        (skipped > 0).then(|| {
            format!(
                "{}: {skipped} line{} skipped (corrupt or incomplete)",
                self.file.display(),
                if skipped == 1 { "" } else { "s" }
            )
        })
    }
}

/// Iterates a recording's lines, skipping (and, when reporting, naming) corrupt ones.
///
/// Yields `Err` only for what ends reading (an I/O error); after it, iteration stops.
pub struct Checked<R> {
    recording: Recording<R>,
    report: bool,
    damage: Damage,
    done: bool,
}

impl Checked<BufReader<File>> {
    /// Opens `path`; `report` names each bad line on stderr as it is met.
    pub fn open(path: &Path, report: bool) -> Result<Self> {
        let recording =
            Recording::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Self::new(recording, path, report))
    }

    /// Opens `path` quietly and continues at the first line of `run` (from [`index`]).
    pub fn open_at(path: &Path, run: &RunInfo) -> Result<Self> {
        let mut checked = Self::open(path, false)?;
        let (offset, line) = run.start;
        checked
            .recording
            .seek(offset, line)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(checked)
    }

    /// Where the next line starts: a byte offset and the number of lines before it.
    fn position(&self) -> (u64, u64) {
        (self.recording.offset(), self.recording.line_number())
    }
}

impl<R: BufRead> Checked<R> {
    /// Wraps a recording read from `file`.
    pub fn new(recording: Recording<R>, file: &Path, report: bool) -> Self {
        Self {
            recording,
            report,
            damage: Damage {
                file: file.to_path_buf(),
                ..Damage::default()
            },
            done: false,
        }
    }

    /// The header line.
    pub fn header(&self) -> &Header {
        self.recording.header()
    }

    /// What was skipped so far (the torn tail once the end was reached).
    pub fn damage(&self) -> &Damage {
        &self.damage
    }
}

impl<R: BufRead> Iterator for Checked<R> {
    type Item = Result<Line>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.recording.next() {
                Some(Ok(line)) => return Some(Ok(line)),
                Some(Err(RecordingError::Corrupt { line, message })) => {
                    self.damage.corrupt += 1;
                    if self.report {
                        crate::out::tell!(
                            "{}:{line}: corrupt record: {message}",
                            self.damage.file.display()
                        );
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    let file = self.damage.file.display().to_string();
                    return Some(Err(
                        anyhow::Error::new(e).context(format!("cannot read {file}"))
                    ));
                }
                None => {
                    self.done = true;
                    if let Some(tail) = self.recording.truncated() {
                        if self.report {
                            crate::out::tell!(
                                "{}:{}: incomplete record ({} bytes, the writer was cut off)",
                                self.damage.file.display(),
                                tail.line,
                                tail.bytes
                            );
                        }
                        self.damage.truncated = Some(tail.clone());
                    }
                }
            }
        }
        None
    }
}

/// One run of a recording, as the first pass over the file found it.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// Its number in the file (1 for the first).
    pub run: u32,
    /// The experiment it started from: its `started` line's, else the header's.
    pub experiment: Experiment,
    /// Byte offset and line count where its first line starts, for [`Checked::open_at`].
    pub start: (u64, u64),
    /// Snapshots recorded.
    pub snapshots: u64,
    /// Step of its first and last snapshot.
    pub first_step: u64,
    /// See `first_step`.
    pub last_step: u64,
    /// Most hidden layers in one snapshot.
    pub layers: usize,
    /// Most auxiliary losses in one snapshot.
    pub aux: usize,
    /// Most time steps in one snapshot (recurrent nets; 0 otherwise).
    pub timesteps: usize,
    /// Every command applied, in order, with the step it took effect at.
    pub commands: Vec<(u64, Command)>,
    /// The step a headless budget ran out at, when the run finished.
    pub finished: Option<u64>,
    /// Why the run ended, when an `ended` line says so.
    pub ended: Option<String>,
}

impl RunInfo {
    fn new(run: u32, experiment: Experiment, start: (u64, u64)) -> Self {
        Self {
            run,
            experiment,
            start,
            snapshots: 0,
            first_step: u64::MAX,
            last_step: 0,
            layers: 0,
            aux: 0,
            timesteps: 0,
            commands: Vec::new(),
            finished: None,
            ended: None,
        }
    }

    /// Whether its snapshots measure a recurrent net (time steps instead of layers).
    pub fn recurrent(&self) -> bool {
        self.timesteps > 0
    }

    /// The commands that shaped the run: a reset or a loaded preset ends it (the next run
    /// starts from them), so neither belongs to its schedule.
    pub fn schedule(&self) -> Vec<(u64, Command)> {
        self.commands
            .iter()
            .filter(|(_, c)| !matches!(c, Command::Reset | Command::LoadPreset(_)))
            .cloned()
            .collect()
    }
}

/// The runs of a recording and what its first reading skipped.
#[derive(Clone, Debug)]
pub struct RunIndex {
    /// The header line.
    pub header: Header,
    /// The runs in file order.
    pub runs: Vec<RunInfo>,
    /// Lines skipped while indexing (each was named on stderr).
    pub damage: Damage,
}

impl RunIndex {
    /// The runs a command works on: `Some(n)` picks run n, `None` every run.
    pub fn select(&self, run: Option<u32>) -> Result<Vec<&RunInfo>> {
        let Some(wanted) = run else {
            return Ok(self.runs.iter().collect());
        };
        match self.runs.iter().find(|r| r.run == wanted) {
            Some(info) => Ok(vec![info]),
            None => bail!(
                "{} has no run {wanted}; it holds {}",
                self.damage.file.display(),
                self.describe_runs()
            ),
        }
    }

    /// "runs 1–3", "run 1", "no runs": what `--run` may name.
    pub fn describe_runs(&self) -> String {
        let numbers: Vec<u32> = self.runs.iter().map(|r| r.run).collect();
        match numbers.as_slice() {
            [] => "no runs".into(),
            [one] => format!("run {one} only"),
            all if all.windows(2).all(|w| w[1] == w[0] + 1) => {
                format!("runs {}–{}", all[0], all[all.len() - 1])
            }
            all => {
                let list: Vec<String> = all.iter().map(u32::to_string).collect();
                format!("runs {}", list.join(", "))
            }
        }
    }
}

/// Reads `path` once, naming each bad line on stderr, and returns its runs.
pub fn index(path: &Path) -> Result<RunIndex> {
    let mut reading = Checked::open(path, true)?;
    let header = reading.header().clone();
    let mut runs: Vec<RunInfo> = Vec::new();
    loop {
        let start = reading.position();
        let Some(line) = reading.next() else {
            break;
        };
        let Line { run, event } = line?;
        if runs.last().is_none_or(|r| r.run != run) {
            // A run's first line is normally its `started` line; a headless run 1 has none
            // and runs the header's experiment.
            let experiment = match &event {
                Event::Started { preset } => (**preset).clone(),
                _ => header.preset.clone(),
            };
            runs.push(RunInfo::new(run, experiment, start));
        }
        let Some(info) = runs.last_mut() else {
            continue;
        };
        match event {
            Event::Started { preset } => info.experiment = *preset,
            Event::Snapshot(s) => {
                info.snapshots += 1;
                info.first_step = info.first_step.min(s.step);
                info.last_step = info.last_step.max(s.step);
                info.layers = info.layers.max(s.layers.len());
                info.aux = info.aux.max(s.aux_losses.len());
                info.timesteps = info.timesteps.max(s.timesteps.len());
            }
            Event::Applied { step, command } => info.commands.push((step, command)),
            Event::State {
                step,
                state: RunState::Finished,
            } => info.finished = Some(step),
            Event::Ended { reason, .. } => info.ended = Some(reason),
            _ => {}
        }
    }
    Ok(RunIndex {
        header,
        runs,
        damage: reading.damage().clone(),
    })
}

/// The lines of one run, read quietly from its first line to the next run's.
pub fn run_lines(path: &Path, run: &RunInfo) -> Result<impl Iterator<Item = Result<Line>>> {
    let number = run.run;
    Ok(Checked::open_at(path, run)?
        .filter(move |line| line.as_ref().map_or(true, |l| l.run >= number))
        .take_while(move |line| line.as_ref().map_or(true, |l| l.run == number)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(numbers: &[u32]) -> RunIndex {
        let experiment = crate::config::load_preset("plain-deep").expect("preset");
        RunIndex {
            header: Header::new(&experiment, None),
            runs: numbers
                .iter()
                .map(|&n| RunInfo::new(n, experiment.clone(), (0, 0)))
                .collect(),
            damage: Damage {
                file: "v.jsonl".into(),
                ..Damage::default()
            },
        }
    }

    #[test]
    fn the_runs_a_file_holds_are_named_for_the_error() {
        assert_eq!(index_of(&[]).describe_runs(), "no runs");
        assert_eq!(index_of(&[1]).describe_runs(), "run 1 only");
        assert_eq!(index_of(&[1, 2, 3]).describe_runs(), "runs 1–3");
        assert_eq!(index_of(&[1, 3]).describe_runs(), "runs 1, 3");
        let error = index_of(&[1, 2]).select(Some(5)).expect_err("no run 5");
        assert_eq!(error.to_string(), "v.jsonl has no run 5; it holds runs 1–2");
        assert_eq!(index_of(&[1, 2]).select(None).expect("all").len(), 2);
    }

    #[test]
    fn the_summary_counts_corrupt_lines_and_a_torn_tail() {
        let mut damage = Damage {
            file: "v.jsonl".into(),
            ..Damage::default()
        };
        assert_eq!(damage.summary(), None);
        damage.corrupt = 1;
        assert_eq!(
            damage.summary().as_deref(),
            Some("v.jsonl: 1 line skipped (corrupt or incomplete)")
        );
        damage.truncated = Some(TruncatedTail { line: 9, bytes: 3 });
        assert_eq!(damage.skipped(), 2);
        assert!(
            damage
                .summary()
                .is_some_and(|s| s.contains("2 lines skipped"))
        );
    }
}
