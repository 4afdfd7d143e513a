#!/usr/bin/env python3
"""The comparisons each paper's claim rests on, from `gradlab sweep FILE --json` on stdin.

    papers_verdict.py he | srivastava | veit

Prints a short markdown list under the sweep's table (used by `figures.sh papers`): the numbers
the claim is about, side by side, computed from the rows, never typed by hand. Every loss is the
final network's loss on the whole training split at the cell's chosen learning rate, averaged
over seeds (min–max over seeds in brackets); accuracies are per cent on the named split.
"""
import json
import sys


def loss(row):
    return f"{row['train_loss']:.3f} ({row['train_loss_min']:.3f}–{row['train_loss_max']:.3f})"


def pct(v):
    return "—" if v is None else f"{100 * v:.1f}"


def lr(row):
    """The chosen learning rate, flagged when it is the grid's smallest or largest: the best
    may then lie outside the grid."""
    grid = sorted(float(v) for v in row["candidate_train_loss"])
    edge = row["best_lr"] in (grid[0], grid[-1]) if grid else False
    # Positional, as the sweep file writes it (0.00003, not 3e-05).
    written = f"{row['best_lr']:.10f}".rstrip("0").rstrip(".")
    return f"{written}{', grid edge' if edge else ''}"


def kind(skip):
    return skip.split("(")[0]


def by_skip(rows):
    out = {}
    for r in rows:
        out.setdefault(kind(r["model.skip"]), []).append(r)
    return out


def depth_trend(rows, other):
    lines = []
    for skip, cells in by_skip(rows).items():
        cells.sort(key=lambda r: int(r["model.depth"]))
        trend = " → ".join(f"{loss(r)} at depth {r['model.depth']} (lr {lr(r)})" for r in cells)
        lines.append(f"- {skip}: whole-train loss {trend}.")
    depths = sorted({int(r["model.depth"]) for r in rows})
    for d in depths:
        cell = {kind(r["model.skip"]): r for r in rows if int(r["model.depth"]) == d}
        if "Plain" in cell and other in cell:
            p, o = cell["Plain"], cell[other]
            apart = p["train_loss_min"] > o["train_loss_max"]
            lines.append(
                f"- depth {d}: {other} {o['train_loss']:.3f} vs Plain {p['train_loss']:.3f}; "
                + ("every seed of Plain above every seed of " + other
                   if apart else "the seed ranges overlap")
                + f" (test accuracy {pct(o['test_accuracy'])} vs {pct(p['test_accuracy'])} %)."
            )
    return lines


def veit(rows):
    lines = []
    for r in rows:
        ks = sorted(int(k.split("_")[1][1:]) for k in r if k.startswith("lesion_k") and k.endswith("_test_accuracy"))
        steps = " → ".join(
            f"{k} out {pct(r[f'lesion_k{k}_train_accuracy'])} / {pct(r[f'lesion_k{k}_test_accuracy'])}"
            for k in ks
        )
        lines.append(
            f"- {kind(r['model.skip'])} (lr {lr(r)}, whole-train loss {loss(r)}): accuracy % "
            f"train / test, intact {pct(r['intact_train_accuracy'])} / {pct(r['intact_test_accuracy'])}"
            f" → {steps}."
        )
    return lines


if __name__ == "__main__":
    rows = json.load(sys.stdin)
    lines = {
        "he": lambda: depth_trend(rows, "Residual"),
        "srivastava": lambda: depth_trend(rows, "Highway"),
        "veit": lambda: veit(rows),
    }[sys.argv[1]]()
    print()
    print("\n".join(lines))
