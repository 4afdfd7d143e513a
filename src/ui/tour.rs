//! The guided tour (`gradlab tour`): lessons run inside the live dashboard. Each lesson loads
//! its preset, waits for the one key it asks for, sees it take effect in the run's own events,
//! then measures before and after from the run's snapshots and says whether the claim held,
//! and what it saw when it did not. The tour only watches messages after `update` took them
//! in ([`observe`]); it changes the run only by loading a lesson's preset (and pausing it).

use super::app::{App, Effect, Msg};
use super::keymap::{self, Context};
use super::tour_lessons::{Claim, LESSONS, Lesson, Measure, Trigger};
use crate::config::{Experiment, apply_overrides, load_preset};
use crate::metrics::Snapshot;
use crate::protocol::{Command, Event, LaneCommand, LaneEvent, RunState};
use anyhow::Result;

/// Samples kept per lesson: enough for the longest claim window, bounded for long sessions.
const MAX_SAMPLES: usize = 4096;

/// Where a lesson stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// The lesson's preset was asked for and has not started yet.
    Loading,
    /// The run started; waiting for the key the lesson asks for.
    Waiting,
    /// The key took effect at this step; measuring after it.
    Watching {
        /// The first step the action influenced.
        at: u64,
    },
    /// The measurement is in.
    Done(Verdict),
    /// Another experiment runs (a preset loaded by hand): the lesson waits to be reloaded.
    Elsewhere(String),
}

/// What the run showed.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Whether the measurement bore the claim out.
    pub confirmed: bool,
    /// The measurement in words, with its numbers.
    pub text: String,
}

/// The tour's state: the lessons, the one shown, and what it has measured so far.
#[derive(Clone, Debug)]
pub struct Tour {
    /// The lessons, in order.
    pub lessons: &'static [Lesson],
    /// The lesson shown (0-based).
    pub index: usize,
    /// Seed given to every lesson's preset (None: each preset's own).
    pub seed: Option<u64>,
    /// Where the lesson stands.
    pub phase: Phase,
    /// (step, value) of the lesson's measure for every snapshot of its run so far.
    samples: Vec<(u64, f64)>,
    /// The run was seen paused since the lesson started (a later `Running` is a resume).
    saw_paused: bool,
}

impl Tour {
    /// A tour at its first lesson, whose run is about to start.
    pub fn new(seed: Option<u64>) -> Self {
        Self {
            lessons: LESSONS,
            index: 0,
            seed,
            phase: Phase::Loading,
            samples: Vec::new(),
            saw_paused: false,
        }
    }

    /// The lesson shown.
    pub fn lesson(&self) -> &'static Lesson {
        &self.lessons[self.index.min(self.lessons.len() - 1)]
    }

    /// The experiment of the lesson shown.
    pub fn experiment(&self) -> Result<Experiment> {
        lesson_experiment(self.lesson(), self.seed)
    }

    /// The samples measured since the lesson's run started.
    pub fn samples(&self) -> &[(u64, f64)] {
        &self.samples
    }
}

/// A lesson's preset with its overrides and, when given, the tour's seed.
pub fn lesson_experiment(lesson: &Lesson, seed: Option<u64>) -> Result<Experiment> {
    let base = load_preset(lesson.preset)?;
    let sets: Vec<String> = lesson.overrides.iter().map(|s| s.to_string()).collect();
    let mut experiment = apply_overrides(&base, &sets)?;
    if let Some(seed) = seed {
        experiment.seed = seed;
    }
    Ok(experiment)
}

/// The key a lesson asks for, as the keymap spells it.
pub fn key_label(lesson: &Lesson, ascii: bool) -> String {
    let label = keymap::label_of(Context::Main, lesson.action).unwrap_or_default();
    if ascii {
        label
            .replace('↑', "Up")
            .replace('↓', "Down")
            .replace('←', "Left")
            .replace('→', "Right")
    } else {
        label
    }
}

/// Moves to the next (or previous) lesson and loads its preset.
pub fn turn(app: &mut App, forward: bool) -> Vec<Effect> {
    let Some(tour) = &mut app.tour else {
        return Vec::new();
    };
    let last = tour.lessons.len() - 1;
    let index = match (forward, tour.index) {
        (true, i) if i >= last => {
            let quit = keymap::label_of(Context::Main, keymap::Action::Quit).unwrap_or_default();
            app.note = Some(format!("that was the last lesson; {quit} quits"));
            return Vec::new();
        }
        (false, 0) => {
            app.note = Some("this is the first lesson".into());
            return Vec::new();
        }
        (true, i) => i + 1,
        (false, i) => i - 1,
    };
    tour.index = index;
    start(app)
}

