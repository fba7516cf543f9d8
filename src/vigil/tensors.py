"""Numeric matrices from requests: ``.npy`` bodies read safely, matrices checked with numpy.

Transport-neutral: the service reads the bytes, these functions turn them into a checked float32
matrix or refuse with a 4xx naming what is wrong (the row, the position). A task that takes a
numeric matrix says so with :attr:`vigil.tasks.base.Task.tensor_input`; the service's V2 routes
(:mod:`vigil.service.v2`) use the same checks.

``application/x-npy``: one ``.npy`` array (format 1.0-3.0), float32 or float64, 2-D, C or Fortran
order. numpy's own header reader (what ``np.load`` uses) gives dtype and shape, checked with the row
limit and the data size before a byte of data is read; object dtypes are refused, so nothing is
ever unpickled (as with ``np.load(..., allow_pickle=False)``), and the array is a view on the body.

Example::

    >>> import io, numpy as np
    >>> buffer = io.BytesIO(); np.save(buffer, np.zeros((2, 3), dtype=np.float32))
    >>> read_npy(buffer.getvalue(), max_rows=10).shape
    (2, 3)
"""

from __future__ import annotations

import io
import re
from functools import partial

import numpy as np

from vigil.errors import InvalidInput, UnprocessableInput, too_many_rows
from vigil.parallel import in_parts

FLOAT32_MAX = float(np.finfo(np.float32).max)
__all__ = ["FLOAT32_MAX", "check_matrix", "non_finite_value", "read_npy", "require_finite", "too_many_rows"]


