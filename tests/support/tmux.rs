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

/// The number after `label` on the screen, e.g. the first-layer ‖∂L/∂h‖.
pub fn number_after(screen: &str, label: &str) -> Option<f64> {
    let start = screen.find(label)? + label.len();
    screen[start..].split_whitespace().next()?.parse().ok()
}

/// Presses `q` in session `name` and checks the shell is back: alternate screen off, exit
/// status 0, a prompt, and `dashboard_text` gone from the screen.
pub fn quit_and_expect_shell(name: &str, dashboard_text: &str) {
    tmux(&["send-keys", "-t", name, "q"]);
    let back = wait_for(name, Duration::from_secs(15), |_| {
        let alternate = tmux(&["display-message", "-p", "-t", name, "#{alternate_on}"])?;
        let command = tmux(&[
            "display-message",
            "-p",
            "-t",
            name,
            "#{pane_current_command}",
        ])?;
        (alternate.trim() == "0" && command.trim() != "gradlab").then_some(())
    });
    assert!(
        back.is_some(),
        "still in the dashboard after q:\n{}",
        capture(name)
    );
    tmux(&["send-keys", "-t", name, "echo GRADLAB_EXIT=$?", "Enter"]);
    let exit = wait_for(name, Duration::from_secs(5), |screen| {
        number_after(screen, "GRADLAB_EXIT=").or_else(|| {
            let at = screen.rfind("GRADLAB_EXIT=")? + "GRADLAB_EXIT=".len();
            screen[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
    });
    assert_eq!(exit, Some(0.0), "exit status:\n{}", capture(name));
    let screen = capture(name);
    assert!(
        screen.contains("$ "),
        "a shell prompt is visible:\n{screen}"
    );
    assert!(
        !screen.contains(dashboard_text),
        "dashboard left on the screen:\n{screen}"
    );
}

/// Whether tmux can run here. Under `CI=true` a missing tmux fails the test instead: CI must
/// never pass with its end-to-end tests silently skipped.
pub fn tmux_available() -> bool {
    let installed = Command::new("tmux").arg("-V").output().is_ok();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        installed || !ci,
        "tmux is not installed, and CI=true: the end-to-end tests must run in CI (.ci/run installs tmux)"
    );
    if !installed {
        eprintln!(
            "note: tmux is not installed; skipping an end-to-end test (CI=true makes this fail)"
        );
    }
    installed
}

/// A 120×40 tmux session `name` running a plain shell in the crate folder, with `command`
/// typed into it; None when tmux is not installed outside CI (the caller skips its test).
pub fn start_shell(name: &str, command: &str) -> Option<Session> {
    if !tmux_available() {
        return None;
    }
    let session = Session(name.to_string());
    tmux(&[
        "new-session",
        "-d",
        "-s",
        name,
        "-x",
        "120",
        "-y",
        "40",
        "-c",
        env!("CARGO_MANIFEST_DIR"),
        "env PS1='$ ' sh",
    ])
    .expect("tmux starts");
    tmux(&["send-keys", "-t", name, command, "Enter"]);
    Some(session)
}
