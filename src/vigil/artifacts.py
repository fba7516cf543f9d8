"""The one place that saves and loads model artifacts.

Layout of the store (``models/`` by default)::

    models/manifest.json                 every artifact: task, version, sha256, metrics, ...; a sequence
    models/<task>/<task>-v<N>.skops      the fitted pipeline, in skops' format (no code runs on load)
    models/<task>/<task>-v<N>.txt        LightGBM's native text model, when the pipeline holds one
    models/<task>/<task>-v<N>.joblib     older artifacts (joblib pickles): loaded only from a manifest
                                         signed with VIGIL_MODEL_KEY, refused otherwise
    models/<task>/<task>-v<N>.<name>     sidecar files a task made at training time (EMBER: the model
                                         converted for ONNX Runtime, the rows it is checked on); each
                                         listed in the entry's ``sidecars`` with its SHA-256

Threat model. Whoever can write ``models/`` can replace files; the store makes that harmless:

- The model file is read into memory once; the SHA-256 listed in the manifest (and with
  ``VIGIL_MODEL_KEY`` the manifest's HMAC) is checked on those bytes and the model is built from
  those same bytes, so swapping the file between check and load changes nothing.
- ``.skops`` files are loaded by skops, which builds only the types it is told to trust; the store
  trusts an exact list of class names (:data:`TRUSTED_TYPES`) and refuses a file naming any other.
  No pickle, no import of a name the file chooses. A ``.joblib`` file (a pickle: loading it runs
  whatever code it names) is loaded only when the store has ``VIGIL_MODEL_KEY`` and the manifest's
  HMAC verified, so a signature made with the key covers the SHA-256 of the very bytes unpickled;
  without a key it is refused (``ArtifactIntegrityError``: retrain to get a ``.skops`` file, or set
  the key). Nothing saves ``.joblib`` any more; the path is for artifacts saved before skops.
- Sidecar files are read once and hash-checked the same way at load; their verified bytes are
  handed to the task (``LoadedModel.sidecars``) as data, never imported or unpickled. One that is
  missing or does not match its hash is left out (logged), and the model is served without it.
- With ``VIGIL_MODEL_KEY`` the signed manifest carries a ``sequence`` that grows with every save.
  The highest sequence this machine has accepted is kept outside the models folder
  (``VIGIL_STATE_DIR``); a manifest with a lower one (an old, validly signed manifest put back to
  roll a model back to a known-bad version) is refused. Without a key the manifest is trusted as
  found: write access to ``models/`` then means control of which trusted-type model is served, never
  code execution (no ``.joblib`` is loaded, and a ``.skops`` file builds only trusted types).

Example::

    store = ArtifactStore(tmp_path)
    entry = store.save("iot_anomaly", pipeline, metrics={"f1": 0.93})
    loaded = store.load("iot_anomaly")
    loaded.model.predict(rows); loaded.version
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import hmac
import io
import json
import logging
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib

from vigil.errors import ArtifactIntegrityError, ModelNotAvailable
from vigil.files import atomic_write
from vigil.plain import to_plain

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
FORMAT = ".skops"
LEGACY_FORMAT = ".joblib"  # pickles saved before skops: loaded only under a verified manifest signature
# The exact classes (beyond skops' own trusted numpy/scipy/scikit-learn types) that a .skops
# artifact may name. A file naming anything else is refused before it is built.
TRUSTED_TYPES = frozenset(
    {
        "collections.OrderedDict",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "sklearn.tree._tree.Tree",
        "vigil.tasks.dns_exfil.model.FeatureColumns",
        "vigil.tasks.dns_exfil.model._mutual_info",  # the k-best score function of mutual_info_k8
        "vigil.tasks.ember.model.RawRecordVectorizer",
        "vigil.tasks.web_events.features.ClientIpGroups",
        "vigil.tasks.web_events.features.EventFeatures",
        "vigil.tasks.web_events.features.NumberColumn",
        "vigil.tasks.web_events.features.ScaledPCA",
        "vigil.tasks.web_events.features.TextTfidf",
        "vigil.tasks.web_events.wrangling.EventWrangler",
        "vigil.tasks.web_sessions.features.SessionFeaturizer",
        "vigil.tasks.web_sessions.features.SessionShape",
        "vigil.tasks.web_sessions.features.SiteNameTokens",
        "vigil.tasks.web_sessions.features.SiteNgrams",
        "vigil.tasks.web_sessions.features.SiteDictionary",
        "vigil.tasks.web_sessions.features.SiteScore",
        "vigil.tasks.web_sessions.features.StartClock",
        "vigil.tasks.web_sessions.features.StartHour",
        "vigil.tasks.web_sessions.features.StartWeekday",
        "vigil.tasks.web_sessions.features.TopSitesShare",
        "vigil.tasks.web_sessions.features.VisitGaps",
        "vigil.tasks.web_sessions.features.WeekdayHour",
        "vigil.tasks.web_sessions.features.split_on_spaces",
        "vigil.tasks.web_sessions.model.MeanProbability",
    }
)
TRACKED_LIBRARIES = ("vigil", "numpy", "pandas", "scikit-learn", "lightgbm", "lief", "skops")


def library_versions() -> dict[str, str | None]:
    versions = {}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def dumps_model(model: Any) -> bytes:
    """``model`` in skops' format; a model naming a type outside :data:`TRUSTED_TYPES` is a
    ``ValueError`` here, at training time, since the service would refuse to load it."""
    import skops.io

    data = skops.io.dumps(model, compression=8)
    named = _named_types(data, "the model to save")
    refused = sorted(set(named) - TRUSTED_TYPES)
    if refused:
        raise ValueError(
            f"the model names types outside the trusted list {refused}; add them to "
            "vigil.artifacts.TRUSTED_TYPES if they are plain estimators"
        )
    return data


def loads_model(data: bytes) -> Any:
    """A model from skops bytes, built only if every type the archive names is trusted."""
    import skops.io

    named = _named_types(data, "the model file")
    refused = sorted(set(named) - TRUSTED_TYPES)
    if refused:
        raise ArtifactIntegrityError(
            "the model file names types outside the trusted list; refusing it", {"untrusted_types": refused}
        )
    return skops.io.loads(data, trusted=named)


def _named_types(data: bytes, what: str) -> list[str]:
    """The types a skops archive names beyond skops' own defaults; read from its schema, nothing built."""
    import skops.io

    try:
        return list(skops.io.get_untrusted_types(data=data))
    except Exception as exc:  # not a skops archive, or a malformed one
        raise ArtifactIntegrityError(f"{what} is not a readable skops archive", str(exc)) from None


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
    """A verified artifact: the model (one fitted estimator) and its manifest entry."""

    model: Any
    entry: dict
    # name -> verified bytes of the entry's sidecar files (data for the task, e.g. an ONNX model)
    sidecars: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)
    # what the task builds once per load from the sidecars (e.g. an ONNX Runtime session)
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # kept for many calls (the service's registry): a task may then spend a second or two once to make
    # each call faster (EMBER compiles its trees); a one-shot command does not pay for that
    long_lived: bool = field(default=False, compare=False)

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

    def decision_threshold(self, default: float = 0.5) -> float:
        """The manifest's threshold, or ``default`` for an artifact saved without one."""
        threshold = self.threshold
        return float(threshold) if threshold is not None else default

    @property
    def feature_version(self):
        return self.entry.get("feature_version")


