//! Streams a recording through the reader and prints what each of its runs holds, with the
//! same bad-line policy as export, plot and reproduce (each bad line named once, a count at
//! the end): `cargo run --release --example read_recording -- FILE`.

use gradlab::recording::runs;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: read_recording FILE"))?;
    let started = std::time::Instant::now();
    let index = runs::index(path.as_ref())?;
    println!(
        "{} ({}), format version {}: {}",
        index.header.preset.name,
        index.header.started_at,
        index.header.version,
        index.describe_runs()
    );
    for run in &index.runs {
        let end = match (&run.ended, run.finished) {
            (Some(reason), _) => format!("ended: {reason}"),
            (None, Some(step)) => format!("finished at step {step}"),
            (None, None) => "no end recorded".into(),
        };
        println!(
            "  run {} ({}): {} snapshots, steps {}–{}, {} commands, {end}",
            run.run,
            run.experiment.name,
            run.snapshots,
            if run.snapshots > 0 { run.first_step } else { 0 },
            run.last_step,
            run.commands.len()
        );
    }
    if let Some(summary) = index.damage.summary() {
        println!("{summary}");
    }
    println!("read in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
