//! The headless command line, end to end through the real binary.

use std::process::Command;

fn gradlab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gradlab"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn presets_lists_every_built_in_with_its_description() {
    let out = gradlab(&["presets"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for preset in gradlab::config::builtin_presets() {
        let line = text
            .lines()
            .find(|l| l.starts_with(preset.name))
            .unwrap_or_else(|| panic!("{} listed", preset.name));
        assert!(
            line.len() > preset.name.len() + 10,
            "with a description: {line}"
        );
    }
}

#[test]
fn run_json_follows_the_contract() {
    let out = gradlab(&[
        "run",
        "--preset",
        "plain-deep",
        "--steps",
        "20",
        "--json",
        "--set",
        "model.depth=8",
    ]);
    let json = json_of(&out);
    assert_eq!(json["preset"], "plain-deep");
    assert_eq!(json["step"], 20);
    assert!(json["loss"].as_f64().is_some_and(|l| l > 0.0));
    assert!(
        json["train_accuracy"]
            .as_f64()
            .is_some_and(|a| (0.0..=1.0).contains(&a))
    );
    assert!(json["test_accuracy"].as_f64().is_some());
    assert_eq!(json["diverged"], false);
    let layers = json["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 8);
    for (i, layer) in layers.iter().enumerate() {
        assert_eq!(layer["layer"], i + 1, "layers count from 1 at the input");
        for key in ["weight_grad_norm", "act_grad_norm", "act_rms"] {
            assert!(
                layer[key].as_f64().is_some_and(|v| v > 0.0),
                "layer {i} {key}"
            );
        }
        assert!(layer["gate_mean"].is_null(), "no gates in a plain net");
    }
    let first = layers[0]["act_grad_norm"].as_f64().unwrap_or_default();
    let last = layers[7]["act_grad_norm"].as_f64().unwrap_or_default();
    let ratio = json["grad_ratio_first_last"].as_f64().expect("ratio");
    assert!((ratio - first / last).abs() <= 1e-9 * ratio.abs());
    assert!(json["measured_chi1"].as_f64().is_some());
    // Progress goes to stderr, never into the JSON.
    assert!(String::from_utf8_lossy(&out.stderr).contains("step"));
}

#[test]
fn run_prints_a_summary_table() {
    let out = gradlab(&["run", "--preset", "residual-deep", "--steps", "0"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for row in [
        "loss",
        "train accuracy",
        "‖∂L/∂h‖ layer 1 ",
        "‖∂L/∂h‖ layer 16 ",
        "‖∂L/∂h‖ layer 32 ",
        "first/last",
        "mean-field for residual",
        "guessing scores 0.6931",
        "state",
    ] {
        assert!(text.contains(row), "summary has `{row}`:\n{text}");
    }
    // People read fixed notation, not `6.9269e-1`.
    assert!(!text.contains("e-1") && !text.contains("e0"), "{text}");
}

#[test]
fn a_bad_preset_is_a_clear_error_with_its_position() {
    let out = gradlab(&[
        "run",
        "--preset",
        "tests/bad_presets/unknown-field.ron",
        "--steps",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tests/bad_presets/unknown-field.ron:9:9: Unexpected field named `dept`"),
        "{err}"
    );
    assert!(!err.contains("panicked"));

    let out = gradlab(&["run", "--preset", "no-such-preset"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no preset named `no-such-preset`"));

    let out = gradlab(&["run", "--set", "model.width=0", "--steps", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--set model.width=0: width must be in 1..=1024, got 0")
    );
}

#[test]
fn a_diverging_run_exits_with_its_own_code_and_says_where() {
    let out = gradlab(&[
        "run",
        "--preset",
        "exploding",
        "--steps",
        "200",
        "--json",
        "--set",
        "clip_grad_norm=None",
        "--set",
        "optimizer.lr=50",
        "--set",
        "model.depth=6",
        "--set",
        "model.activation=Linear",
        "--set",
        "model.init.weight_var=4.0",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON even when diverged");
    assert_eq!(json["diverged"], true);
    assert!(json["loss"].is_null(), "non-finite numbers are null");
    assert!(json["divergence"]["layer"].is_number());
}

#[test]
fn run_json_has_paths_theory_and_lesions() {
    let out = gradlab(&[
        "run",
        "--preset",
        "residual-deep",
        "--steps",
        "5",
        "--json",
        "--lesion",
        "--set",
        "model.depth=6",
    ]);
    let json = json_of(&out);
    let paths = &json["paths"];
    assert_eq!(paths["blocks"], 6);
    assert_eq!(paths["samples_per_length"], 8);
    let by_length = paths["by_length"].as_array().expect("by_length");
    assert_eq!(by_length.len(), 7);
    let total: f64 = by_length
        .iter()
        .map(|l| l["contribution"].as_f64().unwrap_or(f64::NAN))
        .sum();
    assert!((total - 1.0).abs() < 1e-9);
    assert_eq!(paths["effective_range"].as_array().map(Vec::len), Some(2));
    assert!(paths["mean_length"].as_f64().is_some());
    // residual-deep is tanh at σ_w² = 0.5, σ_b² = 0: q* = 0 and χ₁ = σ_w².
    let theory = &json["theory"];
    assert!((theory["chi1"].as_f64().unwrap_or(f64::NAN) - 0.5).abs() < 1e-9);
    assert_eq!(theory["q_star"].as_f64(), Some(0.0));
    assert!(theory["predicted_db_per_layer"].as_f64().is_some());
    // The prediction is for the architecture in effect, named, one entry per layer relative
    // to the last, and its first entry is the first/last ratio.
    assert_eq!(theory["architecture"], "residual");
    let per_layer = theory["per_layer_db"].as_array().expect("per_layer_db");
    assert_eq!(per_layer.len(), 6);
    assert_eq!(per_layer[5].as_f64(), Some(0.0));
    let predicted = theory["predicted_ratio_db"]
        .as_f64()
        .expect("predicted_ratio_db");
    assert_eq!(per_layer[0].as_f64(), Some(predicted));
    assert!(
        predicted > 0.0,
        "a residual tanh net's gradient grows toward the input"
    );
    let lesion = json["lesion"].as_array().expect("lesion");
    assert_eq!(lesion.len(), 6);
    for (i, l) in lesion.iter().enumerate() {
        assert_eq!(l["block"], i + 1, "blocks count from 1 at the input");
        assert!(l["test_loss"].as_f64().is_some());
        assert!(l["test_accuracy"].as_f64().is_some());
    }
}

#[test]
fn json_splits_each_layers_gradient_by_source_for_aux_and_dense_nets() {
    let out = gradlab(&[
        "run",
        "--preset",
        "aux-deep",
        "--steps",
        "5",
        "--json",
        "--set",
        "model.depth=8",
        "--set",
        "model.aux.every=4",
    ]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let sources = json["sources"].as_array().expect("sources for an aux net");
    assert_eq!(sources.len(), 8);
    // One auxiliary head, after layer 3: it reaches layers 0..=3 and nothing above.
    assert!(sources[0]["aux"][0].as_f64().is_some_and(|v| v > 0.0));
    assert_eq!(sources[5]["aux"][0].as_f64(), Some(0.0));
    let main_only = gradlab(&["run", "--preset", "plain-deep", "--steps", "1", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&main_only.stdout).expect("JSON");
    assert!(json.get("sources").is_none(), "a plain net has one source");
}

#[test]
fn bench_json_lists_mlp_and_recurrent_rows_by_the_contract() {
    let out = gradlab(&[
        "bench",
        "--json",
        "--no-peers",
        "--depths",
        "2",
        "--lengths",
        "6",
        "--seconds",
        "0.1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("a JSON list");
    // plain, residual, highway at depth 2 and vanilla, GRU, LSTM at T = 6, metrics on and off.
    assert_eq!(rows.len(), 12);
    let mut seen = std::collections::BTreeSet::new();
    for row in &rows {
        let model = row["model"].as_str().expect("model");
        let recurrent = ["vanilla", "gru", "lstm"].contains(&model);
        if recurrent {
            assert_eq!(row["length"], 6, "{row}");
            assert!(row.get("depth").is_none(), "{row}");
            assert_eq!(
                (row["width"].as_u64(), row["batch"].as_u64()),
                (Some(64), Some(64))
            );
        } else {
            assert!(["plain", "residual", "highway"].contains(&model), "{row}");
            assert_eq!(row["depth"], 2, "{row}");
            assert!(row.get("length").is_none(), "{row}");
        }
        let metrics = row["metrics"].as_bool().expect("metrics");
        assert!(
            row["steps_per_sec"].as_f64().is_some_and(|s| s > 0.0),
            "{row}"
        );
        assert!(row.get("torch_steps_per_sec").is_none() && row.get("ratio_jax").is_none());
        // The peak per core, the cores the row ran on (its batch is cut into two shards), and
        // its products as a fraction of peak × cores.
        assert!(
            row["peak_gflops"].as_f64().is_some_and(|p| p > 0.0),
            "{row}"
        );
        assert!(
            row["cores"].as_u64().is_some_and(|c| (1..=2).contains(&c)),
            "{row}"
        );
        assert!(
            row["fraction_of_peak"]
                .as_f64()
                .is_some_and(|f| f > 0.0 && f.is_finite()),
            "{row}"
        );
        seen.insert((model.to_string(), metrics));
    }
    assert_eq!(seen.len(), 12, "every model with metrics on and off");
}

#[test]
fn bench_dashboard_json_gives_each_preset_its_overhead() {
    // The real dashboard (driver, forwarder, interface loop drawing into memory) against a
    // headless run, one short pair per preset.
    let out = gradlab(&[
        "bench",
        "--json",
        "--dashboard",
        "plain-shallow,rnn-vanilla-adding",
        "--pairs",
        "1",
        "--seconds",
        "0.3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("a JSON list");
    let presets: Vec<_> = rows.iter().map(|r| r["preset"].as_str()).collect();
    assert_eq!(presets, [Some("plain-shallow"), Some("rnn-vanilla-adding")]);
    for row in &rows {
        for field in ["dashboard_steps_per_sec", "headless_steps_per_sec"] {
            assert!(row[field].as_f64().is_some_and(|s| s > 0.0), "{row}");
        }
        let d = row["dashboard_steps_per_sec"].as_f64().unwrap_or(f64::NAN);
        let h = row["headless_steps_per_sec"].as_f64().unwrap_or(f64::NAN);
        let overhead = row["overhead_percent"].as_f64().unwrap_or(f64::NAN);
        assert!((overhead - 100.0 * (1.0 - d / h)).abs() < 1e-9, "{row}");
        assert_eq!(row["pairs_percent"].as_array().map(Vec::len), Some(1));
        // On Linux the interface's share of the CPU is read from /proc: a fraction of it.
        let interface = row["interface_cpu_percent"].as_f64();
        assert!(
            interface.is_some_and(|p| (0.0..=100.0).contains(&p))
                || (!cfg!(target_os = "linux") && row["interface_cpu_percent"].is_null()),
            "{row}"
        );
        assert_eq!(row["seconds"].as_f64(), Some(0.3));
    }
}

/// The one JSON object a successful command printed.
fn json_of(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

#[test]
fn run_json_has_jacobian_spectrum_and_forward_signal() {
    let out = gradlab(&[
        "run",
        "--preset",
        "isometry-orthogonal",
        "--steps",
        "2",
        "--json",
        "--set",
        "model.depth=6",
    ]);
    let json = json_of(&out);
    let jacobian = &json["jacobian"];
    let values = jacobian["singular_values"]
        .as_array()
        .expect("singular_values");
    assert_eq!(values.len(), 8 * 64, "8 inputs × width 64");
    let values: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "largest first");
    let mean_sq = jacobian["mean_sq"].as_f64().expect("mean_sq");
    let direct = values.iter().map(|v| v * v).sum::<f64>() / values.len() as f64;
    assert!(
        (mean_sq - direct).abs() <= 1e-9 * direct,
        "{mean_sq} vs {direct}"
    );
    assert!(jacobian["predicted_mean_sq"].as_f64().is_some());
    assert_eq!(jacobian["from_layer"], 1);
    assert_eq!(jacobian["to_layer"], 6);
    let forward = &json["forward"];
    let layers = forward["layers"].as_array().expect("forward.layers");
    assert_eq!(layers.len(), 6);
    for (i, l) in layers.iter().enumerate() {
        assert_eq!(l["layer"], i + 1, "layers count from 1 at the input");
        for key in ["q", "q_theory", "c", "c_theory"] {
            assert!(l[key].as_f64().is_some(), "{key} in {l}");
        }
    }
    assert!(
        forward["xi_c"].as_f64().is_some(),
        "near-critical tanh: a finite ξ_c"
    );
    // A recurrent net has no hidden stack to take a Jacobian of.
    let rnn = json_of(&gradlab(&[
        "run", "--preset", "rnn-xor", "--steps", "1", "--json",
    ]));
    assert!(rnn.get("jacobian").is_none() && rnn.get("forward").is_none());
}

#[test]
fn presets_show_prints_ron_that_parses_back_as_the_same_preset() {
    for preset in gradlab::config::builtin_presets() {
        let out = gradlab(&["presets", "--show", preset.name]);
        assert!(out.status.success(), "{}", preset.name);
        let text = String::from_utf8_lossy(&out.stdout);
        let shown = gradlab::config::parse_preset(&text, "stdout").expect("parses");
        let original = gradlab::config::load_preset(preset.name).expect("built-in");
        assert_eq!(shown, original, "{}", preset.name);
    }
    // A file prints as written; an unknown name is refused with the list of built-ins.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mine.ron");
    let source = gradlab::config::builtin_presets()[1].source;
    std::fs::write(&path, source).expect("write");
    let out = gradlab(&["presets", "--show", &path.to_string_lossy()]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        source.trim_end()
    );
    let out = gradlab(&["presets", "--show", "no-such-preset"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plain-deep"), "{stderr}");
}

#[test]
fn tour_list_prints_one_lesson_title_a_line() {
    let out = gradlab(&["tour", "--list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let titles: Vec<&str> = gradlab::ui::tour_lessons::LESSONS
        .iter()
        .map(|l| l.title)
        .collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), titles);
    let out = gradlab(&["tour"]);
    assert_eq!(out.status.code(), Some(2), "no terminal, no dashboard");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--list"));
}
