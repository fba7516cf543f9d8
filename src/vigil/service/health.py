"""Liveness and readiness."""

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    return jsonify({"status": "ok"})


@bp.get("/ready")
def ready():
    registry = current_app.extensions["vigil.registry"]
    loaded = {name: m.version for name, m in registry.models.items()}
    body = {"ready": not registry.errors, "models": loaded, "missing": registry.errors}
    return jsonify(body), 200 if not registry.errors else 503
