//! `gradlab bench --dashboard`: what the live dashboard costs training, measured in one
//! process. The real dashboard (driver thread with its paced live analyses, event forwarder,
//! interface loop drawing 120×40 frames through the crossterm backend into a sink) is timed
//! against a headless run of the same preset without live analyses, in alternating slices, so
//! the machine's drift between minutes falls on both sides alike.

use crate::config::Experiment;
use crate::learner::build_learner;
use crate::parallel::cores;
use crate::protocol::{Event, LaneEvent};
use crate::trainer::{LaneStart, MetricsSink, run_headless_until, spawn_driver};
use crate::ui::app::{App, Effect, Msg};
use crate::ui::event::{self, EventSource, Screen};
use crate::ui::live::LiveSource;
use crate::ui::theme::Theme;
use anyhow::{Result, bail};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

/// Size of the frames the dashboard draws (the size the README's screenshots use).
pub const FRAME: Rect = Rect {
    x: 0,
    y: 0,
    width: 120,
    height: 40,
};

/// Time each slice runs before it is timed: start-up and the step-0 analyses are not the
/// steady state.
pub const WARM_UP: Duration = Duration::from_secs(2);

/// Frames per second the measured dashboard draws at (the dashboard's default).
pub const FPS: u32 = 20;

/// CPU time of this process's threads (user + system, in clock ticks) by thread id, read
/// from `/proc/self/task` (empty where there is none).
fn thread_ticks() -> Vec<(String, u64)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // The name is in parentheses and may hold spaces: the fields follow the last ')'.
            let fields: Vec<&str> = stat
                .get(stat.rfind(')')? + 1..)?
                .split_whitespace()
                .collect();
            let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
            // utime and stime are the stat file's 14th and 15th fields.
            Some((
                task.file_name().to_string_lossy().into_owned(),
                ticks(11)? + ticks(12)?,
            ))
        })
        .collect()
}

/// The calling thread's id as `/proc` names it.
fn own_thread_id() -> Option<String> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// The name of thread `tid` of this process.
fn thread_name(tid: &str) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
    Some(comm.trim().to_string())
}

/// Share of the process's CPU time between `start` and `end` taken by the interface: the
/// thread `ui` (the dashboard loop) and the event forwarder. None without `/proc`.
fn interface_share(start: &[(String, u64)], end: &[(String, u64)], ui: &str) -> Option<f64> {
    let mut total = 0;
    let mut interface = 0;
    for (tid, after) in end {
        let Some((_, before)) = start.iter().find(|(t, _)| t == tid) else {
            continue;
        };
        let used = after.saturating_sub(*before);
        total += used;
        if tid == ui || thread_name(tid).as_deref() == Some("gradlab-forward") {
            interface += used;
        }
    }
    (total > 0).then(|| interface as f64 / total as f64)
}

/// The dashboard's overhead on one preset (the `--dashboard --json` contract).
#[derive(Clone, Debug, Serialize)]
pub struct Overhead {
    /// The preset measured.
    pub preset: String,
    /// Median steps/s of the dashboard's slices.
    pub dashboard_steps_per_sec: f64,
    /// Median steps/s of the headless slices.
    pub headless_steps_per_sec: f64,
    /// Median over pairs of 1 − dashboard/headless, in percent (negative: the dashboard's
    /// slice happened to run faster).
    pub overhead_percent: f64,
    /// Median over the dashboard's slices of the share of the process's CPU time the
    /// interface took (the loop drawing the frames and the event forwarder), in percent; null
    /// without `/proc`. It does not count the live analyses, which run on the training thread
    /// within their own share of its time.
    pub interface_cpu_percent: Option<f64>,
    /// Each pair's overhead in percent, in the order measured.
    pub pairs_percent: Vec<f64>,
    /// Seconds each slice was timed for (after [`WARM_UP`]).
    pub seconds: f64,
}

