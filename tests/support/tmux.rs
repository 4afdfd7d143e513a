//! Driving the real binary in tmux, shared by the end-to-end tests.
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `tmux ARGS`; its stdout, or None when tmux cannot be run.
pub fn tmux(args: &[&str]) -> Option<String> {
    let output = Command::new("tmux").args(args).output().ok()?;
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What the pane of `session` shows now.
pub fn capture(session: &str) -> String {
    tmux(&["capture-pane", "-p", "-t", session]).unwrap_or_default()
}

/// Polls the pane until `found` returns a value or `timeout` passes.
pub fn wait_for<T>(
    session: &str,
    timeout: Duration,
    found: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(value) = found(&capture(session)) {
            return Some(value);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Ends the tmux session even when an assertion fails.
pub struct Session(pub String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = tmux(&["kill-session", "-t", &self.0]);
    }
}
