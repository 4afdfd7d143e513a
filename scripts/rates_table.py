#!/usr/bin/env python3
"""Every rate of a sweep's learning-rate grid, for reading next to the sweep's table.

    rates_table.py OUT_DIR

Reads OUT_DIR/results.csv (one row per job) and each job's OUT_DIR/<id>.json (what `gradlab
run --json` printed for it), and prints one markdown row per skip mode and rate: the
whole-training-split loss and the test accuracy, each averaged over seeds (min–max in
brackets). The sweep's choice of rate uses only the first; the test column is shown so that a
rate a paper used can be compared, never to choose.
"""
import collections
import csv
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])
cells = collections.OrderedDict()
for row in csv.DictReader(open(out / "results.csv")):
    report = json.loads((out / f"{row['id']}.json").read_text())
    scores = report.get("final_scores") or {}
    cells.setdefault((row["skip"], row["lr"]), []).append(
        (scores.get("train_loss"), scores.get("test_accuracy")))


def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    mean = sum(values) / len(values)
    return f"{fmt.format(mean)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


print("| skip | lr | whole-train loss, mean (min–max) over seeds | test acc %, mean (min–max) over seeds |")
print("|---|---|---|---|")
for (skip, lr), runs in cells.items():
    print(f"| {skip} | {lr} | {spread([r[0] for r in runs], '{:.4f}')} | "
          f"{spread([None if r[1] is None else 100 * r[1] for r in runs], '{:.1f}')} |")
