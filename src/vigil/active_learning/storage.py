"""The Alectio bucket behind one small interface.

The platform keeps an experiment's files in a bucket: ``<project_id>/meta.json`` and, under
``<project_id>/<experiment_id>/``, ``selected_indices_{loop}.pkl`` (written by the platform) and the
loop's outputs (written by us). :class:`LocalBucketStore` maps bucket ``B`` to the folder
``<bucket_root>/B``; an S3 store only has to implement the four methods of :class:`BucketStore`.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vigil.errors import InvalidInput, UnprocessableInput
from vigil.files import atomic_write
from vigil.plain import to_plain
from vigil.safe_pickle import loads_data, max_pickle_bytes

# Bucket names and ids become path components: allow what S3 and Alectio ids use, nothing that climbs.
# (fullmatch: "$" would let a trailing newline through)
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def safe_name(value: Any, field: str) -> str:
    """``value`` as a path component, or :class:`InvalidInput` naming ``field``."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value) or ".." in value:
        raise InvalidInput(
            f"{field} must be 1-128 letters, digits, '.', '_' or '-' (no path components)",
            {"field": field, "value": value if isinstance(value, (str, int)) else repr(value)[:40]},
        )
    return value


def safe_key(key: str) -> str:
    parts = key.split("/")
    for part in parts:
        safe_name(part, "key")
    return "/".join(parts)


class OutsideRoot(InvalidInput):
    """A path that, once its symlinks are followed, leaves the folder it must stay in."""

    status = 403


def inside(root: str | Path, path: str | Path, what: str) -> Path:
    """``path`` resolved (symlinks followed); :class:`OutsideRoot` if it is not under ``root``."""
    base = Path(root).resolve()
    resolved = Path(path).resolve()
    if resolved != base and base not in resolved.parents:
        raise OutsideRoot(
            f"{Path(path).name} leads outside the {what} (a symlink?); refusing it", {"field": Path(path).name}
        )
    return resolved


def _stays_inside(root: Path, path: Path) -> bool:
    try:
        inside(root, path, "bucket root")
        return True
    except OutsideRoot:
        return False


class BucketStore(Protocol):
    """Byte-level access to one storage backend; keys are ``/``-separated relative paths."""

    def read_bytes(self, bucket: str, key: str, max_bytes: int | None = None) -> bytes: ...

    def write_bytes(self, bucket: str, key: str, data: bytes) -> None: ...

    def exists(self, bucket: str, key: str) -> bool: ...

    def list_keys(self, bucket: str, prefix: str) -> list[str]: ...


