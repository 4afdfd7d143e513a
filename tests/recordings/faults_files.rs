//! A user's files are never destroyed: `export` and `plot` refuse to write over their input
//! (by any spelling of its path) or over an existing file without `--force`, write whole files
//! through a temporary file, and `--record` (via `recording::writer::open_for_record`) refuses
//! an existing file unless told to replace it or append to it.

use gradlab::config::{apply_overrides, load_preset};
use gradlab::learner::build_learner;
use gradlab::recording::writer::{WriterLock, open_for_record};
use gradlab::recording::{Header, Recorder, Recording};
use gradlab::trainer::run_headless;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A fresh, empty folder for one test.
fn folder(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("faults-files")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A small real recording at `path`.
fn recording(path: &Path) {
    let e = load_preset("plain-deep").expect("preset");
    let e = apply_overrides(&e, &["model.depth=3".into()]).expect("override");
    let mut trainer = build_learner(e.clone(), None).expect("trainer");
    let mut recorder = Recorder::create(path, &Header::new(&e, Some(4))).expect("recorder");
    run_headless(trainer.as_mut(), 4, &[], &mut recorder);
    recorder.close().expect("close");
}

/// Runs the binary in `dir`.
fn gradlab_in(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gradlab"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Every regular file in `dir` with its bytes, to compare before and after.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_file()))
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("bytes"))
        })
        .collect();
    files.sort();
    files
}

