"""The app's one numpy-to-JSON conversion: a Flask JSON provider that writes numpy scalars and arrays.

Views return what the task or pipeline computed (``np.float64`` probabilities, ``np.int64`` labels,
arrays of indices, dicts keyed by numpy integers) and ``jsonify`` writes it; no view converts by hand.
Answers are written by the stdlib encoder: numpy values go through ``default``
(:func:`vigil.plain.to_plain`), and a document whose dict keys are numpy values (the stdlib refuses
them before ``default`` is ever asked) is converted once with string keys and written again.

A compact answer (what ``jsonify`` asks for) made only of dicts, lists, strings, ints, bools and
None, such as ML-PT's ``[{"EVENT_ID", "LABEL_PRED"}]`` for 10,000 events, is written by orjson
instead (15x faster) wherever orjson's bytes are the stdlib's: its output is kept only when it is
printable ASCII (the stdlib with ``ensure_ascii`` escapes everything else, orjson writes UTF-8 and
DEL as they are), and a document orjson refuses (an int past 64 bits, a lone surrogate, a key that
is not a string, nesting past 255) goes to the stdlib. Floats always go to the stdlib: the two write
exponents and NaN differently.

>>> import numpy as np
>>> from flask import Flask
>>> app = Flask("demo"); app.json = VigilJSONProvider(app)
>>> app.json.dumps({"p": np.float32(0.5), "rows": np.arange(2), np.int64(3): "key"})
'{"p": 0.5, "rows": [0, 1], "3": "key"}'
>>> app.json.dumps([{"EVENT_ID": "a\\u00e9", "LABEL_PRED": 1}], separators=(",", ":"))
'[{"EVENT_ID":"a\\\\u00e9","LABEL_PRED":1}]'
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

from vigil.plain import to_plain

COMPACT_SEPARATORS = (",", ":")  # what Flask's ``response`` passes outside debug mode
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})  # written byte for byte alike by orjson and the stdlib
_CONTAINER_TYPES = frozenset({dict, list})
_MAX_WALK_DEPTH = 255  # orjson's own nesting limit; deeper (or a cycle) goes to the stdlib


def _numpy_default(value: Any) -> Any:
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
        return value.tolist()
    return DefaultJSONProvider.default(value)  # dates, UUIDs, dataclasses as Flask writes them


def only_plain_values(document: Any) -> bool:
    """True when ``document`` holds nothing but dicts, lists, strings, ints, bools and None (those
    exact types: a subclass such as ``np.float64`` or an IntEnum is not plain), found by a type set
    per container; a list of dicts (records) has its records' values typed together, in C.

    >>> only_plain_values([{"EVENT_ID": "x", "LABEL_PRED": 1}, {"nested": [None, True]}])
    True
    >>> only_plain_values({"probability": 0.5})
    False
    """
    pending = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        kind = type(value)
        if kind not in _CONTAINER_TYPES:
            if kind not in _PLAIN_TYPES:
                return False
            continue
        if depth >= _MAX_WALK_DEPTH:
            return False
        values: Any = value.values() if kind is dict else value
        types = set(map(type, values))
        records = kind is list and types == {dict}
        if records:  # all their values at once
            types = set(map(type, itertools.chain.from_iterable(map(dict.values, value))))
        if types <= _PLAIN_TYPES:
            continue
        if not types <= _PLAIN_TYPES | _CONTAINER_TYPES:
            return False
        if records:
            values, depth = itertools.chain.from_iterable(map(dict.values, value)), depth + 1
        pending.extend((item, depth + 1) for item in values if type(item) in _CONTAINER_TYPES)
    return True


class VigilJSONProvider(DefaultJSONProvider):
    default = staticmethod(_numpy_default)  # type: ignore[assignment]
    sort_keys = False  # keys in the order the task wrote them (results read top-down)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs == {"separators": COMPACT_SEPARATORS} and self.ensure_ascii and not self.sort_keys:
            written = _orjson_as_stdlib(obj)
            if written is not None:
                return written
        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        try:
            return json.dumps(obj, **kwargs)
        except TypeError:
            # numpy dict keys (e.g. per-class metrics keyed by label): the stdlib takes only str,
            # int, float, bool and None as keys, and never asks ``default`` about them
            return json.dumps(to_plain(obj, str_keys=True), **kwargs)


def _orjson_as_stdlib(document: Any) -> str | None:
    """``json.dumps(document, separators=(",", ":"), ensure_ascii=True)`` written by orjson, or None
    where orjson's bytes could differ (see the module docstring)."""
    if not only_plain_values(document):
        return None
    try:
        written = orjson.dumps(document)
    except orjson.JSONEncodeError:
        return None
    if not written.isascii() or b"\x7f" in written:
        return None
    return written.decode("ascii")
