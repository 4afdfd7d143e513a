//! Reading recordings one line at a time, so memory stays bounded by the longest line.
//!
//! [`Recording`] reads a finished (or killed) file to its end; [`Follower`] watches a file that
//! another process is still appending to, like `tail -f`.

use super::legacy::{V1Lines, upgrade_experiment};
use super::{FORMAT, Header, RecordingError, VERSION};
use crate::protocol::{Event, Line};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

/// Longest line accepted: a 4096-layer snapshot is ~1 MiB, so this only stops garbage.
pub const MAX_LINE: usize = 64 << 20;

/// An incomplete last line: what `kill -9` mid-write leaves behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruncatedTail {
    /// 1-based line number of the incomplete line.
    pub line: u64,
    /// Bytes it holds.
    pub bytes: usize,
}

/// What reading one line produced.
enum Chunk {
    /// A complete line (without its newline) is in the buffer.
    Complete,
    /// The line was longer than [`MAX_LINE`]; it was skipped up to its newline.
    TooLong,
    /// End of the data for now; an incomplete line may be left in the buffer.
    End,
}

/// Splits a byte stream into lines, keeping an incomplete last line for later.
struct Lines<R> {
    source: R,
    /// The current line; after `End`, the incomplete tail.
    line: Vec<u8>,
    /// Skipping the rest of an over-long line.
    skipping: bool,
    /// Lines completed so far (the current line's number once it completes).
    number: u64,
    /// Bytes consumed from `source`.
    offset: u64,
}

impl<R: BufRead> Lines<R> {
    fn new(source: R) -> Self {
        Self {
            source,
            line: Vec::new(),
            skipping: false,
            number: 0,
            offset: 0,
        }
    }

    /// Reads up to the next newline; a partial line stays in `line` and continues next call.
    fn next(&mut self) -> Result<Chunk, RecordingError> {
        loop {
            let available = match self.source.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if available.is_empty() {
                return Ok(Chunk::End);
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let body = newline.map_or(available, |i| &available[..i]);
            if !self.skipping {
                if self.line.len() + body.len() > MAX_LINE {
                    self.skipping = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(body);
                }
            }
            self.source.consume(take);
            self.offset += take as u64;
            if newline.is_some() {
                self.number += 1;
                if std::mem::take(&mut self.skipping) {
                    return Ok(Chunk::TooLong);
                }
                return Ok(Chunk::Complete);
            }
        }
    }
}

/// Checks a header line: the format first, so a stranger file gets a clear message.
fn parse_header(line: &[u8]) -> Result<Header, RecordingError> {
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
        RecordingError::NotARecording(format!("the first line is not a JSON object ({e})"))
    })?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(RecordingError::NotARecording(format!(
                "its format is \"{other}\", expected \"{FORMAT}\""
            )));
        }
        None => {
            return Err(RecordingError::NotARecording(
                "the first line has no \"format\" field".into(),
            ));
        }
    }
    let mut value = value;
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(found) if found > VERSION => return Err(RecordingError::NewerVersion { found }),
        Some(1) => {
            if let Some(preset) = value.get_mut("preset") {
                upgrade_experiment(preset);
            }
        }
        Some(_) => {}
        None => {
            return Err(RecordingError::NotARecording(
                "the header has no numeric \"version\"".into(),
            ));
        }
    }
    serde_json::from_value(value)
        .map_err(|e| RecordingError::NotARecording(format!("bad header: {e}")))
}

/// Parses one line after the header; version-1 lines go through `legacy`.
fn parse_record(
    line: &[u8],
    number: u64,
    legacy: Option<&mut V1Lines>,
) -> Result<Line, RecordingError> {
    let corrupt = |e: serde_json::Error| RecordingError::Corrupt {
        line: number,
        message: e.to_string(),
    };
    match legacy {
        None => serde_json::from_slice(line).map_err(corrupt),
        Some(v1) => {
            let value = serde_json::from_slice(line).map_err(corrupt)?;
            v1.convert(value).map_err(corrupt)
        }
    }
}

