"""The app's one numpy-to-JSON conversion: a Flask JSON provider that writes numpy scalars and arrays.

Views return what the task or pipeline computed (``np.float64`` probabilities, ``np.int64`` labels,
arrays of indices, dicts keyed by numpy integers) and ``jsonify`` writes it; no view converts by hand.
Answers are written by the stdlib encoder: numpy values go through ``default``
(:func:`vigil.plain.to_plain`), and a document whose dict keys are numpy values (the stdlib refuses
them before ``default`` is ever asked) is converted once with string keys and written again.

A compact answer (what ``jsonify`` asks for) made only of dicts, lists, strings, ints, bools,
None and floats both write alike, such as ML-PT's ``[{"EVENT_ID", "LABEL_PRED"}]`` for 10,000
events or EMBER's 1,000 ``{"index", "probability", "malicious"}`` results, is written by orjson
instead (15x faster for ML-PT's; EMBER's below) wherever orjson's bytes are the
stdlib's: its output is kept only when it is printable ASCII (the stdlib with ``ensure_ascii``
escapes everything else, orjson writes UTF-8 and DEL as they are), and a document orjson refuses
(an int past 64 bits, a lone surrogate, a key that is not a string, nesting past 255) goes to the
stdlib. Floats that are 0 or have a magnitude in [1e-4, 1e16) orjson writes as they are: there both
write the shortest digits that read back (the same digits: the closest such string is unique) in
plain decimal notation. Outside it the two part ways (``1e-05`` against ``0.00001``, ``1e+16``
against ``1e16``, NaN against ``null``), so each such float is handed to orjson as an
``orjson.Fragment`` of the stdlib's own text, in a copy of its container (a list of records: of
its record only). Where most records of a list hold one (a confident model's batch of benign
files), copying them would cost more than the stdlib, which then writes the whole answer.
Measured on 1,000 EMBER results (median of 400 calls, runs of the old and the new provider
alternated): 0.22 ms against the stdlib's 0.81 with every probability in range, 0.59 against 0.84
with a tenth below 1e-4, and 1.34 against 1.05 (the walk wasted) with all of them below; ML-PT's
10,000 records unchanged (1.16-1.21 ms).

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
import math
from typing import Any

import numpy as np
import orjson
from flask.json.provider import DefaultJSONProvider

from vigil.plain import to_plain

COMPACT_SEPARATORS = (",", ":")  # what Flask's ``response`` passes outside debug mode
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})  # written byte for byte alike by orjson and the stdlib
_WRITTEN_ALIKE_TYPES = _PLAIN_TYPES | {float}  # floats: those outside the range below are written apart (written_apart)
_NUMBER_TYPES = frozenset({int, float, bool})
FIXED_NOTATION = (1e-4, 1e16)  # magnitudes both write in plain decimal notation with the same digits
_CONTAINER_TYPES = frozenset({dict, list})
_MAX_WALK_DEPTH = 255  # orjson's own nesting limit; deeper (or a cycle) goes to the stdlib


def _numpy_default(value: Any) -> Any:
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
        return value.tolist()
    return DefaultJSONProvider.default(value)  # dates, UUIDs, dataclasses as Flask writes them


def written_apart(numbers: np.ndarray) -> np.ndarray:
    """Mask of the ``numbers`` orjson and the stdlib write differently: not 0 and with a magnitude
    outside :data:`FIXED_NOTATION` (NaN and the infinities fail both comparisons).

    >>> written_apart(np.array([0.5, 0.0, -3.25e15, 1e-05, 1e16, np.nan])).tolist()
    [False, False, False, True, True, True]
    """
    magnitudes = np.abs(numbers)
    low, high = FIXED_NOTATION
    return ~((magnitudes == 0) | ((magnitudes >= low) & (magnitudes < high)))


def floats_apart(values: list[Any], types: set[type]) -> np.ndarray | None:
    """Positions among ``values`` (``types``: the set of their types) of the floats orjson writes
    otherwise, or None when ``values`` hold an int past float64's range. Values that are only
    numbers are converted by numpy in one call, ints and bools with them: a big int may show up as
    apart, which only costs a copy or the stdlib, never a wrong byte."""
    if float not in types:
        return np.empty(0, np.int64)
    if types <= _NUMBER_TYPES:
        try:
            return np.flatnonzero(written_apart(np.array(values, np.float64)))
        except OverflowError:
            return None
    positions = [i for i, v in enumerate(values) if type(v) is float]
    return np.asarray(positions, np.int64)[written_apart(np.array([values[i] for i in positions], np.float64))]


def records_holding(records: list[dict], positions: np.ndarray) -> np.ndarray:
    """Indices of the records that hold the given positions of their values laid end to end."""
    ends = np.cumsum(np.fromiter(map(len, records), np.int64, len(records)))
    return np.unique(np.searchsorted(ends, positions, side="right"))


def only_plain_values(document: Any) -> bool:
    """True when ``document`` holds nothing but dicts, lists, strings, ints, bools, None and floats
    orjson writes as the stdlib does (those exact types: a subclass such as ``np.float64`` or an
    IntEnum is not plain), found by a type set per container; a list of dicts (records) has its
    records' values typed together, in C.

    >>> only_plain_values([{"EVENT_ID": "x", "LABEL_PRED": 1}, {"nested": [None, True]}])
    True
    >>> only_plain_values({"probability": 0.5}), only_plain_values({"probability": 1e-05})
    (True, False)
    """
    plain, apart = _walk(document)
    return plain and not apart


def _written_alike(value: float) -> bool:
    """One float's :func:`written_apart`, negated, without numpy (a scalar numpy call costs ~1 us)."""
    low, high = FIXED_NOTATION
    return value == 0 or low <= abs(value) < high  # NaN fails both


