"""Generated ember-shaped vectors at any row count, for scale tests and ``bench.ember_scale``.

Not features of real files: rows of ``dim`` float32 (2,381 for feature version 2) written in ember's
memmap layout a chunk at a time (so 1 M rows never sit in memory). About three quarters of the values
are 0 and the rest small counts 1..31, as in ember's hashed and histogram blocks, which keeps
LightGBM's bins near what real vectors give. The label is 1 when a noisy weighted sum of the first
16 columns is above its median; every ``unlabelled_every``-th row is -1, as ember keeps unlabelled
rows in its files.

Example::

    write_synthetic_vectors("runs/scale", "train", rows=100_000, seed=0)
    X, y = read_vectorized("runs/scale", "train")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vigil.tasks.ember.features import DIMS

CHUNK_ROWS = 4096
SIGNAL_COLUMNS = 16


def synthetic_chunk(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    """``rows`` x ``dim`` float32: 0 with probability 0.75, else an integer in 1..31."""
    X = rng.integers(1, 32, size=(rows, dim), dtype=np.int8).astype(np.float32)
    X[rng.random((rows, dim), dtype=np.float32) < 0.75] = 0.0
    return X


def write_synthetic_vectors(
    data_dir: Path | str,
    subset: str = "train",
    rows: int = 10_000,
    seed: int = 0,
    feature_version: int = 2,
    unlabelled_every: int = 10,
) -> tuple[Path, Path]:
    """Write ``X_<subset>.dat`` / ``y_<subset>.dat`` of ``rows`` generated rows; returns their paths."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    dim = DIMS[feature_version]
    weights = np.random.default_rng(12345).choice([-1.0, 1.0], SIGNAL_COLUMNS)  # same concept for every subset
    centre = 16.0 * 0.25 * weights.sum() / (16.0 * np.sqrt(SIGNAL_COLUMNS))  # the mean score: split there
    rng = np.random.default_rng(seed)
    X_path, y_path = data_dir / f"X_{subset}.dat", data_dir / f"y_{subset}.dat"
    with open(X_path, "wb") as X_file, open(y_path, "wb") as y_file:
        for start in range(0, rows, CHUNK_ROWS):
            count = min(CHUNK_ROWS, rows - start)
            X = synthetic_chunk(rng, count, dim)
            score = (X[:, :SIGNAL_COLUMNS] @ weights) / (16.0 * np.sqrt(SIGNAL_COLUMNS)) + rng.normal(0, 0.25, count)
            y = (score > centre).astype(np.float32)
            if unlabelled_every:
                y[(np.arange(start, start + count) % unlabelled_every) == unlabelled_every - 1] = -1.0
            X.tofile(X_file)
            y.tofile(y_file)
    return X_path, y_path
