"""``POST /predict/<slug>`` for every task, through the task interface.

Other blueprints that answer predictions in another shape (the compat routes, e.g. a root ``/predict``) call
:func:`run_prediction` too, so they get the same limits, time limit, metrics and model version.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import logging
import math
import re
import threading
import time
from functools import partial

from flask import Blueprint, current_app, g, jsonify, request

from vigil.errors import InvalidInput, PredictionTimeout, ServiceBusy, UnprocessableInput, VigilError
from vigil.service import metrics
from vigil.service.api import spec
from vigil.service.validation import count_rows, is_json_mimetype, parse_json, validate_body
from vigil.tasks import PredictInput, all_tasks, get_task
from vigil.tensors import read_npy

bp = Blueprint("predict", __name__)
log = logging.getLogger("vigil.service")

NPY_MIMETYPE = "application/x-npy"  # a .npy matrix, for tasks with tensor_input (vigil.tensors.read_npy)
PREDICT_CONTENT_TYPES = (
    "application/json",
    "application/octet-stream",
    NPY_MIMETYPE,
    "multipart/form-data",
    "text/csv",
    "text/plain",
)

_executor_lock = threading.Lock()


def predict_input_from_request(task=None) -> PredictInput:
    settings = current_app.config["VIGIL_SETTINGS"]
    body = request.get_data(cache=True)
    tensor = g.get("vigil_tensor")  # JSON feature vectors the middleware read as a matrix (json_tensor)
    if request.mimetype == NPY_MIMETYPE:
        _check_takes_matrix(task)
        tensor = read_npy(body, settings.max_rows)
        g.vigil_rows = tensor.shape[0]
    files: dict[str, bytes] = {}
    filenames: dict[str, str] = {}
    for field_name, storage in request.files.items(multi=True):
        # several files under one form field (a multi-file drop) each count: "files", "files[1]", ...
        key = field_name if field_name not in files else f"{field_name}[{sum(k.startswith(field_name) for k in files)}]"
        files[key] = storage.read()
        filenames[key] = storage.filename or key
    parsed = g.get("vigil_json")  # parsed and validated by the middleware when the route has a spec
    if parsed is None and tensor is None and body and not files:
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
        filenames=filenames,
        args=request.args.to_dict(),
        max_rows=settings.max_rows,
        tensor=tensor,
    )


def _check_takes_matrix(task) -> None:
    if task is None or not task.tensor_input:
        raise VigilError(
            f"unsupported content type '{NPY_MIMETYPE}'",
            {"hint": f"task '{getattr(task, 'name', '?')}' does not take a numeric matrix"},
            status=415,
        )


def request_rows(predict_input: PredictInput) -> int:
    """Records in a request: JSON as :func:`count_rows` counts them, one per uploaded file, one per
    line of a text body (a task may take one record per line), a matrix's rows, else one."""
    if predict_input.tensor is not None:
        return int(predict_input.tensor.shape[0])
    if predict_input.json is not None:
        return count_rows(predict_input.json)
    if predict_input.files:
        return len(predict_input.files)
    if predict_input.content_type.startswith("text/") and predict_input.body:
        return max(1, len(predict_input.body.splitlines()))
    return 1


