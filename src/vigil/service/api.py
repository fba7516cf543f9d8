"""What each route accepts, declared next to the view: the one source for validation and OpenAPI.

A blueprint marks a view with :func:`spec`::

    class OneLoop(pydantic.BaseModel):
        experiment_id: str
        cur_loop: int

    @bp.post("/one_loop")
    @spec(body=OneLoop, summary="Run one active-learning loop", tags=["active learning"])
    def one_loop(): ...

The service's ``before_request`` hook then checks the token, the content type, the body size, the
row count and the body against the schema before the view runs (the view reads ``request.get_json()``
as usual), and ``/openapi.json`` documents the route from the same declaration.
Views without ``spec`` still get auth, limits, metrics and an OpenAPI entry without a body.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

JSON_TYPES = ("application/json",)


@dataclass
class RouteSpec:
    # One line for a person reading /docs; a callable(**path_params) for a route listed per task.
    summary: Any = ""
    description: str = ""
    # A JSON schema dict, a pydantic model class, or a callable taking the view's path
    # parameters (e.g. task_slug) and returning a schema dict or None.
    body: Any = None
    example: Any = None  # a request body that works, or a callable(**path_params) returning one
    tags: list[str] = field(default_factory=list)
    # Content types the route accepts; JSON bodies are validated, others pass through to the view.
    content_types: tuple[str, ...] = JSON_TYPES
    body_required: bool = True
    # Path parameters to enumerate in OpenAPI, e.g. {"task_slug": lambda: [every task's slug]}.
    expand: dict[str, Callable[[], list[str]]] = field(default_factory=dict)
    # Known values of a path parameter, documented as an enum (other values still reach the view).
    path_values: dict[str, Callable[[], list[str]]] = field(default_factory=dict)
    # Whether the request carries rows that count against VIGIL_MAX_ROWS.
    counts_rows: bool = True
    # Extra documented answers, status -> description (e.g. {"409": "experiment closed"}); errors are JSON.
    responses: dict[str, Any] = field(default_factory=dict)
    # Media type of the 200 answer ("text/html" for pages, Prometheus' "text/plain" for /metrics).
    produces: str = "application/json"
    # False: the schema documents the body (OpenAPI, fuzzing) and the view or its task checks it
    # itself with the same declaration (a task's request model, record by record, so it can answer
    # the good records and name the bad ones); the JSON is still parsed, size- and row-checked here.
    validate: bool = True
    # True: the view reads the body itself (a JSON header followed by binary data, V2's binary-data
    # extension); the middleware checks only its size and content type, parsing nothing.
    raw_body: bool = False
    # Accepted and ignored: the "schema says no, ask the task anyway" path is gone (tasks validate
    # with their request model). Kept only so a blueprint still passing it loads.
    task_explains_errors: bool = False
    # callable(body_bytes, **path_params) -> numeric matrix or None: a JSON body that is only feature
    # vectors, read fast (orjson + numpy) and handed to the view as a tensor instead of being parsed
    # and schema-checked value by value (such a body matches the schema by construction).
    json_tensor: Callable[..., Any] | None = None
    # Query parameters, as OpenAPI parameter objects without "in" (e.g. /predict's ``explain``).
    query: list[dict] = field(default_factory=list)
    # Which token guards the route: "api", "predict", None, or "auto" (decided by path, see middleware).
    auth: str | None = "auto"

    def body_schema(self, **path_params) -> dict | None:
        return schema_dict(self.body, **path_params)

    def summary_for(self, **path_params) -> str:
        return self.summary(**path_params) if callable(self.summary) else self.summary

    def example_body(self, **path_params) -> Any:
        return self.example(**path_params) if callable(self.example) else self.example


def spec(**kwargs) -> Callable:
    """Decorator: attach a :class:`RouteSpec` to a view function."""

    def decorate(view: Callable) -> Callable:
        view.vigil_spec = RouteSpec(**kwargs)  # type: ignore[attr-defined]
        return view

    return decorate


def task_names() -> list[str]:
    """Every registered task's name: the documented values of a ``<task_name>`` path segment."""
    from vigil.tasks import all_tasks

    return [task.name for task in all_tasks()]


def spec_of(view: Callable | None) -> RouteSpec | None:
    return getattr(view, "vigil_spec", None)


def schema_dict(body: Any, **path_params) -> dict | None:
    if body is None:
        return None
    if isinstance(body, dict):
        return body
    if is_model(body):
        return body.model_json_schema()
    if callable(body):
        return body(**path_params)
    raise TypeError(f"unsupported body schema {body!r}")


def is_model(body: Any) -> bool:
    """A pydantic model class: validated by pydantic itself (its errors name record and field)."""
    return isinstance(body, type) and hasattr(body, "model_json_schema") and hasattr(body, "model_validate")


def hoist_definitions(schema: dict, prefix: str) -> tuple[dict, dict]:
    """Move ``$defs`` / ``definitions`` out of ``schema`` for OpenAPI's ``components/schemas``.

    Returns ``(schema_without_defs, {component_name: schema})`` with every local ``$ref``
    rewritten to ``#/components/schemas/<prefix><Name>``, since an embedded schema's
    ``#/$defs/...`` would otherwise resolve against the OpenAPI document root.
    """
    schema = copy.deepcopy(schema)
    schema.pop("$schema", None)
    schema.pop("$id", None)
    definitions = {**schema.pop("$defs", {}), **schema.pop("definitions", {})}

    def rewrite(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                for local in ("#/$defs/", "#/definitions/"):
                    if ref.startswith(local):
                        node["$ref"] = "#/components/schemas/" + prefix + ref[len(local) :]
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    rewrite(schema)
    components = {}
    for name, definition in definitions.items():
        rewrite(definition)
        components[prefix + name] = definition
    return schema, components
