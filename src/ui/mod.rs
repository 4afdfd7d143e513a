//! The dashboard, Elm-style: state, messages and the one `update` (`app`, each run's state in
//! `run_view`), the one keymap (`keymap`), the terminal loop and its sources (`event`; `live`
//! for the driver, `playback` and `follow` for recordings), and one file per panel, drawn by
//! [`render`] from one run's view and the theme.

pub mod app;
pub mod cast;
pub mod compare_columns;
pub mod compare_header;
pub mod compare_overlay;
pub mod event;
pub mod explain;
pub mod follow;
pub mod fork;
pub mod gradient_flow;
pub mod header;
pub mod help;
pub mod history;
pub mod keymap;
pub mod keys_doc;
pub mod live;
pub mod loss;
pub mod paced_prediction;
pub mod paths;
pub mod picker;
pub mod playback;
pub mod replay;
pub mod replay_index;
pub mod run_view;
pub mod sources;
pub mod sparklines;
pub mod spectrum;
pub mod status;
pub mod theme;
pub mod tour;
pub mod tour_lessons;
pub mod tour_panel;
pub mod widgets;

use app::{App, Overlay};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::Paragraph;

/// Below this width or height only a one-line "terminal too small" message is drawn.
pub const MIN_WIDTH: u16 = 40;
/// See [`MIN_WIDTH`].
pub const MIN_HEIGHT: u16 = 12;
/// Terminals narrower than this get the compact layout.
pub const COMPACT_BELOW_WIDTH: u16 = 120;
/// Terminals shorter than this get the compact layout.
pub const COMPACT_BELOW_HEIGHT: u16 = 36;
/// Header lines.
const HEADER_ROWS: u16 = 2;
/// Status line.
const STATUS_ROWS: u16 = 1;
/// Compact layout: heat map rows including its border.
const COMPACT_HEAT_ROWS: u16 = 6;
/// Compact layout: sparkline rows including the border (two columns of four).
const COMPACT_SPARK_ROWS: u16 = 6;
/// Compact layout: smallest height the loss/gradient row is squeezed to.
const COMPACT_MIN_TOP_ROWS: u16 = 5;
/// Wide layout: share of the body height for the loss chart and gradient bars.
const WIDE_TOP_PERCENT: u16 = 45;
/// Wide layout: share of the width for the left column (loss chart, heat map).
const WIDE_LEFT_PERCENT: u16 = 55;

/// Where each panel goes for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Areas {
    /// Header lines.
    pub header: Rect,
    /// Loss chart.
    pub loss: Rect,
    /// Per-layer gradient bars.
    pub bars: Rect,
    /// Layer × step heat map.
    pub heat: Rect,
    /// Sparklines.
    pub sparklines: Rect,
    /// Status line.
    pub status: Rect,
}

