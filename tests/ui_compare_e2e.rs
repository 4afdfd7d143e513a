//! End to end: the real binary in tmux. Starts training plain-deep, presses `f` then `r`,
//! sees two columns (the run and its residual twin) and the twin's first-layer gradient rise
//! far above its parent's, presses `q`, and checks the shell is back.

#[path = "support/tmux.rs"]
mod tmux_support;

use std::time::Duration;
use tmux_support::{capture, number_after, quit_and_expect_shell, start_shell, tmux, wait_for};

/// The first-layer ‖∂L/∂h‖ in each column's gradient panel title, left to right.
fn first_layer_norms(screen: &str) -> Vec<f64> {
    let Some(line) = screen.lines().find(|l| l.contains("per layer (log) L1 ")) else {
        return Vec::new();
    };
    line.split("per layer (log)")
        .skip(1)
        .filter_map(|part| number_after(part, "L1 "))
        .collect()
}

#[test]
fn fork_key_shows_a_residual_twin_beside_the_run() {
    let name = format!("gradlab-fork-e2e-{}", std::process::id());
    let command = format!("{} --preset plain-deep", env!("CARGO_BIN_EXE_gradlab"));
    let Some(session) = start_shell(&name, &command) else {
        return;
    };
    wait_for(&name, Duration::from_secs(60), |screen| {
        let step = number_after(screen.lines().next()?, "step ")?;
        (step >= 30.0).then_some(())
    })
    .unwrap_or_else(|| panic!("training did not show up:\n{}", capture(&name)));

    tmux(&["send-keys", "-t", &name, "f"]);
    wait_for(&name, Duration::from_secs(10), |screen| {
        screen.contains("flip one switch").then_some(())
    })
    .unwrap_or_else(|| panic!("no fork menu:\n{}", capture(&name)));
    tmux(&["send-keys", "-t", &name, "r"]);
    let norms = wait_for(&name, Duration::from_secs(60), |screen| {
        if !(screen.contains("gradlab compare") && screen.contains("2 plain-deep +residual")) {
            return None;
        }
        let norms = first_layer_norms(screen);
        (norms.len() == 2 && norms[1] > 100.0 * norms[0]).then_some(norms)
    })
    .unwrap_or_else(|| {
        panic!(
            "no twin with a risen first-layer gradient:\n{}",
            capture(&name)
        )
    });
    assert!(norms[1] > 100.0 * norms[0]);
    let screen = capture(&name);
    assert!(screen.contains("1 plain-deep"), "{screen}");
    assert!(
        screen.contains("skip residual") && screen.contains("skip plain"),
        "{screen}"
    );

    quit_and_expect_shell(&name, "gradlab compare");
    drop(session);
}
