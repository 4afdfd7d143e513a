//! The fused recurrence against the unroll built from dfdx's own ops: same loss, outputs, gate
//! means, ∂L/∂θ and ∂L/∂h_t, for every cell and task, on shapes big enough for gemm's blocked
//! paths; the untaped (evaluation) pass, which keeps no traces, agrees bit for bit with the
//! taped one; buffers reused across steps change nothing; the sharded batch gives the same
//! bits on every run and thread count, and the unsharded numbers to rounding; and the norms
//! the backward pass measures match an f64 reverse pass far below f32's range.

use crate::common::{grads_by_param, rnn_model};
use dfdx::prelude::*;
use gradlab::config::{CarryBias, CellKind, TaskSpec};
use gradlab::rnn::workspace::Workspace;
use gradlab::rnn::{RnnOps, RnnParams, init_rnn_params, unroll_with};
use gradlab::tasks::sequence::{SeqBatch, SeqTargets, SeqTask};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Everything one unroll produces, as plain numbers.
#[derive(Debug, PartialEq)]
struct Run {
    loss: f32,
    outputs: Vec<Vec<f32>>,
    gate_means: Vec<f64>,
    param_grads: Vec<Vec<f32>>,
    hidden_grads: Vec<Vec<f32>>,
    /// log₂ ‖∂L/∂h_t‖ as the fused backward pass measured it (empty for dfdx's ops).
    grad_log2: Vec<f64>,
}

fn run(
    ops: RnnOps,
    workspace: &Workspace,
    params: &mut RnnParams,
    cell: CellKind,
    batch: &SeqBatch,
) -> Run {
    let dev = Cpu::default();
    let hidden = params.head_weight.shape().0;
    let h0: Tensor<(usize, usize), f32, Cpu> = dev.zeros_like(&(batch.rows, hidden));
    let pass = unroll_with(ops, workspace, params, cell, &dev, batch, h0.leaky_traced());
    let loss = pass.loss.retaped::<NoneTape>().array();
    let outputs = pass.outputs.iter().map(|o| o.as_vec()).collect();
    let gate_means = pass.gate_means.clone();
    let hidden_states = pass.hidden;
    let mut grads = pass.loss.backward();
    let hidden_grads = gradlab::model::backprop::grads_of(&mut grads, &hidden_states);
    let param_grads = grads_by_param(params.params_mut(), &mut grads);
    let mut grad_log2 = Vec::new();
    if ops == RnnOps::Fused {
        workspace.hidden_grad_log2(&mut grad_log2);
    }
    Run {
        loss,
        outputs,
        gate_means,
        param_grads,
        hidden_grads,
        grad_log2,
    }
}

/// Loss, outputs and gate means of the untaped pass (what test-set evaluation runs).
fn evaluate(
    workspace: &Workspace,
    params: &RnnParams,
    cell: CellKind,
    batch: &SeqBatch,
) -> (f32, Vec<Vec<f32>>, Vec<f64>) {
    let dev = Cpu::default();
    let hidden = params.head_weight.shape().0;
    let h0: Tensor<(usize, usize), f32, Cpu> = dev.zeros_like(&(batch.rows, hidden));
    let pass = unroll_with(RnnOps::Fused, workspace, params, cell, &dev, batch, h0);
    let outputs = pass.outputs.iter().map(|o| o.as_vec()).collect();
    (pass.loss.array(), outputs, pass.gate_means)
}

fn setup(cell: CellKind, spec: &TaskSpec, hidden: usize, rows: usize) -> (RnnParams, SeqBatch) {
    setup_with(cell, spec, hidden, rows, CarryBias::Fixed)
}

fn setup_with(
    cell: CellKind,
    spec: &TaskSpec,
    hidden: usize,
    rows: usize,
    carry_bias: CarryBias,
) -> (RnnParams, SeqBatch) {
    let task = SeqTask::new(spec, 1).expect("task");
    let batch = task.sample(rows, &mut StdRng::seed_from_u64(2));
    let outputs = match (&batch.targets, spec) {
        (SeqTargets::FinalValue(_), _) => 1,
        (_, TaskSpec::Copy { alphabet, .. }) => *alphabet,
        _ => 2,
    };
    let mut model = rnn_model(cell, hidden, 1.2);
    model.carry_bias = carry_bias;
    let dev = Cpu::default();
    let params = init_rnn_params(
        &dev,
        &model,
        task.input_dims,
        outputs,
        &mut StdRng::seed_from_u64(3),
    );
    (params, batch)
}

fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
    assert!(scale > 0.0, "{what}: the reference is all zeros");
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let err = f64::from(x - y).abs();
        assert!(
            err <= 1e-4 * scale + 1e-4 * f64::from(y.abs()) + 1e-9,
            "{what}[{i}]: fused {x:e} vs dfdx {y:e}"
        );
    }
}

fn tasks() -> [TaskSpec; 3] {
    [
        TaskSpec::Adding {
            length: 12,
            test_points: 4,
        },
        TaskSpec::Copy {
            symbols: 3,
            delay: 4,
            alphabet: 5,
            test_points: 4,
        },
        TaskSpec::DelayedXor {
            length: 9,
            test_points: 4,
        },
    ]
}

#[test]
fn the_fused_recurrence_matches_dfdx_ops_for_every_cell_and_task() {
    fused_matches_dfdx(&CellKind::ALL, CarryBias::Fixed);
}

#[test]
fn the_fused_recurrence_matches_dfdx_ops_with_chrono_carry_biases() {
    fused_matches_dfdx(
        &[CellKind::Gru, CellKind::Lstm],
        CarryBias::Chrono { t_max: 50.0 },
    );
}

fn fused_matches_dfdx(cells: &[CellKind], carry_bias: CarryBias) {
    let gate_counts = [1usize, 3, 4];
    for &cell in cells {
        for spec in tasks() {
            let (mut params, batch) = setup_with(cell, &spec, 40, 37, carry_bias);
            let workspace = Workspace::default();
            let fused = run(RnnOps::Fused, &workspace, &mut params, cell, &batch);
            let reference = run(RnnOps::Dfdx, &workspace, &mut params, cell, &batch);
            let label = format!("{cell:?}/{spec:?}");
            assert!(
                (fused.loss - reference.loss).abs() <= 1e-5 * reference.loss.abs().max(1.0),
                "{label}: loss {} vs {}",
                fused.loss,
                reference.loss
            );
            assert_eq!(fused.outputs.len(), reference.outputs.len());
            for (k, (a, b)) in fused.outputs.iter().zip(&reference.outputs).enumerate() {
                assert_close(&format!("{label} output {k}"), a, b);
            }
            assert_eq!(fused.gate_means.len(), reference.gate_means.len());
            assert_eq!(fused.gate_means.is_empty(), cell == CellKind::Vanilla);
            for (t, (a, b)) in fused
                .gate_means
                .iter()
                .zip(&reference.gate_means)
                .enumerate()
            {
                assert!((a - b).abs() < 1e-6, "{label} gate mean at {t}: {a} vs {b}");
            }
            // Only the active cell's parameters and the head take part.
            let first: usize = gate_counts[..cell as usize].iter().sum::<usize>() * 3;
            let active = first..first + 3 * gate_counts[cell as usize];
            let head = gate_counts.iter().sum::<usize>() * 3;
            for (p, (a, b)) in fused
                .param_grads
                .iter()
                .zip(&reference.param_grads)
                .enumerate()
            {
                if active.contains(&p) || p >= head {
                    assert_close(&format!("{label} param {p}"), a, b);
                } else {
                    assert!(
                        a.iter().all(|&g| g == 0.0),
                        "{label} param {p} of another cell"
                    );
                }
            }
            let untaped = evaluate(&workspace, &params, cell, &batch);
            assert_eq!(
                untaped,
                (fused.loss, fused.outputs.clone(), fused.gate_means.clone()),
                "{label}: the untaped pass"
            );
            assert_eq!(fused.hidden_grads.len(), batch.steps);
            for (t, (a, b)) in fused
                .hidden_grads
                .iter()
                .zip(&reference.hidden_grads)
                .enumerate()
            {
                assert_close(&format!("{label} ∂L/∂h_{}", t + 1), a, b);
            }
            // The norms measured inside the backward pass are those of the totals on the tape.
            assert_eq!(fused.grad_log2.len(), batch.steps);
            for (t, (log2, total)) in fused.grad_log2.iter().zip(&fused.hidden_grads).enumerate() {
                let norm = total
                    .iter()
                    .map(|&v| f64::from(v).powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!(
                    (log2.exp2() - norm).abs() <= 1e-6 * norm,
                    "{label} ‖∂L/∂h_{}‖: measured 2^{log2} vs {norm:e}",
                    t + 1
                );
            }
        }
    }
}

#[test]
fn reused_buffers_give_bit_identical_results_across_cells_and_shapes() {
    let workspace = Workspace::default();
    let mut fresh = Vec::new();
    let mut cases = Vec::new();
    for cell in CellKind::ALL {
        for (spec, hidden, rows) in [(tasks()[0].clone(), 24, 9), (tasks()[1].clone(), 40, 5)] {
            let (mut params, batch) = setup(cell, &spec, hidden, rows);
            fresh.push(run(
                RnnOps::Fused,
                &Workspace::default(),
                &mut params,
                cell,
                &batch,
            ));
            cases.push((cell, params, batch));
        }
    }
    // Twice round, so every case runs on buffers another cell or shape left behind.
    for _ in 0..2 {
        for ((cell, params, batch), expected) in cases.iter_mut().zip(&fresh) {
            let again = run(RnnOps::Fused, &workspace, params, *cell, batch);
            assert_eq!(&again, expected, "{cell:?} on reused buffers");
        }
    }
}

#[test]
fn sharded_steps_are_bit_identical_across_runs_and_threads_and_round_to_the_unsharded_one() {
    for cell in CellKind::ALL {
        for spec in tasks() {
            let (mut params, batch) = setup(cell, &spec, 40, 37);
            let label = format!("{cell:?}/{spec:?}");
            let whole = run(
                RnnOps::Fused,
                &Workspace::with_shards(1),
                &mut params,
                cell,
                &batch,
            );
            for shards in [2, 3] {
                let mut one_thread = Workspace::with_shards(shards);
                one_thread.set_threads(1);
                let serial = run(RnnOps::Fused, &one_thread, &mut params, cell, &batch);
                for _ in 0..2 {
                    let side_by_side = run(
                        RnnOps::Fused,
                        &Workspace::with_shards(shards),
                        &mut params,
                        cell,
                        &batch,
                    );
                    assert_eq!(
                        side_by_side, serial,
                        "{label}: {shards} shards, 2 threads vs 1"
                    );
                }
                assert!((serial.loss - whole.loss).abs() <= 1e-6 * whole.loss.abs().max(1.0));
                for (k, (a, b)) in serial.outputs.iter().zip(&whole.outputs).enumerate() {
                    assert_close(&format!("{label} {shards} shards output {k}"), a, b);
                }
                for (t, (a, b)) in serial.gate_means.iter().zip(&whole.gate_means).enumerate() {
                    assert!((a - b).abs() < 1e-9, "{label} gate mean at {t}: {a} vs {b}");
                }
                for (p, (a, b)) in serial
                    .param_grads
                    .iter()
                    .zip(&whole.param_grads)
                    .enumerate()
                {
                    if b.iter().any(|&v| v != 0.0) {
                        assert_close(&format!("{label} {shards} shards param {p}"), a, b);
                    } else {
                        assert!(a.iter().all(|&v| v == 0.0), "{label} param {p}");
                    }
                }
                for (t, (a, b)) in serial
                    .hidden_grads
                    .iter()
                    .zip(&whole.hidden_grads)
                    .enumerate()
                {
                    assert_close(&format!("{label} {shards} shards ∂L/∂h_{}", t + 1), a, b);
                }
                for (t, (a, b)) in serial.grad_log2.iter().zip(&whole.grad_log2).enumerate() {
                    assert!(
                        (a - b).abs() < 1e-5,
                        "{label} log₂ norm at {}: {a} vs {b}",
                        t + 1
                    );
                }
            }
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// ‖∂L/∂h_t‖ for t = 1..T by reverse mode in f64 (its own forward pass, from the f32
/// parameters), for a final-value task's MSE: the independent oracle for the rescaled norms.
fn oracle_norms(params: &mut RnnParams, cell: CellKind, batch: &SeqBatch) -> Vec<f64> {
    let values: Vec<Vec<f64>> = params
        .params_mut()
        .into_iter()
        .map(|(_, p)| {
            let mut v = vec![0.0f32; p.len()];
            p.copy_into(&mut v);
            v.into_iter().map(f64::from).collect()
        })
        .collect();
    let gate_counts = [1usize, 3, 4];
    let offset = gate_counts[..cell as usize].iter().sum::<usize>() * 3;
    let head = &values[gate_counts.iter().sum::<usize>() * 3];
    let head_bias = values[gate_counts.iter().sum::<usize>() * 3 + 1][0];
    let hidden = head.len();
    let inputs = batch.input_dims;
    let SeqTargets::FinalValue(targets) = &batch.targets else {
        panic!("the oracle scores a final value");
    };
    let pre = |g: usize, x: &[f64], h: &[f64]| -> Vec<f64> {
        let (w, u, b) = (
            &values[offset + 3 * g],
            &values[offset + 3 * g + 1],
            &values[offset + 3 * g + 2],
        );
        (0..hidden)
            .map(|j| {
                b[j] + (0..inputs).map(|i| x[i] * w[i * hidden + j]).sum::<f64>()
                    + (0..hidden).map(|i| h[i] * u[i * hidden + j]).sum::<f64>()
            })
            .collect()
    };
    // dst += U_g · d (the gradient w.r.t. the gate's recurrent input).
    let back = |g: usize, d: &[f64], dst: &mut [f64]| {
        let u = &values[offset + 3 * g + 1];
        for (i, out) in dst.iter_mut().enumerate() {
            *out += (0..hidden).map(|j| u[i * hidden + j] * d[j]).sum::<f64>();
        }
    };
    let map = |a: &[f64], f: &dyn Fn(f64) -> f64| a.iter().map(|&v| f(v)).collect::<Vec<f64>>();
    let mut norms = vec![0.0f64; batch.steps];
    for (r, &target) in targets.iter().enumerate().take(batch.rows) {
        // Forward, keeping (h_prev, c_prev, gate activations) of every step.
        let mut h = vec![0.0; hidden];
        let mut c = vec![0.0; hidden];
        let mut trace = Vec::new();
        for t in 0..batch.steps {
            let x: Vec<f64> = batch.step_inputs(t)[r * inputs..(r + 1) * inputs]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let (acts, next_h, next_c) = match cell {
                CellKind::Vanilla => {
                    let a = map(&pre(0, &x, &h), &f64::tanh);
                    (vec![a.clone()], a, c.clone())
                }
                CellKind::Gru => {
                    let rg = map(&pre(0, &x, &h), &sigmoid);
                    let z = map(&pre(1, &x, &h), &sigmoid);
                    let rh: Vec<f64> = rg.iter().zip(&h).map(|(a, b)| a * b).collect();
                    let n = map(&pre(2, &x, &rh), &f64::tanh);
                    let next = (0..hidden).map(|j| n[j] + z[j] * (h[j] - n[j])).collect();
                    (vec![rg, z, n], next, c.clone())
                }
                CellKind::Lstm => {
                    let i = map(&pre(0, &x, &h), &sigmoid);
                    let f = map(&pre(1, &x, &h), &sigmoid);
                    let g = map(&pre(2, &x, &h), &f64::tanh);
                    let o = map(&pre(3, &x, &h), &sigmoid);
                    let next_c: Vec<f64> = (0..hidden).map(|j| f[j] * c[j] + i[j] * g[j]).collect();
                    let next_h = (0..hidden).map(|j| o[j] * next_c[j].tanh()).collect();
                    (vec![i, f, g, o], next_h, next_c)
                }
            };
            trace.push((h.clone(), c.clone(), acts, next_h.clone(), next_c.clone()));
            h = next_h;
            c = next_c;
        }
        let out = head_bias + (0..hidden).map(|j| h[j] * head[j]).sum::<f64>();
        let dout = 2.0 * (out - f64::from(target)) / batch.rows as f64;
        let mut dh: Vec<f64> = head.iter().map(|w| dout * w).collect();
        let mut dc = vec![0.0; hidden];
        for t in (0..batch.steps).rev() {
            norms[t] += dh.iter().map(|v| v * v).sum::<f64>();
            let (h_prev, c_prev, acts, h_t, c_t) = &trace[t];
            let mut dh_prev = vec![0.0; hidden];
            match cell {
                CellKind::Vanilla => {
                    let da: Vec<f64> = (0..hidden)
                        .map(|j| dh[j] * (1.0 - h_t[j] * h_t[j]))
                        .collect();
                    back(0, &da, &mut dh_prev);
                }
                CellKind::Gru => {
                    let (rg, z, n) = (&acts[0], &acts[1], &acts[2]);
                    let dan: Vec<f64> = (0..hidden)
                        .map(|j| dh[j] * (1.0 - z[j]) * (1.0 - n[j] * n[j]))
                        .collect();
                    let daz: Vec<f64> = (0..hidden)
                        .map(|j| dh[j] * (h_prev[j] - n[j]) * z[j] * (1.0 - z[j]))
                        .collect();
                    let mut drh = vec![0.0; hidden];
                    back(2, &dan, &mut drh);
                    let dar: Vec<f64> = (0..hidden)
                        .map(|j| drh[j] * h_prev[j] * rg[j] * (1.0 - rg[j]))
                        .collect();
                    for j in 0..hidden {
                        dh_prev[j] = dh[j] * z[j] + drh[j] * rg[j];
                    }
                    back(0, &dar, &mut dh_prev);
                    back(1, &daz, &mut dh_prev);
                }
                CellKind::Lstm => {
                    let (i, f, g, o) = (&acts[0], &acts[1], &acts[2], &acts[3]);
                    let tc = map(c_t, &f64::tanh);
                    for j in 0..hidden {
                        dc[j] += dh[j] * o[j] * (1.0 - tc[j] * tc[j]);
                    }
                    let dai: Vec<f64> = (0..hidden)
                        .map(|j| dc[j] * g[j] * i[j] * (1.0 - i[j]))
                        .collect();
                    let daf: Vec<f64> = (0..hidden)
                        .map(|j| dc[j] * c_prev[j] * f[j] * (1.0 - f[j]))
                        .collect();
                    let dag: Vec<f64> = (0..hidden)
                        .map(|j| dc[j] * i[j] * (1.0 - g[j] * g[j]))
                        .collect();
                    let dao: Vec<f64> = (0..hidden)
                        .map(|j| dh[j] * tc[j] * o[j] * (1.0 - o[j]))
                        .collect();
                    for (gate, d) in [dai, daf, dag, dao].iter().enumerate() {
                        back(gate, d, &mut dh_prev);
                    }
                    for j in 0..hidden {
                        dc[j] *= f[j];
                    }
                }
            }
            dh = dh_prev;
        }
    }
    norms.iter().map(|v| v.sqrt()).collect()
}

#[test]
fn vanishing_gradients_keep_exact_norms_far_below_f32_for_every_cell() {
    // Per cell: sequence length, recurrent weight variance, LSTM forget bias. Each fades the
    // gradient to well below f32's smallest subnormal (1.4e-45) but not below f64's range.
    let settings = [
        (CellKind::Vanilla, 120, 1e-2, 1.0),
        (CellKind::Gru, 500, 1e-2, 1.0),
        (CellKind::Lstm, 120, 1e-2, -3.0),
    ];
    for (cell, length, weight_var, forget_bias) in settings {
        let spec = TaskSpec::Adding {
            length,
            test_points: 4,
        };
        let task = SeqTask::new(&spec, 1).expect("task");
        let batch = task.sample(6, &mut StdRng::seed_from_u64(2));
        let mut model = rnn_model(cell, 8, weight_var);
        model.forget_bias = forget_bias;
        let dev = Cpu::default();
        let mut params = init_rnn_params(
            &dev,
            &model,
            task.input_dims,
            1,
            &mut StdRng::seed_from_u64(3),
        );
        let expected = oracle_norms(&mut params, cell, &batch);
        let smallest = expected.iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(
            smallest < 1e-50 && smallest > 0.0,
            "{cell:?}: the setting must fade below f32 (smallest {smallest:e})"
        );
        for shards in [1, 2] {
            let workspace = Workspace::with_shards(shards);
            let fused = run(RnnOps::Fused, &workspace, &mut params, cell, &batch);
            assert_eq!(fused.grad_log2.len(), length);
            for (t, (&got, &want)) in fused.grad_log2.iter().zip(&expected).enumerate() {
                assert!(
                    (got - want.log2()).abs() < 1e-2,
                    "{cell:?} {shards} shard(s) t = {}: log₂ ‖∂L/∂h_t‖ {got} vs {}",
                    t + 1,
                    want.log2()
                );
            }
        }
    }
}
