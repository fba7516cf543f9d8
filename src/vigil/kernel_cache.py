"""numba's on-disk cache of compiled kernels, read back only through a verified signature.

A kernel compiles once per process and row type (the line scanner 15-25 s, the tree walk ~1 s).
numba can keep what it compiled on disk (``cache=True``), but it reads those files back with
``pickle`` and runs the machine code in them, and a file is untrusted bytes to Vigil. Here every
cache file is written with an HMAC-SHA256 of its exact bytes, and read back only when that tag
verifies: a file that is missing, cut short, tampered with or signed with another key is a cache
miss (the kernel compiles, as it would without a cache, and the file is written again). The tag
also covers the file's name and the stamp of the source it was compiled from, so a signed file
moved to another kernel's name, or left from an older build, does not verify either. Nothing of a
file is unpickled before its tag verified.

* **Where:** ``VIGIL_KERNEL_CACHE_DIR`` (default ``<work_dir>/kernels``, i.e. ``runs/kernels``), one
  folder per source folder of the kernels. numba's own checks still apply on top: a file is used only for the same
  numba version, the same source file (size and modification time), the same bytecode and the same
  CPU (name and features).
* **The key:** derived from ``VIGIL_MODEL_KEY`` where that is set (the deployment's secret that signs
  the models): then a cache file can come only from a holder of that secret. Without it, a random
  key made on first use in the state folder (``VIGIL_STATE_DIR``, default ``runs/state``;
  ``kernel-cache.key``, mode 0600): that refuses files from another machine or user, copied-in,
  cut short or altered ones, but not the work of someone who may write both folders (who could as
  well edit the code). Where no key can be had, kernels compile per process as before.
* ``VIGIL_KERNEL_CACHE_DIR=off`` turns the cache off.

Use :func:`cached` on a kernel that Python calls (``@cached`` above ``@njit(...)``); the kernels it
calls are compiled into it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import logging
import os
import pickle
import secrets
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAGIC = b"VIGIL-NUMBA-CACHE-1\n"
TAG_BYTES = 32
KEY_FILE = "kernel-cache.key"  # in the state folder (VIGIL_STATE_DIR), without VIGIL_MODEL_KEY
_KEY_LABEL = b"vigil numba kernel cache"


def cached(dispatcher: Any) -> Any:
    """``dispatcher`` (a numba ``@njit`` function) with the signed on-disk cache; decided on its
    first compilation, so importing a kernel reads no setting and touches no file."""
    dispatcher._cache = _LazySignedCache(dispatcher.py_func)
    return dispatcher


def holds(dispatcher: Any) -> bool:
    """Whether the signed cache already holds compiled code of ``dispatcher`` (a :func:`cached`
    kernel) for its current source: using it then costs a load, not a compilation. Reads and
    verifies the kernel's index file only."""
    cache = getattr(dispatcher, "_cache", None)
    files = getattr(cache._cache(), "_cache_file", None) if isinstance(cache, _LazySignedCache) else None
    return bool(files is not None and files._load_index())


def cache_location() -> tuple[Path, bytes] | None:
    """The folder compiled kernels are kept in and the key their files are signed with (see the
    module docstring), or None where the cache is off or no key can be had."""
    from vigil.config import Settings

    settings = Settings.from_env()
    folder = settings.kernel_cache_path
    if folder is None:
        return None
    if settings.model_key:
        return folder, hmac.new(settings.model_key.encode(), _KEY_LABEL, hashlib.sha256).digest()
    path = settings.state_path / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = _new_key(path)
    except OSError:
        return None
    if key is None or len(key) < 32:
        log.warning("kernel cache off: %s is not a key of 32 bytes or more (remove it to make a new one)", path)
        return None
    return folder, key


def _new_key(path: Path) -> bytes | None:
    """A new random key at ``path``, written whole before it appears there (a temporary file linked
    into place), so a process racing this one reads either no key or the whole of it."""
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(key)
        try:
            os.link(temporary, path)
        except FileExistsError:  # another process made it first: use that one
            return path.read_bytes()
        finally:
            temporary.unlink()
    except OSError:
        return None
    return key


def _tag(key: bytes, payload: bytes, context: bytes) -> bytes:
    return hmac.new(key, len(context).to_bytes(4, "big") + context + payload, hashlib.sha256).digest()


def sign(key: bytes, payload: bytes, context: bytes = b"") -> bytes:
    """A file's content: ``payload`` with its tag, which also covers ``context`` (what the file is:
    its name and the stamp of the source it was compiled from, so that a signed file moved to
    another kernel's name, or one of an older build, does not verify)."""
    return MAGIC + _tag(key, payload, context) + payload