def read_npy(data: bytes, max_rows: int) -> np.ndarray:
    """The 2-D float32/float64 array of a ``.npy`` body, header checked before the data is read."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in reader:
            raise ValueError(f"format version {version} is not 1.0 or 2.0")
        shape, fortran, dtype = reader[version](stream, max_header_size=10_000)
    except ValueError as exc:  # numpy's messages: bad magic, header, shape or dtype
        raise InvalidInput(
            f"body is not a .npy array numpy can read: {exc}"[:200], "send numpy.save(file, X) of a 2-D float32 array"
        ) from None
    if dtype.kind != "f" or dtype.itemsize not in (4, 8) or dtype.hasobject:  # no objects, so no pickles
        raise UnprocessableInput(
            f".npy dtype {dtype.str} is not float32 or float64", {"dtype": dtype.str, "accepted": ["<f4", "<f8"]}
        )
    if len(shape) != 2:
        raise UnprocessableInput(
            f".npy array has shape {shape}; a 2-D (rows, features) matrix is needed", {"shape": list(shape)[:8]}
        )
    rows, columns = shape
    if rows > max_rows:
        raise too_many_rows(rows, max_rows)
    start, expected = stream.tell(), rows * columns * dtype.itemsize
    if len(data) - start != expected:
        raise InvalidInput(
            f".npy data is {len(data) - start} bytes; shape {shape} of {dtype.str} needs {expected}",
            {"bytes": len(data) - start, "expected": expected},
        )
    array = np.frombuffer(data, dtype=dtype, count=rows * columns, offset=start)
    return array.reshape(shape, order="F" if fortran else "C")


def check_matrix(
    matrix: np.ndarray, dims: tuple[int, ...], what: str = "vector", threads: int = 1, finite: bool = True
) -> np.ndarray:
    """``matrix`` as a C-contiguous float32 (rows, d) array, d one of ``dims``, every value a finite
    float32; else a 422 naming the first bad row and position (numpy, no loop per value; a large
    matrix is looked at in parts on up to ``threads`` threads, :func:`vigil.parallel.in_parts`)::

        >>> check_matrix(np.array([[1.0, 2.0], [3.0, np.inf]]), (2,))
        Traceback (most recent call last):
        vigil.errors.UnprocessableInput: vector 1, value 1 is not a finite float32

    ``finite=False`` leaves the values of a float32 matrix to the caller, who checks them where it
    reads them anyway (``CompiledTrees.predict(check_finite=True)``, :func:`require_finite`); a
    matrix of another type is checked here whatever, since it is made float32 here.
    """
    if matrix.ndim != 2 or matrix.shape[1] not in dims:
        needs = " or ".join(map(str, dims))
        raise UnprocessableInput(
            f"the {what}s have shape {tuple(matrix.shape)}; {needs} features per {what} needed",
            {"shape": list(matrix.shape), "expected_features": list(dims)},
        )
    if matrix.shape[0] == 0:
        raise InvalidInput(f"no {what}s in the request", {"rows": 0})
    wide = matrix if matrix.dtype.kind == "f" and matrix.dtype.itemsize >= 4 else matrix.astype(np.float64)
    if finite or wide.dtype != np.float32:
        require_finite(wide, what, threads)
    return np.ascontiguousarray(wide, dtype=np.float32)


def require_finite(matrix: np.ndarray, what: str = "vector", threads: int = 1) -> None:
    """Every value of a 2-D float matrix a finite float32, else :func:`non_finite_value` of the first
    that is not (in parts on up to ``threads`` threads for a large matrix)."""
    if not all(in_parts(partial(_within_float32, matrix), len(matrix), threads, _PART_VALUES // matrix.shape[1] + 1)):
        ok = np.isfinite(matrix) & (np.abs(matrix) <= FLOAT32_MAX)
        index, position = divmod(int(np.argmin(ok.ravel(order="C"))), matrix.shape[1])
        raise non_finite_value(index, position, what)


def non_finite_value(index: int, position: int, what: str = "vector") -> UnprocessableInput:
    """The 422 for a value that is not a finite float32, at row ``index``, column ``position``."""
    return UnprocessableInput(
        f"{what} {index}, value {position} is not a finite float32", {"index": index, "position": position}
    )


# Fewer values than this per thread are looked at on the calling thread alone. One isfinite pass
# takes ~0.19 ms for 1,000 EMBER vectors (2.4M float32), a hand-over to the pool 0.06 ms when its
# workers are awake and 0.3-0.4 ms when they have slept: a request's matrix of a few thousand
# vectors is checked faster where it is (docs/performance.md, round 2 stop 31).
_PART_VALUES = 4_000_000


def _within_float32(matrix: np.ndarray, start: int, stop: int) -> bool:
    """Every value of rows ``start:stop`` a finite float32. A float32 matrix: one isfinite pass (~1.4x
    faster than max and min; finite is in range). Wider: two reductions and no temporary array (a
    NaN comes out of max/min and fails its comparison, as do +-inf and doubles past float32's range)."""
    rows = matrix[start:stop]
    if rows.dtype == np.float32:
        return bool(np.isfinite(rows).all())
    return bool(rows.max() <= FLOAT32_MAX and rows.min() >= -FLOAT32_MAX)


def json_number_rows(body: bytes, width: int, key: str | None = None) -> np.ndarray | None:
    """The float64 (rows, width) matrix of a JSON body that is exactly a non-empty list of lists of
    ``width`` numbers (or, with ``key``, an object whose only member ``key`` is such a list), parsed
    with orjson and converted by numpy in C; None for any other body, which then takes the general
    path (Python's ``json``, the schema, the task's per-value checks) and gets the answers it always got.

    Only bodies that path would accept unchanged come back: no ``true``/``false``/``null`` or string
    (numpy would read them as numbers, the per-value check refuses them), no number orjson cannot read as a double (it
    refuses NaN, Infinity and overflowing numbers, so those fall back too), nothing ragged or nested.
    Values are the same doubles ``json`` reads (both round correctly); ints become doubles as
    Python's ``float`` makes them. Finiteness in float32 is left to :func:`check_matrix`.

    >>> json_number_rows(b'{"vectors": [[1, 2.5], [3, 4]]}', 2, key="vectors").tolist()
    [[1.0, 2.5], [3.0, 4.0]]
    >>> json_number_rows(b'[[1, true]]', 2) is None
    True

    The plain form (``[[...], ...]``, or ``{"vectors": [[...], ...]}`` with the key written as is) is
    read straight into the array by :func:`vigil.json_matrix.read_number_rows`, ~2.5x faster than
    orjson's parse alone; every other body, or one it leaves, takes the orjson path below.
    """
    import orjson

    from vigil.json_matrix import read_number_rows  # numba: compiled on the first JSON matrix

    matrix = read_number_rows(body, width, *_matrix_span(body, key))
    if matrix is not None:
        return matrix
    start = body.find(b"[")
    # true / false / null / strings past the first "[" (the key's own letters come before it; numbers
    # hold none of these bytes): numpy would read a bool as 1.0, null as NaN, "1.5" as 1.5
    if start < 0 or any(body.find(byte, start) >= 0 for byte in (b"t", b"f", b"n", b'"')):
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if key is not None and isinstance(parsed, dict):
        if len(parsed) != 1 or key not in parsed:
            return None
        parsed = parsed[key]
    if not isinstance(parsed, list) or not parsed or not isinstance(parsed[0], list):
        return None
    try:
        matrix = np.array(parsed, dtype=np.float64)  # ragged rows or a non-number raise
    except (ValueError, TypeError, OverflowError):
        return None
    if matrix.ndim != 2 or matrix.shape[1] != width:
        return None
    return matrix


def _matrix_span(body: bytes, key: str | None) -> tuple[int, int]:
    """Where the list of rows is in ``body``: all of it, or inside ``{"<key>": ... }`` when the body
    is that object with the key spelt plainly (any other spelling is read by the orjson path)."""
    space = rb"[ \t\r\n]*"  # JSON's whitespace (not \s, which also takes \f and \v)
    match = (
        re.match(space + rb"\{" + space + b'"' + re.escape(key.encode()) + b'"' + space + b":", body) if key else None
    )
    if match is None:
        return 0, len(body)
    end = len(body.rstrip(b" \t\r\n"))  # in C (a copy only when there is trailing space)
    return (match.end(), end - 1) if end and body[end - 1] == ord("}") else (0, len(body))