/// Splits the screen. Returns None when it is too small to draw the dashboard.
///
/// Compact (below 120×36, e.g. 80×24):
/// ```text
/// ┌ header (2 lines) ───────────────────────────┐
/// ├ loss chart          │ gradient bars per layer │  fills
/// ├ heat map: layer × step ─────────────────────┤  6 rows
/// ├ sparklines (two columns) ───────────────────┤  6 rows
/// └ status line ────────────────────────────────┘
/// ```
/// Wide (120×36 and up):
/// ```text
/// ┌ header (2 lines) ──────────────────────────────────┐
/// ├ loss chart (55 %)          │ gradient bars (45 %)   │  45 % of the body
/// ├ heat map: layer × step     │ sparklines, stacked    │  the rest
/// └ status line ───────────────────────────────────────┘
/// ```
/// `l` puts the path panel (and the lesion view under it) in place of the heat map; in the
/// compact layout it takes the sparkline rows too. The RNN view keeps the same places with
/// time in place of depth: bars per time step, a time × step heat map. `J` puts the spectrum
/// view (Jacobian spectrum and forward signal) in place of the whole body.
pub fn layout(area: Rect) -> Option<Areas> {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return None;
    }
    let compact = area.width < COMPACT_BELOW_WIDTH || area.height < COMPACT_BELOW_HEIGHT;
    let (header, [loss, bars], [heat, sparklines], status) = if compact {
        let [header, top, heat, sparklines, status] = Layout::vertical([
            Constraint::Length(HEADER_ROWS),
            Constraint::Min(COMPACT_MIN_TOP_ROWS),
            Constraint::Length(COMPACT_HEAT_ROWS),
            Constraint::Length(COMPACT_SPARK_ROWS),
            Constraint::Length(STATUS_ROWS),
        ])
        .areas(area);
        let halves = [Constraint::Percentage(50), Constraint::Percentage(50)];
        let top = Layout::horizontal(halves).areas(top);
        (header, top, [heat, sparklines], status)
    } else {
        let [header, top, bottom, status] = Layout::vertical([
            Constraint::Length(HEADER_ROWS),
            Constraint::Percentage(WIDE_TOP_PERCENT),
            Constraint::Fill(1),
            Constraint::Length(STATUS_ROWS),
        ])
        .areas(area);
        let columns = [
            Constraint::Percentage(WIDE_LEFT_PERCENT),
            Constraint::Percentage(100 - WIDE_LEFT_PERCENT),
        ];
        let top = Layout::horizontal(columns).areas(top);
        let bottom = Layout::horizontal(columns).areas(bottom);
        (header, top, bottom, status)
    };
    Some(Areas {
        header,
        loss,
        bars,
        heat,
        sparklines,
        status,
    })
}

/// Draws the whole dashboard for the current state.
pub fn render(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let Some(areas) = layout(area) else {
        let message = format!(
            "terminal too small ({}×{}): need {MIN_WIDTH}×{MIN_HEIGHT}; q quits",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(message).style(app.theme.alarm()), area);
        return;
    };
    if app.is_compare() {
        render_compare(frame, app);
    } else {
        render_single(frame, app, &areas);
    }
    match &app.overlay {
        Overlay::None => {}
        Overlay::Help => help::render(frame, area, app),
        Overlay::Picker(picker) => picker::render(frame, area, picker, &app.theme),
        Overlay::ForkMenu => fork::render(frame, area, app),
        Overlay::Explain => explain::render(frame, &areas, app),
    }
}

/// Draws the single-run dashboard into `areas`.
fn render_single(frame: &mut Frame, app: &App, areas: &Areas) {
    // The tour's lesson panel takes the sparklines' place (and, compact, part of the heat map's).
    let areas = &tour_panel::render_beside(frame, areas, app);
    let (run, theme) = (app.run(), &app.theme);
    header::render(frame, areas.header, app);
    if run.show_spectrum {
        // The spectrum view takes the whole body: loss, bars, heat map and sparklines.
        spectrum::render(frame, areas.loss.union(areas.sparklines), run, theme);
        status::render(frame, areas.status, app);
        return;
    }
    loss::render(frame, areas.loss, run, theme);
    gradient_flow::render_bars(frame, areas.bars, run, theme);
    if run.show_paths && !run.is_rnn() {
        // Compact: the heat map is too short for two bar charts, so the path panel takes the
        // sparkline rows too.
        if areas.heat.x == areas.sparklines.x {
            paths::render(frame, areas.heat.union(areas.sparklines), run, theme);
        } else {
            paths::render(frame, areas.heat, run, theme);
            sparklines::render(frame, areas.sparklines, run, theme);
        }
    } else {
        gradient_flow::render_heat(frame, areas.heat, run, theme);
        sparklines::render(frame, areas.sparklines, run, theme);
    }
    explain::legends(frame, areas, app);
    status::render(frame, areas.status, app);
}

/// Draws the compare view: a title line, the runs side by side or overlaid, the status line.
fn render_compare(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let [title, body, status_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(STATUS_ROWS),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(compare_header::title_line(app)), title);
    if app.overlaid {
        compare_overlay::render(frame, body, app);
    } else {
        compare_columns::render(frame, body, app);
    }
    status::render(frame, status_area, app);
}
