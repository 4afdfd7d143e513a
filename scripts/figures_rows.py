#!/usr/bin/env python3
"""One markdown table row from a `gradlab run --json` report on stdin (used by figures.sh).

    figures_rows.py theory ACT WV BV | paths DEPTH STEPS | rnn PRESET WALL | spectrum NAME
"""
import json
import math
import sys


def f(v, fmt="{:.3f}"):
    return "—" if v is None else fmt.format(v)


def theory(r, act, wv, bv):
    t = r.get("theory") or {}
    cells = [act, wv, bv, f(t.get("chi1")), f(r.get("measured_chi1")),
             f(t.get("predicted_db_per_layer"), "{:+.2f}"), f(r.get("grad_ratio_db"), "{:+.1f}"),
             f(t.get("predicted_ratio_db"), "{:+.1f}")]
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
    report = json.load(sys.stdin)
    kind, args = sys.argv[1], sys.argv[2:]
    row = {"theory": theory, "paths": paths, "rnn": rnn, "spectrum": spectrum}[kind](report, *args)
    print("| " + " | ".join(str(c) for c in row) + " |")
