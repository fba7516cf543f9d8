"""Helpers shared by the service tests: a real task with a model trained once, gunicorn pids, metrics."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.tasks import all_tasks

# Cheapest tasks first: the service tests only need one real model, whichever has landed.
PREFERRED = ("iot_anomaly", "dns_exfil", "web_sessions", "web_events", "ember")


def first_task():
    tasks = sorted(all_tasks(), key=lambda t: PREFERRED.index(t.name) if t.name in PREFERRED else len(PREFERRED))
    if not tasks:
        pytest.skip("no task is registered in vigil.tasks.TASKS yet")
    return tasks[0]


def train_one(models_dir: Path, work_dir: Path):
    """Train the first task's default model into ``models_dir``; return (task, store)."""
    task = first_task()
    settings = Settings.from_env(models_dir=models_dir, work_dir=work_dir, bucket_root=work_dir / "bucket")
    store = ArtifactStore(models_dir)
    task.train_default(store, settings)
    return task, store


@pytest.fixture(scope="session")
def service_trained(tmp_path_factory):
    """(task, store) with the first task's default model, trained once per test session.
    Import it into a test module to use it; tests that change the store work on a copy_store()."""
    root = tmp_path_factory.mktemp("service-trained")
    return train_one(root / "models", root / "runs")


def copy_store(source: Path, target: Path, model_key: str | None = None) -> ArtifactStore:
    shutil.copytree(source, target)
    return ArtifactStore(target, model_key=model_key)


def gunicorn_workers(server) -> list[int]:
    """Pids of the gunicorn workers of ``server`` (`vigil serve` execs gunicorn's master)."""

    def children(pid: int) -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        return found

    return sorted(children(server.process.pid))


def metric_samples(text: str) -> list:
    from prometheus_client.parser import text_string_to_metric_families

    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def sum_samples(samples, name: str, **labels) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))
