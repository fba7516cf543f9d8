"""Registry of Vigil's tasks. Adding a task is adding one line to ``TASKS``."""

from __future__ import annotations

import importlib
from functools import lru_cache

from vigil.errors import VigilError
from vigil.tasks.base import PredictInput, Task

# name -> "module:Class"; the order is the order of the CLI help and the UI.
TASKS: dict[str, str] = {
    "ember": "vigil.tasks.ember.task:EmberTask",
    "web_events": "vigil.tasks.web_events:WebEventsTask",
    "dns_exfil": "vigil.tasks.dns_exfil:DnsExfilTask",
    "iot_anomaly": "vigil.tasks.iot_anomaly:IotAnomalyTask",
    "web_sessions": "vigil.tasks.web_sessions:WebSessionsTask",
}


@lru_cache(maxsize=None)
def get_task(name_or_slug: str) -> Task:
    key = name_or_slug.replace("-", "_")
    for name, target in TASKS.items():
        module_name, class_name = target.split(":")
        if key == name:
            return getattr(importlib.import_module(module_name), class_name)()
    for name in TASKS:
        task = get_task(name)
        if task.slug == name_or_slug:
            return task
    raise VigilError(f"unknown task '{name_or_slug}'", {"known": list(TASKS)}, status=404)


def all_tasks() -> list[Task]:
    return [get_task(name) for name in TASKS]


__all__ = ["TASKS", "Task", "PredictInput", "get_task", "all_tasks"]
