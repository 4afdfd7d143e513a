"""Writer for gradlab's data files (data/*.bin); the reader is src/tasks/datasets.rs.

Layout, all integers little-endian u32:
    magic      8 bytes  b"GLDATA1\\n"
    rows       examples in the file, training rows first
    cols       features per example
    classes    number of classes; labels are 0..classes
    train      how many of the rows (the first ones) form the training split
    dtype      0 = u8 features, 1 = f32 little-endian features
    features   rows * cols values, row-major
    labels     rows bytes, one u8 label per example
"""

import hashlib
import struct
import sys

import numpy as np

MAGIC = b"GLDATA1\n"


def encode(features, labels, classes, train, dtype):
    """The file's bytes; `features` rows are in file order (training rows first)."""
    features = np.asarray(features)
    labels = np.asarray(labels)
    rows, cols = features.shape
    assert labels.shape == (rows,)
    assert 0 < train < rows
    assert labels.min() >= 0 and labels.max() < classes <= 255
    if dtype == 0:
        assert np.array_equal(features, np.round(features)), "u8 features must be whole"
        assert features.min() >= 0 and features.max() <= 255
        body = features.astype(np.uint8).tobytes()
    else:
        body = features.astype("<f4").tobytes()
    header = MAGIC + struct.pack("<5I", rows, cols, classes, train, dtype)
    return header + body + labels.astype(np.uint8).tobytes()


def write_or_check(path, data, check):
    """Writes `data` to `path`, or with `check` compares it with the file already there."""
    digest = hashlib.sha256(data).hexdigest()
    if check:
        with open(path, "rb") as f:
            shipped = f.read()
        if shipped != data:
            sys.exit(f"{path}: differs from the regenerated data (sha256 {digest})")
        print(f"{path}: identical to the regenerated data, {len(data)} bytes, sha256 {digest}")
    else:
        with open(path, "wb") as f:
            f.write(data)
        print(f"wrote {path}: {len(data)} bytes, sha256 {digest}")
