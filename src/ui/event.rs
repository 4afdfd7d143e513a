//! The dashboard loop: take in events from a source, forward what the keys asked for, redraw
//! at a capped rate, read keys. It never blocks the trainer: events arrive over an unbounded
//! channel and commands are sent without waiting.
//!
//! Where events come from is an [`EventSource`]: the live driver
//! ([`super::live::LiveSource`], optionally recording what it passes on), or a recording ([`super::playback::ReplaySource`],
//! [`super::playback::FollowSource`]). Either way they reach the same `update`.

use super::app::{App, Msg, update};
use super::cast::SharedCast;
use super::render;
use crate::protocol::Event;
use anyhow::Result;
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::crossterm::event::{self, Event as TermEvent};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError, channel};
use std::time::{Duration, Instant};

/// Longest the loop sleeps waiting for a key, so signals and trainer events are seen quickly
/// even at a low frame rate.
const MAX_IDLE: Duration = Duration::from_millis(100);

/// Where the dashboard's events come from, and where its requests go.
pub trait EventSource {
    /// Passes every event that is due to `feed` (which applies it to `app`); true if
    /// anything may have changed on screen.
    fn pump(&mut self, app: &mut App, feed: &mut dyn FnMut(&mut App, Event)) -> bool;

    /// Carries out what `update` queued: trainer commands, or seeks in a recording. True if
    /// anything may have changed on screen.
    fn dispatch(&mut self, app: &mut App, feed: &mut dyn FnMut(&mut App, Event)) -> bool;
}

/// Passes every pending message of `events` to `take`; reports the sender's end once as
/// `TrainerGone`. True if anything arrived.
pub fn drain<T>(events: &Receiver<T>, app: &mut App, mut take: impl FnMut(&mut App, T)) -> bool {
    let mut changed = false;
    loop {
        match events.try_recv() {
            Ok(event) => {
                take(app, event);
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

/// The feed the loop uses: applies one event; an applied command also becomes a marker in
/// the cast.
pub fn feed_with_cast(cast: Option<&SharedCast>) -> impl FnMut(&mut App, Event) + '_ {
    move |app, event| {
        if let (Some(cast), Event::Applied { command, .. }) = (cast, &event) {
            cast.marker(&command.label());
        }
        update(app, Msg::Trainer(event));
    }
}

/// Runs the dashboard until the user quits or `stop` is raised (SIGTERM, SIGHUP, SIGINT).
pub fn run<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    source: &mut dyn EventSource,
    stop: &AtomicBool,
    fps: u32,
    cast: Option<&SharedCast>,
) -> Result<()>
where
    B::Error: Send + Sync + 'static,
{
    let frame_time = Duration::from_secs_f64(1.0 / f64::from(fps.clamp(1, 240)));
    let start = Instant::now();
    let mut next_draw = start;
    let mut dirty = true;
    let input = spawn_input_reader()?;
    let mut feed = feed_with_cast(cast);
    loop {
        dirty |= source.pump(app, &mut feed);
        let rate_before = app.steps_per_sec;
        update(app, Msg::Tick(start.elapsed().as_secs_f64()));
        dirty |= app.steps_per_sec != rate_before;
        dirty |= source.dispatch(app, &mut feed);
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
            Ok(TermEvent::Resize(width, height)) => {
                if let Some(cast) = cast {
                    cast.resize(width, height);
                }
                dirty = true;
            }
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            // The terminal can no longer be read: treat it like a hang-up.
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}
