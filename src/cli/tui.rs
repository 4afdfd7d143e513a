//! `gradlab` / `gradlab tui`: the dashboard on a real terminal, and getting the terminal back
//! whatever happens.

use super::{DashArgs, PresetArgs, UiArgs};
use crate::compare::CompareEntry;
use crate::protocol::RunState;
use crate::recording::Header;
use crate::sweep::cores;
use crate::trainer::{LaneStart, spawn_driver};
use crate::ui::app::{App, Msg};
use crate::ui::cast::{CastingWriter, SharedCast};
use crate::ui::event::{self, EventSource};
use crate::ui::follow::FollowSource;
use crate::ui::live::LiveSource;
use crate::ui::playback::ReplaySource;
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
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

/// How long to wait for the trainer to finish its current step after `Shutdown`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(3);

/// The terminal the dashboard draws on: stdout, copied into a cast with `--cast`.
type DashTerminal = Terminal<CrosstermBackend<CastingWriter<Stdout>>>;

/// Refuses (exit 2) when stdout is not a terminal, with what to run instead.
pub(super) fn require_terminal(instead: &str) -> Option<ExitCode> {
    if std::io::stdout().is_terminal() {
        return None;
    }
    crate::out::tell!(
        "gradlab: stdout is not a terminal, so the dashboard cannot be drawn.\n{instead}"
    );
    Some(ExitCode::from(2))
}

/// Turns SIGTERM, SIGHUP, SIGINT and SIGTSTP into messages in the dashboard's inbox: the
/// loop stops (or suspends) between two frames and everything is closed in order.
fn watch_signals(inbox: Sender<Msg>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGTSTP};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP, SIGINT, SIGTSTP])
        .context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("gradlab-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let name = match signal {
                    SIGINT => "SIGINT",
                    SIGTERM => "SIGTERM",
                    SIGHUP => "SIGHUP",
                    SIGTSTP => "SIGTSTP",
                    _ => continue,
                };
                if inbox.send(Msg::Signal(name)).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}

