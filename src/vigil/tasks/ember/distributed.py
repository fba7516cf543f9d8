"""ember's memmaps as dask arrays, and ``vigil ember train --dask ADDRESS``.

Each partition is a task that reads its labelled rows straight from ``X_train.dat`` on the worker
(``bounded.MemmapRows``), so nothing but row numbers travels through the scheduler: the workers must
see DATA_DIR at the same path (one machine, or a shared filesystem such as NFS mounted everywhere at
the same place). Each worker then holds its share of the labelled rows (rows / workers x 9.5 KB at
2,381 floats) plus LightGBM's binned copy.

Example::

    X, y = read_vectorized("data/ember2018", "train")
    classifier, info = fit_on_dask(make_estimator("ember"), X, y, labelled_rows(y), "local:2")
"""

from __future__ import annotations

from typing import Any

import numpy as np

PARTITION_ROWS = 16_384  # labelled rows per dask partition: ~156 MB of float32 at 2,381 features


def _read_partition(path: str, dim: int, offset: int, rows: np.ndarray) -> np.ndarray:
    from vigil.tasks.ember.bounded import MemmapRows

    reader = MemmapRows(path, dim, rows, offset)
    try:
        return reader[0 : len(rows)]
    finally:
        reader.close()


def memmap_dask_arrays(X: np.ndarray, y: np.ndarray, rows: np.ndarray, partition_rows: int = PARTITION_ROWS):
    """``(X[rows], y[rows])`` as dask arrays; X's partitions are read on the workers from the file."""
    import dask
    import dask.array as da

    rows = np.asarray(rows, dtype=np.int64)
    labels = np.asarray(y[rows]).astype(int)
    dim = int(X.shape[1])
    filename = getattr(X, "filename", None)
    blocks = []
    for start in range(0, len(rows), partition_rows):
        part = rows[start : start + partition_rows]
        if filename:
            block = dask.delayed(_read_partition, pure=True)(str(filename), dim, int(X.offset), part)  # type: ignore[attr-defined]
        else:  # an in-memory array: ship the rows themselves
            block = dask.delayed(np.asarray(X[part], dtype=np.float32))
        blocks.append(da.from_delayed(block, shape=(len(part), dim), dtype=np.float32))
    X_dask = da.concatenate(blocks, axis=0)
    y_dask = da.from_array(labels, chunks=(X_dask.chunks[0],))
    return X_dask, y_dask


def fit_on_dask(
    estimator,
    X: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    address: str,
    threads_per_worker: int | None = None,
    partition_rows: int = PARTITION_ROWS,
) -> tuple[Any, dict]:
    """Train ``estimator``'s parameters on the cluster at ``address``; returns (LGBMClassifier, info)."""
    from vigil.dask_training import dask_client, fit_dask_lightgbm, parse_dask_address, worker_count

    kind, target = parse_dask_address(address)
    rows = np.asarray(rows)
    threads = max(1, (threads_per_worker or target) // target) if kind == "local" else 1
    with dask_client(address, threads_per_worker=threads) as client:
        # at least one partition per worker, so that every worker trains on a share of the rows
        workers = max(1, worker_count(client))
        partition_rows = max(1, min(partition_rows, -(-len(rows) // workers)))
        X_dask, y_dask = memmap_dask_arrays(X, y, rows, partition_rows)
        classifier, info = fit_dask_lightgbm(estimator, X_dask, y_dask, client)
    info["address"] = address if kind == "scheduler" else f"local:{target} (127.0.0.1)"
    return classifier, info
