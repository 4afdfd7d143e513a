//! The fork menu (`f`): which switch the twin gets flipped.
//!
//! A fork copies the running network as it stands — weights, optimiser state, switches, step
//! and position in the data stream — into a twin, flips one switch on the twin, and shows both
//! in the compare view, stepped in lock-step from there: the curves branch at the fork.

use super::app::App;
use super::keymap::{Context, KEYMAP};
use super::widgets::panel_block;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

/// Draws the fork menu as a centred overlay: the fork rows of the keymap, dimmed where the
/// switch does not exist on this kind of net.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let situation = app.situation();
    let mut lines = vec![Line::styled(
        " the twin starts from this run's weights, optimiser and data position; both go on in lock-step",
        theme.dim(),
    )];
    for binding in KEYMAP.iter().filter(|b| b.context == Context::Fork) {
        let style = if binding.scope.allows(&situation) {
            theme.text()
        } else {
            theme.dim()
        };
        lines.push(Line::from(vec![
            Span::styled(format!(" {:>9}  ", binding.label(theme.ascii)), theme.key()),
            Span::styled(binding.help, style),
        ]));
    }
    let popup = super::widgets::popup_area(area, 60, &lines);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(panel_block(
                theme,
                format!(" fork {}: flip one switch ", app.run().name()),
            )),
        popup,
    );
}
