"""Writing files so that a reader never sees half of one: one helper for every such write.

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "sub" / "state.json"
>>> atomic_write(target, '{"ok": true}')
>>> target.read_text()
'{"ok": true}'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path next to ``path``; renamed over it when the block ends without an error
    (a crash mid-write leaves the old file, never a torn one), removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path | str, data: bytes | str) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


__all__ = ["atomic_path", "atomic_write"]
