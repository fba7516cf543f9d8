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
from typing import Any, Iterator

import numpy as np
import orjson
import pandas as pd

from vigil.heap import collector_paused
from vigil.tasks.ember.features import DIMS, FeatureExtractor
from vigil.tasks.ember.line_scanner import ScannedLines, compile_kernels, scan_lines, scanner_cached, scanner_compiled

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
    resumed_at: int | None = None  # the row an interrupted run was continued from (None: not resumed)


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


def load_json_line(line: bytes | str) -> Any:
    """A JSON line as Python's ``json.loads`` reads it (of the line decoded as UTF-8, bad bytes
    replaced), parsed with orjson (~2x faster on EMBER's number-heavy records).

    orjson refuses a few things ``json`` accepts (NaN / Infinity, lone surrogates, invalid UTF-8
    bytes, which the text decoding would have replaced); such a line is read again with ``json``, so
    what is accepted is the same as before. One value differs: an integer past 64 bits comes back as
    the nearest float (``json``: an int), which is what a vector holds of it either way.
    """
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        text = line.decode("utf-8", errors="replace") if isinstance(line, (bytes, bytearray)) else line
        return json.loads(text)


def parse_record(line: bytes | str) -> tuple[dict, float, dict]:
    """One raw JSON line -> (record, label, metadata). Raises ValueError naming the problem."""
    record = load_record(line)
    return (record, *label_and_metadata(record))


def load_record(line: bytes | str) -> dict:
    """One raw JSON line -> its record (a dict). Raises ValueError naming the problem."""
    try:
        record = load_json_line(line)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError("a raw record must be a JSON object")
    return record


def label_and_metadata(record: dict) -> tuple[float, dict]:
    """A record's label (1, 0 or -1, as a float) and metadata. Raises ValueError on a bad label."""
    label = record.get("label", -1)
    label = -1 if label is None else label
    try:
        label = float(label)
    except (TypeError, ValueError):
        raise ValueError(f"label must be 1, 0 or -1, not {label!r}") from None
    metadata = {key: record.get(key) for key in ("sha256", "appeared", "avclass")}
    metadata["label"] = int(label)
    return label, metadata


