//! Veit's lesion experiment: remove one block at a time and evaluate the test set.

use gradlab::config::{Experiment, apply_overrides, load_preset};
use gradlab::model::Lesion;
use gradlab::model::Trainer;
use gradlab::protocol::LesionResult;
use gradlab::report::lesion_all;

fn preset(name: &str, sets: &[&str]) -> Experiment {
    let experiment = load_preset(name).expect("built-in preset");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    apply_overrides(&experiment, &sets).expect("valid overrides")
}

fn trained(experiment: Experiment, steps: u64) -> Trainer {
    let mut trainer = Trainer::new(experiment, None).expect("trainer");
    for _ in 0..steps {
        trainer.train_step(true, false);
    }
    assert!(trainer.divergence().is_none());
    trainer
}

fn mean_accuracy(lesions: &[LesionResult]) -> f64 {
    lesions
        .iter()
        .map(|l| l.test_accuracy.unwrap_or(f64::NAN))
        .sum::<f64>()
        / lesions.len() as f64
}

#[test]
fn a_lesioned_tanh_residual_block_is_the_block_with_zero_weights() {
    // φ(0) = 0 for tanh, so zeroing W_l and b_l leaves exactly the skip: the same network the
    // lesion evaluates.
    let mut trainer = trained(preset("residual-deep", &["model.depth=6"]), 30);
    let lesions = lesion_all(&mut trainer);
    assert_eq!(lesions.len(), 6);
    let intact = trainer.evaluate_test(Lesion::default());
    for block in [0, 3, 5] {
        let mut zeroed = trained(preset("residual-deep", &["model.depth=6"]), 30);
        let layer = &mut zeroed.params_mut().layers[block];
        layer.weight.copy_from(&vec![0.0; 64 * 64]);
        layer.bias.copy_from(&[0.0; 64]);
        let (loss, accuracy) = zeroed.evaluate_test(Lesion::default());
        assert!((loss - lesions[block].test_loss).abs() < 1e-5 * loss.abs().max(1.0));
        assert_eq!(accuracy, lesions[block].test_accuracy);
        assert_ne!(
            lesions[block].test_loss, intact.0,
            "the lesion removed something"
        );
    }
}

#[test]
fn a_plain_lesion_replaces_the_layer_with_the_identity() {
    let mut trainer = trained(preset("plain-shallow", &[]), 30);
    let lesions = lesion_all(&mut trainer);
    assert_eq!(lesions.len(), 4);
    let intact = trainer.evaluate_test(Lesion::default());
    assert!(lesions.iter().all(|l| l.test_loss != intact.0));
}

/// Measured, not the ensemble story in full: in our tanh MLPs (no batch norm) a single
/// missing residual block does hurt (median test loss ~0.54 → ~1.7 after 1000 steps of
/// residual-deep), but a plain net of only 8 layers loses more accuracy per lesion.
#[test]
fn plain_nets_lose_more_accuracy_per_lesion_than_residual_nets() {
    let mut residual = trained(preset("residual-deep", &[]), 1000);
    let residual_intact = residual.evaluate_test(Lesion::default());
    let residual_lesions = lesion_all(&mut residual);
    let mut plain = trained(preset("plain-shallow", &["model.depth=8"]), 1000);
    let plain_intact = plain.evaluate_test(Lesion::default());
    let plain_lesions = lesion_all(&mut plain);
    let residual_drop = residual_intact.1.unwrap_or(f64::NAN) - mean_accuracy(&residual_lesions);
    let plain_drop = plain_intact.1.unwrap_or(f64::NAN) - mean_accuracy(&plain_lesions);
    println!(
        "residual-deep (32 blocks): intact {residual_intact:?}, mean accuracy drop per lesion \
         {residual_drop:.3}; plain 8 layers: intact {plain_intact:?}, drop {plain_drop:.3}"
    );
    assert!(
        plain_drop > residual_drop,
        "{plain_drop} vs {residual_drop}"
    );
}

mod sets {
    //! Several blocks removed at once (Veit's k-block lesions), by hand.

    use crate::common::{Batch, params_for, small_model};
    use dfdx::prelude::*;
    use gradlab::config::{Activation, SkipMode};
    use gradlab::model::{BlockOps, Lesion, Switches, forward_with};
    use gradlab::report::{LESION_SUBSETS, evaluate_train, lesion_sizes, lesion_subsets};

    fn switches(skip: SkipMode) -> Switches {
        Switches {
            skip,
            aux_enabled: false,
            aux_weight: 0.3,
            norm: Default::default(),
            norm_place: Default::default(),
            branch_scale: Default::default(),
        }
    }

