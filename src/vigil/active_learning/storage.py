"""The Alectio bucket behind one small interface.

The platform keeps an experiment's files in a bucket: ``<project_id>/meta.json`` and, under
``<project_id>/<experiment_id>/``, ``selected_indices_{loop}.pkl`` (written by the platform) and the
loop's outputs (written by us). :class:`LocalBucketStore` maps bucket ``B`` to the folder
``<bucket_root>/B``; an S3 store only has to implement the four methods of :class:`BucketStore`.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol


from vigil.errors import InvalidInput

# Bucket names and ids become path components: allow what S3 and Alectio ids use, nothing that climbs.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def safe_name(value: Any, field: str) -> str:
    """``value`` as a path component, or :class:`InvalidInput` naming ``field``."""
    if not isinstance(value, str) or not SAFE_NAME.match(value) or ".." in value:
        raise InvalidInput(f"{field} must be 1-128 letters, digits, '.', '_' or '-' (no path components)",
                           {"field": field, "value": value if isinstance(value, (str, int)) else repr(value)[:40]})
    return value


def safe_key(key: str) -> str:
    parts = key.split("/")
    for part in parts:
        safe_name(part, "key")
    return "/".join(parts)


class BucketStore(Protocol):
    """Byte-level access to one storage backend; keys are ``/``-separated relative paths."""

    def read_bytes(self, bucket: str, key: str) -> bytes: ...

    def write_bytes(self, bucket: str, key: str, data: bytes) -> None: ...

    def exists(self, bucket: str, key: str) -> bool: ...

    def list_keys(self, bucket: str, prefix: str) -> list[str]: ...


class LocalBucketStore:
    """Buckets as folders under ``root`` (``settings.bucket_root``, ``--bucket-root``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, bucket: str, key: str) -> Path:
        return self.root / safe_name(bucket, "bucket_name") / safe_key(key)

    def read_bytes(self, bucket: str, key: str) -> bytes:
        return self._path(bucket, key).read_bytes()

    def write_bytes(self, bucket: str, key: str, data: bytes) -> None:
        path = self._path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: the platform never reads a half-written file.
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def exists(self, bucket: str, key: str) -> bool:
        return self._path(bucket, key).is_file()

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        folder = self._path(bucket, prefix) if prefix else self.root / safe_name(bucket, "bucket_name")
        if not folder.is_dir():
            return []
        base = self.root / bucket
        return sorted(str(p.relative_to(base)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


# Typed helpers on top of the byte interface: the file formats of the protocol live here, once.

class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain data (lists, dicts, numbers, numpy arrays) and nothing that can run code:
    the bucket is written by another party, and a crafted pickle would otherwise execute here."""

    ALLOWED = {
        ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "range"), ("builtins", "slice"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED or (module == "numpy" and name.endswith(("Dtype", "DType"))) \
                or module == "numpy.dtypes":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only plain data is accepted")


def read_pickle(store: BucketStore, bucket: str, key: str) -> Any:
    import io

    return _DataOnlyUnpickler(io.BytesIO(store.read_bytes(bucket, key))).load()


def write_pickle(store: BucketStore, bucket: str, key: str, value: Any) -> None:
    store.write_bytes(bucket, key, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def read_json(store: BucketStore, bucket: str, key: str) -> Any:
    return json.loads(store.read_bytes(bucket, key))


def write_json(store: BucketStore, bucket: str, key: str, value: Any) -> None:
    store.write_bytes(bucket, key, json.dumps(value, indent=1).encode())


__all__ = ["BucketStore", "LocalBucketStore", "safe_name", "read_pickle", "write_pickle", "read_json",
           "write_json"]