class LocalBucketStore:
    """Buckets as folders under ``root`` (``settings.bucket_root``, ``--bucket-root``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, bucket: str, key: str) -> Path:
        """The file for ``key``, after following every symlink: a link (to a project, an experiment
        folder or a file) that leads out of the bucket root is refused, for reads and writes alike."""
        path = self.root / safe_name(bucket, "bucket_name") / safe_key(key)
        return inside(self.root, path, "bucket root")

    def read_bytes(self, bucket: str, key: str, max_bytes: int | None = None) -> bytes:
        with open(self._path(bucket, key), "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise UnprocessableInput(
                    f"{key} is {size} bytes, more than the {max_bytes} it may hold",
                    {"field": key.rsplit("/", 1)[-1], "size": size, "limit": max_bytes},
                )
            return handle.read()

    def write_bytes(self, bucket: str, key: str, data: bytes) -> None:
        atomic_write(self._path(bucket, key), data)  # the platform never reads a half-written file

    def exists(self, bucket: str, key: str) -> bool:
        return self._path(bucket, key).is_file()

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        folder = self._path(bucket, prefix) if prefix else self.root / safe_name(bucket, "bucket_name")
        if not folder.is_dir():
            return []
        base = self.root / bucket
        return sorted(
            str(p.relative_to(base))
            for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".") and _stays_inside(self.root, p)
        )


# Typed helpers on top of the byte interface: the file formats of the protocol live here, once.

# Files we read back ourselves (metrics, outputs) are small; this bounds each container in them.
DEFAULT_MAX_ITEMS = 10_000_000
INDEX_FORMATS = (".json", ".npy", ".pkl")  # selected_indices_{loop}: preferred format first


def read_pickle(store: BucketStore, bucket: str, key: str, max_items: int = DEFAULT_MAX_ITEMS) -> Any:
    """Plain data from a bucket pickle (see :mod:`vigil.safe_pickle`); anything else is refused."""
    data = store.read_bytes(bucket, key, max_bytes=max_pickle_bytes(max_items))
    return loads_data(data, max_items=max_items)


def write_pickle(store: BucketStore, bucket: str, key: str, value: Any) -> None:
    # Plain Python values only, protocol 4: the platform may read them with numpy 1.x, which cannot
    # import numpy 2's ``numpy._core`` names that pickled arrays and scalars carry.
    store.write_bytes(bucket, key, pickle.dumps(to_plain(value), protocol=4))


def index_key(folder: str, loop: int, store: BucketStore, bucket: str) -> str | None:
    """The key of ``selected_indices_{loop}`` in the first format present (.json, .npy, .pkl)."""
    for ext in INDEX_FORMATS:
        key = f"{folder}/selected_indices_{loop}{ext}"
        if store.exists(bucket, key):
            return key
    return None


def read_indices(store: BucketStore, bucket: str, key: str, max_items: int) -> np.ndarray:
    """A selected-indices file as a 1-d int64 array of at most ``max_items`` entries.

    ``.json`` holds a list of integers, ``.npy`` an integer array (no pickles inside), ``.pkl`` a
    list, tuple, set, range or integer array, read by the data-only unpickler. Sizes are checked
    before anything is materialised. Raises ``ValueError`` with the reason.
    """
    values: Any
    if key.endswith(".npy"):
        values = _read_npy(store.read_bytes(bucket, key, max_bytes=NPY_HEADER_BYTES + 8 * max_items), max_items)
    elif key.endswith(".json"):
        values = json.loads(store.read_bytes(bucket, key, max_bytes=max(1 << 16, 24 * max_items)))
        if not isinstance(values, list) or not all(type(v) is int for v in values):
            raise ValueError("a .json indices file must hold a list of integers")
    else:
        values = read_pickle(store, bucket, key, max_items=max_items)
    if isinstance(values, range):
        values = np.arange(values.start, values.stop, values.step, dtype=np.int64)
    if isinstance(values, (list, tuple, set, frozenset)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            raise ValueError("indices must be integers")
        values = (
            np.fromiter((int(v) for v in values), dtype=np.int64, count=len(values))
            if values
            else np.empty(0, dtype=np.int64)
        )
    if not isinstance(values, np.ndarray) or not (values.size == 0 or np.issubdtype(values.dtype, np.integer)):
        raise ValueError("indices must be a list or array of integers")
    if values.size > max_items:
        raise ValueError(f"{values.size} indices exceed the pool size {max_items}")
    return values.astype(np.int64, copy=False).ravel()


NPY_HEADER_BYTES = 1 << 12


def _read_npy(data: bytes, max_items: int) -> np.ndarray:
    """An integer .npy array, header checked before the data is read (np.load would allocate first)."""
    handle = io.BytesIO(data)
    version = np.lib.format.read_magic(handle)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f".npy format version {version} is not accepted (1.0 or 2.0)")
    shape, fortran, dtype = readers[version](handle)
    if dtype.hasobject or not np.issubdtype(dtype, np.integer):
        raise ValueError(f"a .npy indices file must hold integers, not {dtype}")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count > max_items:
        raise ValueError(f"{count} indices exceed the pool size {max_items}")
    raw = handle.read(count * dtype.itemsize)
    if len(raw) != count * dtype.itemsize:
        raise ValueError("the .npy file is truncated")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")


MAX_JSON_BYTES = 16 << 20


def read_json(store: BucketStore, bucket: str, key: str) -> Any:
    return json.loads(store.read_bytes(bucket, key, max_bytes=MAX_JSON_BYTES))


def write_json(store: BucketStore, bucket: str, key: str, value: Any) -> None:
    store.write_bytes(bucket, key, json.dumps(value, indent=1).encode())


__all__ = [
    "BucketStore",
    "LocalBucketStore",
    "safe_name",
    "read_pickle",
    "write_pickle",
    "read_json",
    "write_json",
    "read_indices",
    "index_key",
    "OutsideRoot",
]
