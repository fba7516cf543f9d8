"""``GET /openapi.json`` (OpenAPI 3.1, generated from the routes and their specs) and ``GET /docs``.

Every rule in the app's URL map becomes a path; a view's :class:`~vigil.service.api.RouteSpec`
adds its summary, body schema, example and accepted content types. ``/predict/<task_slug>`` is
listed once per task, each with that task's own request schema. /docs is a self-contained page
(no CDN: the service may run without internet access) that renders this document.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

import vigil
from vigil.service.api import RouteSpec, hoist_definitions, spec, spec_of
from vigil.service.middleware import BODY_METHODS, required_token

bp = Blueprint("openapi", __name__)

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {}},
}
ERROR_STATUSES = {
    "400": "Malformed request (e.g. not JSON); `detail` names the record and field",
    "401": "Missing or wrong bearer token",
    "404": "Unknown route or task",
    "405": "Method not allowed",
    "413": "Body larger than VIGIL_MAX_BODY_BYTES, more rows than VIGIL_MAX_ROWS, or (predictions) rows x "
    "the task's row cost over VIGIL_PREDICT_COST_BUDGET_S",
    "415": "Unsupported content type",
    "422": "Body does not match the schema; `detail` lists index, field and message",
    "503": "Model not available, prediction over VIGIL_PREDICT_TIMEOUT_S, or every prediction slot busy "
    "(then with `Retry-After`)",
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying, when the service is busy",
        "schema": {"type": "string"},
    }
}
# Tags as a person reads them in /docs, in this order; blueprints use the short keys.
TAGS = {
    "predict": ("Predictions", "Ask a task's current model for verdicts (add ?explain=3 for the reasons)"),
    "v2": ("Open Inference Protocol", "KServe V2 inference for the tasks that score numeric matrices"),
    "models": ("Models", "Which model version serves each task, with its metrics"),
    "active learning": ("Active learning", "Alectio's train / test / infer / loop protocol"),
    "health": ("Health", "Liveness and readiness, Vigil's and KServe V2's"),
    "metrics": ("Monitoring", "Prometheus metrics"),
    "admin": ("Administration", "Reload models, inspect a worker"),
    "ui": ("Browser pages", "The analyst's pages and the data they fetch"),
    "docs": ("Documentation", "This API description"),
}
_PARAM = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
_CONVERTER_TYPES = {"int": {"type": "integer"}, "float": {"type": "number"}}
UNDOCUMENTED_ENDPOINTS = {"static", "openapi.docs", "favicon.favicon"}


def _expansions(rule_text: str, route: RouteSpec):
    """(path, path_params, parameters) for a rule; params listed in route.expand become literal paths."""
    converters = {name: conv for conv, name in _PARAM.findall(rule_text)}
    expanded: list[tuple[str, dict]] = [(rule_text, {})]
    for name, values in route.expand.items():
        if name not in converters:
            continue
        expanded = [
            (path.replace(_placeholder(path, name), value), {**params, name: value})
            for path, params in expanded
            for value in values()
        ]
    for path, params in expanded:
        parameters = []
        for name, conv in converters.items():
            if name in params:
                continue
            schema: dict[str, Any] = dict(_CONVERTER_TYPES.get(conv, {"type": "string"}))
            enum = list(route.path_values[name]()) if name in route.path_values else []
            if enum:
                schema["enum"] = enum
            parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        yield _PARAM.sub(lambda m: "{" + m.group(2) + "}", path), params, parameters


def _placeholder(path: str, name: str) -> str:
    match = next(m for m in _PARAM.finditer(path) if m.group(2) == name)
    return match.group(0)


def _operation_id(endpoint: str, method: str, params: dict) -> str:
    suffix = "_".join(re.sub(r"\W", "_", v) for v in params.values())
    return "_".join(filter(None, [method.lower(), endpoint.replace(".", "_"), suffix]))


def build_openapi(app: Flask) -> dict:
    components: dict = {
        "schemas": {"Error": ERROR_SCHEMA},
        "securitySchemes": {
            "apiToken": {"type": "http", "scheme": "bearer", "description": "VIGIL_API_TOKEN, when set"},
            "predictToken": {"type": "http", "scheme": "bearer", "description": "VIGIL_PREDICT_TOKEN, when set"},
        },
    }
    paths: dict = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint in UNDOCUMENTED_ENDPOINTS:
            continue
        declared = spec_of(app.view_functions[rule.endpoint])
        route = declared or RouteSpec()
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for path, params, parameters in _expansions(rule.rule, route):
            for method in methods:
                if declared is None and method.lower() in paths.get(path, {}):
                    # e.g. a spec-less /predict/<one slug> overriding /predict/<task_slug>: keep the documented schema
                    continue
                operation = _operation(rule.endpoint, method, route, params, parameters, components)
                kind = required_token(path, route.auth)
                if kind:
                    operation["security"] = [{"apiToken" if kind == "api" else "predictToken": []}]
                paths.setdefault(path, {})[method.lower()] = operation
    used = {tag for operations in paths.values() for operation in operations.values() for tag in operation["tags"]}
    tags = [{"name": name, "description": text} for name, text in TAGS.values() if name in used]
    tags += [{"name": tag} for tag in sorted(used - {name for name, _ in TAGS.values()})]
    return {
        "openapi": "3.1.0",
        "tags": tags,
        "info": {
            "title": "Vigil",
            "version": vigil.__version__,
            "description": 'Security machine learning service. Errors are always JSON {"error", "detail"}.',
        },
        "paths": paths,
        "components": components,
    }


def _operation(endpoint, method, route, params, parameters, components) -> dict:
    operation: dict = {
        "operationId": _operation_id(endpoint, method, params),
        "summary": route.summary_for(**params) or _fallback_summary(endpoint),
        "tags": [TAGS.get(tag, (tag, ""))[0] for tag in route.tags or [endpoint.split(".")[0]]],
        "responses": {"200": {"description": "OK", "content": {route.produces: {"schema": {}}}}},
    }
    if route.description:
        operation["description"] = route.description
    parameters = parameters + [{**query, "in": "query"} for query in route.query]
    if parameters:
        operation["parameters"] = parameters
    if method in BODY_METHODS:
        schema = route.body_schema(**params)
        content = {}
        for content_type in route.content_types:
            if content_type == "application/json":
                prefix = re.sub(r"\W", "_", operation["operationId"]) + "_"
                json_schema, definitions = hoist_definitions(schema, prefix) if schema else ({}, {})
                components["schemas"].update(definitions)
                entry = {"schema": json_schema}
                example = route.example_body(**params)
                if example is not None:
                    entry["example"] = example
                content[content_type] = entry
            else:
                content[content_type] = {"schema": {"type": "string", "format": "binary"}}
        operation["requestBody"] = {"required": bool(schema is not None and route.body_required), "content": content}
    for status, description in {**ERROR_STATUSES, **route.responses}.items():
        operation["responses"][status] = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    operation["responses"]["503"]["headers"] = RETRY_AFTER
    return operation


def _fallback_summary(endpoint: str) -> str:
    """A view without a summary: its function name as words ("list_models" -> "List models")."""
    words = endpoint.rsplit(".", 1)[-1].replace("_", " ").strip()
    return words[:1].upper() + words[1:]


@bp.get("/openapi.json")
@spec(summary="This API description (OpenAPI 3.1)", tags=["docs"])
def openapi_json():
    app = current_app._get_current_object()
    document = app.extensions.get("vigil.openapi")
    if document is None:  # routes and schemas are code: build once per process
        document = build_openapi(app)
        app.extensions["vigil.openapi"] = document
    return jsonify(document)


@bp.get("/docs")
def docs():
    page = resources.files("vigil.service").joinpath("docs.html").read_text(encoding="utf-8")
    return Response(page, mimetype="text/html")