# -- cost: rows x the task's row_cost against VIGIL_PREDICT_COST_BUDGET_S --------------------------
def rows_within_budget(task, settings) -> int:
    """The most records one request to ``task`` may carry: VIGIL_MAX_ROWS, or fewer where the task's
    rows are dear (``row_cost`` microseconds each against VIGIL_PREDICT_COST_BUDGET_S)."""
    budget = settings.predict_cost_budget_s
    if not budget or budget <= 0 or task.row_cost <= 0:
        return settings.max_rows
    return max(1, min(settings.max_rows, int(budget * 1e6 // task.row_cost)))


def check_cost(task, rows: int, settings) -> None:
    """413 when ``rows`` records of ``task`` would cost more than VIGIL_PREDICT_COST_BUDGET_S."""
    budget = settings.predict_cost_budget_s
    estimate = rows * task.row_cost / 1e6
    if not budget or budget <= 0 or estimate <= budget:
        return
    limit = rows_within_budget(task, settings)
    raise VigilError(
        f"request too costly for task '{task.name}': {rows} rows x {task.row_cost:g} us = about "
        f"{estimate:.1f} s of CPU, over VIGIL_PREDICT_COST_BUDGET_S ({budget:g} s)",
        {
            "rows": rows,
            "max_rows": limit,
            "row_cost_us": task.row_cost,
            "estimated_cpu_s": round(estimate, 3),
            "predict_cost_budget_s": budget,
            "hint": f"send at most {limit} rows per request, or raise VIGIL_PREDICT_COST_BUDGET_S",
        },
        status=413,
    )


# -- admission: a few slots per worker, a small queue, 503 + Retry-After beyond ---------------------
class AdmissionGate:
    """At most ``slots`` predictions compute at once in this process and at most ``queue`` more wait
    (each up to ``wait_s``) for a slot; any other is refused at once with 503 and ``Retry-After``.

    A slot is held until the work itself ends, not until its request is answered: a prediction that
    ran past its time limit keeps its slot until it stops, so timed-out work cannot pile up.
    """

    def __init__(self, slots: int, queue: int, wait_s: float):
        self.slots, self.queue, self.wait_s = max(1, slots), max(0, queue), max(0.0, wait_s)
        self._admitted = threading.BoundedSemaphore(self.slots + self.queue)
        self._running = threading.BoundedSemaphore(self.slots)
        self._lock = threading.Lock()
        self.busy = 0  # admitted and not yet finished (running or waiting)

    def retry_after(self) -> str:
        return str(max(1, math.ceil(self.wait_s)))

    def enter(self, wait_s: float) -> None:
        if not self._admitted.acquire(blocking=False):
            raise self._refusal("every prediction slot is busy and the queue is full")
        with self._lock:
            self.busy += 1
        if not self._running.acquire(timeout=max(0.0, min(wait_s, self.wait_s))):
            self._release_admission()
            raise self._refusal("no prediction slot came free in time")

    def leave(self) -> None:
        self._running.release()
        self._release_admission()

    def _release_admission(self) -> None:
        with self._lock:
            self.busy -= 1
        self._admitted.release()

    def _refusal(self, reason: str) -> ServiceBusy:
        return ServiceBusy(
            f"service busy: {reason}",
            {
                "predict_concurrency": self.slots,
                "predict_queue": self.queue,
                "hint": "retry after the Retry-After seconds, or raise VIGIL_PREDICT_CONCURRENCY / VIGIL_PREDICT_QUEUE",
            },
            headers={"Retry-After": self.retry_after()},
        )


def _shared(name: str, build):
    value = current_app.extensions.get(name)
    if value is None:
        with _executor_lock:
            value = current_app.extensions.get(name)
            if value is None:
                value = current_app.extensions[name] = build(current_app.config["VIGIL_SETTINGS"])
    return value


def admission_gate() -> AdmissionGate:
    return _shared(
        "vigil.predict_gate", lambda s: AdmissionGate(s.predict_concurrency, s.predict_queue, s.predict_queue_wait_s)
    )


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    # one thread per slot: the gate never lets more work in, so nothing waits in the executor's queue
    return _shared(
        "vigil.predict_executor",
        lambda s: concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, s.predict_concurrency), thread_name_prefix="vigil-predict"
        ),
    )


def _call_with_time_limit(task, function, predict_input: PredictInput):
    """Run ``function(predict_input)`` in a prediction slot, under VIGIL_PREDICT_TIMEOUT_S (0 = none).

    Past the limit the client gets 503 at once; the work stops at its next chunk boundary (tasks
    iterate their rows through ``PredictInput.chunks``, which checks the deadline) and only then gives
    its slot back. Work that cannot be cut (one PE file) runs to its end; its result is dropped.
    """
    limit = current_app.config["VIGIL_SETTINGS"].predict_timeout_s
    gate = admission_gate()
    started = time.monotonic()
    if limit and limit > 0:
        predict_input.deadline, predict_input.time_limit_s = started + limit, limit
    gate.enter(wait_s=limit if limit and limit > 0 else gate.wait_s)
    answered = threading.Event()  # set once the request got its timeout answer

    def work():
        outcome = None
        try:
            return function(predict_input)
        except PredictionTimeout:
            outcome = "stopped"  # the task's chunk loop saw the deadline
            raise
        finally:
            if outcome is None and answered.is_set():
                outcome = "finished_late"  # could not be cut; its result is dropped
            if outcome:
                metrics.observe_timeout(task.name, outcome)
            gate.leave()

    if not predict_input.deadline:
        return work()
    context = contextvars.copy_context()  # keeps the request id in the task's log lines
    try:
        future = _executor().submit(context.run, work)
    except BaseException:
        gate.leave()
        raise
    try:
        return future.result(timeout=max(0.0, predict_input.deadline - time.monotonic()))
    except concurrent.futures.TimeoutError:
        answered.set()
        raise PredictionTimeout(
            f"prediction took longer than {limit:g} s",
            {"predict_timeout_s": limit, "hint": "send fewer rows per request, or raise VIGIL_PREDICT_TIMEOUT_S"},
        ) from None


def run_prediction(task_slug: str, loaded=None, answer=None, predict_input: PredictInput | None = None):
    """Answer with ``loaded`` (default: the registry's current model of the task), within the task's
    cost budget and the time limit, in a prediction slot, with the model version on the response and
    the prediction metrics recorded. ``answer(task, loaded, predict_input)`` computes the result
    (default: ``task.predict``; the V2 routes pass ``task.predict_tensor``) from ``predict_input``
    (default: the request's)."""
    task = get_task(task_slug)
    if predict_input is None and request.mimetype == NPY_MIMETYPE:
        _check_takes_matrix(task)  # before looking for a model: the body is wrong whatever is served
    if loaded is None:
        # this request keeps this model even if a reload swaps it meanwhile
        loaded = current_app.extensions["vigil.registry"].get(task.name)
    g.vigil_task, g.vigil_model_version = task.name, loaded.version
    settings = current_app.config["VIGIL_SETTINGS"]
    if predict_input is None:
        predict_input = predict_input_from_request(task)
    compute = partial(task.predict, loaded) if answer is None else partial(answer, task, loaded)
    rows = g.get("vigil_rows")
    if rows is None:
        rows = request_rows(predict_input)
        g.vigil_rows = rows
    check_cost(task, rows, settings)
    predict_input.max_rows = rows_within_budget(task, settings)  # the task's own count applies it too
    top = explain_count(predict_input.args) if answer is None else 0  # reasons explain task.predict's answer
    if top:
        compute = partial(_explained, task, loaded, compute, top)
    try:
        result = _call_with_time_limit(task, compute, predict_input)
    except VigilError:
        raise
    except Exception:
        # A crash on a body the task's declared schema refuses is the client's fault: its 422
        # (naming record and field), never a 500. A crash on a valid body stays a 500.
        refusal = _schema_refusal(task, predict_input)
        if refusal is None:
            raise
        log.info("task failed on a body its schema refuses", exc_info=True)
        raise refusal from None
    metrics.observe_prediction(task.name, loaded.version, rows, result)
    if isinstance(result, dict):
        result.setdefault("model_version", loaded.version)
    return result


MAX_EXPLAIN = 20


def explain_count(args: dict) -> int:
    """``?explain=N``: the N largest reasons per verdict (0 or absent: none; ``?explain`` alone: 3)."""
    text = args.get("explain")
    if text is None:
        return 0
    text = text.strip().lower()
    if text in ("", "true", "yes"):
        return 3
    if re.fullmatch(r"[0-9]{1,3}", text) and int(text) <= MAX_EXPLAIN:  # ASCII digits only ("²" is a digit too)
        return int(text)
    raise InvalidInput(
        f"explain must be a whole number from 0 to {MAX_EXPLAIN}, got {text[:20]!r}",
        {"field": "explain", "message": f"a whole number from 0 to {MAX_EXPLAIN}"},
    )


def _explained(task, loaded, compute, top: int, predict_input: PredictInput):
    """The task's answer with its reasons (``Task.explain``), in the same slot and time limit."""
    result = compute(predict_input)
    try:
        return task.explain(loaded, predict_input, result, top)
    except NotImplementedError:
        if isinstance(result, dict):
            result["explained"] = False
            result["explanation"] = f"task '{task.name}' gives no reasons for its verdicts"
        return result


def _schema_refusal(task, predict_input: PredictInput) -> UnprocessableInput | None:
    schema = task.request_schema()
    if schema is None or predict_input.json is None:
        return None
    try:
        validate_body(schema, predict_input.json)
    except UnprocessableInput as exc:
        return exc
    return None


def _json_tensor(data: bytes, task_slug: str = ""):
    """The task's fast read of a JSON body of feature vectors (Task.json_tensor), or None."""
    try:
        task = get_task(task_slug)
    except Exception:  # an unknown slug: the view answers 404
        return None
    return task.json_tensor(data) if task.tensor_input else None


def _task_slugs() -> list[str]:
    return [task.slug for task in all_tasks()]


EXPLAIN_PARAMETER = {
    "name": "explain",
    "required": False,
    "description": "Add each verdict's N strongest reasons (`reasons`: feature, value, contribution, text), "
    f"0 to {MAX_EXPLAIN}; `?explain` alone means 3",
    "schema": {"type": "string", "pattern": f"^(|true|yes|[0-9]{{1,{len(str(MAX_EXPLAIN))}}})$"},
}


@bp.post("/predict/<task_slug>")
@spec(
    summary=lambda task_slug: get_task(task_slug).title,
    description="The answer carries the model version (field `model_version` in objects, header "
    "X-Model-Version). With `?explain=N` each verdict comes with its N strongest reasons.",
    query=[EXPLAIN_PARAMETER],
    body=lambda task_slug: get_task(task_slug).request_schema(),
    example=lambda task_slug: get_task(task_slug).example_request(),
    content_types=PREDICT_CONTENT_TYPES,
    validate=False,  # the task validates its records with its request model (and answers the good ones)
    json_tensor=_json_tensor,
    expand={"task_slug": _task_slugs},
    tags=["predict"],
)
def predict(task_slug: str):
    return jsonify(run_prediction(task_slug))
