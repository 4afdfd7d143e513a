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
