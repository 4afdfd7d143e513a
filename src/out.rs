//! Every line the command line prints on stdout goes through here, so a closed pipe
//! (`gradlab presets | head -1`) or a full disk (`gradlab run > /dev/full`) ends the command
//! with a documented exit status instead of a panic inside `println!`.
//!
//! Use `say!` (`use crate::out::say;`) like `println!`; it returns `Result<(), StdoutError>`, so `?` hands
//! a failed write up to [`super::main`], which turns it into the exit status:
//!
//! ```ignore
//! say!("steps  {}", s.step)?;
//! ```
//!
//! Progress and notes for stderr go through `tell!` (`use crate::out::tell;`), which
//! never panics and drops a failed write.

use std::fmt;
use std::io::{self, Write};

/// Exit status after stdout's reader went away (EPIPE): what a shell reports for a process
/// killed by SIGPIPE (128 + 13), so `gradlab … | head -1` looks like `ls | head -1`.
pub(crate) const EXIT_BROKEN_PIPE: u8 = 141;

/// Exit status after any other stdout failure (disk full, permission): sysexits' EX_IOERR.
pub(crate) const EXIT_OUTPUT_FAILED: u8 = 74;

/// A write to stdout that failed; carries the OS error so the message can give the reason.
#[derive(Debug)]
pub(crate) struct StdoutError(pub(crate) io::Error);

impl StdoutError {
    /// Whether the reader of a pipe went away, which is a normal way for output to end.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write to stdout: {}", self.0)
    }
}

impl std::error::Error for StdoutError {}

/// Writes one formatted line to stdout; the body of `say!`.
pub(crate) fn line(args: fmt::Arguments<'_>) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    // Stdout is line-buffered, so the failure shows up here and not in an exit-time flush
    // whose error Rust would drop.
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// Flushes stdout; called once before the process exits so a late failure is still reported.
pub(crate) fn flush() -> Result<(), StdoutError> {
    io::stdout().lock().flush().map_err(StdoutError)
}

/// `println!` that returns `Result<(), StdoutError>` instead of panicking on a closed or full
/// stdout; `say!()` prints an empty line.
macro_rules! say {
    () => {
        $crate::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}

pub(crate) use say;

/// Writes one line to stderr, dropping a failure: stderr is where failures are reported, so
/// when it is gone too (an SSH session that dropped, `2>/dev/full`) there is nowhere left to
/// say anything, and a progress line must never be what stops a run and its recording.
pub(crate) fn tell_line(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// `eprintln!` that never panics; see [`tell_line`].
macro_rules! tell {
    ($($arg:tt)*) => {
        $crate::out::tell_line(format_args!($($arg)*))
    };
}

pub(crate) use tell;
