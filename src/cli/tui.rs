//! `gradlab` / `gradlab tui`: the dashboard on a real terminal, and getting the terminal back
//! whatever happens.

use super::{PresetArgs, UiArgs};
use crate::trainer::{Command, spawn_trainer};
use crate::ui::app::App;
use crate::ui::event;
use crate::ui::theme::Theme;
use anyhow::{Context, Result};
use ratatui::crossterm::cursor::Show;
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::{DefaultTerminal, Terminal, backend::CrosstermBackend};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long to wait for the trainer to finish its current step after `Shutdown`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens the dashboard on the preset; refuses (exit 2) when stdout is not a terminal.
pub fn run(preset: &PresetArgs, ui: &UiArgs) -> Result<ExitCode> {
    if !std::io::stdout().is_terminal() {
        eprintln!(
            "gradlab: stdout is not a terminal, so the dashboard cannot be drawn.\n\
             To train without a screen use `gradlab run --preset {}` (add --json for machine-readable output).",
            preset.preset
        );
        return Ok(ExitCode::from(2));
    }
    let experiment = preset.load()?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install signal handlers")?;
    }
    let handle = spawn_trainer(experiment, preset.base_dir())?;
    install_panic_hook();
    let mut screen = Screen::enter()?;
    let mut app = App::new(Theme::from_env(ui.ascii));
    let result = event::run(&mut screen.terminal, &mut app, &handle, &stop, ui.fps);
    drop(screen);
    let _ = handle.commands.send(Command::Shutdown);
    // The trainer stops after its current step; a stuck one must not keep the shell waiting.
    let deadline = Instant::now() + JOIN_TIMEOUT;
    while !handle.thread.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if handle.thread.is_finished() {
        let _ = handle.thread.join();
    }
    result?;
    Ok(if stop.load(Ordering::Relaxed) {
        // Conventional exit status for "terminated by a signal" when we handled it ourselves.
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Raw mode and the alternate screen, undone on drop (normal exit, error or UI-thread panic
/// unwinding through it).
struct Screen {
    terminal: DefaultTerminal,
}

impl Screen {
    fn enter() -> Result<Self> {
        enable_raw_mode().context("cannot switch the terminal to raw mode")?;
        if let Err(error) = execute!(std::io::stdout(), EnterAlternateScreen) {
            restore_terminal();
            return Err(error).context("cannot open the alternate screen");
        }
        match Terminal::new(CrosstermBackend::new(std::io::stdout())) {
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
