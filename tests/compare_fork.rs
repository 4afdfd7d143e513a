//! The compare view's lock-step driver: a fork leaves the parent exactly as it would have been
//! without one, a twin with nothing flipped stays bit-identical to its parent, and a twin with
//! residual switched on branches off (its first-layer gradient rises).

use gradlab::config::{Experiment, SkipMode, apply_overrides, load_preset};
use gradlab::metrics::Snapshot;
use gradlab::model::Trainer;
use gradlab::protocol::{Command, Event, LaneEvent};
use gradlab::trainer::{LaneStart, VecSink, run_headless, spawn_driver};
use std::time::Duration;

/// Generous: this bounds a hang, it does not measure speed.
const PATIENCE: Duration = Duration::from_secs(120);

fn experiment() -> Experiment {
    let base = load_preset("plain-deep").expect("built-in preset");
    let sets = ["model.depth=16", "path_every=5"].map(String::from);
    apply_overrides(&base, &sets).expect("valid overrides")
}

fn snapshots(events: Vec<Event>) -> Vec<Snapshot> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Snapshot(s) => Some(*s),
            _ => None,
        })
        .collect()
}

/// Receives driver events until `runs[i]` holds `want[i]` snapshots each.
fn collect(
    events: &std::sync::mpsc::Receiver<LaneEvent>,
    runs: &mut [Vec<Snapshot>],
    want: &[usize],
) {
    while runs.iter().zip(want).any(|(got, &n)| got.len() < n) {
        let event = events
            .recv_timeout(PATIENCE)
            .expect("the driver keeps reporting");
        if let LaneEvent {
            lane: run,
            event: Event::Snapshot(s),
        } = event
            && run < runs.len()
        {
            runs[run].push(*s);
        }
    }
}

#[test]
fn fork_keeps_the_parent_and_an_unflipped_twin_bit_identical() {
    let (before, after) = (12usize, 15usize);
    let mut lone = Trainer::new(experiment(), None).expect("trainer builds");
    let mut sink = VecSink::default();
    run_headless(&mut lone, (before + after) as u64, &[], &mut sink);
    let alone = snapshots(sink.events);

    let start = LaneStart::fresh(experiment(), None);
    // Paused, so steps are taken only when asked and the fork lands on a known step.
    let driver = spawn_driver(vec![start], 2, true).expect("driver starts");
    let send = |lane, command| driver.send(lane, command);
    let mut runs = vec![Vec::new(), Vec::new(), Vec::new()];
    send(0, Command::Step(before as u32));
    collect(&driver.events, &mut runs, &[before, 0, 0]);
    send(0, Command::Fork { flip: None });
    send(
        0,
        Command::Fork {
            flip: Some(Box::new(Command::SetSkip(SkipMode::Residual {
                scale: 1.0,
            }))),
        },
    );
    send(0, Command::Step(after as u32));
    collect(&driver.events, &mut runs, &[before + after, after, after]);
    send(0, Command::Shutdown);
    driver.thread.join().expect("driver ends cleanly");

    let [parent, twin, residual] = [&runs[0], &runs[1], &runs[2]];
    assert_eq!(
        parent[..],
        alone[..before + after],
        "the fork changed the parent"
    );
    assert_eq!(
        twin[..],
        parent[before..],
        "an unflipped twin left its parent"
    );
    assert_eq!(
        residual[0].step, before as u64,
        "the twin starts at the fork step"
    );
    let first = |s: &Snapshot| s.layers[0].act_grad_norm;
    let (p, r) = (
        first(&parent[before + after - 1]),
        first(&residual[after - 1]),
    );
    assert!(
        r > 10.0 * p,
        "residual twin's first-layer gradient {r:e} did not rise above the plain parent's {p:e}"
    );
}

#[test]
fn fork_refuses_a_fifth_run() {
    let starts = (0..4)
        .map(|_| LaneStart::fresh(experiment(), None))
        .collect();
    let driver = spawn_driver(starts, 1, true).expect("driver starts");
    driver.send(1, Command::Fork { flip: None });
    let refusal = loop {
        match driver
            .events
            .recv_timeout(PATIENCE)
            .expect("driver answers")
        {
            LaneEvent {
                lane: 1,
                event: Event::Error { message },
            } => break message,
            LaneEvent {
                event: Event::Forked { .. },
                ..
            } => panic!("a fifth run was forked"),
            _ => {}
        }
    };
    assert!(refusal.contains("at most 4"), "{refusal}");
    driver.send(0, Command::Shutdown);
    driver.thread.join().expect("driver ends cleanly");
}