/// The shell convention for "ended by signal N".
fn exit_code(app: &App) -> ExitCode {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    match app.ended_by {
        Some("SIGINT") => ExitCode::from(128 + SIGINT as u8),
        Some("SIGTERM") => ExitCode::from(128 + SIGTERM as u8),
        Some("SIGHUP") => ExitCode::from(128 + SIGHUP as u8),
        _ if app.recording_failed.is_some() => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

/// The weights `--load-weights` names, checked against the preset now, so a file that does
/// not fit is refused on the terminal before the dashboard opens.
fn start_weights(
    dash: &DashArgs,
    experiment: &crate::config::Experiment,
    base_dir: Option<&std::path::Path>,
) -> Result<Option<std::sync::Arc<crate::weights::Weights>>> {
    let Some(path) = &dash.load_weights else {
        return Ok(None);
    };
    if dash.recording.record.is_some() {
        anyhow::bail!(
            "--record cannot be combined with --load-weights {}: a recording is replayed by \
             `gradlab reproduce` from the preset's initial weights",
            path.display()
        );
    }
    let weights = super::weights::read(path)?;
    let mut probe = crate::learner::build_learner(experiment.clone(), base_dir)?;
    probe.load_weights(&weights)?;
    Ok(Some(std::sync::Arc::new(weights)))
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
    let app = App::new(Theme::from_env(ui.ascii));
    run_app(experiment, preset.base_dir(), false, app, ui, dash)
}

/// Opens `app` on a live run of `experiment`, started paused if `paused` (the terminal
/// checked by the caller).
pub(super) fn run_app(
    experiment: crate::config::Experiment,
    base_dir: Option<std::path::PathBuf>,
    paused: bool,
    mut app: App,
    ui: &UiArgs,
    dash: &DashArgs,
) -> Result<ExitCode> {
    if let (Some(record), Some(cast)) = (&dash.recording.record, &dash.cast)
        && crate::recording::output::same_file(record, cast)
    {
        anyhow::bail!(
            "--record and --cast both name {}: give each its own file",
            record.display()
        );
    }
    if let Some(cast) = &dash.cast
        && cast.exists()
        && !dash.recording.force
    {
        anyhow::bail!("{} exists; pass --force to replace it", cast.display());
    }
    let weights = start_weights(dash, &experiment, base_dir.as_deref())?;
    let recorder = dash.recording.open(&Header::new(&experiment, None))?;
    let (inbox_tx, inbox) = channel();
    watch_signals(inbox_tx.clone())?;
    let mut start = LaneStart::fresh(experiment, base_dir);
    if let Some(weights) = weights {
        start = start.with_weights(weights);
    }
    let driver = spawn_driver(vec![start], cores(), paused)?;
    let mut source = LiveSource::start(driver, recorder, inbox_tx.clone(), ui.fps)?;
    let result = show(
        &mut source,
        &mut app,
        &inbox,
        inbox_tx,
        ui,
        dash.cast.as_deref(),
    );
    let reason = match (app.ended_by, &app.run().state) {
        (Some(signal), _) => signal.to_string(),
        (None, RunState::Crashed(why)) => format!("the trainer crashed: {why}"),
        (None, _) if result.is_err() => "the dashboard failed".to_string(),
        (None, _) => "quit".to_string(),
    };
    let closed = source.close(&reason, &inbox, JOIN_TIMEOUT);
    result?;
    if let Some(path) = &dash.recording.record {
        if let Err(e) = closed {
            return Err(e)
                .with_context(|| format!("cannot write the recording {}", path.display()));
        }
        if let Some(why) = &app.recording_failed {
            crate::out::tell!(
                "gradlab: the recording {} stopped early: {why}; it holds the run up to that point",
                path.display()
            );
        }
    }
    Ok(exit_code(&app))
}

/// Opens the compare view on `entries`, trained in lock-step over `threads` threads; refuses
/// (exit 2) when stdout is not a terminal.
pub fn compare(entries: Vec<CompareEntry>, ui: &UiArgs, threads: usize) -> Result<ExitCode> {
    if let Some(code) =
        require_terminal("Add --json or --headless to print the comparison instead.")
    {
        return Ok(code);
    }
    let (inbox_tx, inbox) = channel();
    watch_signals(inbox_tx.clone())?;
    let labels: Vec<Option<String>> = entries.iter().map(|e| Some(e.label.clone())).collect();
    let starts = entries
        .into_iter()
        .map(|entry| LaneStart::fresh(entry.experiment, entry.base_dir))
        .collect();
    let driver = spawn_driver(starts, threads, false)?;
    let mut source = LiveSource::start(driver, None, inbox_tx.clone(), ui.fps)?;
    let mut app = App::with_runs(Theme::from_env(ui.ascii), labels);
    let result = show(&mut source, &mut app, &inbox, inbox_tx, ui, None);
    let _ = source.close("quit", &inbox, JOIN_TIMEOUT);
    result?;
    Ok(exit_code(&app))
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
    let (inbox_tx, inbox) = channel();
    watch_signals(inbox_tx.clone())?;
    let theme = Theme::from_env(ui.ascii);
    let mut app;
    if follow {
        let mut source = FollowSource::open(file);
        app = App::replaying(theme, FollowSource::view(file));
        show(&mut source, &mut app, &inbox, inbox_tx, ui, cast)?;
    } else {
        // Indexing reads the whole file once: done before the screen opens, so a bad file
        // is reported on a normal terminal.
        let mut source = ReplaySource::open(file)
            .with_context(|| format!("cannot replay {}", file.display()))?;
        app = App::replaying(theme, source.view());
        let first = source
            .start()
            .with_context(|| format!("cannot replay {}", file.display()))?;
        for msg in first {
            event::apply(&mut app, &mut source, msg);
        }
        show(&mut source, &mut app, &inbox, inbox_tx, ui, cast)?;
    }
    Ok(exit_code(&app))
}

/// Draws `app` fed by `source` and the inbox until quit or a signal; the terminal is restored
/// on every path out, and the cast closed.
fn show(
    source: &mut dyn EventSource,
    app: &mut App,
    inbox: &Receiver<Msg>,
    inbox_tx: Sender<Msg>,
    ui: &UiArgs,
    cast_path: Option<&Path>,
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
    event::spawn_input_reader(inbox_tx)?;
    let result = event::run(&mut screen, app, source, inbox, ui.fps, cast.as_ref());
    drop(screen);
    if let (Some(cast), Some(path)) = (cast, cast_path)
        && let Err(e) = cast.close()
    {
        crate::out::tell!("gradlab: the cast {} is incomplete: {e}", path.display());
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

impl event::Screen<CrosstermBackend<CastingWriter<Stdout>>> for Screen {
    fn terminal(&mut self) -> &mut DashTerminal {
        &mut self.terminal
    }

    /// Restores the shell's terminal, stops the process as SIGTSTP's default action would
    /// (the shell's `fg` continues it), then takes the terminal back.
    fn suspend(&mut self) -> Result<()> {
        restore_terminal();
        signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGTSTP)
            .context("cannot suspend")?;
        enable_raw_mode().context("cannot switch the terminal back to raw mode")?;
        execute!(std::io::stdout(), EnterAlternateScreen)
            .context("cannot reopen the alternate screen")?;
        let _ = self.terminal.hide_cursor();
        event::repaint_all(&mut self.terminal)?;
        Ok(())
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
