//! `gradlab run`: training without a screen, with a progress display and a summary.

use super::PresetArgs;
use crate::learner::build_learner;
use crate::metrics::Snapshot;
use crate::out::{say, tell};
use crate::parallel::cores;
use crate::protocol::LesionResult;
use crate::protocol::{Event, RunState};
use crate::recording::Header;
use crate::recording::writer::Tee;
use crate::report::{Analyses, build_report};
use crate::trainer::{MetricsSink, run_headless_until};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Shows progress on stderr: a bar on a terminal, a line every tenth of the run otherwise.
struct ProgressSink {
    bar: Option<ProgressBar>,
    steps: u64,
    last_line: u64,
    /// The newest snapshot: for a diverged run, the step that went non-finite.
    last: Option<Snapshot>,
}

impl ProgressSink {
    fn new(steps: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(steps);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:30} {pos}/{len} steps  {per_sec}  eta {eta}  {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            steps,
            last_line: 0,
            last: None,
        }
    }
}

impl MetricsSink for ProgressSink {
    fn send(&mut self, event: Event) -> bool {
        match event {
            Event::Snapshot(snapshot) => {
                let step = snapshot.step;
                if let Some(bar) = &self.bar {
                    bar.set_position(step);
                    bar.set_message(format!("loss {:.4}", snapshot.loss));
                } else if self.steps > 0 && (step >= self.last_line + self.steps.div_ceil(10)) {
                    self.last_line = step;
                    tell!("step {step:>7}/{}  loss {:.5}", self.steps, snapshot.loss);
                }
                self.last = Some(*snapshot);
            }
            Event::State {
                state: RunState::Diverged(d),
                ..
            } => tell!("diverged at step {}: {}", d.step, d.what),
            _ => {}
        }
        true
    }

    // Progress and the last snapshot only: the live analyses would be computed for nobody
    // (the --json report makes its own at the end; a --record run goes through a Tee).
    fn wants_analyses(&self) -> bool {
        false
    }
}

/// What `gradlab run` prints after training.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// One JSON object instead of a table.
    pub json: bool,
    /// Path decomposition in the JSON on (training rows, samples per length).
    pub paths: Option<(usize, usize)>,
    /// Single-block lesions on the test set.
    pub lesion: bool,
    /// Numbers of blocks to remove at once (in the JSON, on both splits).
    pub lesion_sizes: Vec<usize>,
}

/// Trains the preset headless; prints a table, or JSON with `output.json`; records to `record`.
pub fn run(
    preset: &PresetArgs,
    steps: Option<u64>,
    output: &Output,
    recording: &super::RecordArgs,
    weights: &super::weights::WeightsArgs,
) -> Result<ExitCode> {
    let experiment = preset.load()?;
    let steps = steps.unwrap_or(experiment.steps as u64);
    // Outputs are refused before the recording is opened or anything is trained.
    weights.check(recording.force, recording.record.as_deref())?;
    let mut recorder = recording.open(&Header::new(&experiment, Some(steps)))?;
    let record = recording.record.as_deref();
    let mut trainer = build_learner(experiment, preset.base_dir().as_deref())?;
    weights.start(trainer.as_mut())?;
    let mut sink = ProgressSink::new(steps);
    let signal = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // A signal stops between two steps, so the recording closes and a checkpoint can resume.
    if recorder.is_some() || weights.writes() {
        watch_signals(&signal, &stop)?;
    }
    let last = match recorder.as_mut() {
        Some(recorder) => {
            let mut tee = Tee(recorder, &mut sink);
            run_headless_until(trainer.as_mut(), steps, &[], &mut tee, &stop, cores())
        }
        None => run_headless_until(trainer.as_mut(), steps, &[], &mut sink, &stop, cores()),
    };
    if let Some(bar) = &sink.bar {
        bar.finish_and_clear();
    }
    weights.finish(trainer.as_mut(), recording.force)?;
    let caught = signal.load(Ordering::Relaxed);
    if let (Some(mut recorder), Some(path)) = (recorder, record) {
        let reason = if caught != 0 {
            signal_name(caught)
        } else if trainer.divergence().is_some() {
            "diverged"
        } else {
            "finished"
        };
        recorder
            .end(reason)
            .and_then(|()| recorder.close())
            .with_context(|| format!("cannot write the recording {}", path.display()))?;
        if caught != 0 {
            tell!(
                "gradlab: stopped by {} at step {}; recording closed",
                signal_name(caught),
                trainer.step()
            );
            // The shell convention for "ended by signal N".
            return Ok(ExitCode::from(128 + caught as u8));
        }
    }
    if caught != 0 {
        tell!(
            "gradlab: stopped by {} at step {}",
            signal_name(caught),
            trainer.step()
        );
        return Ok(ExitCode::from(128 + caught as u8));
    }
    let snapshot = last
        .or(sink.last)
        .ok_or_else(|| anyhow::anyhow!("the run produced no measurement"))?;
    let analyses = Analyses {
        paths: if output.json { output.paths } else { None },
        lesion: output.lesion,
        lesion_sizes: output.lesion_sizes.clone(),
    };
    if let Some((rows, samples)) = analyses.paths {
        announce_paths(trainer.experiment(), rows, samples);
    }
    let report = with_ticker("analysing", || {
        build_report(trainer.as_mut(), snapshot, &analyses)
    });
    if output.json {
        say!("{}", serde_json::to_string(&report)?)?;
        return Ok(exit_code(&report.snapshot));
    }
    let chance = super::summary::Chance::of(trainer.as_mut(), &report.snapshot);
    super::summary::print_summary(&report, chance)?;
    if let (Some(lesion), Some(mlp)) = (&report.lesion, trainer.as_mlp()) {
        // The snapshot's test loss may be up to `test_every` steps old; compare with now.
        print_lesions(mlp.evaluate_test(crate::model::Lesion::default()), lesion)?;
    }
    Ok(exit_code(&report.snapshot))
}

