//! "What am I looking at?": `i` explains the focused panel — what it plots, its units and
//! colour scale, and what to look for — in an overlay placed beside the panel, whose border is
//! drawn double (`#`/`=` in ASCII) so the focus reads without colour. Tab and the arrows move
//! the focus. Also the colour scale drawn on the heat map's border.

use super::Areas;
use super::app::App;
use super::keymap::{self, Action, Context};
use super::widgets::panel_block;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

/// A panel of the single-run dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Panel {
    /// The two header lines.
    Header,
    /// The loss chart.
    Loss,
    /// Per-layer (per-time-step) gradient bars.
    #[default]
    Bars,
    /// The heat map, or the path panel in its place.
    Heat,
    /// The sparklines.
    Sparklines,
    /// The tour's lesson.
    Lesson,
    /// The status line.
    Status,
}

/// The panels on screen now, top left to bottom right.
pub fn panels(app: &App) -> Vec<Panel> {
    let mut list = vec![Panel::Header, Panel::Loss, Panel::Bars, Panel::Heat];
    if app.tour.is_some() {
        list.push(Panel::Lesson);
    } else if !app.run().show_paths || app.run().is_rnn() || app.is_compare() {
        list.push(Panel::Sparklines);
    }
    list.push(Panel::Status);
    list
}

/// The panel after (or before) `current` in `panels`, wrapping around.
pub fn step(panels: &[Panel], current: Panel, forward: bool) -> Panel {
    let n = panels.len();
    if n == 0 {
        return current;
    }
    let i = panels.iter().position(|p| *p == current).unwrap_or(0);
    let next = if forward {
        (i + 1) % n
    } else {
        (i + n - 1) % n
    };
    panels[next]
}

/// Where `panel` is drawn in the single-run layout.
fn rect_of(panel: Panel, areas: &Areas, app: &App) -> Rect {
    let (areas, lesson) = match super::tour_panel::carve(areas, app) {
        Some((rest, lesson)) => (rest, lesson),
        None => (*areas, Rect::default()),
    };
    let paths = app.run().show_paths && !app.run().is_rnn();
    match panel {
        Panel::Header => areas.header,
        Panel::Loss => areas.loss,
        Panel::Bars => areas.bars,
        Panel::Heat if paths && areas.heat.x == areas.sparklines.x => {
            areas.heat.union(areas.sparklines)
        }
        Panel::Heat => areas.heat,
        Panel::Sparklines => areas.sparklines,
        Panel::Lesson => lesson,
        Panel::Status => areas.status,
    }
}

