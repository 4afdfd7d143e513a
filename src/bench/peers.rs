//! The reference frameworks, run side by side with gradlab: PyTorch eager and JAX jit on the
//! same deep tanh MLP (`benches/peers/bench_torch.py`, `bench_jax.py`), when installed.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One configuration measured by a peer script.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct PeerResult {
    /// "torch" or "jax".
    pub fw: String,
    /// "plain" or "residual".
    pub arch: String,
    /// Depth as the scripts count it: tanh layers including the input layer.
    #[serde(rename = "L")]
    pub depth: usize,
    /// Whether per-layer gradient norms were read every step.
    pub gn: bool,
    /// Median steps per second.
    pub steps_per_s: f64,
}

/// The folder holding the peer scripts: `benches/peers` of the checkout, found from the
/// current directory or the executable's location.
pub fn peers_dir() -> Option<PathBuf> {
    let from_cwd = PathBuf::from("benches/peers");
    if from_cwd.is_dir() {
        return Some(from_cwd);
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .map(|a| a.join("benches/peers"))
        .find(|p| p.is_dir())
}

/// Whether `python3` can import `module`.
pub fn has_python_module(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs one peer script (`bench_torch.py` or `bench_jax.py`) on `depths` and reads its JSON.
pub fn run_peer(
    dir: &Path,
    script: &str,
    depths: &[usize],
    steps: usize,
) -> Result<Vec<PeerResult>> {
    let out =
        std::env::temp_dir().join(format!("gradlab-peer-{}-{script}.json", std::process::id()));
    let depths: Vec<String> = depths.iter().map(usize::to_string).collect();
    let status = Command::new("python3")
        .arg(dir.join(script))
        .args([
            "--depths",
            &depths.join(","),
            "--steps",
            &steps.to_string(),
            "--reps",
            "3",
        ])
        .arg("--json")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot run python3 {script}"))?;
    if !status.success() {
        bail!("{script} failed ({status})");
    }
    let text =
        std::fs::read_to_string(&out).with_context(|| format!("cannot read {}", out.display()))?;
    let _ = std::fs::remove_file(&out);
    serde_json::from_str(&text).with_context(|| format!("{script} wrote unexpected JSON"))
}
