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
    A new version that fails to load or to answer its task's example is never served: the previous
    version keeps serving, or the task answers 503 with the reason when there is none. The failure
    is reported in ``errors`` (and in ``/ready``). On every reload the files of unchanged models
    are hashed again, so a byte flipped on disk is reported at once.

    Gunicorn workers are separate processes: ``request_reload()`` bumps a generation file in the
    server's runtime folder and every worker picks it up on its next request (``sync()``).
    """

    def __init__(self, store: ArtifactStore, generation_file: Path | None = None, max_rows: int = 100_000):
        self.store = store
        self.generation_file = generation_file
        self.max_rows = max_rows
        self._models: dict[str, LoadedModel] = {}
        self._errors: dict[str, str] = {}
        self._degraded: set[str] = set()  # served from memory, but their file on disk fails its check
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._seen_generation = self._generation_stamp()
        self.loaded_at: float | None = None
        self._artifacts: dict[str, LoadedModel] = {}  # artifact key -> newest version, see artifact()
        self._artifact_lock = threading.Lock()  # not _lock: a slow load must not hold up a reload's swap

    # -- loading ----------------------------------------------------------------------------
    def reload(self) -> dict[str, str]:
        with self._reload_lock:
            return self._reload()

    def _reload(self) -> dict[str, str]:
        current = self._models
        models, errors, degraded = {}, {}, set()
        try:
            manifest = {task.name: self.store.latest_entry(task.name) for task in all_tasks()}
        except VigilError as exc:  # unreadable, unsigned or rolled-back manifest: keep serving what we have
            log.error("model manifest refused", extra={"fields": {"reason": exc.error}})
            manifest = {task.name: None for task in all_tasks()}
            errors = {name: exc.error for name in manifest}
        for task in all_tasks():
            entry = manifest[task.name]
            previous = current.get(task.name)
            if entry is None:
                errors.setdefault(task.name, "no trained model")
            elif previous is None or previous.entry != entry:
                loaded = self._load_and_warm(task, entry)
                if isinstance(loaded, LoadedModel):
                    models[task.name] = loaded
                    continue
                errors[task.name] = loaded
                log.error(
                    "model not loaded",
                    extra={
                        "fields": {
                            "task": task.name,
                            "reason": loaded,
                            "kept_version": getattr(previous, "version", None),
                        }
                    },
                )
            if previous is not None:
                # Keep serving the copy in memory (verified when it was loaded), but check its file
                # again so a byte flipped on disk shows now, not at the next worker start.
                models[task.name] = previous
                try:
                    self.store.verified_bytes(previous.entry)
                except VigilError as exc:
                    degraded.add(task.name)
                    errors[task.name] = "; ".join(filter(None, [errors.get(task.name), exc.error]))
                    log.error(
                        "served model's file changed on disk",
                        extra={"fields": {"task": task.name, "reason": exc.error}},
                    )
        with self._lock:
            self._models, self._errors, self._degraded = models, errors, degraded
        self.loaded_at = time.time()
        return {name: loaded.version for name, loaded in models.items()}

    def _load_and_warm(self, task, entry: dict) -> LoadedModel | str:
        """The verified model of ``entry`` once it has answered its task's example, or why not.
        A model that cannot answer its own example is broken: it is never served."""
        try:
            loaded = self.store.load(task.name, entry["version"], long_lived=True)
        except VigilError as exc:
            return exc.error
        except Exception as exc:  # a broken artifact must not take the service down
            return f"{type(exc).__name__}: {exc}"
        return self._warm(task, loaded) or loaded

    def _warm(self, task, loaded: LoadedModel) -> str | None:
        """Answer the task's own example once, so the first client does not pay for lazy setup;
        return why it failed, if it did."""
        try:
            example = task.example_request()
            if example is not None:
                body = json.dumps(example).encode()
                task.predict(
                    loaded,
                    PredictInput(json=example, body=body, content_type="application/json", max_rows=self.max_rows),
                )
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

    # -- other artifact keys: a task's companion models, a stream's dynamic model ---------------------
    def artifact(self, key: str) -> LoadedModel | None:
        """The newest version of the artifact ``key`` in the store (None when it has none), loaded and
        verified through the artifact store once per version and kept here, so that every route asks
        the registry and no blueprint keeps its own cache. Used for what a task serves besides its
        main model (a companion model for real traffic, the dynamic model a running stream keeps saving)."""
        entry = self.store.latest_entry(key)
        if entry is None:
            return None
        held = self._artifacts.get(key)
        if held is not None and held.entry == entry:
            return held
        with self._artifact_lock:
            held = self._artifacts.get(key)
            if held is None or held.entry != entry:
                held = self.store.load(key, entry["version"], long_lived=True)
                self._artifacts = {**self._artifacts, key: held}  # swapped whole: readers never see a half
        return held

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

    @property
    def models(self) -> dict[str, LoadedModel]:
        return self._models

    @property
    def errors(self) -> dict[str, str]:
        return self._errors

    @property
    def ready(self) -> bool:
        """Every registered task serves a model that answered its warm-up example and whose file
        still verifies (a refused new version, with the previous one still serving, counts as ready)."""
        models, degraded = self._models, self._degraded
        return all(task.name in models and task.name not in degraded for task in all_tasks())
