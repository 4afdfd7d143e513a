//! The one keymap: every key of every screen, what it does, where it applies, and the words
//! the status bar, the help overlay and "not here" notes use for it. Nothing else binds or
//! spells a key.

use crate::config::{ModelKind, SkipMode};
use crate::protocol::Move;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::fmt;

/// A key as pressed and as spelled in hints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// Whether Ctrl is held.
    pub ctrl: bool,
}

const fn ch(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: false,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

impl Key {
    /// Whether a terminal key event is this key.
    pub fn matches(&self, event: &KeyEvent) -> bool {
        let held = event.modifiers.contains(KeyModifiers::CONTROL);
        event.code == self.code && held == self.ctrl
    }

    /// The key spelled for a terminal without Unicode arrows.
    pub fn ascii(&self) -> String {
        self.to_string()
            .replace('↑', "Up")
            .replace('↓', "Down")
            .replace('←', "Left")
            .replace('→', "Right")
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (true, KeyCode::Char(c)) = (self.ctrl, self.code) {
            return write!(f, "Ctrl-{}", c.to_ascii_uppercase());
        }
        match self.code {
            KeyCode::Char(' ') => write!(f, "space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Up => write!(f, "↑"),
            KeyCode::Down => write!(f, "↓"),
            KeyCode::Left => write!(f, "←"),
            KeyCode::Right => write!(f, "→"),
            KeyCode::PageUp => write!(f, "PgUp"),
            KeyCode::PageDown => write!(f, "PgDn"),
            KeyCode::Home => write!(f, "Home"),
            KeyCode::End => write!(f, "End"),
            KeyCode::Tab => write!(f, "Tab"),
            KeyCode::BackTab => write!(f, "S-Tab"),
            KeyCode::Esc => write!(f, "Esc"),
            KeyCode::Enter => write!(f, "Enter"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Move a live switch of the focused run.
    Switch(Move),
    /// Show or hide the path-length panel (MLP).
    TogglePaths,
    /// Show or hide the Jacobian spectrum and forward-signal view (MLP).
    ToggleSpectrum,
    /// Ask for single-block lesions (MLP) and show them.
    Lesion,
    /// Save the focused run's weights to a fresh file (the path shows on the status line).
    SaveWeights,
    /// Pause or resume training.
    TogglePause,
    /// One step while paused.
    StepOnce,
    /// Restart the run with the same seed.
    Reset,
    /// Cursor towards the input (or the previous picker entry).
    CursorUp,
    /// Cursor towards the output (or the next picker entry).
    CursorDown,
    /// Open the preset picker.
    OpenPicker,
    /// Show or hide the help overlay.
    ToggleHelp,
    /// Close the overlay on top.
    Close,
    /// Load the preset under the picker's cursor.
    Choose,
    /// Open the fork menu.
    OpenFork,
    /// Fork the focused run with this switch moved on the twin (None: an identical twin).
    ForkWith(Option<Move>),
    /// Compare view: side by side or overlaid.
    ToggleOverlay,
    /// Compare view: focus the next run.
    FocusNext,
    /// Compare view: focus run n (0-based).
    Focus(usize),
    /// Replay: play or pause (follow: freeze or resume).
    Play,
    /// Replay: next faster speed.
    Faster,
    /// Replay: next slower speed.
    Slower,
    /// Replay: jump by this many steps (negative: back).
    SeekBy(i64),
    /// Replay: start of the recording.
    SeekStart,
    /// Replay: end of the recording.
    SeekEnd,
    /// Replay: just past the next intervention.
    NextMarker,
    /// Replay: just past the previous intervention.
    PrevMarker,
    /// Hand the terminal back to the shell (Ctrl-Z) until `fg`.
    Suspend,
    /// Leave the dashboard.
    Quit,
    /// Show (or hide) what the focused panel plots, its units, colours and what to look for.
    Explain,
    /// Explanation overlay: focus the next panel.
    NextPanel,
    /// Explanation overlay: focus the previous panel.
    PrevPanel,
    /// Tour: the next lesson.
    NextLesson,
    /// Tour: the previous lesson.
    PrevLesson,
}

/// Which table a key is looked up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// The dashboard, live or replayed.
    Main,
    /// Replay controls, looked up before `Main` while a recording is shown.
    Replay,
    /// The fork menu is open.
    Fork,
    /// The preset picker is open.
    Picker,
    /// The guided tour runs: looked up before `Main` (no overlay open).
    Tour,
    /// The panel explanation is open.
    Explain,
}

/// What is on screen, for deciding whether a binding applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Situation {
    /// The focused run's kind of network (None before it started).
    pub kind: Option<ModelKind>,
    /// A recording is shown instead of a live run.
    pub replay: bool,
    /// The recording is being followed as it grows (no seeking).
    pub follow: bool,
    /// More than one run is shown.
    pub compare: bool,
}

/// Where a binding works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope {
    /// On MLPs.
    pub mlp: bool,
    /// On recurrent nets.
    pub rnn: bool,
    /// On a live run.
    pub live: bool,
    /// On a replayed recording.
    pub replay: bool,
    /// On a followed recording.
    pub follow: bool,
    /// With one run shown.
    pub single: bool,
    /// With several runs shown.
    pub compare: bool,
}

const ANYWHERE: Scope = Scope {
    mlp: true,
    rnn: true,
    live: true,
    replay: true,
    follow: true,
    single: true,
    compare: true,
};
/// Training keys: a live run of either kind.
const LIVE: Scope = Scope {
    replay: false,
    follow: false,
    ..ANYWHERE
};
const LIVE_MLP: Scope = Scope { rnn: false, ..LIVE };
const LIVE_RNN: Scope = Scope { mlp: false, ..LIVE };
const LIVE_SINGLE: Scope = Scope {
    compare: false,
    ..LIVE
};
const COMPARE: Scope = Scope {
    single: false,
    ..LIVE
};
const VIEW_MLP: Scope = Scope {
    rnn: false,
    ..ANYWHERE
};
const VIEW_MLP_SINGLE: Scope = Scope {
    compare: false,
    ..VIEW_MLP
};
const VIEW_RNN: Scope = Scope {
    mlp: false,
    ..ANYWHERE
};
const SEEK: Scope = Scope {
    live: false,
    follow: false,
    ..ANYWHERE
};
const PLAYBACK: Scope = Scope {
    live: false,
    ..ANYWHERE
};

impl Scope {
    /// Whether the binding works in `s`.
    pub fn allows(&self, s: &Situation) -> bool {
        let kind = match s.kind {
            Some(ModelKind::Mlp) => self.mlp,
            Some(ModelKind::Rnn) => self.rnn,
            None => true,
        };
        let screen = if s.follow {
            self.follow
        } else if s.replay {
            self.replay
        } else {
            self.live
        };
        let runs = if s.compare { self.compare } else { self.single };
        kind && screen && runs
    }

    /// Why the binding does not work in `s`, in words.
    fn why_not(&self, s: &Situation) -> String {
        if s.follow && !self.follow {
            return if self.replay {
                "not while following a file (replay it without --follow)".into()
            } else {
                "training keys are off while following a recording".into()
            };
        }
        if s.replay && !self.replay {
            return "training keys are off while replaying".into();
        }
        if !s.replay && !self.live {
            return "only while replaying a recording".into();
        }
        match s.kind {
            Some(ModelKind::Rnn) if !self.rnn => {
                return "works on MLPs: this is a recurrent net".into();
            }
            Some(ModelKind::Mlp) if !self.mlp => {
                return "works on recurrent nets: this is an MLP".into();
            }
            _ => {}
        }
        if s.compare && !self.compare {
            return "a single-run key: the compare view keeps its runs".into();
        }
        match label_of(Context::Main, Action::OpenFork) {
            Some(fork) if !s.compare && !self.single => {
                format!("a compare-view key: {fork} forks this run into a comparison")
            }
            _ => "not available here".into(),
        }
    }
}

/// One row of the keymap.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    /// The table it belongs to.
    pub context: Context,
    /// The keys that do it (the first is the one hints show first).
    pub keys: &'static [Key],
    /// What it does.
    pub action: Action,
    /// What it does, in words, for the help overlay.
    pub help: &'static str,
    /// Its word in the status bar (None: help only); neighbouring rows with the same word
    /// share one hint, e.g. `p r h d skip`.
    pub hint: Option<&'static str>,
    /// Where it works.
    pub scope: Scope,
}

impl Binding {
    /// The keys spelled as in help, e.g. `↑ k`; a run of digits reads `1-4`.
    pub fn label(&self, ascii: bool) -> String {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| if ascii { k.ascii() } else { k.to_string() })
            .collect();
        let digits = keys.len() > 2
            && keys
                .iter()
                .all(|k| k.len() == 1 && k.chars().all(|c| c.is_ascii_digit()));
        match (digits, keys.first(), keys.last()) {
            (true, Some(first), Some(last)) => format!("{first}-{last}"),
            _ => keys.join(" "),
        }
    }

    /// Every action this row's keys stand for (a pair row gives two, `1-4` four).
    pub fn actions(&self) -> impl Iterator<Item = Action> + '_ {
        (0..self.keys.len()).map(|i| action_of(self, i))
    }

    /// The key a hint shows: the first, or the digit run.
    fn hint_label(&self, ascii: bool) -> String {
        let label = self.label(ascii);
        if label.contains('-') && self.keys.len() > 2 {
            return label;
        }
        let first = self.keys[0];
        if ascii {
            first.ascii()
        } else {
            first.to_string()
        }
    }
}

