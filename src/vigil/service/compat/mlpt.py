"""ML-PT's own endpoint: ``POST /predict`` at the root, answered by the web-events task.

It is the same code path as ``POST /predict/web-events`` (the generic dispatcher), so both answer
``[{"EVENT_ID": str, "LABEL_PRED": int}]`` in input order.

Errors differ from ML-PT's by default: Vigil answers 4xx naming the record and field (and 413 past the
row limit), where ML-PT answers 415 ``{"error": "Request must be JSON"}`` for a body that is not JSON
and 500 ``{"error": "Failed classifying the provided events!"}`` for anything else. A client that checks
those exact answers gets them with ``VIGIL_COMPAT=mlpt``.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from vigil.service.api import spec
from vigil.service.predict import EXPLAIN_PARAMETER, run_prediction
from vigil.tasks import get_task

bp = Blueprint("mlpt", __name__)

MLPT_NOT_JSON = {"error": "Request must be JSON"}
MLPT_FAILED = {"error": "Failed classifying the provided events!"}
# Answers that are about the HTTP exchange, not the events: ML-PT's Flask gives them too.
KEPT_STATUSES = {401, 405}


@bp.post("/predict")
@spec(
    summary="Label WAF events (ML-PT's own endpoint)",
    body=lambda: get_task("web-events").request_schema(),
    example=lambda: get_task("web-events").example_request(),
    query=[EXPLAIN_PARAMETER],
    validate=False,  # the task validates each record (and answers the good ones with ?partial=1)
    tags=["predict"],
)
def predict_mlpt():
    return jsonify(run_prediction("web-events"))


@bp.after_request
def mlpt_errors(response):
    """With ``VIGIL_COMPAT=mlpt``, error answers take ML-PT's exact status and body."""
    if (
        "mlpt" not in current_app.config["VIGIL_SETTINGS"].compat
        or response.status_code < 400
        or response.status_code in KEPT_STATUSES
    ):
        return response
    original = MLPT_NOT_JSON if response.status_code == 415 else MLPT_FAILED
    replaced = jsonify(original)
    replaced.status_code = 415 if response.status_code == 415 else 500
    for header in ("X-Request-ID", "X-Model-Version"):
        if header in response.headers:
            replaced.headers[header] = response.headers[header]
    return replaced
