//! The live analyses a run sends besides its snapshots: path statistics and gradient sources
//! on the `path_every` cadence, the Jacobian spectrum and forward signal on their own (each
//! at once after a rewiring switch too), and lesions on request.

use crate::analysis::{analyse_trainer, live_jacobian_inputs};
use crate::learner::Learner;
use crate::protocol::Event;
use crate::report::{layer_sources, lesion_all, path_stats};
use std::time::{Duration, Instant};

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

/// Most of a live lane's training time each kind of live analysis (path statistics with
/// sources; spectrum with forward signal) may take on the dashboard. The dashboard may cost
/// training at most 5 %: two kinds at 1 %, the interface's prediction at its own share (the
/// interface sets it; the trainer does not depend on the interface) and the drawing leave a
/// margin for the scheduling a shared machine adds.
pub const LIVE_ANALYSIS_SHARE: f64 = 0.01;

/// How a lane paces its live analyses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pacing {
    /// Exactly on their step cadence: a headless recording has its analyses at the same
    /// steps on every machine.
    #[default]
    Cadence,
    /// On their step cadence, but each kind only while it has taken at most
    /// [`LIVE_ANALYSIS_SHARE`] of the time the lane spent training (the dashboard: on a
    /// slow net a spectrum refreshes every few thousand steps rather than halve training).
    Budget,
}

/// The time a lane spent training and on each kind of live analysis since its run started.
#[derive(Clone, Debug, Default)]
pub struct AnalysisClock {
    pacing: Pacing,
    training: Duration,
    paths: Duration,
    spectrum: Duration,
}

impl AnalysisClock {
    /// A clock for a run just started, pacing as `pacing` says.
    pub fn new(pacing: Pacing) -> Self {
        Self {
            pacing,
            ..Self::default()
        }
    }

    /// How this clock paces.
    pub fn pacing(&self) -> Pacing {
        self.pacing
    }

    /// Counts `time` spent in a training step.
    pub fn trained(&mut self, time: Duration) {
        self.training += time;
    }

    /// Whether an analysis kind that has taken `spent` so far may run now.
    fn allows(&self, spent: Duration) -> bool {
        match self.pacing {
            Pacing::Cadence => true,
            Pacing::Budget => {
                spent.as_secs_f64() <= LIVE_ANALYSIS_SHARE * self.training.as_secs_f64()
            }
        }
    }

    /// The share of the training time the analyses have taken (0 before any training).
    pub fn share(&self) -> f64 {
        let training = self.training.as_secs_f64();
        if training > 0.0 {
            (self.paths + self.spectrum).as_secs_f64() / training
        } else {
            0.0
        }
    }
}

/// Runs `analysis` and adds the time it took to `spent`.
fn timed<T>(spent: &mut Duration, analysis: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = analysis();
    *spent += start.elapsed();
    out
}

/// The live analyses due before the next step: on the experiment's `path_every` cadence, an
/// MLP's path statistics and (dense or auxiliary nets) its gradient sources; every
/// `LIVE_SPECTRUM_EVERY` steps its Jacobian spectrum and forward signal; each only while
/// `clock` allows it.
pub fn live_analyses(trainer: &mut dyn Learner, clock: &mut AnalysisClock) -> Vec<Event> {
    let every = trainer.experiment().path_every.max(1) as u64;
    let step = trainer.step();
    let mut events = Vec::new();
    if step.is_multiple_of(every) && clock.allows(clock.paths) {
        events = timed(&mut clock.paths, || path_analyses(trainer));
    }
    if step.is_multiple_of(LIVE_SPECTRUM_EVERY) && clock.allows(clock.spectrum) {
        events.extend(timed(&mut clock.spectrum, || spectrum_analysis(trainer)));
    }
    events
}

/// Every live analysis of the network as it is now, whatever the cadence: sent right after a
/// switch changes so the panels never show the old wiring. Their time counts against
/// `clock`, so the scheduled ones wait after a burst of switches.
pub fn analyses_now(trainer: &mut dyn Learner, clock: &mut AnalysisClock) -> Vec<Event> {
    let mut events = timed(&mut clock.paths, || path_analyses(trainer));
    events.extend(timed(&mut clock.spectrum, || spectrum_analysis(trainer)));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_budgeted_clock_allows_the_first_analysis_then_waits_for_its_share_of_training() {
        let mut clock = AnalysisClock::new(Pacing::Budget);
        assert!(clock.allows(clock.paths), "step 0 is always analysed");
        clock.paths += ms(100);
        assert!(!clock.allows(clock.paths), "nothing trained yet");
        // 150 ms of analysis needs 150 / 0.01 = 15 s of training.
        clock.paths += ms(50);
        clock.trained(ms(14_900));
        assert!(!clock.allows(clock.paths));
        clock.trained(ms(100));
        assert!(clock.allows(clock.paths));
        assert!((clock.share() - LIVE_ANALYSIS_SHARE).abs() < 1e-12);
        // Each kind has its own budget: the spectrum has spent nothing.
        clock.paths += ms(1_000);
        assert!(clock.allows(clock.spectrum));
        assert!(!clock.allows(clock.paths));
    }

    #[test]
    fn a_cadence_clock_allows_every_analysis_on_its_steps() {
        let mut clock = AnalysisClock::new(Pacing::Cadence);
        clock.paths += ms(10_000);
        assert!(clock.allows(clock.paths));
        assert_eq!(clock.pacing(), Pacing::Cadence);
        assert_eq!(AnalysisClock::default().pacing(), Pacing::Cadence);
    }
}
