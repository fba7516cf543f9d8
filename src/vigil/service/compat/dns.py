"""The DNS routes: ``POST /predict/dns`` (a DNS-specific shape: names and CIC rows, model choice),
``GET /dns/streams`` and ``GET /dns/domains``.

A running ``vigil dns stream`` saves every dynamic model (its starting copy of the static model and
each retrain) under the artifact key ``dns_exfil_dynamic`` and refreshes a heartbeat file in the model
store (``models/dns_exfil_streams/<group>.<consumer>.json``) every few seconds. While some heartbeat
says "running" and is younger than two minutes, this route answers from the newest dynamic version
(the registry loads it once per version through the artifact store, hash-checked like every model:
:meth:`~vigil.service.registry.ModelRegistry.artifact`); otherwise from the static model the registry
holds. The answer's ``model`` field says which one was used. ``GET /dns/streams`` lists the live
streams; ``GET /dns/streams/windows`` adds each one's newest windows (static vs dynamic F1, retrains),
read-only from its results.sqlite, for the browser's live view.

With 20 names or more (or ``?domains=1``) the answer has ``domains``: per registered domain, the
verdict of a per-domain detector that saw only this request (see
:mod:`vigil.tasks.dns_exfil.domains`). ``GET /dns/domains`` lists the domains that running streams
have flagged (their state, as each stream's heartbeat carries it: the newest 50 per consumer), with
rule, evidence and reasons; it never holds a request's verdicts. ``?explain=N`` adds to every query
result its N strongest reasons from the model's own contributions; flagged queries carry their 3
strongest reasons in any case (:mod:`vigil.tasks.dns_exfil.explain`).

Query names are answered by default from the real-traffic per-query model (artifact key
``dns_exfil_query``, trained on real tunnel captures and real benign names) when the store holds one;
``?model=cic``, or a request made only of CIC feature rows, takes the CIC path above; in a request
mixing names and feature rows, the rows are answered by the CIC path (per-field validation included).

The static route ``/predict/dns`` takes precedence over the generic ``/predict/<slug>``.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from vigil.errors import ModelNotAvailable
from vigil.service.api import spec
from vigil.service.predict import run_prediction
from vigil.tasks import get_task
from vigil.tasks.dns_exfil import (
    DYNAMIC_TASK,
    QUERY_TASK,
    TASK_NAME,
    is_feature_row,
    live_stream_status,
    with_rows_model,
)

bp = Blueprint("dns", __name__)


def _latest_model(_store, task: str):
    return current_app.extensions["vigil.registry"].artifact(task)


def _only_feature_rows() -> bool:
    body = request.get_json(silent=True)
    if isinstance(body, dict):
        return bool(body.get("rows")) and not body.get("queries") and "query" not in body
    return isinstance(body, list) and bool(body) and all(isinstance(i, dict) and "query" not in i for i in body)


def _has_feature_rows() -> bool:
    body = request.get_json(silent=True)
    items = (body.get("rows") or []) if isinstance(body, dict) else body if isinstance(body, list) else []
    return isinstance(items, list) and any(is_feature_row(i) for i in items)


def current_model():
    store = current_app.extensions["vigil.store"]
    if request.args.get("model") != "cic" and not _only_feature_rows():
        query_model = _latest_model(store, QUERY_TASK)
        if query_model is not None:
            # names: the real-traffic model; feature rows of the same request: the CIC path below
            return with_rows_model(query_model, _rows_model(store) if _has_feature_rows() else None)
    return _cic_model(store)


def _rows_model(store):
    try:
        return _cic_model(store)
    except ModelNotAvailable:  # the names are still answered; each row is validated, then refused
        return None


def _cic_model(store):
    if live_stream_status(store):
        dynamic = _latest_model(store, DYNAMIC_TASK)
        if dynamic is not None:
            return dynamic
    return current_app.extensions["vigil.registry"].get(TASK_NAME)


@bp.post("/predict/dns")
@spec(
    summary="Is this DNS query name smuggling data out? (the live stream's dynamic model, else the static one)",
    description=(
        'JSON `{"queries": [...], "rows": [...]}` or a list of names and feature rows, or '
        "text/plain with one name per line. Bad items are listed under `errors` and the good ones "
        "answered. More than VIGIL_MAX_ROWS items, or more than the DNS row cost allows under "
        "VIGIL_PREDICT_COST_BUDGET_S, is 413."
    ),
    body=lambda: get_task(TASK_NAME).request_schema(),
    example=lambda: get_task(TASK_NAME).example_request(),
    content_types=("application/json", "text/plain"),
    # The task checks each item itself (tasks/dns_exfil/task.py featurize_items): it answers the good
    # names and rows and names the bad ones by index and field, which a whole-body 422 cannot do.
    validate=False,
    tags=["predict"],
)
def predict_dns():
    # Through run_prediction, like every /predict route: time limit, model version, metrics.
    return jsonify(run_prediction(TASK_NAME, loaded=current_model()))


@bp.get("/dns/streams")
@spec(summary="Live DNS streams and the newest dynamic model version", tags=["predict"])
def streams():
    store = current_app.extensions["vigil.store"]
    entry = store.latest_entry(DYNAMIC_TASK)
    return jsonify({"live": live_stream_status(store), "dynamic_version": entry["version"] if entry else None})


@bp.get("/dns/domains")
@spec(summary="Registered domains the running DNS streams have flagged, with their evidence", tags=["predict"])
def domains():
    store = current_app.extensions["vigil.store"]
    flagged = []
    for stream in live_stream_status(store):
        for alert in stream.get("flagged_domains") or []:
            flagged.append({**alert, "consumer": stream.get("consumer_id")})
    flagged.sort(key=lambda a: a.get("at") or 0.0)
    return jsonify(
        {
            "source": "running streams (vigil dns stream): each one's newest flagged domains",
            "streams": len(live_stream_status(store)),
            "domains": flagged,
        }
    )


def _stream_windows(record: dict, work_dir, limit: int) -> list[dict]:
    """The newest ``limit`` windows of one live stream, read-only from its results.sqlite: the folder
    its heartbeat names (``results``), else `vigil dns stream`'s default under the work folder."""
    import sqlite3
    from pathlib import Path

    from vigil.streaming.consumer import run_key_for, safe_name
    from vigil.streaming.results import WINDOW_COLUMNS

    topic, group = str(record.get("topic", "")), str(record.get("group", ""))
    folder = record.get("results") or Path(work_dir) / "dns" / "stream" / safe_name(f"{topic}-{group}")
    path = Path(folder) / "results.sqlite"
    if not path.is_file():
        return []
    wanted = [c for c in WINDOW_COLUMNS if c not in ("offsets", "run_key")]
    run_key = run_key_for(str(record.get("bootstrap_servers", "")), topic, group)
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute(
                f"SELECT {', '.join(wanted)} FROM windows WHERE run_key=? ORDER BY window_index DESC LIMIT ?",
                (run_key, limit),
            ).fetchall()
    except sqlite3.Error:  # being created, or locked for longer than the timeout: no windows this time
        return []
    return [dict(zip(wanted, row)) for row in reversed(rows)]


@bp.get("/dns/streams/windows")
@spec(
    summary="Live DNS streams with their newest windows (static vs dynamic F1, retrains), for the live view",
    tags=["predict"],
)
def stream_windows():
    store = current_app.extensions["vigil.store"]
    work_dir = current_app.config["VIGIL_SETTINGS"].work_dir
    try:
        limit = max(1, min(1000, int(request.args.get("limit", 200))))
    except ValueError:
        limit = 200
    streams = []
    for record in live_stream_status(store):
        shown = {k: record.get(k) for k in ("consumer_id", "topic", "group", "dynamic_version", "static_version")}
        flagged = (record.get("flagged_domains") or [])[-20:]
        streams.append({**shown, "windows": _stream_windows(record, work_dir, limit), "flagged_domains": flagged})
    return jsonify({"streams": streams})
