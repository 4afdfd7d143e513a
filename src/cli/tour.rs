//! `gradlab tour`: the guided lessons in the live dashboard; `--list` prints their titles.

use super::{DashArgs, UiArgs};
use crate::out::say;
use crate::ui::app::App;
use crate::ui::theme::Theme;
use crate::ui::tour::Tour;
use crate::ui::tour_lessons::LESSONS;
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `gradlab tour`.
#[derive(Debug, Args)]
pub struct TourArgs {
    /// Print the lessons, one title a line, and exit.
    #[arg(long)]
    list: bool,
    /// Seed every lesson's run with this (default: each preset's own seed).
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    ui: UiArgs,
}

/// Lists the lessons or opens the dashboard on the first one.
pub fn run(args: &TourArgs) -> Result<ExitCode> {
    if args.list {
        for lesson in LESSONS {
            say!("{}", lesson.title)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(code) = super::tui::require_terminal(
        "The tour runs in the dashboard; `gradlab tour --list` prints its lessons.",
    ) {
        return Ok(code);
    }
    let tour = Tour::new(args.seed);
    let experiment = tour.experiment()?;
    let paused = tour.lesson().start_paused;
    let mut app = App::new(Theme::from_env(args.ui.ascii));
    app.tour = Some(tour);
    super::tui::run_app(
        experiment,
        None,
        paused,
        app,
        &args.ui,
        &DashArgs::default(),
    )
}
