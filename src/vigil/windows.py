"""What a stream's windows and a task's window processor agree on, importable by both sides.

The streaming layer (:mod:`vigil.streaming.consumer`) reads messages, forms windows of N accepted
ones, records them and commits offsets; what a message means and how a window is scored is the
task's :class:`WindowProcessor`, which its ``Task.window_processor`` hook returns. Task packages
import this module, never :mod:`vigil.streaming`.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

# A window whose retrain failed says so in its reason: "<why it retrained>; retrain failed, kept ...".
RETRAIN_FAILED = "retrain failed"


class RejectedMessage(ValueError):
    """A message that cannot be turned into a row: recorded, never fatal."""


class WindowProcessor(Protocol):
    """One task's window logic. Optional members the stream verbs use when present:
    ``window_columns`` (``{name: SQL type}``: fields of its window record stored as results columns
    beyond the generic ones of :mod:`vigil.streaming.results`), ``alert_noun`` (what a window's ``alerts`` flag, e.g. ``"host"``: names the summary's
    ``<noun>_alerts``), ``describe_alert(alert) -> str`` (the line printed for each alert) and
    ``parse_batch(values) -> list`` (:meth:`parse` of each value in order, the exception it raised in
    place of a row: for a processor that reads a poll's messages faster together).

    A checkpoint is plain data (numbers, strings, bytes, lists, tuples, dicts, sets, numeric numpy
    arrays): the results store refuses to write anything else, and reads it back through
    :func:`vigil.safe_pickle.loads_data`. ``restore`` gets None for a new stream, and also when the
    stored checkpoint was refused (not plain data: an older release's pickle, or altered)."""

    def parse(self, value: bytes | None) -> Any | None: ...  # a row, None for a control message

    def restore(self, checkpoint: Any | None) -> None: ...

    def process(self, rows: list) -> tuple[dict, Any]: ...  # the window record, the new checkpoint

    def heartbeat(self, state: str, **fields) -> None: ...


def safe_name(text: str) -> str:
    """``text`` usable as a file name::

    >>> safe_name("vigil-group@topic/1")
    'vigil-group_topic_1'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


__all__ = ["RETRAIN_FAILED", "RejectedMessage", "WindowProcessor", "safe_name"]