fn exit_code(snapshot: &Snapshot) -> ExitCode {
    if snapshot.diverged {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

/// How many times the default path work (samples × rows) `run` does quietly; above it, it
/// says up front what it is about to do.
const PATH_WORK_QUIET_FACTOR: usize = 100;

/// Says on stderr how big the path decomposition is when it is far above the default, so a
/// large `--path-samples` is not mistaken for a hang (the ticker then shows it is alive).
fn announce_paths(experiment: &crate::config::Experiment, rows: usize, samples: usize) {
    use crate::report::{DEFAULT_PATH_ROWS, DEFAULT_PATH_SAMPLES};
    // Without skips there is one path per length and nothing to sample.
    if experiment.model.kind != crate::config::ModelKind::Mlp
        || experiment.model.skip == crate::config::SkipMode::Plain
    {
        return;
    }
    let default = DEFAULT_PATH_SAMPLES * DEFAULT_PATH_ROWS;
    let work = samples.saturating_mul(rows);
    if work > PATH_WORK_QUIET_FACTOR * default {
        tell!(
            "path decomposition: {samples} random paths for each of {} lengths on {rows} rows, \
             {}× the default work; this can take minutes",
            experiment.model.depth + 1,
            work / default
        );
    }
}

/// Runs `work`, printing on stderr how long it has been going every few seconds once it has
/// taken more than two, so a long analysis over SSH is visibly alive.
pub(crate) fn with_ticker<T>(what: &str, work: impl FnOnce() -> T) -> T {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let start = std::time::Instant::now();
            let mut next = 2u64;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let elapsed = start.elapsed().as_secs();
                if elapsed >= next && !done.load(Ordering::Relaxed) {
                    tell!("{what}… {elapsed} s");
                    next = elapsed + 5;
                }
            }
        });
        let result = work();
        done.store(true, Ordering::Relaxed);
        result
    })
}

fn print_lesions(intact: (f64, Option<f64>), lesion: &[LesionResult]) -> Result<()> {
    let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |a| format!("{:.1} %", 100.0 * a));
    say!(
        "intact            test loss {:.4}  accuracy {}",
        intact.0,
        pct(intact.1)
    )?;
    for l in lesion {
        say!(
            "without block {:<3} test loss {:.4}  accuracy {}",
            l.block,
            l.test_loss,
            pct(l.test_accuracy)
        )?;
    }
    Ok(())
}

/// Turns SIGINT, SIGTERM and SIGHUP (an SSH connection dropping) into a flag; a second
/// Ctrl-C still ends the process at once.
pub(crate) fn watch_signals(signal: &Arc<AtomicUsize>, stop: &Arc<AtomicBool>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let armed = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&armed))?;
        signal_hook::flag::register(sig, Arc::clone(&armed))?;
        signal_hook::flag::register(sig, Arc::clone(stop))?;
        signal_hook::flag::register_usize(sig, Arc::clone(signal), sig as usize)?;
    }
    Ok(())
}

pub(crate) fn signal_name(signal: usize) -> &'static str {
    match signal as i32 {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        signal_hook::consts::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