/// The converter a recording of this header's version needs, if any.
fn legacy_for(header: &Header) -> Option<V1Lines> {
    (header.version < 2).then(V1Lines::default)
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// A recording read from start to end, one record at a time.
///
/// Iterate it for `Result<Line, RecordingError>`: a corrupt line yields an error naming its
/// line and reading goes on with the next. An incomplete last line is not an error: iteration
/// ends before it and [`Recording::truncated`] reports it.
pub struct Recording<R> {
    lines: Lines<R>,
    header: Header,
    legacy: Option<V1Lines>,
    truncated: Option<TruncatedTail>,
    done: bool,
}

impl Recording<BufReader<File>> {
    /// Opens a recording file and reads its header.
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        let file = File::open(path)?;
        Self::from_reader(BufReader::with_capacity(1 << 16, file))
    }
}

impl Recording<BufReader<File>> {
    /// Byte offset of the next line: remember it (with [`Recording::line_number`]) to come
    /// back later, e.g. an index of every thousandth snapshot for seeking in replay.
    pub fn offset(&self) -> u64 {
        self.lines.offset
    }

    /// Continues reading at `offset`, a value [`Recording::offset`] returned when
    /// [`Recording::line_number`] was `line`.
    pub fn seek(&mut self, offset: u64, line: u64) -> Result<(), RecordingError> {
        if self.legacy.is_some() {
            // Version-1 lines are numbered into runs by the `started` lines before them.
            let runs = v1_runs_before(self.lines.source.get_mut(), offset)?;
            self.legacy = Some(V1Lines::after_runs(runs));
        }
        self.lines.source.seek(SeekFrom::Start(offset))?;
        self.lines.offset = offset;
        self.lines.number = line;
        self.lines.line.clear();
        self.lines.skipping = false;
        self.truncated = None;
        self.done = false;
        Ok(())
    }
}

/// How many version-1 runs start before `offset`: lines that begin with the `started` tag
/// (version 1 wrote the tag first).
fn v1_runs_before(file: &mut File, offset: u64) -> Result<u32, RecordingError> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(std::io::Read::take(&mut *file, offset));
    let mut line = Vec::new();
    let mut runs = 0u32;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(runs);
        }
        if line.starts_with(b"{\"type\":\"started\"") {
            runs += 1;
        }
    }
}

impl<R: BufRead> Recording<R> {
    /// Reads the header from `source`; the rest is read as the caller iterates.
    pub fn from_reader(source: R) -> Result<Self, RecordingError> {
        let mut lines = Lines::new(source);
        let header = loop {
            match lines.next()? {
                Chunk::Complete if is_blank(&lines.line) => lines.line.clear(),
                Chunk::Complete => break parse_header(&lines.line)?,
                Chunk::TooLong => {
                    return Err(RecordingError::NotARecording(
                        "the first line is not a header (too long)".into(),
                    ));
                }
                Chunk::End if is_blank(&lines.line) => return Err(RecordingError::Empty),
                // A header without its newline: the writer died right after it, or the file
                // was cut; the header alone is still a valid (empty) recording.
                Chunk::End => {
                    lines.number += 1;
                    break parse_header(&lines.line)?;
                }
            }
        };
        lines.line.clear();
        Ok(Self {
            lines,
            legacy: legacy_for(&header),
            header,
            truncated: None,
            done: false,
        })
    }

    /// The header line.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The incomplete last line, once iteration has reached the end.
    pub fn truncated(&self) -> Option<&TruncatedTail> {
        self.truncated.as_ref()
    }

    /// Lines read so far, header included.
    pub fn line_number(&self) -> u64 {
        self.lines.number
    }
}

