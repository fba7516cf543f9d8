"""DNS exfiltration: is this query name smuggling data out? (CIC-Bell-DNS-EXF-2021 features.)

Modules: ``task`` (the Task, ``POST /predict/dns``, which model answers), ``cli`` (``vigil dns
generate | train | evaluate-real | demo``; the Kafka verbs are the streaming layer's, mounted by the
registry), ``stream`` (the stream's windows, ``DnsExfilTask.window_processor``), ``features``,
``generate``, ``capture`` and ``benign`` (data), ``model``, ``report`` and ``query_model`` (training).
Names are re-exported here on first use.
"""

from __future__ import annotations

from vigil.lazy import lazy_exports

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

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
