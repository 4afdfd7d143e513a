//! Small drawing helpers every panel shares: bordered panels, centred popups, and numbers
//! written for people (NaN and Inf spelled out, never charted).

use super::theme::Theme;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders};

/// A centred popup `width` wide and tall enough for `lines` once wrapped (capped at `area`).
pub fn popup_area(area: Rect, width: u16, lines: &[Line]) -> Rect {
    let width = width.min(area.width);
    // Long lines wrap: count the rows they take so the last ones are not cut off.
    let text_width = usize::from(width.saturating_sub(2)).max(1);
    let rows: usize = lines
        .iter()
        .map(|l| l.width().div_ceil(text_width).max(1))
        .sum();
    let height = (rows.min(usize::from(u16::MAX - 2)) as u16 + 2).min(area.height);
    centered(area, width, height)
}

/// A `width` × `height` rectangle in the middle of `area` (clipped to it).
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [popup] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [popup] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(popup);
    popup
}

/// A bordered panel with a title, in the theme's border style.
pub fn panel_block<'a>(theme: &Theme, title: impl Into<Line<'a>>) -> Block<'a> {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(theme.border_type())
        .border_style(theme.dim())
        .title(title.into().style(theme.title()));
    match theme.border_set() {
        Some(set) => block.border_set(set),
        None => block,
    }
}

/// A number for text: scientific for finite values, and NaN/Inf spelled out (never charted).
pub fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v == 0.0 {
        "0".into()
    } else if (0.01..1000.0).contains(&v.abs()) {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

/// A labelled value span pair, e.g. `loss 0.693`, with non-finite values in the alarm style.
pub fn value_spans<'a>(
    theme: &Theme,
    label: &'a str,
    v: f64,
    style: ratatui::style::Style,
) -> [Span<'a>; 2] {
    let value_style = if v.is_finite() { style } else { theme.alarm() };
    [
        Span::styled(label, theme.dim()),
        Span::styled(fmt_value(v), value_style),
    ]
}

/// Tick label for a log10 value on a log axis: `10^v` written compactly.
pub fn log_tick(v: f64) -> String {
    let value = 10f64.powf(v);
    if (0.01..1000.0).contains(&value) {
        let s = format!("{value:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{value:.0e}")
    }
}
