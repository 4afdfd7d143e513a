//! Writing recordings with a bounded delay between a snapshot and its bytes on disk.
//!
//! Records go through a `BufWriter`; a background thread flushes it every [`FLUSH_EVERY`]
//! when something was written, and state changes flush at once. So a snapshot the dashboard
//! shows is in the file (in the OS page cache, which survives `kill -9`) within ~250 ms even
//! when the trainer stalls, and the writer never makes one syscall per snapshot.

use super::Header;
use crate::protocol::Event;
use crate::trainer::MetricsSink;
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufWriter, Write};
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
    line: Vec<u8>,
}

impl Recorder {
    /// Creates (or truncates) `path` and writes the header line.
    pub fn create(path: &Path, header: &Header) -> io::Result<Self> {
        let file = File::create(path)?;
        Self::new(Box::new(file), header)
    }

    /// Records into any writer (tests, pipes); writes the header line at once.
    pub fn new(writer: Box<dyn Write + Send>, header: &Header) -> io::Result<Self> {
        let mut file = BufWriter::with_capacity(1 << 16, writer);
        serde_json::to_writer(&mut file, header)?;
        file.write_all(b"\n")?;
        file.flush()?;
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
            line: Vec::with_capacity(1 << 14),
        })
    }

    /// Appends one event as a line of the current run; state changes and errors are flushed
    /// before returning. Throughput reports are left out: they describe the machine, not the
    /// run, and would make two recordings of one seed differ.
    pub fn record(&mut self, event: &Event) -> io::Result<()> {
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
        let line = LineOut {
            run: self.run.max(1),
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
