//! Replay on the dashboard side: what the header shows of a recording and the requests
//! `update` makes of the replay source. The clock that plays a recording lives in `update`
//! (driven by `Msg::Tick`), so tests play a recording without sleeping.

use super::theme::Theme;
use ratatui::text::Span;

/// Playback speeds `+`/`-` step through, as multiples of [`BASE_STEPS_PER_SEC`].
pub const SPEEDS: &[f64] = &[0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
/// Index into [`SPEEDS`] a replay starts at (×1).
pub const DEFAULT_SPEED: usize = 2;
/// Simulated training steps per second at ×1: about what a small net trains at live.
pub const BASE_STEPS_PER_SEC: f64 = 50.0;

/// What `update` asks of the replay source.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReplayRequest {
    /// Show the recording up to this step of the current run (playing).
    PlayTo(u64),
    /// Take in what a followed file gained since the last poll.
    Poll {
        /// The dashboard's clock, in seconds: how long the file has been quiet.
        now: f64,
    },
    /// Move by `steps` from step `from` within the current run.
    SeekBy {
        /// The step shown now.
        from: u64,
        /// Steps to move (negative: back).
        steps: i64,
    },
    /// Start of the recording.
    Start,
    /// End of the recording.
    End,
    /// Just past the next intervention after step `from`.
    NextMarker {
        /// The step shown now.
        from: u64,
    },
    /// Just past the previous intervention before step `from`.
    PrevMarker {
        /// The step shown now.
        from: u64,
    },
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
    /// The simulated step playback has reached (NaN: take it from the step shown).
    pub clock: f64,
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
            clock: f64::NAN,
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

    /// The next faster speed.
    pub fn faster(&mut self) {
        self.speed = (self.speed + 1).min(SPEEDS.len() - 1);
    }

    /// The next slower speed.
    pub fn slower(&mut self) {
        self.speed = self.speed.saturating_sub(1);
    }
}

/// Header spans for replay mode: `replay run.jsonl │ at 812/2000 │ ▶ ×4`.
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
