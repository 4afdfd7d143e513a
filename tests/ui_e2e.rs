//! End to end: the real binary in tmux. Starts training, presses `r`, sees residual in the
//! header and the first-layer gradient norm rise, presses `q`, and checks the shell is back.

#[path = "support/tmux.rs"]
mod tmux_support;

use std::process::Command;
use std::time::Duration;
use tmux_support::{capture, number_after, quit_and_expect_shell, start_shell, tmux, wait_for};

fn header_step(screen: &str) -> Option<u64> {
    let line = screen.lines().next()?;
    number_after(line, "step ").map(|s| s as u64)
}

#[test]
fn residual_key_restores_gradient_flow_and_q_restores_the_terminal() {
    let name = format!("gradlab-e2e-{}", std::process::id());
    let command = format!("{} --preset plain-deep", env!("CARGO_BIN_EXE_gradlab"));
    let Some(session) = start_shell(&name, &command) else {
        return;
    };

    let label = "‖∂L/∂h‖ first ";
    let before = wait_for(&name, Duration::from_secs(60), |screen| {
        (header_step(screen)? >= 30).then_some(())?;
        number_after(screen, label)
    })
    .unwrap_or_else(|| panic!("training did not show up:\n{}", capture(&name)));
    assert!(capture(&name).contains("skip plain"), "{}", capture(&name));

    tmux(&["send-keys", "-t", &name, "r"]);
    let after = wait_for(&name, Duration::from_secs(60), |screen| {
        if !screen.contains("skip residual") {
            return None;
        }
        number_after(screen, label).filter(|v| *v > before * 100.0)
    })
    .unwrap_or_else(|| {
        panic!(
            "first-layer gradient did not rise from {before:e}:\n{}",
            capture(&name)
        )
    });
    assert!(after > before * 100.0);

    quit_and_expect_shell(&name, "‖∂L/∂h_l‖");
    drop(session);
}

#[test]
fn refuses_to_draw_when_stdout_is_not_a_terminal() {
    let output = Command::new(env!("CARGO_BIN_EXE_gradlab"))
        .args(["--preset", "plain-deep"])
        .output()
        .expect("binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("gradlab run"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing drawn on a pipe");
}

#[test]
fn ctrl_z_hands_the_terminal_back_and_fg_resumes_the_dashboard() {
    let name = format!("gradlab-e2e-tstp-{}", std::process::id());
    let command = format!("{} --preset plain-deep", env!("CARGO_BIN_EXE_gradlab"));
    let Some(session) = start_shell(&name, &command) else {
        return;
    };
    wait_for(&name, Duration::from_secs(60), header_step)
        .unwrap_or_else(|| panic!("training did not show up:\n{}", capture(&name)));
    tmux(&["send-keys", "-t", &name, "C-z"]);
    let suspended = wait_for(&name, Duration::from_secs(20), |screen| {
        (screen.contains("Stopped") && !screen.contains("‖∂L/∂h_l‖")).then_some(())
    });
    assert!(
        suspended.is_some(),
        "Ctrl-Z did not give the shell its screen back:\n{}",
        capture(&name)
    );
    tmux(&["send-keys", "-t", &name, "fg", "Enter"]);
    let step = wait_for(&name, Duration::from_secs(20), header_step);
    assert!(
        step.is_some(),
        "fg did not redraw the dashboard:\n{}",
        capture(&name)
    );
    quit_and_expect_shell(&name, "‖∂L/∂h_l‖");
    drop(session);
}
