//! Recordings end to end, linked as one test binary: writing and reading back, several runs in
//! a file, version-1 files, file faults, and fuzzed input. One module per former
//! `tests/<name>.rs`, each with its own scratch folder under `CARGO_TARGET_TMPDIR`; filter by
//! module, e.g. `cargo test --release --test recordings recording_runs::`.

mod faults_files;
mod fuzz_recording;
mod legacy_recording;
mod recording;
mod recording_runs;
mod support;
