#!/usr/bin/env python3
"""Regenerates data/digits.bin from scikit-learn's copy of the UCI optical digits (8x8).

    pip install scikit-learn numpy
    python3 scripts/make_digits.py            # writes data/digits.bin
    python3 scripts/make_digits.py --check    # compares with the shipped file, byte for byte

The 1 797 images keep their raw 0..16 pixel counts (u8; gradlab divides by 16). The split is
fixed, the same for every experiment seed: numpy's legacy RandomState(0) permutation of the
1 797 row indices (its stream is frozen across numpy versions); the first 1 437 permuted rows
are the training split and the last 360 the test split (20 %).
"""

import os
import sys

import numpy as np
from sklearn.datasets import load_digits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gldata import encode, write_or_check  # noqa: E402

SEED = 0
TEST = 360


def main():
    digits = load_digits()
    x, y = digits.data, digits.target
    assert x.shape == (1797, 64) and y.shape == (1797,)
    order = np.random.RandomState(SEED).permutation(len(y))
    train = len(y) - TEST
    data = encode(x[order], y[order], classes=10, train=train, dtype=0)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    write_or_check(os.path.join(root, "data", "digits.bin"), data, "--check" in sys.argv)


if __name__ == "__main__":
    main()
