//! An asciicast v2 writer, so a dashboard session can be played back with `asciinema play`.
//!
//! The file is a header line `{"version":2,"width":W,"height":H,"timestamp":T}` followed by
//! one JSON array per event: `[t, "o", text]` for terminal output, `[t, "r", "WxH"]` for a
//! resize and `[t, "m", label]` for a marker, `t` in seconds since the header.

use serde::Serialize;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The asciicast v2 header line.
#[derive(Serialize)]
struct CastHeader {
    version: u8,
    width: u16,
    height: u16,
    timestamp: u64,
}

/// Longest time output waits in the buffer before being flushed.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Writes terminal output, resizes and markers to an asciicast v2 file.
pub struct CastWriter<W: Write = BufWriter<File>> {
    out: W,
    start: Instant,
    last_flush: Instant,
    /// The start of a UTF-8 character split across two `output` calls.
    carry: Vec<u8>,
}

impl CastWriter {
    /// Creates `path` with a header for a `width`×`height` terminal.
    pub fn new(path: &Path, width: u16, height: u16) -> io::Result<Self> {
        Self::from_writer(BufWriter::new(File::create(path)?), width, height)
    }
}

impl<W: Write> CastWriter<W> {
    /// Writes the header to any writer (tests, pipes).
    pub fn from_writer(mut out: W, width: u16, height: u16) -> io::Result<Self> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let header = CastHeader {
            version: 2,
            width,
            height,
            timestamp,
        };
        serde_json::to_writer(&mut out, &header)?;
        out.write_all(b"\n")?;
        out.flush()?;
        let now = Instant::now();
        Ok(Self {
            out,
            start: now,
            last_flush: now,
            carry: Vec::new(),
        })
    }

    /// Records bytes written to the terminal.
    pub fn output(&mut self, bytes: &[u8]) -> io::Result<()> {
        // asciicast holds text; a character cut between two writes is completed by the next.
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&data) {
            Ok(_) => data.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => data.len(),
        };
        self.carry = data.split_off(valid);
        if data.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&data);
        self.event("o", &text)?;
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    /// Records a terminal resize.
    pub fn resize(&mut self, width: u16, height: u16) -> io::Result<()> {
        self.event("r", &format!("{width}x{height}"))?;
        self.flush()
    }

    /// Records a marker (asciinema shows them as chapter points), e.g. `skip → residual`.
    pub fn marker(&mut self, label: &str) -> io::Result<()> {
        self.event("m", label)?;
        self.flush()
    }

    /// Writes buffered events to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.last_flush = Instant::now();
        self.out.flush()
    }

    /// Consumes the writer, returning the underlying output (tests read it back).
    pub fn into_inner(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out)
    }

    fn event(&mut self, kind: &str, data: &str) -> io::Result<()> {
        // Microseconds are what asciinema itself writes; more digits only bloat the file.
        let t = (self.start.elapsed().as_secs_f64() * 1e6).round() / 1e6;
        serde_json::to_writer(&mut self.out, &(t, kind, data))?;
        self.out.write_all(b"\n")
    }
}