def verified(key: bytes, content: bytes, context: bytes = b"") -> bytes | None:
    """The payload of a signed file's ``content``, or None unless its tag verifies with ``key`` and
    ``context``."""
    head = len(MAGIC) + TAG_BYTES
    if len(content) < head or not content.startswith(MAGIC):
        return None
    tag, payload = content[len(MAGIC) : head], content[head:]
    return payload if hmac.compare_digest(tag, _tag(key, payload, context)) else None


@functools.cache
def _signed_cache_class(root: Path) -> type:
    """numba's function cache with signed files in ``root`` (built on first compilation, so that
    importing this module does not import numba)."""
    from numba.core import caching

    class SignedLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):  # type: ignore[name-defined, misc]
        def __init__(self, py_func: Any, py_file: str):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = str(root / self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self) -> str:
            return self._cache_path

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            return cls(py_func, py_file) if os.path.exists(py_file) else None

    class SignedFiles(caching.IndexDataCacheFile):  # type: ignore[misc]
        key: bytes = b""

        def _context(self, path: str) -> bytes:
            where = Path(path)
            return f"{where.parent.name}/{where.name}\n{self._source_stamp!r}".encode()

        def _read(self, path: str) -> bytes | None:
            try:
                content = Path(path).read_bytes()
            except FileNotFoundError:
                return None
            payload = verified(self.key, content, self._context(path))
            if payload is None:
                log.warning("kernel cache file %s is not signed with this machine's key: not read, recompiling", path)
            return payload

        def _load_index(self) -> dict:
            payload = self._read(self._index_path)
            if payload is None:
                return {}
            stream = io.BytesIO(payload)
            if pickle.load(stream) != self._version:  # verified bytes, written by _save_index
                return {}
            stamp, overloads = pickle.loads(stream.read())
            return overloads if stamp == self._source_stamp else {}

        def _save_index(self, overloads: dict) -> None:
            payload = pickle.dumps(self._version, protocol=-1) + self._dump((self._source_stamp, overloads))
            with self._open_for_write(self._index_path) as file:
                file.write(sign(self.key, payload, self._context(self._index_path)))

        def _load_data(self, name: str) -> Any:
            payload = self._read(self._data_path(name))
            if payload is None:
                raise OSError(f"kernel cache file {name} refused")  # load() reads this as a miss
            return pickle.loads(payload)  # verified bytes

        def _save_data(self, name: str, data: Any) -> None:
            path = self._data_path(name)
            with self._open_for_write(path) as file:
                file.write(sign(self.key, self._dump(data), self._context(path)))

    class SignedImpl(caching.CompileResultCacheImpl):  # type: ignore[misc]
        _locator_classes = [SignedLocator]

    class SignedCache(caching.FunctionCache):  # type: ignore[misc]
        _impl_class = SignedImpl

        def __init__(self, py_func: Any, key: bytes):
            super().__init__(py_func)
            files = SignedFiles(self._cache_path, self._impl.filename_base, self._impl.locator.get_source_stamp())
            files.key = key
            self._cache_file = files

    return SignedCache


class _LazySignedCache:
    """numba's cache interface, deciding on first use whether there is a signed cache to use."""

    def __init__(self, py_func: Any):
        self._py_func = py_func
        self._lock = threading.Lock()
        self._inner: Any = None

    def _cache(self) -> Any:
        with self._lock:
            if self._inner is None:
                self._inner = self._build()
            return self._inner

    def _build(self) -> Any:
        from numba.core.caching import NullCache

        location = cache_location()
        if location is None:
            return NullCache()
        folder, key = location
        try:
            return _signed_cache_class(folder)(self._py_func, key)
        except Exception as exc:  # no folder numba could use: compile per process, as without a cache
            log.warning("kernel cache off for %s: %s", self._py_func.__qualname__, exc)
            return NullCache()

    @property
    def cache_path(self) -> str:
        return self._cache().cache_path

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        return self._cache().load_overload(sig, target_context)

    def save_overload(self, sig: Any, data: Any) -> None:
        try:
            self._cache().save_overload(sig, data)
        except OSError as exc:  # a full or read-only disk costs the cache, not the answer
            log.warning("kernel cache not written for %s: %s", self._py_func.__qualname__, exc)

    def enable(self) -> None:
        self._cache().enable()

    def disable(self) -> None:
        self._cache().disable()

    def flush(self) -> None:
        self._cache().flush()
