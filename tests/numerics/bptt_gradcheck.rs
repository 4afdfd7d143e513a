//! Finite-difference checks of backprop through time for every cell: ∂L/∂θ of the active
//! cell and the head, and ∂L/∂h_t at every t, against an independent f64 implementation;
//! for the fused recurrence training runs and for the dfdx-op reference.

use crate::common::rnn_model;
use gradlab::config::{CarryBias, CellKind, TaskSpec};
use gradlab::rnn::{RnnOps, init_rnn_params, rnn_backprop_with};
use gradlab::tasks::sequence::{SeqBatch, SeqTargets, SeqTask};
use rand::SeedableRng;
use rand::rngs::StdRng;

const HIDDEN: usize = 5;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The f64 oracle: parameters per gate as [W (in×H), U (H×H), b (H)], head [W, b].
struct Oracle {
    gates: Vec<[Vec<f64>; 3]>,
    head: [Vec<f64>; 2],
    inputs: usize,
    outputs: usize,
}

impl Oracle {
    fn pre(&self, g: usize, x: &[f64], h: &[f64]) -> Vec<f64> {
        let [w, u, b] = &self.gates[g];
        (0..HIDDEN)
            .map(|j| {
                b[j] + (0..self.inputs)
                    .map(|i| x[i] * w[i * HIDDEN + j])
                    .sum::<f64>()
                    + (0..HIDDEN).map(|i| h[i] * u[i * HIDDEN + j]).sum::<f64>()
            })
            .collect()
    }

    fn head(&self, h: &[f64]) -> Vec<f64> {
        let [w, b] = &self.head;
        (0..self.outputs)
            .map(|o| {
                b[o] + (0..HIDDEN)
                    .map(|i| h[i] * w[i * self.outputs + o])
                    .sum::<f64>()
            })
            .collect()
    }

    /// Mean loss over the batch with h_t of (step, row, unit) nudged by delta.
    fn loss(&self, cell: CellKind, batch: &SeqBatch, nudge: Option<(usize, usize, f64)>) -> f64 {
        let mut total = 0.0;
        for r in 0..batch.rows {
            let mut h = vec![0.0; HIDDEN];
            let mut c = vec![0.0; HIDDEN];
            let mut states = Vec::new();
            for t in 0..batch.steps {
                let x: Vec<f64> = batch.step_inputs(t)[r * self.inputs..(r + 1) * self.inputs]
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect();
                h = match cell {
                    CellKind::Vanilla => self.pre(0, &x, &h).iter().map(|v| v.tanh()).collect(),
                    CellKind::Gru => {
                        let reset: Vec<f64> =
                            self.pre(0, &x, &h).iter().map(|&v| sigmoid(v)).collect();
                        let update: Vec<f64> =
                            self.pre(1, &x, &h).iter().map(|&v| sigmoid(v)).collect();
                        let rh: Vec<f64> = reset.iter().zip(&h).map(|(a, b)| a * b).collect();
                        let n: Vec<f64> = self.pre(2, &x, &rh).iter().map(|v| v.tanh()).collect();
                        (0..HIDDEN)
                            .map(|j| (1.0 - update[j]) * n[j] + update[j] * h[j])
                            .collect()
                    }
                    CellKind::Lstm => {
                        let i: Vec<f64> = self.pre(0, &x, &h).iter().map(|&v| sigmoid(v)).collect();
                        let f: Vec<f64> = self.pre(1, &x, &h).iter().map(|&v| sigmoid(v)).collect();
                        let g: Vec<f64> = self.pre(2, &x, &h).iter().map(|v| v.tanh()).collect();
                        let o: Vec<f64> = self.pre(3, &x, &h).iter().map(|&v| sigmoid(v)).collect();
                        c = (0..HIDDEN).map(|j| f[j] * c[j] + i[j] * g[j]).collect();
                        (0..HIDDEN).map(|j| o[j] * c[j].tanh()).collect()
                    }
                };
                if let Some((step, index, delta)) = nudge
                    && step == t
                    && index / HIDDEN == r
                {
                    h[index % HIDDEN] += delta;
                }
                states.push(h.clone());
            }
            total += match &batch.targets {
                SeqTargets::FinalValue(v) => (self.head(&h)[0] - f64::from(v[r])).powi(2),
                SeqTargets::FinalClass(labels) => cross_entropy(&self.head(&h), labels[r]),
                SeqTargets::TailClasses { steps, labels } => {
                    let first = batch.steps - steps;
                    (0..*steps)
                        .map(|k| {
                            cross_entropy(
                                &self.head(&states[first + k]),
                                labels[k * batch.rows + r],
                            )
                        })
                        .sum::<f64>()
                        / *steps as f64
                }
            };
        }
        total / batch.rows as f64
    }
}

fn cross_entropy(logits: &[f64], label: usize) -> f64 {
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = max + logits.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
    lse - logits[label]
}

