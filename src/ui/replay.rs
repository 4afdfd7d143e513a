//! Replay mode on the dashboard side: the replay key table, what `update` does with replay
//! keys, and the header/status/help text while a recording is shown.
//!
//! Seeking needs the file, which lives in the event loop's source
//! ([`super::playback::ReplaySource`]), so `update` only queues [`ReplayRequest`]s here, the
//! same way live keys queue trainer commands in `App::outbox`.

use super::app::{Action, App, MAIN_KEYS, Msg};
use super::theme::Theme;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::text::Span;

/// Playback speeds `+`/`-` step through, as multiples of [`BASE_STEPS_PER_SEC`].
pub const SPEEDS: &[f64] = &[0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
/// Index into [`SPEEDS`] a replay starts at (×1).
pub const DEFAULT_SPEED: usize = 2;
/// Simulated training steps per second at ×1: about what a small net trains at live.
pub const BASE_STEPS_PER_SEC: f64 = 50.0;
/// Steps `←`/`→` jump.
pub const SEEK_STEPS: i64 = 100;
/// Steps `PgUp`/`PgDn` jump.
pub const SEEK_STEPS_FAR: i64 = 1_000;
/// The note shown when a key that would change training is pressed.
pub const TRAINING_KEYS_OFF: &str = "replay: training keys are off";

/// What a replay key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayAction {
    /// Play or pause the replay (follow mode: freeze or resume updates).
    TogglePlay,
    /// Next faster speed.
    Faster,
    /// Next slower speed.
    Slower,
    /// Jump by this many steps (negative: back).
    SeekBy(i64),
    /// Go to the start of the recording.
    SeekStart,
    /// Go to the end of the recording.
    SeekEnd,
    /// Go just past the next intervention marker.
    NextMarker,
    /// Go just past the previous intervention marker.
    PrevMarker,
    /// A key that would change training was pressed: say it is off.
    TrainingKeyOff,
}

/// A seek for the event source to carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayRequest {
    /// Move by this many steps within the current run.
    SeekBy(i64),
    /// Start of the recording.
    Start,
    /// End of the recording.
    End,
    /// Just past the next marker.
    NextMarker,
    /// Just past the previous marker.
    PrevMarker,
}

/// One replay key: shown in the help overlay and used to map keys.
#[derive(Clone, Copy, Debug)]
pub struct ReplayBinding {
    /// The key.
    pub code: KeyCode,
    /// What it does.
    pub action: ReplayAction,
    /// The key as the help overlay spells it ("" to hide a duplicate).
    pub key_label: &'static str,
    /// What it does, in words.
    pub help: &'static str,
}

const fn rbind(
    code: KeyCode,
    action: ReplayAction,
    key_label: &'static str,
    help: &'static str,
) -> ReplayBinding {
    ReplayBinding {
        code,
        action,
        key_label,
        help,
    }
}

/// Keys while replaying, looked up before the main table. `[`/`]` mean markers here: the
/// learning rate cannot change in a recording.
pub const REPLAY_KEYS: &[ReplayBinding] = &[
    rbind(
        KeyCode::Char(' '),
        ReplayAction::TogglePlay,
        "space",
        "play / pause the replay",
    ),
    rbind(
        KeyCode::Char('+'),
        ReplayAction::Faster,
        "+ -",
        "faster / slower",
    ),
    rbind(KeyCode::Char('='), ReplayAction::Faster, "", ""),
    rbind(KeyCode::Char('-'), ReplayAction::Slower, "", ""),
    rbind(
        KeyCode::Left,
        ReplayAction::SeekBy(-SEEK_STEPS),
        "← →",
        "100 steps back / forward",
    ),
    rbind(KeyCode::Right, ReplayAction::SeekBy(SEEK_STEPS), "", ""),
    rbind(
        KeyCode::PageUp,
        ReplayAction::SeekBy(-SEEK_STEPS_FAR),
        "PgUp PgDn",
        "1000 steps back / forward",
    ),
    rbind(
        KeyCode::PageDown,
        ReplayAction::SeekBy(SEEK_STEPS_FAR),
        "",
        "",
    ),
    rbind(
        KeyCode::Home,
        ReplayAction::SeekStart,
        "Home End",
        "start / end of the recording",
    ),
    rbind(KeyCode::End, ReplayAction::SeekEnd, "", ""),
    rbind(
        KeyCode::Char('['),
        ReplayAction::PrevMarker,
        "[ ]",
        "previous / next intervention",
    ),
    rbind(KeyCode::Char(']'), ReplayAction::NextMarker, "", ""),
];

