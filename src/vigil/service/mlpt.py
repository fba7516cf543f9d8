"""ML-PT's own endpoint: ``POST /predict`` at the root, answered by the web-events task.

It is the same code path as ``POST /predict/web-events`` (the generic dispatcher), so both answer
``[{"EVENT_ID": str, "LABEL_PRED": int}]`` in input order.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from vigil.service.api import spec
from vigil.service.predict import run_prediction
from vigil.tasks import get_task

bp = Blueprint("mlpt", __name__)


@bp.post("/predict")
@spec(
    summary="Label WAF events (ML-PT's API: a JSON array of {\"data\": \"<event JSON>\"})",
    body=lambda: get_task("web-events").request_schema(),
    example=lambda: get_task("web-events").example_request(),
    task_explains_errors=True,
    tags=["predict"],
)
def predict_mlpt():
    return jsonify(run_prediction("web-events"))
