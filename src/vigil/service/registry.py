"""Models the service holds in memory, loaded through the artifact store and swapped atomically."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from vigil.artifacts import ArtifactStore, LoadedModel
from vigil.errors import ModelNotAvailable, VigilError
from vigil.tasks import PredictInput, all_tasks

log = logging.getLogger("vigil.service")


class ModelRegistry:
    """One verified, warmed :class:`LoadedModel` per task.

    ``reload()`` builds a complete new mapping first and then replaces the reference in one
    assignment, so a request that already fetched a model keeps using it until it finishes.
    A model whose new version fails to load or to answer its example keeps serving the previous
    version; the failure is reported in ``errors`` (and in ``/ready``).

    Gunicorn workers are separate processes: ``request_reload()`` bumps a generation file in the
    server's runtime folder and every worker picks it up on its next request (``sync()``).
    """

    def __init__(self, store: ArtifactStore, generation_file: Path | None = None, max_rows: int = 100_000):
        self.store = store
        self.generation_file = generation_file
        self.max_rows = max_rows
        self._models: dict[str, LoadedModel] = {}
        self._errors: dict[str, str] = {}
        self._unwarmed: set[str] = set()
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._seen_generation = self._generation_stamp()
        self.loaded_at: float | None = None

    # -- loading ----------------------------------------------------------------------------
    def reload(self) -> dict[str, str]:
        with self._reload_lock:
            return self._reload()

    def _reload(self) -> dict[str, str]:
        current, unwarmed_before = self._models, self._unwarmed
        models, errors, unwarmed = {}, {}, set()
        try:
            manifest = {task.name: self.store.latest_entry(task.name) for task in all_tasks()}
        except VigilError as exc:  # unreadable or unsigned manifest: keep serving what we have
            log.error("model manifest refused", extra={"fields": {"reason": exc.error}})
            manifest = {task.name: None for task in all_tasks()}
            errors = {name: exc.error for name in manifest}
        for task in all_tasks():
            entry = manifest[task.name]
            previous = current.get(task.name)
            if entry is None:
                errors.setdefault(task.name, "no trained model")
            elif previous is not None and previous.entry == entry:
                models[task.name] = previous  # unchanged: no need to unpickle again
                if task.name in unwarmed_before:
                    unwarmed.add(task.name)
                    errors[task.name] = self._errors.get(task.name, "warm-up failed")
                continue
            else:
                try:
                    loaded = self.store.load(task.name, entry["version"])
                except VigilError as exc:
                    errors[task.name] = exc.error
                except Exception as exc:  # a broken artifact must not take the service down
                    errors[task.name] = f"{type(exc).__name__}: {exc}"
                else:
                    models[task.name] = loaded
                    warm_error = self._warm(task, loaded)
                    if warm_error:
                        # served all the same (real requests may differ from the example), but not ready
                        errors[task.name] = warm_error
                        unwarmed.add(task.name)
                        log.error("model warm-up failed", extra={"fields": {"task": task.name, "reason": warm_error}})
                    continue
                log.error("model not loaded", extra={"fields": {"task": task.name, "reason": errors[task.name]}})
            if previous is not None:
                models[task.name] = previous
        with self._lock:
            self._models, self._errors, self._unwarmed = models, errors, unwarmed
        self.loaded_at = time.time()
        return {name: loaded.version for name, loaded in models.items()}

    def _warm(self, task, loaded: LoadedModel) -> str | None:
        """Answer the task's own example once, so the first client does not pay for lazy setup;
        return why it failed, if it did."""
        try:
            example = task.example_request()
            if example is not None:
                body = json.dumps(example).encode()
                task.predict(loaded, PredictInput(json=example, body=body, content_type="application/json",
                                                  max_rows=self.max_rows))
        except Exception as exc:
            return f"model v{loaded.version} failed its warm-up prediction: {type(exc).__name__}: {exc}"
        return None

    # -- across workers ---------------------------------------------------------------------
    def _generation_stamp(self) -> int | None:
        if self.generation_file is None:
            return None
        try:
            return os.stat(self.generation_file).st_mtime_ns
        except FileNotFoundError:
            return None

    def request_reload(self) -> dict[str, str]:
        """Reload here, and tell the other workers to reload on their next request."""
        if self.generation_file is not None:
            self.generation_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.generation_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(f"{time.time_ns()} {os.getpid()}\n")
            os.replace(tmp, self.generation_file)
        with self._reload_lock:
            self._seen_generation = self._generation_stamp()
            return self._reload()

    def sync(self) -> None:
        """Reload if another worker asked for it; one thread reloads, the others go on serving."""
        stamp = self._generation_stamp()
        if stamp == self._seen_generation or not self._reload_lock.acquire(blocking=False):
            return
        try:
            stamp = self._generation_stamp()
            if stamp != self._seen_generation:
                self._seen_generation = stamp
                self._reload()
        finally:
            self._reload_lock.release()

    # -- access -----------------------------------------------------------------------------
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

    @property
    def ready(self) -> bool:
        """Every registered task has a model that answered its warm-up example (a refused new
        version, with the previous one still serving, counts as ready)."""
        models, unwarmed = self._models, self._unwarmed
        return all(task.name in models and task.name not in unwarmed for task in all_tasks())