/// Measures `pairs` dashboard/headless slice pairs of `experiment`, `timed` long each,
/// alternating which goes first so a drifting machine speed cancels.
pub fn measure(
    name: &str,
    experiment: &Experiment,
    base_dir: Option<&Path>,
    timed: Duration,
    pairs: usize,
) -> Result<Overhead> {
    let mut dashboards = Vec::new();
    let mut headless = Vec::new();
    let mut pairs_percent = Vec::new();
    let mut interface = Vec::new();
    for pair in 0..pairs.max(1) {
        let ((d, share), h) = if pair % 2 == 0 {
            let d = dashboard_slice(experiment, base_dir, timed)?;
            (d, headless_slice(experiment, base_dir, timed)?)
        } else {
            let h = headless_slice(experiment, base_dir, timed)?;
            (dashboard_slice(experiment, base_dir, timed)?, h)
        };
        pairs_percent.push(100.0 * (1.0 - d / h));
        dashboards.push(d);
        headless.push(h);
        interface.extend(share.map(|s| 100.0 * s));
    }
    Ok(Overhead {
        preset: name.to_string(),
        dashboard_steps_per_sec: median(&dashboards),
        headless_steps_per_sec: median(&headless),
        overhead_percent: median(&pairs_percent),
        interface_cpu_percent: (!interface.is_empty()).then(|| median(&interface)),
        pairs_percent,
        seconds: timed.as_secs_f64(),
    })
}

/// The middle value (the mean of the middle two for an even count; NaN for none).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
    }
}

/// Steps per second between the first and the last (time, step) sample.
fn rate(samples: &[(Instant, u64)]) -> Result<f64> {
    let (Some(&(t0, s0)), Some(&(t1, s1))) = (samples.first(), samples.last()) else {
        bail!("no step was taken in the timed part of the slice");
    };
    let seconds = t1.duration_since(t0).as_secs_f64();
    if s1 <= s0 || seconds <= 0.0 {
        bail!("fewer than two steps in the timed part of the slice: give it more time");
    }
    Ok((s1 - s0) as f64 / seconds)
}

/// Keeps the newest step seen at each moment after `from`.
#[derive(Debug)]
struct StepClock {
    from: Instant,
    samples: Vec<(Instant, u64)>,
}

impl StepClock {
    fn new(from: Instant) -> Self {
        Self {
            from,
            samples: Vec::new(),
        }
    }

    fn saw(&mut self, step: u64) {
        let now = Instant::now();
        if now < self.from {
            return;
        }
        // Events applied in one batch share a moment: the batch's newest step counts.
        match self.samples.last_mut() {
            Some((t, s)) if *t == now => *s = (*s).max(step),
            _ => self.samples.push((now, step)),
        }
    }
}

/// The real dashboard for `WARM_UP + timed`, counting the steps its snapshots show; also the
/// interface's share of the CPU time over the timed part (see [`interface_share`]).
fn dashboard_slice(
    experiment: &Experiment,
    base_dir: Option<&Path>,
    timed: Duration,
) -> Result<(f64, Option<f64>)> {
    let (inbox_tx, inbox) = channel();
    let start = LaneStart::fresh(experiment.clone(), base_dir.map(Path::to_path_buf));
    let driver = spawn_driver(vec![start], cores(), false)?;
    let live = LiveSource::start(driver, None, inbox_tx.clone(), FPS)?;
    let began = Instant::now();
    let mut source = Counting {
        live,
        clock: StepClock::new(began + WARM_UP),
        cpu_at_start: None,
    };
    let stopper = inbox_tx.clone();
    std::thread::spawn(move || {
        std::thread::sleep(WARM_UP + timed);
        let _ = stopper.send(Msg::Signal("SIGTERM"));
    });
    let mut app = App::new(Theme::from_env(false));
    let mut screen = SinkScreen::new()?;
    let shown = event::run(&mut screen, &mut app, &mut source, &inbox, FPS, None);
    let cpu_at_end = thread_ticks();
    let Counting {
        live,
        clock,
        cpu_at_start,
    } = source;
    live.close("quit", &inbox, Duration::from_secs(10))?;
    shown?;
    let share = cpu_at_start
        .zip(own_thread_id())
        .and_then(|(start, ui)| interface_share(&start, &cpu_at_end, &ui));
    Ok((rate(&clock.samples)?, share))
}

