//! Named colours and glyphs. `NO_COLOR` turns every colour off; `--ascii` swaps Unicode block
//! and line characters for plain ASCII so the dashboard works on any terminal.

use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols;
use ratatui::widgets::BorderType;

/// Visual settings for one session: whether to use colour and whether Unicode glyphs are safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    /// Colours on (false when `NO_COLOR` is set).
    pub color: bool,
    /// ASCII-only glyphs.
    pub ascii: bool,
}

/// Bars for sparklines in ASCII mode, darkest to fullest.
const ASCII_BAR: symbols::bar::Set<'static> = symbols::bar::Set {
    full: "#",
    seven_eighths: "#",
    three_quarters: "=",
    five_eighths: "=",
    half: "-",
    three_eighths: "-",
    one_quarter: ".",
    one_eighth: ".",
    empty: " ",
};

/// Shades for the heat map when there is no colour, lowest to highest.
const ASCII_SHADES: &[char] = &[' ', '.', ':', '-', '=', '+', '*', '#', '%', '@'];
const UNICODE_SHADES: &[char] = &[' ', '░', '░', '▒', '▒', '▓', '▓', '█', '█', '█'];

/// Heat map ramp (xterm-256 indices): cold blue through green to hot red.
const HEAT_RAMP: &[u8] = &[
    17, 18, 19, 25, 31, 37, 43, 49, 84, 120, 156, 192, 228, 220, 208, 202, 196,
];

impl Theme {
    /// Colours unless `NO_COLOR` is set to a non-empty value (see no-color.org).
    pub fn from_env(ascii: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color: !no_color,
            ascii,
        }
    }

    fn fg(&self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    /// Ordinary text.
    pub fn text(&self) -> Style {
        Style::new()
    }
    /// Secondary text: labels, axes.
    pub fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }
    /// Titles and the preset name.
    pub fn title(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    /// Key names in hints.
    pub fn key(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
    /// A switch that is on / the value in effect.
    pub fn active(&self) -> Style {
        self.fg(Color::LightGreen).add_modifier(Modifier::BOLD)
    }
    /// Healthy gradient flow and a running trainer.
    pub fn healthy(&self) -> Style {
        self.fg(Color::Green)
    }
    /// Vanishing gradients.
    pub fn vanishing(&self) -> Style {
        self.fg(Color::Blue)
    }
    /// Exploding gradients.
    pub fn exploding(&self) -> Style {
        self.fg(Color::Red)
    }
    /// A paused trainer.
    pub fn paused(&self) -> Style {
        self.fg(Color::Yellow)
    }
    /// Divergence, crashes and errors; bold so they read without colour too.
    pub fn alarm(&self) -> Style {
        self.fg(Color::LightRed).add_modifier(Modifier::BOLD)
    }
    /// Command markers on the charts.
    pub fn marker(&self) -> Style {
        self.fg(Color::Magenta)
    }
    /// Theory beside measurement: the mean-field line and the trivial-baseline loss.
    pub fn theory(&self) -> Style {
        self.fg(Color::White).add_modifier(Modifier::BOLD)
    }
    /// The layer under the cursor.
    pub fn cursor(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    /// Colour of the n-th loss series: main, test, then auxiliary heads.
    pub fn series(&self, n: usize) -> Style {
        const SERIES: [Color; 6] = [
            Color::LightCyan,
            Color::LightYellow,
            Color::LightMagenta,
            Color::LightBlue,
            Color::LightGreen,
            Color::Gray,
        ];
        self.fg(SERIES[n % SERIES.len()])
    }

    /// Colour of the n-th run in the compare view's overlays: far apart, none of them the
    /// marker or theory colour.
    pub fn run(&self, n: usize) -> Style {
        const RUNS: [Color; 4] = [
            Color::LightCyan,
            Color::LightMagenta,
            Color::LightGreen,
            Color::LightYellow,
        ];
        self.fg(RUNS[n % RUNS.len()])
    }

    /// Point glyph of the n-th run in the overlays, so runs stay apart without colour too.
    pub fn run_marker(&self, n: usize) -> symbols::Marker {
        const UNICODE: [char; 3] = ['•', '×', '+'];
        const ASCII: [char; 4] = ['*', 'o', 'x', '+'];
        match (self.ascii, n % 4) {
            (true, i) => symbols::Marker::Custom(ASCII[i]),
            (false, 0) => symbols::Marker::Braille,
            (false, i) => symbols::Marker::Custom(UNICODE[i - 1]),
        }
    }

    /// The n-th run's legend glyph, matching [`Theme::run_marker`].
    pub fn run_glyph(&self, n: usize) -> char {
        match self.run_marker(n) {
            symbols::Marker::Custom(c) => c,
            _ => '⣿',
        }
    }

    /// Borders: rounded on Unicode terminals, `+--+` in ASCII mode.
    pub fn border_type(&self) -> BorderType {
        if self.ascii {
            BorderType::Plain
        } else {
            BorderType::Rounded
        }
    }
    /// Border glyphs in ASCII mode (ratatui's plain borders are Unicode box drawing).
    pub fn border_set(&self) -> Option<symbols::border::Set<'static>> {
        self.ascii.then_some(symbols::border::Set {
            top_left: "+",
            top_right: "+",
            bottom_left: "+",
            bottom_right: "+",
            vertical_left: "|",
            vertical_right: "|",
            horizontal_top: "-",
            horizontal_bottom: "-",
        })
    }
    /// Bars for sparklines.
    pub fn bar_set(&self) -> symbols::bar::Set<'static> {
        if self.ascii {
            ASCII_BAR
        } else {
            symbols::bar::NINE_LEVELS
        }
    }
    /// Point marker for line charts.
    pub fn chart_marker(&self) -> symbols::Marker {
        if self.ascii {
            symbols::Marker::Custom('*')
        } else {
            symbols::Marker::Braille
        }
    }
    /// Glyph for a full cell of a bar.
    pub fn block(&self) -> &'static str {
        if self.ascii { "#" } else { "█" }
    }
    /// Glyph for a vertical marker line.
    pub fn vline(&self) -> &'static str {
        if self.ascii { "|" } else { "┊" }
    }
    /// Heat-map cell for a level in 0..=1: a coloured block, or a shade when colour is off.
    pub fn heat(&self, level: f64) -> (char, Style) {
        let level = if level.is_finite() {
            level.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if self.color {
            let i = (level * (HEAT_RAMP.len() - 1) as f64).round() as usize;
            let glyph = if self.ascii { '#' } else { '█' };
            (glyph, Style::new().fg(Color::Indexed(HEAT_RAMP[i])))
        } else {
            let shades = if self.ascii {
                ASCII_SHADES
            } else {
                UNICODE_SHADES
            };
            let i = (level * (shades.len() - 1) as f64).round() as usize;
            (shades[i], Style::new())
        }
    }
}