def _walk(document: Any) -> tuple[bool, bool]:
    """(plain, apart): whether ``document`` holds only the types orjson writes as the stdlib does
    (floats of any value counted in), and whether some of its floats are written otherwise (a list
    of records where most records hold one is not plain: the stdlib is faster)."""
    apart = False
    pending = [(document, 0)]
    while pending:
        value, depth = pending.pop()
        kind = type(value)
        if kind not in _CONTAINER_TYPES:
            if kind is float:
                apart = apart or not _written_alike(value)
            elif kind not in _PLAIN_TYPES:
                return False, apart
            continue
        if depth >= _MAX_WALK_DEPTH:
            return False, apart
        records = kind is list and bool(value) and set(map(type, value)) == {dict}
        if records:  # all their values at once
            values: Any = list(itertools.chain.from_iterable(map(dict.values, value)))
        else:
            values = list(value.values()) if kind is dict else value
        types = set(map(type, values))
        if not types <= _WRITTEN_ALIKE_TYPES | _CONTAINER_TYPES:
            return False, apart
        positions = floats_apart(values, types)
        if positions is None:
            return False, apart
        if len(positions):
            if records and len(records_holding(value, positions)) > len(value) // 2:
                return False, True  # copying most records costs more than the stdlib writing them all
            apart = True
        if types <= _WRITTEN_ALIKE_TYPES:
            continue
        pending.extend((item, depth + (2 if records else 1)) for item in values if type(item) in _CONTAINER_TYPES)
    return True, apart


def _with_stdlib_floats(value: Any) -> Any:
    """``value`` (plain, per :func:`_walk`) with each float orjson would write otherwise replaced by
    an ``orjson.Fragment`` of the stdlib's own text for it (``1e-05``, ``NaN``); a container is
    copied, a list of flat records only in the records holding such a float."""
    kind = type(value)
    if kind is float:
        return value if _written_alike(value) else _stdlib_float(value)
    if kind is dict:
        return {key: _with_stdlib_floats(item) for key, item in value.items()}
    if kind is not list:
        return value
    if not value or set(map(type, value)) != {dict}:
        return [_with_stdlib_floats(item) for item in value]
    values = list(itertools.chain.from_iterable(map(dict.values, value)))
    types = set(map(type, values))
    if not types <= _NUMBER_TYPES:  # strings or nested containers among the values: record by record
        return [_with_stdlib_floats(record) for record in value]
    positions = floats_apart(values, types)
    if positions is None:  # an int past float64's range: the walk has sent such documents to the stdlib
        return [_with_stdlib_floats(record) for record in value]
    holding = records_holding(value, positions)
    copied = list(value)
    for index in holding.tolist():
        copied[index] = {
            key: _stdlib_float(item) if type(item) is float and not _written_alike(item) else item
            for key, item in value[index].items()
        }
    return copied


def _stdlib_float(value: float) -> orjson.Fragment:
    """The stdlib encoder's text for a float (``json.encoder``'s ``floatstr`` with ``allow_nan``)."""
    if value != value:
        return orjson.Fragment(b"NaN")
    if value in (math.inf, -math.inf):
        return orjson.Fragment(b"Infinity" if value > 0 else b"-Infinity")
    return orjson.Fragment(float.__repr__(value).encode("ascii"))


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
    plain, apart = _walk(document)
    if not plain:
        return None
    try:
        written = orjson.dumps(_with_stdlib_floats(document) if apart else document)
    except orjson.JSONEncodeError:
        return None
    if not written.isascii() or b"\x7f" in written:
        return None
    return written.decode("ascii")
