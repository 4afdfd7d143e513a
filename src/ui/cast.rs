//! `--cast FILE`: every byte the dashboard draws also goes to an asciicast v2 file.
//!
//! The terminal's writer is wrapped in [`CastingWriter`], which hands each write to a shared
//! [`CastWriter`]; the event loop adds `"r"` events on resize and `"m"` markers for applied
//! commands through the same [`SharedCast`]. A cast that cannot be written is dropped with
//! one note instead of breaking the dashboard: the screen matters more than the copy.

use crate::recording::cast::CastWriter;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// The cast file, shared by the terminal's writer and the event loop.
#[derive(Clone)]
pub struct SharedCast {
    inner: Arc<Mutex<CastState>>,
}

struct CastState {
    writer: Option<CastWriter>,
    /// The first error; after it nothing more is written.
    error: Option<String>,
}

impl SharedCast {
    /// Creates `path` with a header for a `width`×`height` terminal.
    pub fn create(path: &Path, width: u16, height: u16) -> io::Result<Self> {
        let writer = CastWriter::new(path, width, height)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(CastState {
                writer: Some(writer),
                error: None,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, CastState> {
        // Nothing panics while holding the lock; a poisoned one still holds a usable writer.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with(&self, f: impl FnOnce(&mut CastWriter) -> io::Result<()>) {
        let mut state = self.lock();
        if let Some(writer) = state.writer.as_mut()
            && let Err(e) = f(writer)
        {
            state.error = Some(e.to_string());
            state.writer = None;
        }
    }

    /// Records bytes drawn on the terminal.
    pub fn output(&self, bytes: &[u8]) {
        self.with(|w| w.output(bytes));
    }

    /// Records a terminal resize.
    pub fn resize(&self, width: u16, height: u16) {
        self.with(|w| w.resize(width, height));
    }

    /// Records a chapter marker, e.g. `skip → residual`.
    pub fn marker(&self, label: &str) {
        self.with(|w| w.marker(label));
    }

    /// Flushes and closes the file; reports the first write error, if any.
    pub fn close(&self) -> Result<(), String> {
        let mut state = self.lock();
        if let Some(writer) = state.writer.take()
            && let Err(e) = writer.into_inner()
        {
            state.error.get_or_insert(e.to_string());
        }
        match &state.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

/// A terminal writer that also copies what it writes into a cast.
pub struct CastingWriter<W> {
    inner: W,
    cast: Option<SharedCast>,
    /// Bytes written since the last flush: the backend writes one escape sequence at a time,
    /// and one cast event per frame keeps the file small.
    frame: Vec<u8>,
}

impl<W: Write> CastingWriter<W> {
    /// Wraps `inner`; with `cast` None it only passes bytes through.
    pub fn new(inner: W, cast: Option<SharedCast>) -> Self {
        Self {
            inner,
            cast,
            frame: Vec::new(),
        }
    }
}

impl<W: Write> Write for CastingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        if self.cast.is_some() {
            // Only what reached the terminal: a short write is retried by the caller.
            self.frame.extend_from_slice(&buf[..written]);
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(cast) = &self.cast
            && !self.frame.is_empty()
        {
            cast.output(&self.frame);
            self.frame.clear();
        }
        self.inner.flush()
    }
}
