//! Learning-rate warm-up: the rate each update uses, how the live lr keys combine with it, and
//! that `warmup: 0` is the run without the field.

use gradlab::config::{Experiment, apply_overrides, load_preset};
use gradlab::learner::{Learner, build_learner};
use gradlab::protocol::Command;

fn preset(name: &str, sets: &[&str]) -> Experiment {
    let base = load_preset(name).expect("built-in preset");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    apply_overrides(&base, &sets).expect("valid overrides")
}

fn learner(experiment: &Experiment) -> Box<dyn Learner> {
    build_learner(experiment.clone(), None).expect("builds")
}

/// The learning rate each of `steps` updates reports, applying `changes` before the step named.
fn reported_rates(experiment: &Experiment, steps: u64, changes: &[(u64, f32)]) -> Vec<f64> {
    let mut l = learner(experiment);
    (0..steps)
        .map(|step| {
            for &(at, lr) in changes {
                if at == step {
                    l.apply(&Command::SetLearningRate(lr));
                }
            }
            l.train_step(true, true).expect("measured").learning_rate
        })
        .collect()
}

#[test]
fn the_reported_rate_ramps_linearly_from_lr_over_n_to_lr() {
    for optimizer in [
        "optimizer=Adam(lr: 0.01, warmup: 4)",
        "optimizer=Sgd(lr: 0.01, momentum: 0.9, warmup: 4)",
    ] {
        let e = preset("plain-shallow", &[optimizer]);
        let rates = reported_rates(&e, 6, &[]);
        // lr/4, 2lr/4, 3lr/4, then lr from update 4 on.
        let expected: Vec<f64> = (1..=6u8)
            .map(|k| f64::from(0.01f32 * (f32::from(k.min(4)) / 4.0)))
            .collect();
        assert_eq!(rates, expected, "{optimizer}");
        assert!((rates[0] - 0.0025).abs() < 1e-9);
    }
}

#[test]
fn the_live_rate_is_what_the_warmup_ramps_towards() {
    let e = preset("plain-shallow", &["optimizer=Adam(lr: 0.01, warmup: 10)"]);
    // Doubling the live rate before update 5 (step 4) doubles the rest of the ramp.
    let rates = reported_rates(&e, 12, &[(4, 0.02)]);
    assert_eq!(rates[3], f64::from(0.01f32 * 0.4));
    assert_eq!(rates[4], f64::from(0.02f32 * 0.5));
    assert_eq!(rates[9], f64::from(0.02f32));
    assert_eq!(rates[11], f64::from(0.02f32));
    // The live rate (what the keys scale) stays the one set, warm-up or not.
    let mut l = learner(&e);
    l.train_step(true, false);
    assert_eq!(l.learning_rate(), 0.01);
}

#[test]
fn a_warmup_of_zero_is_the_run_without_the_field() {
    let without = preset("plain-shallow", &["optimizer=Adam(lr: 0.01)"]);
    let zero = preset("plain-shallow", &["optimizer=Adam(lr: 0.01, warmup: 0)"]);
    let with = preset("plain-shallow", &["optimizer=Adam(lr: 0.01, warmup: 5)"]);
    let losses = |e: &Experiment| {
        let mut l = learner(e);
        (0..20)
            .map(|_| l.train_step(true, true).expect("measured").loss.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&without), losses(&zero));
    assert_ne!(losses(&without), losses(&with), "a warm-up changes the run");
}
