"""Web-session intruder detection (Kaggle "Catch Me If You Can"): is this browsing session Alice's?

Modules: ``task`` (the Task, ``/predict/web-sessions``, the default model), ``cli`` (the verbs),
``data`` (Kaggle's files and the labelled set), ``features`` (the feature blocks), ``model`` (the
training protocol), ``api_input`` (request parsing). Names are re-exported here on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    name: "task"
    for name in ("WebSessionsTask", "SHIPPED_SAMPLE", "build_from_folder", "default_source", "submission_frame")
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
