"""Raw JSON-lines records -> ember's memmap files (X_train.dat, y_train.dat, X_test.dat, y_test.dat).

Layout, as in ember: raw float32, no header, X of shape (rows, dim), y of shape (rows,), row i = line
i of the input files taken in order (train_features_0.jsonl, train_features_1.jsonl, ... for train;
test_features.jsonl for test). Rows labelled -1 stay in the files; training drops them. A line that
cannot be read or vectorized is reported with its file and line number, gets a zero vector and label
-1 (so training skips it), and the other lines are still vectorized.

Example::

    >>> report = create_vectorized_features("data/ember2018", feature_version=2)   # doctest: +SKIP
    >>> X, y = read_vectorized("data/ember2018", subset="train", feature_version=2)
    >>> X.shape, X.dtype          # ((800000, 2381), dtype('float32')), memory-mapped, nothing loaded
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from vigil.tasks.ember.features import DIMS, FeatureExtractor

SUBSETS = ("train", "test")
METADATA_COLUMNS = ["sha256", "appeared", "label", "avclass", "subset"]
BATCH_LINES = 256


@dataclass
class BadLine:
    path: str
    line: int  # 1-based, as editors show it
    error: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.error}"


@dataclass
class SubsetReport:
    subset: str
    rows: int
    X_path: Path
    y_path: Path
    bad_lines: list[BadLine] = field(default_factory=list)


def raw_feature_paths(data_dir: Path | str, subset: str) -> list[Path]:
    """The raw files of a subset, in ember's order (train_features_0..N numerically, then test)."""
    data_dir = Path(data_dir)
    if subset == "train":
        def index(path: Path) -> int:
            match = re.fullmatch(r"train_features_(\d+)\.jsonl", path.name)
            return int(match.group(1)) if match else -1

        return sorted((p for p in data_dir.glob("train_features_*.jsonl") if index(p) >= 0), key=index)
    if subset == "test":
        path = data_dir / "test_features.jsonl"
        return [path] if path.exists() else []
    raise ValueError(f"subset must be 'train' or 'test', not {subset!r}")


def count_lines(paths: list[Path]) -> int:
    """Lines in the files, counting a last line without a newline."""
    total = 0
    for path in paths:
        with open(path, "rb") as handle:
            last = b"\n"
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                total += chunk.count(b"\n")
                last = chunk[-1:]
            if last != b"\n":
                total += 1
    return total


def iter_raw_lines(paths: list[Path]) -> Iterator[tuple[str, int, str]]:
    """(file, 1-based line number, text) for every line of the files, in order."""
    for path in paths:
        # Binary mode splits on b"\n" only, as count_lines counts (text mode would also split on "\r").
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                yield str(path), number, line.decode("utf-8", errors="replace")


def parse_record(line: str) -> tuple[dict, float, dict]:
    """One raw JSON line -> (record, label, metadata). Raises ValueError naming the problem."""
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError("a raw record must be a JSON object")
    label = record.get("label", -1)
    label = -1 if label is None else label
    try:
        label = float(label)
    except (TypeError, ValueError):
        raise ValueError(f"label must be 1, 0 or -1, not {label!r}") from None
    metadata = {key: record.get(key) for key in ("sha256", "appeared", "avclass")}
    metadata["label"] = int(label)
    return record, label, metadata