/// Loads the lesson shown: its run restarts from step 0.
pub fn start(app: &mut App) -> Vec<Effect> {
    let Some(tour) = &mut app.tour else {
        return Vec::new();
    };
    tour.phase = Phase::Loading;
    tour.samples.clear();
    tour.saw_paused = false;
    let lesson = tour.lesson();
    match tour.experiment() {
        Ok(experiment) => {
            app.runs[0].expect_restart(format!("lesson: {}", lesson.title));
            // The driver restarts a run in the state it is in: pausing first means not one
            // step is taken before the key the lesson asks for.
            let state = if lesson.start_paused {
                Command::Pause
            } else {
                Command::Resume
            };
            [state, Command::LoadPreset(Box::new(experiment))]
                .into_iter()
                .map(|command| Effect::Send(LaneCommand { lane: 0, command }))
                .collect()
        }
        Err(error) => {
            app.note = Some(format!("cannot load the lesson: {error:#}"));
            Vec::new()
        }
    }
}

/// Watches a message the dashboard just took in: the lesson's run starting, the key taking
/// effect, snapshots to measure. Returns what the lesson wants done (nothing yet: a lesson's
/// run is paused or resumed when it is loaded, see [`start`]).
pub fn observe(app: &mut App, msg: &Msg) -> Vec<Effect> {
    let Some(tour) = &mut app.tour else {
        return Vec::new();
    };
    let lesson = *tour.lesson();
    let run = &app.runs[0];
    let effects = Vec::new();
    match msg {
        Msg::Lane(LaneEvent { lane: 0, event }) => match event {
            Event::Started { preset } => {
                tour.samples.clear();
                tour.saw_paused = false;
                if preset.name == lesson.preset {
                    tour.phase = Phase::Waiting;
                    // Each lesson starts from the usual view.
                    app.runs[0].show_paths = false;
                } else {
                    tour.phase = Phase::Elsewhere(preset.name.clone());
                }
                return effects;
            }
            Event::State { step, state } => match state {
                RunState::Paused => tour.saw_paused = true,
                RunState::Running
                    if tour.saw_paused
                        && tour.phase == Phase::Waiting
                        && matches!(lesson.trigger, Trigger::Resumed) =>
                {
                    tour.phase = Phase::Watching { at: *step };
                }
                RunState::Diverged(d) if matches!(tour.phase, Phase::Watching { .. }) => {
                    tour.phase = Phase::Done(Verdict {
                        confirmed: false,
                        text: format!(
                            "the run diverged at step {} ({}) before the measurement was complete",
                            d.step, d.what
                        ),
                    });
                }
                _ => {}
            },
            Event::Applied { step, command } => {
                if let (Phase::Waiting, Trigger::Applied(accepts)) = (&tour.phase, lesson.trigger)
                    && accepts(command)
                {
                    tour.phase = Phase::Watching { at: *step };
                }
            }
            Event::Snapshot(snapshot) => {
                if let Some(value) = sample(lesson.measure, snapshot)
                    && tour.samples.len() < MAX_SAMPLES
                {
                    tour.samples.push((snapshot.step, value));
                }
            }
            _ => {}
        },
        _ => {
            if tour.phase == Phase::Waiting
                && matches!(lesson.trigger, Trigger::PathsShown)
                && run.show_paths
            {
                tour.phase = Phase::Watching { at: run.step };
            }
        }
    }
    if let Phase::Watching { at } = tour.phase
        && let Some(verdict) = judge(&lesson, &tour.samples, at, &app.runs[0], app.theme.ascii)
    {
        tour.phase = Phase::Done(verdict);
    }
    effects
}

