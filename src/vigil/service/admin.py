"""Operations: atomic model reload and a view of the worker's runtime (guarded by VIGIL_API_TOKEN)."""

from __future__ import annotations

import os
import threading

from flask import Blueprint, current_app, jsonify

from vigil.service.api import spec

bp = Blueprint("admin", __name__)


@bp.post("/admin/reload")
@spec(
    summary="Reload the models: each task's newest verified version, switched in at once",
    description=(
        "Requests in flight finish on the model they started with. Every gunicorn worker swaps on "
        "its next request. A task whose new artifact fails verification or warm-up keeps its "
        "previous model and is listed under `errors` (`ok` is then false)."
    ),
    body={"type": "object"},
    body_required=False,
    counts_rows=False,
    tags=["admin"],
)
def reload():
    registry = current_app.extensions["vigil.registry"]
    versions = registry.request_reload()
    return jsonify({"ok": not registry.errors, "models": versions, "errors": registry.errors, "pid": os.getpid()})


@bp.get("/admin/runtime")
@spec(summary="This worker: its process, threads and limits", tags=["admin"])
def runtime():
    import lightgbm  # noqa: F401  (loads OpenMP, so its thread pool shows below)
    import numpy  # noqa: F401  (loads BLAS, likewise)
    from threadpoolctl import threadpool_info

    settings = current_app.config["VIGIL_SETTINGS"]
    return jsonify(
        {
            "pid": os.getpid(),
            "python_threads": threading.active_count(),
            "thread_pools": [
                {
                    "user_api": p.get("user_api"),
                    "internal_api": p.get("internal_api"),
                    "num_threads": p.get("num_threads"),
                }
                for p in threadpool_info()
            ],
            "workers": settings.workers,
            "threads": settings.threads,
            "max_body_bytes": settings.max_body_bytes,
            "max_rows": settings.max_rows,
            "predict_timeout_s": settings.predict_timeout_s,
            "predict_cost_budget_s": settings.predict_cost_budget_s,
            "predict_concurrency": settings.predict_concurrency,
            "predict_queue": settings.predict_queue,
            "predict_queue_wait_s": settings.predict_queue_wait_s,
        }
    )
