"""What ``POST /predict/web-events`` (and ML-PT's ``POST /predict``) take: ML-PT's request.

A JSON array of ``{"data": "<one event as a JSON object string>"}`` (an object instead of the string
is accepted too). The model documents the body; :func:`vigil.tasks.web_events.data.parse_request`
checks the records in a few C-level passes (10,000 events in ~10 ms) and, where one is bad, record by
record, naming its index and field in the one per-record shape ``{"index", "field", "message"}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from vigil.tasks.web_events.wrangling import COLUMNS


class EventRecord(BaseModel):
    data: str | dict[str, Any] = Field(
        description=f"one event as a JSON object string (NaN allowed); fields {', '.join(COLUMNS)}"
    )


REQUEST: Any = list[EventRecord]

__all__ = ["REQUEST", "EventRecord"]