const fn row(
    context: Context,
    keys: &'static [Key],
    action: Action,
    help: &'static str,
    hint: Option<&'static str>,
    scope: Scope,
) -> Binding {
    Binding {
        context,
        keys,
        action,
        help,
        hint,
        scope,
    }
}

use Action as A;
use Context::{Explain, Fork, Main, Picker, Replay, Tour};

/// Every key binding, in the order hints and help list them.
#[rustfmt::skip]
pub const KEYMAP: &[Binding] = &[
    // Main screen.
    row(Main, &[code(KeyCode::Tab)], A::FocusNext, "focus the next run (switches apply to it)", Some("focus"), COMPARE),
    row(Main, &[ch('1'), ch('2'), ch('3'), ch('4')], A::Focus(0), "focus run 1–4", Some("focus"), COMPARE),
    row(Main, &[ch('o')], A::ToggleOverlay, "runs side by side / overlaid", Some("overlay"), COMPARE),
    row(Main, &[ch('p')], A::Switch(Move::SkipTo(SkipMode::Plain)), "skip mode: plain", Some("skip"), LIVE_MLP),
    row(Main, &[ch('r')], A::Switch(Move::SkipTo(SkipMode::Residual { scale: 1.0 })), "skip mode: residual (scale 1)", Some("skip"), LIVE_MLP),
    row(Main, &[ch('h')], A::Switch(Move::SkipTo(SkipMode::Highway)), "skip mode: highway (gates from their trained bias)", Some("skip"), LIVE_MLP),
    row(Main, &[ch('d')], A::Switch(Move::SkipTo(SkipMode::Dense)), "skip mode: dense read-out", Some("skip"), LIVE_MLP),
    row(Main, &[ch('a')], A::Switch(Move::ToggleAux), "auxiliary losses on/off", Some("aux"), LIVE_MLP),
    row(Main, &[ch('N')], A::Switch(Move::NextNorm), "normalisation: none → layernorm → batchnorm", Some("norm"), LIVE_MLP),
    row(Main, &[ch('m')], A::Switch(Move::ToggleNormPlace), "norm placement: pre (in the block) ↔ post (after the addition)", None, LIVE_MLP),
    row(Main, &[ch('b')], A::Switch(Move::NextBranchScale), "residual branch factor: 1 → 1/√depth → ReZero (α from 0)", None, LIVE_MLP),
    row(Main, &[ch('g')], A::Switch(Move::NextCell), "RNN cell: vanilla → GRU → LSTM", Some("cell"), LIVE_RNN),
    row(Main, &[ch('l')], A::TogglePaths, "path lengths panel", Some("paths"), VIEW_MLP),
    row(Main, &[ch('J')], A::ToggleSpectrum, "Jacobian spectrum and forward signal view", None, VIEW_MLP_SINGLE),
    row(Main, &[ch('L')], A::Lesion, "lesion each block, show the damage", Some("lesion"), LIVE_MLP),
    row(Main, &[ch('[')], A::Switch(Move::ScaleLr(0.5)), "learning rate ÷2", Some("lr"), LIVE),
    row(Main, &[ch(']')], A::Switch(Move::ScaleLr(2.0)), "learning rate ×2", Some("lr"), LIVE),
    row(Main, &[ch(' ')], A::TogglePause, "pause / resume (every run)", Some("pause"), LIVE),
    row(Main, &[ch('n')], A::StepOnce, "one step (while paused)", Some("step"), LIVE),
    row(Main, &[ch('R')], A::Reset, "reset (same seed; every run)", Some("reset"), LIVE),
    row(Main, &[code(KeyCode::Up), ch('k')], A::CursorUp, "layer cursor towards the input", Some("layer"), VIEW_MLP),
    row(Main, &[code(KeyCode::Down), ch('j')], A::CursorDown, "layer cursor towards the output", Some("layer"), VIEW_MLP),
    row(Main, &[code(KeyCode::Up), ch('k')], A::CursorUp, "time-step cursor towards t = 1", Some("time step"), VIEW_RNN),
    row(Main, &[code(KeyCode::Down), ch('j')], A::CursorDown, "time-step cursor towards t = T", Some("time step"), VIEW_RNN),
    row(Main, &[ch('P')], A::OpenPicker, "preset picker (restarts the run)", Some("presets"), LIVE_SINGLE),
    row(Main, &[ch('w')], A::SaveWeights, "save weights: <preset>-step<N>.safetensors", None, LIVE),
    row(Main, &[ch('f')], A::OpenFork, "fork: a twin with one switch flipped, compared", Some("fork"), LIVE),
    row(Main, &[ch('i')], A::Explain, "explain a panel: what it plots, units, colours", Some("explain"), ANYWHERE),
    row(Main, &[ch('?')], A::ToggleHelp, "this help", Some("help"), ANYWHERE),
    row(Main, &[code(KeyCode::Esc)], A::Close, "close an overlay", None, ANYWHERE),
    row(Main, &[ctrl('z')], A::Suspend, "suspend to the shell (fg resumes)", None, ANYWHERE),
    row(Main, &[ch('q'), ctrl('c')], A::Quit, "quit", Some("quit"), ANYWHERE),
    // Replay controls.
    row(Replay, &[ch(' ')], A::Play, "play / pause the replay (follow: freeze)", Some("play"), PLAYBACK),
    row(Replay, &[ch('+'), ch('='), ch('-')], A::Faster, "faster / slower", Some("speed"), SEEK),
    row(Replay, &[code(KeyCode::Left), code(KeyCode::Right)], A::SeekBy(SEEK_STEPS), "100 steps back / forward", Some("±100"), SEEK),
    row(Replay, &[code(KeyCode::PageUp), code(KeyCode::PageDown)], A::SeekBy(SEEK_STEPS_FAR), "1000 steps back / forward", None, SEEK),
    row(Replay, &[code(KeyCode::Home), code(KeyCode::End)], A::SeekStart, "start / end of the recording", Some("ends"), SEEK),
    row(Replay, &[ch('['), ch(']')], A::PrevMarker, "previous / next intervention", Some("markers"), SEEK),
    // Fork menu.
    row(Fork, &[ch('r')], A::ForkWith(Some(Move::SkipTo(SkipMode::Residual { scale: 1.0 }))), "twin goes residual", None, LIVE_MLP),
    row(Fork, &[ch('h')], A::ForkWith(Some(Move::SkipTo(SkipMode::Highway))), "twin goes highway", None, LIVE_MLP),
    row(Fork, &[ch('d')], A::ForkWith(Some(Move::SkipTo(SkipMode::Dense))), "twin goes dense", None, LIVE_MLP),
    row(Fork, &[ch('p')], A::ForkWith(Some(Move::SkipTo(SkipMode::Plain))), "twin goes plain", None, LIVE_MLP),
    row(Fork, &[ch('a')], A::ForkWith(Some(Move::ToggleAux)), "twin: auxiliary losses on/off", None, LIVE_MLP),
    row(Fork, &[ch('N')], A::ForkWith(Some(Move::NextNorm)), "twin: next normalisation", None, LIVE_MLP),
    row(Fork, &[ch('m')], A::ForkWith(Some(Move::ToggleNormPlace)), "twin: norm pre ↔ post", None, LIVE_MLP),
    row(Fork, &[ch('b')], A::ForkWith(Some(Move::NextBranchScale)), "twin: next branch factor", None, LIVE_MLP),
    row(Fork, &[ch('g')], A::ForkWith(Some(Move::NextCell)), "twin: next RNN cell", None, LIVE_RNN),
    row(Fork, &[ch(']')], A::ForkWith(Some(Move::ScaleLr(FORK_LR_FACTOR))), "twin: learning rate ×10", None, LIVE),
    row(Fork, &[ch('[')], A::ForkWith(Some(Move::ScaleLr(1.0 / FORK_LR_FACTOR))), "twin: learning rate ÷10", None, LIVE),
    row(Fork, &[ch('=')], A::ForkWith(None), "identical twin (nothing flipped)", None, LIVE),
    row(Fork, &[code(KeyCode::Esc), ch('f'), ch('q')], A::Close, "cancel", None, ANYWHERE),
    row(Fork, &[ctrl('c')], A::Quit, "quit", None, ANYWHERE),
    // Preset picker.
    row(Picker, &[code(KeyCode::Up), ch('k')], A::CursorUp, "previous preset", None, ANYWHERE),
    row(Picker, &[code(KeyCode::Down), ch('j')], A::CursorDown, "next preset", None, ANYWHERE),
    row(Picker, &[code(KeyCode::Enter)], A::Choose, "load it (restarts the run)", Some("load"), ANYWHERE),
    row(Picker, &[code(KeyCode::Esc), ch('P'), ch('q')], A::Close, "cancel", Some("cancel"), ANYWHERE),
    row(Picker, &[ctrl('c')], A::Quit, "quit", None, ANYWHERE),
    // Guided tour (`gradlab tour`), before the main table.
    row(Tour, &[ch('.')], A::NextLesson, "tour: next lesson", Some("next"), ANYWHERE),
    row(Tour, &[ch(',')], A::PrevLesson, "tour: previous lesson", Some("prev"), ANYWHERE),
    // Panel explanation.
    row(Explain, &[code(KeyCode::Tab), code(KeyCode::Right)], A::NextPanel, "explain the next panel", Some("next panel"), ANYWHERE),
    row(Explain, &[code(KeyCode::BackTab), code(KeyCode::Left)], A::PrevPanel, "explain the previous panel", Some("previous"), ANYWHERE),
    row(Explain, &[code(KeyCode::Esc), ch('i'), ch('q')], A::Close, "close", Some("close"), ANYWHERE),
    row(Explain, &[ctrl('c')], A::Quit, "quit", None, ANYWHERE),
];

