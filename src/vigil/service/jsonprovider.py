"""The app's one numpy-to-JSON conversion: a Flask JSON provider that writes numpy scalars and arrays.

Views return what the task or pipeline computed (``np.float64`` probabilities, ``np.int64`` labels,
arrays of indices, dicts keyed by numpy integers) and ``jsonify`` writes it; no view converts by hand.
orjson is not pinned, so this is the stdlib encoder: numpy values go through ``default``
(:func:`vigil.plain.to_plain`), and a document whose dict keys are numpy values (the stdlib refuses
them before ``default`` is ever asked) is converted once with string keys and written again.

>>> import numpy as np
>>> from flask import Flask
>>> app = Flask("demo"); app.json = VigilJSONProvider(app)
>>> app.json.dumps({"p": np.float32(0.5), "rows": np.arange(2), np.int64(3): "key"})
'{"p": 0.5, "rows": [0, 1], "3": "key"}'
"""

from __future__ import annotations

import json
from typing import Any

from flask.json.provider import DefaultJSONProvider

from vigil.plain import to_plain


def _numpy_default(value: Any) -> Any:
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
        return value.tolist()
    return DefaultJSONProvider.default(value)  # dates, UUIDs, dataclasses as Flask writes them


class VigilJSONProvider(DefaultJSONProvider):
    default = staticmethod(_numpy_default)  # type: ignore[assignment]
    sort_keys = False  # keys in the order the task wrote them (results read top-down)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        try:
            return json.dumps(obj, **kwargs)
        except TypeError:
            # numpy dict keys (e.g. per-class metrics keyed by label): the stdlib takes only str,
            # int, float, bool and None as keys, and never asks ``default`` about them
            return json.dumps(to_plain(obj, str_keys=True), **kwargs)
