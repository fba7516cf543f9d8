"""Train and score from ember's memmaps in bounded memory (``vigil ember train --bounded-memory``).

The plain path (``train_and_save`` without options) does what ember does: it copies every labelled
row into RAM (``X[rows]``, 4 bytes a value: 5.7 GB for EMBER2018's 600 k labelled rows) and hands that
to LightGBM, which then keeps its own binned copy and a histogram pool sized by ``num_leaves``.
This module keeps the process's memory well below the data:

* :class:`MemmapRows` is a ``lightgbm.Sequence`` over the labelled rows of ``X_<subset>.dat``:
  LightGBM samples ``bin_construct_sample_cnt`` rows through it to choose the bins, then pulls the
  rows in batches of ``batch_size`` and keeps only its binned copy (1 byte a value or less), so X
  is never materialised. Rows are read with ``preadv`` into a fresh buffer, not through a memory
  map, so pages already used stay in the page cache (which the kernel can drop) instead of the
  process's resident set.
* the histogram pool is capped (``histogram_pool_size``, MB): LightGBM keeps one histogram per leaf
  it may still split (2,048 leaves in ember's preset: about 6 GB with 2,381 features, whatever the
  row count). With the cap it keeps the most recent histograms and rebuilds an evicted one from the
  rows instead of subtracting parent minus sibling: the trees are the same, training is slower when
  the cap is far below ``num_leaves`` histograms.
* bins are chosen from ``BOUNDED_SAMPLE_ROWS`` sampled rows instead of LightGBM's 200,000: while
  bins are found each non-zero sampled value is held as float64 + int32 (:func:`_sparse_sample`
  reads the sample a batch at a time; LightGBM's own Sequence sampling would first make a dense
  float64 array, 3.8 GB for 200 k x 2,381); with fewer rows than that the bins, and the model, are
  those of the plain path.
* bins are stored dense (``is_enable_sparse=False``): exactly 1 byte a value (rows x features bytes,
  allocated once). LightGBM's sparse bins would end smaller on mostly-zero columns, but they are
  filled through per-thread push buffers of 8 bytes per non-zero value and, with ember-like density
  (a quarter of the values non-zero), peaked above the float32 data itself (13 KB a row against
  9.5 KB, measured by ``bench.ember_scale``). Set ``is_enable_sparse`` in a ``--params`` file to choose.
* the binned ``Dataset`` can be saved (``save_binary``) and reused by later runs with the same data
  and binning parameters (``--binary-dataset FILE``), skipping the pass over X.
* scoring (evaluation, the threshold) reads the rows chunk by chunk (:func:`predict_rows`).

Example::

    X, y = read_vectorized("data/ember2018", "train")
    classifier = fit_bounded(make_estimator("ember"), X, y, histogram_pool_mb=1024)
    scores = predict_rows(classifier, *read_vectorized("data/ember2018", "test"))
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

HISTOGRAM_POOL_MB = 1024  # default cap in MB (LightGBM's own default is -1: one histogram per leaf)
BOUNDED_SAMPLE_ROWS = 50_000  # rows sampled to choose bins (LightGBM's default: 200,000)
BATCH_ROWS = 4096  # rows per read when LightGBM pulls the data or we score it (~39 MB at 2,381 floats)

# Parameters that change the binned Dataset: a saved binary Dataset is reused only when they match.
DATASET_PARAMS = frozenset(
    {
        "max_bin",
        "max_bin_by_feature",
        "min_data_in_bin",
        "bin_construct_sample_cnt",
        "subsample_for_bin",
        "feature_pre_filter",
        "min_data_in_leaf",
        "min_child_samples",
        "use_missing",
        "zero_as_missing",
        "enable_bundle",
        "max_conflict_rate",
        "is_enable_sparse",
        "sparse_threshold",
        "linear_tree",
        "data_random_seed",
        "seed",
        "random_state",
        "categorical_feature",
        "forcedbins_filename",
    }
)


class MemmapRows:
    """Rows ``rows`` of a float32 memmap file (ember layout), read with ``preadv`` on demand.

    A ``lightgbm.Sequence`` (registered below): ``len``, ``seq[i]`` (one row, used for sampling) and
    ``seq[a:b]`` (a batch). Works on ``np.memmap`` arrays too: ``MemmapRows.of(X, rows)``.
    """

    batch_size = BATCH_ROWS

    def __init__(self, path: str | Path, dim: int, rows: np.ndarray, offset: int = 0):
        self.path = str(path)
        self.dim = int(dim)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.offset = int(offset)
        self._fd: int | None = None

    @classmethod
    def of(cls, X: np.ndarray, rows: np.ndarray | None = None) -> "MemmapRows | InMemoryRows":
        """Rows of a memmap read from its file; any other array is sliced as it is."""
        rows = np.arange(len(X)) if rows is None else rows
        filename = getattr(X, "filename", None)
        if isinstance(X, np.memmap) and filename and X.dtype == np.float32 and X.flags["C_CONTIGUOUS"]:
            return cls(filename, X.shape[1], rows, offset=int(X.offset))
        return InMemoryRows(X, rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None}  # a descriptor does not travel to another process

    def _read(self, rows: np.ndarray) -> np.ndarray:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        row_bytes = 4 * self.dim
        # consecutive runs of rows are one read each
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            view = memoryview(out[start:stop]).cast("B")  # type: ignore[arg-type]  # ndarray is a buffer
            position, done = self.offset + int(rows[start]) * row_bytes, 0
            while done < len(view):
                got = os.preadv(self._fd, [view[done:]], position + done)
                if got == 0:
                    raise ValueError(f"{self.path} ends before row {int(rows[stop - 1])}")
                done += got
        return out

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._read(self.rows[index])
        if isinstance(index, (list, np.ndarray)):
            return self._read(self.rows[np.asarray(index)])
        # one row: LightGBM's sampling wants float64 rows (batches may stay float32)
        return self._read(self.rows[[int(index)]])[0].astype(np.float64)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


class InMemoryRows:
    """The same interface over an ordinary array (tests, small inputs)."""

    batch_size = BATCH_ROWS

    def __init__(self, X: np.ndarray, rows: np.ndarray):
        self.X, self.rows = X, np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if isinstance(index, (slice, list, np.ndarray)):
            return np.asarray(
                self.X[self.rows[np.asarray(index) if isinstance(index, list) else index]], dtype=np.float32
            )
        return np.asarray(self.X[self.rows[int(index)]], dtype=np.float64)


def _sparse_sample(dataset, seqs: list, total_nrow: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """LightGBM's bin sample, column by column, without its dense float64 copy of the sampled rows.

    ``lightgbm.Dataset`` (4.7) samples a Sequence with ``np.array([seq[i] for i in indices])``: every
    sampled row as float64, then keeps each column's non-zero values. This reads the same rows a
    batch at a time and keeps only those non-zero values (as float64, with their int32 positions),
    which is what LightGBM then uses: the same bins from a fraction of the memory.
    """
    from lightgbm.basic import ZERO_THRESHOLD

    indices = dataset._create_sample_indices(total_nrow=total_nrow)
    (seq,) = seqs
    dim = None
    values: list[list[np.ndarray]] = []
    positions: list[list[np.ndarray]] = []
    for start in range(0, len(indices), BATCH_ROWS):
        block = seq[indices[start : start + BATCH_ROWS].tolist()]  # float32 rows
        columns = np.ascontiguousarray(block.T)
        keep = (np.abs(columns) > ZERO_THRESHOLD) | np.isnan(columns)
        if dim is None:
            dim = columns.shape[0]
            values = [[] for _ in range(dim)]
            positions = [[] for _ in range(dim)]
        offsets = np.arange(start, start + columns.shape[1], dtype=np.int32)
        for j in range(dim):
            mask = keep[j]
            values[j].append(columns[j][mask].astype(np.float64))
            positions[j].append(offsets[mask])
        del block, columns, keep
    empty_f, empty_i = np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int32)
    return (
        [np.concatenate(v) if v else empty_f for v in values],
        [np.concatenate(p) if p else empty_i for p in positions],
    )


def _sampling_dataset_class():
    """``lightgbm.Dataset`` whose Sequence sampling is :func:`_sparse_sample` (same bins, less memory)."""
    import lightgbm

    class SequenceDataset(lightgbm.Dataset):
        def _Dataset__sample(self, *, seqs, total_nrow):  # overrides Dataset.__sample (name-mangled)
            if len(seqs) == 1 and isinstance(seqs[0], (MemmapRows, InMemoryRows)):
                return _sparse_sample(self, seqs, total_nrow)
            return super()._Dataset__sample(seqs=seqs, total_nrow=total_nrow)

    if not hasattr(lightgbm.Dataset, "_Dataset__sample"):  # another lightgbm: keep its own sampling
        return lightgbm.Dataset
    return SequenceDataset


def _register_sequences() -> None:
    import lightgbm

    for cls in (MemmapRows, InMemoryRows):
        lightgbm.Sequence.register(cls)


def iter_batches(X: np.ndarray, rows: np.ndarray, batch: int = BATCH_ROWS) -> Iterator[tuple[slice, np.ndarray]]:
    """``(positions, X[rows[positions]])`` batch by batch, read without mapping the file."""
    source = MemmapRows.of(X, rows)
    for start in range(0, len(rows), batch):
        part = slice(start, min(start + batch, len(rows)))
        yield part, source[part]


def predict_rows(classifier, X: np.ndarray, rows: np.ndarray | None = None, batch: int = BATCH_ROWS) -> np.ndarray:
    """``classifier.predict_proba(X[rows])[:, 1]`` computed a batch at a time (same numbers)."""
    rows = np.arange(len(X)) if rows is None else np.asarray(rows)
    scores = np.empty(len(rows), dtype=np.float64)
    for part, block in iter_batches(X, rows, batch):
        scores[part] = classifier.predict_proba(block)[:, 1]
    return scores


def native_params(estimator) -> dict[str, Any]:
    """LightGBM-native training parameters of an (unfitted) LGBMClassifier, as its fit would pass them."""
    estimator._objective = estimator.objective or "binary"
    params = estimator._process_params(stage="fit")
    params.pop("n_estimators", None)
    return params


def classifier_from_booster(estimator, booster, classes=(0, 1)):
    """A fitted ``LGBMClassifier`` around a Booster trained by ``lightgbm.train``.

    It sets what ``LGBMClassifier.fit`` sets (lightgbm 4.7; the test compares the attribute set with a
    really fitted one), so the saved pipeline is the same kind of object as the plain path's.
    """
    from collections import OrderedDict, defaultdict

    from sklearn.preprocessing import LabelEncoder

    encoder = LabelEncoder().fit(np.asarray(classes))
    estimator._Booster = booster
    estimator._le = encoder
    estimator._classes = encoder.classes_
    estimator._n_classes = len(encoder.classes_)
    estimator._class_map = None if estimator.class_weight is None else estimator._class_map
    estimator._class_weight = estimator.class_weight
    estimator._objective = estimator.objective or "binary"
    estimator._n_features = booster.num_feature()
    estimator._n_features_in = booster.num_feature()
    estimator._fitted_with_feature_names = False
    estimator._evals_result = {}
    estimator._best_iteration = booster.best_iteration
    estimator._best_score = booster.best_score or defaultdict(OrderedDict)
    estimator.fitted_ = True
    return estimator


def dataset_key(fingerprint: str, rows: np.ndarray, params: dict[str, Any]) -> str:
    """What a saved binary Dataset was built from: the data, the rows taken, the binning parameters."""
    binning = {k: v for k, v in sorted(params.items()) if k in DATASET_PARAMS}
    digest = hashlib.sha256(fingerprint.encode())
    digest.update(np.asarray(rows, dtype=np.int64).tobytes())
    digest.update(json.dumps(binning, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def build_dataset(
    X: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    params: dict[str, Any],
    binary_path: str | Path | None = None,
    key: str | None = None,
):
    """A constructed ``lightgbm.Dataset`` of ``X[rows]`` pulled in batches (X is never loaded whole).

    With ``binary_path``: reuse that binary Dataset when its sidecar ``.json`` carries ``key``, else
    build it and save it there. Returns ``(dataset, reused)``.
    """
    import lightgbm

    _register_sequences()
    labels = np.asarray(y[rows], dtype=np.float32)
    if binary_path is not None:
        binary_path = Path(binary_path)
        sidecar = binary_path.with_name(binary_path.name + ".json")
        if binary_path.exists() and sidecar.exists() and key is not None:
            try:
                recorded = json.loads(sidecar.read_text()).get("key")
            except ValueError:
                recorded = None
            if recorded == key:
                dataset = lightgbm.Dataset(str(binary_path), params=params, free_raw_data=True).construct()
                if dataset.num_data() == len(rows):
                    return dataset, True
    dataset = _sampling_dataset_class()(MemmapRows.of(X, rows), label=labels, params=params, free_raw_data=True)
    dataset.construct()
    if binary_path is not None:
        binary_path.parent.mkdir(parents=True, exist_ok=True)
        if binary_path.exists():
            binary_path.unlink()  # save_binary refuses to overwrite
        dataset.save_binary(str(binary_path))
        sidecar.write_text(
            json.dumps(
                {
                    "key": key,
                    "rows": int(len(rows)),
                    "params": {k: v for k, v in params.items() if k in DATASET_PARAMS},
                },
                default=str,
            )
        )
    return dataset, False


def bounded_overrides(
    estimator, histogram_pool_mb: int | None = HISTOGRAM_POOL_MB, sample_rows: int | None = BOUNDED_SAMPLE_ROWS
) -> dict[str, Any]:
    """The keyword overrides the bounded path applies on top of a preset (only those not set by it)."""
    given = estimator.get_params()
    overrides: dict[str, Any] = {}
    if histogram_pool_mb is not None and given.get("histogram_pool_size") is None:
        overrides["histogram_pool_size"] = float(histogram_pool_mb)
    if sample_rows is not None and given.get("subsample_for_bin") == 200000 and "bin_construct_sample_cnt" not in given:
        overrides["subsample_for_bin"] = int(sample_rows)
    if not {"is_enable_sparse", "is_sparse", "enable_sparse", "sparse"} & set(given):
        overrides["is_enable_sparse"] = False  # dense bins: 1 byte a value, known in advance (see module doc)
    return overrides


def fit_bounded(
    estimator,
    X: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray | None = None,
    histogram_pool_mb: int | None = HISTOGRAM_POOL_MB,
    sample_rows: int | None = BOUNDED_SAMPLE_ROWS,
    binary_path: str | Path | None = None,
    fingerprint: str = "",
) -> tuple[Any, dict]:
    """Fit ``estimator`` (an unfitted LGBMClassifier) on ``X[rows]`` without loading X.

    Returns ``(fitted LGBMClassifier, info)``; ``info`` records the caps and whether a saved binary
    Dataset was reused.
    """
    import lightgbm

    from vigil.tasks.ember.model import labelled_rows

    rows = labelled_rows(y) if rows is None else np.asarray(rows)
    labels = np.asarray(y[rows])
    if len(np.unique(labels)) < 2:
        raise ValueError(
            f"the labelled rows hold only class(es) {sorted(set(labels.astype(int)))}; LightGBM needs both 0 and 1"
        )
    estimator.set_params(**bounded_overrides(estimator, histogram_pool_mb, sample_rows))
    params = native_params(estimator)
    key = dataset_key(fingerprint, rows, params) if binary_path is not None else None
    dataset, reused = build_dataset(X, y, rows, params, binary_path, key)
    booster = lightgbm.train(params, dataset, num_boost_round=estimator.n_estimators)
    booster.free_dataset()
    del dataset
    info = {
        "mode": "bounded-memory",
        "histogram_pool_size_mb": params.get("histogram_pool_size"),
        "dense_bins": not params.get("is_enable_sparse", True),
        "bin_construct_sample_cnt": params.get("bin_construct_sample_cnt", params.get("subsample_for_bin")),
        "batch_rows": BATCH_ROWS,
        "binary_dataset": str(binary_path) if binary_path else None,
        "binary_dataset_reused": reused,
    }
    return classifier_from_booster(estimator, booster), info