/// What a panel is called, what it plots (with units and colours) and what to look for.
pub fn explanation(panel: Panel, app: &App) -> (&'static str, Vec<&'static str>) {
    let run = app.run();
    let rnn = run.is_rnn();
    let paths = run.show_paths && !rnn;
    match panel {
        Panel::Header => (
            "header",
            vec![
                "Line 1: the preset, the run's state, the step (updates applied), steps per second, the network (MLP depth×width activation optimiser, or RNN cell and hidden size) and the task.",
                "Line 2: each live switch with the keys that move it and its value now; the measured first/last ratio ‖∂L/∂h_1‖/‖∂L/∂h_last‖ in dB (20·log10; 0 dB = equal, −20 dB = a tenth); for MLPs the mean-field χ₁ of this initialisation and what it predicts for a plain net of this depth.",
                "Look for: a ratio far below 0 dB (vanishing) or far above (exploding).",
            ],
        ),
        Panel::Loss => (
            "loss chart",
            vec![
                "The training loss of the main head and the test loss at each evaluation, against the step, on a log scale. Units: the task's loss (cross-entropy in nats for classes, mean squared error for regression).",
                "Colours: one per series, named in the title (main, test, then each auxiliary head). A flat dashed line is the input-blind baseline where the task has one. Vertical marker lines label the commands you gave (skip → residual).",
                "Look for: the loss leaving chance (ln 2 ≈ 0.693 for two classes) after a switch, or staying flat when the gradient cannot reach the lower layers.",
            ],
        ),
        Panel::Bars if rnn => (
            "gradient per time step",
            vec![
                "One bar per time step t (t = 1 at the left): ‖∂L/∂h_t‖, the norm of the loss gradient with respect to the hidden state at step t, over the batch; log scale, the decades on the left.",
                "Colour: blue = more than 20 dB below the last step's (vanishing), green = within ±20 dB, red = more than 20 dB above (exploding); the title gives the cursor's value in dB against the last step (↑↓ moves the cursor).",
                "Look for: bars falling toward t = 1: the error fades as it travels back in time; gated cells (g) hold it up.",
            ],
        ),
        Panel::Bars => (
            "gradient per layer",
            vec![
                "One bar per hidden layer (layer 1, the input side, at the left): ‖∂L/∂h_l‖, the norm of the loss gradient with respect to that layer's output, over the batch; log scale, the decades on the left.",
                "Colour: blue = more than 20 dB below the last layer (vanishing), green = within ±20 dB (healthy), red = more than 20 dB above (exploding); without colour, read the title's dB against the last layer. The dashed line is mean-field theory for a plain net at this initialisation.",
                "Look for: layer 1's bar far below the last one; press r and watch it come back.",
            ],
        ),
        Panel::Heat if paths => (
            "path panel",
            vec![
                "Top: Veit's decomposition of the gradient into paths through the skip connections: for each path length k (blocks crossed, the rest skipped) the log10 number of paths, and below it the share of the gradient those paths carry (an exact or sampled estimate, as the title says).",
                "The marked range holds 90 % of the gradient; its mean is the network's effective depth. Under dense read-outs or auxiliary losses a gradient-sources view splits each layer's gradient by the head it came from; after L, the test loss with each block removed.",
                "Look for: gradient carried by paths much shorter than the depth.",
            ],
        ),
        Panel::Heat => (
            "heat map",
            vec![
                if rnn {
                    "The same ‖∂L/∂h_t‖ over the whole run: one row per time step (t = 1 at top), one column per span of training steps."
                } else {
                    "The same ‖∂L/∂h_l‖ over the whole run: one row per layer (the input side at top), one column per span of training steps."
                },
                "Colour: log10 of the norm, from the smallest to the largest value seen (the two numbers on the bottom border): cold blue = small, green, hot red = large; without colour, denser shading = larger. ▼ on the top border marks a command.",
                "Look for: the top rows lighting up after a switch: the gradient reaches the lower layers again.",
            ],
        ),
        Panel::Sparklines => (
            "recent values",
            vec![
                "Each row: a quantity's newest value and a sparkline of its recent history (taller = larger; log-scaled for norms).",
                if rnn {
                    "‖∂L/∂h‖ at t = 1 and t = T, their ratio in dB, and the mean gate (LSTM forget f, GRU update z) at the first and last step."
                } else {
                    "‖∂L/∂h‖ of the first and last layer, their ratio in dB, the mean highway gate T, and for the layer under the cursor ‖∂L/∂W‖, the RMS of its activations and its update size ‖ΔW‖/‖W‖."
                },
                "Look for: a ratio sinking or climbing; update sizes near 0 mean a layer does not learn.",
            ],
        ),
        Panel::Lesson => (
            "tour lesson",
            vec![
                "The lesson: what it shows, the one key to press, then what the live run measured before and after you pressed it.",
                "✓ (or [ok]) confirmed: the run bore the claim out; ✗ (or [x]) not confirmed: the lesson says what it saw instead. Both numbers come from this run's snapshots.",
            ],
        ),
        Panel::Status => (
            "status line",
            vec![
                "The keys that work now, or a note: why a key did nothing, a divergence (with how to reset), an error.",
                "? lists every key; keys that do nothing on this screen are listed dimmed.",
            ],
        ),
    }
}