/// The same preset trained headless, without live analyses, for `WARM_UP + timed`.
fn headless_slice(
    experiment: &Experiment,
    base_dir: Option<&Path>,
    timed: Duration,
) -> Result<f64> {
    let mut trainer = build_learner(experiment.clone(), base_dir)?;
    let stop = AtomicBool::new(false);
    let mut sink = Counted(StepClock::new(Instant::now() + WARM_UP));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(WARM_UP + timed);
            stop.store(true, Ordering::Relaxed);
        });
        run_headless_until(trainer.as_mut(), u64::MAX, &[], &mut sink, &stop, cores());
    });
    rate(&sink.0.samples)
}

/// The live source, noting each snapshot's step as the interface applies it, and the
/// threads' CPU time when the timed part begins.
struct Counting {
    live: LiveSource,
    clock: StepClock,
    cpu_at_start: Option<Vec<(String, u64)>>,
}

impl EventSource for Counting {
    fn perform(&mut self, effect: Effect) -> Vec<Msg> {
        self.live.perform(effect)
    }

    fn observe(&mut self, msg: &Msg) -> Vec<Msg> {
        if let Msg::Lane(LaneEvent {
            event: Event::Snapshot(snapshot),
            ..
        }) = msg
        {
            self.clock.saw(snapshot.step);
            if self.cpu_at_start.is_none() && !self.clock.samples.is_empty() {
                self.cpu_at_start = Some(thread_ticks());
            }
        }
        self.live.observe(msg)
    }
}

/// A headless sink that notes each snapshot's step and drops the rest.
struct Counted(StepClock);

impl MetricsSink for Counted {
    fn send(&mut self, event: Event) -> bool {
        if let Event::Snapshot(snapshot) = event {
            self.0.saw(snapshot.step);
        }
        true
    }

    fn wants_analyses(&self) -> bool {
        false
    }
}

/// Frames drawn by the crossterm backend, as on a terminal, into a sink.
struct SinkScreen {
    terminal: Terminal<CrosstermBackend<std::io::Sink>>,
}

impl SinkScreen {
    fn new() -> Result<Self> {
        let terminal = Terminal::with_options(
            CrosstermBackend::new(std::io::sink()),
            TerminalOptions {
                viewport: Viewport::Fixed(FRAME),
            },
        )?;
        Ok(Self { terminal })
    }
}

impl Screen<CrosstermBackend<std::io::Sink>> for SinkScreen {
    fn terminal(&mut self) -> &mut Terminal<CrosstermBackend<std::io::Sink>> {
        &mut self.terminal
    }

    fn suspend(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interface_share_counts_the_calling_thread_and_the_forwarder() {
        let start = vec![("1".to_string(), 100), ("2".to_string(), 50)];
        let end = vec![
            ("1".to_string(), 110),
            ("2".to_string(), 140),
            ("3".to_string(), 7),
        ];
        // Thread 3 started after the first reading: not counted.
        let share = interface_share(&start, &end, "1");
        assert_eq!(share, Some(10.0 / 100.0));
        assert_eq!(interface_share(&start, &start, "1"), None);
    }

    #[test]
    fn this_thread_is_found_among_the_process_threads() {
        if let Some(me) = own_thread_id() {
            assert!(thread_ticks().iter().any(|(tid, _)| *tid == me));
        }
    }

    #[test]
    fn median_of_odd_even_and_none() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn rate_needs_two_steps() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        let slice = rate(&[(t0, 10), (t1, 110)]).ok();
        assert_eq!(slice, Some(50.0));
        assert!(rate(&[(t0, 10)]).is_err());
        assert!(rate(&[]).is_err());
    }
}
