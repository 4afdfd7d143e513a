//! The split of ∂L/∂h_l by source (main head, dense read-outs, auxiliary heads) is exact: the
//! sources add up to the gradient dfdx computes for the whole objective.

use crate::common::{Batch, params_for, small_model};
use dfdx::prelude::Cpu;
use gradlab::config::{Activation, SkipMode};
use gradlab::model::{Switches, backprop};
use gradlab::sources::{source_gradients, summarise_sources};

fn check(skip: SkipMode, aux: bool) {
    let model = small_model(6, 8, Activation::Tanh, skip, 2);
    let mut params = params_for(&model, 3, 3, -1.0, 21);
    let batch = Batch::random(7, 3, 3, true, 8);
    let switches = Switches {
        skip,
        aux_enabled: aux,
        aux_weight: 0.3,
        norm: Default::default(),
        norm_place: Default::default(),
        branch_scale: Default::default(),
    };
    let dev = Cpu::default();
    let (x, targets) = batch.tensors(&dev);
    let sources =
        source_gradients(&params, Activation::Tanh, &switches, &x, &targets).expect("sources");
    let (x, targets) = batch.tensors(&dev);
    let truth = backprop(&mut params, Activation::Tanh, &switches, x, &targets);
    let label = format!("{}/aux={aux}", skip.label());
    assert_eq!(
        sources.readouts.len(),
        if skip == SkipMode::Dense { 5 } else { 0 },
        "{label}"
    );
    assert_eq!(sources.aux.len(), if aux { 2 } else { 0 }, "{label}");
    for (l, expected) in truth.hidden_grads.iter().enumerate() {
        let mut sum = sources.main[l].clone();
        for g in sources.readouts.iter().chain(&sources.aux) {
            sum.iter_mut().zip(&g[l]).for_each(|(s, v)| *s += v);
        }
        let scale = expected
            .iter()
            .map(|v| f64::from(*v).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(scale > 0.0, "{label}: layer {l} has a gradient");
        for (i, (&s, &e)) in sum.iter().zip(expected).enumerate() {
            assert!(
                (s - f64::from(e)).abs() <= 1e-4 * scale + 1e-9,
                "{label} layer {l}[{i}]: sources {s:e} vs dfdx {e:e}"
            );
        }
    }
    let summary = summarise_sources(&sources);
    assert_eq!(summary.len(), 6);
    if aux {
        // Head 0 reads layer 1: it adds nothing above it and something below.
        assert_eq!(summary[4].aux[0], 0.0);
        assert!(summary[0].aux[0] > 0.0);
    }
    if skip == SkipMode::Dense {
        // Read-out 3 reaches layers 0..=3 only.
        assert_eq!(summary[4].readouts[3], 0.0);
        assert!(summary[3].readouts[3] > 0.0 && summary[0].readouts[3] > 0.0);
    }
}

#[test]
fn the_sources_add_up_to_the_whole_gradient_in_every_mode() {
    for skip in [
        SkipMode::Plain,
        SkipMode::Residual { scale: 1.0 },
        SkipMode::Highway,
        SkipMode::Dense,
    ] {
        for aux in [false, true] {
            check(skip, aux);
        }
    }
}
