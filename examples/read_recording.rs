//! Streams a recording through the reader and prints what it holds, the way replay reads it:
//! `cargo run --release --example read_recording -- FILE`.

use gradlab::protocol::Event;
use gradlab::recording::Recording;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: read_recording FILE"))?;
    let started = std::time::Instant::now();
    let mut recording = Recording::open(path.as_ref())?;
    let (mut snapshots, mut commands, mut errors, mut last_loss) = (0u64, 0u64, 0u64, f64::NAN);
    for record in recording.by_ref() {
        match record.map(|line| line.event) {
            Ok(Event::Snapshot(s)) => {
                snapshots += 1;
                last_loss = s.loss;
            }
            Ok(Event::Applied { .. }) => commands += 1,
            Ok(_) => {}
            Err(e) => {
                errors += 1;
                eprintln!("{e}");
            }
        }
    }
    println!(
        "{} ({}): {snapshots} snapshots, {commands} commands, {errors} bad lines, last loss {last_loss:.4}, truncated tail {:?}, {:.1} s",
        recording.header().preset.name,
        recording.header().started_at,
        recording.truncated(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