def vectorize_records(extractor: FeatureExtractor, records: list[dict]) -> np.ndarray:
    """Vectors of parsed records; raises ValueError naming the block when one is missing or malformed."""
    try:
        return extractor.process_raw_features_batch(records)
    except KeyError as exc:
        raise ValueError(f"missing feature block {exc}") from None
    except (TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ValueError(f"malformed feature block ({type(exc).__name__}: {exc})") from None


def vectorize_record(extractor: FeatureExtractor, line: str) -> tuple[np.ndarray, float, dict]:
    """One raw JSON line -> (vector, label, metadata). Raises ValueError naming the problem."""
    record, label, metadata = parse_record(line)
    return vectorize_records(extractor, [record])[0], label, metadata


# -- worker side: one memmap pair opened per process, rows written in batches ------------------
_worker_state: dict = {}


def _worker_init(X_path: str, y_path: str, rows: int, feature_version: int) -> None:
    extractor = FeatureExtractor(feature_version)
    _worker_state.update(
        extractor=extractor,
        X=np.memmap(X_path, dtype=np.float32, mode="r+", shape=(rows, extractor.dim)),
        y=np.memmap(y_path, dtype=np.float32, mode="r+", shape=(rows,)),
    )


def _vectorize_batch(batch: list[tuple[int, str, int, str]]) -> tuple[list[tuple[int, dict]], list[BadLine]]:
    extractor, X, y = _worker_state["extractor"], _worker_state["X"], _worker_state["y"]
    metadata, bad, parsed = [], [], []
    for row, path, number, line in batch:
        try:
            record, label, meta = parse_record(line)
            parsed.append((row, path, number, record, label))
        except ValueError as exc:
            meta = {"label": -1}
            bad.append(BadLine(path, number, str(exc)))
            X[row] = 0.0
            y[row] = -1.0
        metadata.append((row, meta))
    if parsed:
        try:  # the whole batch at once (FeatureHasher is much faster in bulk) ...
            vectors = vectorize_records(extractor, [item[3] for item in parsed])
        except ValueError:  # ... unless a record is broken: then one by one, to name the line
            vectors = np.zeros((len(parsed), extractor.dim), dtype=np.float32)
            for i, (row, path, number, record, _) in enumerate(parsed):
                try:
                    vectors[i] = vectorize_records(extractor, [record])[0]
                except ValueError as exc:
                    bad.append(BadLine(path, number, str(exc)))
                    parsed[i] = (row, path, number, record, -1.0)
                    metadata = [(r, {"label": -1}) if r == row else (r, m) for r, m in metadata]
        rows = np.array([item[0] for item in parsed])
        order = np.argsort(rows)  # rows of a batch are consecutive: write them as one slice
        X[rows[order]] = vectors[order]
        y[rows[order]] = np.array([item[4] for item in parsed], dtype=np.float32)[order]
    X.flush()
    y.flush()
    return metadata, bad


def _batches(paths: list[Path], size: int) -> Iterator[list[tuple[int, str, int, str]]]:
    batch = []
    for row, (path, number, line) in enumerate(iter_raw_lines(paths)):
        batch.append((row, path, number, line))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def vectorize_subset(X_path: Path, y_path: Path, paths: list[Path], feature_version: int = 2,
                     processes: int | None = None, progress: bool = True,
                     subset: str = "") -> tuple[SubsetReport, list[dict]]:
    """Vectorize ``paths`` into the two memmap files; returns the report and per-row metadata."""
    from tqdm import tqdm

    rows = count_lines(paths)
    dim = DIMS[feature_version]
    # Size the files once (zero-filled, like np.memmap mode "w+"); workers open them in r+ mode.
    for path, nbytes in ((X_path, rows * dim * 4), (y_path, rows * 4)):
        with open(path, "wb") as handle:
            handle.truncate(nbytes)
    if rows == 0:
        return SubsetReport(subset, 0, Path(X_path), Path(y_path)), []

    processes = processes or min(2, os.cpu_count() or 1)
    init_args = (str(X_path), str(y_path), rows, feature_version)
    metadata: list[dict] = [{} for _ in range(rows)]
    bad_lines: list[BadLine] = []
    bar = tqdm(total=rows, desc=f"vectorizing {subset or X_path.name}", unit="rec", disable=not progress,
               file=sys.stderr)
    if processes == 1:
        _worker_init(*init_args)
        results = map(_vectorize_batch, _batches(paths, BATCH_LINES))
        pool = None
    else:
        pool = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn").Pool(
            processes, initializer=_worker_init, initargs=init_args)
        results = pool.imap_unordered(_vectorize_batch, _batches(paths, BATCH_LINES))
    try:
        for batch_metadata, batch_bad in results:
            for row, meta in batch_metadata:
                metadata[row] = meta
            bad_lines.extend(batch_bad)
            bar.update(len(batch_metadata))
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
        _worker_state.clear()
    bad_lines.sort(key=lambda b: (b.path, b.line))
    return SubsetReport(subset, rows, Path(X_path), Path(y_path), bad_lines), metadata


def create_vectorized_features(data_dir: Path | str, feature_version: int = 2, processes: int | None = None,
                               progress: bool = True) -> list[SubsetReport]:
    """Vectorize train and test of ``data_dir`` in place and write metadata.csv beside them."""
    data_dir = Path(data_dir)
    reports, frames = [], []
    for subset in SUBSETS:
        paths = raw_feature_paths(data_dir, subset)
        if not paths:
            continue
        report, metadata = vectorize_subset(
            data_dir / f"X_{subset}.dat", data_dir / f"y_{subset}.dat", paths,
            feature_version=feature_version, processes=processes, progress=progress, subset=subset)
        reports.append(report)
        frame = pd.DataFrame(metadata, columns=["sha256", "appeared", "label", "avclass"])
        frame["subset"] = subset
        frames.append(frame)
    if not reports:
        raise FileNotFoundError(f"no train_features_*.jsonl or test_features.jsonl in {data_dir}")
    pd.concat(frames, ignore_index=True)[METADATA_COLUMNS].to_csv(data_dir / "metadata.csv")
    return reports


def vectorized_rows(data_dir: Path | str, subset: str, feature_version: int = 2) -> int:
    """Rows in X_<subset>.dat, checking that its size fits the feature version's width."""
    path = Path(data_dir) / f"X_{subset}.dat"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run `vigil ember vectorize {data_dir}` first")
    row_bytes = 4 * DIMS[feature_version]
    size = path.stat().st_size
    if size % row_bytes:
        raise ValueError(f"{path} is {size} bytes, not a whole number of feature-version-{feature_version} "
                         f"rows ({row_bytes} bytes); was it vectorized with another --feature-version?")
    return size // row_bytes


def read_vectorized(data_dir: Path | str, subset: str = "train", feature_version: int = 2
                    ) -> tuple[np.memmap, np.memmap]:
    """(X, y) of a subset as read-only memmaps: nothing is loaded until rows are indexed."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be 'train' or 'test', not {subset!r}")
    data_dir = Path(data_dir)
    rows = vectorized_rows(data_dir, subset, feature_version)
    if rows == 0:
        return (np.zeros((0, DIMS[feature_version]), dtype=np.float32), np.zeros((0,), dtype=np.float32))
    X = np.memmap(data_dir / f"X_{subset}.dat", dtype=np.float32, mode="r", shape=(rows, DIMS[feature_version]))
    y = np.memmap(data_dir / f"y_{subset}.dat", dtype=np.float32, mode="r", shape=(rows,))
    return X, y


def read_metadata(data_dir: Path | str) -> pd.DataFrame:
    return pd.read_csv(Path(data_dir) / "metadata.csv", index_col=0)
