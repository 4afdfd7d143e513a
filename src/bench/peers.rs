//! The reference frameworks, run side by side with gradlab: PyTorch eager and JAX jit on the
//! same deep tanh MLPs (`benches/peers/bench_torch.py`, `bench_jax.py`) and the same recurrent
//! training step (`bench_torch_rnn.py`, `bench_jax_rnn.py`), when installed.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One configuration measured by a peer script.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct PeerResult {
    /// "torch" or "jax".
    pub fw: String,
    /// "plain", "residual", "highway", or a recurrent cell: "vanilla", "gru", "lstm".
    pub arch: String,
    /// MLPs: depth as the scripts count it, tanh layers including the input layer.
    #[serde(rename = "L", default)]
    pub depth: Option<usize>,
    /// Recurrent nets: sequence length.
    #[serde(rename = "T", default)]
    pub length: Option<usize>,
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

/// One peer script and what to run it on.
#[derive(Clone, Copy, Debug)]
pub struct PeerScript {
    /// The Python module the script needs.
    pub module: &'static str,
    /// File name in `benches/peers`.
    pub file: &'static str,
    /// Whether it measures recurrent nets (`--lengths`) rather than MLPs (`--depths`).
    pub recurrent: bool,
}

/// Every peer script, MLP and recurrent, PyTorch and JAX.
pub const PEER_SCRIPTS: [PeerScript; 4] = [
    PeerScript {
        module: "torch",
        file: "bench_torch.py",
        recurrent: false,
    },
    PeerScript {
        module: "jax",
        file: "bench_jax.py",
        recurrent: false,
    },
    PeerScript {
        module: "torch",
        file: "bench_torch_rnn.py",
        recurrent: true,
    },
    PeerScript {
        module: "jax",
        file: "bench_jax_rnn.py",
        recurrent: true,
    },
];

/// Runs one peer script on `sizes` (depths or sequence lengths) and reads its JSON; `seconds`
/// is the time the recurrent scripts give one repetition.
pub fn run_peer(
    dir: &Path,
    script: PeerScript,
    sizes: &[usize],
    seconds: f64,
) -> Result<Vec<PeerResult>> {
    run_peer_with(dir, script, sizes, seconds, &[])
}

/// The deep vanishing row on JAX: plain tanh nets of `depths` at σ_w² = 0.5, as gradlab's.
pub fn run_deep_peer(dir: &Path, depths: &[usize]) -> Result<Vec<PeerResult>> {
    let script = PEER_SCRIPTS[1];
    run_peer_with(
        dir,
        script,
        depths,
        0.0,
        &["--archs", "plain", "--weight-var", "0.5"],
    )
}

/// `run_peer` with extra arguments for the script.
fn run_peer_with(
    dir: &Path,
    script: PeerScript,
    sizes: &[usize],
    seconds: f64,
    extra: &[&str],
) -> Result<Vec<PeerResult>> {
    let name = script.file;
    let out = std::env::temp_dir().join(format!(
        "gradlab-peer-{}-{}-{name}.json",
        std::process::id(),
        extra.len()
    ));
    let sizes: Vec<String> = sizes.iter().map(usize::to_string).collect();
    let mut command = Command::new("python3");
    command.arg(dir.join(name)).args(["--reps", "3"]);
    if script.recurrent {
        let seconds = format!("{:.2}", seconds / 3.0);
        command.args(["--lengths", &sizes.join(","), "--seconds", &seconds]);
    } else {
        command.args(["--depths", &sizes.join(","), "--steps", "200"]);
    }
    let status = command
        .args(extra)
        .arg("--json")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot run python3 {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    let text =
        std::fs::read_to_string(&out).with_context(|| format!("cannot read {}", out.display()))?;
    let _ = std::fs::remove_file(&out);
    serde_json::from_str(&text).with_context(|| format!("{name} wrote unexpected JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_json_of_both_kinds_parses() {
        let mlp: Vec<PeerResult> = serde_json::from_str(
            r#"[{"fw": "torch", "arch": "highway", "L": 8, "gn": true, "steps_per_s": 412.5,
                 "reps": [410.0, 412.5, 415.0]}]"#,
        )
        .expect("MLP row");
        assert_eq!((mlp[0].depth, mlp[0].length), (Some(8), None));
        let rnn: Vec<PeerResult> = serde_json::from_str(
            r#"[{"fw": "jax", "arch": "lstm", "T": 200, "gn": false, "steps_per_s": 31.0}]"#,
        )
        .expect("RNN row");
        assert_eq!((rnn[0].depth, rnn[0].length), (None, Some(200)));
        assert_eq!(rnn[0].arch, "lstm");
    }
}
