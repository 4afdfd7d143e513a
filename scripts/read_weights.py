#!/usr/bin/env python3
"""Read a gradlab weights file with numpy alone and check it is what the README says.

    gradlab run -p plain-deep --steps 100 --save-weights net.safetensors
    python3 scripts/read_weights.py net.safetensors

Checks: the metadata (format, version, preset, step, layout), every tensor f32, the MLP's
names layer1..layerN counted from the input, and shapes (fan_in, fan_out) that chain:
input.weight (inputs, width) @ layerL.weight (width, width) @ head.weight (width, outputs).
Then runs one forward pass (y = x @ W + b) of the plain or residual net on random inputs, as a
numpy user would. Needs `pip install safetensors numpy`; gradlab's own tests do not.
"""

import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file


def main(path):
    with safe_open(path, framework="np") as f:
        meta = f.metadata() or {}
    tensors = load_file(path)
    assert meta.get("format") == "gradlab-weights", f"not gradlab weights: {meta.get('format')}"
    assert int(meta["format_version"]) >= 1
    assert "y = x @ W + b" in meta["layout"], meta["layout"]
    for name, t in tensors.items():
        assert t.dtype == np.float32, f"{name} is {t.dtype}"
        assert np.all(np.isfinite(t)), f"{name} has NaN/Inf"
    experiment = json.loads(meta["experiment"])
    print(f"{path}: preset {meta['preset']}, step {meta['step']}, seed {meta['seed']}, "
          f"{meta['kind']}, {len(tensors)} tensors")
    if meta["kind"] != "mlp":
        for name in sorted(tensors):
            print(f"  {name:32} {tensors[name].shape}")
        return
    depth = int(meta["depth"])
    assert depth == experiment["model"]["depth"]
    w_in = tensors["input.weight"]
    width = w_in.shape[1]
    for layer in range(1, depth + 1):
        assert tensors[f"layer{layer}.weight"].shape == (width, width), layer
        assert tensors[f"layer{layer}.bias"].shape == (width,), layer
    assert f"layer{depth + 1}.weight" not in tensors
    head = tensors["head.weight"]
    assert head.shape[0] == width
    act = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0), "linear": lambda z: z}.get(
        meta["activation"])
    # Normalised or branch-scaled nets are not recomputed here (files from before those
    # switches carry no such metadata: off).
    plain_blocks = meta.get("norm", "None") == "None" and meta.get("branch_scale", "One") == "One"
    if act is None or meta["skip"] not in ("plain", "residual") or not plain_blocks:
        print(f"  forward pass skipped ({meta['activation']}, {meta['skip']})")
        return
    x = np.random.default_rng(0).standard_normal((4, w_in.shape[0])).astype(np.float32)
    h = x @ w_in + tensors["input.bias"]
    for layer in range(1, depth + 1):
        f = act(h @ tensors[f"layer{layer}.weight"] + tensors[f"layer{layer}.bias"])
        h = f + h if meta["skip"] == "residual" else f
    logits = h @ head + tensors["head.bias"]
    print(f"  depth {depth}, width {width}, outputs {head.shape[1]}; "
          f"logits of 4 random inputs: {np.round(logits.astype(np.float64), 4).tolist()}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: read_weights.py FILE.safetensors")
    main(sys.argv[1])