impl<R: BufRead> Iterator for Recording<R> {
    type Item = Result<Line, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let outcome = match self.lines.next() {
                Ok(outcome) => outcome,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            let number = self.lines.number;
            let record = match outcome {
                Chunk::Complete if is_blank(&self.lines.line) => continue,
                Chunk::Complete => parse_record(&self.lines.line, number, self.legacy.as_mut()),
                Chunk::TooLong => Err(RecordingError::Corrupt {
                    line: number,
                    message: format!("longer than {MAX_LINE} bytes"),
                }),
                Chunk::End => {
                    self.done = true;
                    if is_blank(&self.lines.line) {
                        return None;
                    }
                    // A complete object without its newline is kept; anything else is the
                    // torn write of a killed process.
                    match parse_record(&self.lines.line, number + 1, self.legacy.as_mut()) {
                        Ok(record) => Ok(record),
                        Err(_) => {
                            self.truncated = Some(TruncatedTail {
                                line: number + 1,
                                bytes: self.lines.line.len(),
                            });
                            return None;
                        }
                    }
                }
            };
            self.lines.line.clear();
            match record {
                Ok(Line {
                    event: Event::Unknown,
                    ..
                }) => continue,
                other => return Some(other),
            }
        }
        None
    }
}

/// Follows a recording another process is still writing, like `tail -f`.
///
/// [`Follower::poll`] returns the next complete record if one has been appended, else `None`
/// at once; an incomplete last line is kept and finished on a later poll. The writer is never
/// disturbed: the file is only opened for reading.
pub struct Follower {
    lines: Lines<BufReader<File>>,
    header: Option<Header>,
    legacy: Option<V1Lines>,
    ended: bool,
}

impl Follower {
    /// Opens `path` for following; the header may not have been written yet.
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        let file = File::open(path)?;
        Ok(Self {
            lines: Lines::new(BufReader::with_capacity(1 << 16, file)),
            header: None,
            legacy: None,
            ended: false,
        })
    }

    /// The header, once its line has been read.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Whether the last run's `ended` line has been read.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The next complete record appended so far, or `None` when there is nothing new yet.
    ///
    /// A fatal error (not a recording, newer version, file replaced) should end following; a
    /// corrupt line can be skipped by polling again.
    pub fn poll(&mut self) -> Option<Result<Line, RecordingError>> {
        loop {
            match self.lines.next() {
                Err(e) => return Some(Err(e)),
                Ok(Chunk::End) => {
                    return self.check_shrunk().err().map(Err);
                }
                Ok(Chunk::TooLong) => {
                    return Some(Err(RecordingError::Corrupt {
                        line: self.lines.number,
                        message: format!("longer than {MAX_LINE} bytes"),
                    }));
                }
                Ok(Chunk::Complete) => {
                    let line = std::mem::take(&mut self.lines.line);
                    if is_blank(&line) {
                        continue;
                    }
                    if self.header.is_none() {
                        match parse_header(&line) {
                            Ok(header) => {
                                self.legacy = legacy_for(&header);
                                self.header = Some(header);
                                continue;
                            }
                            Err(e) => return Some(Err(e)),
                        }
                    }
                    match parse_record(&line, self.lines.number, self.legacy.as_mut()) {
                        Ok(Line {
                            event: Event::Unknown,
                            ..
                        }) => continue,
                        Ok(record) => {
                            // A later run (a reset) may follow an end only in files that
                            // were appended to; its `started` line means live again.
                            if record.event.ends_run() {
                                self.ended = true;
                            } else if matches!(record.event, Event::Started { .. }) {
                                self.ended = false;
                            }
                            return Some(Ok(record));
                        }
                        Err(e) => return Some(Err(e)),
                    }
                }
            }
        }
    }

    /// Waits up to `timeout` for the next record, checking every `interval`.
    pub fn wait(
        &mut self,
        timeout: Duration,
        interval: Duration,
    ) -> Option<Result<Line, RecordingError>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(item) = self.poll() {
                return Some(item);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            std::thread::sleep(interval.min(deadline - now));
        }
    }

    fn check_shrunk(&self) -> Result<(), RecordingError> {
        let len = self.lines.source.get_ref().metadata()?.len();
        if len < self.lines.offset {
            return Err(RecordingError::Shrunk);
        }
        Ok(())
    }
}
