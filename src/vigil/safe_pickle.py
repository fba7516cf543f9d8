"""Reading pickles written by someone else, as data and nothing else.

A pickle is a program: every ``GLOBAL``/``STACK_GLOBAL`` opcode imports a name and ``REDUCE``
calls it. Files from the Alectio bucket and Kaggle's ``site_dic.pkl`` come from another party, so
:func:`loads_data` runs them through an unpickler whose ``find_class`` answers from an exact
``(module, name)`` table and never imports anything: no module wildcard, no dotted names (protocol
4 resolves ``a.b`` attribute by attribute, the path of the known ``numpy.dtypes`` ->
``__builtins__`` -> ``eval`` escape), no ``getattr``/``__reduce_ex__``/``copyreg`` helpers.

Each allowed name maps to a *guard*: an immutable callable that checks its arguments before the
real constructor runs (``range`` no longer than the caller's item budget, ndarrays only in the
shape numpy itself pickles, no object dtypes, ``_codecs.encode`` only with ``latin1``). Guards
have no ``__dict__`` and refuse attribute assignment, so a ``BUILD`` opcode cannot rewire them.

Memory is bounded too: the caller gives ``max_items`` (say, the pool size), the byte length of
the pickle is capped from it before unpickling (every element of a list costs at least one opcode
byte, so the file size bounds what a list can hold), and the loaded value is walked once to check
that no container or array holds more than ``max_items`` elements.

Example::

    >>> import pickle
    >>> loads_data(pickle.dumps([3, 1, 2]), max_items=10)
    [3, 1, 2]
    >>> loads_data(pickle.dumps(range(10**9)), max_items=10)
    Traceback (most recent call last):
    ...
    vigil.safe_pickle.UnsafePickle: range of 1000000000 items exceeds the limit of 10
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Callable

import numpy as np

from vigil.errors import InvalidInput

# A pickle of N small items takes at least ~2 bytes each; 64 per item leaves room for numpy's
# 8-byte integers plus framing, and the floor lets small metric dicts through whatever the budget.
BYTES_PER_ITEM = 64
MIN_BYTES = 1 << 16


class UnsafePickle(InvalidInput, pickle.UnpicklingError):
    """The pickle asks for something that is not plain data, or for more than it may allocate
    (a 400 to the service and a one-line error to the CLI, like any other bad input)."""


class _Guard:
    """An allowed global: a callable that checks its arguments, with no attributes to overwrite."""

    __slots__ = ("_qualname", "_call")
    _qualname: str
    _call: Callable[..., Any]

    def __init__(self, qualname: str, call: Callable[..., Any]):
        object.__setattr__(self, "_qualname", qualname)
        object.__setattr__(self, "_call", call)

    def __setattr__(self, name, value):
        raise UnsafePickle(f"refusing to set attribute {name!r} on {self._qualname}")

    def __call__(self, *args):
        return self._call(*args)

    def __repr__(self) -> str:
        return f"<allowed {self._qualname}>"


def _plain_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        raise UnsafePickle(f"expected a numpy dtype, got {type(dtype).__name__}")
    if dtype.hasobject:
        raise UnsafePickle("numpy arrays of Python objects are refused (object dtype)")
    return dtype


def _make_dtype(spec, align=False, copy=True):
    if not isinstance(spec, str) or not isinstance(align, bool) or not isinstance(copy, bool):
        raise UnsafePickle("numpy.dtype may only be built from a type string")
    dtype = np.dtype(spec, align=align, copy=copy)
    if dtype.hasobject:
        raise UnsafePickle("numpy arrays of Python objects are refused (object dtype)")
    if dtype.kind == "V":
        raise UnsafePickle(f"numpy dtype {spec!r} is refused: only numbers, booleans and strings")
    return dtype


_NDARRAY = _Guard(
    "numpy.ndarray",
    lambda *args: (_ for _ in ()).throw(
        UnsafePickle("numpy.ndarray may only appear as the type argument of _reconstruct")
    ),
)


def _reconstruct(subtype, shape, typecode):
    # numpy pickles every array as _reconstruct(ndarray, (0,), b'b') followed by __setstate__,
    # whose raw data must then match the declared shape: any other shape would allocate at will.
    if subtype is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise UnsafePickle("numpy _reconstruct is only accepted in the form numpy writes")
    try:
        from numpy._core.multiarray import _reconstruct as real  # numpy 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core.multiarray import _reconstruct as real  # type: ignore[no-redef]

    # The BUILD that follows hands numpy a dtype, which only _make_dtype can have made (no object
    # dtypes); the loaded value is checked again by _check_sizes.
    return real(np.ndarray, (0,), b"b")


def _frombuffer(buffer, dtype, shape, order):
    _plain_dtype(dtype)
    if not isinstance(buffer, (bytes, bytearray, pickle.PickleBuffer)) or order not in ("C", "F"):
        raise UnsafePickle("numpy _frombuffer needs a raw buffer")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy()


def _scalar(dtype, data=None):
    _plain_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise UnsafePickle("numpy scalar data must be raw bytes of the dtype's size")
    return np.frombuffer(data, dtype=dtype)[0]


def _latin1(text, encoding="latin1"):
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickle("_codecs.encode is only accepted as numpy uses it (str, 'latin1')")
    return text.encode("latin1")


def _guards(max_items: int) -> dict[tuple[str, str], Any]:
    def bounded_range(*args):
        if not all(type(a) is int for a in args) or not 1 <= len(args) <= 3:
            raise UnsafePickle("range arguments must be integers")
        values = range(*args)
        if len(values) > max_items:
            raise UnsafePickle(f"range of {len(values)} items exceeds the limit of {max_items}")
        return values

    numpy_names = {
        "_reconstruct": _Guard("numpy._reconstruct", _reconstruct),
        "scalar": _Guard("numpy.scalar", _scalar),
    }
    table: dict[tuple[str, str], Any] = {
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "range"): _Guard("range", bounded_range),
        ("__builtin__", "set"): set,  # protocol 0-2 pickles written by Python 2
        ("__builtin__", "frozenset"): frozenset,
        ("__builtin__", "xrange"): _Guard("range", bounded_range),
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _Guard("numpy.dtype", _make_dtype),
        ("numpy._core.numeric", "_frombuffer"): _Guard("numpy._frombuffer", _frombuffer),
        ("numpy.core.numeric", "_frombuffer"): _Guard("numpy._frombuffer", _frombuffer),
        ("_codecs", "encode"): _Guard("_codecs.encode", _latin1),
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        for name, guard in numpy_names.items():
            table[(module, name)] = guard
    return table


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, table: dict[tuple[str, str], Any]):
        super().__init__(io.BytesIO(data))
        self._table = table

    def find_class(self, module: str, name: str):
        try:
            return self._table[(module, name)]
        except (KeyError, TypeError):
            raise UnsafePickle(f"refusing to unpickle {module}.{name}: only plain data is accepted") from None

    def persistent_load(self, pid):
        raise UnsafePickle("persistent ids are not accepted")


def _check_sizes(value: Any, max_items: int) -> None:
    """Walk the loaded value (iteratively: it may be nested deeply) and bound every container."""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            if item.dtype.hasobject:
                raise UnsafePickle("numpy arrays of Python objects are refused (object dtype)")
            if item.size > max_items:
                raise UnsafePickle(f"array of {item.size} items exceeds the limit of {max_items}")
        elif isinstance(item, (list, tuple, set, frozenset, dict, range)):
            if len(item) > max_items:
                raise UnsafePickle(f"{type(item).__name__} of {len(item)} items exceeds the limit of {max_items}")
            if isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif not isinstance(item, range):
                stack.extend(item)


class _DataPickler(pickle.Pickler):
    """Writes only what :func:`loads_data` reads back: numpy arrays and scalars of numbers,
    booleans or strings besides the types pickle writes without a reducer."""

    def reducer_override(self, obj):
        # Called for every object but None, bools and exact ints, floats, bytes, str, dicts, sets,
        # frozensets, lists and tuples (pickled natively); a subclass of those comes here and is refused.
        if isinstance(obj, (np.ndarray, np.generic, np.dtype)):
            dtype = obj if isinstance(obj, np.dtype) else obj.dtype
            plain_type = type(obj) is np.ndarray or isinstance(obj, np.dtype) or type(obj) is dtype.type
            if plain_type and dtype.kind in _PLAIN_DTYPE_KINDS:
                return NotImplemented  # numpy's own reducer: the names it writes are the loader's
            raise UnsafePickle(f"{type(obj).__module__}.{type(obj).__qualname__} of {dtype} is not plain data")
        elif type(obj) is range or _global_name(obj) in _LOADABLE_GLOBALS:
            return NotImplemented
        raise UnsafePickle(f"{type(obj).__module__}.{type(obj).__qualname__} is not plain data")


_PLAIN_DTYPE_KINDS = frozenset("biufcSU")  # booleans, numbers, byte and text strings
_LOADABLE_GLOBALS = frozenset(_guards(0))


def _global_name(obj: Any) -> tuple[str, str] | None:
    """(module, qualified name) of a class or function pickle would write by name."""
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return (module, name) if isinstance(module, str) and isinstance(name, str) else None


def dumps_data(value: Any) -> bytes:
    """``value`` pickled if it is plain data (what :func:`loads_data` accepts), else :class:`UnsafePickle`.

    >>> loads_data(dumps_data({"n": [1, 2.5], "x": np.arange(3)}), max_items=10)["x"]
    array([0, 1, 2])
    """
    buffer = io.BytesIO()
    _DataPickler(buffer, protocol=4).dump(value)
    return buffer.getvalue()


def max_pickle_bytes(max_items: int) -> int:
    return max(MIN_BYTES, BYTES_PER_ITEM * max_items)


def loads_data(data: bytes, *, max_items: int, numpy: bool = True) -> Any:
    """Unpickle ``data`` if it is plain data (numbers, strings, lists, tuples, dicts, sets, ranges,
    and with ``numpy`` numeric arrays and scalars) holding at most ``max_items`` per container.

    Raises :class:`UnsafePickle` for anything else, before any of it is built.
    """
    if len(data) > max_pickle_bytes(max_items):
        raise UnsafePickle(
            f"pickle of {len(data)} bytes exceeds the limit of {max_pickle_bytes(max_items)} "
            f"for at most {max_items} items"
        )
    table = _guards(max_items)
    if not numpy:
        table = {key: guard for key, guard in table.items() if key[0] in ("builtins", "__builtin__")}
    try:
        value = _DataUnpickler(data, table).load()
    except UnsafePickle:
        raise
    except RecursionError:
        raise UnsafePickle("pickle is nested too deeply") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
        MemoryError,
        UnicodeDecodeError,
    ) as exc:
        raise UnsafePickle(f"not a valid data pickle: {exc}") from None
    _check_sizes(value, max_items)
    return value


__all__ = ["UnsafePickle", "dumps_data", "loads_data", "max_pickle_bytes"]
