//! The compare view's lock-step driver: a fork leaves the parent exactly as it would have been
//! without one, a twin with nothing flipped stays bit-identical to its parent, and a twin with
//! residual switched on branches off (its first-layer gradient rises).

use gradlab::config::{Experiment, SkipMode, apply_overrides, load_preset};
use gradlab::metrics::Snapshot;
use gradlab::trainer::lockstep::{LaneStart, LockstepCommand, LockstepEvent, spawn_lockstep};
use gradlab::trainer::{Command, Event, Trainer, VecSink, run_headless};
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
    events: &std::sync::mpsc::Receiver<LockstepEvent>,
    runs: &mut [Vec<Snapshot>],
    want: &[usize],
) {
    while runs.iter().zip(want).any(|(got, &n)| got.len() < n) {
        let event = events
            .recv_timeout(PATIENCE)
            .expect("the driver keeps reporting");
        if let LockstepEvent::Run {
            run,
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

    let start = LaneStart::Fresh {
        experiment: Box::new(experiment()),
        base_dir: None,
    };
    // Paused, so steps are taken only when asked and the fork lands on a known step.
    let driver = spawn_lockstep(vec![start], 2, true).expect("driver starts");
    let send = |c| driver.commands.send(c).expect("driver alive");
    let mut runs = vec![Vec::new(), Vec::new(), Vec::new()];
    send(LockstepCommand::Run(0, Command::Step(before as u32)));
    collect(&driver.events, &mut runs, &[before, 0, 0]);
    send(LockstepCommand::Fork {
        from: 0,
        flip: None,
    });
    send(LockstepCommand::Fork {
        from: 0,
        flip: Some(Command::SetSkip(SkipMode::Residual { scale: 1.0 })),
    });
    send(LockstepCommand::Run(0, Command::Step(after as u32)));
    collect(&driver.events, &mut runs, &[before + after, after, after]);
    send(LockstepCommand::Shutdown);
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
        .map(|_| LaneStart::Fresh {
            experiment: Box::new(experiment()),
            base_dir: None,
        })
        .collect();
    let driver = spawn_lockstep(starts, 1, true).expect("driver starts");
    driver
        .commands
        .send(LockstepCommand::Fork {
            from: 1,
            flip: None,
        })
        .expect("driver alive");
    let refusal = loop {
        match driver
            .events
            .recv_timeout(PATIENCE)
            .expect("driver answers")
        {
            LockstepEvent::Run {
                run: 1,
                event: Event::Error(message),
            } => break message,
            LockstepEvent::Forked { .. } => panic!("a fifth run was forked"),
            _ => {}
        }
    };
    assert!(refusal.contains("at most 4"), "{refusal}");
    driver
        .commands
        .send(LockstepCommand::Shutdown)
        .expect("driver alive");
    driver.thread.join().expect("driver ends cleanly");
}
