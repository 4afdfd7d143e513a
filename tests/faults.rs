//! Faults a long remote session meets, through the real binary: stdout's reader going away,
//! a full disk, bad values, flags a subcommand does not use, and requests too big to serve.
//! Every case must end with its documented exit status, one message naming what the user gave,
//! no panic, and every file that existed before left byte for byte as it was.
//!
//! The cases are a table: a new fault is one more row in [`CASES`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the child's stdout goes.
#[derive(Clone, Copy, Debug)]
enum Stdout {
    /// A pipe read to the end: the ordinary case.
    Read,
    /// A pipe whose reading end is closed before the child starts: every write gets EPIPE.
    Closed,
    /// `/dev/full`: every write gets ENOSPC.
    Full,
}

/// One fault and what the binary must do about it.
struct Case {
    /// Shown when the case fails.
    name: &'static str,
    /// Arguments; `{dir}` is replaced by the case's scratch folder.
    args: &'static [&'static str],
    stdout: Stdout,
    /// The exit status the README documents for this fault.
    code: i32,
    /// Text the one error line must contain (empty: stderr must have no error line at all).
    message: &'static [&'static str],
    /// Text no line of stderr may contain (the wrong name, Rust's Debug form).
    not: &'static [&'static str],
}

/// Cases whose stderr is `/dev/full` (a dropped SSH session): only the exit status can be
/// checked, and it must be the ordinary one (a panic would give 101).
const STDERR_FULL: &[(&str, &[&str], i32)] = &[
    (
        "run's progress into a full stderr",
        &["run", "--steps", "3", "--set", "model.depth=2"],
        0,
    ),
    (
        "an error into a full stderr",
        &["run", "--set", "model.cell=Gru"],
        2,
    ),
    (
        "bench's progress into a full stderr",
        &[
            "bench",
            "--json",
            "--no-peers",
            "--depths",
            "2",
            "--lengths",
            "0",
            "--seconds",
            "0.1",
        ],
        0,
    ),
];

