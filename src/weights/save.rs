//! Writing weights where no file is replaced: the dashboard's save key picks a fresh name.

use anyhow::{Context, Result, bail};
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Most numbered names tried before giving up on a folder.
const MOST_TRIES: usize = 1000;

/// Writes `bytes` to `<dir>/<stem>.safetensors`, or `<stem>-2.safetensors`, `-3`, … when that
/// exists; never replaces a file (each name is created only if absent, atomically). Returns
/// the path written. A write that fails half-way removes its own file.
pub fn save_fresh(dir: &Path, stem: &str, bytes: &[u8]) -> Result<PathBuf> {
    for n in 1..=MOST_TRIES {
        let name = if n == 1 {
            format!("{stem}.safetensors")
        } else {
            format!("{stem}-{n}.safetensors")
        };
        let path = dir.join(name);
        let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot write {}", path.display()));
            }
        };
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        if let Err(e) = written {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(e).with_context(|| format!("cannot write {}", path.display()));
        }
        return Ok(path);
    }
    bail!(
        "{} already holds {MOST_TRIES} files named {stem}*.safetensors; move some away",
        dir.display()
    )
}

/// A file name stem for weights of `preset` at `step`: the preset's name with anything but
/// letters, digits, `-` and `_` replaced (a preset may be a path).
pub fn stem_for(preset: &str, step: u64) -> String {
    let name: String = preset
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}-step{step}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_names_never_replace_a_file() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let first = save_fresh(dir.path(), "net-step5", b"one").expect("written");
        let second = save_fresh(dir.path(), "net-step5", b"two").expect("written");
        assert_eq!(first, dir.path().join("net-step5.safetensors"));
        assert_eq!(second, dir.path().join("net-step5-2.safetensors"));
        assert_eq!(std::fs::read(&first).expect("readable"), b"one");
        assert_eq!(stem_for("../my preset", 7), "___my_preset-step7");
        let missing = dir.path().join("no-such-folder");
        let error = save_fresh(&missing, "x", b"").unwrap_err();
        assert!(format!("{error:#}").contains("cannot write"), "{error:#}");
    }
}
