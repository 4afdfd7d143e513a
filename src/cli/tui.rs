//! `gradlab` / `gradlab tui`: the dashboard on a real terminal, and getting the terminal back
//! whatever happens.

use super::{DashArgs, PresetArgs, UiArgs};
use crate::compare::CompareEntry;
use crate::recording::{Header, Recorder};
use crate::sweep::cores;
use crate::trainer::{LaneStart, spawn_driver};
use crate::ui::app::App;
use crate::ui::cast::{CastingWriter, SharedCast};
use crate::ui::compare::CompareView;
use crate::ui::event::{self, EventSource};
use crate::ui::live::LiveSource;
use crate::ui::playback::{self, FollowSource, ReplaySource};
use crate::ui::theme::Theme;
use anyhow::{Context, Result};
use ratatui::crossterm::cursor::Show;
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::{Terminal, backend::CrosstermBackend};
use std::io::{IsTerminal, Stdout};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How long to wait for the trainer to finish its current step after `Shutdown`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(3);

/// The terminal the dashboard draws on: stdout, copied into a cast with `--cast`.
type DashTerminal = Terminal<CrosstermBackend<CastingWriter<Stdout>>>;

/// Refuses (exit 2) when stdout is not a terminal, with what to run instead.
fn require_terminal(instead: &str) -> Option<ExitCode> {
    if std::io::stdout().is_terminal() {
        return None;
    }
    eprintln!("gradlab: stdout is not a terminal, so the dashboard cannot be drawn.\n{instead}");
    Some(ExitCode::from(2))
}

/// What SIGTERM, SIGHUP and SIGINT set: the loop stops between two frames and everything is
/// closed in order; the number says which signal, for the recording's last line.
struct Signals {
    stop: Arc<AtomicBool>,
    caught: Arc<AtomicUsize>,
}

fn watch_signals() -> Result<Signals> {
    let signals = Signals {
        stop: Arc::new(AtomicBool::new(false)),
        caught: Arc::new(AtomicUsize::new(0)),
    };
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
    ] {
        signal_hook::flag::register_usize(signal, Arc::clone(&signals.caught), signal as usize)
            .context("cannot install signal handlers")?;
        signal_hook::flag::register(signal, Arc::clone(&signals.stop))
            .context("cannot install signal handlers")?;
    }
    Ok(signals)
}

fn signal_name(signal: usize) -> Option<&'static str> {
    match signal as i32 {
        0 => None,
        signal_hook::consts::SIGINT => Some("SIGINT"),
        signal_hook::consts::SIGTERM => Some("SIGTERM"),
        signal_hook::consts::SIGHUP => Some("SIGHUP"),
        _ => Some("a signal"),
    }
}

/// Opens the dashboard on the preset; refuses (exit 2) when stdout is not a terminal.
pub fn run(preset: &PresetArgs, ui: &UiArgs, dash: &DashArgs) -> Result<ExitCode> {
    let instead = format!(
        "To train without a screen use `gradlab run --preset {}` (add --json for machine-readable output).",
        preset.preset
    );
    if let Some(code) = require_terminal(&instead) {
        return Ok(code);
    }
    let experiment = preset.load()?;
    let recorder = match &dash.record {
        Some(path) => Some(
            Recorder::create(path, &Header::new(&experiment, None))
                .with_context(|| format!("cannot record to {}", path.display()))?,
        ),
        None => None,
    };
    let signals = watch_signals()?;
    let start = LaneStart::fresh(experiment, preset.base_dir());
    let mut source = LiveSource::new(spawn_driver(vec![start], cores(), false)?, recorder);
    let mut app = App::new(Theme::from_env(ui.ascii));
    let result = show(&mut source, &mut app, ui, dash.cast.as_deref(), &signals);
    let signal = signal_name(signals.caught.load(Ordering::Relaxed));
    let reason = match (&signal, &app.state) {
        (Some(signal), _) => signal.to_string(),
        (None, crate::protocol::RunState::Crashed(why)) => format!("the trainer crashed: {why}"),
        (None, _) if result.is_err() => "the dashboard failed".to_string(),
        (None, _) => "quit".to_string(),
    };
    let closed = source.close_recording(&reason);
    source.shut_down(JOIN_TIMEOUT);
    result?;
    if let (Err(e), Some(path)) = (closed, &dash.record) {
        return Err(e).with_context(|| format!("cannot write the recording {}", path.display()));
    }
    Ok(exit_code(&signals))
}

