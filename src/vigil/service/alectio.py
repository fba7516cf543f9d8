"""Alectio's active-learning protocol on the Vigil app.

``POST /train``, ``/test``, ``/infer`` run one process synchronously; ``POST /one_loop`` starts a whole
loop as a background job and answers with the protocol's message and the job id; ``GET /jobs/<id>``
reports its progress; ``POST /end_exp`` closes the experiment (the server keeps running).

Index lists (``labeled``, ``unlabeled``) are JSON lists of integers, a range object
``{"start": 0, "stop": 100000}`` (stop excluded, optional ``step``), or a list mixing both.
"""

from __future__ import annotations

import hmac
from typing import Any

import numpy as np
from flask import Blueprint, current_app, jsonify, request

from vigil.active_learning import processes
from vigil.active_learning.loop import classification_metrics, experiment_args, validate_payload
from vigil.active_learning.pipeline import AlectioPipeline
from vigil.errors import InvalidInput, VigilError
from vigil.plain import to_plain

bp = Blueprint("alectio", __name__)


def _pipeline() -> AlectioPipeline:
    pipeline = current_app.extensions.get("vigil.alectio")
    if pipeline is None:
        pipeline = AlectioPipeline.from_settings(current_app.config["VIGIL_SETTINGS"])
        current_app.extensions["vigil.alectio"] = pipeline
    return pipeline


@bp.before_request
def _require_token():
    token = current_app.config["VIGIL_SETTINGS"].api_token
    if token and request.method == "POST":
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise VigilError("missing or wrong API token", {"field": "Authorization"}, status=401)


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", {"field": "body"})
    return body


def parse_indices(value: Any, field: str, size: int) -> np.ndarray:
    """A JSON index list: integers and/or ``{"start", "stop"[, "step"]}`` range objects."""
    if value is None:
        raise InvalidInput(f"{field} is missing", {"field": field})
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise InvalidInput(f"{field} must be a list of indices or a range object {{\"start\", \"stop\"}}",
                           {"field": field})
    parts: list[np.ndarray] = []
    singles: list = []
    for position, item in enumerate(items):
        if isinstance(item, dict):
            unknown = set(item) - {"start", "stop", "step"}
            bounds = [item.get("start", 0), item.get("stop"), item.get("step", 1)]
            if unknown or any(isinstance(b, bool) or not isinstance(b, int) for b in bounds) or bounds[2] <= 0:
                raise InvalidInput(f"{field}[{position}] must be {{\"start\": int, \"stop\": int, \"step\": int > 0}}",
                                   {"field": field, "index": position})
            start, stop, step = bounds
            if start < 0 or stop > size:
                raise InvalidInput(f"{field}[{position}]: range {start}..{stop} is outside 0..{size}",
                                   {"field": field, "index": position, "size": size})
            parts.append(np.arange(start, stop, step, dtype=np.int64))
        else:
            if isinstance(item, bool) or not isinstance(item, int):
                raise InvalidInput(f"{field}[{position}] must be an integer index or a range object",
                                   {"field": field, "index": position, "value": repr(item)[:40]})
            singles.append(item)
    parts.append(np.asarray(singles, dtype=np.int64))
    return np.concatenate(parts)


def _args(body: dict) -> dict:
    """The config's args, or one experiment's when the body names project_id and experiment_id."""
    args = _pipeline().args
    if body.get("project_id") is not None or body.get("experiment_id") is not None:
        args = experiment_args(args, validate_payload(body, require_loop=False))
    return args


def _required(body: dict, field: str):
    if field not in body:
        raise InvalidInput(f"{field} is missing", {"field": field})
    return body[field]


@bp.post("/train")
def train():
    body = _body()
    args = _args(body)
    labeled = parse_indices(body.get("labeled"), "labeled", processes.pool_size(args))
    # Over HTTP a repeated index is the client's mistake (the Python process drops repeats for the SDK)
    processes.validate_indices(labeled, processes.pool_size(args), "labeled")
    ckpt_file = _required(body, "ckpt_file")
    result = processes.train(args, labeled=labeled, resume_from=body.get("resume_from"), ckpt_file=ckpt_file)
    return jsonify(to_plain({"ckpt_file": ckpt_file, "labelled": int(labeled.size), **(result or {})},
                            str_keys=True))


@bp.post("/test")
def test():
    body = _body()
    ckpt_file = _required(body, "ckpt_file")
    result = processes.test(_args(body), ckpt_file=ckpt_file)
    metrics = classification_metrics(result["predictions"], result["labels"], result.get("scores"))
    return jsonify(to_plain({"predictions": result["predictions"], "labels": result["labels"], "metrics": metrics},
                            str_keys=True))


@bp.post("/infer")
def infer():
    body = _body()
    args = _args(body)
    unlabeled = parse_indices(body.get("unlabeled"), "unlabeled", processes.pool_size(args))
    ckpt_file = _required(body, "ckpt_file")
    return jsonify(to_plain(processes.infer(args, unlabeled=unlabeled, ckpt_file=ckpt_file), str_keys=True))


@bp.post("/one_loop")
def one_loop():
    answer = _pipeline().start_loop(_body())
    answer.pop("job")
    return jsonify(answer)


@bp.post("/end_exp")
def end_exp():
    return jsonify(_pipeline().end_experiment(_body()))


@bp.get("/jobs/<job_id>")
def job(job_id: str):
    return jsonify(to_plain(_pipeline().jobs.get(job_id), str_keys=True))
