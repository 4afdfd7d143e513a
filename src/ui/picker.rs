//! The preset picker: built-in presets plus `.ron` files in `./presets`, loaded on Enter.

use super::theme::Theme;
use crate::config::{Experiment, builtin_presets, load_preset};
use anyhow::Result;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Borders, Clear, List, ListItem, ListState};
use std::path::{Path, PathBuf};

/// Where a picker entry comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PresetSource {
    /// A preset compiled into the binary.
    Builtin(&'static str),
    /// A `.ron` file on disk.
    File(PathBuf),
}

/// The open picker: its entries and the one under the cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picker {
    /// Entries, built-ins first.
    pub entries: Vec<PresetSource>,
    /// Index of the highlighted entry.
    pub selected: usize,
    /// Why the folder could not be read, if it could not.
    pub folder_error: Option<String>,
    /// Each entry's one-line description (or why it does not parse), in entry order.
    pub descriptions: Vec<String>,
}

impl Picker {
    /// Lists the built-in presets and the `.ron` files in `folder` that are not verbatim copies
    /// of a built-in (the repository's own `presets/` holds exactly those).
    pub fn discover(folder: &Path) -> Self {
        let mut entries: Vec<PresetSource> = builtin_presets()
            .iter()
            .map(|p| PresetSource::Builtin(p.name))
            .collect();
        let mut folder_error = None;
        match std::fs::read_dir(folder) {
            Ok(dir) => {
                let mut files: Vec<PathBuf> = dir
                    .filter_map(|entry| entry.ok().map(|e| e.path()))
                    .filter(|path| path.extension().is_some_and(|e| e == "ron"))
                    .filter(|path| !is_builtin_copy(path))
                    .collect();
                files.sort();
                entries.extend(files.into_iter().map(PresetSource::File));
            }
            // No folder is the usual case outside the repository, not an error.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => folder_error = Some(format!("{}: {error}", folder.display())),
        }
        let descriptions = entries.iter().map(describe).collect();
        Self {
            entries,
            selected: 0,
            folder_error,
            descriptions,
        }
    }

    /// Moves the highlight, wrapping around.
    pub fn move_selection(&mut self, up: bool) {
        let n = self.entries.len();
        if n == 0 {
            return;
        }
        self.selected = if up {
            (self.selected + n - 1) % n
        } else {
            (self.selected + 1) % n
        };
    }
}

impl PresetSource {
    /// Parses the preset.
    pub fn load(&self) -> Result<Experiment> {
        match self {
            PresetSource::Builtin(name) => load_preset(name),
            PresetSource::File(path) => load_preset(&path.to_string_lossy()),
        }
    }
}

/// A preset's description, or why it cannot be read.
pub fn describe(source: &PresetSource) -> String {
    match source.load() {
        Ok(experiment) => experiment.description,
        Err(error) => format!("does not load: {error:#}"),
    }
}

fn is_builtin_copy(path: &Path) -> bool {
    let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
        return false;
    };
    let Some(builtin) = builtin_presets().iter().find(|p| p.name == stem) else {
        return false;
    };
    std::fs::read_to_string(path).is_ok_and(|text| text == builtin.source)
}

/// Draws the picker as a centred overlay, each preset with its description and the
/// highlighted one's in full under the list.
pub fn render(frame: &mut Frame, area: Rect, picker: &Picker, theme: &Theme) {
    let width = 100.min(area.width);
    let inner_width = usize::from(width.saturating_sub(2)).max(1);
    let selected = picker
        .descriptions
        .get(picker.selected)
        .cloned()
        .unwrap_or_default();
    let detail = super::tour_panel::wrap(&selected, inner_width);
    let height = (picker.entries.len() as u16 + 4 + detail.len() as u16).min(area.height);
    let popup = super::widgets::centered(area, width, height);
    frame.render_widget(Clear, popup);
    let name_width = picker
        .entries
        .iter()
        .map(|e| entry_name(e).chars().count())
        .max()
        .unwrap_or(0);
    let items: Vec<ListItem> = picker
        .entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let kind = match entry {
                PresetSource::Builtin(_) => "",
                PresetSource::File(_) => " (file)",
            };
            let description = picker.descriptions.get(i).cloned().unwrap_or_default();
            ListItem::new(Line::from(vec![
                Span::styled(format!("{:name_width$}", entry_name(entry)), theme.text()),
                Span::styled(format!("{kind}  {description}"), theme.dim()),
            ]))
        })
        .collect();
    let mut footer = vec![
        Span::styled(" Enter", theme.key()),
        Span::styled(" load  ", theme.dim()),
        Span::styled("Esc", theme.key()),
        Span::styled(" cancel ", theme.dim()),
    ];
    if let Some(error) = &picker.folder_error {
        footer.push(Span::styled(error.clone(), theme.alarm()));
    }
    let block = super::widgets::panel_block(theme, " load a preset (restarts the run) ")
        .borders(Borders::ALL)
        .title_bottom(Line::from(footer));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let list_rows = inner
        .height
        .saturating_sub(detail.len() as u16 + 1)
        .max(1)
        .min(inner.height);
    let list_area = Rect {
        height: list_rows,
        ..inner
    };
    let list = List::new(items)
        .highlight_style(theme.cursor())
        .highlight_symbol(if theme.ascii { "> " } else { "▶ " });
    let mut state = ListState::default().with_selected(Some(picker.selected));
    frame.render_stateful_widget(list, list_area, &mut state);
    if inner.height > list_rows + 1 {
        let text: Vec<Line> = detail
            .into_iter()
            .map(|l| Line::styled(l, theme.text()))
            .collect();
        let detail_area = Rect {
            y: inner.y + list_rows + 1,
            height: inner.height - list_rows - 1,
            ..inner
        };
        frame.render_widget(ratatui::widgets::Paragraph::new(text), detail_area);
    }
}

/// The name an entry is listed under.
fn entry_name(entry: &PresetSource) -> String {
    match entry {
        PresetSource::Builtin(name) => name.to_string(),
        PresetSource::File(path) => path.display().to_string(),
    }
}