/// The lesson's measure in one snapshot (None when the snapshot does not carry it).
pub fn sample(measure: Measure, s: &Snapshot) -> Option<f64> {
    match measure {
        Measure::FirstGrad => s
            .timesteps
            .first()
            .map(|t| t.hidden_grad_norm)
            .or_else(|| s.layers.first().map(|l| l.act_grad_norm)),
        Measure::FirstLastDb => Some(s.grad_ratio_db),
        Measure::MainLoss => Some(s.main_loss),
        Measure::GateBias => {
            let biases: Vec<f64> = s.layers.iter().filter_map(|l| l.gate_bias_mean).collect();
            (!biases.is_empty()).then(|| biases.iter().sum::<f64>() / biases.len() as f64)
        }
        // From the path analysis, not from snapshots.
        Measure::PathMean => None,
    }
}

/// The measure's name in a sentence.
fn measure_name(measure: Measure, rnn: bool) -> &'static str {
    match (measure, rnn) {
        (Measure::FirstGrad, false) => "layer 1's ‖∂L/∂h‖",
        (Measure::FirstGrad, true) => "‖∂L/∂h_t‖ at t = 1",
        (Measure::FirstLastDb, false) => "layer 1's ‖∂L/∂h‖ vs the last layer's",
        (Measure::FirstLastDb, true) => "‖∂L/∂h_1‖ vs ‖∂L/∂h_T‖",
        (Measure::MainLoss, _) => "the training loss",
        (Measure::GateBias, _) => "the gates' mean bias b_T",
        (Measure::PathMean, _) => "the gradient's mean path length",
    }
}

/// Mean of log10 over the values (None if any is not a positive finite number).
fn mean_log10(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return None;
    }
    Some(values.iter().map(|v| v.log10()).sum::<f64>() / values.len() as f64)
}

/// Plain mean (None if any value is not finite).
fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    Some(values.iter().sum::<f64>() / values.len() as f64)
}

/// A norm for a sentence.
fn norm(v: f64) -> String {
    super::widgets::fmt_value(v)
}

