//! End to end: `gradlab tour` in tmux, walked by pressing what each lesson asks, for seeds
//! 1–3 (one at 80×24, one under NO_COLOR with --ascii); every lesson must confirm its claim
//! from the live run.

#[path = "support/tmux.rs"]
mod tmux_support;

use gradlab::ui::tour_lessons::{LESSONS, Trigger};
use std::time::Duration;
use tmux_support::{capture, number_after, quit_and_expect_shell, start_shell, tmux, wait_for};

/// Steps a lesson's run trains before its key is pressed, so there is a "before" to measure.
const HISTORY_STEPS: u64 = 30;

/// The step on the header's first line.
fn header_step(screen: &str) -> Option<u64> {
    number_after(screen.lines().next()?, "step ").map(|s| s as u64)
}

/// The key the lesson panel asks for, as tmux names it.
fn asked_key(screen: &str) -> Option<String> {
    let at = screen.find("Do: press ")? + "Do: press ".len();
    let key = screen[at..].split_whitespace().next()?;
    Some(match key {
        "space" => "Space".to_string(),
        other => other.to_string(),
    })
}

/// Walks every lesson of `gradlab tour --seed SEED` in a WIDTH×HEIGHT pane.
fn walk(seed: u64, size: (u16, u16), env: &str, flags: &str) {
    let name = format!("gradlab-tour-{seed}-{}", std::process::id());
    let command = format!(
        "{env} {} tour --seed {seed} {flags}",
        env!("CARGO_BIN_EXE_gradlab")
    );
    let Some(session) = start_shell(&name, &command) else {
        return;
    };
    let (w, h) = (size.0.to_string(), size.1.to_string());
    tmux(&["resize-window", "-t", &name, "-x", &w, "-y", &h]);
    let n = LESSONS.len();
    let (ok, not_ok) = if flags.contains("--ascii") {
        ("[ok] confirmed", "[x] not confirmed")
    } else {
        ("✓ confirmed", "✗ not confirmed")
    };
    for (i, lesson) in LESSONS.iter().enumerate() {
        let title = format!("tour {}/{n}", i + 1);
        let key = wait_for(&name, Duration::from_secs(60), |screen| {
            if !screen.contains(&title) {
                return None;
            }
            // Paused lessons are pressed at once; the others once their run has a history.
            let paused = lesson.start_paused;
            let started = !screen.contains("loading ");
            let ready = paused || header_step(screen).is_some_and(|s| s >= HISTORY_STEPS);
            let waiting = !paused || screen.contains("● paused") || screen.contains("* paused");
            let (ready, waiting) = (started && ready, waiting);
            (ready && waiting).then(|| asked_key(screen)).flatten()
        })
        .unwrap_or_else(|| {
            panic!(
                "seed {seed}: lesson {} did not ask for a key:\n{}",
                i + 1,
                capture(&name)
            )
        });
        tmux(&["send-keys", "-t", &name, &key]);
        let verdict = wait_for(&name, Duration::from_secs(120), |screen| {
            if screen.contains(not_ok) {
                Some(false)
            } else if screen.contains(ok) {
                Some(true)
            } else {
                None
            }
        });
        let screen = capture(&name);
        assert_eq!(
            verdict,
            Some(true),
            "seed {seed}, lesson {} ({}), pressed {key} ({}): no confirmation:\n{screen}",
            i + 1,
            lesson.title,
            match lesson.trigger {
                Trigger::Applied(_) => "a switch",
                Trigger::Resumed => "resume",
                Trigger::PathsShown => "the path panel",
            }
        );
        if i + 1 < n {
            tmux(&["send-keys", "-t", &name, "."]);
        }
    }
    quit_and_expect_shell(&name, "next lesson");
    drop(session);
}

#[test]
fn tour_seed_1_confirms_every_lesson() {
    walk(1, (120, 40), "", "");
}

#[test]
fn tour_seed_2_confirms_every_lesson_at_80x24() {
    walk(2, (80, 24), "", "");
}

#[test]
fn tour_seed_3_confirms_every_lesson_without_colour_in_ascii() {
    walk(3, (120, 40), "env NO_COLOR=1", "--ascii");
}
