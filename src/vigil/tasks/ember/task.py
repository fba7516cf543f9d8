"""The EMBER task: the demo model, ``POST /predict/ember``, and the PE extraction its verbs share."""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import math
import os
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from vigil.boosting import process_threads
from vigil.errors import InvalidInput, UnprocessableInput
from vigil.tasks.base import PredictInput, Task
from vigil.tasks.ember.features import DIMS, FeatureExtractor
from vigil.tasks.ember.workers import (
    MAX_FILE_BYTES,
    MEMORY_BYTES,
    WorkerFailure,
    WorkerPool,
    extract_bytes,
    extract_file,
    oversized,
)
from vigil.tensors import check_matrix, json_number_rows

# The ember preset with fewer rounds (the demo set is tiny). num_leaves 16 instead of 2048 grows the
# same trees here (min_data_in_leaf 50 on ~400 rows allows at most 8 leaves) without LightGBM
# reserving a histogram for each of 2048 leaves (~2 GB); column-wise histograms because its automatic
# choice is several times slower with 2381 features and few rows.
FLOAT32_MAX = float(np.finfo(np.float32).max)
DEMO_TRAIN_OVERRIDES: dict[str, Any] = {"n_estimators": 200, "num_leaves": 16, "force_col_wise": True}


def model_scores(loaded, vectors: np.ndarray, check_finite: bool = False) -> np.ndarray:
    """P(malicious) of vectors (model.scores: the compiled trees, the checked ONNX runtime or the
    classifier), imported where a prediction is made, so importing the task stays light."""
    from vigil.tasks.ember.model import scores

    return scores(loaded, vectors, check_finite)


def is_parsed_pe(raw: dict) -> bool:
    """False for ember's fallback record (LIEF could not read the file as PE)."""
    return bool(raw.get("header", {}).get("coff", {}).get("machine"))


_pool_lock = threading.Lock()
_pool: WorkerPool | None = None