/// Main-screen actions that only change the view, so they keep working in replay.
fn is_view_action(action: Action) -> bool {
    matches!(
        action,
        Action::CursorUp
            | Action::CursorDown
            | Action::TogglePaths
            | Action::ToggleHelp
            | Action::Close
            | Action::Quit
    )
}

/// The replay state the dashboard shows and the keys change.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayView {
    /// The recording's file name, for the header.
    pub file: String,
    /// Following a file still being written (no seeking).
    pub follow: bool,
    /// Playing (follow: taking in new records).
    pub playing: bool,
    /// Index into [`SPEEDS`].
    pub speed: usize,
    /// The last step of the run being shown (follow: the newest seen).
    pub last_step: u64,
    /// Which run of the recording is shown (0-based; a reset or preset load starts a new one).
    pub run: usize,
    /// Runs in the recording.
    pub runs: usize,
    /// The replay reached the end of the file.
    pub at_end: bool,
    /// A short note for the status line, e.g. why a key did nothing.
    pub note: Option<String>,
    /// Seeks waiting for the event source.
    pub requests: Vec<ReplayRequest>,
}

impl ReplayView {
    /// A view of `file`, playing at ×1.
    pub fn new(file: impl Into<String>, follow: bool) -> Self {
        Self {
            file: file.into(),
            follow,
            playing: true,
            speed: DEFAULT_SPEED,
            last_step: 0,
            run: 0,
            runs: 1,
            at_end: false,
            note: None,
            requests: Vec::new(),
        }
    }

    /// Simulated steps per second at the current speed.
    pub fn steps_per_sec(&self) -> f64 {
        BASE_STEPS_PER_SEC * self.speed_factor()
    }

    /// The speed as a multiple of ×1.
    pub fn speed_factor(&self) -> f64 {
        SPEEDS.get(self.speed).copied().unwrap_or(1.0)
    }
}

/// Maps a key while replaying: replay keys first, then view keys; training keys say they
/// are off instead of doing nothing silently.
pub fn key_to_msg(key: KeyEvent) -> Option<Msg> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if !ctrl && let Some(b) = REPLAY_KEYS.iter().find(|b| b.code == key.code) {
        return Some(Msg::Replay(b.action));
    }
    let binding = MAIN_KEYS
        .iter()
        .find(|b| b.code == key.code && b.ctrl == ctrl)?;
    Some(if is_view_action(binding.action) {
        Msg::Key(binding.action)
    } else {
        Msg::Replay(ReplayAction::TrainingKeyOff)
    })
}

/// Applies a replay key to the state; seeks are queued for the event source.
pub fn on_action(app: &mut App, action: ReplayAction) {
    let Some(view) = app.replay.as_mut() else {
        return;
    };
    view.note = None;
    let request = match action {
        ReplayAction::TogglePlay => {
            view.playing = !view.playing;
            if view.playing && view.at_end && !view.follow {
                // Play at the end starts over, as media players do.
                Some(ReplayRequest::Start)
            } else {
                None
            }
        }
        ReplayAction::Faster => {
            view.speed = (view.speed + 1).min(SPEEDS.len() - 1);
            None
        }
        ReplayAction::Slower => {
            view.speed = view.speed.saturating_sub(1);
            None
        }
        ReplayAction::SeekBy(steps) => Some(ReplayRequest::SeekBy(steps)),
        ReplayAction::SeekStart => Some(ReplayRequest::Start),
        ReplayAction::SeekEnd => Some(ReplayRequest::End),
        ReplayAction::NextMarker => Some(ReplayRequest::NextMarker),
        ReplayAction::PrevMarker => Some(ReplayRequest::PrevMarker),
        ReplayAction::TrainingKeyOff => {
            view.note = Some(TRAINING_KEYS_OFF.into());
            None
        }
    };
    if let Some(request) = request {
        if view.follow {
            view.note = Some("follow: seeking is off (replay the file without --follow)".into());
        } else {
            view.requests.push(request);
        }
    }
}

