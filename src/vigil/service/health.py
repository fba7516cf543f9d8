"""Liveness and readiness, in Vigil's shape and in the KServe V2 protocol's."""

from flask import Blueprint, current_app, jsonify

from vigil.service.api import spec, task_names
from vigil.tasks import get_task

bp = Blueprint("health", __name__)


def _readiness() -> tuple[bool, dict]:
    registry = current_app.extensions["vigil.registry"]
    body = {
        "ready": registry.ready,
        "models": {name: m.version for name, m in registry.models.items()},
        "missing": {name: reason for name, reason in registry.errors.items() if name not in registry.models},
        # a new version that was refused while the previous one keeps serving
        "errors": registry.errors,
    }
    return registry.ready, body


@bp.get("/health")
@spec(summary="Is the service up?", tags=["health"])
def health():
    return jsonify({"status": "ok"})


@bp.get("/ready")
@spec(summary="Is every task's model loaded and answering? (503 if not)", tags=["health"])
def ready():
    is_ready, body = _readiness()
    return jsonify(body), 200 if is_ready else 503


@bp.get("/v2/health/live")
@spec(summary="Is the service up? (KServe V2)", tags=["health"])
def v2_live():
    return jsonify({"live": True})


@bp.get("/v2/health/ready")
@spec(summary="Is every model ready? (KServe V2; 503 if not)", tags=["health"])
def v2_ready():
    is_ready, _ = _readiness()
    return jsonify({"ready": is_ready}), 200 if is_ready else 503


@bp.get("/v2")
@spec(summary="Server name, version and extensions (KServe V2)", tags=["health"])
def v2_metadata():
    import vigil

    # binary_tensor_data: POST /v2/models/<task>/infer takes and gives raw tensors (vigil.service.v2)
    return jsonify({"name": "vigil", "version": vigil.__version__, "extensions": ["binary_tensor_data"]})


@bp.get("/v2/models/<task_name>/ready")
@spec(summary="Is this task's model ready? (KServe V2)", tags=["health"], path_values={"task_name": task_names})
def v2_model_ready(task_name: str):
    task = get_task(task_name)
    registry = current_app.extensions["vigil.registry"]
    return jsonify({"name": task.name, "ready": task.name in registry.models})
