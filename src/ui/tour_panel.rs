//! The tour's side panel: the lesson's text, the one key it asks for, and what the run showed.
//!
//! Wide layouts put it where the sparklines go (bottom right); compact ones (80×24) give it
//! the rows of the heat map and sparklines but a few kept for the heat map (or path panel).

use super::Areas;
use super::app::App;
use super::keymap::{self, Action, Context};
use super::tour::{Phase, Tour, key_label};
use super::widgets::panel_block;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// Compact layout: rows left to the heat map (or path panel) above the lesson.
const COMPACT_HEAT_ROWS: u16 = 4;

/// Where the lesson panel goes and what is left for the other panels (None: no tour).
pub fn carve(areas: &Areas, app: &App) -> Option<(Areas, Rect)> {
    app.tour.as_ref()?;
    let mut rest = *areas;
    if areas.heat.x == areas.sparklines.x {
        let region = areas.heat.union(areas.sparklines);
        let heat_rows = COMPACT_HEAT_ROWS.min(region.height);
        rest.heat = Rect {
            height: heat_rows,
            ..region
        };
        // Empty, directly under the heat map: the compact path panel takes heat ∪ sparklines.
        rest.sparklines = Rect {
            y: region.y + heat_rows,
            height: 0,
            ..region
        };
        let lesson = Rect {
            y: region.y + heat_rows,
            height: region.height - heat_rows,
            ..region
        };
        Some((rest, lesson))
    } else {
        let lesson = areas.sparklines;
        rest.sparklines = Rect {
            height: 0,
            ..lesson
        };
        Some((rest, lesson))
    }
}

/// Draws the lesson panel when the tour runs; returns the areas left for the other panels.
pub fn render_beside(frame: &mut Frame, areas: &Areas, app: &App) -> Areas {
    let (Some((rest, lesson)), Some(tour)) = (carve(areas, app), &app.tour) else {
        return *areas;
    };
    render(frame, lesson, app, tour);
    rest
}

/// Greedy word wrap to `width` columns (a word longer than the line is cut).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let needed = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if !line.is_empty() && needed > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
        .into_iter()
        .map(|l| l.chars().take(width).collect())
        .collect()
}

/// The panel's title: the lesson's number and title.
pub fn title(tour: &Tour) -> String {
    format!(
        " tour {}/{}: {} ",
        tour.index + 1,
        tour.lessons.len(),
        tour.lesson().title
    )
}

/// Draws the lesson panel into `area`. The key asked for and the verdict always show; the
/// lesson's text fills the rows left above them.
pub fn render(frame: &mut Frame, area: Rect, app: &App, tour: &Tour) {
    let theme = &app.theme;
    let lesson = tour.lesson();
    let next = keymap::label_of(Context::Tour, Action::NextLesson).unwrap_or_default();
    let prev = keymap::label_of(Context::Tour, Action::PrevLesson).unwrap_or_default();
    let footer = Line::from(vec![
        Span::styled(format!(" {next}"), theme.key()),
        Span::styled(" next lesson  ", theme.dim()),
        Span::styled(prev.clone(), theme.key()),
        Span::styled(" previous ", theme.dim()),
    ]);
    // A title too long for the border goes on the first line inside.
    let full = title(tour);
    let fits = full.chars().count() + 2 <= usize::from(area.width);
    let border_title = if fits {
        full
    } else {
        format!(" tour {}/{} ", tour.index + 1, tour.lessons.len())
    };
    let block = panel_block(theme, border_title).title_bottom(footer);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.width == 0 || inner.height == 0 {
        return;
    }
    let width = usize::from(inner.width);
    let key = key_label(lesson, theme.ascii);
    let mut tail: Vec<Line> = Vec::new();
    let mut do_line = vec![
        Span::styled("Do: ", theme.title()),
        Span::styled("press ", theme.text()),
        Span::styled(key.clone(), theme.key()),
        Span::styled(format!(" {}", lesson.doing), theme.text()),
    ];
    let status: Option<(String, ratatui::style::Style)> = match &tour.phase {
        Phase::Loading => Some((format!("loading {}…", lesson.preset), theme.dim())),
        Phase::Waiting => None,
        Phase::Watching { at } => Some((
            format!(
                "measuring since step {at} ({} samples so far)…",
                tour.samples().iter().filter(|(s, _)| s >= at).count()
            ),
            theme.paused(),
        )),
        Phase::Done(verdict) => {
            let (mark, style) = match (verdict.confirmed, theme.ascii) {
                (true, false) => ("✓ confirmed: ", theme.healthy()),
                (true, true) => ("[ok] confirmed: ", theme.healthy()),
                (false, false) => ("✗ not confirmed: ", theme.alarm()),
                (false, true) => ("[x] not confirmed: ", theme.alarm()),
            };
            Some((format!("{mark}{}", verdict.text), style))
        }
        Phase::Elsewhere(name) => Some((
            format!("{name} runs now, not this lesson's preset: {prev} then {next} reloads it"),
            theme.paused(),
        )),
    };
    if matches!(tour.phase, Phase::Done(_)) {
        do_line = vec![
            Span::styled("Done: ", theme.title()),
            Span::styled(format!("you pressed {key}; "), theme.dim()),
            Span::styled(next.clone(), theme.key()),
            Span::styled(" for the next lesson", theme.dim()),
        ];
    }
    tail.push(Line::from(do_line));
    if let Some((text, style)) = status {
        tail.extend(
            wrap(&text, width)
                .into_iter()
                .map(|l| Line::styled(l, style)),
        );
    }
    let room = usize::from(inner.height).saturating_sub(tail.len());
    let mut body: Vec<Line> = Vec::new();
    if !fits {
        body.extend(
            wrap(lesson.title, width)
                .into_iter()
                .map(|l| Line::styled(l, theme.title())),
        );
    }
    for (i, paragraph) in lesson.text.iter().enumerate() {
        if i > 0 && body.len() < room && inner.height > 12 {
            body.push(Line::raw(""));
        }
        body.extend(
            wrap(paragraph, width)
                .into_iter()
                .map(|l| Line::styled(l, theme.text())),
        );
    }
    if body.len() > room {
        body.truncate(room);
        if let Some(last) = body.last_mut() {
            let mut text: String = last
                .spans
                .iter()
                .map(|s| s.content.as_ref())
                .collect::<String>()
                .chars()
                .take(width.saturating_sub(1))
                .collect();
            text.push('…');
            *last = Line::styled(text, theme.text());
        }
    } else if body.len() < room {
        body.push(Line::raw(""));
    }
    body.extend(tail);
    frame.render_widget(Paragraph::new(body), inner);
}
