//! Helpers the recording tests share: scratch files and the real binary.

use std::path::{Path, PathBuf};
use std::process::Output;

/// `name` in the scratch folder `folder` under `CARGO_TARGET_TMPDIR`, created if need be.
pub fn scratch_in(folder: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(folder);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

/// Like [`scratch_in`], with any file left there by an earlier run removed.
pub fn fresh_in(folder: &str, name: &str) -> PathBuf {
    let path = scratch_in(folder, name);
    let _ = std::fs::remove_file(&path);
    path
}

/// Runs the gradlab binary with `args` and waits for it.
pub fn gradlab(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gradlab"))
        .args(args)
        .output()
        .expect("the binary runs")
}
