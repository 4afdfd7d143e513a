//! Writing recordings with a bounded delay between a snapshot and its bytes on disk.
//!
//! Records go through a `BufWriter`; a background thread flushes it every [`FLUSH_EVERY`]
//! when something was written, and state changes flush at once. So a snapshot the dashboard
//! shows is in the file (in the OS page cache, which survives `kill -9`) within ~250 ms even
//! when the trainer stalls, and the writer never makes one syscall per snapshot.

use super::{FORMAT, Header, Recording, VERSION};
use crate::config::Experiment;
use crate::protocol::Event;
use crate::trainer::MetricsSink;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest time written records wait in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// The buffered file and whether it holds unflushed records.
struct Output {
    file: BufWriter<Box<dyn Write + Send>>,
    dirty: bool,
    /// The first write error; later writes are skipped so the file does not get holes.
    failed: Option<io::ErrorKind>,
}

impl Output {
    fn flush(&mut self) -> io::Result<()> {
        if self.dirty && self.failed.is_none() {
            self.dirty = false;
            if let Err(e) = self.file.flush() {
                self.failed = Some(e.kind());
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Appends a run's header, commands, snapshots and states to a recording.
///
/// Use it as a [`MetricsSink`] (headless runs) or call [`Recorder::record`] with each event the
/// dashboard receives. Dropping it flushes; [`Recorder::close`] also reports errors.
pub struct Recorder {
    output: Arc<Mutex<Output>>,
    stop: Arc<AtomicBool>,
    flusher: Option<JoinHandle<()>>,
    /// Updates applied as of the newest event, for the closing line.
    step: u64,
    /// The run being written: 0 before the first `started`, then 1, 2, … (a reset or a
    /// loaded preset starts the next).
    run: u32,
    /// The newest line already said the run ended (a finished headless run).
    ended: bool,
    /// Appending to an earlier session's file: the experiment to announce with a `started`
    /// line unless the session's first event is one (headless runs write none of their own,
    /// and without it the appended run could not be told from the one before).
    announce: Option<Box<Experiment>>,
    line: Vec<u8>,
}

/// A recording file this process holds the writers' lock on, its contents not yet touched.
///
/// Every gradlab process that writes a recording takes this advisory lock (`flock`) before it
/// changes a byte and keeps it until the file closes, so two processes never write one file:
/// a second sweep, or a sweep collecting while a scheduler's `gradlab run --record` still
/// writes a job, is told the file is busy instead of emptying it. Where the file system has no
/// locks (some network mounts) recording goes on without one.
#[derive(Debug)]
pub struct WriterLock {
    file: File,
}

impl WriterLock {
    /// Opens `path` for writing, creating it if it does not exist, and takes the lock.
    pub fn take(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Self::on(file, path)
    }

    /// Creates `path`, failing with `AlreadyExists` if it exists, and takes the lock.
    pub fn take_new(path: &Path) -> io::Result<Self> {
        // create_new checks and creates in one step, so a file that appears meanwhile is safe.
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        Self::on(file, path)
    }

    /// A second handle on the same lock: the lock lasts until both are closed (a sweep keeps
    /// it past its recorder's close, until the job's result is written).
    pub fn duplicate(&self) -> io::Result<Self> {
        Ok(Self {
            file: self.file.try_clone()?,
        })
    }

    fn on(file: File, path: &Path) -> io::Result<Self> {
        match file.try_lock() {
            Ok(()) => Ok(Self { file }),
            Err(TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "{} is being written by another gradlab process; wait until it has finished",
                    path.display()
                ),
            )),
            // No locks on this file system: nothing to guard with, so record unguarded.
            Err(TryLockError::Error(_)) => Ok(Self { file }),
        }
    }
}

impl Recorder {
    /// Creates (or empties) `path` once this process holds its writers' lock, and writes the
    /// header line.
    pub fn create(path: &Path, header: &Header) -> io::Result<Self> {
        Self::create_locked(WriterLock::take(path)?, header)
    }

    /// Empties the locked file and writes the header line; the lock lasts as long as the
    /// recorder.
    pub fn create_locked(lock: WriterLock, header: &Header) -> io::Result<Self> {
        lock.file.set_len(0)?;
        Self::new(Box::new(lock.file), header)
    }

    /// Records into any writer (tests, pipes); writes the header line at once.
    pub fn new(writer: Box<dyn Write + Send>, header: &Header) -> io::Result<Self> {
        let mut file = BufWriter::with_capacity(1 << 16, writer);
        serde_json::to_writer(&mut file, header)?;
        file.write_all(b"\n")?;
        file.flush()?;
        Self::start(file)
    }

    /// Opens the existing recording at `path` to append this session as its next run(s).
    ///
    /// The file must be a recording of this format version (its header is checked; `header`
    /// is this session's, and its experiment is announced with a `started` line unless the
    /// session starts with one). Runs continue the file's numbering. A torn last line left by
    /// a killed writer is closed with a newline first, so it stays one corrupt line instead
    /// of swallowing the first appended one.
    pub fn append(path: &Path, header: &Header) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot append to {}", path.display()))?;
        // Read the last run only under the lock: another writer may be adding one.
        let WriterLock { mut file } = WriterLock::on(file, path)?;
        let last_run = last_run(path)?;
        let needs_newline = ends_without_newline(&mut file)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 16, Box::new(file) as Box<dyn Write + Send>);
        if needs_newline {
            out.write_all(b"\n")
                .and_then(|()| out.flush())
                .with_context(|| format!("cannot append to {}", path.display()))?;
        }
        let mut recorder =
            Self::start(out).with_context(|| format!("cannot append to {}", path.display()))?;
        recorder.run = last_run;
        recorder.announce = Some(Box::new(header.preset.clone()));
        Ok(recorder)
    }