    #[test]
    fn removing_blocks_is_deleting_their_layers_when_the_shortcut_is_the_identity() {
        let (depth, width, dims, outputs) = (6, 8, 3, 4);
        let batch = Batch::random(11, dims, outputs, true, 5);
        for skip in [
            SkipMode::Plain,
            SkipMode::Residual { scale: 1.0 },
            SkipMode::Highway,
        ] {
            let model = small_model(depth, width, Activation::Tanh, skip, 2);
            let params = params_for(&model, dims, outputs, -1.0, 3);
            let mut cut = params.clone();
            for block in [4, 1] {
                cut.layers.remove(block);
            }
            let run = |params, lesion| {
                let (x, t) = batch.tensors(&Cpu::default());
                forward_with(
                    BlockOps::Dfdx,
                    params,
                    Activation::Tanh,
                    &switches(skip),
                    x,
                    &t,
                    lesion,
                )
                .main_loss
            };
            let lesioned = run(&params, Lesion::blocks([4, 1]));
            let shorter = run(&cut, Lesion::default());
            assert_eq!(lesioned, shorter, "{}", skip.label());
            assert_ne!(lesioned, run(&params, Lesion::default()));
        }
    }

    #[test]
    fn a_residual_net_without_any_block_is_its_scaled_input_layer_and_head() {
        // With every block removed, h_L = s^L (x W_in + b_in), so the logits are
        // s^L (x W_in + b_in) W_head + b_head, written out here in plain loops.
        let (depth, width, dims, outputs, scale) = (3, 5, 2, 3, 0.5f32);
        let skip = SkipMode::Residual { scale };
        let model = small_model(depth, width, Activation::Tanh, skip, 2);
        let params = params_for(&model, dims, outputs, -1.0, 9);
        let batch = Batch::random(4, dims, outputs, true, 2);
        let (x, t) = batch.tensors(&Cpu::default());
        let pass = forward_with(
            BlockOps::Dfdx,
            &params,
            Activation::Tanh,
            &switches(skip),
            x,
            &t,
            Lesion::blocks(0..depth),
        );
        let (w_in, b_in) = (params.input_weight.as_vec(), params.input_bias.as_vec());
        let (w_out, b_out) = (params.head_weight.as_vec(), params.head_bias.as_vec());
        let logits = pass.logits.as_vec();
        for r in 0..batch.rows {
            let h: Vec<f32> = (0..width)
                .map(|j| {
                    let z = (0..dims)
                        .map(|i| batch.x[r * dims + i] * w_in[i * width + j])
                        .sum::<f32>()
                        + b_in[j];
                    scale.powi(depth as i32) * z
                })
                .collect();
            for o in 0..outputs {
                let expected = (0..width)
                    .map(|j| h[j] * w_out[j * outputs + o])
                    .sum::<f32>()
                    + b_out[o];
                let got = logits[r * outputs + o];
                assert!(
                    (got - expected).abs() < 1e-5,
                    "row {r} output {o}: {got} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn lesion_subsets_are_fixed_distinct_and_in_range() {
        for (depth, k) in [(16, 1), (16, 4), (16, 8), (5, 5)] {
            let subsets = lesion_subsets(depth, k);
            assert_eq!(subsets, lesion_subsets(depth, k), "drawn from a fixed seed");
            assert_eq!(subsets.len(), LESION_SUBSETS);
            for blocks in &subsets {
                assert_eq!(blocks.len(), k);
                assert!(
                    blocks.windows(2).all(|w| w[0] < w[1]),
                    "ascending, distinct"
                );
                assert!(blocks.iter().all(|&b| b < depth));
            }
        }
        assert!(lesion_subsets(4, 8).is_empty());
        // Different subsets, not one subset eight times.
        let ones = lesion_subsets(16, 1);
        assert!(ones.iter().any(|b| b != &ones[0]));
    }

    #[test]
    fn a_sized_lesion_is_the_mean_over_its_subsets_on_both_splits() {
        let mut trainer = super::trained(
            super::preset("residual-deep", &["model.depth=6", "task.points=400"]),
            20,
        );
        let sized = lesion_sizes(&mut trainer, &[2, 4, 7]);
        assert_eq!(
            sized.iter().map(|s| s.k).collect::<Vec<_>>(),
            [2, 4],
            "7 > depth is left out"
        );
        for entry in &sized {
            let (mut train, mut test) = (0.0, 0.0);
            for blocks in &entry.subsets {
                // Reported numbered from 1 (L1), as single-block lesions are.
                let lesion = Lesion::blocks(blocks.iter().map(|b| b - 1));
                train += evaluate_train(&trainer, &lesion).1.expect("classification");
                test += trainer.evaluate_test(lesion).1.expect("classification");
            }
            let n = entry.subsets.len() as f64;
            assert!((entry.train_accuracy.expect("train") - train / n).abs() < 1e-12);
            assert!((entry.test_accuracy.expect("test") - test / n).abs() < 1e-12);
        }
    }
}
