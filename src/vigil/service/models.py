"""Registry view: which models are loaded, with their versions and metrics."""

from flask import Blueprint, current_app, jsonify

from vigil.errors import VigilError
from vigil.service.api import spec, task_names
from vigil.tasks import get_task

bp = Blueprint("models", __name__)


def _describe(loaded) -> dict:
    entry = loaded.entry
    keys = ("task", "version", "created_at", "feature_version", "metrics", "threshold", "data_fingerprint", "sha256")
    described = {key: entry.get(key) for key in keys}
    extra = entry.get("extra") or {}
    try:
        shown = get_task(loaded.task).model_facts
    except VigilError:  # a model of no registered task (e.g. a dynamic copy)
        shown = ()
    described["facts"] = {key: extra[key] for key in shown if key in extra}
    return described


@bp.get("/models")
@spec(summary="Which model serves each task: version, date, metrics, threshold", tags=["models"])
def list_models():
    registry = current_app.extensions["vigil.registry"]
    return jsonify({"models": [_describe(m) for m in registry.models.values()], "missing": registry.errors})


@bp.get("/models/<task_name>")
@spec(summary="The model serving one task", tags=["models"], path_values={"task_name": task_names})
def show_model(task_name: str):
    task = get_task(task_name)
    registry = current_app.extensions["vigil.registry"]
    loaded = registry.models.get(task.name)
    if loaded is None:  # a registry view: no model is "not found", not "unavailable"
        reason = registry.errors.get(task.name, "not loaded")
        raise VigilError(
            f"no model loaded for task '{task.name}': {reason}",
            f"train it with `vigil {task.slug} train`, then POST /admin/reload",
            status=404,
        )
    return jsonify(_describe(loaded))
