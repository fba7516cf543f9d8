"""Files: writing so that a reader never sees half of one, and reading a CSV with its columns checked.

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
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from vigil.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd


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


def read_csv_checked(
    path: Path | str, required_columns: Iterable[str] = (), *, what: str = "CSV file", **read_csv: Any
) -> pd.DataFrame:
    """``pandas.read_csv(path, **read_csv)``, every user mistake as one :class:`InvalidInput` line:
    a missing file, a file that is not a CSV (binary, wrong encoding, unparsable), a missing column.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "ok.csv").write_text("a,b\\n1,2\\n")
    8
    >>> read_csv_checked(folder / "ok.csv", ["a"]).to_dict("records")
    [{'a': 1, 'b': 2}]
    >>> read_csv_checked(folder / "ok.csv", ["a", "c"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInput: ... lacks the columns ['c']
    >>> read_csv_checked(folder / "none.csv", what="events CSV")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInput: events CSV not found: ...none.csv
    """
    import pandas as pd

    path, required = Path(path), list(required_columns)
    if not path.is_file():
        raise InvalidInput(f"{what} not found: {path}")
    try:
        frame = pd.read_csv(path, **read_csv)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInput(f"{path} is not a readable CSV file ({str(exc).splitlines()[0][:200]})") from None
    except ValueError as exc:  # e.g. a dtype the values do not fit
        raise InvalidInput(f"cannot read {what} {path}: {str(exc)[:200]}") from None
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise InvalidInput(f"{path} lacks the columns {missing}", {"expected": required, "found": list(frame.columns)})
    return frame


__all__ = ["atomic_path", "atomic_write", "read_csv_checked"]
