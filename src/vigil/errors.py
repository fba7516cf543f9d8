"""Errors that carry an HTTP status and a message a client can act on.

Task code raises these for bad input; the service turns them into JSON
``{"error": ..., "detail": ...}`` and the CLI into a one-line message.
"""

from __future__ import annotations

from typing import Any


class VigilError(Exception):
    status = 400
    headers: dict[str, str] | None = None  # extra HTTP headers of the answer (e.g. Retry-After)

    def __init__(
        self, error: str, detail: Any = None, status: int | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(error)
        self.error = error
        self.detail = detail
        if status is not None:
            self.status = status
        if headers is not None:
            self.headers = headers

    def to_json(self) -> dict:
        """``{"error", "detail"}``; a detail that names a record (has ``index``) always carries the
        one per-record shape ``{"index", "field", "message"}`` (plus whatever else it says)::

            >>> InvalidInput("vector 1 is not a list", {"index": 1}).to_json()["detail"]
            {'index': 1, 'field': None, 'message': 'vector 1 is not a list'}
        """
        return {"error": self.error, "detail": record_error_shape(self.detail, self.error)}


def record_error_shape(detail: Any, message: str) -> Any:
    """``detail`` with ``field`` and ``message`` filled in where it names a record by ``index``."""
    if isinstance(detail, dict) and "index" in detail:
        return {"index": detail["index"], "field": detail.get("field"), "message": message, **detail}
    return detail


class InvalidInput(VigilError):
    """The request or file is malformed: names the record and field at fault."""

    status = 400


class UnprocessableInput(VigilError):
    """Well-formed but semantically wrong input (wrong vector length, non-finite values...)."""

    status = 422


def too_many_rows(rows: int, max_rows: int, what: str = "rows") -> VigilError:
    """The one answer to a request over the row limit (VIGIL_MAX_ROWS or a task's cost budget): 413,
    whichever route or task counts the rows, like a body over the size limit."""
    return VigilError(
        f"too many {what} in one request: {rows} > {max_rows}",
        {"rows": rows, "max_rows": max_rows, "hint": "split the request, or raise VIGIL_MAX_ROWS"},
        status=413,
    )


class ModelNotAvailable(VigilError):
    status = 503


class PredictionTimeout(VigilError):
    """A prediction ran past its time limit; raised between chunks of rows, so the work stops there."""

    status = 503


class ServiceBusy(VigilError):
    """Every prediction slot is taken and the queue is full; the answer carries ``Retry-After``."""

    status = 503


class ArtifactIntegrityError(VigilError):
    """A model file does not match its manifest, or the manifest is not signed as required."""

    status = 500
