//! The fused recurrence against the unroll built from dfdx's own ops: same loss, outputs, gate
//! means, ∂L/∂θ and ∂L/∂h_t, for every cell and task, on shapes big enough for gemm's blocked
//! paths; the untaped (evaluation) pass, which keeps no traces, agrees bit for bit with the
//! taped one; and buffers reused across steps change nothing.

use crate::common::{grads_by_param, rnn_model};
use dfdx::prelude::*;
use gradlab::config::{CellKind, TaskSpec};
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
    Run {
        loss,
        outputs,
        gate_means,
        param_grads,
        hidden_grads,
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
    let task = SeqTask::new(spec, 1).expect("task");
    let batch = task.sample(rows, &mut StdRng::seed_from_u64(2));
    let outputs = match (&batch.targets, spec) {
        (SeqTargets::FinalValue(_), _) => 1,
        (_, TaskSpec::Copy { alphabet, .. }) => *alphabet,
        _ => 2,
    };
    let model = rnn_model(cell, hidden, 1.2);
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
    let gate_counts = [1usize, 3, 4];
    for cell in CellKind::ALL {
        for spec in tasks() {
            let (mut params, batch) = setup(cell, &spec, 40, 37);
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