/// The verdict once enough has been measured after the action at step `at`; None until then.
pub fn judge(
    lesson: &Lesson,
    samples: &[(u64, f64)],
    at: u64,
    run: &super::run_view::RunView,
    ascii: bool,
) -> Option<Verdict> {
    let key = key_label(lesson, ascii);
    let since = format!("since you pressed {key}");
    let what = measure_name(lesson.measure, run.is_rnn());
    let before_values: Vec<f64> = samples
        .iter()
        .filter(|(s, _)| *s < at)
        .map(|&(_, v)| v)
        .collect();
    let after_values: Vec<f64> = samples
        .iter()
        .filter(|(s, _)| *s >= at)
        .map(|&(_, v)| v)
        .collect();
    let after = |count: usize| (after_values.len() >= count).then(|| &after_values[..count]);
    let before = |count: usize| &before_values[before_values.len().saturating_sub(count)..];
    let not_finite = |span: u64| Verdict {
        confirmed: false,
        text: format!("{what} was not a finite positive number in the {span} samples {since}"),
    };
    let verdict = |confirmed, text| Some(Verdict { confirmed, text });
    match lesson.claim {
        Claim::RisesDb { db, count } | Claim::FallsDb { db, count } => {
            let rises = matches!(lesson.claim, Claim::RisesDb { .. });
            let after = after(count)?;
            let before = before(count);
            if before.is_empty() {
                return verdict(
                    false,
                    format!(
                        "no measurement before you pressed {key} to compare with; , then . restarts the lesson"
                    ),
                );
            }
            let (Some(b), Some(a)) = (mean_log10(before), mean_log10(after)) else {
                return Some(not_finite(count as u64));
            };
            let change = 20.0 * (a - b);
            let (bv, av) = (norm(10f64.powf(b)), norm(10f64.powf(a)));
            let confirmed = if rises { change >= db } else { -change >= db };
            let word = if change >= 0.0 { "rose" } else { "fell" };
            let text = if confirmed {
                format!("{what} {word} {:.0} dB {since} ({bv} → {av})", change.abs())
            } else {
                let expected = if rises { "rise" } else { "fall" };
                format!(
                    "{what} changed {change:+.1} dB {since} ({bv} → {av}), not the {expected} of {db:.0} dB or more the lesson expects"
                )
            };
            verdict(confirmed, text)
        }
        Claim::AboveDb { db, count } | Claim::BelowDb { db, count } => {
            let above = matches!(lesson.claim, Claim::AboveDb { .. });
            let after = after(count)?;
            let Some(a) = mean(after) else {
                return Some(not_finite(count as u64));
            };
            let b = mean(before(count));
            let from = b.map_or(String::new(), |b| format!(" (before: {b:+.1} dB)"));
            let confirmed = if above { a > db } else { a < db };
            let side = if above { "above" } else { "below" };
            let text = if confirmed {
                format!(
                    "{what} averaged {a:+.1} dB over {count} samples {since}{from}: {side} the {db:+.0} dB line"
                )
            } else {
                format!(
                    "{what} averaged {a:+.1} dB over {count} samples {since}{from}: not {side} the {db:+.0} dB line"
                )
            };
            verdict(confirmed, text)
        }
        Claim::LevelDb { db, count } => {
            let after = after(count)?;
            let Some(a) = mean(after) else {
                return Some(not_finite(count as u64));
            };
            let theory = match (&run.theory, &run.experiment) {
                (Some(t), Some(e)) => format!(
                    "; mean-field theory for this init: {:+.1} dB",
                    t.predicted_db_per_layer * e.model.depth.saturating_sub(1) as f64
                ),
                _ => String::new(),
            };
            let confirmed = a.abs() <= db;
            let text = if confirmed {
                format!(
                    "{what} averaged {a:+.1} dB over {count} samples {since}: level, within ±{db:.0} dB{theory}"
                )
            } else {
                format!(
                    "{what} averaged {a:+.1} dB over {count} samples {since}: not level (beyond ±{db:.0} dB){theory}"
                )
            };
            verdict(confirmed, text)
        }
        Claim::FallsTo {
            fraction,
            count,
            span,
        } => {
            let window = after(span)?;
            let start = window[0];
            let Some(end) = mean(&window[span - count..]) else {
                return Some(not_finite(span as u64));
            };
            let steps = samples
                .iter()
                .filter(|(s, _)| *s >= at)
                .nth(span - 1)
                .map_or(0, |(s, _)| s - at);
            let chance = run.latest.as_ref().and_then(|s| s.baseline_loss);
            let chance_text =
                chance.map_or(String::new(), |c| format!(" (input-blind baseline {c:.3})"));
            let confirmed =
                start.is_finite() && end <= fraction * start && chance.is_none_or(|c| end < c);
            let text = if confirmed {
                format!(
                    "{what} fell from {start:.3} to {end:.3} in the {steps} steps {since}{chance_text}"
                )
            } else {
                format!(
                    "{what} went from {start:.3} to {end:.3} in the {steps} steps {since}{chance_text}: not down to {:.0} % of where it started",
                    fraction * 100.0
                )
            };
            verdict(confirmed, text)
        }
        Claim::Moves { by, span } => {
            let window = after(span + 1)?;
            let (start, end) = (window[0], window[span]);
            if !(start.is_finite() && end.is_finite()) {
                return Some(not_finite(span as u64));
            }
            let steps = samples
                .iter()
                .filter(|(s, _)| *s >= at)
                .nth(span)
                .map_or(0, |(s, _)| s - at);
            let gate = run
                .gate_mean
                .last()
                .map_or(String::new(), |(_, t)| format!("; mean gate T now {t:.3}"));
            let confirmed = (end - start).abs() >= by;
            let text = if confirmed {
                format!(
                    "{what} moved {start:+.3} → {end:+.3} in the {steps} steps {since}: learned, not fixed{gate}"
                )
            } else {
                format!(
                    "{what} stayed at {start:+.3} → {end:+.3} in the {steps} steps {since}: it moved less than {by}{gate}"
                )
            };
            verdict(confirmed, text)
        }
        Claim::ShortPaths { fraction } => {
            let (step, stats) = run.paths.as_ref()?;
            if *step < at {
                return None;
            }
            let blocks = stats.blocks as f64;
            let [lo, hi] = stats.effective_range;
            let m = stats.mean_length;
            let confirmed = m <= fraction * blocks;
            let text = if confirmed {
                format!(
                    "at step {step}, {since}: {what} is {m:.1} of {} blocks (90 % of the gradient in paths of {lo}–{hi}): the net is effectively about {m:.0} deep",
                    stats.blocks
                )
            } else {
                format!(
                    "at step {step}, {since}: {what} is {m:.1} of {} blocks (90 % in {lo}–{hi}): not under {:.0} % of the depth",
                    stats.blocks,
                    fraction * 100.0
                )
            };
            verdict(confirmed, text)
        }
    }
}
