"""Request bodies checked against JSON schemas with ``jsonschema``, errors naming record and field.

Example::

    >>> validate_body({"type": "array", "items": {"type": "object", "required": ["data"]}}, [{"data": "x"}, {}])
    Traceback (most recent call last):
    vigil.errors.UnprocessableInput: request body does not match the schema
    # detail: [{"index": 1, "field": "data", "path": "$[1]", "message": "'data' is a required property"}]
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import jsonschema

from vigil.errors import InvalidInput, UnprocessableInput, VigilError

MAX_REPORTED_ERRORS = 20

_validators: dict[str, jsonschema.protocols.Validator] = {}
_validators_lock = threading.Lock()


def _validator(schema: dict):
    key = json.dumps(schema, sort_keys=True, default=str)
    validator = _validators.get(key)
    if validator is None:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
        validator = cls(schema)
        with _validators_lock:
            _validators[key] = validator
    return validator


def json_path(path) -> str:
    text = "$"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def describe_error(error: jsonschema.ValidationError) -> dict:
    path = list(error.absolute_path)
    index = next((p for p in path if isinstance(p, int)), None)
    names = [p for p in path if isinstance(p, str)]
    field = names[-1] if names else None
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        field = missing[0] if missing else field
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = [name for name in error.instance if name not in allowed]
        field = extra[0] if extra else field
    return {"index": index, "field": field, "path": json_path(path), "message": error.message[:300]}


def validate_body(schema: dict, body: Any) -> None:
    """Raise :class:`UnprocessableInput` (422) listing the first errors, ordered by position."""
    validator = _validator(schema)
    errors = list(itertools.islice(validator.iter_errors(body), 1000))
    if not errors:
        return
    errors.sort(key=lambda e: [str(p).zfill(12) if isinstance(p, int) else str(p) for p in e.absolute_path])
    detail = [describe_error(e) for e in errors[:MAX_REPORTED_ERRORS]]
    raise UnprocessableInput("request body does not match the schema", detail)


def count_rows(body: Any) -> int:
    """Records in a JSON body: a top-level array, else the longest array among an object's values."""
    if isinstance(body, list):
        return len(body)
    if isinstance(body, dict):
        lengths = [len(v) for v in body.values() if isinstance(v, list)]
        return max(lengths, default=1)
    return 1


def check_rows(body: Any, max_rows: int) -> int:
    rows = count_rows(body)
    if rows > max_rows:
        raise VigilError(
            f"too many rows in one request: {rows} > {max_rows}",
            {"rows": rows, "max_rows": max_rows, "hint": "split the request, or raise VIGIL_MAX_ROWS"},
            status=413,
        )
    return rows


def is_json_mimetype(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def parse_json(data: bytes) -> Any:
    if not data.strip():
        raise InvalidInput("request body is empty", "send a JSON document")
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise InvalidInput("request body is not UTF-8 text", str(exc)) from exc
    except ValueError as exc:
        raise InvalidInput("request body is not valid JSON", str(exc)) from exc
    except RecursionError as exc:
        raise InvalidInput("request body is nested too deeply", None) from exc
