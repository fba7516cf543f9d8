"""``POST /predict/<slug>`` for every task, through the task interface."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from vigil.errors import InvalidInput
from vigil.tasks import PredictInput, get_task

bp = Blueprint("predict", __name__)


def predict_input_from_request() -> PredictInput:
    settings = current_app.config["VIGIL_SETTINGS"]
    body = request.get_data(cache=True)
    parsed = None
    if request.mimetype == "application/json" or (body[:1] in (b"[", b"{") and not request.files):
        try:
            parsed = request.get_json(force=True, silent=False)
        except Exception as exc:  # werkzeug raises BadRequest with an HTML-ish description
            raise InvalidInput("request body is not valid JSON", str(getattr(exc, "description", exc))) from exc
    files = {name: storage.read() for name, storage in request.files.items()}
    return PredictInput(
        json=parsed,
        body=body,
        content_type=request.mimetype or "",
        files=files,
        args=request.args.to_dict(),
        max_rows=settings.max_rows,
    )


def run_prediction(task_slug: str):
    task = get_task(task_slug)
    registry = current_app.extensions["vigil.registry"]
    loaded = registry.get(task.name)
    return task.predict(loaded, predict_input_from_request())


@bp.post("/predict/<task_slug>")
def predict(task_slug: str):
    return jsonify(run_prediction(task_slug))
