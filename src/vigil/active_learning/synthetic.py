"""A generated data set in ember's vectorized layout, for tests and demos of the loop machinery.

It is not malware data: rows are 2381-float (feature version 2) vectors that are zero except for a
handful of columns, and the label is a diagonal boundary over two of them. Trees need many points near
a diagonal boundary to draw it, so uncertainty sampling should clearly beat random picking here.
About 5% of the train rows carry label -1, as ember's files do, and must be skipped by every index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vigil.active_learning.data import write_vectorized_split

DIM = 2381  # ember feature version 2
SIGNAL_COLUMNS = (616, 617)  # the general block's first columns; any would do
NOISE_COLUMNS = (0, 255, 512, 620, 700, 1000)
EASY_SHARE = 0.7


def _split(rng: np.random.Generator, rows: int, unlabelled_share: float) -> tuple[np.ndarray, np.ndarray]:
    X = np.zeros((rows, DIM), dtype=np.float32)
    for column in SIGNAL_COLUMNS + NOISE_COLUMNS:
        X[:, column] = rng.normal(size=rows)
    # Most records are easy: pushed far from the boundary along its normal. Random picking spends most
    # of its labels on them; uncertainty sampling spends them on the few records near the boundary.
    easy = rng.random(rows) < EASY_SHARE
    push = np.where(rng.random(rows) < 0.5, -1.0, 1.0) * 2.5 * easy
    for column in SIGNAL_COLUMNS:
        X[:, column] += push
    y = (X[:, SIGNAL_COLUMNS[0]] + X[:, SIGNAL_COLUMNS[1]] > 0).astype(np.float32)
    y[rng.random(rows) < unlabelled_share] = -1
    return X, y


def write_synthetic_vectorized(
    data_dir: str | Path, train_rows: int = 1500, test_rows: int = 500, seed: int = 0
) -> Path:
    """Write X_train.dat, y_train.dat, X_test.dat, y_test.dat into ``data_dir``."""
    rng = np.random.default_rng(seed)
    for subset, rows, unlabelled in (("train", train_rows, 0.05), ("test", test_rows, 0.0)):
        write_vectorized_split(data_dir, subset, *_split(rng, rows, unlabelled))
    return Path(data_dir)
