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

import math
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from vigil.records import errors_of

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


def _millimetres(value: Any, info: pydantic.ValidationInfo) -> Any:
    """A JSON number of mm (the CLI also reads "4,5" from a CSV cell); no bools, nothing infinite."""
    if isinstance(value, str) and (info.context or {}).get("strings_are_numbers"):
        try:
            value = float(value.strip().replace(",", "."))
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("malformed", "must be a number of mm, got {got}", {"got": repr(value)[:40]})
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        number = math.inf
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
        raise PydanticCustomError("malformed", "must be finite (and below 3.4e38)")
    if number < 0:
        raise PydanticCustomError("negative", "must not be negative, got {got}", {"got": f"{number:g}"})
    return number


# The before-validator decides (with the messages above); Field(ge=0) is what the schema documents.
Millimetres = Annotated[float, Field(ge=0), pydantic.BeforeValidator(_millimetres)]


class Reading(BaseModel):
    """One object the sensor reported."""

    model_config = ConfigDict(populate_by_name=True)

    object_class: str = Field(alias="class", description="object class the sensor reports (human, moto, car)")
    length: Millimetres = Field(description="length in mm")
    width: Millimetres = Field(description="width in mm")


class Readings(BaseModel):
    items: list[Reading]


REQUEST = list[Reading] | Reading | Readings


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
        reading = Reading.model_validate(item, context={"strings_are_numbers": strings_are_numbers})
    except pydantic.ValidationError as exc:
        problems = [
            {
                "field": e["field"],
                "message": e["message"],
                "kind": e["kind"] if e["kind"] == "negative" else "malformed",
            }
            for e in errors_of(exc, root=item)
        ]
        if "class" not in {p["field"] for p in problems}:
            problems[:0] = _class_problems(item["class"], classes)
        return sorted(problems, key=lambda p: ["class", "length", "width"].index(p["field"]))
    return _class_problems(reading.object_class, classes)


def _class_problems(value, classes: list[str]) -> list[dict]:
    if resolve_class(value, classes) is None:
        return [{"field": "class", "message": f"unknown class {value!r}; known: {classes}", "kind": "unknown"}]
    return []


def normalise_item(item: dict, classes: list[str]) -> dict:
    """A valid item as the model's row: the class resolved, sizes as floats."""
    reading = Reading.model_validate(item, context={"strings_are_numbers": True})
    return {"class": resolve_class(reading.object_class, classes), "length": reading.length, "width": reading.width}