def extraction_pool() -> WorkerPool:
    """This process's pool of extraction children (uploads and ``classify``), started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = WorkerPool(extract_bytes)
        return _pool


def _extract_or_422(content: bytes, feature_version: int, where: dict) -> tuple[dict, str | None]:
    """(raw record, note) of an uploaded file, read in a child process with a memory limit; a file
    that breaks or exhausts the extractor is the client's 422 (or 413 when too large), not a 500,
    and costs this one answer, not the server worker."""
    if len(content) > MAX_FILE_BYTES:
        raise InvalidInput(
            f"the file is {len(content)} bytes, over the limit of {MAX_FILE_BYTES} bytes per file",
            {**where, "bytes": len(content), "max_file_bytes": MAX_FILE_BYTES},
            status=413,
        )
    try:
        return extraction_pool().run((content, feature_version))
    except WorkerFailure as exc:
        raise UnprocessableInput(f"cannot extract features: {exc.reason}"[:300], where) from None


def truncation_note(raw: dict) -> str | None:
    """Why a file parsed as PE looks cut short: its sections claim more bytes than the file has, or
    its section table is missing. Such a file is still scored on what could be read (``pe`` true)."""
    if not is_parsed_pe(raw):
        return None
    sections = (raw.get("section") or {}).get("sections") or []
    size = (raw.get("general") or {}).get("size", 0)
    claimed = sum(int(s.get("size") or 0) for s in sections)
    if not sections:
        return "truncated: the PE headers parse but the file has no section table; PE blocks past the cut are empty"
    if claimed > size:
        return f"truncated: the sections claim {claimed} bytes of data but the file has {size}"
    return None


def _result(raw: dict, note: str | None, **fields) -> dict:
    result = {**fields, "sha256": raw["sha256"], "pe": is_parsed_pe(raw)}
    note = note or truncation_note(raw)
    if note:
        result["note"] = note
    return result


# -- extraction -------------------------------------------------------------------------------
def iter_input_files(paths: list[str]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"{path} is neither a file nor a folder")


@dataclass
class ExtractReport:
    """What ``extract_files`` did: records written, files skipped (with reasons), retries, notes."""

    files: int = 0
    written: int = 0
    skipped: list[str] = field(default_factory=list)  # "path: reason"
    retried: list[str] = field(default_factory=list)  # "path: how its first process died"
    notes: list[str] = field(default_factory=list)  # "path: why it got the fallback record"


def extract_files(
    paths: list[str],
    out,
    label: int = -1,
    feature_version: int = 2,
    processes: int | None = None,
    progress: bool = True,
    max_file_bytes: int = MAX_FILE_BYTES,
    memory_bytes: int = MEMORY_BYTES,
    timeout: float | None = None,
    say: Callable[[str], None] | None = None,
    job: Callable = extract_file,
) -> ExtractReport:
    """Write one raw JSON line per file to ``out`` as each file is done (so in completion order).

    Every file is read in a child process with ``memory_bytes`` of address space (see
    :mod:`vigil.tasks.ember.workers`); ``processes`` children work at once. A file over
    ``max_file_bytes`` is skipped with the reason, unread; a file whose child dies is reported
    through ``say`` and retried once in a fresh child, then skipped with the reason; a file that
    runs out of memory or time is skipped at once (it would again). The other files land either
    way. ``job`` is the function the children run per file (tests give one that dies).
    """
    from tqdm import tqdm

    say = say or (lambda message: None)
    files = [str(p) for p in iter_input_files(paths)]
    processes = max(1, processes or min(2, os.cpu_count() or 1))
    report = ExtractReport(files=len(files))
    pool = WorkerPool(job, memory_bytes=memory_bytes, max_idle=processes)

    def one(path: str) -> tuple[str, Any, str | None, str | None]:
        """(kind, record, note or reason, how the first process died or None); in a thread."""
        try:
            too_large = oversized(os.stat(path).st_size, max_file_bytes)
        except OSError as exc:
            return "skip", None, f"cannot read: {exc.strerror or exc}", None
        if too_large:
            return "skip", None, too_large, None
        first_death = None
        for _ in range(2):
            try:
                return (*pool.run((path, label, feature_version, max_file_bytes), timeout), first_death)
            except WorkerFailure as exc:
                if not exc.died or first_death is not None:
                    return "skip", None, exc.reason + (" (twice)" if first_death else ""), first_death
                first_death = exc.reason
        raise AssertionError("unreachable")

    bar = tqdm(total=len(files), desc="extracting", unit="file", disable=not progress, file=sys.stderr)

    def tell(message: str) -> None:
        with tqdm.external_write_mode(file=sys.stderr):
            say(message)

    threads = concurrent.futures.ThreadPoolExecutor(processes, thread_name_prefix="vigil-extract")
    try:
        pending: dict = {}
        queue = iter(files)
        while True:
            for path in itertools.islice(queue, 2 * processes - len(pending)):
                pending[threads.submit(one, path)] = path  # a few in flight, not a million futures
            if not pending:
                break
            done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                path = pending.pop(future)
                kind, record, message, first_death = future.result()
                if first_death:
                    report.retried.append(f"{path}: {first_death}")
                    tell(f"{path}: {first_death}; retried once in a fresh process")
                if kind == "record":
                    out.write(json.dumps(record) + "\n")
                    out.flush()  # a record written stays written, whatever happens next
                    report.written += 1
                    if message:
                        report.notes.append(f"{path}: {message}")
                        tell(f"note: {path}: {message}")
                else:
                    report.skipped.append(f"{path}: {message}")
                    tell(f"skipped {path}: {message}")
                bar.update(1)
    finally:
        threads.shutdown(wait=True, cancel_futures=True)
        bar.close()
        pool.close()
    return report


# -- the task ---------------------------------------------------------------------------------
class EmberTask(Task):
    name = "ember"
    slug = "ember"
    title = "Malware detection on Windows PE files (EMBER features, LightGBM)"
    row_cost = 1000.0  # µs per JSON vector (parsing 2,381 floats) or raw record; a PE file is one row
    tensor_input = True  # x-npy bodies and V2 infer: a (rows, 2381) matrix (2351 for feature version 1)
    ui_template, ui_label = "tasks/ember.html", "Malware"
    model_facts = ("demo", "data")  # the page warns when the model is the synthetic demo
    # tasks/ember/requests.py (pydantic, imported on first use): documents the JSON body; numpy checks it
    request_model = "vigil.tasks.ember.requests:REQUEST"

    # -- training ---------------------------------------------------------------------------
    def train_default(self, store, settings) -> dict:
        """The demo model: synthetic labelled records from the shipped real ones (not a detector)."""
        from vigil.tasks.ember.demo_data import write_demo_data
        from vigil.tasks.ember.model import train_and_save
        from vigil.tasks.ember.vectorize import create_vectorized_features

        with tempfile.TemporaryDirectory(prefix="vigil-ember-demo-") as folder:
            write_demo_data(folder, sample_dir=Path(settings.data_dir) / "ember")
            create_vectorized_features(folder, feature_version=2, processes=1, progress=False)
            return train_and_save(
                store,
                folder,
                feature_version=2,
                preset="ember",
                n_jobs=1,
                extra={"demo": True, "data": "synthetic demo set (vigil.tasks.ember.demo_data)"},
                **DEMO_TRAIN_OVERRIDES,
            )

    # -- serving ----------------------------------------------------------------------------
    def predict(self, loaded, request: PredictInput) -> dict:
        feature_version = int(loaded.feature_version or 2)
        threshold = loaded.decision_threshold()
        if request.tensor is not None:
            width, dim = request.tensor.shape[-1], DIMS[feature_version]
            if width != dim and request.content_type.endswith("json"):  # JSON vectors (json_tensor)
                raise UnprocessableInput(
                    f"vector 0 has {width} values; feature version {feature_version} needs {dim}",
                    {"index": 0, "length": width, "expected": dim},
                )
            # the values are checked by the scoring pass itself (one read of the matrix, not two)
            vectors = check_matrix(
                request.tensor, self.tensor_features(loaded), threads=process_threads(), finite=False
            )
            scores = model_scores(loaded, vectors, check_finite=True)
            results: list[dict[str, Any]] | None = None  # one record per vector, made with its answer below
            request.computed["vectors"] = vectors
        elif request.files:
            items = self._items_from_files(request.files, feature_version)
            scores = model_scores(loaded, loaded.model[0].transform([raw for _, raw, _ in items]))
            # name (and filename): what the client's disk called the file; field: the multipart form field
            results = [
                _result(
                    raw, note, name=request.filenames.get(key, key), filename=request.filenames.get(key, key), field=key
                )
                for key, raw, note in items
            ]
            request.computed["raws"] = [raw for _, raw, _ in items]
        elif request.json is not None and request.content_type != "application/octet-stream":
            vectors = self._vectors_from_json(request.json, feature_version, request.max_rows, request.body)
            scores = model_scores(loaded, vectors)
            results = None
            request.computed["vectors"] = vectors
        else:
            if not request.body:
                raise InvalidInput(
                    "request body is empty",
                    "send a PE file (application/octet-stream), a multipart upload, or a JSON list of feature vectors",
                )
            raw, note = _extract_or_422(request.body, feature_version, {"body": "application/octet-stream"})
            scores = model_scores(loaded, loaded.model[0].transform([raw]))
            results = [_result(raw, note)]
            request.computed["raws"] = [raw]
        scores = np.asarray(scores, dtype=np.float64)
        # Python floats and bools from numpy in one call each, not a numpy scalar per row (1,000 rows: ~1 ms)
        probabilities, flags = scores.tolist(), (scores >= threshold).tolist()
        if results is None:  # vectors: each record made whole in one pass (1,000 rows: ~0.15 ms less)
            results = [
                {"index": index, "probability": score, "malicious": malicious}
                for index, score, malicious in zip(itertools.count(), probabilities, flags)
            ]
        else:
            for result, score, malicious in zip(results, probabilities, flags):
                result["probability"] = score
                result["malicious"] = malicious
        return {
            "task": self.name,
            "model_version": loaded.version,
            "feature_version": feature_version,
            "threshold": threshold,
            "threshold_fpr": 0.01,
            "results": results,
        }

    def explain(self, loaded, request: PredictInput, result: dict, top: int) -> dict:
        """Each result's top reasons from LightGBM's contributions (tasks/ember/explain.py)."""
        from vigil.tasks.ember.explain import explain_results

        feature_version = int(result["feature_version"])
        raws = request.computed.get("raws")
        if raws is not None:
            vectors = loaded.model[0].transform(raws)
        else:
            vectors = request.computed["vectors"]
            rows = request.json.get("vectors") if isinstance(request.json, dict) else request.json
            raws = [row if isinstance(row, dict) else None for row in rows] if isinstance(rows, list) else None
        raws = raws if raws is not None else [None] * len(vectors)
        explain_results(loaded.model[-1], np.asarray(vectors), raws, result["results"], top, feature_version)
        return result

    def tensor_features(self, loaded) -> tuple[int, ...]:
        return (DIMS[int(loaded.feature_version or 2)],)

    def json_tensor(self, body: bytes) -> np.ndarray | None:
        # the widths request_schema accepts: feature version 2's (a v1 model's 2351 go the general way)
        return json_number_rows(body, DIMS[2], key="vectors")

    def predict_tensor(self, loaded, matrix, request: PredictInput) -> dict:
        """``probability`` (float64) and ``malicious`` (bool) per row of a feature-vector matrix."""
        vectors = check_matrix(matrix, self.tensor_features(loaded), threads=process_threads(), finite=False)
        threshold = loaded.decision_threshold()
        scores = model_scores(loaded, vectors, check_finite=True)
        return {"probability": scores, "malicious": scores >= threshold}

    @staticmethod
    def _items_from_files(files: dict[str, bytes], feature_version: int) -> list[tuple[str, dict, str | None]]:
        items = []
        for name, content in files.items():
            if not content:
                raise InvalidInput(f"uploaded file '{name}' is empty", {"file": name})
            items.append((name, *_extract_or_422(content, feature_version, {"file": name})))
        return items

    @staticmethod
    def _vectors_from_json(body: Any, feature_version: int, max_rows: int, raw_body: bytes = b"") -> np.ndarray:
        dim = DIMS[feature_version]
        rows = body.get("vectors") if isinstance(body, dict) else body
        if not isinstance(rows, list) or not rows:
            raise InvalidInput(
                'expected a non-empty JSON list of feature vectors (or {"vectors": [...]})', {"field": "vectors"}
            )
        if len(rows) > max_rows:
            raise InvalidInput(
                f"{len(rows)} vectors exceed the limit of {max_rows} per request",
                {"rows": len(rows), "max_rows": max_rows},
                status=413,
            )
        fast = EmberTask._numeric_matrix(rows, dim, raw_body)
        if fast is not None:
            return check_matrix(fast, (dim,), threads=process_threads())
        # value by value (raw records, or a body with a fault to name exactly)
        matrix = np.empty((len(rows), dim), dtype=np.float32)
        extractor = FeatureExtractor(feature_version)
        for index, row in enumerate(rows):
            if isinstance(row, dict):  # an ember raw record (one line of a *_features.jsonl file)
                matrix[index] = EmberTask._vector_from_raw(extractor, row, index)
                continue
            if not isinstance(row, list):
                raise InvalidInput(f"vector {index} is not a list of numbers or a raw record", {"index": index})
            if len(row) != dim:
                raise UnprocessableInput(
                    f"vector {index} has {len(row)} values; feature version {feature_version} needs {dim}",
                    {"index": index, "length": len(row), "expected": dim},
                )
            for position, value in enumerate(row):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise InvalidInput(
                        f"vector {index}, value {position} is not a number",
                        {"index": index, "position": position, "value": repr(value)[:40]},
                    )
                if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
                    raise UnprocessableInput(
                        f"vector {index}, value {position} is not a finite float32",
                        {"index": index, "position": position},
                    )
            matrix[index] = row
        return matrix

    @staticmethod
    def _numeric_matrix(rows: list, dim: int, raw_body: bytes) -> np.ndarray | None:
        """The parsed rows as one numeric (n, dim) array, converted by numpy in C, or None where
        the value-by-value path must look: ragged rows, a raw record, a string, a huge integer (numpy
        makes these an error, an object or a text array), or a body with ``true``/``false`` in it
        (numpy would read a bool as 1.0, which the per-value check refuses); without the body's bytes
        (a caller that parsed it itself) it cannot tell, so None."""
        if not raw_body or b"true" in raw_body or b"false" in raw_body:
            return None
        try:
            array = np.asarray(rows)
        except (ValueError, TypeError, OverflowError):
            return None
        if array.ndim != 2 or array.shape[1] != dim or array.dtype.kind not in "fiu":
            return None
        return array.astype(np.float64, copy=False)  # ints as Python gives them to float32: via a double

    @staticmethod
    def _vector_from_raw(extractor: FeatureExtractor, record: dict, index: int) -> np.ndarray:
        from vigil.tasks.ember.vectorize import vectorize_record

        try:
            vector, _, _ = vectorize_record(extractor, json.dumps(record))
        except ValueError as exc:
            raise UnprocessableInput(f"raw record {index} cannot be vectorized: {exc}", {"index": index}) from None
        if not np.isfinite(vector).all():
            position = int(np.flatnonzero(~np.isfinite(vector))[0])
            raise UnprocessableInput(
                f"raw record {index} gives a non-finite value at position {position}",
                {"index": index, "position": position},
            )
        return vector

    def example_request(self) -> Any:
        return [[0.0] * DIMS[2]]
