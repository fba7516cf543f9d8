"""Models the service holds in memory, loaded through the artifact store and swapped atomically."""

from __future__ import annotations

import threading

from vigil.artifacts import ArtifactStore, LoadedModel
from vigil.errors import ModelNotAvailable, VigilError
from vigil.tasks import all_tasks


class ModelRegistry:
    """One verified :class:`LoadedModel` per task.

    ``reload()`` builds a complete new mapping first and then replaces the reference in one
    assignment, so a request that already fetched a model keeps using it until it finishes.
    """

    def __init__(self, store: ArtifactStore):
        self.store = store
        self._models: dict[str, LoadedModel] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def reload(self) -> dict[str, str]:
        models, errors = {}, {}
        for task in all_tasks():
            if not self.store.entries(task.name):
                errors[task.name] = "no trained model"
                continue
            try:
                models[task.name] = self.store.load(task.name)
            except VigilError as exc:
                errors[task.name] = exc.error
        with self._lock:
            self._models, self._errors = models, errors
        return {name: loaded.version for name, loaded in models.items()}

    def get(self, task_name: str) -> LoadedModel:
        loaded = self._models.get(task_name)
        if loaded is None:
            reason = self._errors.get(task_name, "not loaded")
            raise ModelNotAvailable(
                f"model for task '{task_name}' is not available: {reason}",
                f"train it with `vigil {task_name.replace('_', '-')} train`, then POST /admin/reload",
            )
        return loaded

    def put(self, loaded: LoadedModel) -> None:
        """Swap in one task's model (used by streaming retrains and active learning)."""
        with self._lock:
            models = dict(self._models)
            models[loaded.task] = loaded
            self._models = models

    @property
    def models(self) -> dict[str, LoadedModel]:
        return self._models

    @property
    def errors(self) -> dict[str, str]:
        return self._errors
