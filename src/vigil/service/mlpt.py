"""ML-PT's own endpoint: ``POST /predict`` at the root, answered by the web-events task.

It is the same code path as ``POST /predict/web-events`` (the generic dispatcher), so both answer
``[{"EVENT_ID": str, "LABEL_PRED": int}]`` in input order.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from vigil.service.predict import run_prediction

bp = Blueprint("mlpt", __name__)


@bp.post("/predict")
def predict_mlpt():
    return jsonify(run_prediction("web-events"))
