"""Browser front end for a person: a home page listing every task (/ui), a page per task (/ui/<slug>,
the template the task names in ``Task.ui_template``), the loaded models (/ui/models), and a page per
task to try its raw ``/predict`` (/ui/tasks/<slug>).

The pages are static HTML plus a little JavaScript that calls the JSON API the same way any client
would (``POST /predict/<slug>?explain=3``, ``GET /models``), so the UI never scores anything itself;
the one thing drawn on the server is a task's picture (``Task.ui_picture``, e.g. a decision boundary
with a reading marked), at /ui/<slug>/picture.png. This module names no task.
``vigil serve --ui-port 8181`` also binds the app to a second port, as the course's front end ran.
"""

from __future__ import annotations

import json
import random

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from vigil.service.api import spec
from vigil.tasks import all_tasks, get_task
from vigil.tasks.base import Task

bp = Blueprint("ui", __name__, url_prefix="/ui")


def _nav_tasks():
    return [
        {
            "name": task.name,
            "slug": task.slug,
            "title": task.title,
            "label": task.ui_label or task.slug,
            "page": bool(task.ui_template),
        }
        for task in all_tasks()
    ]


def _slugs() -> list[str]:
    return [t.slug for t in all_tasks() if t.ui_template]


def _has_picture(task: Task) -> bool:
    return type(task).ui_picture is not Task.ui_picture


@bp.get("")
@bp.get("/")
@spec(
    summary="Browser home page: every task, one line each, with a link to its page", produces="text/html", tags=["ui"]
)
def home():
    return render_template("home.html", tasks=_nav_tasks(), page="home")


@bp.get("/<slug>/random")
@spec(
    summary="A random real request from the task's shipped sample (JSON), for its page's button",
    tags=["ui"],
    path_values={"slug": lambda: [t.slug for t in all_tasks() if type(t).sample_request is not Task.sample_request]},
)
def random_request(slug: str):
    """``Task.sample_request``: e.g. a random real web session, with site names, for the form's button."""
    return jsonify(get_task(slug).sample_request(random.Random()))


@bp.get("/models")
@spec(summary="Browser page: the loaded models and their metrics", produces="text/html", tags=["ui"])
def models_page():
    return render_template("models.html", tasks=_nav_tasks(), page="models")


@bp.get("/tasks")
@spec(summary="Browser page: try every task's raw API", produces="text/html", tags=["ui"])
def tasks_page():
    return render_template("tasks.html", tasks=_nav_tasks(), page="tasks")


@bp.get("/<slug>")
@spec(
    summary="Browser page for a person: one task's form and its explained verdicts (404 for an unknown task)",
    produces="text/html",
    tags=["ui"],
    path_values={"slug": _slugs},
)
def task_ui(slug: str):
    task = get_task(slug)
    if not task.ui_template:
        abort(404)
    return render_template(task.ui_template, tasks=_nav_tasks(), page=task.slug, task=task)


@bp.get("/<slug>/picture.png")
@spec(
    summary="A picture of the task's current model for its page (e.g. the decision boundary, a reading marked)",
    produces="image/png",
    tags=["ui"],
    path_values={"slug": lambda: [t.slug for t in all_tasks() if _has_picture(t)]},
)
def task_picture(slug: str):
    task = get_task(slug)
    if not _has_picture(task):
        abort(404)
    loaded = current_app.extensions["vigil.registry"].get(task.name)
    content, mimetype = task.ui_picture(loaded, dict(request.args))
    return Response(content, mimetype=mimetype, headers={"Cache-Control": "no-store"})


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