class ArtifactStore:
    """Versioned model files under ``root`` and their manifest.

    ``state_dir`` (outside ``root``) keeps the highest manifest sequence accepted here; with a
    ``model_key`` an older signed manifest is refused (see the module's threat model).
    """

    def __init__(self, root: Path | str, model_key: str | None = None, state_dir: Path | str | None = None):
        self.root = Path(root)
        self.model_key = model_key
        self.state_dir = Path(state_dir) if state_dir is not None else None

    @classmethod
    def from_settings(cls, settings) -> "ArtifactStore":
        return cls(settings.models_dir, model_key=settings.model_key, state_dir=settings.state_path)

    # -- manifest ---------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def _signature(self, artifacts: list[dict], sequence: int | None) -> str:
        signed: Any = artifacts if sequence is None else {"artifacts": artifacts, "sequence": sequence}
        canonical = json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self.model_key.encode(), canonical, hashlib.sha256).hexdigest()

    def _read_document(self) -> dict:
        try:
            document = json.loads(self.manifest_path.read_text())
            if not isinstance(document["artifacts"], list):
                raise TypeError("artifacts must be a list")
            sequence = document.get("sequence")
            if sequence is not None and (type(sequence) is not int or sequence < 0):
                raise TypeError("sequence must be a non-negative integer")
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactIntegrityError("model manifest is unreadable", str(exc)) from exc
        return document

    def read_manifest(self) -> list[dict]:
        if not self.manifest_path.exists():
            return []
        document = self._read_document()
        artifacts, sequence = document["artifacts"], document.get("sequence")
        if self.model_key:
            signature = document.get("hmac")
            if not isinstance(signature, str) or not hmac.compare_digest(
                signature, self._signature(artifacts, sequence)
            ):
                raise ArtifactIntegrityError(
                    "model manifest signature is missing or invalid",
                    "VIGIL_MODEL_KEY is set, so the manifest must be signed with it",
                )
            self._accept_sequence(sequence or 0)
        return artifacts

    # -- rollback protection -----------------------------------------------------------------
    @property
    def _sequence_file(self) -> Path | None:
        if self.state_dir is None:
            return None
        # One file per models folder, named by its resolved path: several stores may share state_dir.
        tag = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
        return self.state_dir / f"manifest-sequence-{tag}"

    def accepted_sequence(self) -> int:
        """The highest signed manifest sequence accepted on this machine (0: none yet)."""
        path = self._sequence_file
        try:
            return int(path.read_text().split()[0]) if path else 0
        except (FileNotFoundError, ValueError, IndexError):
            return 0

    def _accept_sequence(self, sequence: int) -> None:
        path = self._sequence_file
        if path is None:
            return
        highest = self.accepted_sequence()
        if sequence < highest:
            raise ArtifactIntegrityError(
                f"model manifest sequence {sequence} is older than {highest}, already accepted here; "
                "refusing a rolled-back manifest",
                {"sequence": sequence, "accepted": highest, "state_file": path.name},
            )
        if sequence > highest:
            with _file_lock(path.with_name(path.name + ".lock")):
                if sequence > self.accepted_sequence():
                    atomic_write(path, f"{sequence}\n")

    def _write_manifest(self, artifacts: list[dict]) -> None:
        previous = self._read_document().get("sequence", 0) if self.manifest_path.exists() else 0
        sequence = max(previous or 0, self.accepted_sequence()) + 1
        document: dict[str, Any] = {"format": 1, "artifacts": artifacts, "sequence": sequence}
        if self.model_key:
            document["hmac"] = self._signature(artifacts, sequence)
        atomic_write(self.manifest_path, json.dumps(document, indent=2, sort_keys=True))
        if self.model_key:
            self._accept_sequence(sequence)

    def _locked(self):
        return _file_lock(self.root / ".manifest.lock")

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
        sidecars: dict[str, bytes] | None = None,
    ) -> dict:
        """Dump ``model`` as the next version of ``task`` and record it in the manifest; each of
        ``sidecars`` (name -> bytes) is written as ``<task>-v<N>.<name>`` and listed with its hash."""
        with self._locked():
            artifacts = self.read_manifest()
            previous = [int(e["version"]) for e in artifacts if e["task"] == task]
            version = str(max(previous, default=0) + 1)
            folder = self.root / task
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{task}-v{version}{FORMAT}"
            data = dumps_model(model)
            atomic_write(path, data)
            entry = {
                "task": task,
                "version": version,
                "file": path.relative_to(self.root).as_posix(),
                "sha256": hashlib.sha256(data).hexdigest(),
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
            if sidecars:
                entry["sidecars"] = {}
                for name, content in sidecars.items():
                    if not name.replace("_", "").replace("-", "").isalnum() or name in ("skops", "txt", "joblib"):
                        raise ValueError(f"sidecar name {name!r} is not a plain word")
                    side = folder / f"{task}-v{version}.{name}"
                    atomic_write(side, content)
                    entry["sidecars"][name] = {
                        "file": side.relative_to(self.root).as_posix(),
                        "sha256": hashlib.sha256(content).hexdigest(),
                    }
            artifacts.append(entry)
            self._write_manifest(artifacts)
        return entry

    def load(self, task: str, version: str | None = None, long_lived: bool = False) -> LoadedModel:
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
        pickled = str(entry.get("file", "")).endswith(LEGACY_FORMAT)
        if not pickled and not str(entry.get("file", "")).endswith(FORMAT):
            raise ArtifactIntegrityError(f"model file {entry.get('file')} is in no format the store loads")
        # read_manifest refuses a manifest whose HMAC does not verify whenever the store has a key, so
        # with a key this entry, and the hash checked below, are covered by a signature made with it
        if pickled and not self.model_key:
            raise ArtifactIntegrityError(
                f"model file {entry['file']} is in the joblib (pickle) format, which runs code when loaded, "
                "and the manifest is not signed; refusing it",
                "retrain to save it as .skops (`vigil bootstrap --force`, or `vigil <task> train`), "
                "or set VIGIL_MODEL_KEY to the key that signed this manifest",
            )
        data = self.verified_bytes(entry)
        try:
            if pickled:
                # joblib runs code on load: only on bytes whose hash a verified signature covers
                model = joblib.load(io.BytesIO(data))
            else:
                model = loads_model(data)
        except ArtifactIntegrityError:
            raise
        except Exception as exc:
            raise ArtifactIntegrityError(
                f"model file {entry['file']} could not be loaded", f"{type(exc).__name__}: {exc}"
            ) from None
        return LoadedModel(model=model, entry=entry, sidecars=self._verified_sidecars(entry), long_lived=long_lived)

    def _verified_sidecars(self, entry: dict) -> dict[str, bytes]:
        """The entry's sidecar files, each read once and checked against its listed hash; one that
        is missing or does not match is left out (the model serves without it) and logged."""
        verified = {}
        listed = entry.get("sidecars") or {}
        for name, side in listed.items() if isinstance(listed, dict) else ():
            try:
                verified[name] = self.verified_bytes(side if isinstance(side, dict) else {})
            except ArtifactIntegrityError as exc:
                log.error("sidecar %s of %s v%s refused: %s", name, entry.get("task"), entry.get("version"), exc.error)
        return verified

    def verified_bytes(self, entry: dict) -> bytes:
        """The bytes of ``entry``'s model file, read once and checked against the manifest's SHA-256;
        whatever is built from a model file is built from these bytes, never from a second read."""
        file = entry.get("file")
        if not isinstance(file, str) or not isinstance(entry.get("sha256"), str):
            raise ArtifactIntegrityError("manifest entry lacks its file or hash", {"task": entry.get("task")})
        path = (self.root / file).resolve()
        if self.root.resolve() not in path.parents:
            raise ArtifactIntegrityError("manifest points outside the model store", file)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except (FileNotFoundError, IsADirectoryError):
            raise ArtifactIntegrityError("model file listed in the manifest is missing", file) from None
        actual = hashlib.sha256(data).hexdigest()
        if not hmac.compare_digest(actual, entry["sha256"]):
            raise ArtifactIntegrityError(
                f"model file {file} does not match its manifest hash; refusing to load it",
                {"expected": entry["sha256"], "actual": actual},
            )
        return data

    def load_file(self, path: Path) -> Any:
        """The model in ``path``, only if the manifest lists it (then loaded as :meth:`load` loads it)."""
        path = Path(path).resolve()
        for entry in self.read_manifest():
            if (self.root / entry["file"]).resolve() == path:
                return self.load(entry["task"], entry["version"]).model
        raise ArtifactIntegrityError("file is not listed in the model manifest; refusing to load it", str(path))


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
