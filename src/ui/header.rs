//! Header: what is running, how fast, in which state, and the switches with their keys.

use super::app::App;
use super::keymap;
use super::run_view::RunView;
use super::theme::Theme;
use super::widgets::fmt_value;
use crate::config::{OptimizerSpec, TaskSpec};
use crate::metrics::Snapshot;
use crate::protocol::{RunState, Switch};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// The task in a word or two.
pub fn task_label(task: &TaskSpec) -> String {
    match task {
        TaskSpec::Spirals { .. } => "spirals".into(),
        TaskSpec::Circles { .. } => "circles".into(),
        TaskSpec::Checkerboard { cells, .. } => format!("checkerboard {cells}×{cells}"),
        TaskSpec::Blobs { classes, dims, .. } => format!("blobs {classes}×{dims}d"),
        TaskSpec::Teacher { dims, .. } => format!("teacher {dims}d"),
        TaskSpec::Digits => "digits 8×8".into(),
        TaskSpec::Mnist1d => "mnist-1d".into(),
        TaskSpec::Csv { path, .. } => format!("csv {path}"),
        TaskSpec::Adding { length, .. } => format!("adding T={length}"),
        TaskSpec::Copy { symbols, delay, .. } => format!("copy {symbols} over {delay}"),
        TaskSpec::DelayedXor { length, .. } => format!("delayed xor T={length}"),
    }
}

/// The run state in words, e.g. `diverged at step 812, layer 3`.
pub fn state_label(state: &RunState) -> String {
    match state {
        RunState::Running => "running".into(),
        RunState::Paused => "paused".into(),
        RunState::Finished => "finished".into(),
        RunState::Diverged(d) => match d.layer {
            Some(layer) => format!("diverged at step {}, layer {}: {}", d.step, layer, d.what),
            None => format!("diverged at step {}: {}", d.step, d.what),
        },
        RunState::Crashed(message) => format!("crashed: {message}"),
    }
}

/// Draws the two header lines for the focused run.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let (run, theme) = (app.run(), &app.theme);
    let bar = if theme.ascii { " | " } else { " │ " };
    let sep = || Span::styled(bar, theme.dim());
    let rate = match run.steps_per_sec {
        Some(rate) => format!("{rate:.1} steps/s"),
        None => "– steps/s".into(),
    };
    let state_style = match run.state {
        RunState::Running => theme.healthy(),
        RunState::Paused | RunState::Finished => theme.paused(),
        RunState::Diverged(_) | RunState::Crashed(_) => theme.alarm(),
    };
    let bullet = if theme.ascii { "* " } else { "● " };
    // The state and the network come first after the name: they are what must survive a
    // narrow terminal; the rate and the program's name go first when the line is too long.
    let mut lead = vec![Span::styled(" gradlab", theme.title()), sep()];
    let mut first = Vec::new();
    match &run.experiment {
        Some(e) => first.push(Span::styled(e.name.clone(), theme.active())),
        None => first.push(Span::styled("starting…", theme.dim())),
    }
    if let Some(view) = app.replay() {
        first.push(sep());
        first.extend(super::replay::header_spans(view, run.step, theme));
    }
    first.extend([
        sep(),
        Span::styled(format!("{bullet}{}", state_label(&run.state)), state_style),
    ]);
    let mut task = Vec::new();
    if let Some(e) = &run.experiment {
        let optimizer = match e.optimizer {
            OptimizerSpec::Sgd { .. } => "SGD",
            OptimizerSpec::Adam { .. } => "Adam",
        };
        let activation = format!("{:?}", e.model.activation).to_lowercase();
        let model = if run.is_rnn() {
            format!(
                "RNN {} hidden {} {optimizer}",
                run.switches.cell.label(),
                e.model.width
            )
        } else {
            format!(
                "MLP {}×{} {activation} {optimizer}",
                e.model.depth, e.model.width
            )
        };
        first.extend([sep(), Span::raw(model)]);
        task = vec![sep(), Span::raw(task_label(&e.task))];
    }
    first.extend([sep(), Span::raw(format!("step {}", run.step))]);
    let rate = [sep(), Span::styled(rate, theme.dim())];
    let width = |spans: &[Span]| spans.iter().map(Span::width).sum::<usize>();
    let room = usize::from(area.width);
    if width(&lead) + width(&first) + width(&rate) + width(&task) <= room {
        lead.extend(first);
        lead.extend(rate);
        lead.extend(task);
        first = lead;
    } else if width(&first) + width(&task) < room {
        first.insert(0, Span::raw(" "));
        first.extend(task);
    } else {
        first.insert(0, Span::raw(" "));
    }
    let mut second = switch_spans(run, theme, &sep);
    // The measurement first: on an 80-column terminal the line is cut at the right edge.
    if let Some(latest) = &run.latest {
        if run.is_rnn() {
            if let Some(baseline) = latest.baseline_loss {
                second.extend([
                    sep(),
                    Span::styled("baseline ", theme.dim()),
                    Span::styled(fmt_value(baseline), theme.theory()),
                ]);
            }
            second.extend([
                sep(),
                Span::styled("‖∂L/∂h_1‖/‖∂L/∂h_T‖ ", theme.dim()),
                ratio_span(theme, latest.grad_ratio_db),
            ]);
        } else {
            second.extend([
                sep(),
                Span::styled("first/last ", theme.dim()),
                ratio_span(theme, latest.grad_ratio_db),
            ]);
        }
        let gate_biases: Vec<f64> = latest
            .layers
            .iter()
            .filter_map(|l| l.gate_bias_mean)
            .collect();
        if !gate_biases.is_empty() {
            let mean = gate_biases.iter().sum::<f64>() / gate_biases.len() as f64;
            second.extend([
                sep(),
                Span::styled("gate bias now ", theme.dim()),
                Span::raw(format!("{mean:+.2}")),
            ]);
        }
    }
    // A number cut at the right edge would be read as another number: the longest form
    // of the prediction that fits, or none (the bars' legend names it too).
    let used = width(&second);
    if let Some(theory) = theory_spans(run, theme, &sep)
        .into_iter()
        .find(|form| used + width(form) <= room)
    {
        second.extend(theory);
    }
    frame.render_widget(
        Paragraph::new(vec![Line::from(first), Line::from(second)]),
        area,
    );
}