/// Keeps every training case small: two layers, one step.
const CASES: &[Case] = &[
    // ── plot: sweep folders and recordings ──
    Case {
        name: "plot a folder that holds no sweep results",
        args: &["plot", "{dir}", "--out", "{dir}/figure.png"],
        stdout: Stdout::Read,
        code: 2,
        message: &["no results.csv", "gradlab sweep"],
        not: &["panicked"],
    },
    Case {
        name: "plot a sweep onto an existing figure",
        args: &["plot", "{dir}/sweep-out", "--out", "{dir}/old.png"],
        stdout: Stdout::Read,
        code: 2,
        message: &["old.png exists", "--force"],
        not: &["panicked"],
    },
    Case {
        name: "plot a sweep by a column it does not have",
        args: &[
            "plot",
            "{dir}/sweep-out",
            "--y",
            "nope",
            "--out",
            "{dir}/figure.svg",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["no column `nope`", "tail_loss"],
        not: &["panicked"],
    },
    Case {
        name: "plot --run on a sweep folder",
        args: &[
            "plot",
            "{dir}/sweep-out",
            "--run",
            "1",
            "--out",
            "{dir}/figure.svg",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["--run is for recordings"],
        not: &["panicked"],
    },
    Case {
        name: "plot --x on a recording",
        args: &[
            "plot",
            "{dir}/v1.jsonl",
            "--x",
            "model.depth",
            "--out",
            "{dir}/figure.svg",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["--x and --y are for a sweep"],
        not: &["panicked"],
    },
    // ── an output that exists is never replaced unless asked ──
    Case {
        name: "run --record onto an existing file",
        args: &[
            "run",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--record",
            "{dir}/precious.txt",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["precious.txt exists", "--force", "--append"],
        not: &[],
    },
    Case {
        name: "run --record --append onto a file that is not a recording",
        args: &[
            "run",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--record",
            "{dir}/precious.txt",
            "--append",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["precious.txt", "not a gradlab recording"],
        not: &[],
    },
    Case {
        name: "run --record with both --force and --append",
        args: &[
            "run",
            "--steps",
            "1",
            "--record",
            "{dir}/new.jsonl",
            "--force",
            "--append",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["--force", "--append"],
        not: &[],
    },
    Case {
        name: "reproduce into a closed pipe",
        args: &["reproduce", "{dir}/v1.jsonl"],
        stdout: Stdout::Closed,
        code: 141,
        message: &[],
        not: &[],
    },
    Case {
        name: "reproduce into a full disk",
        args: &["reproduce", "{dir}/v1.jsonl"],
        stdout: Stdout::Full,
        code: 74,
        message: &["stdout"],
        not: &[],
    },
    // ── weights and checkpoints: outputs never replace a file, inputs are checked ──
    Case {
        name: "run --save-weights onto an existing file",
        args: &[
            "run",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--save-weights",
            "{dir}/precious.txt",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["--save-weights", "precious.txt exists", "--force"],
        not: &[],
    },
    Case {
        name: "run --checkpoint onto an existing file",
        args: &[
            "run",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--checkpoint",
            "{dir}/keep.txt",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["--checkpoint", "keep.txt exists", "--force"],
        not: &[],
    },
    Case {
        name: "run --save-weights over the --load-weights input, even with --force",
        args: &[
            "run",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--load-weights",
            "{dir}/weights.safetensors",
            "--save-weights",
            "./weights.safetensors",
            "--force",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &[
            "refusing to write --save-weights",
            "the file this run starts from",
        ],
        not: &[],
    },
    Case {
        name: "run --checkpoint over the --resume input, even with --force",
        args: &[
            "run",
            "-p",
            "highway-deep",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--resume",
            "{dir}/ck-highway.safetensors",
            "--checkpoint",
            "{dir}/ck-highway.safetensors",
            "--force",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["refusing to write --checkpoint", "ck-highway.safetensors"],
        not: &[],
    },
    Case {
        name: "run --save-weights and --checkpoint naming one file",
        args: &[
            "run",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--save-weights",
            "{dir}/a.safetensors",
            "--checkpoint",
            "{dir}/a.safetensors",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["--save-weights and --checkpoint both name", "a.safetensors"],
        not: &[],
    },
    Case {
        name: "run --save-weights into a folder that cannot exist",
        args: &[
            "run",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--save-weights",
            "{dir}/keep.txt/w.safetensors",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["--save-weights", "keep.txt is not a folder"],
        not: &[],
    },
    Case {
        name: "run --load-weights of a truncated file",
        args: &[
            "run",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--load-weights",
            "{dir}/truncated.safetensors",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["truncated.safetensors is not a readable safetensors file"],
        not: &[],
    },
    Case {
        name: "run --load-weights of a file that is not safetensors",
        args: &[
            "run",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--load-weights",
            "{dir}/keep.txt",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["keep.txt is not a readable safetensors file"],
        not: &[],
    },
    Case {
        name: "run --load-weights of a file that does not exist",
        args: &[
            "run",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--load-weights",
            "{dir}/none.safetensors",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["cannot read", "none.safetensors"],
        not: &[],
    },
    Case {
        name: "run --load-weights of another width names tensor and both shapes",
        args: &[
            "run",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--load-weights",
            "{dir}/narrow.safetensors",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &[
            "narrow.safetensors does not fit preset plain-deep (MLP of depth 2, width 64)",
            "tensor `input.weight`: expected shape [2, 64], found [2, 8]",
        ],
        not: &["panicked"],
    },
    Case {
        name: "run --resume of a checkpoint from another preset",
        args: &[
            "run",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--resume",
            "{dir}/ck-highway.safetensors",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &[
            "ck-highway.safetensors is a checkpoint of preset highway-deep, not plain-deep",
            "--preset highway-deep",
        ],
        not: &[],
    },
    Case {
        name: "run --resume of weights without a checkpoint",
        args: &[
            "run",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--resume",
            "{dir}/weights.safetensors",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &[
            "weights.safetensors holds weights but no checkpoint",
            "--load-weights",
        ],
        not: &[],
    },
    Case {
        name: "run --record with --resume is refused (reproduce could not replay it)",
        args: &[
            "run",
            "-p",
            "highway-deep",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
            "--resume",
            "{dir}/ck-highway.safetensors",
            "--record",
            "{dir}/new.jsonl",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &[
            "--record cannot be combined with --resume",
            "gradlab reproduce",
        ],
        not: &[],
    },
    Case {
        name: "run with both --load-weights and --resume",
        args: &[
            "run",
            "--load-weights",
            "{dir}/weights.safetensors",
            "--resume",
            "{dir}/ck-highway.safetensors",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["--load-weights", "--resume"],
        not: &[],
    },
    Case {
        name: "run --save-weights with stdout's reader gone still ends quietly",
        args: &[
            "run",
            "--steps",
            "1",
            "--json",
            "--set",
            "model.depth=2",
            "--save-weights",
            "{dir}/out.safetensors",
        ],
        stdout: Stdout::Closed,
        code: 141,
        message: &[],
        not: &[],
    },
    // ── stdout's reader goes away (EPIPE): quiet, 141 like `ls | head` ──
    Case {
        name: "presets into a closed pipe",
        args: &["presets"],
        stdout: Stdout::Closed,
        code: 141,
        message: &[],
        not: &[],
    },
    Case {
        name: "presets --show into a closed pipe",
        args: &["presets", "--show", "plain-deep"],
        stdout: Stdout::Closed,
        code: 141,
        message: &[],
        not: &[],
    },
    Case {
        name: "tour --list into a closed pipe",
        args: &["tour", "--list"],
        stdout: Stdout::Closed,
        code: 141,
        message: &[],
        not: &[],
    },
    Case {
        name: "run's summary into a closed pipe",
        args: &["run", "--steps", "1", "--set", "model.depth=2"],
        stdout: Stdout::Closed,
        code: 141,
        message: &[],
        not: &[],
    },
    Case {
        name: "run --json into a closed pipe",
        args: &["run", "--steps", "1", "--json", "--set", "model.depth=2"],
        stdout: Stdout::Closed,
        code: 141,
        message: &[],
        not: &[],
    },
    Case {
        name: "bench into a closed pipe",
        args: &[
            "bench",
            "--no-peers",
            "--depths",
            "2",
            "--lengths",
            "0",
            "--seconds",
            "0.1",
        ],
        stdout: Stdout::Closed,
        code: 141,
        message: &[],
        not: &[],
    },
    Case {
        name: "bench --dashboard into a closed pipe",
        args: &[
            "bench",
            "--dashboard",
            "plain-shallow",
            "--pairs",
            "1",
            "--seconds",
            "0.1",
        ],
        stdout: Stdout::Closed,
        code: 141,
        message: &[],
        not: &[],
    },
    Case {
        name: "compare's table into a closed pipe",
        args: &[
            "compare",
            "--headless",
            "-p",
            "plain-deep",
            "-p",
            "residual-deep",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
        ],
        stdout: Stdout::Closed,
        code: 141,
        message: &[],
        not: &[],
    },
    Case {
        name: "sweep --list into a closed pipe",
        args: &["sweep", "--list", "{dir}/small.ron"],
        stdout: Stdout::Closed,
        code: 141,
        message: &[],
        not: &[],
    },
    Case {
        name: "sweep --json into a closed pipe",
        args: &["sweep", "--json", "--threads", "1", "{dir}/small.ron"],
        stdout: Stdout::Closed,
        code: 141,
        message: &[],
        not: &[],
    },
    Case {
        name: "sweep's table into a closed pipe",
        args: &["sweep", "--threads", "1", "{dir}/small.ron"],
        stdout: Stdout::Closed,
        code: 141,
        message: &[],
        not: &[],
    },
    // ── stdout cannot be written (ENOSPC): one line naming stdout and the reason, 74 ──
    Case {
        name: "presets into a full disk",
        args: &["presets"],
        stdout: Stdout::Full,
        code: 74,
        message: &["cannot write to stdout", "No space left on device"],
        not: &[],
    },
    Case {
        name: "presets --show into a full disk",
        args: &["presets", "--show", "plain-deep"],
        stdout: Stdout::Full,
        code: 74,
        message: &["cannot write to stdout", "No space left on device"],
        not: &[],
    },
    Case {
        name: "tour --list into a full disk",
        args: &["tour", "--list"],
        stdout: Stdout::Full,
        code: 74,
        message: &["cannot write to stdout", "No space left on device"],
        not: &[],
    },
    Case {
        name: "run's summary into a full disk",
        args: &["run", "--steps", "1", "--set", "model.depth=2"],
        stdout: Stdout::Full,
        code: 74,
        message: &["cannot write to stdout", "No space left on device"],
        not: &[],
    },
    Case {
        name: "run --json into a full disk",
        args: &["run", "--steps", "1", "--json", "--set", "model.depth=2"],
        stdout: Stdout::Full,
        code: 74,
        message: &["cannot write to stdout", "No space left on device"],
        not: &[],
    },
    Case {
        name: "bench into a full disk",
        args: &[
            "bench",
            "--json",
            "--no-peers",
            "--depths",
            "2",
            "--lengths",
            "0",
            "--seconds",
            "0.1",
        ],
        stdout: Stdout::Full,
        code: 74,
        message: &["cannot write to stdout", "No space left on device"],
        not: &[],
    },
    Case {
        name: "bench --dashboard --json into a full disk",
        args: &[
            "bench",
            "--json",
            "--dashboard",
            "plain-shallow",
            "--pairs",
            "1",
            "--seconds",
            "0.1",
        ],
        stdout: Stdout::Full,
        code: 74,
        message: &["cannot write to stdout", "No space left on device"],
        not: &[],
    },
    Case {
        name: "compare --json into a full disk",
        args: &[
            "compare",
            "--json",
            "-p",
            "plain-deep",
            "-p",
            "residual-deep",
            "--steps",
            "1",
            "--set",
            "model.depth=2",
        ],
        stdout: Stdout::Full,
        code: 74,
        message: &["cannot write to stdout", "No space left on device"],
        not: &[],
    },
    Case {
        name: "sweep --json into a full disk",
        args: &["sweep", "--json", "--threads", "1", "{dir}/small.ron"],
        stdout: Stdout::Full,
        code: 74,
        message: &["cannot write to stdout", "No space left on device"],
        not: &[],
    },
    Case {
        name: "sweep --list into a full disk",
        args: &["sweep", "--list", "{dir}/small.ron"],
        stdout: Stdout::Full,
        code: 74,
        message: &["cannot write to stdout", "No space left on device"],
        not: &[],
    },
    // ── messages name the field the user gave ──
    Case {
        name: "beta2 out of range names beta2",
        args: &[
            "run",
            "-p",
            "rnn-lstm-adding",
            "--set",
            "optimizer.beta2=1.5",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &[
            "--set optimizer.beta2=1.5",
            "beta2 must be a number in 0..=0.9999",
        ],
        not: &["momentum"],
    },
    Case {
        name: "eps of zero names eps",
        args: &["run", "-p", "rnn-lstm-adding", "--set", "optimizer.eps=0"],
        stdout: Stdout::Read,
        code: 2,
        message: &["eps must be a number in 1e-30..=1, got 0"],
        not: &["positive", "0.0000000"],
    },
    Case {
        name: "a negative warmup names warmup and its range",
        args: &[
            "run",
            "-p",
            "plain-shallow",
            "--set",
            "optimizer=Adam(lr: 0.01, warmup: -5)",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["warmup must be a whole number of steps from 0 to 1000000, got -5"],
        not: &["momentum", "lr must"],
    },
    Case {
        name: "an absurd warmup names warmup and its range",
        args: &[
            "run",
            "-p",
            "plain-shallow",
            "--set",
            "optimizer=Sgd(lr: 0.01, warmup: 99999999)",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["warmup must be a whole number of steps from 0 to 1000000, got 99999999"],
        not: &["lr must"],
    },
    Case {
        name: "forget_bias out of range names forget_bias",
        args: &[
            "run",
            "-p",
            "rnn-lstm-adding",
            "--set",
            "model.forget_bias=50",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["forget_bias must be a number in -20..=20, got 50"],
        not: &["gate_bias"],
    },
    Case {
        name: "a bad preset file names file, line, column and the field",
        args: &["run", "-p", "{dir}/bad-beta1.ron"],
        stdout: Stdout::Read,
        code: 2,
        message: &[
            "bad-beta1.ron:",
            "beta1 must be a number in 0..=0.9999, got 2",
        ],
        not: &["momentum"],
    },
    Case {
        name: "presets --show of a bad preset file names file, line, column and the field",
        args: &["presets", "--show", "{dir}/bad-beta1.ron"],
        stdout: Stdout::Read,
        code: 2,
        message: &[
            "bad-beta1.ron:",
            "beta1 must be a number in 0..=0.9999, got 2",
        ],
        not: &["momentum"],
    },
    Case {
        name: "presets --show of a missing file names it",
        args: &["presets", "--show", "{dir}/absent.ron"],
        stdout: Stdout::Read,
        code: 2,
        message: &["absent.ron"],
        not: &[],
    },
    Case {
        name: "presets --show of an unknown name lists the built-ins",
        args: &["presets", "--show", "no-such-preset"],
        stdout: Stdout::Read,
        code: 2,
        message: &["no preset named `no-such-preset`", "plain-deep"],
        not: &[],
    },
    Case {
        name: "a sequence task on an MLP is named, not Debug-printed",
        args: &["run", "--set", "task=Adding(length: 10)"],
        stdout: Stdout::Read,
        code: 2,
        message: &["task Adding is a sequence task", "--set model.kind=Rnn"],
        not: &["test_points", "{"],
    },
    Case {
        name: "--threads 0 is refused as a flag",
        args: &[
            "compare",
            "-p",
            "plain-deep",
            "-p",
            "residual-deep",
            "--threads",
            "0",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["--threads", "`0` is not a thread count"],
        not: &["0 thread(s)"],
    },
    Case {
        name: "sweep --threads 0 is refused as a flag",
        args: &["sweep", "--threads", "0", "{dir}/small.ron"],
        stdout: Stdout::Read,
        code: 2,
        message: &["--threads", "`0` is not a thread count"],
        not: &["0 thread(s)"],
    },
    Case {
        name: "bench --depths 0 blames --depths, not --set",
        args: &["bench", "--depths", "0"],
        stdout: Stdout::Read,
        code: 2,
        message: &["'--depths <DEPTHS>'", "0 is not in 1..=512"],
        not: &["--set"],
    },
    Case {
        name: "bench --dashboard names an unknown preset before timing anything",
        args: &["bench", "--dashboard", "plain-shallow,nope"],
        stdout: Stdout::Read,
        code: 2,
        message: &["no preset named `nope`"],
        not: &[],
    },
    Case {
        name: "bench --pairs 0 is refused",
        args: &["bench", "--dashboard", "plain-shallow", "--pairs", "0"],
        stdout: Stdout::Read,
        code: 2,
        message: &["--pairs", "0 is not in 1..=100"],
        not: &[],
    },
    Case {
        name: "bench --seconds NaN is refused",
        args: &["bench", "--seconds", "NaN"],
        stdout: Stdout::Read,
        code: 2,
        message: &["--seconds", "expected seconds from 0.1 to 3600"],
        not: &[],
    },
    Case {
        name: "a word where a number belongs says so without Rust type names",
        args: &["run", "--set", "task.points=abc"],
        stdout: Stdout::Read,
        code: 2,
        message: &["--set task.points=abc", "expected a whole number"],
        not: &["usize"],
    },
    Case {
        name: "a field of a plain number names the user's path",
        args: &["run", "--set", "model.depth.x=1"],
        stdout: Stdout::Read,
        code: 2,
        message: &[
            "--set model.depth.x=1",
            "`x` is not a field: this value is a whole number",
        ],
        not: &["usize"],
    },
    Case {
        name: "a field of a variant without fields names the variant",
        args: &["run", "--set", "model.skip.scale=2"],
        stdout: Stdout::Read,
        code: 2,
        message: &["--set model.skip.scale=2", "Plain has no field `scale`"],
        not: &["current variant"],
    },
    Case {
        name: "a negative clipping norm is range-checked like in a file",
        args: &["run", "--set", "clip_grad_norm=-1"],
        stdout: Stdout::Read,
        code: 2,
        message: &["clip_grad_norm must be a positive number, got -1"],
        not: &["Expected option"],
    },
    // ── flags that would do nothing are refused ──
    Case {
        name: "reproduce takes no --set",
        args: &["reproduce", "{dir}/none.jsonl", "--set", "model.depth=2"],
        stdout: Stdout::Read,
        code: 2,
        message: &["unexpected argument '--set'"],
        not: &[],
    },
    Case {
        name: "export takes no --preset",
        args: &[
            "export",
            "{dir}/none.jsonl",
            "--csv",
            "{dir}/x.csv",
            "-p",
            "plain-deep",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["unexpected argument '-p'"],
        not: &[],
    },
    Case {
        name: "presets takes no --fps",
        args: &["presets", "--fps", "5"],
        stdout: Stdout::Read,
        code: 2,
        message: &["unexpected argument '--fps'"],
        not: &[],
    },
    Case {
        name: "run takes no --ascii",
        args: &["run", "--ascii"],
        stdout: Stdout::Read,
        code: 2,
        message: &["unexpected argument '--ascii'"],
        not: &[],
    },
    Case {
        name: "a dashboard flag before a subcommand is refused, not ignored",
        args: &["--preset", "exploding", "run", "--steps", "1"],
        stdout: Stdout::Read,
        code: 2,
        message: &["cannot be used with '--preset <PRESET>'"],
        not: &[],
    },
    Case {
        name: "model.cell on an MLP is refused with the reason",
        args: &["run", "--set", "model.cell=Gru"],
        stdout: Stdout::Read,
        code: 2,
        message: &["--set model.cell=Gru", "an MLP does not use model.cell"],
        not: &[],
    },
    Case {
        name: "model.depth on a recurrent net is refused with the reason",
        args: &["run", "-p", "rnn-copy", "--set", "model.depth=3"],
        stdout: Stdout::Read,
        code: 2,
        message: &[
            "--set model.depth=3",
            "a recurrent net does not use model.depth",
        ],
        not: &[],
    },
    Case {
        name: "--path-rows 0 is refused",
        args: &["run", "--path-rows", "0"],
        stdout: Stdout::Read,
        code: 2,
        message: &["'--path-rows <PATH_ROWS>'", "0 is not in 1..=65536"],
        not: &[],
    },
    Case {
        name: "--path-samples 0 is refused",
        args: &["run", "--path-samples", "0"],
        stdout: Stdout::Read,
        code: 2,
        message: &["'--path-samples <PATH_SAMPLES>'", "0 is not in 1..=1000000"],
        not: &[],
    },
    // ── requests too big are refused before anything is built, with the estimate ──
    Case {
        name: "a net too big for memory is refused with both figures",
        args: &[
            "run",
            "--set",
            "model.depth=512",
            "--set",
            "model.width=1024",
            "--set",
            "batch=65536",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &[
            "an MLP of depth 512 and width 1024 needs about",
            "GB of memory available now",
        ],
        not: &[],
    },
    Case {
        name: "runs compared together must fit together",
        args: &[
            "compare",
            "--headless",
            "-p",
            "plain-deep",
            "-p",
            "residual-deep",
            "--set",
            "model.depth=512",
            "--set",
            "model.width=1024",
            "--set",
            "batch=65536",
        ],
        stdout: Stdout::Read,
        code: 2,
        message: &["2 runs at once needs about", "of memory available now"],
        not: &[],
    },
    Case {
        name: "a million-job grid is refused with its size, even with --list",
        args: &["sweep", "--list", "{dir}/million.ron"],
        stdout: Stdout::Read,
        code: 2,
        message: &[
            "million.ron:",
            "expands to 1000000 jobs",
            "100 seed × 100 batch × 100 model.width",
        ],
        not: &[],
    },
    Case {
        name: "a duplicate grid axis is refused at its position",
        args: &["sweep", "--list", "{dir}/twice.ron"],
        stdout: Stdout::Read,
        code: 2,
        message: &["twice.ron:", "the grid has `seed` twice"],
        not: &[],
    },
    Case {
        name: "select over an axis the grid does not have is refused at its position",
        args: &["sweep", "--list", "{dir}/select-missing.ron"],
        stdout: Stdout::Read,
        code: 2,
        message: &[
            "select-missing.ron:5:",
            "select names `optimizer.lr`, which is not an axis of the grid",
        ],
        not: &[],
    },
    Case {
        name: "select over the seed axis is refused",
        args: &["sweep", "--list", "{dir}/select-seed.ron"],
        stdout: Stdout::Read,
        code: 2,
        message: &["select-seed.ron:", "select cannot choose over `seed`"],
        not: &[],
    },
    Case {
        name: "a grid combination that cannot run is refused before any job runs",
        args: &["sweep", "{dir}/cell-task.ron"],
        stdout: Stdout::Read,
        code: 2,
        message: &[
            "cell-task.ron:",
            "cannot run",
            "task Spirals is not a sequence task",
        ],
        not: &[],
    },
];

/// Safetensors files the weight cases read: weights of plain-deep at depth 2, the same cut
/// short, weights of a narrower net, and a checkpoint of highway-deep at depth 2 (step 0).
fn weight_fixtures(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    use gradlab::config::{apply_overrides, load_preset};
    use gradlab::learner::build_learner;
    use gradlab::weights::format::encode;
    let net = |preset: &str, sets: &[&str]| {
        let base = load_preset(preset).expect("built-in preset");
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let experiment = apply_overrides(&base, &sets).expect("valid overrides");
        build_learner(experiment, None).expect("builds")
    };
    let weights = encode(&net("plain-deep", &["model.depth=2"]).weights()).expect("encodes");
    let narrow =
        encode(&net("plain-deep", &["model.depth=2", "model.width=8"]).weights()).expect("encodes");
    let checkpoint = net("highway-deep", &["model.depth=2"])
        .checkpoint()
        .expect("a fresh run checkpoints");
    let checkpoint = encode(&checkpoint).expect("encodes");
    vec![
        (
            dir.join("truncated.safetensors"),
            weights[..weights.len() / 2].to_vec(),
        ),
        (dir.join("weights.safetensors"), weights),
        (dir.join("narrow.safetensors"), narrow),
        (dir.join("ck-highway.safetensors"), checkpoint),
    ]
}

/// Files every case's folder starts with; none may change.
fn fixtures(dir: &Path) -> Vec<(PathBuf, String)> {
    let preset = std::fs::read_to_string("presets/rnn-lstm-adding.ron").expect("shipped preset");
    let v1 = std::fs::read_to_string("tests/data/v1-highway.jsonl").expect("committed fixture");
    let bad_beta1 = preset.replacen("Adam(", "Adam(beta1: 2.0, ", 1);
    let million_values = |n: usize, from: usize| {
        (from..from + n)
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let million = format!(
        "Sweep(base: Preset(\"plain-deep\"), grid: {{\"seed\": [{}], \"batch\": [{}], \
         \"model.width\": [{}]}}, steps: 1, out: \"{}\")",
        million_values(100, 1),
        million_values(100, 1),
        million_values(100, 1),
        dir.join("million-out").display()
    );
    let small = format!(
        "Sweep(base: Preset(\"plain-deep\"), set: [\"model.depth=2\", \"task.points=100\"], \
         grid: {{\"seed\": [\"1\", \"2\"]}}, steps: 1, out: \"{}\")",
        dir.join("small-out").display()
    );
    let twice = format!(
        "Sweep(\n    base: Preset(\"plain-deep\"),\n    grid: {{\"seed\": [\"1\"], \"seed\": [\"2\"]}},\n    \
         steps: 1,\n    out: \"{}\",\n)",
        dir.join("twice-out").display()
    );
    let cell_task = format!(
        "Sweep(base: Preset(\"rnn-lstm-adding\"), set: [\"task.length=4\"], grid: {{\
         \"model.cell\": [\"Gru\", \"Lstm\"], \
         \"task\": [\"Adding(length: 4)\", \"Spirals(points: 100, noise: 0.1)\"]}}, \
         steps: 1, out: \"{}\")",
        dir.join("cell-task-out").display()
    );
    let select = |axis: &str, out: &str| {
        format!(
            "Sweep(\n    base: Preset(\"plain-deep\"),\n    grid: {{\"seed\": [\"1\"]}},\n    \
             steps: 1,\n    select: BestOver(\"{axis}\"),\n    out: \"{}\",\n)",
            dir.join(out).display()
        )
    };
    vec![
        (
            dir.join("select-missing.ron"),
            select("optimizer.lr", "select-missing-out"),
        ),
        (
            dir.join("select-seed.ron"),
            select("seed", "select-seed-out"),
        ),
        (dir.join("bad-beta1.ron"), bad_beta1),
        (dir.join("million.ron"), million),
        (dir.join("small.ron"), small),
        (dir.join("twice.ron"), twice),
        (dir.join("cell-task.ron"), cell_task),
        (dir.join("keep.txt"), "a file the user cares about\n".into()),
        (
            dir.join("precious.txt"),
            "a file that is not a recording\n".into(),
        ),
        (dir.join("v1.jsonl"), v1),
        (
            dir.join("sweep-out").join("results.csv"),
            "id,model.depth,seed,step,tail_loss\nd4-s1,4,1,10,0.5\nd4-s2,4,2,10,0.6\n".into(),
        ),
        (dir.join("old.png"), "a figure the user kept\n".into()),
    ]
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("readable scratch folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("readable file");
                files.insert(path, bytes);
            }
        }
    }
    files
}

fn scratch(index: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradlab-faults-{}-{index}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Runs one case; returns what went wrong, if anything.
fn check(index: usize, case: &Case) -> Result<(), String> {
    let dir = scratch(index);
    for (path, text) in fixtures(&dir) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("fixture folder");
        }
        std::fs::write(path, text).expect("fixture written");
    }
    for (path, bytes) in weight_fixtures(&dir) {
        std::fs::write(path, bytes).expect("fixture written");
    }
    let before = snapshot(&dir);
    let args: Vec<String> = case
        .args
        .iter()
        .map(|a| a.replace("{dir}", &dir.display().to_string()))
        .collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_gradlab"));
    command
        .args(&args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    match case.stdout {
        Stdout::Read => command.stdout(Stdio::piped()),
        Stdout::Closed => {
            // The reading end is gone before the child starts, so its first write fails.
            let (reader, writer) = std::io::pipe().expect("pipe");
            drop(reader);
            command.stdout(writer)
        }
        Stdout::Full => command.stdout(std::fs::File::create("/dev/full").expect("/dev/full")),
    };
    let output = command.output().expect("the binary runs");
    drop(command);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let after = snapshot(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let mut problems = Vec::new();
    if output.status.code() != Some(case.code) {
        problems.push(format!(
            "exit status {:?}, expected {}",
            output.status.code(),
            case.code
        ));
    }
    if stderr.contains("panicked") {
        problems.push("a panic".into());
    }
    // Clap's errors start with `error:`, gradlab's own with `gradlab:`.
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("gradlab:") || l.starts_with("error:"))
        .collect();
    if case.message.is_empty() {
        if !errors.is_empty() {
            problems.push(format!("an error line where none belongs: {errors:?}"));
        }
    } else if errors.len() != 1 {
        problems.push(format!("{} error lines, expected one", errors.len()));
    } else {
        for wanted in case.message {
            if !errors[0].contains(wanted) {
                problems.push(format!("the error line lacks `{wanted}`"));
            }
        }
    }
    for unwanted in case.not {
        if stderr.contains(unwanted) {
            problems.push(format!("stderr says `{unwanted}`"));
        }
    }
    for (path, bytes) in &before {
        if after.get(path) != Some(bytes) {
            problems.push(format!("{} changed or vanished", path.display()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} (gradlab {}): {}\nstderr:\n{stderr}",
            case.name,
            args.join(" "),
            problems.join("; ")
        ))
    }
}

#[test]
fn every_fault_ends_with_its_status_one_named_message_no_panic_and_files_intact() {
    let failures: Vec<String> = CASES
        .iter()
        .enumerate()
        .filter_map(|(i, case)| check(i, case).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_full_stderr_changes_nothing_but_the_messages_lost() {
    for (name, args, code) in STDERR_FULL {
        let status = Command::new(env!("CARGO_BIN_EXE_gradlab"))
            .args(*args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create("/dev/full").expect("/dev/full"))
            .status()
            .expect("the binary runs");
        assert_eq!(status.code(), Some(*code), "{name}");
    }
}
