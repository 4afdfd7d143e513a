//! The mean-field prediction the header and the gradient bars draw, recomputed from the newest
//! snapshot's variances as often as its cost allows while a run trains.
//!
//! The prediction follows the current weights, so it changes with every snapshot; for a
//! highway net (gate moments by quadrature, per input bin and layer) one costs milliseconds,
//! and recomputing it for every frame took a tenth of a core from training. While the run
//! trains it is recomputed once at most [`PREDICTION_SHARE`] of the wall-clock time has gone
//! into it (and at least every [`PREDICTION_MAX_AGE`]), and the labels name the step whose variances it used when that is not the newest.
//! A switch that rewires the net, a pause and a finished run get it at once.

use crate::metrics::Snapshot;
use crate::protocol::Switches;
use crate::theory::{ArchPrediction, NetArch, predict};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Largest fraction of wall-clock time the interface spends recomputing one run's prediction
/// while it trains.
pub const PREDICTION_SHARE: f64 = 0.005;

/// Longest a training run's prediction is kept, whatever it cost: the first computation also
/// builds the quadrature tables, and a user should not watch a prediction from long ago.
pub const PREDICTION_MAX_AGE: Duration = Duration::from_secs(2);

/// A prediction and the snapshot whose variances it was computed from.
#[derive(Clone, Debug, PartialEq)]
pub struct ShownPrediction {
    /// Step of the snapshot whose variances the prediction used.
    pub step: u64,
    /// The prediction.
    pub prediction: ArchPrediction,
}

/// One computation: its result (None when the snapshot has no variances) and what it cost.
#[derive(Clone, Debug)]
struct Computed {
    shown: Option<Rc<ShownPrediction>>,
    step: u64,
    switches: Switches,
    arch: Option<NetArch>,
    at: Instant,
    cost: Duration,
}

/// The newest prediction of one run, computed lazily when drawn.
#[derive(Clone, Debug, Default)]
pub struct PacedPrediction {
    computed: RefCell<Option<Computed>>,
}

impl PacedPrediction {
    /// Forgets the prediction (a new experiment or a restart).
    pub fn reset(&mut self) {
        self.computed = RefCell::new(None);
    }