/// The fork menu's `[`/`]` scale the twin's learning rate by this much: a factor of two (the
/// live keys) rarely shows a difference worth a column.
pub const FORK_LR_FACTOR: f32 = 10.0;
/// Steps `←`/`→` jump in a replay.
pub const SEEK_STEPS: i64 = 100;
/// Steps `PgUp`/`PgDn` jump in a replay.
pub const SEEK_STEPS_FAR: i64 = 1_000;

/// The action a row's n-th key stands for: rows that bundle a pair (`← →`, `+ -`, `1–4`)
/// give each key its own direction or number.
fn action_of(binding: &Binding, key_index: usize) -> Action {
    match (binding.action, key_index) {
        (A::Focus(_), n) => A::Focus(n),
        (A::Faster, 2) => A::Slower,
        (A::SeekBy(steps), 0) => A::SeekBy(-steps),
        (A::SeekStart, 1) => A::SeekEnd,
        (A::PrevMarker, 1) => A::NextMarker,
        (action, _) => action,
    }
}

/// The tables in force, first match wins: an open overlay's, then replay's, then the main one.
pub fn contexts(overlay: Option<Context>, replay: bool) -> Vec<Context> {
    tour_contexts(overlay, replay, false)
}

/// [`contexts`] during the guided tour: its keys come before the main table.
pub fn tour_contexts(overlay: Option<Context>, replay: bool, tour: bool) -> Vec<Context> {
    let mut list: Vec<Context> = overlay.into_iter().collect();
    if overlay.is_none() && replay {
        list.push(Context::Replay);
    }
    if overlay.is_none() && tour {
        list.push(Context::Tour);
    }
    if overlay.is_none() {
        list.push(Context::Main);
    }
    list
}

