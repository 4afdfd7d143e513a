//! The fused layer op against dfdx's own ops: same outputs, same gradients, every mode and
//! activation, on a net big enough to exercise gemm's blocked paths.

use crate::common::{Batch, grads_by_param, params_for, small_model};
use dfdx::prelude::*;
use gradlab::config::{Activation, SkipMode};
use gradlab::model::{BlockOps, Lesion, MlpParams, Switches, forward_with};

fn run(
    ops: BlockOps,
    params: &mut MlpParams,
    act: Activation,
    switches: &Switches,
    batch: &Batch,
) -> (f32, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let dev = Cpu::default();
    let (x, targets) = batch.tensors(&dev);
    let pass = forward_with(
        ops,
        params,
        act,
        switches,
        x.leaky_traced(),
        &targets,
        Lesion::default(),
    );
    let loss = pass.total_loss.retaped::<NoneTape>().array();
    let hidden = pass.hidden;
    let mut grads = pass.total_loss.backward();
    let hidden_grads = gradlab::model::backprop::grads_of(&mut grads, &hidden);
    let param_grads = grads_by_param(params.params_mut(), &mut grads);
    (loss, param_grads, hidden_grads)
}

fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    let scale = b.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let err = f64::from(x - y).abs();
        assert!(
            err <= 1e-4 * scale + 1e-4 * f64::from(y.abs()) + 1e-9,
            "{what}[{i}]: fused {x:e} vs dfdx {y:e}"
        );
    }
}

#[test]
fn the_fused_block_matches_dfdx_ops_in_every_mode() {
    let skips = [
        SkipMode::Plain,
        SkipMode::Residual { scale: 1.0 },
        SkipMode::Residual { scale: 0.5 },
        SkipMode::Highway,
        SkipMode::Dense,
    ];
    for act in Activation::ALL {
        for skip in skips {
            let model = small_model(6, 48, act, skip, 2);
            let mut params = params_for(&model, 3, 4, -1.0, 9);
            let batch = Batch::random(37, 3, 4, true, 4);
            let switches = Switches {
                skip,
                aux_enabled: true,
                aux_weight: 0.3,
                norm: Default::default(),
                norm_place: Default::default(),
                branch_scale: Default::default(),
            };
            let fused = run(BlockOps::Fused, &mut params, act, &switches, &batch);
            let reference = run(BlockOps::Dfdx, &mut params, act, &switches, &batch);
            let label = format!("{act:?}/{}", skip.label());
            assert!(
                (fused.0 - reference.0).abs() <= 1e-5 * reference.0.abs().max(1.0),
                "{label}: loss {} vs {}",
                fused.0,
                reference.0
            );
            for (p, (a, b)) in fused.1.iter().zip(&reference.1).enumerate() {
                assert_close(&format!("{label} param {p}"), a, b);
            }
            for (l, (a, b)) in fused.2.iter().zip(&reference.2).enumerate() {
                assert_close(&format!("{label} ∂L/∂h_{l}"), a, b);
            }
        }
    }
}
