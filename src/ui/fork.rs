//! The fork menu (`f`): which switch the twin gets flipped, and the request it turns into.
//!
//! A fork copies the running network as it stands — weights, optimiser state, switches, step
//! and position in the data stream — into a twin, flips one switch on the twin, and shows both
//! in the compare view, stepped in lock-step from there: the curves branch at the fork.

use super::app::{App, FORK_KEYS, LR_RANGE};
use super::panel_block;
use crate::config::SkipMode;
use crate::protocol::{Command, MAX_LANES as MAX_RUNS, RunState};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

/// The fork menu's `[`/`]` scale the twin's learning rate by this much: a factor of two (the
/// live keys) rarely shows a difference worth a column.
pub const FORK_LR_FACTOR: f32 = 10.0;

/// The one switch a twin differs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flip {
    /// Skip mode plain.
    Plain,
    /// Skip mode residual (scale 1).
    Residual,
    /// Skip mode highway.
    Highway,
    /// Skip mode dense read-out.
    Dense,
    /// Auxiliary losses the other way.
    Aux,
    /// The next recurrent cell.
    Cell,
    /// Learning rate ×[`FORK_LR_FACTOR`].
    LrUp,
    /// Learning rate ÷[`FORK_LR_FACTOR`].
    LrDown,
    /// Nothing: an identical twin (it stays equal to its parent, a check of the lock-step).
    Nothing,
}

/// A fork asked for: the run to copy, the command that makes the twin differ, and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct ForkRequest {
    /// Index of the run to copy (0 in the single-run dashboard).
    pub from: usize,
    /// Applied to the twin only (None: an identical twin).
    pub flip: Option<Command>,
    /// What the compare view calls the twin.
    pub label: String,
}

impl Flip {
    /// The command that flips this switch on a copy of `run`, and a short word for it; or why
    /// it does not apply to this kind of net.
    pub fn command(self, run: &App) -> Result<(Option<Command>, String), String> {
        let rnn = run.is_rnn();
        let mlp_only = matches!(
            self,
            Flip::Plain | Flip::Residual | Flip::Highway | Flip::Dense | Flip::Aux
        );
        if rnn && mlp_only {
            return Err("an MLP switch: this is a recurrent net (g flips the cell)".into());
        }
        if !rnn && self == Flip::Cell {
            return Err("g flips RNN cells: this is an MLP".into());
        }
        let s = run.switches;
        let skip = |mode: SkipMode| (Some(Command::SetSkip(mode)), mode.label());
        let lr = |factor: f32| {
            let lr = (s.lr * factor).clamp(LR_RANGE.0, LR_RANGE.1);
            (Some(Command::SetLearningRate(lr)), format!("lr {lr:.1e}"))
        };
        Ok(match self {
            Flip::Plain => skip(SkipMode::Plain),
            Flip::Residual => skip(SkipMode::Residual { scale: 1.0 }),
            Flip::Highway => skip(SkipMode::Highway),
            Flip::Dense => skip(SkipMode::Dense),
            Flip::Aux => (
                Some(Command::SetAux(!s.aux)),
                format!("aux {}", if s.aux { "off" } else { "on" }),
            ),
            Flip::Cell => {
                let cell = s.cell.next();
                (Some(Command::SetCell(cell)), cell.label().to_string())
            }
            Flip::LrUp => lr(FORK_LR_FACTOR),
            Flip::LrDown => lr(1.0 / FORK_LR_FACTOR),
            Flip::Nothing => (None, "twin".into()),
        })
    }
}

/// The request for a twin of `run` (labelled `parent`, index `from`) with `flip`, or a note
/// saying why not.
pub fn request(run: &App, parent: &str, from: usize, flip: Flip) -> Result<ForkRequest, String> {
    let (command, word) = flip.command(run)?;
    Ok(ForkRequest {
        from,
        flip: command,
        label: format!("{parent} +{word}"),
    })
}

/// Why the focused run cannot be forked now, if it cannot.
pub fn refusal(app: &App) -> Option<String> {
    if app.replay.is_some() {
        return Some("a recording cannot be forked: fork a live run".into());
    }
    let run = match &app.compare {
        Some(view) if view.runs.len() >= MAX_RUNS => {
            return Some(format!(
                "the compare view already shows {MAX_RUNS} runs, the most it holds"
            ));
        }
        Some(view) => &view.focused().app,
        None => app,
    };
    if run.experiment.is_none() || run.trainer_gone {
        return Some("nothing to fork: the run has not started".into());
    }
    match run.state {
        RunState::Running | RunState::Paused => None,
        _ => Some("this run has stopped: R resets it, then f forks it".into()),
    }
}

/// Draws the fork menu as a centred overlay when it is open.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    if !app.fork_menu {
        return;
    }
    let theme = &app.theme;
    let (run, label) = match &app.compare {
        Some(view) => (&view.focused().app, view.focused().label.clone()),
        None => (
            app,
            app.experiment
                .as_ref()
                .map_or_else(String::new, |e| e.name.clone()),
        ),
    };
    let mut lines = vec![Line::styled(
        " the twin starts from this run's weights, optimiser and data position; both go on in lock-step",
        theme.dim(),
    )];
    for binding in FORK_KEYS.iter().filter(|b| !b.help.is_empty()) {
        let applies = match binding.action {
            super::app::Action::ForkWith(flip) => flip.command(run).is_ok(),
            _ => true,
        };
        let style = if applies { theme.text() } else { theme.dim() };
        lines.push(Line::from(vec![
            Span::styled(format!(" {:>5}  ", binding.key_label), theme.key()),
            Span::styled(binding.help, style),
        ]));
    }
    let popup = super::popup_area(area, 60, &lines);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(panel_block(
                theme,
                format!(" fork {label}: flip one switch "),
            )),
        popup,
    );
}
