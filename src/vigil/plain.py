"""numpy values as plain Python values: one helper for JSON answers, manifests and bucket pickles;
and :func:`checked`, the one check of a field read back from plain data (a stream's checkpoint).

>>> import numpy as np
>>> to_plain({np.int64(1): np.array([0.5, 1.0]), "n": (np.int32(3),)})
{1: [0.5, 1.0], 'n': [3]}
>>> to_plain({1: np.float32(0.5)}, str_keys=True)
{'1': 0.5}
"""

from __future__ import annotations

import math
from typing import Any

from vigil.errors import InvalidInput


class InvalidState(InvalidInput):
    """A saved state that is not what its ``to_state`` writes (altered, or of another layout)."""


def checked(value: Any, kinds: type | tuple[type, ...], what: str) -> Any:
    """``value`` when it is an instance of ``kinds`` (a bool counts as an int only where ``kinds``
    names bool; floats must be finite), else :class:`InvalidState` naming the field ``what``.

    >>> checked(3, int, "min_gap")
    3
    >>> checked(True, int, "min_gap")
    Traceback (most recent call last):
    ...
    vigil.plain.InvalidState: state field 'min_gap': expected int, got bool
    """
    allowed = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        expected = " or ".join(k.__name__ for k in allowed)
        raise InvalidState(f"state field {what!r}: expected {expected}, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidState(f"state field {what!r} is not finite: {value}")
    return value


def to_plain(value: Any, str_keys: bool = False) -> Any:
    """Arrays become lists, numpy scalars Python numbers, tuples lists, anywhere in dicts and lists;
    with ``str_keys`` (JSON) dict keys become strings."""
    if isinstance(value, dict):
        return {(str(k) if str_keys else to_plain(k)): to_plain(v, str_keys) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v, str_keys) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
        return value.tolist()
    return value


__all__ = ["InvalidState", "checked", "to_plain"]
