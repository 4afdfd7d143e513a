//! Property tests: mutated recordings and mutated preset texts never panic the readers.
//!
//! `PROPTEST_CASES=100000 cargo test --release --test recordings fuzz_recording::` runs a longer campaign.

use gradlab::config::{apply_overrides, builtin_presets, load_preset, parse_preset};
use gradlab::model::Trainer;
use gradlab::protocol::Command;
use gradlab::recording::export::export_csv;
use gradlab::recording::runs::{self, Checked};
use gradlab::recording::writer::Tee;
use gradlab::recording::{Follower, Header, Recorder, Recording, RecordingError};
use gradlab::trainer::{VecSink, run_headless};
use proptest::prelude::*;
use std::io::Cursor;
use std::sync::OnceLock;

/// A small real recording with commands, snapshots and a final state.
fn sample() -> &'static [u8] {
    static SAMPLE: OnceLock<Vec<u8>> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let e = load_preset("highway-deep").expect("preset");
        let e = apply_overrides(&e, &["model.depth=3".into()]).expect("override");
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-sample.jsonl");
        let mut recorder = Recorder::create(&path, &Header::new(&e, Some(6))).expect("recorder");
        let mut trainer = Trainer::new(e, None).expect("trainer");
        let schedule = [
            (2, Command::SetAux(true)),
            (4, Command::SetLearningRate(0.5)),
        ];
        run_headless(
            &mut trainer,
            6,
            &schedule,
            &mut Tee(&mut recorder, &mut VecSink::default()),
        );
        recorder.close().expect("close");
        std::fs::read(&path).expect("sample")
    })
}

/// The version-1 recording of the previous release, committed as a fixture.
fn v1_sample() -> &'static [u8] {
    include_bytes!("../data/v1-session.jsonl")
}

/// Reads everything; only panics count as failures.
fn read_everything(bytes: &[u8]) {
    if let Ok(recording) = Recording::from_reader(Cursor::new(bytes)) {
        for record in recording {
            if let Err(e) = record {
                let _ = e.to_string();
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(usize, u8),
    Truncate(usize),
    InsertLine(usize, Vec<u8>),
    Splice(usize, usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let garbage = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        Just(b"{\"type\":\"snapshot\"}".to_vec()),
        Just(b"{\"type\":\"command\",\"step\":-1}".to_vec()),
        Just(b"{\"type\":\"state\",\"step\":1,\"state\":{\"diverged\":null}}".to_vec()),
        Just(b"[1e999999,null,\"\\ud800\"]".to_vec()),
        Just(b"{\"format\":\"gradlab-recording\",\"version\":18446744073709551616}".to_vec()),
        "[ -~]{0,80}".prop_map(String::into_bytes),
    ];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), garbage.clone()).prop_map(|(i, g)| Mutation::InsertLine(i, g)),
        (any::<usize>(), 0usize..40, garbage).prop_map(|(i, n, g)| Mutation::Splice(i, n, g)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::FlipBit(i, bit) if !bytes.is_empty() => {
            let i = i % bytes.len();
            bytes[i] ^= 1 << bit;
        }
        Mutation::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
        Mutation::InsertLine(i, garbage) => {
            let starts: Vec<usize> = std::iter::once(0)
                .chain(
                    bytes
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| **b == b'\n')
                        .map(|(i, _)| i + 1),
                )
                .collect();
            let at = starts[i % starts.len()];
            let mut line = garbage.clone();
            line.push(b'\n');
            bytes.splice(at..at, line);
        }
        Mutation::Splice(i, n, garbage) => {
            let at = i % (bytes.len() + 1);
            let end = (at + n).min(bytes.len());
            bytes.splice(at..end, garbage.iter().copied());
        }
        Mutation::FlipBit(..) => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_recordings_never_panic(mutations in proptest::collection::vec(mutation(), 1..6)) {
        let mut bytes = sample().to_vec();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        read_everything(&bytes);
    }

    #[test]
    fn mutated_recordings_never_panic_the_follower(
        mutations in proptest::collection::vec(mutation(), 1..4),
        cut in any::<usize>(),
    ) {
        let mut bytes = sample().to_vec();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        // Written in two parts, as a live writer would, the cut anywhere.
        let cut = cut % (bytes.len() + 1);
        let path = std::env::temp_dir().join(format!("gradlab-fuzz-follow-{}", std::process::id()));
        std::fs::write(&path, &bytes[..cut]).expect("write");
        let mut follower = Follower::open(&path).expect("open");
        for _ in 0..10_000 {
            match follower.poll() {
                None => break,
                Some(Err(e)) if e.is_fatal() => break,
                Some(_) => {}
            }
        }
        std::fs::write(&path, &bytes).expect("write");
        for _ in 0..10_000 {
            match follower.poll() {
                None => break,
                Some(Err(e)) if e.is_fatal() => break,
                Some(_) => {}
            }
        }
    }

    #[test]
    fn mutated_recordings_never_panic_the_whole_file_tools(
        legacy in any::<bool>(),
        mutations in proptest::collection::vec(mutation(), 1..5),
    ) {
        // The version-1 fixture goes through the legacy conversion as well.
        let mut bytes = if legacy { v1_sample().to_vec() } else { sample().to_vec() };
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let dir = std::env::temp_dir();
        let id = std::process::id();
        let input = dir.join(format!("gradlab-fuzz-tools-{id}.jsonl"));
        let output = dir.join(format!("gradlab-fuzz-tools-{id}.csv"));
        std::fs::write(&input, &bytes).expect("write");
        let _ = runs::index(&input);
        let _ = export_csv(&input, &output, None, true);
        let _ = export_csv(&input, &output, Some(2), true);

        // The checked reader skips exactly the lines the plain reader calls corrupt.
        if let Ok(recording) = Recording::from_reader(Cursor::new(&bytes)) {
            let mut corrupt = 0;
            let mut fatal = false;
            for line in recording {
                match line {
                    Err(RecordingError::Corrupt { .. }) => corrupt += 1,
                    Err(_) => fatal = true,
                    Ok(_) => {}
                }
            }
            let recording = Recording::from_reader(Cursor::new(&bytes)).expect("opened before");
            let mut checked = Checked::new(recording, &input, false);
            for line in checked.by_ref() {
                prop_assert!(line.is_ok() || fatal);
            }
            prop_assert_eq!(checked.damage().corrupt, corrupt);
        }
    }

    #[test]
    fn mutated_presets_never_panic(
        preset in 0..builtin_presets().len(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = builtin_presets()[preset].source.as_bytes().to_vec();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(e) = parse_preset(&text, "fuzz") {
            let _ = apply_overrides(&e, &["model.depth=3".into()]);
        }
    }
}
