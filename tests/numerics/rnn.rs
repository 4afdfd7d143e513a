//! The recurrent lab: gated cells learn the adding problem where the vanilla RNN cannot,
//! cells switch live without losing weights, and the JSON carries the time axis.

use crate::common::rnn_param_values;
use gradlab::config::{CellKind, load_preset};
use gradlab::learner::Learner;
use gradlab::protocol::Command;
use gradlab::rnn::RnnTrainer;
use gradlab::trainer::{VecSink, run_headless};

fn trained(preset: &str, steps: u64) -> gradlab::metrics::Snapshot {
    let experiment = load_preset(preset).expect("built-in");
    let mut trainer = RnnTrainer::new(experiment).expect("builds");
    run_headless(&mut trainer, steps, &[], &mut VecSink::default()).expect("does not diverge")
}

#[test]
fn gru_learns_the_adding_problem_while_the_vanilla_rnn_stays_at_the_baseline() {
    let gru = trained("rnn-gru-adding", 250);
    let vanilla = trained("rnn-vanilla-adding", 250);
    let baseline = gru.baseline_loss.expect("adding has a baseline");
    assert!((baseline - 1.0 / 6.0).abs() < 1e-12);
    let gru_test = gru.test_loss.expect("evaluated");
    let vanilla_test = vanilla.test_loss.expect("evaluated");
    assert!(gru_test < 0.03, "GRU test MSE {gru_test}");
    assert!(
        vanilla_test > 0.6 * baseline,
        "vanilla test MSE {vanilla_test}"
    );
    // The vanilla RNN's gradient has faded by orders of magnitude across 50 steps.
    assert!(
        vanilla.grad_ratio_db < -60.0,
        "vanilla ratio {} dB",
        vanilla.grad_ratio_db
    );
    assert!(gru.grad_ratio_db > vanilla.grad_ratio_db + 40.0);
}

#[test]
fn switching_cells_keeps_each_cells_weights_and_resumes_where_it_was() {
    let experiment = load_preset("rnn-vanilla-adding").expect("built-in");
    let mut trainer = RnnTrainer::new(experiment).expect("builds");
    let weights = |t: &mut RnnTrainer| rnn_param_values(t.params_mut());
    run_headless(&mut trainer, 3, &[], &mut VecSink::default());
    let before = weights(&mut trainer);
    trainer.apply(&Command::SetCell(CellKind::Lstm));
    assert_eq!(
        weights(&mut trainer),
        before,
        "a switch itself changes nothing"
    );
    run_headless(&mut trainer, 6, &[], &mut VecSink::default());
    let after = weights(&mut trainer);
    // 3 gate maps × 3 tensors: vanilla 0..3, GRU 3..12, LSTM 12..24, head 24..26.
    assert_eq!(
        after[..12],
        before[..12],
        "vanilla and GRU weights are frozen while LSTM trains"
    );
    assert_ne!(after[12..24], before[12..24], "the LSTM trained");
    trainer.apply(&Command::SetCell(CellKind::Vanilla));
    assert_eq!(trainer.cell(), CellKind::Vanilla);
    let snapshot = run_headless(&mut trainer, 7, &[], &mut VecSink::default()).expect("runs");
    assert_eq!(snapshot.cell.as_deref(), Some("vanilla"));
    assert!(
        snapshot
            .timesteps
            .iter()
            .all(|t| t.forget_gate_mean.is_none())
    );
}

#[test]
fn the_json_summary_has_the_time_axis() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradlab"))
        .args([
            "run",
            "--preset",
            "rnn-lstm-adding",
            "--steps",
            "2",
            "--json",
            "--set",
            "task.length=20",
        ])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let steps = json["timesteps"].as_array().expect("timesteps");
    assert_eq!(steps.len(), 20);
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step["t"], i + 1);
        assert!(step["hidden_grad_norm"].as_f64().is_some_and(|v| v > 0.0));
        let forget = step["forget_gate_mean"].as_f64().expect("LSTM forget gate");
        assert!((0.0..=1.0).contains(&forget));
        assert!(step["update_gate_mean"].is_null());
    }
    let first = steps[0]["hidden_grad_norm"].as_f64().unwrap_or_default();
    let last = steps[19]["hidden_grad_norm"].as_f64().unwrap_or_default();
    let ratio = json["grad_ratio_first_last"].as_f64().expect("ratio");
    assert!((ratio - first / last).abs() <= 1e-9 * ratio.abs());
    assert_eq!(json["cell"], "lstm");
    assert!(json["layers"].as_array().is_some_and(|l| l.is_empty()));
}

/// Test MSE and ‖∂L/∂h_1‖/‖∂L/∂h_T‖ (dB) of `preset` after its own step count, with `seed`
/// instead of its own when given.
fn at_its_step_count(preset: &str, seed: Option<u64>) -> (f64, f64) {
    let mut experiment = load_preset(preset).expect("built-in");
    if let Some(seed) = seed {
        experiment.seed = seed;
    }
    let steps = experiment.steps as u64;
    let mut trainer = RnnTrainer::new(experiment).expect("builds");
    let last =
        run_headless(&mut trainer, steps, &[], &mut VecSink::default()).expect("does not diverge");
    assert_eq!(trainer.step(), steps);
    (last.test_loss.expect("evaluated"), last.grad_ratio_db)
}

/// What the adding presets' descriptions claim at their own seed and step count.
#[test]
fn each_adding_preset_holds_its_description_at_its_own_seed_and_step_count() {
    for preset in ["rnn-gru-adding", "rnn-lstm-adding"] {
        let (mse, _) = at_its_step_count(preset, None);
        assert!(mse < 0.002, "{preset}: test MSE {mse}");
    }
    let (mse, db) = at_its_step_count("rnn-vanilla-adding", None);
    assert!(
        mse > 0.6 / 6.0,
        "vanilla: test MSE {mse} near the 0.167 baseline"
    );
    assert!(db < -200.0, "vanilla: {db:.0} dB, about −250 dB");
}

#[test]
fn the_gated_adding_presets_reach_test_mse_below_001_with_seeds_1_to_3() {
    for preset in ["rnn-gru-adding", "rnn-lstm-adding"] {
        for seed in 1..=3 {
            let (mse, _) = at_its_step_count(preset, Some(seed));
            assert!(mse < 0.01, "{preset} seed {seed}: test MSE {mse}");
        }
    }
}
