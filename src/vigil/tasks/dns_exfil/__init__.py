"""DNS exfiltration: is this query name smuggling data out? (CIC-Bell-DNS-EXF-2021 features.)

Modules: ``task`` (the Task, ``POST /predict/dns``, which model answers), ``cli`` (``vigil dns
generate | train | evaluate-real``; the Kafka verbs are :mod:`vigil.streaming.dns_cli`), ``features``,
``generate``, ``capture`` and ``benign`` (data), ``model``, ``report`` and ``query_model`` (training).
Names are re-exported here on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    name: "task"
    for name in (
        "DnsExfilTask",
        "TASK_NAME",
        "DYNAMIC_TASK",
        "QUERY_TASK",
        "STREAMS_FOLDER",
        "HEARTBEAT_FRESH_S",
        "DEFAULT_SELECTION",
        "DEFAULT_ALGORITHM",
        "stream_status_path",
        "live_stream_status",
        "write_stream_status",
        "parse_items",
        "featurize_items",
        "is_feature_row",
        "with_rows_model",
    )
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