/// What a key does now: the action, or a note saying why it does nothing here; None for a
/// key no table in force binds.
pub fn resolve(
    contexts: &[Context],
    s: &Situation,
    event: &KeyEvent,
) -> Option<Result<Action, String>> {
    let mut refused = None;
    for &context in contexts {
        for binding in KEYMAP.iter().filter(|b| b.context == context) {
            let Some(index) = binding.keys.iter().position(|k| k.matches(event)) else {
                continue;
            };
            if binding.scope.allows(s) {
                return Some(Ok(action_of(binding, index)));
            }
            refused.get_or_insert_with(|| {
                let key = binding.keys[index];
                format!("{key} ({}): {}", binding.help, binding.scope.why_not(s))
            });
        }
    }
    refused.map(Err)
}

/// Whether `action` works now: Ok, or the note a key doing it would get here.
pub fn check(contexts: &[Context], s: &Situation, action: Action) -> Result<(), String> {
    let mut refused = None;
    for &context in contexts {
        for binding in KEYMAP.iter().filter(|b| b.context == context) {
            for (index, key) in binding.keys.iter().enumerate() {
                if action_of(binding, index) != action {
                    continue;
                }
                if binding.scope.allows(s) {
                    return Ok(());
                }
                refused.get_or_insert_with(|| {
                    format!("{key} ({}): {}", binding.help, binding.scope.why_not(s))
                });
            }
        }
    }
    Err(refused.unwrap_or_else(|| "that key does nothing here".into()))
}

