"""Web-session intruder detection (Kaggle "Catch Me If You Can"): is this browsing session Alice's?

Modules: ``task`` (the Task, ``/predict/web-sessions``, the default model), ``cli`` (the verbs),
``data`` (Kaggle's files and the labelled set), ``features`` (the feature blocks), ``model`` (the
training protocol), ``api_input`` (request parsing). Names are re-exported here on first use.
"""

from __future__ import annotations

from vigil.lazy import lazy_exports

_EXPORTS = {
    name: "task"
    for name in ("WebSessionsTask", "SHIPPED_SAMPLE", "build_from_folder", "default_source", "submission_frame")
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