fn check(ops: RnnOps, cell: CellKind, spec: TaskSpec, carry_bias: CarryBias) {
    let task = SeqTask::new(&spec, 1).expect("task");
    let batch = task.sample(3, &mut StdRng::seed_from_u64(2));
    let outputs = match batch.targets {
        SeqTargets::FinalValue(_) => 1,
        _ => task_classes(&spec),
    };
    let mut model = rnn_model(cell, HIDDEN, 1.5);
    model.carry_bias = carry_bias;
    let dev = dfdx::prelude::Cpu::default();
    let mut params = init_rnn_params(
        &dev,
        &model,
        task.input_dims,
        outputs,
        &mut StdRng::seed_from_u64(3),
    );
    let values: Vec<Vec<f64>> = params
        .params_mut()
        .into_iter()
        .map(|(_, p)| {
            let mut v = vec![0.0f32; p.len()];
            p.copy_into(&mut v);
            v.into_iter().map(f64::from).collect()
        })
        .collect();
    // params_mut order: per cell (vanilla, gru, lstm) per gate [W, U, b]; then head [W, b].
    let gate_counts = [1usize, 3, 4];
    let offset: usize = gate_counts[..cell as usize].iter().sum::<usize>() * 3;
    let head_at = gate_counts.iter().sum::<usize>() * 3;
    let build = |values: &[Vec<f64>]| Oracle {
        gates: (0..gate_counts[cell as usize])
            .map(|g| {
                let base = offset + 3 * g;
                [
                    values[base].clone(),
                    values[base + 1].clone(),
                    values[base + 2].clone(),
                ]
            })
            .collect(),
        head: [values[head_at].clone(), values[head_at + 1].clone()],
        inputs: task.input_dims,
        outputs,
    };
    let oracle = build(&values);
    let result = rnn_backprop_with(ops, &mut params, cell, &dev, &batch);
    let reference = oracle.loss(cell, &batch, None);
    assert!(
        (f64::from(result.loss) - reference).abs() < 1e-5 * reference.max(1.0),
        "{ops:?} {cell:?}: loss {} vs {reference}",
        result.loss
    );

    let eps = 1e-6;
    let compare = |what: &str, analytic: &[f32], numeric: &[f64]| {
        let scale = numeric.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(
            scale > 0.0 || analytic.iter().all(|&a| a == 0.0),
            "{what}: vacuous"
        );
        for (i, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
            let err = (f64::from(a) - n).abs();
            assert!(
                err <= 2e-3 * n.abs() + 1e-4 * scale + 1e-7,
                "{ops:?} {cell:?} {what}[{i}]: {a:e} vs {n:e}"
            );
        }
    };
    let active: Vec<usize> = (offset..offset + 3 * gate_counts[cell as usize])
        .chain([head_at, head_at + 1])
        .collect();
    for p in active {
        let numeric: Vec<f64> = (0..values[p].len())
            .map(|i| {
                let at = |d: f64| {
                    let mut nudged = values.clone();
                    nudged[p][i] += d;
                    build(&nudged).loss(cell, &batch, None)
                };
                (at(eps) - at(-eps)) / (2.0 * eps)
            })
            .collect();
        compare(&format!("param {p}"), &result.param_grads[p], &numeric);
    }
    for (t, analytic) in result.hidden_grads.iter().enumerate() {
        let numeric: Vec<f64> = (0..analytic.len())
            .map(|i| {
                (oracle.loss(cell, &batch, Some((t, i, eps)))
                    - oracle.loss(cell, &batch, Some((t, i, -eps))))
                    / (2.0 * eps)
            })
            .collect();
        compare(&format!("∂L/∂h_{}", t + 1), analytic, &numeric);
    }
    // The inactive cells take no part: their gradient is exactly zero.
    for (p, grad) in result.param_grads.iter().enumerate() {
        if p < head_at && !(offset..offset + 3 * gate_counts[cell as usize]).contains(&p) {
            assert!(grad.iter().all(|&g| g == 0.0), "param {p} of another cell");
        }
    }
}

fn task_classes(spec: &TaskSpec) -> usize {
    match spec {
        TaskSpec::Copy { alphabet, .. } => *alphabet,
        _ => 2,
    }
}

#[test]
fn bptt_gradients_match_finite_differences_for_every_cell_and_task() {
    let tasks = [
        TaskSpec::Adding {
            length: 7,
            test_points: 4,
        },
        TaskSpec::Copy {
            symbols: 2,
            delay: 3,
            alphabet: 3,
            test_points: 4,
        },
        TaskSpec::DelayedXor {
            length: 6,
            test_points: 4,
        },
    ];
    for ops in [RnnOps::Fused, RnnOps::Dfdx] {
        for cell in CellKind::ALL {
            for spec in &tasks {
                check(ops, cell, spec.clone(), CarryBias::Fixed);
            }
        }
    }
}

/// The carry biases chrono sets (GRU b_z up to ln 49, LSTM b_f = −b_i) saturate the gates far
/// more than the fixed ones: the same checks there, for both gated cells.
#[test]
fn bptt_gradients_match_finite_differences_with_chrono_carry_biases() {
    let chrono = CarryBias::Chrono { t_max: 50.0 };
    let tasks = [
        TaskSpec::Adding {
            length: 7,
            test_points: 4,
        },
        TaskSpec::DelayedXor {
            length: 6,
            test_points: 4,
        },
    ];
    for ops in [RnnOps::Fused, RnnOps::Dfdx] {
        for cell in [CellKind::Gru, CellKind::Lstm] {
            for spec in &tasks {
                check(ops, cell, spec.clone(), chrono);
            }
        }
    }
}