/// The key label of the first row doing `action` in `context`, for text that names a key.
pub fn label_of(context: Context, action: Action) -> Option<String> {
    KEYMAP
        .iter()
        .find(|b| b.context == context && b.action == action)
        .map(|b| b.keys[0].to_string())
}

/// The main-screen keys that move `switch`, e.g. `p r h d` for the skip mode.
pub fn switch_keys(switch: crate::protocol::Switch, ascii: bool) -> String {
    let keys: Vec<String> = KEYMAP
        .iter()
        .filter(|b| b.context == Context::Main)
        .filter(|b| matches!(b.action, Action::Switch(mv) if mv.switch() == switch))
        .map(|b| b.label(ascii))
        .collect();
    keys.join(" ")
}

/// The status bar hints in force: (keys, word), neighbouring rows with one word merged.
pub fn hints(contexts: &[Context], s: &Situation, ascii: bool) -> Vec<(String, &'static str)> {
    let mut hints: Vec<(String, &'static str)> = Vec::new();
    let mut last_word = None;
    for &context in contexts {
        for binding in KEYMAP
            .iter()
            .filter(|b| b.context == context && b.scope.allows(s))
        {
            let Some(word) = binding.hint else {
                last_word = None;
                continue;
            };
            let keys = binding.hint_label(ascii);
            let seen = hints.iter().any(|(_, w)| *w == word);
            match hints.last_mut() {
                Some((label, w)) if last_word == Some(word) && *w == word => {
                    // Rows that share keys (the cursor per kind of net) are one hint.
                    if !label.split(' ').any(|k| keys.split(' ').any(|n| n == k)) {
                        // Arrows pair up without a gap, as `↑↓`.
                        let arrows = |t: &str| t.chars().all(|c| "↑↓←→".contains(c));
                        if !(arrows(label) && arrows(&keys)) {
                            label.push(' ');
                        }
                        label.push_str(&keys);
                    }
                }
                _ if seen => {}
                _ => hints.push((keys, word)),
            }
            last_word = Some(word);
        }
    }
    hints
}

/// The help overlay's rows: (keys, what they do, whether they work here), for every row of
/// the tables in force; a row that does not work here is left out when the same keys do
/// something else that does (space plays a replay instead of pausing training).
pub fn help_rows(
    contexts: &[Context],
    s: &Situation,
    ascii: bool,
) -> Vec<(String, &'static str, bool)> {
    let all: Vec<(String, &'static str, bool)> = contexts
        .iter()
        .flat_map(|&context| KEYMAP.iter().filter(move |b| b.context == context))
        .map(|b| (b.label(ascii), b.help, b.scope.allows(s)))
        .collect();
    all.iter()
        .filter(|(label, _, works)| *works || !all.iter().any(|(l, _, w)| l == label && *w))
        .cloned()
        .collect()
}
