"""One JSON object per log line, carrying the request id of the request being served.

Stdlib only, so gunicorn's master can use it for its own log (``logconfig_dict`` in
``vigil.service.gunicorn_conf``) without importing Flask or numpy before it forks.

Example::

    >>> import logging, sys
    >>> handler = logging.StreamHandler(sys.stdout); handler.setFormatter(JsonFormatter())
    >>> demo = logging.getLogger("demo"); demo.addHandler(handler); demo.setLevel(logging.INFO)
    >>> demo.info("ready", extra={"fields": {"models": 5}})
    {"ts": "...", "level": "INFO", "logger": "demo", "msg": "ready", "models": 5}
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import json
import logging

# Set by the service for the duration of a request; copied into prediction threads.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("vigil_request_id", default=None)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; ``extra={"fields": {...}}`` adds keys."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            document["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            document.update(fields)
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure(logger_name: str = "vigil", level: int = logging.INFO) -> logging.Logger:
    """Give ``logger_name`` a stderr handler with :class:`JsonFormatter`, unless it has a handler
    already (gunicorn's ``logconfig_dict`` sets one up)."""
    logger = logging.getLogger(logger_name)
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    return logger
