//! The live analyses a run sends besides its snapshots: path statistics and gradient sources
//! on the `path_every` cadence, the Jacobian spectrum and forward signal on their own (each
//! at once after a rewiring switch too), and lesions on request.

use crate::analysis::{analyse_trainer, live_jacobian_inputs};
use crate::learner::Learner;
use crate::protocol::Event;
use crate::report::{layer_sources, lesion_all, path_stats};

/// Training rows the live path statistics run on: fewer than `gradlab run --json` uses, so
/// they stay cheap enough to compute every `path_every` steps.
pub const LIVE_PATH_ROWS: usize = 8;
/// Random paths per length for the live estimate of Veit's profile. The same paths are drawn
/// at every refresh of a run and the panel shows the estimate's standard error; the exact
/// split beside it is not sampled.
pub const LIVE_PATH_SAMPLES: usize = 4;

/// Steps between two live Jacobian spectra and forward signals: each costs one f64 Jacobian
/// product and SVD per input (`analysis::live_jacobian_inputs` of them), more than path
/// statistics.
pub const LIVE_SPECTRUM_EVERY: u64 = 250;

/// The live analyses due before the next step: on the experiment's `path_every` cadence, an
/// MLP's path statistics and (dense or auxiliary nets) its gradient sources; every
/// `LIVE_SPECTRUM_EVERY` steps its Jacobian spectrum and forward signal.
pub fn live_analyses(trainer: &mut dyn Learner) -> Vec<Event> {
    let every = trainer.experiment().path_every.max(1) as u64;
    let step = trainer.step();
    let mut events = if step.is_multiple_of(every) {
        path_analyses(trainer)
    } else {
        Vec::new()
    };
    if step.is_multiple_of(LIVE_SPECTRUM_EVERY) {
        events.extend(spectrum_analysis(trainer));
    }
    events
}

/// Every live analysis of the network as it is now, whatever the cadence: sent right after a
/// switch changes so the panels never show the old wiring.
pub fn analyses_now(trainer: &mut dyn Learner) -> Vec<Event> {
    let mut events = path_analyses(trainer);
    events.extend(spectrum_analysis(trainer));
    events
}

/// An MLP's Jacobian spectrum and forward signal on its first training rows (nothing for a
/// recurrent or diverged net).
pub fn spectrum_analysis(trainer: &mut dyn Learner) -> Option<Event> {
    let step = trainer.step();
    if trainer.divergence().is_some() {
        return None;
    }
    let mlp = trainer.as_mlp()?;
    let inputs = live_jacobian_inputs(mlp.experiment().model.width);
    let analysis = analyse_trainer(mlp, inputs)?;
    Some(Event::Spectrum {
        step,
        jacobian: Box::new(analysis.jacobian),
        forward: Box::new(analysis.forward),
    })
}

/// The path statistics and gradient sources of the network as it is now.
fn path_analyses(trainer: &mut dyn Learner) -> Vec<Event> {
    let step = trainer.step();
    if trainer.divergence().is_some() {
        return Vec::new();
    }
    // The run's seed alone, not the step: every refresh draws the same paths (common random
    // numbers), so the profile moves between refreshes only when the network does. A new
    // draw per refresh made the peak jump by several lengths from sampling noise alone.
    let seed = trainer.experiment().seed;
    let Some(mlp) = trainer.as_mlp() else {
        return Vec::new();
    };
    let mut events = Vec::new();
    // A net that has gone non-finite has no meaningful decomposition; the divergence event
    // says what happened.
    if let Some(stats) = path_stats(mlp, LIVE_PATH_ROWS, LIVE_PATH_SAMPLES, seed).filter(|s| {
        s.by_length
            .iter()
            .all(|l| l.contribution.is_finite() && l.grad_per_path.is_finite())
            && s.exact_by_length.iter().all(|l| l.share.is_finite())
    }) {
        events.push(Event::Paths {
            step,
            stats: Box::new(stats),
        });
    }
    if let Some(layers) = layer_sources(mlp, LIVE_PATH_ROWS).filter(|layers| {
        layers.iter().all(|l| {
            l.total.is_finite()
                && l.main.is_finite()
                && l.readouts.iter().chain(&l.aux).all(|v| v.is_finite())
        })
    }) {
        events.push(Event::Sources { step, layers });
    }
    events
}

/// The answer to `Command::Lesion` for `trainer` at `step`.
pub fn lesion_event(trainer: Option<&mut dyn Learner>, step: u64) -> Event {
    match trainer.and_then(|t| t.as_mlp()) {
        Some(mlp) => Event::Lesion {
            step,
            intact_test_loss: mlp.evaluate_test(crate::model::Lesion::default()).0,
            results: lesion_all(mlp),
        },
        None => Event::error("lesions need an MLP (this is a recurrent net)"),
    }
}
