//! Live path statistics and lesions from the trainer: the `Paths` event arrives on the
//! `path_every` cadence, only for MLPs, and `Command::Lesion` is answered by `Event::Lesion`.

use gradlab::config::{Experiment, apply_overrides, load_preset};
use gradlab::report::path_stats;
use gradlab::rnn::RnnTrainer;
use gradlab::trainer::{
    Command, Event, LIVE_PATH_ROWS, LIVE_PATH_SAMPLES, Learner, Trainer, VecSink, run_headless,
    spawn_trainer,
};
use std::time::{Duration, Instant};

fn preset(name: &str, sets: &[&str]) -> Experiment {
    let base = load_preset(name).expect("built-in preset");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    apply_overrides(&base, &sets).expect("valid overrides")
}

fn path_steps(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Paths { step, .. } => Some(*step),
            _ => None,
        })
        .collect()
}

#[test]
fn paths_event_arrives_at_the_cadence() {
    let experiment = preset(
        "residual-deep",
        &["model.depth=6", "model.width=16", "path_every=10"],
    );
    let mut trainer = Trainer::new(experiment, None).expect("builds");
    let mut sink = VecSink::default();
    run_headless(&mut trainer, 35, &[], &mut sink);
    assert_eq!(path_steps(&sink.events), vec![0, 10, 20, 30]);
    let stats = sink.events.iter().find_map(|e| match e {
        Event::Paths { stats, .. } => Some(stats),
        _ => None,
    });
    let stats = stats.expect("a Paths event");
    assert_eq!(stats.blocks, 6);
    assert_eq!(stats.by_length.len(), 7, "lengths 0..=6");
    let total: f64 = stats.by_length.iter().map(|l| l.contribution).sum();
    assert!(
        (total - 1.0).abs() < 1e-9,
        "contributions sum to 1: {total}"
    );
}

#[test]
fn path_every_must_be_positive() {
    let base = load_preset("residual-deep").expect("built-in preset");
    let error = apply_overrides(&base, &["path_every=0".to_string()]).expect_err("0 rejected");
    assert!(error.to_string().contains("path_every"), "{error}");
}

#[test]
fn recurrent_nets_get_no_paths_event() {
    let experiment = preset("rnn-lstm-adding", &["task.length=10", "path_every=1"]);
    let mut trainer = RnnTrainer::new(experiment).expect("builds");
    let mut sink = VecSink::default();
    run_headless(&mut trainer, 5, &[], &mut sink);
    assert!(path_steps(&sink.events).is_empty());
}

#[test]
fn lesion_command_is_answered_with_one_result_per_block() {
    let experiment = preset("residual-deep", &["model.depth=5", "model.width=16"]);
    let handle = spawn_trainer(experiment, None).expect("spawns");
    handle.commands.send(Command::Pause).expect("trainer alive");
    handle
        .commands
        .send(Command::Lesion)
        .expect("trainer alive");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut results = None;
    while Instant::now() < deadline {
        match handle.events.recv_timeout(Duration::from_secs(1)) {
            Ok(Event::Lesion { results: r, .. }) => {
                results = Some(r);
                break;
            }
            Ok(Event::Applied {
                command: Command::Lesion,
                ..
            }) => panic!("a lesion is an analysis, not a switch: no marker"),
            Ok(_) | Err(_) => {}
        }
    }
    let _ = handle.commands.send(Command::Shutdown);
    let _ = handle.thread.join();
    let results = results.expect("Lesion event within 60 s");
    assert_eq!(results.len(), 5);
    assert!(results.iter().enumerate().all(|(i, r)| r.block == i));
}

/// The cost figure in the README: one live path decomposition against one training step of
/// `residual-deep`, in the same process so machine load affects both alike.
/// `cargo test --release --test live_paths -- --ignored --nocapture`
#[test]
#[ignore]
fn live_path_cost_on_residual_deep() {
    let experiment = preset("residual-deep", &["path_every=1000000"]);
    let every = load_preset("residual-deep")
        .expect("built-in preset")
        .path_every;
    let mut trainer = Trainer::new(experiment, None).expect("builds");
    let (mut step_time, mut path_time) = (Duration::ZERO, Duration::ZERO);
    let (mut steps, mut analyses) = (0u32, 0u32);
    // Interleaved, so a burst of load from elsewhere lands on both measurements.
    for round in 0..10u64 {
        let start = Instant::now();
        for _ in 0..50 {
            trainer.train_step(true, Learner::step(&trainer).is_multiple_of(10));
            steps += 1;
        }
        step_time += start.elapsed();
        let start = Instant::now();
        let stats = path_stats(&trainer, LIVE_PATH_ROWS, LIVE_PATH_SAMPLES, round);
        path_time += start.elapsed();
        analyses += 1;
        assert!(stats.is_some());
    }
    let per_step = step_time.as_secs_f64() / f64::from(steps);
    let per_analysis = path_time.as_secs_f64() / f64::from(analyses);
    let overhead = per_analysis / (every as f64 * per_step);
    println!(
        "residual-deep: {:.2} ms/step, {:.1} ms per path decomposition ({LIVE_PATH_ROWS} rows, \
         M = {LIVE_PATH_SAMPLES}); at path_every = {every}: {:.1} % of training time",
        per_step * 1e3,
        per_analysis * 1e3,
        overhead * 100.0
    );
}
