"""numpy values as plain Python values: one helper for JSON answers, manifests and bucket pickles.

>>> import numpy as np
>>> to_plain({np.int64(1): np.array([0.5, 1.0]), "n": (np.int32(3),)})
{1: [0.5, 1.0], 'n': [3]}
>>> to_plain({1: np.float32(0.5)}, str_keys=True)
{'1': 0.5}
"""

from __future__ import annotations

from typing import Any


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


__all__ = ["to_plain"]
