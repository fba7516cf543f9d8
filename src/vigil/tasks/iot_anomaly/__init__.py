"""IoT / physical anomaly detection after ychalier/anomaly: is a sensor's (class, length, width) odd?

Modules: ``data`` (readers of the original file formats, random odd points), ``detector``
(``Detector``, ``confusion_ratios``, estimators and grids), ``tuning`` (score files and plots),
``plots`` (decision boundaries), ``task`` (CLI verbs and ``/predict/iot-anomaly``), ``production``
(the original's ``classify(class_, length, width)`` -> ``"malicious"`` / ``"non-malicous"``).
"""

from vigil.tasks.iot_anomaly.data import OddPointBox, load_objects
from vigil.tasks.iot_anomaly.production import classify
from vigil.tasks.iot_anomaly.task import IotAnomalyTask

_DETECTOR_NAMES = ("ESTIMATORS", "Detector", "confusion_ratios", "make_estimator")


def __getattr__(name: str):
    # PEP 562: the detector (and scikit-learn with it) loads on first use, not on `vigil --help`.
    if name in _DETECTOR_NAMES:
        from vigil.tasks.iot_anomaly import detector

        return getattr(detector, name)
    raise AttributeError(name)


__all__ = [
    "IotAnomalyTask",
    "Detector",
    "confusion_ratios",
    "make_estimator",
    "ESTIMATORS",
    "OddPointBox",
    "load_objects",
    "classify",
]
