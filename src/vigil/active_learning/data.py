"""Read ember's vectorized memmaps (X_train.dat, y_train.dat, X_test.dat, y_test.dat).

Layout (ember's ``create_vectorized_features``): raw float32, X of shape (rows, dim), y of shape
(rows,), no header; the ember task's ``read_vectorized`` maps them.

Nothing here loads a whole X: arrays stay memory-mapped and callers take the rows they need in chunks
(:func:`iter_rows`), so a 100 000-row pool (about 1 GB) never has to fit in memory at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from vigil.errors import UnprocessableInput

ROW_CHUNK = 2048  # rows per chunk when streaming a memmap: about 20 MB at 2381 floats


@dataclass
class VectorizedSplit:
    """One split (train or test) of a vectorized data set, memory-mapped."""

    X: np.ndarray  # np.memmap, (rows, dim) float32
    y: np.ndarray  # np.memmap, (rows,) float32
    path: Path

    @property
    def rows(self) -> int:
        return int(self.y.shape[0])

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])


def open_vectorized_split(data_dir: str | Path, subset: str) -> VectorizedSplit:
    """Memory-map ``X_{subset}.dat`` and ``y_{subset}.dat`` with the ember task's reader.

    Alectio's config.yaml has no feature version, so it is read off the file sizes (2351 or 2381 floats
    a row); anything else is not an ember vectorization and is refused with the sizes found.
    """
    from vigil.tasks.ember import DIMS, read_vectorized

    data_dir = Path(data_dir)
    x_path, y_path = data_dir / f"X_{subset}.dat", data_dir / f"y_{subset}.dat"
    for path in (x_path, y_path):
        if not path.is_file():
            raise UnprocessableInput(
                f"vectorized data file {path.name} not found (run `vigil ember vectorize` first)",
                {"field": "DATA_DIR", "value": str(data_dir)},
            )
    rows = y_path.stat().st_size // 4
    x_bytes = x_path.stat().st_size
    versions = [v for v, dim in DIMS.items() if rows and x_bytes == 4 * rows * dim]
    if not versions:
        raise UnprocessableInput(
            f"X_{subset}.dat ({x_bytes} bytes) and y_{subset}.dat ({rows} rows) are not an ember vectorization "
            f"(float32 rows of {' or '.join(str(d) for d in DIMS.values())} values)",
            {"field": "DATA_DIR", "value": str(data_dir)},
        )
    X, y = read_vectorized(data_dir, subset, feature_version=versions[0])
    return VectorizedSplit(X=X, y=y, path=data_dir)


def labelled_rows(split: VectorizedSplit, limit: int | None) -> np.ndarray:
    """Row numbers of the rows with a label (0 or 1), the first ``limit`` of them.

    ember keeps unlabelled rows (label -1) in the files; they are dropped for training and metrics,
    so protocol index ``i`` is the ``i``-th labelled row.
    """
    rows = np.flatnonzero(np.asarray(split.y) != -1)
    return rows if limit is None else rows[: int(limit)]


def iter_rows(X: np.ndarray, rows: np.ndarray, chunk: int = ROW_CHUNK) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(positions, X[rows[positions]])`` chunk by chunk, as in-memory float32 arrays."""
    for start in range(0, len(rows), chunk):
        part = slice(start, min(start + chunk, len(rows)))
        yield part, np.asarray(X[rows[part]], dtype=np.float32)


def take_rows(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``X[rows]`` as an in-memory array (for the labelled set, which is what gets trained on)."""
    out = np.empty((len(rows), X.shape[1]), dtype=np.float32)
    for part, block in iter_rows(X, rows):
        out[part] = block
    return out


def write_vectorized_split(data_dir: str | Path, subset: str, X: np.ndarray, y: np.ndarray) -> None:
    """Write arrays in the same memmap layout (for generated data sets and tests)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    np.ascontiguousarray(X, dtype=np.float32).tofile(data_dir / f"X_{subset}.dat")
    np.ascontiguousarray(y, dtype=np.float32).tofile(data_dir / f"y_{subset}.dat")
