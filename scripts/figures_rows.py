#!/usr/bin/env python3
"""One markdown table row from a `gradlab run --json` report on stdin (used by figures.sh).

    figures_rows.py theory ACT WV BV | paths DEPTH STEPS | rnn PRESET WALL | spectrum NAME
                    | rnn_seeds PRESET SEED... (one report per seed, in that order)
                    | warmup LABEL (one trained report per seed, then the same seeds at step 0)
"""
import json
import math
import sys


def f(v, fmt="{:.3f}"):
    return "—" if v is None else fmt.format(v)


def median(values):
    v = sorted(values)
    n = len(v)
    return None if n == 0 else (v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2]))


def theory(reports, act, wv, bv):
    # One report per seed: a single seed's first/last ratio is one draw of a product of 24
    # random gains, heavy-tailed in the chaotic phase, so the table gives median and range.
    t = reports[0].get("theory") or {}
    measured = [r["grad_ratio_db"] for r in reports if r.get("grad_ratio_db") is not None]
    predicted = [r["theory"]["predicted_ratio_db"] for r in reports
                 if (r.get("theory") or {}).get("predicted_ratio_db") is not None]
    chi = [r["measured_chi1"] for r in reports if r.get("measured_chi1") is not None]
    spread = (f"{min(measured):+.1f} … {max(measured):+.1f}" if measured else "—")
    cells = [act, wv, bv, f(t.get("chi1")), f(median(chi)),
             f(t.get("predicted_db_per_layer"), "{:+.2f}"), f(median(predicted), "{:+.1f}"),
             f(median(measured), "{:+.1f}"), spread]
    return cells


def paths(r, depth, steps):
    p = r.get("paths") or {}
    lo, hi = (p.get("effective_range") or [None, None])
    return [f"residual, {depth} blocks", steps, f(p.get("peak_length"), "{}"),
            f(p.get("mean_length"), "{:.1f}"), f"{f(lo, '{}')}–{f(hi, '{}')}",
            f(p.get("exact_peak_length"), "{}"), f(p.get("exact_mean_length"), "{:.1f}")]


def rnn(r, preset, wall):
    return [preset, f(r.get("step"), "{}"), f(r.get("test_loss"), "{:.3g}"),
            f(r.get("grad_ratio_db"), "{:+.1f}"), wall]


def rnn_seeds(reports, preset, *seeds):
    # The claim is about every seed, so the row ends with the worst of them.
    losses = [r.get("test_loss") for r in reports]
    worst = None if None in losses or not losses else max(losses)
    cells = [preset, f(reports[0].get("step"), "{}")]
    cells += [f"{f(loss, '{:.2g}')} (seed {seed})" for loss, seed in zip(losses, seeds)]
    return cells + [f(worst, "{:.2g}")]


def warmup(reports, label):
    # The first half are the trained runs, the second half the same seeds at step 0, where
    # post-LN's gradient would grow toward the output (first/last below 0 dB) as in Xiong et al.
    half = len(reports) // 2
    trained, init = reports[:half], reports[half:]
    losses = [(r.get("final_scores") or {}).get("train_loss") for r in trained]
    tests = [(r.get("final_scores") or {}).get("test_accuracy") for r in trained]
    db = [r.get("grad_ratio_db") for r in init if r.get("grad_ratio_db") is not None]
    return [label, f(trained[0].get("step"), "{}"), " / ".join(f(v) for v in losses),
            " / ".join(f(None if v is None else 100 * v, "{:.1f}") for v in tests),
            f"{f(min(db), '{:+.1f}')} … {f(max(db), '{:+.1f}')}" if db else "—"]


def spectrum(r, name):
    j = r.get("jacobian") or {}
    sv = sorted(v for v in j.get("singular_values", []) if v > 0)
    resolution = j.get("resolution") or 0.0
    if sv:
        pick = lambda q: sv[min(len(sv) - 1, int(q * (len(sv) - 1) + 0.5))]
        p5, p95 = pick(0.05), pick(0.95)
        floor = resolution
        if p5 <= floor:
            # p5 is lost in the product's rounding: only a lower bound is known.
            spread = f"≥ {math.log10(p95 / floor):.1f} (p5 below f64 resolution)"
        else:
            spread = f"{math.log10(p95 / p5):.2f}"
    else:
        spread = "—"
    return [name, f(j.get("mean_sq"), "{:.3g}"), f(j.get("predicted_mean_sq"), "{:.3g}"), spread]


if __name__ == "__main__":
    kind, args = sys.argv[1], sys.argv[2:]
    if kind in ("theory", "rnn_seeds", "warmup"):
        # Several concatenated JSON reports, one per seed.
        text, decoder, reports, at = sys.stdin.read(), json.JSONDecoder(), [], 0
        while text[at:].strip():
            at += len(text[at:]) - len(text[at:].lstrip())
            report, at = decoder.raw_decode(text, at)
            reports.append(report)
        row = {"theory": theory, "rnn_seeds": rnn_seeds, "warmup": warmup}[kind](reports, *args)
    else:
        report = json.load(sys.stdin)
        row = {"paths": paths, "rnn": rnn, "spectrum": spectrum}[kind](report, *args)
    print("| " + " | ".join(str(c) for c in row) + " |")
