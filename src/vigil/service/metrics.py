"""Prometheus metrics (``GET /metrics``), summed across gunicorn workers.

Gunicorn's config points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the workers
import prometheus_client, so every worker writes its samples to memory-mapped files there and
``/metrics`` (served by whichever worker) aggregates them all. Without gunicorn (tests, the
Flask dev server) the process's default registry is served.

Tasks expose prediction scores by putting a number under ``score`` (or ``probability``,
``anomaly_score``) in each record of their response, or a ``scores`` list; see :func:`extract_scores`.
"""

from __future__ import annotations

import numbers
from pathlib import Path

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
LIST_KEYS = ("scores", "probabilities")
RECORD_LIST_KEYS = ("predictions", "results", "records", "outputs")
MAX_OBSERVED_SCORES = 1000  # per request: observing 100k values would cost more than the prediction


def _number(value) -> float | None:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None


def extract_scores(result) -> list[float]:
    """Numeric scores found in a prediction response (generic: see the module docstring)."""
    if isinstance(result, dict):
        for key in LIST_KEYS:
            values = result.get(key)
            if isinstance(values, list):
                return [v for v in map(_number, values) if v is not None]
        for key in RECORD_LIST_KEYS:
            if isinstance(result.get(key), list):
                return extract_scores(result[key])
        for key in SCORE_KEYS:
            value = _number(result.get(key))
            if value is not None:
                return [value]
        return []
    if isinstance(result, list):
        scores = []
        for item in result:
            if isinstance(item, dict):
                for key in SCORE_KEYS:
                    value = _number(item.get(key))
                    if value is not None:
                        scores.append(value)
                        break
        return scores
    return []


def observe_prediction(task: str, version: str, rows: int, result) -> None:
    ROWS.labels(task, version).observe(rows)
    scores = extract_scores(result)
    step = max(1, len(scores) // MAX_OBSERVED_SCORES)
    histogram = SCORES.labels(task, version)
    for score in scores[::step]:
        histogram.observe(score)


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
@spec(summary="Prometheus metrics, summed over all gunicorn workers", tags=["metrics"],
      produces=CONTENT_TYPE_LATEST.split(";")[0])
def metrics():
    folder = _multiprocess_dir()
    if folder is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(folder))
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
