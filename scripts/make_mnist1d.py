#!/usr/bin/env python3
"""Regenerates data/mnist1d.bin: MNIST-1D (Greydanus & Kobak 2020) with the paper's defaults.

    pip install mnist1d numpy
    python3 scripts/make_mnist1d.py                      # writes data/mnist1d.bin
    python3 scripts/make_mnist1d.py --check              # compares with the shipped file
    python3 scripts/make_mnist1d.py --frozen mnist1d_data.pkl   # also compares with the
                                                         # canonical frozen pickle

The data come from the package's own generator, `make_dataset(get_dataset_args())`: 5 000
examples (seed 42, 40 features, 10 classes), the first 4 000 for training and the last 1 000
for testing, exactly as the package splits them. Stored as f32 (gradlab trains in f32). The
generator's output equals the frozen `mnist1d_data.pkl` from the authors' repository to
within 9e-16 in float64 and is bit-identical once rounded to f32 (checked with --frozen).
"""

import os
import pickle
import sys

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gldata import encode, write_or_check  # noqa: E402


def main():
    args = get_dataset_args()
    d = make_dataset(args)
    x = np.concatenate([d["x"], d["x_test"]])
    y = np.concatenate([d["y"], d["y_test"]])
    assert x.shape == (5000, 40) and len(d["y"]) == 4000
    if "--frozen" in sys.argv:
        with open(sys.argv[sys.argv.index("--frozen") + 1], "rb") as f:
            frozen = pickle.load(f)
        fx = np.concatenate([frozen["x"], frozen["x_test"]])
        fy = np.concatenate([frozen["y"], frozen["y_test"]])
        assert np.array_equal(fy, y), "labels differ from the frozen set"
        gap = np.abs(fx - x).max()
        same32 = np.array_equal(fx.astype("<f4"), x.astype("<f4"))
        print(f"frozen set: labels equal, largest float64 difference {gap:.2g}, "
              f"f32 identical: {same32}")
        if not same32:
            sys.exit("the generated set differs from the frozen one in f32")
    data = encode(x, y, classes=10, train=len(d["y"]), dtype=1)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    write_or_check(os.path.join(root, "data", "mnist1d.bin"), data, "--check" in sys.argv)


if __name__ == "__main__":
    main()
