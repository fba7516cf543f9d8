"""Request models: one pydantic declaration gives a task's OpenAPI schema and its per-record errors.

A task declares what one record of its ``/predict/<slug>`` body looks like as a pydantic model (in
``tasks/<task>/requests.py``) and the whole body as a type (``list[Reading] | Reading``...). The
service documents that type's JSON schema (:func:`json_schema`); the task validates its records with
the same model and reports every fault in one shape, ``{"index", "field", "message"}``
(:func:`record_errors`), so a client reads "record 3, field length: ..." whatever the task.

Numeric matrices (ember's 2,381-float vectors) are the exception, on purpose: pydantic checks about
100,000 floats per 10 ms, numpy a million in 1 ms, so the model documents such a field and
:func:`vigil.tensors.check_matrix` validates it.

>>> import pydantic
>>> class Reading(pydantic.BaseModel):
...     length: float = pydantic.Field(ge=0)
>>> errors = validate_records(Reading, [{"length": 1}, {"length": -2}, {}])
>>> [record.length for _, record in errors.valid], errors.errors[0]["index"], errors.errors[1]["field"]
([1.0], 1, 'length')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pydantic

MAX_MESSAGE = 300


@lru_cache(maxsize=None)
def _adapter(kind: Any) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(kind)


@lru_cache(maxsize=None)
def json_schema(kind: Any) -> dict:
    """The JSON schema of a request type (a model class, or a union / list of them), for OpenAPI.
    Built once per type (pydantic takes 1-7 ms, and the service asks on every request); callers
    must not change the dict they get."""
    if isinstance(kind, type) and issubclass(kind, pydantic.BaseModel):
        return kind.model_json_schema()
    return _adapter(kind).json_schema()


def error_of(error: Any, index: int | None = None, root: Any = None) -> dict:
    """One pydantic error as ``{"index", "field", "message"}``: ``index`` the first integer of its
    location (the record) unless given, ``field`` the last key of the body on that location (the
    missing or wrong one). With ``root`` (the validated value) the location is walked through it,
    so a union's branch tags in the location ("int", "constrained-str") are not taken for keys."""
    location = list(error.get("loc", ()))
    if index is None:
        index = next((part for part in location if isinstance(part, int)), None)
    field = _field_on(root, location, error.get("type") == "missing") if root is not None else None
    if field is None and root is None:
        names = [part for part in location if isinstance(part, str)]
        field = names[-1] if names else None
    message = error.get("msg", "invalid")
    if error.get("type") == "missing":
        message = "missing"
    return {"index": index, "field": field, "message": message[:MAX_MESSAGE], "kind": error.get("type")}


def _field_on(root: Any, location: list, missing: bool) -> str | None:
    field, node = None, root
    for position, part in enumerate(location):
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            field, node = part, node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif missing and position == len(location) - 1 and isinstance(part, str):
            field = part  # the key that is not there
        # else: a branch tag of a union, not a key of the body
    return field


def errors_of(exc: pydantic.ValidationError, index: int | None = None, root: Any = None) -> list[dict]:
    """Every error of ``exc`` in the one shape (with pydantic's error ``kind``, for tasks that map
    kinds to statuses; strip it with :func:`public` before answering)."""
    return [error_of(error, index, root) for error in exc.errors(include_url=False, include_context=False)]


def public(errors: list[dict]) -> list[dict]:
    """The errors as clients see them: ``{"index", "field", "message"}``."""
    return [{key: value for key, value in error.items() if key != "kind"} for error in errors]


@dataclass
class Validated:
    valid: list[tuple[int, Any]] = field(default_factory=list)  # (index, model instance) in order
    errors: list[dict] = field(default_factory=list)  # {"index", "field", "message", "kind"} in order


def validate_records(model: type[pydantic.BaseModel], items: list, context: dict | None = None) -> Validated:
    """Each item validated by ``model``: the good ones (with their index) and every fault of the bad
    ones, so a task can answer the good records and name the bad. The whole list is tried in one
    call first (pydantic's core loops in Rust); only a list with a fault is walked item by item."""
    try:
        records = _adapter(list[model]).validate_python(items, context=context)  # type: ignore[valid-type]
        return Validated(valid=list(enumerate(records)))
    except pydantic.ValidationError:
        pass
    result = Validated()
    for index, item in enumerate(items):
        try:
            result.valid.append((index, model.model_validate(item, context=context)))
        except pydantic.ValidationError as exc:
            result.errors.extend(errors_of(exc, index, root=item))
    return result


__all__ = ["Validated", "error_of", "errors_of", "json_schema", "public", "validate_records"]