    /// Starts the flusher over a writer whose header is in place.
    fn start(file: BufWriter<Box<dyn Write + Send>>) -> io::Result<Self> {
        let output = Arc::new(Mutex::new(Output {
            file,
            dirty: false,
            failed: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let flusher = {
            let output = Arc::clone(&output);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("gradlab-recorder".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(FLUSH_EVERY);
                        // Errors are kept in `failed` and reported by `record`/`close`.
                        let _ = lock(&output).flush();
                    }
                })?
        };
        Ok(Self {
            output,
            stop,
            flusher: Some(flusher),
            step: 0,
            run: 0,
            ended: false,
            announce: None,
            line: Vec::with_capacity(1 << 14),
        })
    }

    /// Appends one event as a line of the current run; state changes and errors are flushed
    /// before returning. Throughput reports are left out: they describe the machine, not the
    /// run, and would make two recordings of one seed differ.
    pub fn record(&mut self, event: &Event) -> io::Result<()> {
        if let Some(preset) = self.announce.take()
            && !matches!(
                event,
                Event::Started { .. } | Event::Throughput { .. } | Event::Unknown
            )
        {
            self.record(&Event::Started { preset })?;
        }
        match event {
            Event::Throughput { .. } | Event::Unknown => return Ok(()),
            Event::Started { .. } => self.run += 1,
            _ => {}
        }
        if let Some(step) = event.step() {
            self.step = step;
        }
        self.ended = event.ends_run();
        let urgent = matches!(
            event,
            Event::State { .. } | Event::Error { .. } | Event::Ended { .. }
        );
        self.write(event, urgent)
    }

    /// Writes the line that says the run ended (`reason`: `quit`, a signal's name, …) and
    /// flushes; nothing when the newest line already ended it.
    pub fn end(&mut self, reason: &str) -> io::Result<()> {
        if self.ended {
            return Ok(());
        }
        let event = Event::Ended {
            step: self.step,
            reason: reason.into(),
        };
        self.write(&event, true)?;
        self.ended = true;
        Ok(())
    }

    fn write(&mut self, event: &Event, flush: bool) -> io::Result<()> {
        // Serialising outside the lock keeps the flusher from waiting on JSON formatting.
        self.line.clear();
        // Lines before any `started` (a headless run) belong to run 1, so a later `started`
        // begins run 2.
        self.run = self.run.max(1);
        let line = LineOut {
            run: self.run,
            event,
        };
        serde_json::to_writer(&mut self.line, &line)?;
        self.line.push(b'\n');
        let mut output = lock(&self.output);
        if let Some(kind) = output.failed {
            return Err(io::Error::new(
                kind,
                "an earlier write to the recording failed",
            ));
        }
        if let Err(e) = output.file.write_all(&self.line) {
            output.failed = Some(e.kind());
            return Err(e);
        }
        output.dirty = true;
        if flush {
            output.flush()?;
        }
        Ok(())
    }

    /// Flushes, stops the flusher and reports the first write error, if any.
    pub fn close(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(flusher) = self.flusher.take() {
            flusher.thread().unpark();
            let _ = flusher.join();
        }
        let mut output = lock(&self.output);
        output.flush()?;
        match output.failed {
            Some(kind) => Err(io::Error::new(kind, "writing the recording failed")),
            None => Ok(()),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl MetricsSink for Recorder {
    /// A recording that cannot be written ends the run: the user asked for a complete record.
    fn send(&mut self, event: Event) -> bool {
        self.record(&event).is_ok()
    }
}

/// The highest run number in the recording at `path`, after checking that this build may
/// append to it (same format, same version).
fn last_run(path: &Path) -> Result<u32> {
    let recording =
        Recording::open(path).with_context(|| format!("cannot append to {}", path.display()))?;
    let header = recording.header();
    if header.format != FORMAT || header.version != VERSION {
        bail!(
            "cannot append to {}: it is a recording of format version {}, this gradlab writes version {VERSION}; record to a new file",
            path.display(),
            header.version
        );
    }
    // Corrupt lines are skipped: the runs around them still count.
    Ok(recording
        .filter_map(|line| line.ok())
        .map(|line| line.run)
        .max()
        .unwrap_or(0))
}

/// Whether the file's last byte is something other than a newline (a torn last line).
fn ends_without_newline(file: &mut File) -> io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// Opens the recording `--record FILE` asks for, never destroying a file by surprise.
///
/// A new file is created with `header`. An existing one is refused unless `force` (it is
/// replaced) or `append` (this session becomes its next run(s), if it is a recording of the
/// same format version; see [`Recorder::append`]). Both at once is refused as ambiguous.
pub fn open_for_record(
    path: &Path,
    force: bool,
    append: bool,
    header: &Header,
) -> Result<Recorder> {
    if force && append {
        bail!(
            "--force and --append contradict each other: choose one for {}",
            path.display()
        );
    }
    if append && path.exists() {
        return Recorder::append(path, header);
    }
    let lock = if force || append {
        WriterLock::take(path)
    } else {
        WriterLock::take_new(path)
    };
    let lock = match lock {
        Ok(lock) => lock,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => bail!(
            "{} exists; pass --force to replace it or --append to add this session as a new run",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::ResourceBusy => bail!("{e}"),
        Err(e) => return Err(e).with_context(|| format!("cannot record to {}", path.display())),
    };
    Recorder::create_locked(lock, header)
        .with_context(|| format!("cannot record to {}", path.display()))
}

/// A [`crate::protocol::Line`] borrowing its event, so recording never clones a snapshot.
#[derive(Serialize)]
struct LineOut<'a> {
    run: u32,
    #[serde(flatten)]
    event: &'a Event,
}

/// The flusher never panics while holding the lock, but a poisoned lock still holds the data.
fn lock(output: &Mutex<Output>) -> MutexGuard<'_, Output> {
    output.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends each event to two sinks; the run goes on while both accept.
pub struct Tee<'a>(pub &'a mut dyn MetricsSink, pub &'a mut dyn MetricsSink);

impl MetricsSink for Tee<'_> {
    fn send(&mut self, event: Event) -> bool {
        let first = self.0.send(event.clone());
        self.1.send(event) && first
    }
}
