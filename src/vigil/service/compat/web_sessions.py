"""``POST /predict/web-sessions`` in the course API's shape, errors included.

The generic ``/predict/<slug>`` route answers errors as ``{"error", "detail"}``; the course's
clients expect ``{"success": false, "error": ...}``, so this more specific rule (Werkzeug prefers it
over the ``<slug>`` one) wraps the same task call and only reshapes the error.

With ``VIGIL_COMPAT=course`` it answers exactly as the course's API does: errors come back as HTTP 200
with ``{"success": false, ...}`` (its front end reads the body, never the status), and a request holding
one session gets ``predictions`` (and ``is_alice``) as a single value, not a one-element list.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from vigil.errors import VigilError
from vigil.service.predict import run_prediction

bp = Blueprint("web_sessions", __name__)


def _course_mode() -> bool:
    return "course" in current_app.config["VIGIL_SETTINGS"].compat


@bp.post("/predict/web-sessions")
def predict_web_sessions():
    try:
        answer = run_prediction("web-sessions")
    except VigilError as exc:
        status = exc.status if exc.status != 500 else 503
        return jsonify({"success": False, "error": exc.error, "detail": exc.detail}), status, exc.headers or {}
    body = request.get_json(silent=True)
    if _course_mode() and isinstance(body, dict) and "sessions" not in body and len(answer["predictions"]) == 1:
        answer = {**answer, "predictions": answer["predictions"][0], "is_alice": answer["is_alice"][0]}
    return jsonify(answer)


@bp.after_request
def course_errors(response):
    """With ``VIGIL_COMPAT=course``, any error (the view's or the middleware's: body too large, wrong
    content type, token) is an HTTP 200 whose body says ``"success": false`` and why."""
    if not _course_mode() or response.status_code < 400:
        return response
    body = response.get_json(silent=True) or {}
    reshaped = jsonify(
        {
            "success": False,
            "error": body.get("error", response.status),
            "detail": body.get("detail"),
            "status": response.status_code,
        }
    )
    for header in ("X-Request-ID", "X-Model-Version", "Retry-After"):
        if header in response.headers:
            reshaped.headers[header] = response.headers[header]
    return reshaped
