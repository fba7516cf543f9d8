"""Alectio's active-learning protocol on the Vigil app.

``POST /train``, ``/test``, ``/infer`` run one process synchronously; ``POST /one_loop`` starts a whole
loop as a background job and answers with the protocol's message and the job id; ``GET /jobs/<id>``
reports its progress; ``POST /end_exp`` closes the experiment (the server keeps running).

Index lists (``labeled``, ``unlabeled``) are JSON lists of integers, a range object
``{"start": 0, "stop": 100000}`` (stop excluded, optional ``step``), or a list mixing both.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from flask import Blueprint, current_app, g, jsonify
from pydantic import BaseModel, ConfigDict, Field

from vigil.active_learning import processes
from vigil.active_learning.loop import (
    MAX_COUNT,
    SUPPORTED_TYPES,
    classification_metrics,
    experiment_args,
    validate_payload,
)
from vigil.active_learning.pipeline import AlectioPipeline
from vigil.errors import InvalidInput
from vigil.service.api import spec

bp = Blueprint("alectio", __name__)

# -- the bodies: request models, so /docs and the fuzzer (schemathesis) see them. The views still
# check the bodies themselves (validate=False below): Alectio's two SDK generations name the loop
# fields differently (``current_loop`` for ``cur_loop``, see LATER_SDK_KEYS), send counts as digit
# strings, and expect a 400 whose detail names the one field at fault in their terms.
Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Checkpoint = Annotated[
    str,
    Field(
        pattern=r"^ckpt_[0-9]{1,10}(\.[A-Za-z0-9]{1,10})?$",
        examples=["ckpt_0.pkl"],
        description="ckpt_<loop><CKPT_EXT>, or ckpt_<loop> as the SDK sends it",
    ),
]
Count = Annotated[
    Annotated[int, Field(strict=True, ge=0, le=MAX_COUNT)] | Annotated[str, Field(pattern=r"^[0-9]{1,10}$")],
    Field(description="a non-negative integer (or a string of ASCII digits, as the SDK sends it)"),
]


class IndexRange(BaseModel):
    """Indices start..stop-1 (stop excluded), every step."""

    model_config = ConfigDict(extra="forbid")
    start: Annotated[int, Field(strict=True, ge=0)] = 0
    stop: Annotated[int, Field(strict=True, ge=0)]
    step: Annotated[int, Field(strict=True, ge=1)] = 1


Indices = Annotated[
    list[Annotated[int, Field(strict=True, ge=0)] | IndexRange] | IndexRange,
    Field(description="pool indices: a list of integers and/or range objects, or one range object"),
]


class ExperimentRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    project_id: Id | None = Field(None, description="with experiment_id: use that experiment's folder")
    experiment_id: Id | None = None


class TrainRequest(ExperimentRequest):
    """Fit on the labelled pool indices; save the checkpoint ``ckpt_file``."""

    labeled: Indices
    resume_from: Checkpoint | None = None
    ckpt_file: Checkpoint


class TestRequest(ExperimentRequest):
    """Predict the test set with the checkpoint ``ckpt_file``."""

    ckpt_file: Checkpoint


class InferRequest(ExperimentRequest):
    """Class probabilities of the unlabelled pool indices."""

    unlabeled: Indices
    ckpt_file: Checkpoint


class LoopRequest(BaseModel):
    """The platform's payload of one loop (the later SDK's names are read too, e.g. current_loop)."""

    model_config = ConfigDict(extra="allow")
    experiment_id: Id
    project_id: Id
    user_id: Id
    bucket_name: Id
    cur_loop: Count
    type: Literal[SUPPORTED_TYPES]  # type: ignore[valid-type]
    n_rec: Count | None = None
    n_loop: Count | None = None


class EndRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    experiment_id: Id
    project_id: Id


ALECTIO_ERRORS = {
    "403": "A project or experiment folder leads outside its root (a symlink)",
    "409": "The experiment was ended with /end_exp, or a loop of it is already running",
}


def _alectio(summary: str, body: type[BaseModel] | None = None, **kwargs) -> Any:
    return spec(
        summary=summary,
        body=body,
        validate=False,
        counts_rows=False,
        responses=ALECTIO_ERRORS,
        tags=["active learning"],
        **kwargs,
    )


def _pipeline() -> AlectioPipeline:
    pipeline = current_app.extensions.get("vigil.alectio")
    if pipeline is None:
        pipeline = AlectioPipeline.from_settings(current_app.config["VIGIL_SETTINGS"])
        current_app.extensions["vigil.alectio"] = pipeline
    return pipeline


# VIGIL_API_TOKEN guards every route here, /jobs/<id> included (service.middleware.API_TOKEN_PATHS).


def _body() -> dict:
    body = g.get("vigil_json")  # parsed by the middleware: broken, too deep or out-of-range JSON is a 400
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", {"field": "body"})
    return body


def parse_indices(value: Any, field: str, size: int) -> np.ndarray:
    """A JSON index list: integers and/or ``{"start", "stop"[, "step"]}`` range objects."""
    if value is None:
        raise InvalidInput(f"{field} is missing", {"field": field})
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise InvalidInput(f'{field} must be a list of indices or a range object {{"start", "stop"}}', {"field": field})
    parts: list[np.ndarray] = []
    singles: list = []
    for position, item in enumerate(items):
        if isinstance(item, dict):
            unknown = set(item) - {"start", "stop", "step"}
            bounds = [item.get("start", 0), item.get("stop"), item.get("step", 1)]
            if unknown or any(isinstance(b, bool) or not isinstance(b, int) for b in bounds) or bounds[2] <= 0:
                raise InvalidInput(
                    f'{field}[{position}] must be {{"start": int, "stop": int, "step": int > 0}}',
                    {"field": field, "index": position},
                )
            start, stop, step = bounds
            if start < 0 or stop > size:
                raise InvalidInput(
                    f"{field}[{position}]: range {start}..{stop} is outside 0..{size}",
                    {"field": field, "index": position, "size": size},
                )
            parts.append(np.arange(start, stop, step, dtype=np.int64))
        else:
            if isinstance(item, bool) or not isinstance(item, int):
                raise InvalidInput(
                    f"{field}[{position}] must be an integer index or a range object",
                    {"field": field, "index": position, "value": repr(item)[:40]},
                )
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
@_alectio("Train on the labelled records and save a checkpoint", TrainRequest)
def train():
    body = _body()
    args = _args(body)
    _pipeline().check_open(Path(args["EXPT_DIR"]))  # an ended experiment takes no new checkpoints
    labeled = parse_indices(body.get("labeled"), "labeled", processes.pool_size(args))
    # Over HTTP a repeated index is the client's mistake (the Python process drops repeats for the SDK)
    processes.validate_indices(labeled, processes.pool_size(args), "labeled")
    ckpt_file = _required(body, "ckpt_file")
    result = processes.train(args, labeled=labeled, resume_from=body.get("resume_from"), ckpt_file=ckpt_file)
    return jsonify({"ckpt_file": ckpt_file, "labelled": labeled.size, **(result or {})})


@bp.post("/test")
@_alectio("Score the test set with a checkpoint", TestRequest)
def test():
    body = _body()
    ckpt_file = _required(body, "ckpt_file")
    result = processes.test(_args(body), ckpt_file=ckpt_file)
    metrics = classification_metrics(result["predictions"], result["labels"], result.get("scores"))
    return jsonify({"predictions": result["predictions"], "labels": result["labels"], "metrics": metrics})


@bp.post("/infer")
@_alectio("Class probabilities of unlabelled records", InferRequest)
def infer():
    body = _body()
    args = _args(body)
    unlabeled = parse_indices(body.get("unlabeled"), "unlabeled", processes.pool_size(args))
    ckpt_file = _required(body, "ckpt_file")
    return jsonify(processes.infer(args, unlabeled=unlabeled, ckpt_file=ckpt_file))


@bp.post("/one_loop")
@_alectio("Start one active-learning loop in the background (follow it at /jobs/{id})", LoopRequest)
def one_loop():
    answer = _pipeline().start_loop(_body())
    answer.pop("job")
    return jsonify(answer)


@bp.post("/end_exp")
@_alectio("End an experiment (later loops and training answer 409)", EndRequest)
def end_exp():
    return jsonify(_pipeline().end_experiment(_body()))


@bp.get("/jobs/<job_id>")
@_alectio("Follow a loop: its status, stage, progress, result or error")
def job(job_id: str):
    return jsonify(public_job(_pipeline().jobs.get(job_id)))  # read from its JSON file: plain already


# An absolute path inside a message ("... '/srv/vigil/runs/alectio/p1/e1/X.dat'"): not after a word
# character, ':' or '/', so relative paths and URLs are left alone.
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s'\"/]+/)*([^\s'\"/]*)")
PRIVATE_JOB_KEYS = ("pid", "lock")


def public_job(job: Any) -> Any:
    """A job as clients see it: no process ids, no lock file, absolute paths cut to their last part."""
    if isinstance(job, dict):
        return {key: public_job(value) for key, value in job.items() if key not in PRIVATE_JOB_KEYS}
    if isinstance(job, list):
        return [public_job(value) for value in job]
    if isinstance(job, str):
        return _ABSOLUTE_PATH.sub(r"\1", job)
    return job
