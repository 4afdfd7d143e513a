//! What every figure `gradlab plot` draws shares: the embedded font (and a check that it has a
//! glyph for every character shown), integer tick labels for counts, a perceptually uniform
//! colour map and its colour bar.

use anyhow::{Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use std::sync::OnceLock;

/// DejaVu Sans Mono (Bitstream Vera licence, `assets/fonts`): embedded so no system font
/// library is needed, and chosen for its coverage of ‖ ∂ → × σ.
pub const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");

/// Registers the embedded font as `sans-serif` once per process.
pub fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        bail!("the embedded font does not load")
    }
}

/// The characters of `text` the embedded font has no glyph for (they would print as boxes).
pub fn missing_glyphs(text: &str) -> Vec<char> {
    use ab_glyph::{Font, FontRef};
    let Ok(font) = FontRef::try_from_slice(FONT) else {
        return text.chars().collect();
    };
    text.chars()
        .filter(|c| !c.is_whitespace() && font.glyph_id(*c).0 == 0)
        .collect()
}

/// `text` with every character the font lacks replaced by `?`, so a label from user data (a
/// preset name) never draws an empty box.
pub fn printable(text: &str) -> String {
    let missing = missing_glyphs(text);
    text.chars()
        .map(|c| if missing.contains(&c) { '?' } else { c })
        .collect()
}

/// A tick label for an axis of counts (steps, layers, time steps, path lengths): the integer
/// when the tick sits on one, nothing between integers, so no axis reads `1000.0` or `2.5`.
pub fn integer_label(value: &f64) -> String {
    let rounded = value.round();
    if (value - rounded).abs() < 1e-9 {
        format!("{}", rounded as i64)
    } else {
        String::new()
    }
}

/// A tick label for a continuous quantity: three significant digits, no trailing zeros.
pub fn value_label(value: &f64) -> String {
    if *value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor();
    if !(-3.0..4.0).contains(&magnitude) {
        return format!("{value:.1e}");
    }
    let decimals = (2.0 - magnitude).max(0.0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Viridis at `t` in [0, 1]: perceptually uniform, readable in grey and by most colour-blind
/// readers, unlike the rainbow ramp it replaces.
pub fn viridis(t: f64) -> RGBColor {
    ViridisRGB::get_color(t.clamp(0.0, 1.0) as f32)
}

/// Width of the colour bar beside a heat map, labels included.
pub const COLOUR_BAR_WIDTH: u32 = 130;

/// A vertical colour bar for values `lo..hi`, titled `label`.
pub fn draw_colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lo: f64,
    hi: f64,
    label: &str,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    const STEPS: usize = 64;
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let mut bar = ChartBuilder::on(area)
        .margin_top(42)
        .margin_bottom(42)
        .margin_right(8)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..1.0, lo..hi)?;
    bar.configure_mesh()
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .disable_mesh()
        .disable_x_axis()
        .y_desc(printable(label))
        .y_label_formatter(&value_label)
        .y_labels(6)
        .draw()?;
    let step = (hi - lo) / STEPS as f64;
    bar.draw_series((0..STEPS).map(|i| {
        let y = lo + step * i as f64;
        Rectangle::new(
            [(0.0, y), (1.0, y + step)],
            viridis(i as f64 / (STEPS - 1) as f64).filled(),
        )
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_ticks_are_integers_and_halves_are_blank() {
        assert_eq!(integer_label(&1000.0), "1000");
        assert_eq!(integer_label(&2.5), "");
        assert_eq!(integer_label(&-0.0), "0");
    }

    #[test]
    fn values_keep_three_significant_digits() {
        assert_eq!(value_label(&0.6123), "0.612");
        assert_eq!(value_label(&12.0), "12");
        assert_eq!(value_label(&1.5e-6), "1.5e-6");
    }

    #[test]
    fn the_font_covers_the_symbols_the_figures_use() {
        assert!(missing_glyphs("log10 ‖∂L/∂h_l‖ → × σ² ÷ – … ≥").is_empty());
        // A character outside the font is reported, and printed as '?'.
        assert_eq!(missing_glyphs("訓"), vec!['訓']);
        assert_eq!(printable("a訓"), "a?");
    }

    #[test]
    fn viridis_runs_dark_purple_to_yellow() {
        let (start, end) = (viridis(0.0), viridis(1.0));
        assert!(start.0 < 100 && start.2 > 60, "{start:?}");
        assert!(end.0 > 200 && end.1 > 200 && end.2 < 80, "{end:?}");
    }
}