/// Asserts a refusal: exit 2, one line on stderr naming each of `names`, no panic, and the
/// folder exactly as before.
fn assert_refused(dir: &Path, args: &[&str], names: &[&str]) {
    let before = snapshot(dir);
    let out = gradlab_in(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    for name in names {
        assert!(stderr.contains(name), "{args:?} names {name}: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(snapshot(dir), before, "{args:?} changed a file");
}

#[test]
fn export_refuses_to_write_over_its_own_input_by_any_spelling() {
    let dir = folder("export-self");
    recording(&dir.join("v.jsonl"));
    std::os::unix::fs::symlink("v.jsonl", dir.join("link.jsonl")).expect("symlink");
    std::fs::hard_link(dir.join("v.jsonl"), dir.join("hard.jsonl")).expect("hard link");
    for out in ["v.jsonl", "./v.jsonl", "link.jsonl", "hard.jsonl"] {
        assert_refused(
            &dir,
            &["export", "v.jsonl", "--csv", out],
            &["v.jsonl", out],
        );
        // --force replaces other files, never the input.
        assert_refused(
            &dir,
            &["export", "v.jsonl", "--csv", out, "--force"],
            &["v.jsonl", out],
        );
    }
}

#[test]
fn plot_refuses_to_write_over_its_own_input() {
    let dir = folder("plot-self");
    // A recording whose name looks like a figure, so only the same-file check can stop it.
    recording(&dir.join("v.svg"));
    std::os::unix::fs::symlink("v.svg", dir.join("link.svg")).expect("symlink");
    for out in ["v.svg", "./v.svg", "link.svg"] {
        assert_refused(
            &dir,
            &["plot", "v.svg", "--out", out, "--force"],
            &["v.svg", out],
        );
    }
    // Through a symlink that looks like a figure but points at the recording.
    recording(&dir.join("w.jsonl"));
    std::os::unix::fs::symlink("w.jsonl", dir.join("w.png")).expect("symlink");
    assert_refused(
        &dir,
        &["plot", "w.jsonl", "--out", "w.png"],
        &["w.jsonl", "w.png"],
    );
}

#[test]
fn existing_outputs_are_kept_unless_forced() {
    let dir = folder("existing");
    recording(&dir.join("v.jsonl"));
    std::fs::write(dir.join("old.csv"), "my,own\n1,2\n").expect("write");
    std::fs::write(dir.join("old.svg"), "<svg>mine</svg>").expect("write");
    assert_refused(
        &dir,
        &["export", "v.jsonl", "--csv", "old.csv"],
        &["old.csv", "--force"],
    );
    assert_refused(
        &dir,
        &["plot", "v.jsonl", "--out", "old.svg"],
        &["old.svg", "--force"],
    );

    let out = gradlab_in(&dir, &["export", "v.jsonl", "--csv", "old.csv", "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(dir.join("old.csv")).expect("csv");
    assert!(csv.starts_with("run,step,"), "{csv}");
    let out = gradlab_in(&dir, &["plot", "v.jsonl", "--out", "old.svg", "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_to_string(dir.join("old.svg"))
            .expect("svg")
            .contains("run 1")
    );
    // A new output gets the permissions any new file gets here, not a temporary file's 0600.
    let out = gradlab_in(&dir, &["export", "v.jsonl", "--csv", "new.csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("probe"), "").expect("write");
    let mode = |name: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir.join(name))
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("new.csv"), mode("probe"));
    let leftovers: Vec<_> = snapshot(&dir)
        .into_iter()
        .filter(|(name, _)| name.starts_with(".gradlab-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

#[test]
fn a_failed_export_or_plot_leaves_the_old_output_whole() {
    let dir = folder("failed");
    // A recording with a header and no snapshot: plotting it fails after the checks.
    let e = load_preset("plain-deep").expect("preset");
    Recorder::create(&dir.join("empty.jsonl"), &Header::new(&e, None))
        .expect("recorder")
        .close()
        .expect("close");
    std::fs::write(dir.join("keep.svg"), "<svg>mine</svg>").expect("write");
    std::fs::write(dir.join("keep.csv"), "mine\n").expect("write");
    std::fs::write(dir.join("notes.jsonl"), "these are my notes\n").expect("write");
    for args in [
        vec!["plot", "empty.jsonl", "--out", "keep.svg", "--force"],
        vec!["plot", "notes.jsonl", "--out", "keep.svg", "--force"],
        vec!["export", "notes.jsonl", "--csv", "keep.csv", "--force"],
        vec![
            "export",
            "empty.jsonl",
            "--csv",
            "keep.csv",
            "--force",
            "--run",
            "3",
        ],
    ] {
        let before = snapshot(&dir);
        let out = gradlab_in(&dir, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(snapshot(&dir), before, "{args:?}");
    }
}

#[test]
fn record_refuses_an_existing_file_unless_forced_or_appending() {
    let dir = folder("record");
    let e = load_preset("plain-deep").expect("preset");
    let header = Header::new(&e, None);
    let mine = dir.join("notes.txt");
    std::fs::write(&mine, "not a recording\n").expect("write");
    let before = snapshot(&dir);

    let message = |r: anyhow::Result<Recorder>| match r {
        Ok(_) => panic!("accepted"),
        Err(e) => format!("{e:#}"),
    };
    let refused = message(open_for_record(&mine, false, false, &header));
    assert!(
        refused.contains("notes.txt") && refused.contains("--force"),
        "{refused}"
    );
    assert!(refused.contains("--append"), "{refused}");
    let refused = message(open_for_record(&mine, false, true, &header));
    assert!(refused.contains("not a gradlab recording"), "{refused}");
    let refused = message(open_for_record(&mine, true, true, &header));
    assert!(
        refused.contains("--force") && refused.contains("--append"),
        "{refused}"
    );
    assert_eq!(snapshot(&dir), before, "refusals leave the file alone");

    // A version-1 recording is not appended to: its runs would mix two formats.
    let old = dir.join("old.jsonl");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1-highway.jsonl"),
        &old,
    )
    .expect("copy");
    let before = snapshot(&dir);
    let refused = message(open_for_record(&old, false, true, &header));
    assert!(
        refused.contains("old.jsonl") && refused.contains("version 1"),
        "{refused}"
    );
    assert_eq!(snapshot(&dir), before);

    // --force replaces; a new path is simply created.
    let replaced = open_for_record(&mine, true, false, &header).expect("forced");
    replaced.close().expect("close");
    assert!(Recording::open(&mine).is_ok());
    let new = dir.join("new.jsonl");
    open_for_record(&new, false, false, &header)
        .expect("new file")
        .close()
        .expect("close");
    assert!(Recording::open(&new).is_ok());
}

#[test]
fn appending_after_a_torn_last_line_keeps_the_new_run_readable() {
    let dir = folder("append-torn");
    let path = dir.join("cut.jsonl");
    recording(&path);
    let mut bytes = std::fs::read(&path).expect("bytes");
    bytes.extend_from_slice(b"{\"run\":1,\"type\":\"snap");
    std::fs::write(&path, &bytes).expect("write");
    let e = load_preset("plain-deep").expect("preset");
    let e = apply_overrides(&e, &["model.depth=3".into()]).expect("override");
    let mut appender =
        open_for_record(&path, false, true, &Header::new(&e, Some(2))).expect("appends");
    let mut trainer = build_learner(e, None).expect("trainer");
    run_headless(trainer.as_mut(), 2, &[], &mut appender);
    appender.close().expect("close");
    let after = std::fs::read(&path).expect("bytes");
    assert_eq!(
        &after[..bytes.len()],
        &bytes[..],
        "the old bytes are untouched"
    );
    let lines: Vec<_> = Recording::open(&path).expect("opens").collect();
    let corrupt = lines.iter().filter(|l| l.is_err()).count();
    assert_eq!(corrupt, 1, "the torn line stays one corrupt line");
    let runs: Vec<u32> = lines.iter().flatten().map(|l| l.run).collect();
    assert_eq!(runs.last(), Some(&2), "the appended session is run 2");
}

#[test]
fn a_recording_another_writer_holds_is_refused_and_left_alone() {
    let dir = folder("busy");
    let path = dir.join("live.jsonl");
    recording(&path);
    let e = load_preset("plain-deep").expect("preset");
    let header = Header::new(&e, None);
    let before = snapshot(&dir);
    let held = WriterLock::take(&path).expect("lock");
    for (force, append) in [(true, false), (false, true)] {
        let refused = match open_for_record(&path, force, append, &header) {
            Ok(_) => panic!("a second writer was let in (force {force}, append {append})"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            refused.contains("live.jsonl") && refused.contains("being written by another"),
            "{refused}"
        );
    }
    let refused = Recorder::create(&path, &header)
        .map(|_| ())
        .expect_err("busy");
    assert_eq!(refused.kind(), std::io::ErrorKind::ResourceBusy);
    assert_eq!(snapshot(&dir), before, "refusals leave the recording alone");
    drop(held);
    open_for_record(&path, false, true, &header)
        .expect("appends once the other writer has gone")
        .close()
        .expect("close");
}

#[test]
fn record_force_refuses_a_file_another_gradlab_run_is_recording() {
    let dir = folder("busy-process");
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_gradlab"))
        .current_dir(&dir)
        .args(["run", "--preset", "plain-shallow", "--steps", "100000000"])
        .args(["--record", "live.jsonl"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let path = dir.join("live.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::metadata(&path).map_or(0, |m| m.len()) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never recorded"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = gradlab_in(
        &dir,
        &["run", "--steps", "2", "--record", "live.jsonl", "--force"],
    );
    let grown = std::fs::metadata(&path).map_or(0, |m| m.len());
    let _ = first.kill();
    let _ = first.wait();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("live.jsonl")
            && stderr.contains("being written by another gradlab process"),
        "{stderr}"
    );
    // The first run's recording was not emptied: it still starts with its header.
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        grown > 0 && text.starts_with("{\"format\""),
        "{}",
        &text[..text.len().min(200)]
    );
}
