#!/usr/bin/env python3
"""Plot the loss of a gradlab recording: python3 examples/plot_loss.py run.jsonl [out.png]

Reads the JSON Lines file one line at a time. Draws with matplotlib when it is installed;
otherwise prints step, loss and the interventions as text.
"""
import json
import sys


def read(path):
    header, steps, losses, markers = None, [], [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                print(f"{path}:{number}: skipped an incomplete or corrupt line", file=sys.stderr)
                continue
            if header is None:
                if record.get("format") != "gradlab-recording":
                    sys.exit(f"{path} is not a gradlab recording")
                header = record
            elif record.get("type") == "snapshot" and record.get("loss") is not None:
                steps.append(record["step"])
                losses.append(record["loss"])
            elif record.get("type") == "command":
                markers.append((record["step"], record["label"]))
    return header, steps, losses, markers


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    header, steps, losses, markers = read(sys.argv[1])
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"# {header['preset']['name']}: matplotlib not installed, printing instead")
        every = max(1, len(steps) // 20)
        for step, loss in list(zip(steps, losses))[::every]:
            print(f"{step:>8} {loss:.5f}")
        for step, label in markers:
            print(f"{step:>8} {label}")
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(steps, losses, lw=1)
    for step, label in markers:
        ax.axvline(step, color="red", lw=0.8)
        ax.annotate(label, (step, max(losses)), rotation=90, va="top", fontsize=8, color="red")
    ax.set(xlabel="step", ylabel="loss", title=header["preset"]["name"])
    out = sys.argv[2] if len(sys.argv) > 2 else "loss.png"
    fig.savefig(out, dpi=120, bbox_inches="tight")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
