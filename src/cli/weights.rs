//! The weight and checkpoint flags of `gradlab run` and the dashboard: reading the file to
//! start from, refusing outputs before training, and writing them after.

use crate::learner::Learner;
use crate::out::tell;
use crate::recording::output::{check_output, same_file, write_whole};
use crate::weights::{Weights, format};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where `gradlab run` starts from and what it writes besides its report.
#[derive(Debug, Args, Clone, Default)]
pub struct WeightsArgs {
    /// Start from the weights in this safetensors file (every tensor's name and shape must
    /// fit the preset; the optimiser starts fresh at step 0).
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub load_weights: Option<PathBuf>,
    /// Write the network's weights at the end to this safetensors file (numpy, PyTorch and
    /// JAX read it); an existing file is refused unless --force.
    #[arg(long, value_name = "FILE")]
    pub save_weights: Option<PathBuf>,
    /// Write a checkpoint at the end (also after SIGINT/SIGTERM/SIGHUP): weights, optimiser
    /// state, step, live switches and data position; --resume continues it bit for bit.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Continue the run saved in this checkpoint (give the same --preset and --set); --steps
    /// is the step to stop at, counted from the run's start.
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
}

impl WeightsArgs {
    /// The file the run starts from, if any.
    fn input(&self) -> Option<&Path> {
        self.load_weights.as_deref().or(self.resume.as_deref())
    }

    /// Whether anything is written at the end.
    pub fn writes(&self) -> bool {
        self.save_weights.is_some() || self.checkpoint.is_some()
    }

    /// Refuses, before anything is trained, outputs that would replace a file without
    /// `force`, the file the run starts from, the recording, or each other; and a recording
    /// of a run that does not start from the preset's initialisation (`reproduce` could not
    /// replay it).
    pub fn check(&self, force: bool, record: Option<&Path>) -> Result<()> {
        if let (Some(_), Some(input)) = (record, self.input()) {
            let flag = if self.resume.is_some() {
                "--resume"
            } else {
                "--load-weights"
            };
            bail!(
                "--record cannot be combined with {flag} {}: a recording is replayed by \
                 `gradlab reproduce` from the preset's initial weights",
                input.display()
            );
        }
        let outputs = [
            ("--save-weights", self.save_weights.as_deref()),
            ("--checkpoint", self.checkpoint.as_deref()),
        ];
        if let (Some(a), Some(b)) = (outputs[0].1, outputs[1].1)
            && (a == b || same_file(a, b))
        {
            bail!(
                "--save-weights and --checkpoint both name {}: give each its own file",
                a.display()
            );
        }
        for (flag, output) in outputs {
            let Some(output) = output else { continue };
            if let Some(input) = self.input()
                && (input == output || same_file(input, output))
            {
                bail!(
                    "refusing to write {flag} {} over {}, the file this run starts from; \
                     choose another output",
                    output.display(),
                    input.display()
                );
            }
            if record.is_some_and(|r| r == output) {
                bail!(
                    "{flag} {} is the --record file: give each its own file",
                    output.display()
                );
            }
            check_output(Path::new(""), output, force)
                .with_context(|| format!("{flag} {}", output.display()))?;
            check_folder(output).with_context(|| format!("{flag} {}", output.display()))?;
        }
        Ok(())
    }

    /// Reads the start file and puts `learner` there: weights only, or a whole checkpoint.
    pub fn start(&self, learner: &mut dyn Learner) -> Result<()> {
        if let Some(path) = &self.load_weights {
            learner.load_weights(&read(path)?)?;
        }
        if let Some(path) = &self.resume {
            learner.restore(&read(path)?)?;
        }
        Ok(())
    }

    /// Writes the outputs asked for: weights as the net stands, and a checkpoint unless the
    /// run diverged (then stderr says why none was written).
    pub fn finish(&self, learner: &mut dyn Learner, force: bool) -> Result<()> {
        if let Some(path) = &self.save_weights {
            write(path, &learner.weights(), force)?;
            tell!(
                "weights: wrote {} (step {})",
                path.display(),
                learner.step()
            );
        }
        if let Some(path) = &self.checkpoint {
            match learner.checkpoint() {
                Ok(checkpoint) => {
                    write(path, &checkpoint, force)?;
                    tell!(
                        "checkpoint: wrote {} (step {})",
                        path.display(),
                        learner.step()
                    );
                }
                Err(why) => tell!("checkpoint: not written: {why:#}"),
            }
        }
        Ok(())
    }
}

/// Reads a weights or checkpoint file, naming it in every error.
pub fn read(path: &Path) -> Result<Weights> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    format::decode(&bytes, &path.display().to_string())
}

/// Writes `weights` to `path` whole (a temporary file renamed into place).
fn write(path: &Path, weights: &Weights, force: bool) -> Result<()> {
    let bytes = format::encode(weights)?;
    write_whole(path, force, |mut file| {
        file.write_all(&bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    })
}

/// Refuses an output whose folder does not exist or is not a folder, before a long run.
fn check_folder(output: &Path) -> Result<()> {
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!("cannot write there: {} is not a folder", dir.display());
    }
    Ok(())
}
