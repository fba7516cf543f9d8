"""``POST /predict/web-sessions`` in the course API's shape, errors included.

The generic ``/predict/<slug>`` route answers errors as ``{"error", "detail"}``; the course's
clients expect ``{"success": false, "error": ...}``, so this more specific rule (Werkzeug prefers it
over the ``<slug>`` one) wraps the same task call and only reshapes the error.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from vigil.errors import VigilError
from vigil.service.predict import run_prediction

bp = Blueprint("web_sessions", __name__)


@bp.post("/predict/web-sessions")
def predict_web_sessions():
    try:
        return jsonify(run_prediction("web-sessions"))
    except VigilError as exc:
        status = exc.status if exc.status != 500 else 503
        return jsonify({"success": False, "error": exc.error, "detail": exc.detail}), status, exc.headers or {}
