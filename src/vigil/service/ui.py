"""Browser front end: the session check form (/ui), the loaded models (/ui/models), and a page per
task to try its ``/predict`` (/ui/tasks/<slug>).

The pages are static HTML plus a little JavaScript that calls the JSON API the same way any client
would (``POST /predict/<slug>``, ``GET /models``), so the UI never scores anything itself.
``vigil serve --ui-port 8181`` also binds the app to a second port, as the course's front end ran.
"""

from __future__ import annotations

import json
import random

from flask import Blueprint, jsonify, render_template

from vigil.service.api import spec
from vigil.tasks import all_tasks, get_task

bp = Blueprint("ui", __name__, url_prefix="/ui")


def _nav_tasks():
    return [{"slug": task.slug, "title": task.title} for task in all_tasks()]


@bp.get("")
@bp.get("/")
@spec(summary="Browser form: check a web session", produces="text/html", tags=["ui"])
def session_form():
    return render_template("session.html", tasks=_nav_tasks(), page="session")


@bp.get("/web-sessions/random")
@spec(summary="A random real session from the shipped sample (JSON), for the form's button", tags=["ui"])
def random_session():
    """A random real session from the shipped sample, with site names, for the form's button."""
    return jsonify(get_task("web-sessions").random_session(random.Random()))


@bp.get("/models")
@spec(summary="Browser page: the loaded models and their metrics", produces="text/html", tags=["ui"])
def models_page():
    return render_template("models.html", tasks=_nav_tasks(), page="models")


@bp.get("/tasks")
@spec(summary="Browser page: every task", produces="text/html", tags=["ui"])
def tasks_page():
    return render_template("tasks.html", tasks=_nav_tasks(), page="tasks")


@bp.get("/tasks/<slug>")
@spec(
    summary="Browser page: try one task's /predict (404 for an unknown task)",
    produces="text/html",
    tags=["ui"],
    path_values={"slug": lambda: [t.slug for t in all_tasks()]},
)
def task_page(slug: str):
    task = get_task(slug)
    example = task.example_request()
    shown = "" if example is None else json.dumps(example)
    if len(shown) < 2000:  # short examples read better indented; long vectors stay on one line
        shown = json.dumps(example, indent=2) if example is not None else ""
    return render_template(
        "task.html",
        tasks=_nav_tasks(),
        page="tasks",
        task=task,
        example=shown,
        schema=json.dumps(task.request_schema(), indent=2) if task.request_schema() else "",
    )
