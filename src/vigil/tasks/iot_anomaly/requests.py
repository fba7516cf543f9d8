"""What ``POST /predict/iot-anomaly`` and ``vigil iot-anomaly classify`` take: one declaration.

:class:`Reading` is one sensor reading; :data:`REQUEST` the whole body (a list of readings, one
reading, or ``{"items": [...]}``). Its JSON schema is the OpenAPI body; :func:`validate_item` checks
one reading with the same model and names every fault as ``{"field", "message", "kind"}``.
``kind`` decides the status: ``malformed`` (400: missing, not a number, not finite) or a value the
model cannot score (422: negative, unknown class).

>>> validate_item({"class": "car", "length": -1, "width": "wide"}, ["car"])  # doctest: +NORMALIZE_WHITESPACE
[{'field': 'length', 'message': 'must not be negative, got -1', 'kind': 'negative'},
 {'field': 'width', 'message': "must be a number of mm, got 'wide'", 'kind': 'malformed'}]
"""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

FLOAT32_MAX = 3.4028234663852886e38  # the model computes in float32
CLASS_ALIASES = {
    "pedestrian": "human",
    "person": "human",
    "people": "human",
    "motorbike": "moto",
    "motorcycle": "moto",
    "bike": "moto",
    "automobile": "car",
    "cars": "car",
}


# The constraints are pydantic's own (checked in Rust, ~1 us a reading); the messages a client reads
# are ours, by error type (_problem). The CLI's "4,5" from a CSV cell goes through a lax twin.
Millimetres = Annotated[float, Field(strict=True, ge=0, le=FLOAT32_MAX, allow_inf_nan=False)]


def _number_from_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", "."))
        except ValueError:
            return value
    return value


# TypedDicts, not models: pydantic checks 10,000 readings into dicts in ~9 ms, into model objects in ~40.
Reading = TypedDict(
    "Reading",
    {
        "class": Annotated[str, Field(description="object class the sensor reports (human, moto, car)")],
        "length": Annotated[Millimetres, Field(description="length in mm")],
        "width": Annotated[Millimetres, Field(description="width in mm")],
    },
)
# A reading from a CSV cell or a command line (``vigil iot-anomaly classify``): numbers as text too.
LaxMillimetres = Annotated[Millimetres, pydantic.BeforeValidator(_number_from_text)]
LaxReading = TypedDict("LaxReading", {"class": str, "length": LaxMillimetres, "width": LaxMillimetres})
Readings = TypedDict("Readings", {"items": list[Reading]})

REQUEST = list[Reading] | Reading | Readings
_READING = pydantic.TypeAdapter(Reading)
_LAX_READING = pydantic.TypeAdapter(LaxReading)
_READINGS = pydantic.TypeAdapter(list[Reading])


def _problem(error: Any) -> dict:
    """One pydantic error as ``{"field", "message", "kind"}`` in this task's words."""
    field = error["loc"][0] if error["loc"] else "(item)"
    kind, value = error["type"], error.get("input")
    if kind == "missing":
        return {"field": field, "message": "missing", "kind": "malformed"}
    if field == "class":
        return {"field": field, "message": f"must be a string, got {value!r}"[:200], "kind": "malformed"}
    if kind == "greater_than_equal":
        return {"field": field, "message": f"must not be negative, got {value:g}", "kind": "negative"}
    if (
        kind in ("finite_number", "less_than_equal", "float_parsing_size")
        or isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        return {"field": field, "message": "must be finite (and below 3.4e38)", "kind": "malformed"}
    return {"field": field, "message": f"must be a number of mm, got {value!r}"[:200], "kind": "malformed"}


def resolve_class(value, classes: list[str]) -> str | None:
    if not isinstance(value, str):
        return None
    key = value.strip().lower()
    key = CLASS_ALIASES.get(key, key)
    return key if key in classes else None


def validate_item(item, classes: list[str], strings_are_numbers: bool = False) -> list[dict]:
    """Problems of one {class, length, width} item: [{field, message, kind}] (empty when fine)."""
    if not isinstance(item, dict):
        return [{"field": "(item)", "message": "must be an object {class, length, width}", "kind": "malformed"}]
    try:
        reading = (_LAX_READING if strings_are_numbers else _READING).validate_python(item)
    except pydantic.ValidationError as exc:
        problems = [_problem(e) for e in exc.errors(include_url=False, include_context=False)]
        if "class" not in {p["field"] for p in problems}:
            problems[:0] = _class_problems(item["class"], classes)
        return sorted(problems, key=lambda p: ["class", "length", "width"].index(p["field"]))
    return _class_problems(reading["class"], classes)


def check_items(items: list, classes: list[str]) -> tuple[list[tuple[int, dict]], list[dict]]:
    """The good items as ``(index, model row)`` and every fault as ``{"index", "field", "message",
    "kind"}``, in order. One pydantic call checks a whole list of good readings (10,000: ~10 ms);
    only a list with a fault is walked item by item."""
    try:
        readings = _READINGS.validate_python(items)
    except pydantic.ValidationError:
        readings = None
    rows: list[tuple[int, dict]] = []
    errors: list[dict] = []
    for index, item in enumerate(items):
        if readings is not None:
            reading = readings[index]
            known = resolve_class(reading["class"], classes)
            if known is not None:
                rows.append((index, {**reading, "class": known}))
                continue
        problems = validate_item(item, classes)
        if problems:
            errors.extend({"index": index, **problem} for problem in problems)
        else:
            rows.append((index, normalise_item(item, classes)))
    return rows, errors


def _class_problems(value, classes: list[str]) -> list[dict]:
    if resolve_class(value, classes) is None:
        return [{"field": "class", "message": f"unknown class {value!r}; known: {classes}", "kind": "unknown"}]
    return []


def normalise_item(item: dict, classes: list[str]) -> dict:
    """A valid item as the model's row: the class resolved, sizes as floats."""
    reading = _LAX_READING.validate_python(item)
    return {"class": resolve_class(reading["class"], classes), "length": reading["length"], "width": reading["width"]}
