"""Converts scikit-learn's copy of the UCI optdigits test set to `digits.npy`, once.

    pip download --no-deps scikit-learn && unzip -j scikit_learn-*.whl 'sklearn/datasets/data/digits.csv.gz'
    python make_digits.py digits.csv.gz

`digits.npy`: uint8, shape [1797, 65]: 64 pixels of an 8x8 image (0..16, row by row), then the label.
"""

import gzip
import sys

import numpy as np

rows = [
    [int(v) for v in line.split(",")]
    for line in gzip.open(sys.argv[1], "rt").read().splitlines()
    if line.strip()
]
data = np.array(rows, dtype=np.uint8)
assert data.shape == (1797, 65), data.shape
assert data[:, :64].max() == 16 and set(data[:, 64]) == set(range(10))
np.save("digits.npy", data)
print("digits.npy", data.shape, np.bincount(data[:, 64]))
