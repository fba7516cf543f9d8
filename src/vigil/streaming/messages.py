"""The message readers moved to :mod:`vigil.messages` (a task's window processor uses them without
importing the streaming layer); this name stays for existing imports."""

from vigil.messages import (
    MAX_JSON_DEPTH,
    MAX_LITERAL_BYTES,
    json_depth_exceeds,
    json_message,
    lenient_message,
    python_literal_record,
)

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_LITERAL_BYTES",
    "json_depth_exceeds",
    "json_message",
    "lenient_message",
    "python_literal_record",
]
