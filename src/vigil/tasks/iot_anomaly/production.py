"""The original's production function: ``classify(class_, length, width)`` -> an answer string.

ychalier/anomaly's README and ``main.ipynb`` end with a ``classify(class_, length, width)`` that
unpickles ``anomaly_classifier.clf`` and answers ``"malicious"`` or ``"non-malicous"`` (sic: the
original's spelling, kept so code that compares against it keeps working). This one answers the
same strings from the latest ``iot_anomaly`` model of Vigil's artifact store (verified, no pickle),
loaded once and reloaded when the store's manifest changes::

    from vigil.tasks.iot_anomaly import classify
    classify("moto", 6000, 1000), classify("car", 5000, 2000)
    ('malicious', 'non-malicous')

A class the model does not know, or a size that is not a non-negative number of mm, raises
``ValueError`` naming the field (the original raised ``ValueError`` from ``list.index`` for an unknown
class). Classes are resolved as the service does (case-insensitive, ``motorbike`` -> ``moto``...).
Train a model first (``vigil iot-anomaly train`` or ``vigil bootstrap``).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.tasks.iot_anomaly.task import IotAnomalyTask, normalise_item, validate_item

MALICIOUS = "malicious"
NON_MALICIOUS = "non-malicous"  # the original's answer string, spelling included

_lock = threading.Lock()
_cache: dict[tuple, tuple] = {}


def _store(models_dir: Path | str | None) -> ArtifactStore:
    settings = Settings.from_env(**({"models_dir": Path(models_dir)} if models_dir is not None else {}))
    return ArtifactStore.from_settings(settings)


def _model(models_dir, version):
    """(pipeline, classes) of the model, loaded again only when the manifest changed."""
    store = _store(models_dir)
    try:
        stat = store.manifest_path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None
    key = (str(store.root.resolve()), version)
    with _lock:
        cached = _cache.get(key)
        if cached is None or cached[0] != stamp or stamp is None:
            loaded = store.load(IotAnomalyTask.name, version)  # ModelNotAvailable when none is trained
            cached = (stamp, loaded.model, IotAnomalyTask.model_classes(loaded))
            _cache[key] = cached
    return cached[1], cached[2]


def classify(class_, length, width, *, models_dir: Path | str | None = None, version: str | None = None) -> str:
    """``"malicious"`` for an odd (class, length mm, width mm) reading, else ``"non-malicous"``."""
    model, classes = _model(models_dir, version)
    item = {"class": class_, "length": length, "width": width}
    problems = validate_item(item, classes, strings_are_numbers=True)
    if problems:
        raise ValueError(f"{problems[0]['field']}: {problems[0]['message']}")
    row = normalise_item(item, classes)
    label = model.predict(pd.DataFrame([row], columns=["class", "length", "width"]))[0]
    return MALICIOUS if int(label) == 1 else NON_MALICIOUS