/// Header spans for replay mode: `replay run.jsonl │ step 812/2000 │ ▶ ×4`.
pub fn header_spans(view: &ReplayView, step: u64, theme: &Theme) -> Vec<Span<'static>> {
    let bar = if theme.ascii { " | " } else { " │ " };
    let mode = if view.follow { "follow " } else { "replay " };
    let (play, pause) = if theme.ascii {
        (">", "||")
    } else {
        ("▶", "⏸")
    };
    let motion = if view.follow {
        if view.playing { "live" } else { "frozen" }.to_string()
    } else if view.playing {
        format!("{play} ×{}", fmt_speed(view.speed_factor()))
    } else {
        format!("{pause} ×{}", fmt_speed(view.speed_factor()))
    };
    let mut spans = vec![
        Span::styled(mode, theme.paused()),
        Span::styled(view.file.clone(), theme.active()),
        Span::styled(bar, theme.dim()),
        Span::raw(format!("at {step}/{}", view.last_step)),
    ];
    if view.runs > 1 {
        spans.push(Span::styled(
            format!(" run {}/{}", view.run + 1, view.runs),
            theme.dim(),
        ));
    }
    spans.extend([
        Span::styled(bar, theme.dim()),
        Span::styled(motion, theme.key()),
    ]);
    spans
}

fn fmt_speed(factor: f64) -> String {
    if factor >= 1.0 {
        format!("{factor:.0}")
    } else {
        format!("{factor}")
    }
}

/// The status line hints while replaying, or the pending note.
pub fn status_spans(view: &ReplayView, theme: &Theme) -> Vec<Span<'static>> {
    if let Some(note) = &view.note {
        return vec![Span::styled(format!(" {note}"), theme.paused())];
    }
    let hints: &[(&str, &str)] = if view.follow {
        &[
            ("space", "freeze"),
            ("↑↓", "layer"),
            ("?", "help"),
            ("q", "detach"),
        ]
    } else {
        &[
            ("space", "play"),
            ("+ -", "speed"),
            ("← →", "±100"),
            ("Home End", "ends"),
            ("[ ]", "markers"),
            ("?", "help"),
            ("q", "quit"),
        ]
    };
    let mut spans = vec![Span::raw(" ")];
    for (key, what) in hints {
        spans.push(Span::styled((*key).to_string(), theme.key()));
        spans.push(Span::styled(format!(" {what}  "), theme.dim()));
    }
    spans
}

/// Rows of the help overlay: (key, what it does) for the keys in force.
pub fn help_rows(app: &App) -> Vec<(&'static str, &'static str)> {
    let main = MAIN_KEYS
        .iter()
        .filter(|b| !b.key_label.is_empty())
        .filter(|b| app.replay.is_none() || is_view_action(b.action))
        .map(|b| (b.key_label, b.help));
    match &app.replay {
        None => main.collect(),
        Some(view) => {
            let replay = REPLAY_KEYS
                .iter()
                .filter(|b| !b.key_label.is_empty())
                .filter(|b| !view.follow || b.action == ReplayAction::TogglePlay)
                .map(|b| (b.key_label, b.help));
            replay
                .chain(main)
                .chain([("", "training keys are off while replaying")])
                .collect()
        }
    }
}
