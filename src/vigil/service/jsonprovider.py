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

A compact answer that holds records with floats (EMBER's 1,000 ``{"index", "probability",
"malicious"}``), as the document itself or as a value of its top-level object, has each such list
written a column at a time (:func:`records_text`), ~1.7x faster than the stdlib's record by record,
in the stdlib's bytes: records of one key order whose every column holds one type (float, int,
bool, str or None). A float column's values in [1e-4, 1e16) are written by one orjson call (it
writes there the digits and form ``float.__repr__`` does; outside, its exponents differ), the
others by ``float.__repr__`` or as the stdlib spells NaN and the infinities (a column mostly
outside, a batch of confident verdicts, by ``float.__repr__`` alone). Anything else is written as
before.

>>> import numpy as np
>>> from flask import Flask
>>> app = Flask("demo"); app.json = VigilJSONProvider(app)
>>> app.json.dumps({"p": np.float32(0.5), "rows": np.arange(2), np.int64(3): "key"})
'{"p": 0.5, "rows": [0, 1], "3": "key"}'
>>> app.json.dumps([{"EVENT_ID": "a\\u00e9", "LABEL_PRED": 1}], separators=(",", ":"))
'[{"EVENT_ID":"a\\\\u00e9","LABEL_PRED":1}]'
>>> records_text([{"i": i, "p": p} for i, p in enumerate([0.5, 1.5e-05, float("nan")])], minimum=1)
'[{"i":0,"p":0.5},{"i":1,"p":1.5e-05},{"i":2,"p":NaN}]'
"""

from __future__ import annotations

import itertools
import json
import math
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]  # the stdlib encoder's own, in C
from operator import itemgetter
from typing import Any, Callable

import numpy as np
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
            if written is None:
                written = self._with_records_by_column(obj)
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

    def _with_records_by_column(self, document: Any) -> str | None:
        """The compact text of a list of records, or of an object with string keys some of whose
        values are such lists, those lists by :func:`records_text` and its other values as
        :meth:`dumps` writes them (compact JSON is written alike nested or alone); None where there
        is no such list."""
        if type(document) is list:
            return records_text(document)
        if type(document) is not dict or set(map(type, document)) != {str}:
            return None
        texts = {key: records_text(value) for key, value in document.items() if type(value) is list}
        if not any(text is not None for text in texts.values()):
            return None
        members = (
            f"{encode_basestring_ascii(key)}:" + (texts.get(key) or self.dumps(value, separators=COMPACT_SEPARATORS))
            for key, value in document.items()
        )
        return "{" + ",".join(members) + "}"


RECORDS_MIN = 64  # shorter lists of records: the stdlib alone is about as fast


def _stdlib_float(value: float) -> str:
    """A float as the stdlib encoder writes it (``allow_nan``: NaN and the infinities as JavaScript spells them)."""
    if math.isfinite(value):
        return float.__repr__(value)
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


def _orjson_texts(values: list) -> list[str]:
    """Each value of a flat list as orjson writes it."""
    return orjson.dumps(values)[1:-1].decode("ascii").split(",")


def _float_column(values: list) -> list[str]:
    """Each float as the stdlib writes it: those in [1e-4, 1e16) by one orjson call (its text there
    is ``float.__repr__``'s), the others by ``float.__repr__``; a column mostly outside that range (a
    batch of confident verdicts, 1e-7 and below) by ``float.__repr__`` alone, in C."""
    array = np.asarray(values, dtype=np.float64)
    magnitudes = np.abs(array)
    outside = np.flatnonzero(~((magnitudes >= 1e-4) & (magnitudes < 1e16))).tolist()
    spell = float.__repr__ if np.isfinite(array).all() else _stdlib_float
    if 2 * len(outside) > len(values):
        return list(map(spell, values))
    texts = _orjson_texts(values)  # NaN and inf come out as null: they are among ``outside``
    for index, text in zip(outside, map(spell, map(values.__getitem__, outside))):
        texts[index] = text
    return texts


def _int_column(values: list) -> list[str]:
    try:  # orjson writes ints as the stdlib does; it refuses those past 64 bits
        return _orjson_texts(values)
    except orjson.JSONEncodeError:
        return list(map(int.__repr__, values))


_COLUMN_WRITERS: dict[type, Callable[[list], list[str]]] = {
    float: _float_column,
    int: _int_column,
    bool: _orjson_texts,
    str: lambda values: list(map(encode_basestring_ascii, values)),
    type(None): lambda values: ["null"] * len(values),
}


def records_text(records: list, minimum: int = RECORDS_MIN) -> str | None:
    """``json.dumps(records, separators=(",", ":"))`` written a column at a time, for a list of at
    least ``minimum`` dicts with the same string keys in the same order and one exact type per key
    (float, int, bool, str or None in every record); None for any other list."""
    if len(records) < minimum or type(records[0]) is not dict or set(map(type, records)) != {dict}:
        return None
    keys = tuple(records[0])
    if not keys or set(map(type, keys)) != {str} or set(map(tuple, map(dict.keys, records))) != {keys}:
        return None
    streams: list = []
    for position, key in enumerate(keys):
        column = list(map(itemgetter(key), records))
        kinds = set(map(type, column))
        writer = _COLUMN_WRITERS.get(kinds.pop()) if len(kinds) == 1 else None
        if writer is None:
            return None
        separator = "},{" if position == 0 else ","  # a record's first key closes the record before it
        streams += [itertools.repeat(f"{separator}{encode_basestring_ascii(key)}:", len(records)), writer(column)]
    return "[{" + "".join(itertools.chain.from_iterable(zip(*streams)))[3:] + "}]"


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
