"""Registry view: which models are loaded, with their versions and metrics."""

from flask import Blueprint, current_app, jsonify

from vigil.tasks import get_task

bp = Blueprint("models", __name__)


def _describe(loaded) -> dict:
    entry = loaded.entry
    keys = ("task", "version", "created_at", "feature_version", "metrics", "threshold", "data_fingerprint", "sha256")
    return {key: entry.get(key) for key in keys}


@bp.get("/models")
def list_models():
    registry = current_app.extensions["vigil.registry"]
    return jsonify({"models": [_describe(m) for m in registry.models.values()], "missing": registry.errors})


@bp.get("/models/<task_name>")
def show_model(task_name: str):
    task = get_task(task_name)
    registry = current_app.extensions["vigil.registry"]
    return jsonify(_describe(registry.get(task.name)))
