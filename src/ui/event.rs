//! The dashboard loop: one inbox of [`Msg`]s (keys from the input thread, driver events,
//! signals), a clock tick each turn, `update` for every message, the effects it returns
//! carried out by an [`EventSource`], and a redraw at a capped rate. It never blocks the
//! driver: events arrive over an unbounded channel and commands are sent without waiting.

use super::app::{App, Effect, Msg, update};
use super::cast::SharedCast;
use super::render;
use crate::protocol::{Event, LaneEvent};
use anyhow::Result;
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::crossterm::event::{self, Event as TermEvent};
use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

/// Longest the loop sleeps waiting for a message, so ticks (rates, replay) keep coming even at
/// a low frame rate.
const MAX_IDLE: Duration = Duration::from_millis(100);

/// Carries out what `update` asks for and watches what it is told: a live driver (optionally
/// recording), or a recording played back or followed.
pub trait EventSource {
    /// Carries out one effect; the messages it produces are applied next, in order.
    fn perform(&mut self, effect: Effect) -> Vec<Msg>;

    /// Sees each message before `update` takes it (a live source records its run's events);
    /// returns messages to apply after it (e.g. that the recording stopped).
    fn observe(&mut self, _msg: &Msg) -> Vec<Msg> {
        Vec::new()
    }
}

/// What applying a message led to.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Effects only the terminal can carry out (suspending), which no source can.
    pub own: Vec<Effect>,
    /// Messages applied, the first one included.
    pub messages: usize,
}

/// Applies `msg` and everything it leads to.
pub fn apply(app: &mut App, source: &mut dyn EventSource, msg: Msg) -> Outcome {
    let mut outcome = Outcome::default();
    let own = &mut outcome.own;
    let mut queue = VecDeque::from([msg]);
    while let Some(msg) = queue.pop_front() {
        outcome.messages += 1;
        let after = source.observe(&msg);
        for effect in update(app, msg) {
            match effect {
                Effect::Suspend => own.push(effect),
                other => queue.extend(source.perform(other)),
            }
        }
        queue.extend(after);
    }
    outcome
}

/// Reads terminal input on its own thread into the inbox.
///
/// crossterm 0.29 spins inside `event::poll` once the terminal is gone (a read returning 0 or
/// EIO never leaves its inner loop), which is exactly what a dropped SSH connection does. With
/// the reads on this thread the loop keeps running, and a failed read is a hang-up.
pub fn spawn_input_reader(inbox: Sender<Msg>) -> Result<()> {
    std::thread::Builder::new()
        .name("gradlab-input".into())
        .spawn(move || {
            loop {
                let msg = match event::read() {
                    Ok(TermEvent::Key(key)) => Msg::Input(key),
                    Ok(TermEvent::Resize(width, height)) => Msg::Resized { width, height },
                    Ok(_) => continue,
                    Err(_) => Msg::Signal("SIGHUP"),
                };
                let hung_up = msg == Msg::Signal("SIGHUP");
                if inbox.send(msg).is_err() || hung_up {
                    return;
                }
            }
        })?;
    Ok(())
}

/// What the loop asks of the real terminal besides drawing.
pub trait Screen<B: Backend> {
    /// The terminal to draw on.
    fn terminal(&mut self) -> &mut Terminal<B>;
    /// Hands the terminal back to the shell until the process is resumed, then takes it again.
    fn suspend(&mut self) -> Result<()>;
}

/// Runs the dashboard until the user quits, a signal stops it, or the inbox closes.
pub fn run<B: Backend>(
    screen: &mut dyn Screen<B>,
    app: &mut App,
    source: &mut dyn EventSource,
    inbox: &Receiver<Msg>,
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
    loop {
        let mut own = Vec::new();
        let received = if dirty {
            // A frame is due anyway: sleep to it and take everything that came meanwhile,
            // rather than wake for each of the hundreds of snapshots a second a fast run
            // sends (each wake-up takes a core from the training threads).
            std::thread::sleep(next_draw.saturating_duration_since(Instant::now()));
            match inbox.try_recv() {
                Ok(msg) => Ok(msg),
                Err(TryRecvError::Empty) => Err(RecvTimeoutError::Timeout),
                Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            }
        } else {
            inbox.recv_timeout(frame_time.min(MAX_IDLE))
        };
        match received {
            Ok(msg) => {
                own.extend(deliver(app, source, cast, msg));
                // Everything pending is applied before the next frame.
                loop {
                    match inbox.try_recv() {
                        Ok(msg) => own.extend(deliver(app, source, cast, msg)),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => return Ok(()),
                    }
                }
                dirty = true;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        let before = rates(app);
        let tick = apply(app, source, Msg::Tick(start.elapsed().as_secs_f64()));
        dirty |= tick.messages > 1 || before != rates(app);
        own.extend(tick.own);
        if app.quit {
            return Ok(());
        }
        if own.contains(&Effect::Suspend) {
            screen.suspend()?;
            app.needs_full_redraw = true;
            dirty = true;
        }
        let now = Instant::now();
        if dirty && now >= next_draw {
            let terminal = screen.terminal();
            if std::mem::take(&mut app.needs_full_redraw) {
                repaint_all(terminal)?;
            }
            terminal.draw(|frame| render(frame, app))?;
            dirty = false;
            next_draw = now + frame_time;
        }
    }
}

/// Clears the screen and forgets what was drawn, so the next frame repaints every cell,
/// without asking the terminal where its cursor is: `Terminal::clear` does, and the input
/// thread, which reads the terminal all the time, would swallow the answer.
pub fn repaint_all<B: Backend>(terminal: &mut Terminal<B>) -> Result<(), B::Error> {
    let size = terminal.size()?;
    terminal.resize(ratatui::layout::Rect::new(0, 0, size.width, size.height))
}

/// The figures a tick can change without any event: each run's measured rate.
fn rates(app: &App) -> Vec<Option<u64>> {
    app.runs
        .iter()
        .map(|r| r.steps_per_sec.map(|v| v.to_bits()))
        .collect()
}

/// Applies one inbox message; a resize and an applied command also go to the cast.
pub fn deliver(
    app: &mut App,
    source: &mut dyn EventSource,
    cast: Option<&SharedCast>,
    msg: Msg,
) -> Vec<Effect> {
    if let Some(cast) = cast {
        match &msg {
            Msg::Resized { width, height } => cast.resize(*width, *height),
            Msg::Lane(LaneEvent {
                event: Event::Applied { command, .. },
                ..
            }) => cast.marker(&command.label()),
            _ => {}
        }
    }
    apply(app, source, msg).own
}
