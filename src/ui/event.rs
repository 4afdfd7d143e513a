//! The dashboard loop: drain trainer events, forward commands, redraw at a capped rate, read
//! keys. It never blocks the trainer: events arrive over an unbounded channel and commands
//! are sent without waiting.

use super::app::{App, Msg, update};
use super::render;
use crate::trainer::TrainerHandle;
use anyhow::Result;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event as TermEvent};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError, channel};
use std::time::{Duration, Instant};

/// Longest the loop sleeps waiting for a key, so signals and trainer events are seen quickly
/// even at a low frame rate.
const MAX_IDLE: Duration = Duration::from_millis(100);

/// Drains every pending trainer event into `app`; false if nothing arrived.
pub fn drain_events(app: &mut App, handle: &TrainerHandle) -> bool {
    let mut changed = false;
    loop {
        match handle.events.try_recv() {
            Ok(event) => {
                update(app, Msg::Trainer(event));
                changed = true;
            }
            Err(TryRecvError::Empty) => return changed,
            Err(TryRecvError::Disconnected) => {
                if !app.trainer_gone {
                    update(app, Msg::TrainerGone);
                    changed = true;
                }
                return changed;
            }
        }
    }
}

/// Reads terminal input on its own thread.
///
/// crossterm 0.29 spins inside `event::poll` once the terminal is gone (a read returning 0 or
/// EIO never leaves its inner loop), which is exactly what a dropped SSH connection does. With
/// the reads on this thread, the loop below still sees the SIGHUP flag and exits, and the
/// process ends with it.
fn spawn_input_reader() -> Result<Receiver<TermEvent>> {
    let (tx, rx) = channel();
    std::thread::Builder::new()
        .name("gradlab-input".into())
        .spawn(move || {
            while let Ok(event) = event::read() {
                if tx.send(event).is_err() {
                    return;
                }
            }
        })?;
    Ok(rx)
}

/// Runs the dashboard until the user quits or `stop` is raised (SIGTERM, SIGHUP, SIGINT).
pub fn run(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    handle: &TrainerHandle,
    stop: &AtomicBool,
    fps: u32,
) -> Result<()> {
    let frame_time = Duration::from_secs_f64(1.0 / f64::from(fps.clamp(1, 240)));
    let start = Instant::now();
    let mut next_draw = start;
    let mut dirty = true;
    let input = spawn_input_reader()?;
    loop {
        dirty |= drain_events(app, handle);
        let rate_before = app.steps_per_sec;
        update(app, Msg::Tick(start.elapsed().as_secs_f64()));
        dirty |= app.steps_per_sec != rate_before;
        for command in std::mem::take(&mut app.outbox) {
            // A send fails only once the trainer is gone, which `drain_events` reports.
            let _ = handle.commands.send(command);
        }
        if app.quit || stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let now = Instant::now();
        if dirty && now >= next_draw {
            if std::mem::take(&mut app.needs_full_redraw) {
                terminal.clear()?;
            }
            terminal.draw(|frame| render(frame, app))?;
            dirty = false;
            next_draw = now + frame_time;
        }
        let timeout = if dirty {
            next_draw.saturating_duration_since(Instant::now())
        } else {
            frame_time.min(MAX_IDLE)
        };
        match input.recv_timeout(timeout) {
            Ok(TermEvent::Key(key)) => {
                if let Some(msg) = app.key_to_msg(key) {
                    update(app, msg);
                    dirty = true;
                }
            }
            Ok(TermEvent::Resize(..)) => dirty = true,
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            // The terminal can no longer be read: treat it like a hang-up.
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}
