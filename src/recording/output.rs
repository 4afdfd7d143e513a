//! Files the recording tools write, written so that a user's file is never destroyed.
//!
//! An output that is the input (by any spelling: `./v.jsonl`, a symlink, a hard link) is
//! refused before anything is opened for writing; an output that exists is replaced only with
//! `--force`; and a file produced whole (CSV, PNG, SVG) is written to a temporary file in the
//! same folder and renamed into place, so a failed write leaves the old file as it was and
//! never a half-written one.

use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;
use tempfile::{Builder, NamedTempFile};

/// Whether `a` and `b` name the same existing file (same device and inode on Unix).
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        // A path that does not exist cannot be a file that does.
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        ma.dev() == mb.dev() && ma.ino() == mb.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (ma, mb);
        match (a.canonicalize(), b.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

/// Refuses to write `output` when it is `input`, or when it exists and `force` is not given.
/// Call it before opening anything for writing.
pub fn check_output(input: &Path, output: &Path, force: bool) -> Result<()> {
    if same_file(input, output) {
        bail!(
            "refusing to write {} over the recording it reads ({} is the same file); choose another output",
            output.display(),
            input.display()
        );
    }
    if !force && output.symlink_metadata().is_ok() {
        bail!("{} exists; pass --force to replace it", output.display());
    }
    Ok(())
}

/// A temporary file beside `output`, ending like it (plotters picks the image format by
/// the extension).
fn temporary_beside(output: &Path) -> Result<NamedTempFile> {
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let suffix = output
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let mut builder = Builder::new();
    builder.prefix(".gradlab-").suffix(&suffix);
    #[cfg(unix)]
    {
        // Temporary files are private (0600) by default; the finished file should get the
        // permissions any new file gets (0666 less the umask), as a plain create would.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}

/// Moves the finished temporary file to `output`; without `force`, never over an existing
/// file, even one that appeared while writing.
fn put_in_place(temporary: NamedTempFile, output: &Path, force: bool) -> Result<()> {
    temporary
        .as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", output.display()))?;
    let placed = if force {
        temporary.persist(output)
    } else {
        temporary.persist_noclobber(output)
    };
    match placed {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == ErrorKind::AlreadyExists => {
            bail!("{} exists; pass --force to replace it", output.display())
        }
        Err(e) => Err(e.error).with_context(|| format!("cannot write {}", output.display())),
    }
}

/// Writes `output` whole: `write` fills a temporary file, which then replaces `output`.
pub fn write_whole(
    output: &Path,
    force: bool,
    write: impl FnOnce(&File) -> Result<()>,
) -> Result<()> {
    via_temporary(output, force, |temporary| write(temporary.as_file()))
}

/// Like [`write_whole`] for writers that want a path (the temporary one, with `output`'s
/// extension).
pub fn write_whole_at(
    output: &Path,
    force: bool,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    via_temporary(output, force, |temporary| write(temporary.path()))
}

/// Fills a temporary file beside `output` with `write`, then puts it in `output`'s place.
fn via_temporary(
    output: &Path,
    force: bool,
    write: impl FnOnce(&NamedTempFile) -> Result<()>,
) -> Result<()> {
    let temporary = temporary_beside(output)?;
    write(&temporary)?;
    put_in_place(temporary, output, force)
}
