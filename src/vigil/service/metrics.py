"""Prometheus metrics (``GET /metrics``), summed across gunicorn workers.

Gunicorn's config points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the workers
import prometheus_client, so every worker writes its samples to memory-mapped files there and
``/metrics`` (served by whichever worker) aggregates them all. Without gunicorn (tests, the
Flask dev server) the process's default registry is served.

Tasks expose prediction scores by putting a number under ``score`` (or ``probability``,
``anomaly_score``) in each record of their response, or a ``scores`` list (a numpy array under those
keys too, as the V2 routes' tensor answers have it); see :func:`extract_scores`. At most ~1,000
scores a request are observed, evenly strided over its records, in one call per bucket.
"""

from __future__ import annotations

import itertools
import numbers
from pathlib import Path

import numpy as np
from flask import Blueprint, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from vigil.service.api import spec

bp = Blueprint("metrics", __name__)

REQUESTS = Counter(
    "vigil_requests",
    "HTTP requests answered, by route, method, status, task and model version",
    ["endpoint", "method", "status", "task", "model_version"],
)
ERRORS = Counter(
    "vigil_request_errors",
    "HTTP requests answered with a 4xx or 5xx status",
    ["endpoint", "status", "task", "model_version"],
)
LATENCY = Histogram(
    "vigil_request_duration_seconds",
    "Time from the request reaching Flask to the response leaving it",
    ["endpoint", "task", "model_version"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ROWS = Histogram(
    "vigil_prediction_rows",
    "Records per prediction request",
    ["task", "model_version"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 500, 1000, 5000, 10_000, 50_000, 100_000),
)
SCORES = Histogram(
    "vigil_prediction_score",
    "Distribution of the scores a model returned (probability of the positive class or anomaly score)",
    ["task", "model_version"],
    buckets=tuple(round(0.05 * i, 2) for i in range(21)),
)
TIMEOUTS = Counter(
    "vigil_prediction_timeouts",
    "Predictions past VIGIL_PREDICT_TIMEOUT_S, by outcome: stopped (at a chunk boundary) or "
    "finished_late (work that cannot be cut ran to its end; its result was dropped)",
    ["task", "outcome"],
)

SCORE_KEYS = ("score", "probability", "proba", "anomaly_score", "malicious_probability")
_SCORE_KEY_SET = frozenset(SCORE_KEYS)
LIST_KEYS = ("scores", "probabilities")
RECORD_LIST_KEYS = ("predictions", "results", "records", "outputs")
MAX_OBSERVED_SCORES = 1000  # per request, evenly strided: looking at 100k records would cost more than the prediction


def _number(value) -> float | None:
    if type(value) is float:  # what answers hold nearly always: no abstract-class check (1,000 rows: ~1 ms)
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None


def _stride(count: int, limit: int) -> int:
    return max(1, count // limit) if limit > 0 else 1


def _array_scores(values: np.ndarray, limit: int) -> list[float]:
    values = values.ravel()
    if values.dtype.kind not in "fiu":
        return []
    return values[:: _stride(len(values), limit)].astype(np.float64).tolist()


def extract_scores(result, limit: int = MAX_OBSERVED_SCORES) -> list[float]:
    """Numeric scores found in a prediction response (generic: see the module docstring), evenly
    strided down to about ``limit`` (every ``len // limit``-th record, as the histogram takes them),
    so a 100,000-record answer costs a look at ~1,000 of its records, not all of them. A numpy array
    under a score or list key (a tensor answer: ``{"outputs": {"probability": array}}``) is taken
    as is."""
    if isinstance(result, dict):
        for key in LIST_KEYS:
            values = result.get(key)
            if isinstance(values, list):
                return [v for v in map(_number, values[:: _stride(len(values), limit)]) if v is not None]
            if isinstance(values, np.ndarray):
                return _array_scores(values, limit)
        for key in RECORD_LIST_KEYS:
            if isinstance(result.get(key), (list, dict)):
                return extract_scores(result[key], limit)
        for key in SCORE_KEYS:
            value = result.get(key)
            if isinstance(value, np.ndarray):
                return _array_scores(value, limit)
            value = _number(value)
            if value is not None:
                return [value]
        return []
    if isinstance(result, list):
        sampled = result[:: _stride(len(result), limit)]
        if set(map(type, sampled)) == {dict}:
            keys = set(itertools.chain.from_iterable(map(dict.keys, sampled)))
            if _SCORE_KEY_SET.isdisjoint(keys):
                return []  # records without a score (labels only, ML-PT's answer): one C-level look
            # the first score key any record has; where every record holds a float under it, each
            # record's first numeric score is that float (no record has an earlier key): C-level too
            key = next(key for key in SCORE_KEYS if key in keys)
            values = list(map(dict.get, sampled, itertools.repeat(key)))
            if set(map(type, values)) == {float}:
                return values
        scores = []
        for item in sampled:
            if isinstance(item, dict):
                for key in SCORE_KEYS:
                    value = _number(item.get(key))
                    if value is not None:
                        scores.append(value)
                        break
        return scores
    return []


def observe_many(histogram, values: list[float]) -> None:
    """``histogram.observe(v)`` for every value, in ~one call per bucket instead of one per value:
    each value goes to the first bucket whose upper bound is >= it (``observe``'s rule; NaN to none),
    the sum grows by their total. Falls back to observing one by one if prometheus_client's
    Histogram internals (``_upper_bounds``, ``_buckets``, ``_sum``; 0.26) are not there."""
    bounds, buckets, total = (getattr(histogram, name, None) for name in ("_upper_bounds", "_buckets", "_sum"))
    if not values:
        return
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    array = np.asarray(values, dtype=np.float64)
    counts = np.bincount(
        np.searchsorted(np.asarray(bounds, dtype=np.float64), array, side="left"), minlength=len(bounds) + 1
    )[: len(bounds)]
    total.inc(float(array.sum()))
    for index in np.flatnonzero(counts):
        buckets[index].inc(int(counts[index]))


def observe_prediction(task: str, version: str, rows: int, result) -> None:
    ROWS.labels(task, version).observe(rows)
    observe_many(SCORES.labels(task, version), extract_scores(result))


def observe_timeout(task: str, outcome: str) -> None:
    TIMEOUTS.labels(task, outcome).inc()


def observe_request(endpoint: str, method: str, status: int, task: str, version: str, seconds: float) -> None:
    REQUESTS.labels(endpoint, method, str(status), task, version).inc()
    if status >= 400:
        ERRORS.labels(endpoint, str(status), task, version).inc()
    LATENCY.labels(endpoint, task, version).observe(seconds)


def _multiprocess_dir() -> Path | None:
    runtime_dir = current_app.config["VIGIL_SETTINGS"].runtime_dir
    folder = runtime_dir / "prometheus" if runtime_dir else None
    return folder if folder is not None and folder.is_dir() else None


@bp.get("/metrics")
@spec(
    summary="Request and prediction metrics for Prometheus, all workers together",
    tags=["metrics"],
    produces=CONTENT_TYPE_LATEST.split(";")[0],
)
def metrics():
    folder = _multiprocess_dir()
    if folder is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(folder))
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
