//! Chrono initialisation of the gated cells' carry biases (Tallec & Ollivier 2018): the values
//! drawn, that nothing else changes, and that the carry it sets up holds the gradient through
//! time at initialisation (which also pins the sign of this code's GRU: h' = (1−z)⊙n + z⊙h).

use crate::common::{rnn_model, rnn_param_values};
use gradlab::config::{CarryBias, CellKind, load_preset};
use gradlab::rnn::{RnnParams, RnnTrainer, init_rnn_params};
use gradlab::trainer::{VecSink, run_headless};
use rand::SeedableRng;
use rand::rngs::StdRng;

const T_MAX: f32 = 50.0;

fn init(carry_bias: CarryBias, hidden: usize) -> RnnParams {
    let mut model = rnn_model(CellKind::Gru, hidden, 1.0);
    model.carry_bias = carry_bias;
    let dev = dfdx::prelude::Cpu::default();
    init_rnn_params(&dev, &model, 2, 1, &mut StdRng::seed_from_u64(3))
}

fn bias(params: &RnnParams, cell: CellKind, gate: usize) -> Vec<f32> {
    params.cell(cell).gates[gate].bias.as_vec()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn chrono_biases_are_ln_u_with_u_uniform_between_1_and_t_max_minus_1() {
    let hidden = 512;
    let params = init(CarryBias::Chrono { t_max: T_MAX }, hidden);
    let update = bias(&params, CellKind::Gru, 1);
    let input = bias(&params, CellKind::Lstm, 0);
    let forget = bias(&params, CellKind::Lstm, 1);
    let top = (T_MAX - 1.0).ln();
    for (name, biases) in [("GRU b_z", &update), ("LSTM b_f", &forget)] {
        assert_eq!(biases.len(), hidden);
        assert!(
            biases.iter().all(|&b| (0.0..=top).contains(&b)),
            "{name} outside [0, ln {}]",
            T_MAX - 1.0
        );
        // u = e^b is uniform on [1, 49]: mean 25 (σ 13.9, so ±2.5 is 4 standard errors) and
        // half of the units below 25.
        let u: Vec<f32> = biases.iter().map(|b| b.exp()).collect();
        let mean = u.iter().sum::<f32>() / hidden as f32;
        assert!((mean - 25.0).abs() < 2.5, "{name}: mean u {mean}");
        let below = u.iter().filter(|&&u| u < 25.0).count() as f32 / hidden as f32;
        assert!((below - 0.5).abs() < 0.09, "{name}: {below} of u below 25");
        // Every gate starts keeping at least half of its state (forgetting over 1 + u ≥ 2 steps)
        // and some units keep it for nearly t_max steps.
        assert!(biases.iter().all(|&b| sigmoid(b) >= 0.5));
        let longest = biases
            .iter()
            .map(|&b| 1.0 / (1.0 - sigmoid(b)))
            .fold(0.0, f32::max);
        assert!(
            longest > 0.9 * T_MAX && longest <= T_MAX + 1e-3,
            "{name}: {longest}"
        );
    }
    assert!(
        input.iter().zip(&forget).all(|(i, f)| *i == -*f),
        "LSTM b_i = −b_f"
    );
    assert_ne!(update, forget, "the GRU and LSTM draw their own u");
}

#[test]
fn fixed_is_the_default_and_chrono_changes_only_the_carry_biases() {
    let preset = load_preset("rnn-vanilla-adding").expect("built-in");
    assert_eq!(
        preset.model.carry_bias,
        CarryBias::Fixed,
        "a preset that does not say"
    );
    let mut fixed = init(CarryBias::Fixed, 16);
    let mut chrono = init(CarryBias::Chrono { t_max: T_MAX }, 16);
    // Fixed: the LSTM forget gate at forget_bias (1.0) plus the bias noise, the others noise only.
    let forget = bias(&fixed, CellKind::Lstm, 1);
    let noise = bias(&fixed, CellKind::Lstm, 0);
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!((mean(&forget) - 1.0).abs() < 0.3 && mean(&noise).abs() < 0.3);
    // params_mut order: vanilla [W U b]; GRU r, z, n; LSTM i, f, g, o; head.
    let gru_update_bias = 3 + 3 + 2;
    let lstm_input_bias = 3 + 9 + 2;
    let lstm_forget_bias = lstm_input_bias + 3;
    let changed = [gru_update_bias, lstm_input_bias, lstm_forget_bias];
    for (p, (a, b)) in rnn_param_values(&mut fixed)
        .iter()
        .zip(rnn_param_values(&mut chrono))
        .enumerate()
    {
        if changed.contains(&p) {
            assert_ne!(*a, b, "param {p} is a carry bias");
        } else {
            assert_eq!(
                *a, b,
                "param {p}: drawn before the chrono biases, so unchanged"
            );
        }
    }
}

fn ratio_db_at_init(preset: &str, carry_bias: CarryBias) -> f64 {
    let mut experiment = load_preset(preset).expect("built-in");
    experiment.model.carry_bias = carry_bias;
    let mut trainer = RnnTrainer::new(experiment).expect("builds");
    let snapshot = run_headless(&mut trainer, 0, &[], &mut VecSink::default()).expect("measures");
    assert_eq!(trainer.step(), 0);
    snapshot.grad_ratio_db
}

#[test]
fn chrono_keeps_the_gradient_through_time_at_initialisation() {
    for (cell, gain) in [(CellKind::Gru, 60.0), (CellKind::Lstm, 5.0)] {
        let preset = match cell {
            CellKind::Gru => "rnn-gru-adding",
            _ => "rnn-lstm-adding",
        };
        let fixed = ratio_db_at_init(preset, CarryBias::Fixed);
        let chrono = ratio_db_at_init(preset, CarryBias::Chrono { t_max: T_MAX });
        assert!(
            chrono > fixed + gain,
            "{cell:?}: ‖∂L/∂h_1‖/‖∂L/∂h_T‖ {chrono:.1} dB with chrono vs {fixed:.1} dB fixed"
        );
    }
}