    /// The prediction to draw for `latest` under `switches`. With `pace` (the run is
    /// training) a prediction of an earlier snapshot of the same wiring is kept until its cost
    /// is within the share; otherwise (paused, finished, a replay at rest) it is exact.
    pub fn get(
        &self,
        latest: Option<&Snapshot>,
        switches: Switches,
        pace: bool,
    ) -> Option<Rc<ShownPrediction>> {
        let latest = latest?;
        let arch = latest.variances.as_ref().map(|v| v.arch);
        let mut computed = self.computed.borrow_mut();
        let current = computed.as_ref().is_some_and(|c| {
            let same_wiring = c.switches == switches && c.arch == arch;
            let hold = c.cost.div_f64(PREDICTION_SHARE).min(PREDICTION_MAX_AGE);
            same_wiring && (c.step == latest.step || (pace && c.at.elapsed() < hold))
        });
        if !current {
            let at = Instant::now();
            let shown = latest.variances.as_ref().map(|v| {
                Rc::new(ShownPrediction {
                    step: latest.step,
                    prediction: predict(v),
                })
            });
            *computed = Some(Computed {
                shown,
                step: latest.step,
                switches,
                arch,
                at,
                cost: at.elapsed(),
            });
        }
        computed.as_ref().and_then(|c| c.shown.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Activation;
    use crate::theory::{GateVariances, LayerVariances, NetVariances};

    fn snapshot(step: u64, arch: NetArch, weight_var: f64) -> Snapshot {
        let layer = LayerVariances {
            weight_var,
            bias_var: 0.05,
            gate: (arch == NetArch::Highway).then(GateVariances::default),
            ..LayerVariances::default()
        };
        Snapshot {
            step,
            variances: Some(NetVariances {
                arch,
                activation: Activation::Tanh,
                input_weight_var: 1.0,
                input_bias_var: 0.0,
                input_sq: vec![1.0],
                input_sq_rows: Vec::new(),
                layers: vec![layer; 6],
                aux_layers: Vec::new(),
                scored_steps: Vec::new(),
                head_weight_var: 1.0,
            }),
            ..Snapshot::default()
        }
    }

    /// Pretends the last computation took `cost` just now, so pacing holds it for
    /// cost / share.
    fn make_expensive(paced: &PacedPrediction, cost: Duration) {
        computed_ago(paced, cost, Duration::ZERO);
    }

    /// Pretends the last computation took `cost` and ended `ago`.
    fn computed_ago(paced: &PacedPrediction, cost: Duration, ago: Duration) {
        if let Some(c) = paced.computed.borrow_mut().as_mut() {
            c.cost = cost;
            c.at = Instant::now().checked_sub(ago).unwrap_or_else(Instant::now);
        }
    }

    #[test]
    fn no_prediction_is_older_than_the_maximum_age() {
        let paced = PacedPrediction::default();
        let switches = Switches::default();
        paced.get(Some(&snapshot(10, NetArch::Highway, 1.0)), switches, true);
        let old = PREDICTION_MAX_AGE + Duration::from_millis(100);
        computed_ago(&paced, Duration::from_secs(60), old);
        let later = snapshot(20, NetArch::Highway, 1.2);
        assert_eq!(shown_step(paced.get(Some(&later), switches, true)), 20);
    }

    fn shown_step(shown: Option<Rc<ShownPrediction>>) -> u64 {
        shown.map_or(u64::MAX, |s| s.step)
    }

    #[test]
    fn an_expensive_prediction_is_kept_while_training_and_named_by_its_step() {
        let paced = PacedPrediction::default();
        let switches = Switches::default();
        let first = snapshot(10, NetArch::Plain, 1.5);
        assert_eq!(shown_step(paced.get(Some(&first), switches, true)), 10);
        make_expensive(&paced, Duration::from_secs(60));
        let later = snapshot(20, NetArch::Plain, 0.5);
        // Training: the step-10 prediction stays, and says so.
        assert_eq!(shown_step(paced.get(Some(&later), switches, true)), 10);
        // At rest (paused, finished): exact at once.
        let exact = paced.get(Some(&later), switches, false);
        let expected = later.variances.as_ref().map(predict);
        assert_eq!(exact.as_ref().map(|s| s.step), Some(20));
        assert_eq!(exact.map(|s| s.prediction.clone()), expected);
    }

    #[test]
    fn a_cheap_prediction_follows_every_snapshot() {
        let paced = PacedPrediction::default();
        let switches = Switches::default();
        for step in 1..5 {
            let s = snapshot(step, NetArch::Plain, 1.0 + 0.1 * step as f64);
            assert_eq!(shown_step(paced.get(Some(&s), switches, true)), step);
            make_expensive(&paced, Duration::ZERO);
        }
    }

    #[test]
    fn rewiring_is_predicted_at_once_even_when_expensive() {
        let paced = PacedPrediction::default();
        let switches = Switches::default();
        paced.get(Some(&snapshot(10, NetArch::Plain, 1.0)), switches, true);
        make_expensive(&paced, Duration::from_secs(60));
        let highway = paced.get(Some(&snapshot(11, NetArch::Highway, 1.0)), switches, true);
        assert_eq!(
            highway.map(|s| (s.step, s.prediction.arch)),
            Some((11, NetArch::Highway))
        );
        make_expensive(&paced, Duration::from_secs(60));
        let flipped = Switches {
            aux: !switches.aux,
            ..switches
        };
        let after_switch = paced.get(Some(&snapshot(12, NetArch::Highway, 1.0)), flipped, true);
        assert_eq!(shown_step(after_switch), 12);
    }

    #[test]
    fn no_variances_no_prediction() {
        let paced = PacedPrediction::default();
        let bare = Snapshot {
            step: 3,
            ..Snapshot::default()
        };
        assert!(paced.get(Some(&bare), Switches::default(), true).is_none());
        assert!(paced.get(None, Switches::default(), true).is_none());
    }
}
