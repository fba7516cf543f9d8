"""What ``POST /predict/ember`` takes as JSON: one declaration for the OpenAPI body.

The body is a non-empty list of feature vectors (2,381 floats for feature version 2, 2,351 for
version 1) or ember raw records (one line of a ``*_features.jsonl`` file), or ``{"vectors": [...]}``.
PE files come as ``application/octet-stream`` or ``multipart/form-data`` and need no model.

The vectors are declared here but validated by numpy (:func:`vigil.tensors.check_matrix` and
:meth:`EmberTask._vectors_from_json <vigil.tasks.ember.task.EmberTask._vectors_from_json>`): 1,000
vectors are 2.4 million floats, which numpy checks in a few milliseconds and pydantic in about a
second. Errors name the vector and the position (``{"index", "position"}``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from vigil.tasks.ember.features import DIMS

Vector = Annotated[
    list[float],
    Field(
        min_length=DIMS[2],
        max_length=DIMS[2],
        description=f"one feature vector: {DIMS[2]} floats (feature version 2; {DIMS[1]} for version 1)",
    ),
]


class RawRecord(BaseModel):
    """An ember raw record: the feature blocks' raw values (``histogram``, ``byteentropy``, ``strings``,
    ``general``, ``header``, ``section``, ``imports``, ``exports``, ``datadirectories``)."""

    model_config = ConfigDict(extra="allow")
    sha256: str | None = None


Row = Vector | RawRecord
Rows = Annotated[list[Row], Field(min_length=1)]


class Vectors(BaseModel):
    vectors: Rows


REQUEST: Any = Rows | Vectors

__all__ = ["REQUEST", "RawRecord", "Vector", "Vectors"]
