"""IoT / physical anomaly detection after ychalier/anomaly: is a sensor's (class, length, width) odd?

Modules: ``data`` (readers of the original file formats, random odd points), ``detector``
(``Detector``, ``confusion_ratios``, estimators and grids), ``tuning`` (score files and plots),
``plots`` (decision boundaries), ``task`` (the Task, ``/predict/iot-anomaly``), ``cli`` (the verbs),
``production`` (the original's ``classify(class_, length, width)`` -> ``"malicious"`` / ``"non-malicous"``).
Names are re-exported here on first use, so importing the package loads neither pandas nor scikit-learn.
"""

from __future__ import annotations

from vigil.lazy import lazy_exports

_EXPORTS = {
    "IotAnomalyTask": "task",
    "Detector": "detector",
    "confusion_ratios": "detector",
    "make_estimator": "detector",
    "ESTIMATORS": "detector",
    "OddPointBox": "data",
    "load_objects": "data",
    "classify": "production",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
