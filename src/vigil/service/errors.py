"""JSON error handlers: no HTML error page and no traceback ever reaches a client."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from vigil.errors import VigilError

log = logging.getLogger("vigil.service")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(VigilError)
    def _vigil_error(exc: VigilError):
        status = exc.status if exc.status != 500 else 503
        return jsonify(exc.to_json()), status, exc.headers or {}

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):
        limit = current_app.config["VIGIL_SETTINGS"].max_body_bytes
        detail = {"max_body_bytes": limit, "hint": "send smaller requests, or raise VIGIL_MAX_BODY_BYTES"}
        return jsonify({"error": "request body too large", "detail": detail}), 413

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # keep the exception's own headers (a 405's Allow, a 401's WWW-Authenticate), not its HTML type
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        return jsonify({"error": exc.name.lower(), "detail": exc.description}), exc.code, headers

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return jsonify({"error": "internal error", "detail": type(exc).__name__}), 500
