"""The one place that saves and loads model artifacts.

Layout of the store (``models/`` by default)::

    models/manifest.json                 every artifact: task, version, sha256, metrics, ...
    models/<task>/<task>-v<N>.joblib     the bundle (a fitted pipeline plus whatever the task needs)
    models/<task>/<task>-v<N>.txt        LightGBM's native text model, when the bundle holds one

Loading a joblib file runs code, so :meth:`ArtifactStore.load` refuses any file
that is not listed in the manifest or whose SHA-256 differs from the listed one.
With ``VIGIL_MODEL_KEY`` set the manifest itself must carry a valid HMAC-SHA256,
so write access to ``models/`` alone is not enough to inject a model.

Example::

    >>> store = ArtifactStore(tmp_path)                      # doctest: +SKIP
    >>> entry = store.save("iot_anomaly", pipeline, metrics={"f1": 0.93})
    >>> loaded = store.load("iot_anomaly")
    >>> loaded.model.predict(rows); loaded.version
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import hmac
import json
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib

from vigil.errors import ArtifactIntegrityError, ModelNotAvailable
from vigil.plain import to_plain

MANIFEST_NAME = "manifest.json"
TRACKED_LIBRARIES = ("vigil", "numpy", "pandas", "scikit-learn", "lightgbm", "lief", "joblib")


def library_versions() -> dict[str, str | None]:
    versions = {}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_fingerprint(*parts: Any) -> str:
    """SHA-256 over training data: numpy arrays, DataFrames, bytes, strings or file paths."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            digest.update(sha256_file(part).encode())
        elif hasattr(part, "to_numpy"):
            digest.update(_array_bytes(part.to_numpy()))
        elif hasattr(part, "tobytes"):
            digest.update(_array_bytes(part))
        elif isinstance(part, bytes):
            digest.update(part)
        else:
            digest.update(str(part).encode())
    return digest.hexdigest()


def _array_bytes(array) -> bytes:
    import numpy as np

    array = np.asarray(array)
    if array.dtype == object:
        return "\x1f".join(map(str, array.ravel())).encode()
    return np.ascontiguousarray(array).tobytes()


@dataclass(frozen=True)
class LoadedModel:
    """A verified artifact: the unpickled bundle and its manifest entry."""

    model: Any
    entry: dict

    @property
    def task(self) -> str:
        return self.entry["task"]

    @property
    def version(self) -> str:
        return self.entry["version"]

    @property
    def metrics(self) -> dict:
        return self.entry.get("metrics", {})

    @property
    def threshold(self) -> float | None:
        return self.entry.get("threshold")

    @property
    def feature_version(self):
        return self.entry.get("feature_version")


class ArtifactStore:
    def __init__(self, root: Path | str, model_key: str | None = None):
        self.root = Path(root)
        self.model_key = model_key

    # -- manifest ---------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def _signature(self, artifacts: list[dict]) -> str:
        canonical = json.dumps(artifacts, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self.model_key.encode(), canonical, hashlib.sha256).hexdigest()

    def read_manifest(self) -> list[dict]:
        if not self.manifest_path.exists():
            return []
        try:
            document = json.loads(self.manifest_path.read_text())
            artifacts = document["artifacts"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactIntegrityError("model manifest is unreadable", str(exc)) from exc
        if self.model_key:
            signature = document.get("hmac")
            if not signature or not hmac.compare_digest(signature, self._signature(artifacts)):
                raise ArtifactIntegrityError(
                    "model manifest signature is missing or invalid",
                    "VIGIL_MODEL_KEY is set, so the manifest must be signed with it",
                )
        return artifacts

    def _write_manifest(self, artifacts: list[dict]) -> None:
        document: dict[str, Any] = {"format": 1, "artifacts": artifacts}
        if self.model_key:
            document["hmac"] = self._signature(artifacts)
        _atomic_write_text(self.manifest_path, json.dumps(document, indent=2, sort_keys=True))

    @contextlib.contextmanager
    def _locked(self):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".manifest.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- queries ----------------------------------------------------------------------------
    def entries(self, task: str | None = None) -> list[dict]:
        return [e for e in self.read_manifest() if task is None or e["task"] == task]

    def latest_entry(self, task: str) -> dict | None:
        entries = self.entries(task)
        return max(entries, key=lambda e: int(e["version"])) if entries else None

    def tasks(self) -> list[str]:
        return sorted({e["task"] for e in self.read_manifest()})

    # -- save / load ------------------------------------------------------------------------
    def save(
        self,
        task: str,
        model: Any,
        *,
        metrics: dict | None = None,
        threshold: float | None = None,
        feature_version: Any = None,
        data_fingerprint: str | None = None,
        lightgbm_booster: Any = None,
        extra: dict | None = None,
    ) -> dict:
        """Dump ``model`` as the next version of ``task`` and record it in the manifest."""
        with self._locked():
            artifacts = self.read_manifest()
            previous = [int(e["version"]) for e in artifacts if e["task"] == task]
            version = str(max(previous, default=0) + 1)
            folder = self.root / task
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{task}-v{version}.joblib"
            with _atomic_path(path) as tmp:
                joblib.dump(model, tmp, compress=3)
            entry = {
                "task": task,
                "version": version,
                "file": path.relative_to(self.root).as_posix(),
                "sha256": sha256_file(path),
                "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "data_fingerprint": data_fingerprint,
                "feature_version": feature_version,
                "library_versions": library_versions(),
                "metrics": to_plain(metrics or {}, str_keys=True),
                "threshold": None if threshold is None else float(threshold),
                "extra": to_plain(extra or {}, str_keys=True),
            }
            if lightgbm_booster is not None:
                native = folder / f"{task}-v{version}.txt"
                lightgbm_booster.save_model(str(native))
                entry["native_model"] = native.relative_to(self.root).as_posix()
            artifacts.append(entry)
            self._write_manifest(artifacts)
        return entry

    def load(self, task: str, version: str | None = None) -> LoadedModel:
        entries = self.entries(task)
        if not entries:
            raise ModelNotAvailable(
                f"no trained model for task '{task}'",
                f"train one with `vigil {task.replace('_', '-')} train` or run `vigil bootstrap`",
            )
        if version is None:
            entry = max(entries, key=lambda e: int(e["version"]))
        else:
            matches = [e for e in entries if e["version"] == str(version)]
            if not matches:
                raise ModelNotAvailable(f"task '{task}' has no model version {version}")
            entry = matches[0]
        path = (self.root / entry["file"]).resolve()
        if self.root.resolve() not in path.parents:
            raise ArtifactIntegrityError("manifest points outside the model store", entry["file"])
        if not path.is_file():
            raise ArtifactIntegrityError("model file listed in the manifest is missing", entry["file"])
        actual = sha256_file(path)
        if not hmac.compare_digest(actual, entry["sha256"]):
            raise ArtifactIntegrityError(
                f"model file {entry['file']} does not match its manifest hash; refusing to load it",
                {"expected": entry["sha256"], "actual": actual},
            )
        return LoadedModel(model=joblib.load(path), entry=entry)

    def load_file(self, path: Path) -> Any:
        """Load a joblib file only if the manifest lists it with a matching hash."""
        path = Path(path).resolve()
        for entry in self.read_manifest():
            if (self.root / entry["file"]).resolve() == path:
                return self.load(entry["task"], entry["version"]).model
        raise ArtifactIntegrityError("file is not listed in the model manifest; refusing to load it", str(path))


def _atomic_write_text(path: Path, text: str) -> None:
    with _atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def _atomic_path(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
