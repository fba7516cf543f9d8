"""DNS exfiltration: is this query name smuggling data out? (CIC-Bell-DNS-EXF-2021 features.)

This module holds the Task (``POST /predict/dns``, the default model) and which model answers.
The verbs ``vigil dns generate``, ``train``, ``evaluate-real`` and ``demo`` are in :mod:`.cli`; the
Kafka verbs (``produce``, ``stream``, ``broker``) are the streaming layer's generic ones
(:mod:`vigil.streaming.cli`), which the registry mounts under the same group and which score the
windows with :meth:`DnsExfilTask.window_processor` (:mod:`.stream`), so this package never imports
the streaming layer.

A running stream saves each dynamic model under the artifact key :data:`DYNAMIC_TASK` and keeps a
heartbeat file in the store (:func:`live_stream_status`); ``POST /predict/dns`` answers from the newest
dynamic model while a heartbeat is fresh, else from the static one.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vigil.artifacts import ArtifactStore, LoadedModel, data_fingerprint
from vigil.config import Settings
from vigil.errors import InvalidInput, VigilError
from vigil.tasks.base import PredictInput, Task
from vigil.tasks.dns_exfil.features import (
    FEATURE_COLUMNS,
    FEATURE_VERSION,
    QueryFeatureExtractor,
    coerce_csv_value,
    normalize_query,
    parse_query_name,
)

TASK_NAME = "dns_exfil"
DYNAMIC_TASK = "dns_exfil_dynamic"
QUERY_TASK = "dns_exfil_query"  # the real-traffic per-query model (query_model.py), served by default
STREAMS_FOLDER = "dns_exfil_streams"
HEARTBEAT_FRESH_S = 120.0
DEFAULT_SELECTION, DEFAULT_ALGORITHM = "tree_importance", "lightgbm"
CHUNK_ROWS = 256  # names featurized between two deadline checks (a few hundredths of a second)


# -- which model answers: static, or the dynamic one of a live stream ------------------------------
def stream_status_path(store: ArtifactStore, consumer_id: str) -> Path:
    return store.root / STREAMS_FOLDER / f"{consumer_id}.json"


def write_stream_status(store: ArtifactStore, consumer_id: str, state: str, **fields) -> None:
    """The stream's heartbeat: written at start, every 2 s between polls, after a window when the last
    one is a second old, and at exit."""
    path = stream_status_path(store, consumer_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "consumer_id": consumer_id,
        "state": state,
        "heartbeat_at": time.time(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        **fields,
    }
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def live_stream_status(store: ArtifactStore, fresh_s: float = HEARTBEAT_FRESH_S) -> list[dict]:
    """Streams whose state is "running" and whose heartbeat is younger than ``fresh_s`` seconds."""
    folder = store.root / STREAMS_FOLDER
    live = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("state") == "running" and time.time() - float(record.get("heartbeat_at", 0)) < fresh_s:
            live.append(record)
    return live


# -- request parsing -----------------------------------------------------------------------------
def _feature_row(record: dict, index: int) -> list[float]:
    row = []
    for column in FEATURE_COLUMNS:
        if column not in record:
            raise InvalidInput(f"record {index} lacks feature '{column}'", {"index": index, "field": column})
        try:
            row.append(coerce_csv_value(column, record[column]))
        except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: an integer beyond float range
            raise InvalidInput(f"record {index} field '{column}': {exc}", {"index": index, "field": column}) from exc
    return row


def parse_items(request: PredictInput) -> list:
    """Query names (strings, or objects with ``query``) and/or feature rows, from JSON or plain text."""
    body = request.json
    if body is None:
        text = request.body.decode("utf-8", errors="replace")
        items: list = [line.strip() for line in text.splitlines() if line.strip()]
    elif isinstance(body, dict) and ("queries" in body or "rows" in body):
        items = list(body.get("queries") or []) + list(body.get("rows") or [])
    elif isinstance(body, dict) and "query" in body:
        items = [body]
    elif isinstance(body, list):
        items = body
    else:
        raise InvalidInput(
            'expected {"queries": [...]} or {"rows": [...]}, a list, or one name per line', {"got": type(body).__name__}
        )
    if not items:
        raise InvalidInput("no query names or feature rows in the request")
    if len(items) > request.max_rows:
        raise VigilError(
            f"{len(items)} items exceed the limit of {request.max_rows} per request",
            {"rows": len(items), "max_rows": request.max_rows},
            status=413,
        )
    return items


def is_feature_row(item) -> bool:
    """A CIC feature row (an object without ``query``), as opposed to a query name."""
    return isinstance(item, dict) and "query" not in item


def featurize_items(
    items: list,
    extractor: QueryFeatureExtractor | None = None,
    columns: list[str] | None = None,
    indexes: list[int] | None = None,
    request: PredictInput | None = None,
):
    """Feature matrix of the good items, their indexes and queries, and per-item errors for the bad.

    ``columns`` are the model's (the CIC 14 by default; the real-traffic model's 24 take query names
    only, since a CIC feature row lacks its extra columns: such a row is still validated field by
    field, then refused). A query comes back in presentation form. ``indexes`` are the items'
    positions in the request (default 0, 1, ...), used in results and errors. With ``request``, the
    items are taken in chunks and its deadline is checked between them.
    """
    columns = list(columns or FEATURE_COLUMNS)
    cic_only = set(columns) <= set(FEATURE_COLUMNS)
    extractor = extractor or (QueryFeatureExtractor() if cic_only else QueryFeatureExtractor.real())
    indexes = list(range(len(items))) if indexes is None else list(indexes)
    rows, good, queries, errors = [], [], [], []
    for _, (index, item) in (request or PredictInput()).each(list(zip(indexes, items)), every=CHUNK_ROWS):
        try:
            if isinstance(item, str) or (isinstance(item, dict) and "query" in item):
                raw = item if isinstance(item, str) else item["query"]
                name = parse_query_name(raw)
                query = normalize_query(name)
                features = extractor.features(name)  # once per name, not once per column
                row = [features[c] for c in columns]
            elif isinstance(item, dict):
                query = None
                row = _feature_row(item, index)  # names the bad field, whichever model answers
                if not cic_only:
                    raise InvalidInput(
                        f"record {index} is a CIC feature row: the real-traffic model scores query "
                        "names; send the name, or ask the CIC model with ?model=cic",
                        {"index": index, "field": None},
                    )
            else:
                raise InvalidInput(
                    f"record {index} is neither a query name nor a feature row", {"index": index, "field": None}
                )
        except InvalidInput as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {}
            # "message": the per-record error shape of every task; "error" kept for existing clients
            errors.append({"index": index, "field": None, **detail, "message": exc.error, "error": exc.error})
            continue
        except ValueError as exc:
            errors.append({"index": index, "field": "query", "message": str(exc), "error": str(exc)})
            continue
        rows.append(row)
        good.append(index)
        queries.append(query)
    import pandas as pd

    frame = pd.DataFrame(np.asarray(rows, dtype=float).reshape(-1, len(columns)), columns=columns)
    return frame, good, queries, errors


@dataclass(frozen=True)
class NamesAndRowsModel(LoadedModel):
    """The real-traffic model (``model``, ``entry``) with the CIC model for the feature rows."""

    rows_model: LoadedModel | None = None


def with_rows_model(names_model: LoadedModel, rows_model: LoadedModel | None) -> LoadedModel:
    """The real-traffic model answering a request's query names, carrying the CIC model (static, or
    the dynamic one of a live stream) that answers the CIC feature rows of the same request."""
    if rows_model is None:
        return names_model
    return NamesAndRowsModel(
        model=names_model.model,
        entry=names_model.entry,
        sidecars=names_model.sidecars,
        cache=names_model.cache,
        long_lived=names_model.long_lived,
        rows_model=rows_model,
    )


def _model_info(loaded: LoadedModel) -> dict:
    return {"task": loaded.task, "version": loaded.version, "kind": loaded.entry.get("extra", {}).get("kind", "static")}


class DnsExfilTask(Task):
    name = TASK_NAME
    slug = "dns"
    title = "DNS exfiltration: is this query name smuggling data out?"
    request_model = "vigil.tasks.dns_exfil.requests:REQUEST"  # names and/or CIC rows (pydantic on first use)
    ui_template, ui_label = "tasks/dns.html", "DNS"
    row_cost = 200.0  # µs per item: a name is featurized in Python (60 µs typical, 250 for 253 characters)
    stream_defaults = {
        "topic": "ml-raw-dns",
        "group": "vigil-dns",
        "help": "consume windows of 1,000, score static and dynamic, retrain on drift, flag tunnel domains",
    }

    # -- streaming ---------------------------------------------------------------------------------
    def window_processor(self, store, consumer_id, policy=None, stream_info=None):
        """The stream's windows (:class:`~vigil.tasks.dns_exfil.stream.DnsWindowProcessor`), scored
        by the static model (the newest ``dns_exfil``) against the dynamic one it keeps retraining
        (the arguments are :meth:`Task.window_processor`'s)."""
        from vigil.tasks.dns_exfil.stream import DnsWindowProcessor

        static = store.load(TASK_NAME)
        return DnsWindowProcessor(store, static, consumer_id, policy, stream_info=stream_info)

    # -- training ----------------------------------------------------------------------------------
    def train_default(self, store: ArtifactStore, settings: Settings) -> dict:
        from sklearn.model_selection import train_test_split

        from vigil.tasks.dns_exfil.generate import STATIC_PHASE, QueryGenerator, cic_rows
        from vigil.tasks.dns_exfil.model import cic_frame_to_features, make_pipeline, predict_proba, scores

        generator = QueryGenerator(seed=7, data_dir=settings.data_dir / "dns_exfil")
        names, labels = generator.queries(STATIC_PHASE, 8_000)
        frame = cic_rows(names, labels)
        X, y = cic_frame_to_features(frame), labels
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
        held_out = make_pipeline(DEFAULT_SELECTION, DEFAULT_ALGORITHM).fit(X_train, y_train)
        metrics = scores(y_test, predict_proba(held_out, X_test))
        pipeline = make_pipeline(DEFAULT_SELECTION, DEFAULT_ALGORITHM).fit(X, y)
        if (settings.data_dir / "dns_exfil" / "captures.csv.gz").is_file():
            # The served default for query names: real tool captures + real benign names.
            from vigil.tasks.dns_exfil.query_model import train_query_model

            train_query_model(store)
        return store.save(
            self.name,
            pipeline,
            metrics=metrics,
            threshold=0.5,
            feature_version=FEATURE_VERSION,
            data_fingerprint=data_fingerprint(X, y),
            extra={
                "kind": "static",
                "selection": DEFAULT_SELECTION,
                "algorithm": DEFAULT_ALGORITHM,
                "training_rows": len(y),
                "data": "generated: 8,000 rows, seed 7",
            },
        )

    # -- serving -----------------------------------------------------------------------------------
    def predict(self, loaded: LoadedModel, request: PredictInput) -> dict:
        """Query names from ``loaded``; CIC feature rows from the model it carries for rows
        (:func:`with_rows_model`) when it is the real-traffic model, each row validated per field."""
        from vigil.tasks.dns_exfil.domains import request_domains
        from vigil.tasks.dns_exfil.explain import explain_rows, explain_top
        from vigil.tasks.dns_exfil.model import feature_columns, predict_proba

        items = parse_items(request)
        rows_loaded = getattr(loaded, "rows_model", None)
        parts = [(loaded, list(range(len(items))))]
        if rows_loaded is not None:
            row_indexes = [i for i, item in enumerate(items) if is_feature_row(item)]
            parts = [
                (loaded, [i for i in range(len(items)) if not is_feature_row(items[i])]),
                (rows_loaded, row_indexes),
            ]
        scored, errors = [], []
        for part_loaded, indexes in parts:
            if not indexes:
                continue
            pipeline = part_loaded.model
            frame, good, queries, part_errors = featurize_items(
                [items[i] for i in indexes],
                columns=feature_columns(pipeline),
                indexes=indexes,
                request=request,
            )
            errors += part_errors
            if good:
                threshold = part_loaded.decision_threshold()
                probabilities = predict_proba(pipeline, frame, compiled=part_loaded.long_lived)
                why = explain_rows(pipeline, frame, probabilities >= threshold, explain_top(request.args))
                for index, query, p, reasons in zip(good, queries, probabilities, why):
                    scored.append((index, query, float(p), threshold, part_loaded, reasons))
        if not scored:
            raise InvalidInput("no valid query name or feature row in the request", {"errors": errors[:20]})
        results = []
        for index, query, p, threshold, part_loaded, reasons in sorted(scored, key=lambda r: r[0]):
            result = {"index": index}
            if query is not None:
                result["query"] = query
            result.update(
                {
                    "probability": round(p, 6),
                    "is_exfiltration": bool(p >= threshold),
                    "decision": "exfiltration" if p >= threshold else "benign",
                }
            )
            if reasons:  # the model's own contributions (tasks/dns_exfil/explain.py)
                result["reasons"] = reasons
            if part_loaded is not loaded:
                result["model"] = part_loaded.task
            results.append(result)
        answer = {
            "model": _model_info(loaded),
            "threshold": loaded.decision_threshold(),
            "results": results,
            "errors": sorted(errors, key=lambda e: e["index"]),
        }
        domains = request_domains(items, request.args)  # per registered domain (domains.py)
        if domains is not None:
            answer["domains"] = domains
        if rows_loaded is not None and any(r.get("model") for r in results):
            answer["rows_model"] = {
                **_model_info(rows_loaded),
                "threshold": rows_loaded.decision_threshold(),
            }
        return answer

    def explain(self, loaded: LoadedModel, request: PredictInput, result, top: int):
        """``?explain=N``: :meth:`predict` already gave every query its N strongest reasons (from the
        same contributions it scored with, tasks/dns_exfil/explain.py), so the answer is as it is."""
        return result

    def message_key(self, value: bytes) -> bytes | None:
        """The registered domain of a ``{"query": ...}`` message (``a1b2.t.example.co.uk`` ->
        ``example.co.uk``): every name of a domain then goes to one partition, so the one consumer
        reading it holds all of that domain's evidence (with names spread over the consumers, each
        would see a share and flag later, or never). None for a CIC row or an unreadable message."""
        from vigil.messages import lenient_message
        from vigil.tasks.dns_exfil.domains import split_name
        from vigil.windows import RejectedMessage

        try:
            obj = lenient_message(value)
            query = obj.get("query") if isinstance(obj, dict) else None
            return split_name(query)[0].encode() if isinstance(query, str) else None
        except (RejectedMessage, ValueError):
            return None

    def example_request(self) -> dict:
        return {
            "queries": [
                "www.wikipedia.org",
                "mzxw6ytboi3tmnzyhe2dqojqgeztgnbvgy3tqobzge4dmnzxgq.0.1f3a.tunnel-relay.net",
            ]
        }


__all__ = [
    "DnsExfilTask",
    "TASK_NAME",
    "DYNAMIC_TASK",
    "QUERY_TASK",
    "live_stream_status",
    "write_stream_status",
    "featurize_items",
    "is_feature_row",
    "with_rows_model",
]
