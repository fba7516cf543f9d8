"""Registry of Vigil's tasks. Adding a task is adding one line to ``TASKS``.

Each line names the task's class and its slug (CLI group and URL segment). The CLI mounts the click
group ``commands`` of the task's ``cli`` module (``<package>.cli``) under the slug, with the
commands of any extra modules the line lists (verbs that live outside the task's package, such as
the DNS stream verbs, which need the streaming layer the task must not import), all imported only
when that slug's commands are used.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

from vigil.errors import VigilError

if TYPE_CHECKING:
    from vigil.tasks.base import PredictInput, Task


class TaskSpec(NamedTuple):
    """One registry line: where the task class is, its slug, and extra command modules."""

    target: str  # "module:Class" of the Task
    slug: str  # CLI group and URL segment; equal to the class's ``slug``
    commands: tuple[str, ...] = ()  # extra modules whose click group ``commands`` joins the task's

    @property
    def command_modules(self) -> tuple[str, ...]:
        """The task's own ``<package>.cli``, then the extra modules, each exposing ``commands``."""
        package = self.target.split(":")[0].rsplit(".", 1)[0]
        return (f"{package}.cli", *self.commands)


# name -> TaskSpec; the order is the order of the CLI help and the UI.
TASKS: dict[str, TaskSpec] = {
    "ember": TaskSpec("vigil.tasks.ember.task:EmberTask", "ember", ("vigil.active_learning.cli",)),
    "web_events": TaskSpec("vigil.tasks.web_events.task:WebEventsTask", "web-events"),
    "dns_exfil": TaskSpec("vigil.tasks.dns_exfil.task:DnsExfilTask", "dns", ("vigil.streaming.dns_cli",)),
    "iot_anomaly": TaskSpec("vigil.tasks.iot_anomaly.task:IotAnomalyTask", "iot-anomaly"),
    "web_sessions": TaskSpec("vigil.tasks.web_sessions.task:WebSessionsTask", "web-sessions"),
}


def task_name(name_or_slug: str) -> str:
    """The registry name of a task given by name or slug."""
    for name, spec in TASKS.items():
        if name_or_slug in (name, spec.slug, name.replace("_", "-")):
            return name
    raise VigilError(f"unknown task '{name_or_slug}'", {"known": list(TASKS)}, status=404)


@lru_cache(maxsize=None)
def get_task(name_or_slug: str) -> Task:
    module_name, class_name = TASKS[task_name(name_or_slug)].target.split(":")
    return getattr(importlib.import_module(module_name), class_name)()


def all_tasks() -> list[Task]:
    return [get_task(name) for name in TASKS]


def __getattr__(name: str):
    # PEP 562: the Task interface (and numpy with it) loads on first use, not on `vigil --help`.
    if name in ("PredictInput", "Task"):
        from vigil.tasks import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TASKS", "TaskSpec", "Task", "PredictInput", "get_task", "all_tasks", "task_name"]
