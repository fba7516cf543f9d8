"""``POST /predict/<slug>`` for every task, through the task interface.

Other blueprints that answer predictions in another shape (ML-PT's root ``/predict``) call
:func:`run_prediction` too, so they get the same limits, time limit, metrics and model version.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import logging
import threading

from flask import Blueprint, current_app, g, jsonify, request

from vigil.errors import UnprocessableInput, VigilError
from vigil.service import metrics
from vigil.service.api import spec
from vigil.service.validation import count_rows, is_json_mimetype, parse_json
from vigil.tasks import PredictInput, all_tasks, get_task

bp = Blueprint("predict", __name__)
log = logging.getLogger("vigil.service")

PREDICT_CONTENT_TYPES = (
    "application/json",
    "application/octet-stream",
    "multipart/form-data",
    "text/csv",
    "text/plain",
)

_executor_lock = threading.Lock()


def predict_input_from_request() -> PredictInput:
    settings = current_app.config["VIGIL_SETTINGS"]
    body = request.get_data(cache=True)
    files = {name: storage.read() for name, storage in request.files.items()}
    parsed = g.get("vigil_json")  # parsed and validated by the middleware when the route has a spec
    if parsed is None and body and not files:
        mimetype = request.mimetype or ""
        if is_json_mimetype(mimetype) or (mimetype in ("", "text/plain") and body.lstrip()[:1] in (b"[", b"{")):
            # A route without a spec: JSON errors are still 400s; the row limit is left to the task
            # (PredictInput.max_rows), as is the schema, since such routes answer in their own shape.
            parsed = parse_json(body)
            g.vigil_json = parsed
            g.vigil_rows = count_rows(parsed)
    return PredictInput(
        json=parsed,
        body=body,
        content_type=request.mimetype or "",
        files=files,
        args=request.args.to_dict(),
        max_rows=settings.max_rows,
    )


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    executor = current_app.extensions.get("vigil.predict_executor")
    if executor is None:
        with _executor_lock:
            executor = current_app.extensions.get("vigil.predict_executor")
            if executor is None:
                settings = current_app.config["VIGIL_SETTINGS"]
                executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=max(4, 2 * settings.threads), thread_name_prefix="vigil-predict"
                )
                current_app.extensions["vigil.predict_executor"] = executor
    return executor


def _call_with_time_limit(function, *args):
    """Run ``function`` with the per-request time limit (VIGIL_PREDICT_TIMEOUT_S; 0 = none).

    Python cannot stop a running thread: past the limit the client gets 503 at once and the
    prediction's result is dropped when it finishes.
    """
    limit = current_app.config["VIGIL_SETTINGS"].predict_timeout_s
    if not limit or limit <= 0:
        return function(*args)
    context = contextvars.copy_context()  # keeps the request id in the task's log lines
    future = _executor().submit(context.run, function, *args)
    try:
        return future.result(timeout=limit)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise VigilError(
            f"prediction took longer than {limit:g} s",
            {"predict_timeout_s": limit, "hint": "send fewer rows per request, or raise VIGIL_PREDICT_TIMEOUT_S"},
            status=503,
        ) from None


def run_prediction(task_slug: str, loaded=None):
    """Answer with ``loaded`` (default: the registry's current model of the task), under the
    time limit, with the model version on the response and the prediction metrics recorded."""
    task = get_task(task_slug)
    if loaded is None:
        # this request keeps this model even if a reload swaps it meanwhile
        loaded = current_app.extensions["vigil.registry"].get(task.name)
    g.vigil_task, g.vigil_model_version = task.name, loaded.version
    predict_input = predict_input_from_request()
    rows = g.get("vigil_rows")
    if rows is None:
        rows = count_rows(predict_input.json) if predict_input.json is not None else 1
        g.vigil_rows = rows
    schema_error = g.pop("vigil_schema_error", None)  # set by the middleware on routes with a spec
    if schema_error is not None:
        result = _answer_schema_violation(task, loaded, predict_input, schema_error)
    else:
        result = _call_with_time_limit(task.predict, loaded, predict_input)
    metrics.observe_prediction(task.name, loaded.version, rows, result)
    if isinstance(result, dict):
        result.setdefault("model_version", loaded.version)
    return result


def _answer_schema_violation(task, loaded, predict_input: PredictInput, schema_error: UnprocessableInput):
    """The body fails the task's schema. The task still gets it, because it knows its records
    better: its own 4xx (naming record and field in its terms, often with the good records'
    results) or its partial answer (ML-PT's ``?partial=1``, DNS's per-item errors) is the answer.
    Only if it cannot answer -- an unexpected exception or the time limit -- is the schema's 422:
    a body the schema refuses never gets a 5xx."""
    try:
        result = _call_with_time_limit(task.predict, loaded, predict_input)
    except VigilError as exc:
        if 400 <= exc.status < 500:
            raise
        raise schema_error from None
    except Exception:
        log.info("task failed on a body its schema refuses; answering with the schema's errors", exc_info=True)
        raise schema_error from None
    log.info("task answered a body its schema refuses", extra={"fields": {"task": task.name,
                                                                          "schema_errors": schema_error.detail[:3]}})
    return result


def _task_slugs() -> list[str]:
    return [task.slug for task in all_tasks()]


@bp.post("/predict/<task_slug>")
@spec(
    summary="Predict with one task's current model",
    description="The response carries the model version (field `model_version` in objects, header X-Model-Version).",
    body=lambda task_slug: get_task(task_slug).request_schema(),
    example=lambda task_slug: get_task(task_slug).example_request(),
    content_types=PREDICT_CONTENT_TYPES,
    task_explains_errors=True,
    expand={"task_slug": _task_slugs},
    tags=["predict"],
)
def predict(task_slug: str):
    return jsonify(run_prediction(task_slug))