/// Draws the explanation of the focused panel beside it, and marks the panel.
pub fn render(frame: &mut Frame, areas: &Areas, app: &App) {
    let theme = &app.theme;
    let area = frame.area();
    let compare = app.is_compare();
    let panel = if panels(app).contains(&app.panel) {
        app.panel
    } else {
        Panel::Bars
    };
    let target = (!compare).then(|| rect_of(panel, areas, app));
    if let Some(target) = target {
        mark(frame, target, theme.ascii);
    }
    let (name, paragraphs) = explanation(panel, app);
    let mut lines: Vec<Line> = Vec::new();
    for (i, p) in paragraphs.iter().enumerate() {
        if i > 0 {
            lines.push(Line::raw(""));
        }
        lines.push(Line::styled(*p, theme.text()));
    }
    let close = keymap::label_of(Context::Explain, Action::Close).unwrap_or_default();
    let next = keymap::label_of(Context::Explain, Action::NextPanel).unwrap_or_default();
    // Beside the panel: the half of the screen it is not in.
    let half = area.width / 2;
    let width = if area.width < 100 {
        area.width
    } else {
        half.max(50)
    };
    let left = target.is_none_or(|t| t.x + t.width / 2 >= area.x + half);
    let column = Rect {
        x: if left || width == area.width {
            area.x
        } else {
            area.right() - width
        },
        width,
        ..area
    };
    let mut popup = super::widgets::popup_area(column, width, &lines);
    // Below a panel at the top, above one at the bottom, so the panel stays in view.
    if let Some(t) = target
        && width == area.width
    {
        let below = t.bottom();
        let room_below = area.bottom().saturating_sub(below);
        popup.y = if room_below >= popup.height {
            below
        } else if t.y >= area.y + popup.height {
            t.y - popup.height
        } else {
            popup.y
        };
    }
    frame.render_widget(Clear, popup);
    let title = format!(" {name} ({next} next panel, {close} closes) ");
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel_block(
                theme,
                Line::from(Span::styled(title, theme.title())),
            )),
        popup,
    );
}

/// Redraws the border of `rect` doubled (ASCII: `#` corners, `=` and `#` sides).
fn mark(frame: &mut Frame, rect: Rect, ascii: bool) {
    let buf = frame.buffer_mut();
    let area = buf.area;
    let rect = rect.intersection(area);
    if rect.width == 0 || rect.height == 0 {
        return;
    }
    for y in rect.top()..rect.bottom() {
        for x in rect.left()..rect.right() {
            let Some(cell) = buf.cell_mut((x, y)) else {
                continue;
            };
            let swapped = match (cell.symbol(), ascii) {
                ("─", false) => "═",
                ("│", false) => "║",
                ("╭" | "┌", false) => "╔",
                ("╮" | "┐", false) => "╗",
                ("╰" | "└", false) => "╚",
                ("╯" | "┘", false) => "╝",
                ("-", true) if y == rect.top() || y + 1 == rect.bottom() => "=",
                ("|", true) if x == rect.left() || x + 1 == rect.right() => "#",
                ("+", true) => "#",
                _ => continue,
            };
            let on_edge = y == rect.top()
                || y + 1 == rect.bottom()
                || x == rect.left()
                || x + 1 == rect.right();
            if on_edge {
                cell.set_symbol(swapped);
            }
        }
    }
}

/// Colour legends drawn on the panels' borders: the heat map's colour scale, low to high.
pub fn legends(frame: &mut Frame, areas: &Areas, app: &App) {
    let run = app.run();
    if run.show_paths && !run.is_rnn() {
        return;
    }
    let heat = areas.heat;
    let theme = &app.theme;
    const STEPS: usize = 8;
    let label_low = " low ";
    let label_high = " high ";
    let needed = (label_low.len() + STEPS + label_high.len()) as u16;
    // Bottom-left of the border; the right holds the lo … hi values.
    if heat.height < 2
        || heat.width < needed + 24
        || (run.layers.is_empty() && run.timesteps.is_empty())
    {
        return;
    }
    let y = heat.bottom() - 1;
    let buf = frame.buffer_mut();
    let mut x = heat.x + 1;
    buf.set_string(x, y, label_low, theme.dim());
    x += label_low.len() as u16;
    for i in 0..STEPS {
        let (glyph, style) = theme.heat(i as f64 / (STEPS - 1) as f64);
        let glyph = if glyph == ' ' { '.' } else { glyph };
        buf.set_string(x, y, glyph.to_string(), style);
        x += 1;
    }
    buf.set_string(x, y, label_high, theme.dim());
}