def vectorize_records(
    extractor: FeatureExtractor, records: list[dict], scanned: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """Vectors of parsed records (``scanned``: blocks the line scanner read, see
    ``FeatureExtractor.process_raw_features_batch``); raises ValueError naming the block when one is
    missing or malformed."""
    try:
        return extractor.process_raw_features_batch(records, scanned)
    except KeyError as exc:
        raise ValueError(f"missing feature block {exc}") from None
    except (TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ValueError(f"malformed feature block ({type(exc).__name__}: {exc})") from None


def vectorize_record(extractor: FeatureExtractor, line: str) -> tuple[np.ndarray, float, dict]:
    """One raw JSON line -> (vector, label, metadata). Raises ValueError naming the problem."""
    record, label, metadata = parse_record(line)
    return vectorize_records(extractor, [record])[0], label, metadata


# -- worker side: the two files opened once per process, each batch written with one pwrite each --
# (pwrite, not a memory map: the pages written stay in the page cache, not in the worker's resident
# set, so a worker's memory does not grow with the file)
_worker_state: dict = {}


# The line scanner saves ~60-110 us a line (bench.ember_vectorize, 3 December, with the section and
# header blocks: 2.9-3.4x -> 1.05-1.6x orjson's parse). Its compilation costs 15-25 s (numba), paid
# back from ~150-400k lines: a run uses it from this many lines (EMBER2018's 1 M) or once this
# process compiled it. Loading it from the signed kernel cache, where an earlier process left it,
# costs 0.25-0.5 s, paid back from ~3-8k lines: then from CACHED_SCANNER_MIN_LINES.
SCANNER_MIN_LINES = 400_000
CACHED_SCANNER_MIN_LINES = 10_000


def use_scanner(lines: int) -> bool:
    """Whether a run of this many lines reads its records with the line scanner."""
    if lines >= SCANNER_MIN_LINES or scanner_compiled():
        return True
    return lines >= CACHED_SCANNER_MIN_LINES and scanner_cached()


def _worker_init(X_path: str, y_path: str, rows: int, feature_version: int, scan: bool = False) -> None:
    extractor = FeatureExtractor(feature_version)
    _worker_state.update(
        extractor=extractor, rows=rows, scan=scan, X=os.open(X_path, os.O_WRONLY), y=os.open(y_path, os.O_WRONLY)
    )


def _worker_close() -> None:
    for key in ("X", "y"):
        if key in _worker_state:
            os.close(_worker_state.pop(key))
    _worker_state.clear()


def _pwrite_all(fd: int, data: Any, offset: int) -> None:
    view = memoryview(data).cast("B")
    while len(view):
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _vectorize_batch(batch: list[tuple[int, str, int, bytes]]) -> tuple[list[tuple[int, dict]], list[BadLine]]:
    # A batch's parsed records are many small lists and dicts with no reference cycles (JSON cannot make
    # one), freed by reference counting when the batch ends; the cyclic collector would walk them
    # again and again while they are built: 20-30 % of a batch's time (python -m bench.ember_baseline)
    with collector_paused():
        return _vectorize_lines(batch)


def _vectorize_lines(batch: list[tuple[int, str, int, bytes]]) -> tuple[list[tuple[int, dict]], list[BadLine]]:
    extractor = _worker_state["extractor"]
    lines = [item[3] for item in batch]
    # the six biggest values of most lines read by a compiled pass, or every line parsed as it is
    scan = scan_lines(lines) if _worker_state["scan"] else ScannedLines.unscanned(len(lines))
    metadata, bad, parsed = [], [], []
    first = batch[0][0]  # rows of a batch are consecutive
    y = np.full(len(batch), -1.0, dtype=np.float32)
    for k, (row, path, number, line) in enumerate(batch):
        try:
            record = scan.records[k]
            if record is None:  # not scanned: parsed as it is
                record = load_record(line)
            label, meta = label_and_metadata(record)
            parsed.append((row, path, number, record, label, k))
        except ValueError as exc:
            meta = {"label": -1}
            bad.append(BadLine(path, number, str(exc)))
        metadata.append((row, meta))
    if parsed:
        try:  # the whole batch at once (FeatureHasher is much faster in bulk) ...
            vectors = _vectorize_scanned(extractor, [item[3] for item in parsed], [item[5] for item in parsed], scan)
        except ValueError:  # ... unless a record is broken: then one by one, to name the line
            vectors = np.zeros((len(parsed), extractor.dim), dtype=np.float32)
            for i, (row, path, number, _, _label, k) in enumerate(parsed):
                try:  # the line parsed afresh, as it is: read and reported as without the scanner
                    vectors[i] = vectorize_records(extractor, [load_record(lines[k])])[0]
                except ValueError as exc:
                    bad.append(BadLine(path, number, str(exc)))
                    parsed[i] = (row, path, number, None, -1.0, k)
                    metadata = [(r, {"label": -1}) if r == row else (r, m) for r, m in metadata]
        positions = np.array([item[0] for item in parsed]) - first
        y[positions] = np.array([item[4] for item in parsed], dtype=np.float32)
    if len(parsed) == len(batch):  # every line read (the usual batch): the vectors are the rows, no copy
        X = vectors
    else:
        X = np.zeros((len(batch), extractor.dim), dtype=np.float32)  # a bad line's row: zeros, label -1
        if parsed:
            X[positions] = vectors
    _pwrite_all(_worker_state["X"], X, first * extractor.dim * 4)
    _pwrite_all(_worker_state["y"], y, first * 4)
    return metadata, bad


def _vectorize_scanned(
    extractor: FeatureExtractor, records: list[dict], lines: list[int], scan: ScannedLines
) -> np.ndarray:
    """Vectors of records parsed from ``lines`` (their indices in the scanned batch): the scanned
    records with the scanner's rows, the others from their own values, each row in its place."""
    taken = [i for i, k in enumerate(lines) if scan.records[k] is records[i]]
    if len(taken) == len(records):  # the usual batch
        return vectorize_records(extractor, records, scan.rows_of(lines))
    if not taken:
        return vectorize_records(extractor, records)
    vectors = np.empty((len(records), extractor.dim), dtype=np.float32)
    taken_lines = [lines[i] for i in taken]
    vectors[taken] = vectorize_records(extractor, [records[i] for i in taken], scan.rows_of(taken_lines))
    plain = sorted(set(range(len(records))) - set(taken))
    vectors[plain] = vectorize_records(extractor, [records[i] for i in plain])
    return vectors


# -- resumable, bounded-memory driver ---------------------------------------------------------
WINDOW_PER_PROCESS = 4  # batches in flight per worker: results come back in order, at most this many waiting
PROGRESS_EVERY_S = 1.0  # how often the progress file is rewritten (a crash redoes at most this much)


@dataclass
class _Position:
    """Where the next unread line starts: file index, byte offset in it, its 1-based line number."""

    file: int = 0
    offset: int = 0
    line: int = 1


def _lines_from(paths: list[Path], start: _Position) -> Iterator[tuple[str, int, bytes, _Position]]:
    """(file, line number, line's bytes, position after the line) from ``start`` on, in order (bytes:
    orjson reads them without a decoded copy; :func:`load_json_line` decodes only what it refuses)."""
    for index in range(start.file, len(paths)):
        with open(paths[index], "rb") as handle:
            offset, number = (start.offset, start.line) if index == start.file else (0, 1)
            handle.seek(offset)
            for line in handle:
                offset += len(line)
                yield str(paths[index]), number, line, _Position(index, offset, number + 1)
                number += 1


def _batches(
    paths: list[Path], size: int, first_row: int = 0, start: _Position | None = None
) -> Iterator[tuple[list[tuple[int, str, int, bytes]], _Position]]:
    """Batches of (row, file, line number, line), each with the position after its last line."""
    batch: list[tuple[int, str, int, bytes]] = []
    position = start or _Position()
    for row, (path, number, line, after) in enumerate(_lines_from(paths, position), start=first_row):
        position = after
        batch.append((row, path, number, line))
        if len(batch) == size:
            yield batch, position
            batch = []
    if batch:
        yield batch, position


class SubsetProgress:
    """``X_<subset>.dat.progress.json`` + ``X_<subset>.dat.metadata.jsonl``: what an interrupted run did.

    The progress file names the inputs (path, size, mtime), the feature version, the row count, how
    many rows are written (all rows before ``done_rows`` are in X/y and in the metadata file, whose
    first ``metadata_bytes`` bytes are valid) and where to read on. A run whose inputs or feature
    version differ starts afresh.
    """

    FORMAT = 1

    def __init__(self, X_path: Path):
        self.path = X_path.with_name(X_path.name + ".progress.json")
        self.metadata_path = X_path.with_name(X_path.name + ".metadata.jsonl")

    @staticmethod
    def signature(paths: list[Path], feature_version: int) -> dict:
        inputs = []
        for path in paths:
            stat = path.stat()
            inputs.append({"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
        return {"format": SubsetProgress.FORMAT, "feature_version": feature_version, "inputs": inputs}

    def read(self, signature: dict, X_path: Path, y_path: Path, dim: int) -> dict | None:
        """The saved state if it belongs to these inputs and the output files are intact, else None."""
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if {k: state.get(k) for k in signature} != signature:
            return None
        rows = int(state.get("rows", -1))
        try:
            sizes_ok = (
                X_path.stat().st_size == rows * dim * 4
                and y_path.stat().st_size == rows * 4
                and self.metadata_path.stat().st_size >= int(state["metadata_bytes"])
            )
        except (OSError, KeyError, ValueError):
            return None
        return state if sizes_ok else None

    def write(self, state: dict) -> None:
        from vigil.files import atomic_write

        atomic_write(self.path, json.dumps(state))

    def remove(self) -> None:
        for path in (self.path, self.metadata_path):
            path.unlink(missing_ok=True)

    def iter_metadata(self) -> Iterator[dict]:
        with open(self.metadata_path, encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)


def _in_order(pool, batches: Iterator, window: int) -> Iterator[tuple[tuple, _Position, dict]]:
    """(result of ``_vectorize_batch``, position after the batch, {(file, line): row}) in input order,
    with at most ``window`` batches in flight.

    In order, so the progress file can name one offset below which every row is written; bounded,
    so results waiting behind a slow batch (and the lines sent out) never pile up.
    """
    from collections import deque

    def rows_of(batch) -> dict:
        return {(path, number): row for row, path, number, _ in batch}

    if pool is None:
        for batch, position in batches:
            yield _vectorize_batch(batch), position, rows_of(batch)
        return
    pending: deque = deque()
    for batch, position in batches:
        pending.append((pool.apply_async(_vectorize_batch, (batch,)), position, rows_of(batch)))
        if len(pending) >= window:
            result, at, rows = pending.popleft()
            yield result.get(), at, rows
    while pending:
        result, at, rows = pending.popleft()
        yield result.get(), at, rows


def vectorize_subset_resumable(
    X_path: Path,
    y_path: Path,
    paths: list[Path],
    feature_version: int = 2,
    processes: int | None = None,
    progress: bool = True,
    subset: str = "",
    resume: bool = True,
) -> tuple[SubsetReport, SubsetProgress]:
    """Vectorize ``paths`` into the two memmap files, resumably and in constant memory.

    Per-row metadata go to ``X_<subset>.dat.metadata.jsonl`` as rows complete, in order (one JSON
    object a row; a bad line's carries ``bad``), and the progress file records how far the run got.
    With ``resume`` (the default) a run that finds the progress of an interrupted run on the same
    inputs skips the rows already written; a finished one is not redone. Returns the report and the
    :class:`SubsetProgress`, whose files the caller removes once it has read them.
    """
    import time

    from tqdm import tqdm

    X_path, y_path = Path(X_path), Path(y_path)
    dim = DIMS[feature_version]
    tracker = SubsetProgress(X_path)
    signature = SubsetProgress.signature(paths, feature_version)
    state = tracker.read(signature, X_path, y_path, dim) if resume else None
    if state is None:
        rows = count_lines(paths)
        # Size the files once (zero-filled, like np.memmap mode "w+"); workers open them in r+ mode.
        for path, nbytes in ((X_path, rows * dim * 4), (y_path, rows * 4)):
            with open(path, "wb") as handle:
                handle.truncate(nbytes)
        tracker.metadata_path.write_bytes(b"")
        state = {
            **signature,
            "rows": rows,
            "done_rows": 0,
            "metadata_bytes": 0,
            "position": [0, 0, 1],
            "complete": rows == 0,
            "resumed_at": None,
        }
        tracker.write(state)
    else:
        state["resumed_at"] = state["done_rows"]
    rows = int(state["rows"])
    if not state["complete"]:
        _vectorize_rows(X_path, y_path, paths, feature_version, processes, progress, subset, tracker, state, tqdm, time)
    bad_lines = [BadLine(*meta["bad"]) for meta in tracker.iter_metadata() if "bad" in meta]
    bad_lines.sort(key=lambda b: (b.path, b.line))
    report = SubsetReport(subset, rows, X_path, y_path, bad_lines, resumed_at=state.get("resumed_at"))
    return report, tracker


def _vectorize_rows(
    X_path, y_path, paths, feature_version, processes, progress, subset, tracker, state, tqdm, time
) -> None:
    rows = int(state["rows"])
    processes = processes or min(2, os.cpu_count() or 1)
    done = int(state["done_rows"])
    scan = use_scanner(rows - done)
    init_args = (str(X_path), str(y_path), rows, feature_version, scan)
    position = _Position(*state["position"])
    bar = tqdm(
        total=rows,
        initial=done,
        desc=f"vectorizing {subset or X_path.name}",
        unit="rec",
        disable=not progress,
        file=sys.stderr,
    )
    if processes == 1:
        _worker_init(*init_args)
        pool = None
    else:
        if scan and sys.platform != "win32":
            compile_kernels()  # once here, inherited by the forked workers
        pool = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn").Pool(
            processes, initializer=_worker_init, initargs=init_args
        )
    metadata_file = open(tracker.metadata_path, "r+b")
    metadata_file.truncate(int(state["metadata_bytes"]))  # drop what a crash left past the last record
    metadata_file.seek(0, os.SEEK_END)
    last_saved = time.monotonic()
    try:
        batches = _batches(paths, BATCH_LINES, first_row=done, start=position)
        for (batch_metadata, batch_bad), position, rows_of in _in_order(pool, batches, WINDOW_PER_PROCESS * processes):
            where = {rows_of[(bad.path, bad.line)]: bad for bad in batch_bad}
            chunk = []
            for row, meta in sorted(batch_metadata, key=lambda item: item[0]):
                record = dict(meta)
                if row in where:
                    bad = where[row]
                    record["bad"] = [bad.path, bad.line, bad.error]
                chunk.append(json.dumps(record) + "\n")
            metadata_file.write("".join(chunk).encode("utf-8"))
            done += len(batch_metadata)
            bar.update(len(batch_metadata))
            state.update(done_rows=done, position=[position.file, position.offset, position.line])
            if time.monotonic() - last_saved >= PROGRESS_EVERY_S or done == rows:
                _sync(X_path, y_path)
                metadata_file.flush()
                os.fsync(metadata_file.fileno())
                state["metadata_bytes"] = metadata_file.tell()
                tracker.write(state)
                last_saved = time.monotonic()
        _sync(X_path, y_path)
        metadata_file.flush()
        state.update(metadata_bytes=metadata_file.tell(), complete=done >= rows)
        tracker.write(state)
    finally:
        metadata_file.close()
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
        _worker_close()


def _sync(*paths: Path) -> None:
    """Rows the workers wrote reach the disk before the progress file says they are there."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def vectorize_subset(X_path: Path, y_path: Path, paths: list[Path], **options: Any) -> tuple[SubsetReport, list[dict]]:
    """Vectorize ``paths`` into the two memmap files afresh; returns the report and per-row metadata.
    ``options``: :func:`vectorize_subset_resumable`'s (``feature_version``, ``processes``,
    ``progress``, ``subset``), passed on as they are, so the two cannot drift apart."""
    report, tracker = vectorize_subset_resumable(X_path, y_path, paths, **options, resume=False)
    metadata = [{k: v for k, v in meta.items() if k != "bad"} for meta in tracker.iter_metadata()]
    tracker.remove()
    return report, metadata


def create_vectorized_features(
    data_dir: Path | str,
    feature_version: int = 2,
    processes: int | None = None,
    progress: bool = True,
    resume: bool = True,
) -> list[SubsetReport]:
    """Vectorize train and test of ``data_dir`` in place and write metadata.csv beside them.

    Resumable: an interrupted run leaves ``X_<subset>.dat.progress.json`` (and the metadata of the
    rows written so far); the next run on the same inputs continues from there (``resume=False``:
    start afresh). Memory stays constant in the number of records: batches in flight are bounded,
    workers write with pwrite (a memory map of X would add every page written to the worker's
    resident set), metadata go to disk as rows complete and metadata.csv is written a chunk at a time.
    """
    data_dir = Path(data_dir)
    done = []
    for subset in SUBSETS:
        paths = raw_feature_paths(data_dir, subset)
        if not paths:
            continue
        report, tracker = vectorize_subset_resumable(
            data_dir / f"X_{subset}.dat",
            data_dir / f"y_{subset}.dat",
            paths,
            feature_version=feature_version,
            processes=processes,
            progress=progress,
            subset=subset,
            resume=resume,
        )
        done.append((report, tracker))
    if not done:
        raise FileNotFoundError(f"no train_features_*.jsonl or test_features.jsonl in {data_dir}")
    write_metadata_csv(data_dir / "metadata.csv", [(report.subset, tracker) for report, tracker in done])
    for _, tracker in done:
        tracker.remove()
    return [report for report, _ in done]


METADATA_CHUNK = 50_000


def write_metadata_csv(path: Path, subsets: list[tuple[str, SubsetProgress]]) -> None:
    """metadata.csv (index, sha256, appeared, label, avclass, subset), written a chunk at a time."""
    from vigil.files import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as out:
        offset, header = 0, True
        for subset, tracker in subsets:
            chunk: list[dict] = []
            for meta in tracker.iter_metadata():
                chunk.append(meta)
                if len(chunk) == METADATA_CHUNK:
                    offset = _write_metadata_chunk(out, chunk, subset, offset, header)
                    header, chunk = False, []
            if chunk or header:
                offset = _write_metadata_chunk(out, chunk, subset, offset, header)
                header = False


def _write_metadata_chunk(out, chunk: list[dict], subset: str, offset: int, header: bool) -> int:
    frame = pd.DataFrame(chunk, columns=["sha256", "appeared", "label", "avclass"])
    frame["subset"] = subset
    frame.index = pd.RangeIndex(offset, offset + len(frame))
    frame[METADATA_COLUMNS].to_csv(out, header=header)
    return offset + len(frame)


def vectorized_rows(data_dir: Path | str, subset: str, feature_version: int = 2) -> int:
    """Rows in X_<subset>.dat, checking that its size fits the feature version's width."""
    path = Path(data_dir) / f"X_{subset}.dat"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run `vigil ember vectorize {data_dir}` first")
    row_bytes = 4 * DIMS[feature_version]
    size = path.stat().st_size
    if size % row_bytes:
        raise ValueError(
            f"{path} is {size} bytes, not a whole number of feature-version-{feature_version} "
            f"rows ({row_bytes} bytes); was it vectorized with another --feature-version?"
        )
    return size // row_bytes


def read_vectorized(
    data_dir: Path | str, subset: str = "train", feature_version: int = 2
) -> tuple[np.ndarray, np.ndarray]:
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
