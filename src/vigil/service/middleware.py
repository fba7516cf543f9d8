"""What every request goes through, whichever blueprint serves it.

Before the view: request id, cross-worker model reload, bearer token, body size, content type,
JSON parsing, row count and schema validation (from the view's :class:`~vigil.service.api.RouteSpec`).
After it: request id and model version headers, metrics, one JSON log line.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid

from flask import Flask, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from vigil.errors import InvalidInput, VigilError
from vigil.jsonlog import REQUEST_ID
from vigil.service import metrics
from vigil.service.api import is_model, spec_of
from vigil.service.validation import check_rows, is_json_mimetype, parse_json, validate_body, validate_model
from vigil.tensors import too_many_rows

log = logging.getLogger("vigil.service")

# Paths that need VIGIL_API_TOKEN (exact path, or a prefix when it ends with "/").
API_TOKEN_PATHS = ("/train", "/test", "/infer", "/one_loop", "/end_exp", "/jobs/", "/admin/")
PREDICT_TOKEN_PATHS = ("/predict", "/predict/")
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:\-]{1,128}", re.ASCII)  # used with fullmatch
BODY_METHODS = ("POST", "PUT", "PATCH")


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    return any(path.startswith(p) if p.endswith("/") else path == p for p in patterns)


def required_token(path: str, auth: str | None = "auto") -> str | None:
    """Which token guards ``path``: "api", "predict" or None; a route's spec may say so itself."""
    if auth != "auto":
        return auth
    if _matches(path, API_TOKEN_PATHS):
        return "api"
    if _matches(path, PREDICT_TOKEN_PATHS):
        return "predict"
    return None


def _check_token(kind: str | None) -> None:
    if kind is None:
        return
    settings = current_app.config["VIGIL_SETTINGS"]
    expected = settings.api_token if kind == "api" else settings.predict_token
    if not expected:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, supplied = header.partition(" ")
    # compare_digest on bytes: constant time whatever the supplied value, even non-ASCII.
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), expected.encode()):
        variable = "VIGIL_API_TOKEN" if kind == "api" else "VIGIL_PREDICT_TOKEN"
        raise VigilError(
            "missing or wrong bearer token",
            f"send 'Authorization: Bearer <token>' with the value of {variable}",
            status=401,
        )


def _check_body() -> None:
    settings = current_app.config["VIGIL_SETTINGS"]
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        raise RequestEntityTooLarge()  # before reading a byte of it
    if length is None and request.method in BODY_METHODS and request.environ.get("wsgi.input_terminated"):
        # Chunked body: werkzeug silently stops reading at MAX_CONTENT_LENGTH; one byte more is a 413.
        data = request.get_data(cache=True)
        if len(data) >= settings.max_body_bytes and request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    route = spec_of(view)
    if route is None or request.method not in BODY_METHODS:
        return
    path_params = request.view_args or {}
    schema = route.body_schema(**path_params)
    data = request.get_data(cache=True)  # werkzeug stops at max_body_bytes for chunked bodies too
    mimetype = request.mimetype or ""
    json_like = is_json_mimetype(mimetype) or (mimetype in ("", "text/plain") and data.lstrip()[:1] in (b"[", b"{"))
    if not data:
        if schema is not None and route.body_required:
            if mimetype and not is_json_mimetype(mimetype) and mimetype in route.content_types:
                # an empty upload (a PE file of 0 bytes, an empty CSV): say so in its own terms
                raise InvalidInput(
                    "request body is empty",
                    {"content_type": mimetype, "hint": f"send the {mimetype} content itself"},
                )
            raise InvalidInput("request body is empty", "send a JSON document matching the schema at /openapi.json")
        return
    if not json_like or route.raw_body:
        accepted = (
            (route.raw_body and not mimetype)
            or mimetype in route.content_types
            or any(mimetype.startswith(t.split("/")[0] + "/") and t.endswith("/*") for t in route.content_types)
        )
        if not accepted:
            raise VigilError(
                f"unsupported content type '{mimetype or 'none'}'",
                {"accepted": list(route.content_types)},
                status=415,
            )
        return
    if not any(is_json_mimetype(t) for t in route.content_types):
        raise VigilError("this endpoint does not take JSON", {"accepted": list(route.content_types)}, status=415)
    matrix = route.json_tensor(data, **path_params) if route.json_tensor is not None else None
    if matrix is not None:
        if route.counts_rows and len(matrix) > settings.max_rows:
            raise too_many_rows(len(matrix), settings.max_rows)
        g.vigil_tensor, g.vigil_rows = matrix, len(matrix)
        return
    body = parse_json(data)
    g.vigil_json = body
    if route.counts_rows:
        g.vigil_rows = check_rows(body, settings.max_rows)
    if schema is not None and route.validate:
        if is_model(route.body):
            validate_model(route.body, body)  # the declaration itself, not its schema: one set of rules
        else:
            validate_body(schema, body)


def register_middleware(app: Flask) -> None:
    @app.before_request
    def _start():
        g.vigil_started = time.perf_counter()
        supplied = request.headers.get("X-Request-ID", "")
        g.request_id = supplied if REQUEST_ID_PATTERN.fullmatch(supplied) else uuid.uuid4().hex
        g.vigil_request_id_token = REQUEST_ID.set(g.request_id)
        current_app.extensions["vigil.registry"].sync()
        view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
        route = spec_of(view)
        _check_token(required_token(request.path, getattr(route, "auth", "auto")))
        _check_body()

    @app.after_request
    def _finish(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        version = g.get("vigil_model_version")
        if version:
            response.headers["X-Model-Version"] = version
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="vigil"'
        endpoint = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        seconds = time.perf_counter() - g.get("vigil_started", time.perf_counter())
        task = g.get("vigil_task", "")
        metrics.observe_request(endpoint, request.method, response.status_code, task, version or "", seconds)
        level = logging.WARNING if response.status_code >= 500 else logging.INFO
        log.log(
            level,
            "request",
            extra={
                "fields": {
                    "request_id": g.get("request_id"),
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 2),
                    "task": task or None,
                    "model_version": version,
                    "rows": g.get("vigil_rows"),
                    "bytes_in": request.content_length,
                    "remote": request.remote_addr,
                }
            },
        )
        return response

    @app.teardown_request
    def _reset(_exc):
        token = g.pop("vigil_request_id_token", None)
        if token is not None:
            try:
                REQUEST_ID.reset(token)
            except ValueError:  # set in another context (should not happen); leave it
                pass