/// Opens the compare view on `entries`, trained in lock-step over `threads` threads; refuses
/// (exit 2) when stdout is not a terminal.
pub fn compare(entries: Vec<CompareEntry>, ui: &UiArgs, threads: usize) -> Result<ExitCode> {
    if let Some(code) =
        require_terminal("Add --json or --headless to print the comparison instead.")
    {
        return Ok(code);
    }
    let signals = watch_signals()?;
    let labels: Vec<String> = entries.iter().map(|e| e.label.clone()).collect();
    let starts = entries
        .into_iter()
        .map(|entry| LaneStart::fresh(entry.experiment, entry.base_dir))
        .collect();
    let mut source = LiveSource::new(spawn_driver(starts, threads, false)?, None);
    let mut app = App::new(Theme::from_env(ui.ascii));
    app.compare = Some(CompareView::new(&labels, &app));
    let result = show(&mut source, &mut app, ui, None, &signals);
    source.shut_down(JOIN_TIMEOUT);
    result?;
    Ok(exit_code(&signals))
}

/// Opens the dashboard on a recording: played with seeking, or followed while it grows.
pub fn replay(file: &Path, follow: bool, ui: &UiArgs, cast: Option<&Path>) -> Result<ExitCode> {
    let instead = format!(
        "To read the recording without a screen use `gradlab export {} --csv OUT.csv` or jq.",
        file.display()
    );
    if let Some(code) = require_terminal(&instead) {
        return Ok(code);
    }
    let signals = watch_signals()?;
    let mut app = App::new(Theme::from_env(ui.ascii));
    if follow {
        let mut source = FollowSource::open(file)
            .with_context(|| format!("cannot follow {}", file.display()))?;
        app.replay = Some(FollowSource::view(file));
        show(&mut source, &mut app, ui, cast, &signals)?;
    } else {
        // Indexing reads the whole file once: done before the screen opens, so a bad file
        // is reported on a normal terminal.
        let mut source = ReplaySource::open(file)
            .with_context(|| format!("cannot replay {}", file.display()))?;
        app.replay = Some(source.view());
        source
            .start(&mut app, &mut playback::apply)
            .with_context(|| format!("cannot replay {}", file.display()))?;
        show(&mut source, &mut app, ui, cast, &signals)?;
    }
    Ok(exit_code(&signals))
}

fn exit_code(signals: &Signals) -> ExitCode {
    match signals.caught.load(Ordering::Relaxed) {
        0 => ExitCode::SUCCESS,
        // The shell convention for "ended by signal N".
        signal => ExitCode::from(128 + signal as u8),
    }
}

/// Draws `app` fed by `source` until quit or a signal; the terminal is restored on every
/// path out, and the cast closed.
fn show(
    source: &mut dyn EventSource,
    app: &mut App,
    ui: &UiArgs,
    cast_path: Option<&Path>,
    signals: &Signals,
) -> Result<()> {
    let cast = match cast_path {
        Some(path) => {
            let (width, height) = ratatui::crossterm::terminal::size().unwrap_or((80, 24));
            Some(
                SharedCast::create(path, width, height)
                    .with_context(|| format!("cannot write the cast {}", path.display()))?,
            )
        }
        None => None,
    };
    install_panic_hook();
    let mut screen = Screen::enter(cast.clone())?;
    let result = event::run(
        &mut screen.terminal,
        app,
        source,
        &signals.stop,
        ui.fps,
        cast.as_ref(),
    );
    drop(screen);
    if let (Some(cast), Some(path)) = (cast, cast_path)
        && let Err(e) = cast.close()
    {
        eprintln!("gradlab: the cast {} is incomplete: {e}", path.display());
    }
    result
}

/// Raw mode and the alternate screen, undone on drop (normal exit, error or UI-thread panic
/// unwinding through it).
struct Screen {
    terminal: DashTerminal,
}

impl Screen {
    fn enter(cast: Option<SharedCast>) -> Result<Self> {
        enable_raw_mode().context("cannot switch the terminal to raw mode")?;
        if let Err(error) = execute!(std::io::stdout(), EnterAlternateScreen) {
            restore_terminal();
            return Err(error).context("cannot open the alternate screen");
        }
        match Terminal::new(CrosstermBackend::new(CastingWriter::new(
            std::io::stdout(),
            cast,
        ))) {
            Ok(mut terminal) => {
                let _ = terminal.hide_cursor();
                Ok(Self { terminal })
            }
            Err(error) => {
                restore_terminal();
                Err(error).context("cannot draw on this terminal")
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Leaves the alternate screen and raw mode and shows the cursor; safe to call twice.
fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), LeaveAlternateScreen, Show);
}

/// Restores the terminal before a panic message is printed, but only for panics on this (the
/// UI) thread: the trainer thread catches its own panics and reports them as an event, and
/// tearing the screen down under the live dashboard would leave the user in a broken state.
fn install_panic_hook() {
    let ui_thread = std::thread::current().id();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == ui_thread {
            restore_terminal();
        }
        previous(info);
    }));
}
