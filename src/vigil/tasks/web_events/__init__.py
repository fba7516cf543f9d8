"""Web-attack events (ML-PT): wrangling, features, DBSCAN labels, a tuned forest, ML-PT's /predict.

Modules: ``task`` (the Task: ``/predict``, the default model), ``cli`` (``vigil web-events ...``),
``train`` (:func:`train_model`), ``training`` (classifier comparison and search), ``clustering``,
``features``, ``wrangling``, ``data`` (CSV and request formats), ``generator``, ``replay``.
Names are re-exported here on first use, so importing the package loads no scikit-learn.
"""

from __future__ import annotations

from vigil.lazy import lazy_exports

_EXPORTS = {
    "WebEventsTask": "task",
    "EXAMPLE_EVENTS": "task",
    "label_response": "task",
    "predict_mlpt": "task",
    "label_events": "train",
    "model_pipeline": "train",
    "train_model": "train",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
