//! `gradlab bench --dashboard PRESET,...`: the dashboard's cost to training, one table row
//! (or JSON object) per preset.

use super::PresetArgs;
use crate::out::{say, tell};
use anyhow::Result;
use std::process::ExitCode;
use std::time::Duration;

/// Measures each preset in turn and prints the table, or a JSON list with `json`.
pub fn dashboard_overhead(
    presets: &[String],
    timed: Duration,
    pairs: usize,
    json: bool,
) -> Result<ExitCode> {
    // Every preset is loaded (and refused) before anything is timed.
    let mut loaded = Vec::new();
    for name in presets {
        let args = PresetArgs {
            preset: name.clone(),
            overrides: Vec::new(),
        };
        loaded.push((name, args.load()?, args.base_dir()));
    }
    let slice = (crate::bench::overhead::WARM_UP + timed).as_secs_f64();
    tell!(
        "bench --dashboard: {} preset(s) × {pairs} pairs of {slice:.0} s slices, about {:.0} s",
        presets.len(),
        presets.len() as f64 * pairs as f64 * 2.0 * slice
    );
    if !json {
        say!(
            "{:<16} {:>12} {:>12} {:>9} {:>14}   {}",
            "preset",
            "dashboard/s",
            "headless/s",
            "overhead",
            "interface CPU",
            "(each pair)"
        )?;
    }
    let mut results = Vec::new();
    for (name, experiment, base_dir) in loaded {
        let result =
            crate::bench::overhead::measure(name, &experiment, base_dir.as_deref(), timed, pairs)?;
        let each: Vec<String> = result
            .pairs_percent
            .iter()
            .map(|p| format!("{p:.1}%"))
            .collect();
        if json {
            tell!(
                "{name}: {:.1} % ({})",
                result.overhead_percent,
                each.join(" ")
            );
        } else {
            let interface = result
                .interface_cpu_percent
                .map_or_else(|| "–".to_string(), |p| format!("{p:.1}%"));
            say!(
                "{:<16} {:>12.1} {:>12.1} {:>8.1}% {:>14}   {}",
                result.preset,
                result.dashboard_steps_per_sec,
                result.headless_steps_per_sec,
                result.overhead_percent,
                interface,
                each.join(" ")
            )?;
        }
        results.push(result);
    }
    if json {
        say!("{}", serde_json::to_string_pretty(&results)?)?;
    } else {
        say!(
            "overhead: median over pairs of 1 − dashboard/headless; interface CPU: the drawing loop's and the event forwarder's share of the process's CPU time (median over the dashboard's slices; the live analyses, paced to 1 % of training time each, are not in it); the dashboard draws {}×{} frames at {} fps into memory",
            crate::bench::overhead::FRAME.width,
            crate::bench::overhead::FRAME.height,
            crate::bench::overhead::FPS
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