/// The mean-field prediction for the architecture on screen, named, or a note that none
/// exists for the cell in effect: longest form first, then shorter ones.
fn theory_spans<'a>(
    run: &RunView,
    theme: &Theme,
    sep: &dyn Fn() -> Span<'a>,
) -> Vec<Vec<Span<'a>>> {
    let Some(latest) = &run.latest else {
        return Vec::new();
    };
    let Some(shown) = run.prediction() else {
        return vec![
            vec![sep(), Span::styled(no_prediction_note(latest), theme.dim())],
            vec![sep(), Span::styled("no mean-field line", theme.dim())],
        ];
    };
    let prediction = &shown.prediction;
    let arch = prediction.arch.name();
    let (prefix, last) = if run.is_rnn() {
        ("t", "T")
    } else {
        ("L", "last")
    };
    let (range, db) = match (prediction.ratio_db(), prediction.first_covered()) {
        (Some(db), _) => (String::new(), db),
        (None, Some(from)) => (
            format!("{prefix}{from}/{last} "),
            prediction.per_layer_db[from - 1].unwrap_or(f64::NAN),
        ),
        (None, None) => (String::new(), f64::NAN),
    };
    // Beside the measured first/last ratio, so "first/last" is not repeated. The shortest
    // form leaves out the wiring: the skip switch on the same line and the bars' legend name it.
    let form = |what: String| {
        vec![
            sep(),
            Span::styled("mean-field ", theme.dim()),
            Span::raw(format!("{what}{} dB", fmt_db(db))),
        ]
    };
    let short = form(format!("{arch} {range}"));
    let shortest = form(range.clone());
    let mut full = short.clone();
    full.push(Span::styled(
        format!(
            " ({}{})",
            variances_of(shown.step, latest.step, "σ²"),
            if run.is_rnn() { ", untied U" } else { "" }
        ),
        theme.dim(),
    ));
    vec![full, short, shortest]
}

/// Which variances a prediction used, named `what`: the current ones when it was computed
/// from the newest snapshot, else the step's (a training run's prediction is paced by its cost).
pub fn variances_of(computed_at: u64, newest: u64, what: &str) -> String {
    if computed_at == newest {
        format!("current {what}")
    } else {
        format!("{what} at step {computed_at}")
    }
}

/// Why a snapshot has no mean-field prediction: the net is normalised (the recursion has no
/// normalisation step), its cell has none (GRU, LSTM), or it was recorded before snapshots
/// carried the variances.
pub fn no_prediction_note(snapshot: &Snapshot) -> String {
    if let Some(norm) = &snapshot.norm {
        return format!("no mean-field line with {norm}");
    }
    match &snapshot.cell {
        Some(cell) if snapshot.variances.is_none() && cell != "vanilla" => {
            format!("no mean-field prediction for {cell}")
        }
        _ => "no mean-field prediction (no variances recorded)".into(),
    }
}

/// The switches that apply to the run, each with the keys that move it (from the keymap).
fn switch_spans<'a>(run: &RunView, theme: &Theme, sep: &dyn Fn() -> Span<'a>) -> Vec<Span<'a>> {
    let Some(kind) = run.kind() else {
        return Vec::new();
    };
    let mut spans = Vec::new();
    let shown = Switch::ALL
        .into_iter()
        .filter(|s| s.applies_to(kind) && run.switches.in_effect(*s));
    for switch in shown {
        if !spans.is_empty() {
            spans.push(sep());
        }
        let keys = keymap::switch_keys(switch, theme.ascii);
        // The line's first span starts one column in, like the header's first line.
        let lead = if spans.is_empty() { " " } else { "" };
        spans.extend([
            Span::styled(format!("{lead}{keys}"), theme.key()),
            Span::styled(format!(" {} ", switch.name()), theme.dim()),
            Span::styled(run.switches.value(switch), theme.active()),
        ]);
    }
    spans
}

/// A measured first/last ratio in dB, in the alarm colour when it is NaN/Inf.
fn ratio_span<'a>(theme: &Theme, db: f64) -> Span<'a> {
    let style = if db.is_finite() {
        theme.text()
    } else {
        theme.alarm()
    };
    Span::styled(format!("{} dB", fmt_db(db)), style)
}

/// Decibels with one decimal, NaN/Inf spelled out.
pub fn fmt_db(db: f64) -> String {
    if db.is_finite() {
        format!("{db:+.1}")
    } else {
        fmt_value(db)
    }
}
